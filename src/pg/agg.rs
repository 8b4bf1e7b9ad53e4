//! Shared machinery of the aggregates with an `internal` state (the bitmap aggregates, 32- and
//! 64-bit, and RFM's purchases per contact): the state lives in the aggregate's memory context
//! (nothing is serialized per row); combine, serialize and deserialize functions make them parallel
//! (sql/finalize.sql).
use super::error::report;
use pgrx::datum::Internal;
use pgrx::prelude::*;
use pgrx::{PgMemoryContexts, PgSqlErrorCode};

/// The running state: `seen` is false until the first input (so rb_and_agg starts from "all" and
/// an aggregate over no rows returns NULL).
#[derive(Default)]
pub struct AggState<B> {
    pub seen: bool,
    pub value: B,
}

/// Runs `f` on the state, created if needed, in the aggregate's memory context.
pub fn with_state<B: Default + 'static>(mut state: Internal, fcinfo: pg_sys::FunctionCallInfo, f: impl FnOnce(&mut AggState<B>)) -> Internal {
    unsafe {
        let mut agg_cxt: pg_sys::MemoryContext = std::ptr::null_mut();
        if pg_sys::AggCheckCallContext(fcinfo, &mut agg_cxt) == 0 {
            report(
                PgSqlErrorCode::ERRCODE_FEATURE_NOT_SUPPORTED,
                "this function is an aggregate's support function",
                "it was called outside an aggregate".into(),
                Some("use the aggregate it belongs to (rb_build_agg, rb_or_agg, rb64_build_agg, …)".into()),
            );
        }
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

/// Combines two partial states (parallel aggregation).
pub fn merge<B: Default + Clone + 'static>(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo, op: fn(&mut B, B)) -> Internal {
    let other = state_of::<B>(&b).map(|s| s.value.clone());
    fold(a, other, fcinfo, op)
}
