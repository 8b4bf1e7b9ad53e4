//! Range operations on bitmaps that never build the range itself (`rb_range`, `rb_clear`,
//! `rb_range_cardinality`, `rb_select` over [0, 2^64) cost what the bitmap holds, not what the
//! range spans), and the limit on what a bitmap may take in memory: the Rust roaring crate keeps
//! no run containers, so a range of values costs up to 8 KiB per 65536 of them, and a 64-bit
//! range or a few bytes of run containers can ask for more memory than the machine has.
use crate::bitmap::{RoaringBitmap, RoaringTreemap};
use std::ops::{Bound, RangeInclusive};

/// What a bitmap may take in memory (as a value may take on disk).
pub const MAX_BYTES: u64 = 1 << 30;

/// What one container of 65536 values takes in memory at most (a bitset).
const CONTAINER_BYTES: u64 = 8192;

/// The memory a bitmap holding every value of `r` would take at most: 8 KiB per container the
/// range touches.
pub fn range_bytes(r: &RangeInclusive<u64>) -> u64 {
    ((r.end() >> 16) - (r.start() >> 16)).saturating_add(1).saturating_mul(CONTAINER_BYTES)
}

/// A bitmap type whose values are ordered and ranked (the 32-bit and the 64-bit bitmap).
pub trait Ranked: Clone {
    type V: Copy + Ord + TryFrom<u64> + Into<u64>;
    /// How many values are ≤ `v`.
    fn rank_of(&self, v: Self::V) -> u64;
    /// The value at position `n` (from 0).
    fn nth(&self, n: u64) -> Option<Self::V>;
    fn drop_range(&mut self, r: (Bound<Self::V>, Bound<Self::V>));
}

impl Ranked for RoaringBitmap {
    type V = u32;
    fn rank_of(&self, v: u32) -> u64 {
        self.rank(v)
    }
    fn nth(&self, n: u64) -> Option<u32> {
        self.select(u32::try_from(n).ok()?)
    }
    fn drop_range(&mut self, r: (Bound<u32>, Bound<u32>)) {
        self.remove_range(r);
    }
}

impl Ranked for RoaringTreemap {
    type V = u64;
    fn rank_of(&self, v: u64) -> u64 {
        self.rank(v)
    }
    fn nth(&self, n: u64) -> Option<u64> {
        self.select(n)
    }
    fn drop_range(&mut self, r: (Bound<u64>, Bound<u64>)) {
        self.remove_range(r);
    }
}

/// How many values of `b` are in `r`.
pub fn count_in<B: Ranked>(b: &B, r: &RangeInclusive<B::V>) -> u64 {
    if r.start() > r.end() {
        return 0;
    }
    b.rank_of(*r.end()) - below(b, *r.start())
}

/// How many values of `b` are < `v`.
fn below<B: Ranked>(b: &B, v: B::V) -> u64 {
    match Into::<u64>::into(v).checked_sub(1).and_then(|p| B::V::try_from(p).ok()) {
        Some(p) => b.rank_of(p),
        None => 0,
    }
}

/// The values of `b` in `r`.
pub fn within<B: Ranked>(mut b: B, r: &RangeInclusive<B::V>) -> B {
    b.drop_range((Bound::Unbounded, Bound::Excluded(*r.start())));
    b.drop_range((Bound::Excluded(*r.end()), Bound::Unbounded));
    b
}

/// pg_roaringbitmap's `rb_select`: up to `take` of the values of `b` in `r` after skipping `skip`
/// of them, from the low end (the high end when `reverse`). Found by rank.
pub fn select<B: Ranked + Default>(b: B, r: &RangeInclusive<B::V>, skip: u64, take: u64, reverse: bool) -> B {
    if r.start() > r.end() {
        return B::default();
    }
    let (low, high) = (below(&b, *r.start()), b.rank_of(*r.end()));
    let (first, end) = if reverse {
        let end = high.saturating_sub(skip).max(low);
        (end.saturating_sub(take).max(low), end)
    } else {
        let first = low.saturating_add(skip).min(high);
        (first, first.saturating_add(take).min(high))
    };
    match (first < end).then(|| (b.nth(first), b.nth(end - 1))) {
        Some((Some(lo), Some(hi))) => within(b, &(lo..=hi)),
        _ => B::default(),
    }
}

