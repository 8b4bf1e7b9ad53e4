//! Set-returning functions that hand back all their rows in one call (materialize mode).
//!
//! A function with a pinned `search_path` (every segplan function that reads data) runs through
//! PostgreSQL's `fmgr_security_definer`, which sets the path and restores it on every call. In
//! pgrx's value-per-call mode that is every row: listing 304k members took 140 ms where the same
//! rows from `rb64_iterate` (no pinned path) took 9 ms. In materialize mode the function is called
//! once and fills a tuplestore.
use pgrx::prelude::*;
use pgrx::PgMemoryContexts;

/// Puts every value of `rows` into the call's result (a one-column tuplestore) and returns.
///
/// # Safety
/// `fcinfo` is the call's, of a function declared `RETURNS SETOF` the values' type.
pub unsafe fn materialize<T: IntoDatum>(fcinfo: pg_sys::FunctionCallInfo, rows: impl IntoIterator<Item = T>) -> pg_sys::Datum {
    pg_sys::SetSingleFuncCall(fcinfo, pg_sys::SRF_SINGLE_USE_EXPECTED);
    let rsinfo = (*fcinfo).resultinfo.cast::<pg_sys::ReturnSetInfo>();
    let (store, desc) = ((*rsinfo).setResult, (*rsinfo).setDesc);
    // values by reference (text) are made in a context of their own, emptied as rows go in
    let mut scratch = PgMemoryContexts::new("segplan rows");
    for (n, v) in rows.into_iter().enumerate() {
        if n % 4096 == 0 {
            pgrx::check_for_interrupts!();
            scratch.reset();
        }
        let value = scratch.switch_to(|_| v.into_datum());
        let mut null = value.is_none();
        let mut datum = value.unwrap_or(pg_sys::Datum::null());
        pg_sys::tuplestore_putvalues(store, desc, &mut datum, &mut null);
    }
    (*fcinfo).isnull = true;
    pg_sys::Datum::null()
}

/// Declares `$name` (with its `pg_finfo_` record) as a version-1 C function returning the rows of
/// `$rows(fcinfo)` in materialize mode; sql/finalize.sql creates it (`LANGUAGE c … AS
/// 'MODULE_PATHNAME', '$name'`). The names are the `_wrapper` symbols pgrx gave these functions
/// before, so an install made by an earlier version's script keeps working with this library.
#[macro_export]
macro_rules! materialized_srf {
    ($name:ident, $finfo:ident, $rows:expr) => {
        $crate::raw_transition!(@finfo $finfo);

        #[no_mangle]
        #[pgrx::pg_guard]
        pub unsafe extern "C-unwind" fn $name(fcinfo: pgrx::pg_sys::FunctionCallInfo) -> pgrx::pg_sys::Datum {
            $crate::pg::srf::materialize(fcinfo, ($rows)(fcinfo))
        }
    };
}
