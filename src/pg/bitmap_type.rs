//! `segplan.roaringbitmap`: a 32-bit roaring bitmap with pg_roaringbitmap's SQL surface. A value is
//! the portable format itself (see datum.rs); `::bytea` is a binary cast, so a bytea moves between
//! segplan, pg_roaringbitmap and CRoaring unchanged. Cardinality, intersections and membership
//! are read from the bytes (`InPlace`); the other operations decode their arguments.
use super::error::report;
use super::datum::{AsArray, write_text, InPlace, Named, Stored};
use pgrx::prelude::*;
use pgrx::datum::Internal;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use super::agg::{fold, merge, state_value_mut, unpack_state};
use pgrx::{InOutFuncs, PgSqlErrorCode, StringInfo};
use segplan_core::bitmap::{self, Gathered, RoaringBitmap};
use segplan_core::{frozen, ranges};
use std::ffi::CStr;

#[derive(PostgresType, Clone, PartialEq, Debug)]
#[inoutfuncs]
#[bikeshed_postgres_type_manually_impl_from_into_datum]
pub struct Roaringbitmap(RoaringBitmap);

crate::portable_datum!(Roaringbitmap, RoaringBitmap);

/// `segplan.roaringbitmap.output_format`: how a bitmap is written as text.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum OutputFormat {
    #[name = c"array"]
    Array,
    #[name = c"bytea"]
    Bytea,
}

static OUTPUT_FORMAT: GucSetting<OutputFormat> = GucSetting::<OutputFormat>::new(OutputFormat::Array);

/// Whether bitmaps are written as `\x` hex (the setting is `bytea`).
pub fn output_as_bytea() -> bool {
    OUTPUT_FORMAT.get() == OutputFormat::Bytea
}

pub fn register_settings() {
    GucRegistry::define_enum_guc(
        c"segplan.roaringbitmap.output_format",
        c"Text output of roaringbitmap values: array ({1,2,3}) or bytea (the portable format as \\x hex).",
        c"Input accepts both forms whatever the setting.",
        &OUTPUT_FORMAT,
        GucContext::Userset,
        GucFlags::default(),
    );
}

impl InOutFuncs for Roaringbitmap {
    fn input(input: &CStr) -> Self {
        let text = input.to_string_lossy();
        match bitmap::parse_any(&text) {
            Ok(b) => Roaringbitmap(b),
            Err(e) => report(
                PgSqlErrorCode::ERRCODE_INVALID_TEXT_REPRESENTATION,
                &format!("invalid roaringbitmap: {e}"),
                format!("input: {}", text.chars().take(80).collect::<String>()),
                Some("write it like '{1,2,3}' with int4 values, or as \\x followed by the portable bytes in hex".into()),
            ),
        }
    }

    fn output(&self, buffer: &mut StringInfo) {
        write_text(buffer, Self::NAME, self.0.len(), self.0.serialized_size(), || bitmap::to_hex(&self.0), self.0.iter().map(|v| v as i32));
    }
}

type Rb = Roaringbitmap;

fn u(v: i32) -> u32 {
    v as u32
}

/// A bigint bound of the unsigned 32-bit range, clamped to [0, 2^32].
fn bound(v: i64) -> u64 {
    v.clamp(0, 1 << 32) as u64
}

/// [start, end) as an inclusive range of u32 (end may be 2^32); `1..=0` when empty.
fn range(start: i64, end: i64) -> std::ops::RangeInclusive<u32> {
    let (s, e) = (bound(start), bound(end));
    if s >= e { std::ops::RangeInclusive::new(1, 0) } else { s as u32..=(e - 1) as u32 }
}

// ---- bytea ⇄ roaringbitmap (portable format)

#[pg_extern(immutable, parallel_safe, name = "roaringbitmap")]
fn roaringbitmap_from_bytea(bytes: &[u8]) -> Rb {
    match bitmap::from_bytes(bytes) {
        Ok(b) => Roaringbitmap(b),
        Err(e) => report(
            PgSqlErrorCode::ERRCODE_INVALID_BINARY_REPRESENTATION,
            &format!("invalid roaringbitmap bytes: {e}"),
            format!("{} bytes", bytes.len()),
            Some("give the portable roaring format, as pg_roaringbitmap's ::bytea or CRoaring's portable serialization writes it".into()),
        ),
    }
}