/// `{1,2,3}` of `values`, or `None` once the text would pass `max` bytes; `tick` runs every 65536
/// values (the caller checks for cancel there).
pub fn format_list<T: std::fmt::Display>(values: impl Iterator<Item = T>, max: usize, tick: &mut dyn FnMut()) -> Option<String> {
    use std::fmt::Write;
    let mut out = String::from("{");
    for (i, v) in values.enumerate() {
        if i > 0 {
            out.push(',');
        }
        if i % 65536 == 65535 {
            tick();
        }
        let _ = write!(out, "{v}");
        if out.len() >= max {
            return None;
        }
    }
    out.push('}');
    (out.len() <= max).then_some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn naive_select(values: &[u64], r: &RangeInclusive<u64>, skip: usize, take: usize, reverse: bool) -> Vec<u64> {
        let inside: Vec<u64> = values.iter().copied().filter(|v| r.contains(v)).collect();
        let mut out: Vec<u64> = if reverse { inside.into_iter().rev().skip(skip).take(take).collect() } else { inside.into_iter().skip(skip).take(take).collect() };
        out.sort();
        out
    }

    #[test]
    fn the_whole_64_bit_range_costs_nothing() {
        let b: RoaringTreemap = [0, 7, u64::MAX].into_iter().collect();
        let all = 0..=u64::MAX;
        assert_eq!(count_in(&b, &all), 3);
        assert_eq!(within(b.clone(), &all), b);
        assert_eq!(select(b.clone(), &all, 1, 1, true).iter().collect::<Vec<_>>(), [7]);
        assert_eq!(select(b.clone(), &all, 0, u64::MAX, false), b);
        assert_eq!(range_bytes(&all), (1u64 << 48) * 8192);
        assert_eq!(range_bytes(&(5..=5)), 8192);
        assert_eq!(range_bytes(&(65535..=65536)), 16384);
        let b32: RoaringBitmap = [0, u32::MAX].into_iter().collect();
        assert_eq!(count_in(&b32, &(0..=u32::MAX)), 2);
        assert_eq!(select(b32, &(1..=u32::MAX), 0, 5, false).iter().collect::<Vec<_>>(), [u32::MAX]);
    }

    #[test]
    fn text_stops_at_its_limit() {
        let mut ticks = 0;
        assert_eq!(format_list([1, 22, 333].into_iter(), 10, &mut || ticks += 1).as_deref(), Some("{1,22,333}"));
        assert_eq!(format_list([1, 22, 333].into_iter(), 9, &mut || ticks += 1), None);
        assert_eq!(format_list(std::iter::empty::<u32>(), 2, &mut || ticks += 1).as_deref(), Some("{}"));
        assert_eq!(ticks, 0);
        let digits: usize = (0..200_000u32).map(|v| v.to_string().len()).sum();
        assert_eq!(format_list(0..200_000u32, usize::MAX, &mut || ticks += 1).map(|s| s.len()), Some(digits + 199_999 + 2));
        assert_eq!(ticks, 3);
    }

    proptest! {
        #[test]
        fn range_operations_match_the_values(values in prop::collection::vec(prop_oneof![0u64..300_000, any::<u64>()], 0..400),
                                             a in prop_oneof![0u64..300_000, any::<u64>()], b in prop_oneof![0u64..300_000, any::<u64>()],
                                             skip in prop_oneof![0usize..5, 0usize..500], take in prop_oneof![0usize..5, 0usize..500], reverse in any::<bool>()) {
            let bm: RoaringTreemap = values.iter().copied().collect();
            let sorted: Vec<u64> = bm.iter().collect();
            let r = a.min(b)..=a.max(b);
            let inside: Vec<u64> = sorted.iter().copied().filter(|v| r.contains(v)).collect();
            prop_assert_eq!(count_in(&bm, &r), inside.len() as u64);
            prop_assert_eq!(within(bm.clone(), &r).iter().collect::<Vec<_>>(), inside);
            prop_assert_eq!(select(bm.clone(), &r, skip as u64, take as u64, reverse).iter().collect::<Vec<_>>(), naive_select(&sorted, &r, skip, take, reverse));
            let empty = a.max(b)..=a.min(b);
            if a != b {
                prop_assert_eq!(count_in(&bm, &empty), 0);
                prop_assert!(select(bm.clone(), &empty, 0, 9, false).is_empty());
            }
            let b32: RoaringBitmap = sorted.iter().map(|v| *v as u32).collect();
            let sorted32: Vec<u64> = b32.iter().map(u64::from).collect();
            let r32 = (a.min(b) as u32).min(a.max(b) as u32)..=(a.min(b) as u32).max(a.max(b) as u32);
            let r64 = u64::from(*r32.start())..=u64::from(*r32.end());
            prop_assert_eq!(count_in(&b32, &r32), sorted32.iter().filter(|v| r64.contains(v)).count() as u64);
            prop_assert_eq!(select(b32, &r32, skip as u64, take as u64, reverse).iter().map(u64::from).collect::<Vec<_>>(), naive_select(&sorted32, &r64, skip, take, reverse));
        }
    }
}
