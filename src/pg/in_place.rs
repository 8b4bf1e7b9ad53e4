//! A bitmap argument read where it lies, for the per-row membership tests (`rb_contains(bm, id)`,
//! `bm @> id`, `id <@ bm`): the portable bytes are looked at through
//! [`segplan_core::frozen`], never deserialized. A bitmap stored out of line (TOAST) is fetched
//! once per call site and kept in the call site's memory (`fn_extra`, freed with the statement's
//! function cache), keyed by its TOAST pointer — which names the same bytes for the whole
//! statement, since the row holding them stays visible to the statement's snapshot.
use pgrx::callconv::{Arg, ArgAbi};
use pgrx::pgrx_sql_entity_graph::metadata::{ArgumentError, ReturnsError, ReturnsRef, SqlMappingRef, SqlTranslatable, TypeOrigin};
use pgrx::prelude::*;
use pgrx::{varlena, PgMemoryContexts};
use std::marker::PhantomData;

/// An undecoded `T` (one of the bitmap types) argument.
pub struct InPlace<T> {
    datum: pg_sys::Datum,
    of: PhantomData<T>,
}

impl<T> FromDatum for InPlace<T> {
    unsafe fn from_polymorphic_datum(datum: pg_sys::Datum, is_null: bool, _: pg_sys::Oid) -> Option<Self> {
        (!is_null).then_some(InPlace { datum, of: PhantomData })
    }
}

unsafe impl<'fcx, T> ArgAbi<'fcx> for InPlace<T> {
    unsafe fn unbox_arg_unchecked(arg: Arg<'_, 'fcx>) -> Self {
        let index = arg.index();
        unsafe { arg.unbox_arg_using_from_datum() }.unwrap_or_else(|| panic!("argument {index} must not be null"))
    }
}

unsafe impl<T: SqlTranslatable> SqlTranslatable for InPlace<T> {
    const TYPE_IDENT: &'static str = T::TYPE_IDENT;
    const TYPE_ORIGIN: TypeOrigin = T::TYPE_ORIGIN;
    const ARGUMENT_SQL: Result<SqlMappingRef, ArgumentError> = T::ARGUMENT_SQL;
    const RETURN_SQL: Result<ReturnsRef, ReturnsError> = T::RETURN_SQL;
}

/// The last out-of-line bitmap a call site fetched.
struct Fetched {
    toast: (pg_sys::Oid, pg_sys::Oid),
    bytes: Vec<u8>,
}

impl<T: FromDatum> InPlace<T> {
    /// The value deserialized (for bytes in a layout the in-place reader does not know).
    pub fn decoded(&self) -> T {
        unsafe { T::from_datum(self.datum, false) }.expect("a non-null argument")
    }
}

impl<T> InPlace<T> {
    /// Runs `read` on the value's stored bytes (the type's CBOR wrapping of the portable bytes).
    pub fn with_stored<R>(&self, fcinfo: pg_sys::FunctionCallInfo, read: impl FnOnce(&[u8]) -> R) -> R {
        unsafe {
            let ptr = self.datum.cast_mut_ptr::<pg_sys::varlena>();
            if varlena::varatt_is_1b_e(ptr) && varlena::vartag_external(ptr) == pg_sys::vartag_external::VARTAG_ONDISK as u8 {
                let pointer: pg_sys::varatt_external = std::ptr::read_unaligned(varlena::vardata_1b_e(ptr).cast());
                let toast = (pointer.va_toastrelid, pointer.va_valueid);
                let flinfo = (*fcinfo).flinfo;
                let mut cached = (*flinfo).fn_extra.cast::<Fetched>();
                if cached.is_null() {
                    let fresh = Fetched { toast: (pg_sys::InvalidOid, pg_sys::InvalidOid), bytes: Vec::new() };
                    cached = PgMemoryContexts::For((*flinfo).fn_mcxt).leak_and_drop_on_delete(fresh);
                    (*flinfo).fn_extra = cached.cast();
                }
                let cached = &mut *cached;
                if cached.toast != toast {
                    let detoasted = pg_sys::pg_detoast_datum_packed(ptr);
                    cached.bytes = varlena::varlena_to_byte_slice(detoasted).to_vec();
                    cached.toast = toast;
                    if detoasted != ptr {
                        pg_sys::pfree(detoasted.cast());
                    }
                }
                read(&cached.bytes)
            } else {
                let detoasted = pg_sys::pg_detoast_datum_packed(ptr);
                read(varlena::varlena_to_byte_slice(detoasted))
            }
        }
    }
}