// ---- building and reading

#[pg_extern(immutable, parallel_safe)]
fn rb_build(values: Vec<Option<i32>>) -> Rb {
    Roaringbitmap(values.into_iter().flatten().map(u).collect())
}

#[pg_extern(immutable, parallel_safe)]
fn rb_to_array(rb: Rb) -> AsArray<RoaringBitmap> {
    AsArray(rb.0)
}

#[pg_extern(immutable, parallel_safe)]
fn rb_iterate(rb: Rb) -> SetOfIterator<'static, i32> {
    SetOfIterator::new(rb.0.into_iter().map(|v| v as i32))
}

#[pg_extern(immutable, parallel_safe)]
fn rb_cardinality(rb: InPlace<Rb>) -> i64 {
    rb.read(frozen::cardinality) as i64
}

#[pg_extern(immutable, parallel_safe)]
fn rb_is_empty(rb: InPlace<Rb>) -> bool {
    rb.read(frozen::cardinality) == 0
}

#[pg_extern(immutable, parallel_safe)]
fn rb_min(rb: Rb) -> Option<i32> {
    rb.0.min().map(|v| v as i32)
}

#[pg_extern(immutable, parallel_safe)]
fn rb_max(rb: Rb) -> Option<i32> {
    rb.0.max().map(|v| v as i32)
}

/// Number of values ≤ v (in unsigned order).
#[pg_extern(immutable, parallel_safe)]
fn rb_rank(rb: Rb, v: i32) -> i64 {
    rb.0.rank(u(v)) as i64
}

/// 0-based position of v, or -1.
#[pg_extern(immutable, parallel_safe)]
fn rb_index(rb: Rb, v: i32) -> i64 {
    if rb.0.contains(u(v)) { rb.0.rank(u(v)) as i64 - 1 } else { -1 }
}

/// Up to `bitset_limit` values of [range_start, range_end) after skipping `bitset_offset` of
/// them, from the low end (or the high end when `reverse`), as pg_roaringbitmap's rb_select.
#[pg_extern(immutable, parallel_safe)]
fn rb_select(
    rb: Rb,
    bitset_limit: i64,
    bitset_offset: default!(i64, 0),
    reverse: default!(bool, false),
    range_start: default!(i64, 0),
    range_end: default!(i64, 4294967296),
) -> Rb {
    Roaringbitmap(ranges::select(rb.0, &range(range_start, range_end), bitset_offset.max(0) as u64, bitset_limit.max(0) as u64, reverse))
}

/// The same set. pg_roaringbitmap converts containers to run-length form here; the Rust roaring
/// crate stores array and bitmap containers only, so the value (and its size) stays as it is.
#[pg_extern(immutable, parallel_safe)]
fn rb_runoptimize(rb: Rb) -> Rb {
    rb
}

#[pg_extern(immutable, parallel_safe)]
fn rb_jaccard_dist(a: InPlace<Rb>, b: InPlace<Rb>) -> f64 {
    a.read_pair(&b, frozen::overlap).jaccard_dist()
}

// ---- set algebra: functions and their operators

#[pg_operator(immutable, parallel_safe)]
#[opname(&)]
fn rb_and(a: InPlace<Rb>, b: InPlace<Rb>) -> Stored<Rb> {
    Stored::new(a.read_pair(&b, frozen::and))
}

#[pg_operator(immutable, parallel_safe)]
#[opname(|)]
fn rb_or(a: Rb, b: Rb) -> Rb {
    Roaringbitmap(a.0 | b.0)
}

#[pg_operator(immutable, parallel_safe)]
#[opname(#)]
fn rb_xor(a: Rb, b: Rb) -> Rb {
    Roaringbitmap(a.0 ^ b.0)
}

#[pg_operator(immutable, parallel_safe)]
#[opname(-)]
fn rb_andnot(a: Rb, b: Rb) -> Rb {
    Roaringbitmap(a.0 - b.0)
}

