//! RFM: recency, frequency and monetary scores (1–5) and the 11 named clusters.
//!
//! Scores, per score and among the contacts with at least one purchase in the window (N of them):
//! `score = 1 + floor(5 × worse / N)` where `worse` is the number of contacts with a strictly
//! worse value (a longer recency, fewer occasions, less spend). Equal values have equal `worse`,
//! so ties never get different scores; with distinct values each score holds a fifth of the
//! contacts. In SQL `worse` is `rank() - 1` over the values ordered worst first.
//!
//! Clusters are a grid over R and the average of F and M (`fm`, 1 to 5 in steps of ½), given
//! below as rectangles; every one of the 125 (r, f, m) combinations is in exactly one.
use crate::numeric::Decimal;
use crate::rule::Score;
use rustc_hash::{FxBuildHasher, FxHashMap};
use std::hash::BuildHasher;
use std::collections::hash_map::Entry;
use std::hash::Hash;

/// One rectangle of the grid: r from `r.0` to `r.1`, f + m from `fm2.0` to `fm2.1` (inclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Cell {
    pub cluster: &'static str,
    pub r: (i32, i32),
    /// f + m, i.e. twice the average of f and m
    pub fm2: (i32, i32),
}

/// The clusters in display order, each with what marketers usually do with them.
pub const CLUSTERS: &[(&str, &str)] = &[
    ("champions", "bought recently, buy often and spend the most: reward them"),
    ("loyal_customers", "buy regularly and spend well: upsell, ask for reviews"),
    ("potential_loyalists", "recent customers with average frequency and spend: offer membership"),
    ("new_customers", "bought most recently, but not often: onboard them"),
    ("promising", "recent shoppers who have not spent much: build the habit"),
    ("need_attention", "above average recency, frequency and spend: limited-time offers"),
    ("about_to_sleep", "below average recency and frequency: reactivate before they go"),
    ("at_risk", "spent big and often, but long ago: win them back"),
    ("cant_lose_them", "made the biggest and most frequent purchases, long ago: personal outreach"),
    ("hibernating", "last purchase long ago, low spend and few orders: relevant offers only"),
    ("lost", "lowest recency, frequency and spend: let them go or try once more"),
];

pub const GRID: &[Cell] = &[
    Cell { cluster: "champions", r: (4, 5), fm2: (8, 10) },
    Cell { cluster: "loyal_customers", r: (3, 5), fm2: (6, 7) },
    Cell { cluster: "loyal_customers", r: (3, 3), fm2: (8, 10) },
    Cell { cluster: "potential_loyalists", r: (4, 5), fm2: (4, 5) },
    Cell { cluster: "new_customers", r: (5, 5), fm2: (2, 3) },
    Cell { cluster: "promising", r: (4, 4), fm2: (2, 3) },
    Cell { cluster: "need_attention", r: (3, 3), fm2: (4, 5) },
    Cell { cluster: "about_to_sleep", r: (3, 3), fm2: (2, 3) },
    Cell { cluster: "at_risk", r: (2, 2), fm2: (6, 10) },
    Cell { cluster: "at_risk", r: (1, 1), fm2: (6, 7) },
    Cell { cluster: "cant_lose_them", r: (1, 1), fm2: (8, 10) },
    Cell { cluster: "hibernating", r: (2, 2), fm2: (2, 5) },
    Cell { cluster: "hibernating", r: (1, 1), fm2: (4, 5) },
    Cell { cluster: "lost", r: (1, 1), fm2: (2, 3) },
];

pub fn is_cluster(name: &str) -> bool {
    CLUSTERS.iter().any(|(n, _)| *n == name)
}

pub fn cluster_names() -> impl Iterator<Item = &'static str> {
    CLUSTERS.iter().map(|(n, _)| *n)
}

/// The cluster of scores (r, f, m), each 1–5.
pub fn cluster(r: i32, f: i32, m: i32) -> Option<&'static str> {
    GRID.iter().find(|c| (c.r.0..=c.r.1).contains(&r) && (c.fm2.0..=c.fm2.1).contains(&(f + m))).map(|c| c.cluster)
}

