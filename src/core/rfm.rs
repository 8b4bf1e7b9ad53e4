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
use crate::rule::Score;

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
}