#[pg_extern(immutable, parallel_safe)]
fn rb_and_cardinality(a: InPlace<Rb>, b: InPlace<Rb>) -> i64 {
    a.read_pair(&b, frozen::and_cardinality) as i64
}

#[pg_extern(immutable, parallel_safe)]
fn rb_or_cardinality(a: InPlace<Rb>, b: InPlace<Rb>) -> i64 {
    a.read_pair(&b, frozen::overlap).union() as i64
}

#[pg_extern(immutable, parallel_safe)]
fn rb_xor_cardinality(a: InPlace<Rb>, b: InPlace<Rb>) -> i64 {
    a.read_pair(&b, frozen::overlap).xor() as i64
}

#[pg_extern(immutable, parallel_safe)]
fn rb_andnot_cardinality(a: InPlace<Rb>, b: InPlace<Rb>) -> i64 {
    a.read_pair(&b, frozen::overlap).andnot() as i64
}

#[pg_operator(immutable, parallel_safe)]
#[opname(|)]
fn rb_add(rb: Rb, v: i32) -> Rb {
    let mut b = rb.0;
    b.insert(u(v));
    Roaringbitmap(b)
}

#[pg_operator(immutable, parallel_safe)]
#[opname(|)]
fn rb_add_left(v: i32, rb: Rb) -> Rb {
    rb_add(rb, v)
}

#[pg_operator(immutable, parallel_safe)]
#[opname(-)]
fn rb_remove(rb: Rb, v: i32) -> Rb {
    let mut b = rb.0;
    b.remove(u(v));
    Roaringbitmap(b)
}

#[pg_operator(immutable, parallel_safe)]
#[opname(@>)]
fn rb_contains(a: InPlace<Rb>, b: InPlace<Rb>) -> bool {
    a.read_pair(&b, frozen::overlap).contains()
}

#[pg_operator(immutable, parallel_safe, name = "rb_contains")]
#[opname(@>)]
fn rb_contains_value(a: InPlace<Rb>, v: i32, fcinfo: pg_sys::FunctionCallInfo) -> bool {
    holds(&a, v, fcinfo)
}

/// Membership read from the stored bytes (see datum.rs).
fn holds(rb: &InPlace<Rb>, v: i32, fcinfo: pg_sys::FunctionCallInfo) -> bool {
    rb.read_cached(fcinfo, |b| frozen::contains(b, u(v)))
}

#[pg_operator(immutable, parallel_safe)]
#[opname(<@)]
fn rb_containedby(a: InPlace<Rb>, b: InPlace<Rb>) -> bool {
    a.read_pair(&b, frozen::overlap).contained()
}

#[pg_operator(immutable, parallel_safe)]
#[opname(<@)]
fn rb_value_containedby(v: i32, b: InPlace<Rb>, fcinfo: pg_sys::FunctionCallInfo) -> bool {
    holds(&b, v, fcinfo)
}

#[pg_operator(immutable, parallel_safe)]
#[opname(&&)]
fn rb_intersect(a: InPlace<Rb>, b: InPlace<Rb>) -> bool {
    a.read_pair(&b, frozen::intersects)
}

#[pg_operator(immutable, parallel_safe)]
#[opname(=)]
fn rb_equals(a: InPlace<Rb>, b: InPlace<Rb>) -> bool {
    a.read_pair(&b, frozen::overlap).equal()
}

#[pg_operator(immutable, parallel_safe)]
#[opname(<>)]
fn rb_not_equals(a: InPlace<Rb>, b: InPlace<Rb>) -> bool {
    !a.read_pair(&b, frozen::overlap).equal()
}

// ---- ranges over the unsigned values [range_start, range_end)

#[pg_extern(immutable, parallel_safe)]
fn rb_range(rb: Rb, range_start: i64, range_end: i64) -> Rb {
    Roaringbitmap(ranges::within(rb.0, &range(range_start, range_end)))
}

#[pg_extern(immutable, parallel_safe)]
fn rb_range_cardinality(rb: Rb, range_start: i64, range_end: i64) -> i64 {
    rb.0.range_cardinality(range(range_start, range_end)) as i64
}

