//! Shared machinery of the aggregates with an `internal` state (the bitmap aggregates, 32- and
//! 64-bit, and RFM's purchases per contact): the state lives in the aggregate's memory context
//! (nothing is serialized per row); combine, serialize and deserialize functions make them parallel
//! (sql/finalize.sql).
use super::error::report;
use pgrx::datum::Internal;
use pgrx::prelude::*;
use pgrx::{PgMemoryContexts, PgSqlErrorCode};
use segplan_core::bitmap::{self, Gathered, RoaringTreemap};
use segplan_core::ranges;

/// The running state: `seen` is false until the first input (so rb_and_agg starts from "all" and
/// an aggregate over no rows returns NULL).
#[derive(Default)]
pub struct AggState<B> {
    pub seen: bool,
    pub value: B,
}

/// The aggregate's memory context; an error when the function was called outside an aggregate.
///
/// # Safety
/// `fcinfo` is the current call's.
unsafe fn agg_context(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::MemoryContext {
    let mut agg_cxt: pg_sys::MemoryContext = std::ptr::null_mut();
    if pg_sys::AggCheckCallContext(fcinfo, &mut agg_cxt) == 0 {
        report(
            PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
            "this function is an aggregate's support function",
            "it was called outside an aggregate".into(),
            Some("use the aggregate it belongs to (rb_build_agg, rb_or_agg, rb64_build_agg, …)".into()),
        );
    }
    agg_cxt
}

/// Runs `f` on the state, created if needed, in the aggregate's memory context.
pub fn with_state<B: Default + 'static>(mut state: Internal, fcinfo: pg_sys::FunctionCallInfo, f: impl FnOnce(&mut AggState<B>)) -> Internal {
    unsafe {
        let agg_cxt = agg_context(fcinfo);
        PgMemoryContexts::For(agg_cxt).switch_to(|_| f(state.get_or_insert_default::<AggState<B>>()));
    }
    state
}

pub fn state_of<B: 'static>(state: &Internal) -> Option<&AggState<B>> {
    unsafe { state.get::<AggState<B>>() }.filter(|s| s.seen)
}

/// Folds one input bitmap into the state with `op` (the first input is taken as it is).
pub fn fold<B: Default + 'static>(state: Internal, input: Option<B>, fcinfo: pg_sys::FunctionCallInfo, op: fn(&mut B, B)) -> Internal {
    with_state(state, fcinfo, |s: &mut AggState<B>| {
        if let Some(b) = input {
            if s.seen {
                op(&mut s.value, b);
            } else {
                s.value = b;
                s.seen = true;
            }
        }
    })
}

/// Refuses (54000) a 64-bit aggregate's bitmap grown past what any bitmap value may hold, after
/// an operation that may have added `added` bytes to it ([`Gathered::grow`]): checked as it
/// grows, before it takes memory without bound. (A 32-bit bitmap holds at most 512 MiB.)
pub fn check_growth(g: &mut Gathered<RoaringTreemap>, added: u64) {
    if let Some(bytes) = g.grow(added, ranges::MAX_BYTES) {
        report(
            PgSqlErrorCode::ERRCODE_PROGRAM_LIMIT_EXCEEDED,
            "the aggregate's roaringbitmap64 is too large",
            format!("it has come to {bytes} bytes in memory; a bitmap may take at most 1 GB"),
            Some("aggregate part of the values at a time, e.g. one range of them (WHERE value BETWEEN …), and keep the parts".into()),
        );
    }
}

/// Combines two partial states (parallel aggregation): the second is read, not copied, unless
/// the first has seen nothing yet.
pub fn merge<B: Default + Clone + 'static>(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo, op: fn(&mut B, &B)) -> Internal {
    let other = state_of::<B>(&b);
    with_state(a, fcinfo, |s: &mut AggState<B>| match other {
        Some(o) if s.seen => op(&mut s.value, &o.value),
        Some(o) => {
            s.value = o.value.clone();
            s.seen = true;
        }
        None => {}
    })
}

/// The state's value, for a final or serialize function that returns a borrow of it (pgrx copies
/// it into the result before returning to PostgreSQL).
pub fn state_value<B: 'static>(state: &Internal) -> Option<&'static B> {
    let s: *const AggState<B> = state_of::<B>(state)?;
    // SAFETY: the state lives in the aggregate's memory context, which outlives this call
    Some(unsafe { &(*s).value })
}

/// [`state_value`] for a final or serialize function that must finish the state first.
pub fn state_value_mut<B: 'static>(state: &mut Internal) -> Option<&'static mut B> {
    // SAFETY: as in state_value; PostgreSQL runs one support function of a state at a time
    let s: *mut AggState<B> = unsafe { state.get_mut::<AggState<B>>() }.filter(|s| s.seen)?;
    Some(unsafe { &mut (*s).value })
}

