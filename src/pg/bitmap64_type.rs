//! `segplan.roaringbitmap64`: a 64-bit roaring bitmap of int8 values with pg_roaringbitmap's
//! `rb64_*` surface. `::bytea` is CRoaring's portable 64-bit format. Negative int8s are stored as
//! their unsigned bit pattern (so -1 sorts last), as in the 32-bit type. segplan.bitmap(rule)
//! returns this type: contact keys are bigint.
use super::agg::{check_growth, fold, merge, state_value_mut, unpack_state};
use super::error::report;
use super::datum::{AsArray, check_range, too_large_to_read, write_text, InPlace, Named, Stored};
use pgrx::datum::Internal;
use pgrx::prelude::*;
use pgrx::{InOutFuncs, PgSqlErrorCode, StringInfo};
use segplan_core::bitmap::{self, Gathered, RoaringTreemap, Unreadable};
use segplan_core::{frozen, ranges};
use std::ffi::CStr;

#[derive(PostgresType, Clone, PartialEq, Debug)]
#[inoutfuncs]
#[bikeshed_postgres_type_manually_impl_from_into_datum]
pub struct Roaringbitmap64(pub RoaringTreemap);

crate::portable_datum!(Roaringbitmap64, RoaringTreemap);

impl InOutFuncs for Roaringbitmap64 {
    fn input(input: &CStr) -> Self {
        let text = input.to_string_lossy();
        match bitmap::parse_any64(&text) {
            Ok(b) => Roaringbitmap64(b),
            Err(Unreadable::TooLarge(n)) => too_large_to_read(n),
            Err(e) => report(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                &format!("invalid roaringbitmap64: {e}"),
                format!("input: {}", text.chars().take(80).collect::<String>()),
                Some("write it like '{1,2,3}' with int8 values, or as \\x followed by the portable 64-bit bytes in hex".into()),
            ),
        }
    }

    fn output(&self, buffer: &mut StringInfo) {
        write_text(buffer, Self::NAME, self.0.len(), self.0.serialized_size(), || bitmap::to_hex64(&self.0), self.0.iter().map(|v| v as i64));
    }
}

type Rb = Roaringbitmap64;

fn u(v: i64) -> u64 {
    v as u64
}

fn wrap(b: RoaringTreemap) -> Rb {
    Roaringbitmap64(b)
}

/// [start, end) over the unsigned values, with int8 bounds read as unsigned (as the values are).
fn range(start: i64, end: i64) -> Option<std::ops::RangeInclusive<u64>> {
    let (s, e) = (u(start), u(end));
    (s < e).then(|| s..=e - 1)
}

/// Every value of [start, end): 54000 when it would take more memory than a bitmap may.
fn window(start: i64, end: i64) -> RoaringTreemap {
    let mut w = RoaringTreemap::new();
    if let Some(r) = range(start, end) {
        check_range(Rb::NAME, &r);
        w.insert_range(r);
    }
    w
}