/// The grid as a SQL `CASE` over columns `r` and `f + m` of alias `s` (no user values in it).
pub fn cluster_case(alias: &str) -> String {
    let whens: Vec<String> = GRID
        .iter()
        .map(|c| format!(
            "WHEN {alias}.r BETWEEN {} AND {} AND {alias}.f + {alias}.m BETWEEN {} AND {} THEN '{}'",
            c.r.0, c.r.1, c.fm2.0, c.fm2.1, c.cluster
        ))
        .collect();
    format!("CASE {} END", whens.join(" "))
}

/// The score as SQL over alias `s`, and the factor its compared value is multiplied by.
pub fn score_sql(score: Score, alias: &str) -> (String, i32) {
    match score {
        Score::R => (format!("{alias}.r"), 1),
        Score::F => (format!("{alias}.f"), 1),
        Score::M => (format!("{alias}.m"), 1),
        Score::Fm => (format!("({alias}.f + {alias}.m)"), 2),
    }
}

/// The score from the number of contacts with a worse value and the number scored.
pub fn quintile(worse: u64, n: u64) -> i32 {
    if n == 0 { 0 } else { 1 + (5 * worse / n) as i32 }
}

/// One contact's purchases in the window: the day of the last one, the number of occasions and
/// the amount total in units of the state's scale (NULL amounts add nothing), with the display
/// scale `sum()` would give it (the largest among its own amounts). Kept small — the total as two
/// words, not an `i128` with its 16-byte alignment, and the display scale in the occasions' top
/// byte: millions of them are updated in random order, so the bytes per contact decide the speed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Totals {
    pub last_day: i32,
    /// occasions (low 24 bits, saturating) and display scale (high 8 bits)
    packed: u32,
    units: [u64; 2],
}

/// Occasions per contact saturate here (16.7 million).
pub const MAX_OCCASIONS: u32 = (1 << 24) - 1;

impl Totals {
    pub fn new(last_day: i32, occasions: u32, units: i128, display_scale: u8) -> Totals {
        let mut t = Totals { last_day, packed: occasions.min(MAX_OCCASIONS) | (u32::from(display_scale) << 24), units: [0; 2] };
        t.set_units(units);
        t
    }
    pub fn occasions(&self) -> u32 {
        self.packed & MAX_OCCASIONS
    }
    pub fn display_scale(&self) -> u8 {
        (self.packed >> 24) as u8
    }
    pub fn units(&self) -> i128 {
        ((u128::from(self.units[1]) << 64) | u128::from(self.units[0])) as i128
    }
    fn set_units(&mut self, v: i128) {
        self.units = [v as u128 as u64, ((v as u128) >> 64) as u64];
    }
    /// Adds `other` (same scale); `None` when the amount overflows.
    fn absorb(&mut self, other: &Totals) -> Option<()> {
        self.last_day = self.last_day.max(other.last_day);
        let occasions = (self.occasions() + other.occasions()).min(MAX_OCCASIONS);
        self.packed = occasions | (u32::from(self.display_scale().max(other.display_scale())) << 24);
        self.set_units(self.units().checked_add(other.units())?);
        Some(())
    }
}

/// The amount total of a contact no longer fits 38 digits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AmountOverflow<K>(pub K);

/// Purchases folded per contact (the RFM aggregate's state), in one pass over the purchases. All
/// totals share one scale, the largest among the amounts seen (raised, rarely, as they come).
///
/// Purchases arrive in no particular order of contact, and a hash table of millions of contacts
/// costs a cache miss or two per purchase. So each purchase is first appended to one of
/// [`PARTS`] buffers chosen by the contact's hash, and a full buffer is folded into its own part's
/// table, which is small enough to stay in the CPU cache while it is updated.
#[derive(Debug, Clone)]
pub struct Purchases<K> {
    pub scale: u16,
    parts: Vec<Part<K>>,
}

#[derive(Debug, Clone)]
struct Part<K> {
    pending: Vec<(K, Totals)>,
    totals: FxHashMap<K, Totals>,
}