/// A transition step written against the function-call ABI, for the aggregates that run once per
/// row of a leaf's scan (ids into a bitmap, keys into a list): pgrx's argument and state wrappers
/// cost about as much per row as the scan of a narrow row. Reads the state pointer (the same
/// representation as pgrx's `Internal`, so the combine, serialize and final functions are
/// unchanged) and the value; a NULL value leaves the state as it is; the state is created in the
/// aggregate's memory context at the first value.
///
/// # Safety
/// `fcinfo` is the call's, with two arguments: the state (`internal`, made by this function or
/// NULL) and the value.
pub unsafe fn raw_step<B: Default + 'static>(fcinfo: pg_sys::FunctionCallInfo, step: impl FnOnce(&mut AggState<B>, pg_sys::Datum)) -> pg_sys::Datum {
    use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw, pg_return_null};
    let mut state: *mut AggState<B> = if pg_arg_is_null(fcinfo, 0) { std::ptr::null_mut() } else { pg_getarg_datum_raw(fcinfo, 0).cast_mut_ptr() };
    if pg_arg_is_null(fcinfo, 1) {
        return if state.is_null() { pg_return_null(fcinfo) } else { pg_sys::Datum::from(state) };
    }
    if state.is_null() {
        state = PgMemoryContexts::For(agg_context(fcinfo)).leak_and_drop_on_delete(AggState::<B>::default());
    }
    step(&mut *state, pg_getarg_datum_raw(fcinfo, 1));
    pg_sys::Datum::from(state)
}

/// The fast path of a step: when the state exists and the value is not NULL, `step` gets both
/// and says whether it did all there was to do. It runs before the error boundary, so it must
/// neither panic nor call into PostgreSQL (see `raw_transition!`).
///
/// # Safety
/// As [`raw_step`].
#[inline(always)]
pub unsafe fn fast_step<B: 'static>(fcinfo: pg_sys::FunctionCallInfo, step: impl FnOnce(&mut AggState<B>, pg_sys::Datum) -> bool) -> Option<pg_sys::Datum> {
    use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw};
    if pg_arg_is_null(fcinfo, 0) || pg_arg_is_null(fcinfo, 1) {
        return None;
    }
    let state: *mut AggState<B> = pg_getarg_datum_raw(fcinfo, 0).cast_mut_ptr();
    step(&mut *state, pg_getarg_datum_raw(fcinfo, 1)).then(|| pg_sys::Datum::from(state))
}

/// Declares `$name` as a version-1 C function (its `pg_finfo_` record) calling [`raw_step`] with
/// state `$state` and `$step`; sql/finalize.sql creates it (`LANGUAGE c … AS 'MODULE_PATHNAME', '$name'`).
/// With `fast = $fast`, [`fast_step`] runs `$fast` first, outside pgrx's error boundary (which
/// costs a call and a return through memory per row), and the guarded step only when it declines.
#[macro_export]
macro_rules! raw_transition {
    ($name:ident, $finfo:ident, $state:ty, $step:expr) => {
        $crate::raw_transition!(@finfo $finfo);

        #[no_mangle]
        #[pgrx::pg_guard]
        pub unsafe extern "C-unwind" fn $name(fcinfo: pgrx::pg_sys::FunctionCallInfo) -> pgrx::pg_sys::Datum {
            $crate::pg::agg::raw_step::<$state>(fcinfo, $step)
        }
    };
    ($name:ident, $finfo:ident, $state:ty, $step:expr, fast = $fast:expr) => {
        $crate::raw_transition!(@finfo $finfo);

        #[no_mangle]
        pub unsafe extern "C-unwind" fn $name(fcinfo: pgrx::pg_sys::FunctionCallInfo) -> pgrx::pg_sys::Datum {
            #[pgrx::pg_guard]
            unsafe extern "C-unwind" fn guarded(fcinfo: pgrx::pg_sys::FunctionCallInfo) -> pgrx::pg_sys::Datum {
                $crate::pg::agg::raw_step::<$state>(fcinfo, $step)
            }
            match $crate::pg::agg::fast_step::<$state>(fcinfo, $fast) {
                Some(state) => state,
                None => guarded(fcinfo),
            }
        }
    };
    (@finfo $finfo:ident) => {
        #[no_mangle]
        pub extern "C" fn $finfo() -> &'static pgrx::pg_sys::Pg_finfo_record {
            static V1: pgrx::pg_sys::Pg_finfo_record = pgrx::pg_sys::Pg_finfo_record { api_version: 1 };
            &V1
        }
    };
}

/// A bitmap aggregate's partial state as its serialize function packed it
/// ([`bitmap::append_packed`]); bytes that are not are reported, not trusted.
pub fn unpack_state(packed: &[u8]) -> Vec<u8> {
    bitmap::unpack_zero_words(packed).unwrap_or_else(|e| {
        report(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            "invalid partial state of a bitmap aggregate",
            e,
            Some("this function reads what the aggregate's serialize function wrote; use the aggregate it belongs to".into()),
        )
    })
}