#[pg_extern(immutable, parallel_safe, name = "roaringbitmap64")]
fn roaringbitmap64_from_bytea(bytes: &[u8]) -> Rb {
    match bitmap::from_bytes64(bytes) {
        Ok(b) => wrap(b),
        Err(Unreadable::TooLarge(n)) => too_large_to_read(n),
        Err(e) => report(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            &format!("invalid roaringbitmap64 bytes: {e}"),
            format!("{} bytes", bytes.len()),
            Some("give the portable 64-bit roaring format, as pg_roaringbitmap's roaringbitmap64::bytea or CRoaring's roaring64 portable serialization writes it".into()),
        ),
    }
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_build(values: Vec<Option<i64>>) -> Rb {
    wrap(values.into_iter().flatten().map(u).collect())
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_to_array(rb: Rb) -> AsArray<RoaringTreemap> {
    AsArray(rb.0)
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_iterate(rb: Rb) -> SetOfIterator<'static, i64> {
    SetOfIterator::new(rb.0.into_iter().map(|v| v as i64))
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_cardinality(rb: InPlace<Rb>) -> i64 {
    rb.read(frozen::cardinality64) as i64
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_is_empty(rb: InPlace<Rb>) -> bool {
    rb.read(frozen::cardinality64) == 0
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_min(rb: Rb) -> Option<i64> {
    rb.0.min().map(|v| v as i64)
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_max(rb: Rb) -> Option<i64> {
    rb.0.max().map(|v| v as i64)
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_rank(rb: Rb, v: i64) -> i64 {
    rb.0.rank(u(v)) as i64
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_index(rb: Rb, v: i64) -> i64 {
    if rb.0.contains(u(v)) { rb.0.rank(u(v)) as i64 - 1 } else { -1 }
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_jaccard_dist(a: InPlace<Rb>, b: InPlace<Rb>) -> f64 {
    a.read_pair(&b, frozen::overlap64).jaccard_dist()
}

#[pg_operator(immutable, parallel_safe)]
#[opname(&)]
fn rb64_and(a: InPlace<Rb>, b: InPlace<Rb>) -> Stored<Rb> {
    Stored::new(a.read_pair(&b, frozen::and64))
}

#[pg_operator(immutable, parallel_safe)]
#[opname(|)]
fn rb64_or(a: Rb, b: Rb) -> Rb {
    wrap(a.0 | b.0)
}

#[pg_operator(immutable, parallel_safe)]
#[opname(#)]
fn rb64_xor(a: Rb, b: Rb) -> Rb {
    wrap(a.0 ^ b.0)
}

#[pg_operator(immutable, parallel_safe)]
#[opname(-)]
fn rb64_andnot(a: Rb, b: Rb) -> Rb {
    wrap(a.0 - b.0)
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_and_cardinality(a: InPlace<Rb>, b: InPlace<Rb>) -> i64 {
    a.read_pair(&b, frozen::and_cardinality64) as i64
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_or_cardinality(a: InPlace<Rb>, b: InPlace<Rb>) -> i64 {
    a.read_pair(&b, frozen::overlap64).union() as i64
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_xor_cardinality(a: InPlace<Rb>, b: InPlace<Rb>) -> i64 {
    a.read_pair(&b, frozen::overlap64).xor() as i64
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_andnot_cardinality(a: InPlace<Rb>, b: InPlace<Rb>) -> i64 {
    a.read_pair(&b, frozen::overlap64).andnot() as i64
}

#[pg_operator(immutable, parallel_safe)]
#[opname(|)]
fn rb64_add(rb: Rb, v: i64) -> Rb {
    let mut b = rb.0;
    b.insert(u(v));
    wrap(b)
}

#[pg_operator(immutable, parallel_safe)]
#[opname(-)]
fn rb64_remove(rb: Rb, v: i64) -> Rb {
    let mut b = rb.0;
    b.remove(u(v));
    wrap(b)
}

#[pg_operator(immutable, parallel_safe)]
#[opname(@>)]
fn rb64_contains(a: InPlace<Rb>, b: InPlace<Rb>) -> bool {
    a.read_pair(&b, frozen::overlap64).contains()
}

#[pg_operator(immutable, parallel_safe, name = "rb64_contains")]
#[opname(@>)]
fn rb64_contains_value(a: InPlace<Rb>, v: i64, fcinfo: pg_sys::FunctionCallInfo) -> bool {
    holds(&a, v, fcinfo)
}

/// Membership read from the stored bytes (see datum.rs).
fn holds(rb: &InPlace<Rb>, v: i64, fcinfo: pg_sys::FunctionCallInfo) -> bool {
    rb.read_cached(fcinfo, |b| frozen::contains64(b, u(v)))
}

#[pg_operator(immutable, parallel_safe)]
#[opname(<@)]
fn rb64_containedby(a: InPlace<Rb>, b: InPlace<Rb>) -> bool {
    a.read_pair(&b, frozen::overlap64).contained()
}

#[pg_operator(immutable, parallel_safe)]
#[opname(<@)]
fn rb64_value_containedby(v: i64, b: InPlace<Rb>, fcinfo: pg_sys::FunctionCallInfo) -> bool {
    holds(&b, v, fcinfo)
}

#[pg_operator(immutable, parallel_safe)]
#[opname(&&)]
fn rb64_intersect(a: InPlace<Rb>, b: InPlace<Rb>) -> bool {
    a.read_pair(&b, frozen::intersects64)
}

#[pg_operator(immutable, parallel_safe)]
#[opname(=)]
fn rb64_equals(a: InPlace<Rb>, b: InPlace<Rb>) -> bool {
    a.read_pair(&b, frozen::overlap64).equal()
}

#[pg_operator(immutable, parallel_safe)]
#[opname(<>)]
fn rb64_not_equals(a: InPlace<Rb>, b: InPlace<Rb>) -> bool {
    !a.read_pair(&b, frozen::overlap64).equal()
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_range(rb: Rb, range_start: i64, range_end: i64) -> Rb {
    wrap(range(range_start, range_end).map(|r| ranges::within(rb.0, &r)).unwrap_or_default())
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_range_cardinality(rb: Rb, range_start: i64, range_end: i64) -> i64 {
    range(range_start, range_end).map_or(0, |r| ranges::count_in(&rb.0, &r)) as i64
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_fill(rb: Rb, range_start: i64, range_end: i64) -> Rb {
    let mut b = rb.0;
    if let Some(r) = range(range_start, range_end) {
        check_range(Rb::NAME, &r);
        b.insert_range(r);
    }
    wrap(b)
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_clear(rb: Rb, range_start: i64, range_end: i64) -> Rb {
    let mut b = rb.0;
    if let Some(r) = range(range_start, range_end) {
        b.remove_range(r);
    }
    wrap(b)
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_flip(rb: Rb, range_start: i64, range_end: i64) -> Rb {
    wrap(rb.0 ^ window(range_start, range_end))
}

/// Up to `bitset_limit` values after skipping `bitset_offset`, from the low end (or the high end
/// when `reverse`), of the values in [range_start, range_end) read as unsigned.
#[pg_extern(immutable, parallel_safe)]
fn rb64_select(rb: Rb, bitset_limit: i64, bitset_offset: default!(i64, 0), reverse: default!(bool, false), range_start: default!(i64, 0), range_end: default!(i64, -1)) -> Rb {
    let Some(r) = range(range_start, range_end) else { return wrap(RoaringTreemap::new()) };
    wrap(ranges::select(rb.0, &r, bitset_offset.max(0) as u64, bitset_limit.max(0) as u64, reverse))
}

/// The same set (see rb_runoptimize: the Rust roaring crate has no run containers).
#[pg_extern(immutable, parallel_safe)]
fn rb64_runoptimize(rb: Rb) -> Rb {
    rb
}

// ---- aggregates (state handling in agg.rs)

// rb64_build_agg's step (a C-ABI function, see agg::raw_step): an int8 by value
crate::raw_transition!(segplan_rb64_build_trans, pg_finfo_segplan_rb64_build_trans, Gathered<RoaringTreemap>, |s, v| {
    s.value.add(u(v.value() as i64));
    s.seen = true;
    check_growth(&mut s.value, 0);
}, fast = |s, v| s.value.add_in_block(u(v.value() as i64)));

#[pg_extern(immutable, parallel_safe)]
fn rb64_or_trans(state: Internal, rb: Option<Rb>, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    fold(state, rb.map(|r| Gathered::from(r.0)), fcinfo, |a, b| grown_by(a, b.memory(), |s| *s |= b.into_set()))
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_and_trans(state: Internal, rb: Option<Rb>, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    fold(state, rb.map(|r| Gathered::from(r.0)), fcinfo, |a, b| *a.set() &= b.into_set())
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_xor_trans(state: Internal, rb: Option<Rb>, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    fold(state, rb.map(|r| Gathered::from(r.0)), fcinfo, |a, b| grown_by(a, b.memory(), |s| *s ^= b.into_set()))
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_or_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    merge::<Gathered<RoaringTreemap>>(a, b, fcinfo, |a, b| {
        a.absorb(b);
        check_growth(a, b.memory())
    })
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_and_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    merge::<Gathered<RoaringTreemap>>(a, b, fcinfo, |a, b| *a.set() &= &*b.settled())
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_xor_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    merge::<Gathered<RoaringTreemap>>(a, b, fcinfo, |a, b| grown_by(a, b.memory(), |s| *s ^= &*b.settled()))
}

/// `op` on the state's set, which may grow it by `added` bytes (then checked).
fn grown_by(a: &mut Gathered<RoaringTreemap>, added: u64, op: impl FnOnce(&mut RoaringTreemap)) {
    op(a.set());
    check_growth(a, added)
}

#[pg_extern(immutable, parallel_safe, strict)]
fn rb64_agg_serialize(mut state: Internal) -> Vec<u8> {
    match state_value_mut::<Gathered<RoaringTreemap>>(&mut state) {
        Some(s) => bitmap::append_packed64(vec![1u8], s.set()),
        None => vec![0u8],
    }
}

#[pg_extern(immutable, parallel_safe, strict)]
fn rb64_agg_deserialize(bytes: &[u8], _unused: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    let restored = match bytes.split_first() {
        Some((1, rest)) => Some(roaringbitmap64_from_bytea(&unpack_state(rest)).0),
        _ => None,
    };
    fold(Internal::default(), restored.map(Gathered::from), fcinfo, |a, b| *a.set() |= b.into_set())
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_agg_final(mut state: Internal) -> Option<Rb> {
    state_value_mut::<Gathered<RoaringTreemap>>(&mut state).map(|s| wrap(s.set().clone()))
}

#[pg_extern(immutable, parallel_safe)]
fn rb64_agg_cardinality_final(mut state: Internal) -> Option<i64> {
    state_value_mut::<Gathered<RoaringTreemap>>(&mut state).map(|s| s.set().len() as i64)
}