const PARTS: usize = 256;
const PENDING: usize = 1024;

impl<K> Default for Purchases<K> {
    fn default() -> Self {
        Purchases { scale: 0, parts: Vec::new() }
    }
}

impl<K: Hash + Eq + Clone> Purchases<K> {
    /// An empty state whose totals are in units of 10^−`scale`.
    pub fn with_scale(scale: u16) -> Self {
        Purchases { scale, parts: Vec::new() }
    }

    pub fn add(&mut self, contact: K, day: i32, occasions: u32, amount: Option<Decimal>) -> Result<(), AmountOverflow<K>> {
        let (units, display) = match amount {
            Some(a) => {
                // more digits than the state has: raise the state's scale first
                if a.scale > self.scale {
                    self.raise_scale(a.scale)?;
                }
                (a.rescaled(self.scale).ok_or_else(|| AmountOverflow(contact.clone()))?.units, a.scale as u8)
            }
            None => (0, 0),
        };
        self.push(contact, Totals::new(day, occasions, units, display))
    }

    /// Adds one contact's totals (already at the state's scale).
    pub fn push(&mut self, contact: K, t: Totals) -> Result<(), AmountOverflow<K>> {
        if self.parts.is_empty() {
            self.parts = (0..PARTS).map(|_| Part { pending: Vec::new(), totals: FxHashMap::default() }).collect();
        }
        let part = &mut self.parts[(FxBuildHasher.hash_one(&contact) >> (64 - PARTS.trailing_zeros())) as usize];
        if part.pending.capacity() == 0 {
            part.pending.reserve_exact(PENDING);
        }
        part.pending.push((contact, t));
        if part.pending.len() >= PENDING {
            part.fold()?;
        }
        Ok(())
    }

    /// Folds every buffered purchase into the tables.
    pub fn fold(&mut self) -> Result<(), AmountOverflow<K>> {
        self.parts.iter_mut().try_for_each(Part::fold)
    }

    /// Rescales every total to `scale`; on overflow, names the contact whose total does not fit.
    pub fn raise_scale(&mut self, scale: u16) -> Result<(), AmountOverflow<K>> {
        self.fold()?;
        let from = self.scale;
        for (k, t) in self.parts.iter_mut().flat_map(|p| p.totals.iter_mut()) {
            let d = Decimal { units: t.units(), scale: from }.rescaled(scale).ok_or_else(|| AmountOverflow(k.clone()))?;
            t.set_units(d.units);
        }
        self.scale = scale;
        Ok(())
    }

    /// Every contact's totals (after [`Purchases::fold`]).
    pub fn totals(&self) -> impl Iterator<Item = (&K, &Totals)> {
        debug_assert!(self.parts.iter().all(|p| p.pending.is_empty()));
        self.parts.iter().flat_map(|p| p.totals.iter())
    }

    /// The contacts and their totals, as two lists in the same order.
    pub fn into_lists(mut self) -> Result<(Vec<K>, Vec<Totals>), AmountOverflow<K>> {
        self.fold()?;
        Ok(self.parts.into_iter().flat_map(|p| p.totals).unzip())
    }

    pub fn len(&self) -> usize {
        self.parts.iter().map(|p| p.totals.len()).sum()
    }

    /// Folds another partial state in (parallel aggregation), leaving it as it is.
    pub fn merge(&mut self, other: &Purchases<K>) -> Result<(), AmountOverflow<K>> {
        if other.scale > self.scale {
            self.raise_scale(other.scale)?;
        }
        let factor = Decimal { units: 1, scale: other.scale }.rescaled(self.scale).map(|d| d.units);
        let entries = other.parts.iter().flat_map(|p| p.pending.iter().map(|(k, t)| (k, t)).chain(p.totals.iter()));
        for (k, t) in entries {
            let units = factor.and_then(|f| t.units().checked_mul(f)).ok_or_else(|| AmountOverflow(k.clone()))?;
            self.push(k.clone(), Totals::new(t.last_day, t.occasions(), units, t.display_scale()))?;
        }
        Ok(())
    }
}

