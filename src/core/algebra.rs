//! Bitmap algebra: a rule's groups evaluated over the bitmaps of its leaf conditions.
//!
//! Semantics match the SQL path exactly: a leaf's bitmap holds the contacts for which the
//! condition is true; `not` is "all contacts minus", so a contact whose value is NULL (the
//! condition is not true) is in `not`. Every result is intersected with the universe of
//! contacts, because event rows may name contacts that are not (or not visibly) contacts.
use roaring::RoaringTreemap;

#[derive(Debug, Clone, PartialEq)]
pub enum Expr {
    All(Vec<Expr>),
    Any(Vec<Expr>),
    Not(Box<Expr>),
    /// index into the plan's leaves
    Leaf(usize),
}

impl Expr {
    /// `not e`, with double negations removed.
    pub fn not(e: Expr) -> Expr {
        match e {
            Expr::Not(x) => *x,
            e => Expr::Not(Box::new(e)),
        }
    }

    /// Indexes of the leaves this expression reads.
    pub fn leaves(&self, out: &mut Vec<usize>) {
        match self {
            Expr::All(xs) | Expr::Any(xs) => xs.iter().for_each(|x| x.leaves(out)),
            Expr::Not(x) => x.leaves(out),
            Expr::Leaf(i) => out.push(*i),
        }
    }
}

/// Whether `e` needs the universe itself: for a `not` (all contacts minus) or a group of no
/// conditions (all contacts). Without either, `e` lies within the union of its leaves.
pub fn needs_universe(e: &Expr) -> bool {
    match e {
        Expr::Leaf(_) => false,
        Expr::Not(_) => true,
        Expr::Any(xs) => xs.iter().any(needs_universe),
        Expr::All(xs) => xs.is_empty() || xs.iter().any(needs_universe),
    }
}

/// The contacts matching `e`, given every leaf's bitmap and the universe — `None` when every leaf
/// holds contacts only and `e` does not need it ([`needs_universe`]; were it needed after all, it
/// would be taken as empty).
pub fn eval(e: &Expr, leaves: &[&RoaringTreemap], universe: Option<&RoaringTreemap>) -> RoaringTreemap {
    let empty = RoaringTreemap::new();
    let mut r = raw(e, leaves, universe.unwrap_or(&empty));
    if let Some(u) = universe {
        r &= u;
    }
    r
}

/// Number of contacts matching `e` (the intersection with the universe is never built).
pub fn count(e: &Expr, leaves: &[&RoaringTreemap], universe: Option<&RoaringTreemap>) -> u64 {
    let Some(universe) = universe else {
        return match e {
            Expr::Leaf(i) => leaves[*i].len(),
            e => raw(e, leaves, &RoaringTreemap::new()).len(),
        };
    };
    match e {
        Expr::Leaf(i) => leaves[*i].intersection_len(universe),
        Expr::Not(x) => universe.difference_len(&raw(x, leaves, universe)),
        e => raw(e, leaves, universe).intersection_len(universe),
    }
}

/// `e` evaluated without the final intersection (it may hold non-contacts when no `not` bounded it).
fn raw(e: &Expr, leaves: &[&RoaringTreemap], universe: &RoaringTreemap) -> RoaringTreemap {
    match e {
        Expr::Leaf(i) => leaves[*i].clone(),
        Expr::Not(x) => universe - &raw(x, leaves, universe),
        Expr::Any(xs) => {
            let mut acc = RoaringTreemap::new();
            for x in xs {
                acc |= raw(x, leaves, universe);
            }
            acc
        }
        Expr::All(xs) => {
            // intersect the positive parts smallest first, then remove the negated ones
            let (neg, pos): (Vec<&Expr>, Vec<&Expr>) = xs.iter().partition(|x| matches!(x, Expr::Not(_)));
            let mut pos: Vec<RoaringTreemap> = pos.into_iter().map(|x| raw(x, leaves, universe)).collect();
            pos.sort_by_key(|b| b.len());
            let mut it = pos.into_iter();
            let mut acc = match it.next() {
                Some(first) => first,
                None => universe.clone(),
            };
            for b in it {
                if acc.is_empty() {
                    break;
                }
                acc &= b;
            }
            for n in neg {
                if let Expr::Not(inner) = n {
                    acc -= raw(inner, leaves, universe);
                }
            }
            acc
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeSet;

    fn leaf(i: usize) -> Expr {
        Expr::Leaf(i)
    }

    /// Reference semantics on plain sets, contact by contact.
    fn holds(e: &Expr, sets: &[BTreeSet<u64>], x: u64) -> bool {
        match e {
            Expr::All(xs) => xs.iter().all(|y| holds(y, sets, x)),
            Expr::Any(xs) => xs.iter().any(|y| holds(y, sets, x)),
            Expr::Not(y) => !holds(y, sets, x),
            Expr::Leaf(i) => sets[*i].contains(&x),
        }
    }

    fn arb_expr(n: usize) -> impl Strategy<Value = Expr> {
        let leafs = (0..n).prop_map(Expr::Leaf);
        leafs.prop_recursive(4, 24, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..4).prop_map(Expr::All),
                prop::collection::vec(inner.clone(), 0..4).prop_map(Expr::Any),
                inner.prop_map(|e| Expr::Not(Box::new(e))),
            ]
        })
    }

    #[test]
    fn not_and_empty_groups() {
        let u: RoaringTreemap = (1..=10).collect();
        let a: RoaringTreemap = [1, 2, 3, 99].into_iter().collect(); // 99 is not a contact
        let leaves = [&a];
        assert_eq!(count(&leaf(0), &leaves, Some(&u)), 3);
        assert_eq!(count(&Expr::not(leaf(0)), &leaves, Some(&u)), 7);
        assert_eq!(Expr::not(Expr::not(leaf(0))), leaf(0));
        assert_eq!(count(&Expr::All(vec![]), &leaves, Some(&u)), 10);
        assert_eq!(count(&Expr::Any(vec![]), &leaves, Some(&u)), 0);
        assert_eq!(eval(&Expr::All(vec![Expr::not(leaf(0))]), &leaves, Some(&u)), (4..=10).collect());
    }

    proptest! {
        #[test]
        fn matches_set_semantics(
            e in arb_expr(3),
            sets in prop::collection::vec(prop::collection::btree_set(0u64..40, 0..30), 3),
            universe in prop::collection::btree_set(0u64..40, 0..35),
        ) {
            let bitmaps: Vec<RoaringTreemap> = sets.iter().map(|s| s.iter().copied().collect()).collect();
            let refs: Vec<&RoaringTreemap> = bitmaps.iter().collect();
            let u: RoaringTreemap = universe.iter().copied().collect();
            let expected: RoaringTreemap = universe.iter().copied().filter(|x| holds(&e, &sets, *x)).collect();
            prop_assert_eq!(count(&e, &refs, Some(&u)), expected.len());
            prop_assert_eq!(eval(&e, &refs, Some(&u)), expected.clone());
            // leaves of contacts only and no need of the universe: the same answers without it
            if !needs_universe(&e) {
                let within: Vec<RoaringTreemap> = bitmaps.iter().map(|b| b & &u).collect();
                let within: Vec<&RoaringTreemap> = within.iter().collect();
                prop_assert_eq!(count(&e, &within, None), expected.len());
                prop_assert_eq!(eval(&e, &within, None), expected);
            }
        }
    }
}