#[pg_extern(immutable, parallel_safe)]
fn rb_fill(rb: Rb, range_start: i64, range_end: i64) -> Rb {
    let mut b = rb.0;
    b.insert_range(range(range_start, range_end));
    Roaringbitmap(b)
}

#[pg_extern(immutable, parallel_safe)]
fn rb_clear(rb: Rb, range_start: i64, range_end: i64) -> Rb {
    let mut b = rb.0;
    b.remove_range(range(range_start, range_end));
    Roaringbitmap(b)
}

#[pg_extern(immutable, parallel_safe)]
fn rb_flip(rb: Rb, range_start: i64, range_end: i64) -> Rb {
    let mut window = RoaringBitmap::new();
    window.insert_range(range(range_start, range_end));
    Roaringbitmap(rb.0 ^ window)
}

// ---- aggregates (state handling in agg.rs)

// rb_build_agg's step (a C-ABI function, see agg::raw_step): an int4 by value
crate::raw_transition!(segplan_rb_build_trans, pg_finfo_segplan_rb_build_trans, Gathered<RoaringBitmap>, |s, v| {
    s.value.add(u(v.value() as i32));
    s.seen = true;
}, fast = |s, v| s.value.add_in_block(u(v.value() as i32)));

#[pg_extern(immutable, parallel_safe)]
fn rb_or_trans(state: Internal, rb: Option<Rb>, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    fold(state, rb.map(|r| Gathered::from(r.0)), fcinfo, |a, b| *a.set() |= b.into_set())
}

#[pg_extern(immutable, parallel_safe)]
fn rb_and_trans(state: Internal, rb: Option<Rb>, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    fold(state, rb.map(|r| Gathered::from(r.0)), fcinfo, |a, b| *a.set() &= b.into_set())
}

#[pg_extern(immutable, parallel_safe)]
fn rb_xor_trans(state: Internal, rb: Option<Rb>, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    fold(state, rb.map(|r| Gathered::from(r.0)), fcinfo, |a, b| *a.set() ^= b.into_set())
}

#[pg_extern(immutable, parallel_safe)]
fn rb_or_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    merge::<Gathered<RoaringBitmap>>(a, b, fcinfo, |a, b| a.absorb(b))
}

#[pg_extern(immutable, parallel_safe)]
fn rb_and_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    merge::<Gathered<RoaringBitmap>>(a, b, fcinfo, |a, b| *a.set() &= &*b.settled())
}

#[pg_extern(immutable, parallel_safe)]
fn rb_xor_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    merge::<Gathered<RoaringBitmap>>(a, b, fcinfo, |a, b| *a.set() ^= &*b.settled())
}

/// State → bytes for a parallel worker: a "seen" byte, then the portable bitmap.
#[pg_extern(immutable, parallel_safe, strict)]
fn rb_agg_serialize(mut state: Internal) -> Vec<u8> {
    match state_value_mut::<Gathered<RoaringBitmap>>(&mut state) {
        Some(s) => bitmap::append_packed(vec![1u8], s.set()),
        None => vec![0u8],
    }
}

#[pg_extern(immutable, parallel_safe, strict)]
fn rb_agg_deserialize(bytes: &[u8], _unused: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    let restored = match bytes.split_first() {
        Some((1, rest)) => Some(roaringbitmap_from_bytea(&unpack_state(rest)).0),
        _ => None,
    };
    fold(Internal::default(), restored.map(Gathered::from), fcinfo, |a, b| *a.set() |= b.into_set())
}

#[pg_extern(immutable, parallel_safe)]
fn rb_agg_final(mut state: Internal) -> Option<Rb> {
    state_value_mut::<Gathered<RoaringBitmap>>(&mut state).map(|s| Roaringbitmap(s.set().clone()))
}

#[pg_extern(immutable, parallel_safe)]
fn rb_agg_cardinality_final(mut state: Internal) -> Option<i64> {
    state_value_mut::<Gathered<RoaringBitmap>>(&mut state).map(|s| s.set().len() as i64)
}