impl<K: Hash + Eq + Clone> Part<K> {
    fn fold(&mut self) -> Result<(), AmountOverflow<K>> {
        for (k, t) in self.pending.drain(..) {
            match self.totals.entry(k) {
                Entry::Occupied(mut have) => have.get_mut().absorb(&t).ok_or_else(|| AmountOverflow(have.key().clone()))?,
                Entry::Vacant(v) => {
                    v.insert(t);
                }
            }
        }
        Ok(())
    }
}

/// The amount total of `t`, whose units are at `scale`, at its display scale (exact: none of its
/// amounts had more digits).
pub fn amount(t: &Totals, scale: u16) -> Decimal {
    let display = u16::from(t.display_scale()).min(scale);
    Decimal { units: t.units() / 10i128.pow(u32::from(scale - display)), scale: display }
}

/// A scored contact: recency in days, the three scores and the cluster.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Scores {
    pub recency_days: i32,
    pub r: i32,
    pub f: i32,
    pub m: i32,
    pub cluster: &'static str,
}

/// For each value, the number of values strictly less than it (ties share it).
fn less_than<T: Ord + Copy>(values: impl Iterator<Item = T>) -> Vec<u64> {
    let mut sorted: Vec<(T, u32)> = values.enumerate().map(|(i, v)| (v, i as u32)).collect();
    sorted.sort_unstable();
    let mut less = vec![0u64; sorted.len()];
    let mut first = 0;
    for (pos, (v, i)) in sorted.iter().enumerate() {
        if pos > 0 && sorted[pos - 1].0 != *v {
            first = pos;
        }
        less[*i as usize] = first as u64;
    }
    less
}

/// Scores every contact as of `day` (see the method at the top of this module); the totals share
/// one scale, so their amounts rank exactly as integers.
pub fn score(totals: &[Totals], day: i32) -> Vec<Scores> {
    let n = totals.len() as u64;
    // worse: a longer recency (an earlier last day), fewer occasions, less spent
    let r = less_than(totals.iter().map(|t| t.last_day));
    let f = less_than(totals.iter().map(|t| t.occasions()));
    let m = less_than(totals.iter().map(|t| t.units()));
    totals
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let (r, f, m) = (quintile(r[i], n), quintile(f[i], n), quintile(m[i], n));
            Scores { recency_days: day - t.last_day, r, f, m, cluster: cluster(r, f, m).expect("the grid covers every score") }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_combination_is_in_exactly_one_cell() {
        for r in 1..=5 {
            for f in 1..=5 {
                for m in 1..=5 {
                    let n = GRID.iter().filter(|c| (c.r.0..=c.r.1).contains(&r) && (c.fm2.0..=c.fm2.1).contains(&(f + m))).count();
                    assert_eq!(n, 1, "r={r} f={f} m={m}");
                }
            }
        }
    }

    #[test]
    fn every_cluster_is_reachable_and_every_cell_named() {
        for (name, _) in CLUSTERS {
            assert!(GRID.iter().any(|c| c.cluster == *name), "{name} has no cell");
        }
        for c in GRID {
            assert!(is_cluster(c.cluster), "{} is not a cluster", c.cluster);
        }
        assert_eq!(CLUSTERS.len(), 11);
    }

    #[test]
    fn corners() {
        assert_eq!(cluster(5, 5, 5), Some("champions"));
        assert_eq!(cluster(5, 1, 1), Some("new_customers"));
        assert_eq!(cluster(1, 1, 1), Some("lost"));
        assert_eq!(cluster(1, 5, 5), Some("cant_lose_them"));
        assert_eq!(cluster(2, 5, 5), Some("at_risk"));
        assert_eq!(cluster(3, 2, 3), Some("need_attention"));
        assert_eq!(cluster(4, 1, 2), Some("promising"));
        assert_eq!(cluster(0, 1, 1), None);
    }

    #[test]
    fn quintiles_split_distinct_values_in_fifths_and_keep_ties_together() {
        let scores: Vec<i32> = (0..10).map(|w| quintile(w, 10)).collect();
        assert_eq!(scores, vec![1, 1, 2, 2, 3, 3, 4, 4, 5, 5]);
        // a single contact, or all tied: nobody is worse, so everyone gets 1
        assert_eq!(quintile(0, 1), 1);
        // six tied at the bottom of ten: all six get 1, the next one 1 + floor(5·6/10) = 4
        assert_eq!(quintile(6, 10), 4);
    }

    fn dec(units: i128, scale: u16) -> Option<Decimal> {
        Some(Decimal { units, scale })
    }

    #[test]
    fn totals_keep_any_i128() {
        for v in [0, 1, -1, i128::MAX, i128::MIN, 1 << 64, -(1 << 64) + 3] {
            let t = Totals::new(1, 7, v, 38);
            assert_eq!((t.units(), t.occasions(), t.display_scale()), (v, 7, 38));
        }
        // occasions saturate instead of spilling into the display scale
        let mut t = Totals::new(1, MAX_OCCASIONS, 0, 2);
        t.absorb(&Totals::new(3, 5, 1, 3)).unwrap();
        assert_eq!((t.last_day, t.occasions(), t.display_scale(), t.units()), (3, MAX_OCCASIONS, 3, 1));
        assert_eq!(Totals::new(1, u32::MAX, 0, 0).occasions(), MAX_OCCASIONS);
    }

    #[test]
    fn scores_follow_the_definition_on_ties_and_mixed_scales() {
        // 0.1 + 0.2 (scale 1) ties with 0.300 (scale 3): exact sums, equal scores
        let mut p = Purchases::default();
        p.add(1u32, 100, 1, dec(1, 1)).unwrap();
        p.add(1u32, 90, 1, dec(2, 1)).unwrap();
        p.add(2u32, 100, 2, dec(300, 3)).unwrap();
        p.add(3u32, 50, 1, None).unwrap();
        assert_eq!(p.scale, 3);
        p.fold().unwrap();
        let mut rows: Vec<_> = p.totals().map(|(k, t)| (*k, *t)).collect();
        rows.sort_by_key(|(k, _)| *k);
        assert_eq!(rows[0].1, Totals::new(100, 2, 300, 1));
        // shown as sum() shows them: 0.1 + 0.2 is 0.3, 0.300 stays 0.300
        assert_eq!(amount(&rows[0].1, p.scale), Decimal { units: 3, scale: 1 });
        assert_eq!(amount(&rows[1].1, p.scale), Decimal { units: 300, scale: 3 });
        assert_eq!(amount(&rows[2].1, p.scale), Decimal { units: 0, scale: 0 });
        let totals: Vec<Totals> = rows.iter().map(|(_, t)| *t).collect();
        let s = score(&totals, 110);
        assert_eq!((s[0].recency_days, s[0].m), (10, s[1].m));
        assert_eq!((s[0].r, s[0].f), (s[1].r, s[1].f));
        // contact 3: oldest (r 1), one occasion like nobody fewer (f 1), nothing spent (m 1)
        assert_eq!((s[2].recency_days, s[2].r, s[2].f, s[2].m, s[2].cluster), (60, 1, 1, 1, "lost"));
        assert_eq!((s[0].r, s[0].f, s[0].m), (2, 2, 2));
        assert_eq!(score(&[], 0), vec![]);
    }

    #[test]
    fn amounts_beyond_38_digits_are_refused_with_the_contact() {
        let mut p = Purchases::default();
        p.add("a", 1, 1, dec(i128::MAX - 5, 0)).unwrap();
        // buffered: the overflow shows when the buffer is folded (at the latest, at the end)
        p.add("a", 1, 1, dec(10, 0)).unwrap();
        assert_eq!(p.fold(), Err(AmountOverflow("a")));
        // each fits, but not at the common scale: raising the scale names the contact that overflows
        let mut p = Purchases::default();
        p.add("big", 1, 1, dec(i128::MAX / 2, 0)).unwrap();
        assert_eq!(p.add("small", 1, 1, dec(1, 10)), Err(AmountOverflow("big")));
        let mut q = Purchases::default();
        q.add("other", 1, 1, dec(1, 10)).unwrap();
        let mut p = Purchases::default();
        p.add("big", 1, 1, dec(i128::MAX / 2, 0)).unwrap();
        assert_eq!(p.merge(&q), Err(AmountOverflow("big")));
    }

    #[test]
    fn buffered_folding_equals_a_plain_table() {
        // enough purchases to fill the buffers many times over, and a scale raised half-way
        let mut p = Purchases::default();
        let mut plain: std::collections::HashMap<u64, (i32, u32, i128)> = Default::default();
        let mut x = 0x9E37_79B9_7F4A_7C15u64;
        for i in 0..300_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let (k, day, cents) = (x % 5_000, (x >> 20) as i32 % 700, (x >> 40) as i128 % 100_000);
            let scale = if i < 150_000 { 2 } else { 3 };
            let amount = if scale == 2 { cents } else { cents * 10 + 7 };
            p.add(k, day, 1, dec(amount, scale)).unwrap();
            let e = plain.entry(k).or_insert((i32::MIN, 0, 0));
            *e = (e.0.max(day), e.1 + 1, e.2 + if scale == 2 { cents * 10 } else { amount });
        }
        p.fold().unwrap();
        assert_eq!((p.len(), p.scale), (plain.len(), 3));
        for (k, t) in p.totals() {
            assert_eq!((t.last_day, t.occasions(), t.units()), plain[k], "contact {k}");
        }
    }

    proptest::proptest! {
        #[test]
        fn scores_equal_the_counting_definition(rows in proptest::collection::vec((0i32..20, 1u32..6, -50i128..50, 0u16..3), 1..60)) {
            // one purchase per contact, amounts at mixed scales: the state aligns them
            let mut p = Purchases::default();
            for (i, &(d, o, u, sc)) in rows.iter().enumerate() {
                p.add(i, d, o, dec(u, sc)).unwrap();
            }
            let (keys, totals) = p.into_lists().unwrap();
            let s = score(&totals, 30);
            let rows: Vec<_> = keys.iter().map(|&i| rows[i]).collect();
            let n = totals.len() as u64;
            let value = |&(_, _, u, sc): &(i32, u32, i128, u16)| u * 10i128.pow(u32::from(2 - sc));
            for (i, a) in rows.iter().enumerate() {
                let worse_r = rows.iter().filter(|b| b.0 < a.0).count() as u64;
                let worse_f = rows.iter().filter(|b| b.1 < a.1).count() as u64;
                let worse_m = rows.iter().filter(|b| value(b) < value(a)).count() as u64;
                proptest::prop_assert_eq!((s[i].r, s[i].f, s[i].m), (quintile(worse_r, n), quintile(worse_f, n), quintile(worse_m, n)));
                proptest::prop_assert_eq!(s[i].recency_days, 30 - a.0);
                proptest::prop_assert_eq!(Some(s[i].cluster), cluster(s[i].r, s[i].f, s[i].m));
            }
        }

        #[test]
        fn merging_partial_states_equals_one_pass(rows in proptest::collection::vec((0u8..8, 0i32..20, -50i128..50), 0..60), cut in 0usize..60) {
            let (mut one, mut a, mut b) = (Purchases::default(), Purchases::default(), Purchases::default());
            for (i, &(k, d, u)) in rows.iter().enumerate() {
                let amount = dec(u, (i % 3) as u16);
                one.add(k, d, 1, amount).unwrap();
                if i < cut { a.add(k, d, 1, amount).unwrap() } else { b.add(k, d, 1, amount).unwrap() }
            }
            a.merge(&b).unwrap();
            a.fold().unwrap();
            one.fold().unwrap();
            proptest::prop_assert_eq!(a.len(), one.len());
            let merged: FxHashMap<u8, Totals> = a.totals().map(|(k, t)| (*k, *t)).collect();
            for (k, t) in one.totals() {
                let m = merged[k];
                proptest::prop_assert_eq!((m.last_day, m.occasions()), (t.last_day, t.occasions()));
                proptest::prop_assert_eq!(amount(&m, a.scale), amount(t, one.scale));
            }
        }
    }
}
