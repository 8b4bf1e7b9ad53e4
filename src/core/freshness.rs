//! When a cached leaf bitmap may be reused: the rules, on PostgreSQL's MVCC snapshots.
//!
//! Every write to a tracked table appends `(relation, transaction id)` to segplan's change log in
//! the writer's own transaction (a statement trigger), so the log row becomes visible exactly
//! when the data does. A bitmap built under snapshot B is fresh for a reader with snapshot R when:
//! - R sees everything B saw (otherwise the bitmap may hold rows R must not see), and
//! - no change-log row for the bitmap's relations that R sees was invisible to B, and
//! - the definitions it was built on (relation files, views, policies, grants) are unchanged, and
//! - B is not older than the log's horizon (rows below it were pruned).
use std::collections::HashSet;

/// A `pg_snapshot` (`xmin:xmax:xip,…`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub xmin: u64,
    pub xmax: u64,
    pub xip: Vec<u64>,
}

impl Snapshot {
    pub fn parse(s: &str) -> Option<Snapshot> {
        let mut it = s.trim().splitn(3, ':');
        let xmin = it.next()?.parse().ok()?;
        let xmax = it.next()?.parse().ok()?;
        let xip = match it.next()? {
            "" => Vec::new(),
            list => list.split(',').map(|x| x.parse().ok()).collect::<Option<Vec<u64>>>()?,
        };
        Some(Snapshot { xmin, xmax, xip })
    }

    /// `pg_visible_in_snapshot(xid, self)`.
    pub fn sees(&self, xid: u64) -> bool {
        xid < self.xmin || (xid < self.xmax && !self.xip.contains(&xid))
    }

    /// The same snapshot with `xid` counted as not seen. PostgreSQL leaves the reader's own
    /// transaction out of a snapshot's running list, so a snapshot taken by a transaction with an
    /// id would otherwise read as having seen that transaction's later writes.
    pub fn hiding(mut self, xid: u64) -> Snapshot {
        if self.sees(xid) {
            self.xip.push(xid);
            self.xip.sort_unstable();
        }
        self
    }

    /// True if this snapshot sees every transaction that `other` sees.
    pub fn covers(&self, other: &Snapshot) -> bool {
        if other.xmax > self.xmax {
            return false;
        }
        let theirs: HashSet<u64> = other.xip.iter().copied().collect();
        self.xip.iter().all(|x| *x >= other.xmax || theirs.contains(x))
    }
}

impl std::fmt::Display for Snapshot {
    /// The `pg_snapshot` text form, which `parse` reads back.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let xip: Vec<String> = self.xip.iter().map(u64::to_string).collect();
        write!(f, "{}:{}:{}", self.xmin, self.xmax, xip.join(","))
    }
}

/// A change-log row the reader can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Change {
    pub relid: u32,
    pub xid: u64,
}

/// What a cached bitmap was built under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Built {
    pub snapshot: Snapshot,
    /// the definitions of its relations and everything they depend on
    pub fingerprint: String,
    /// every relation whose rows it read (views expanded, partitions included)
    pub relations: Vec<u32>,
}

/// Whether a bitmap built under `built` can answer a reader with snapshot `reader` who sees the
/// definitions as `fingerprint`, the change log rows `changes` and the log's `horizon`.
pub fn is_fresh(built: &Built, reader: &Snapshot, fingerprint: &str, changes: &[Change], horizon: u64) -> bool {
    matches!(freshness(built, reader, fingerprint, changes, horizon), Freshness::Fresh)
}

/// What a reader can do with a cached bitmap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Freshness {
    Fresh,
    /// Exact but for the writes of these change-log rows (the reader sees them, the build did
    /// not): re-evaluating the contacts they touched makes it exact for the reader.
    Behind(Vec<Change>),
    /// built on other definitions, before the log's horizon, or on rows the reader must not see
    Unusable,
}

/// [`is_fresh`], telling a bitmap that only missed some writes from one that cannot be used.
pub fn freshness(built: &Built, reader: &Snapshot, fingerprint: &str, changes: &[Change], horizon: u64) -> Freshness {
    if built.fingerprint != fingerprint || built.snapshot.xmin < horizon || !reader.covers(&built.snapshot) {
        return Freshness::Unusable;
    }
    let missed: Vec<Change> = changes.iter().filter(|c| built.relations.contains(&c.relid) && !built.snapshot.sees(c.xid)).copied().collect();
    if missed.is_empty() { Freshness::Fresh } else { Freshness::Behind(missed) }
}

/// A change-log row for a write a cached bitmap missed: the contact keys it logged (integers, or
/// the text of uuid and text keys), of which columns (`None`: the relation changed as a whole).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Logged<K = i64> {
    pub change: Change,
    pub keys: Option<Vec<K>>,
    pub columns: Vec<String>,
}

/// The contacts to re-evaluate to bring a bitmap up to date after the writes it `missed`, given
/// what the log holds for them (`logged`) and, per relation the leaf reads, the column naming
/// the contact in it (`columns`): `None` when a write cannot be patched — a relation the leaf
/// reads through a view, a partition or a policy, a change without keys, keys of another column —
/// or when more than `limit` contacts were touched.
pub fn touched<K: Ord + Clone>(missed: &[Change], logged: &[Logged<K>], columns: &[(u32, String)], limit: usize) -> Option<Vec<K>> {
    let mut keys = std::collections::BTreeSet::new();
    for m in missed {
        let column = columns.iter().find(|(r, _)| *r == m.relid).map(|(_, c)| c)?;
        let mut found = false;
        for l in logged.iter().filter(|l| l.change == *m) {
            found = true;
            if !l.columns.contains(column) {
                return None;
            }
            keys.extend(l.keys.as_ref()?.iter().cloned());
            if keys.len() > limit {
                return None;
            }
        }
        if !found {
            return None;
        }
    }
    Some(keys.into_iter().collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snap(s: &str) -> Snapshot {
        Snapshot::parse(s).unwrap()
    }

    fn built(s: &str) -> Built {
        Built { snapshot: snap(s), fingerprint: "f".into(), relations: vec![10, 11] }
    }

    #[test]
    fn parses_and_sees() {
        let s = snap("100:105:101,103");
        assert!(s.sees(99) && s.sees(102) && s.sees(104));
        assert!(!s.sees(101) && !s.sees(103) && !s.sees(105));
        assert_eq!(snap("7:7:"), Snapshot { xmin: 7, xmax: 7, xip: vec![] });
        assert!(Snapshot::parse("7:x:").is_none() && Snapshot::parse("7").is_none());
        for text in ["100:105:101,103", "7:7:"] {
            assert_eq!(snap(text).to_string(), text);
        }
    }

    #[test]
    fn covers_needs_everything_the_other_saw() {
        let b = snap("100:105:101,103");
        assert!(snap("100:105:101,103").covers(&b));
        assert!(snap("104:110:").covers(&b));
        assert!(!snap("100:104:").covers(&b), "older xmax");
        assert!(!snap("100:105:102").covers(&b), "102 was committed for B, running for R");
        assert!(snap("101:106:101,105").covers(&b), "still-running 101 was invisible to both");
    }

    #[test]
    fn a_commit_after_the_build_makes_it_stale() {
        let b = built("100:105:103");
        // 103 was running when B was taken and wrote to relation 10; the reader now sees it
        assert!(!is_fresh(&b, &snap("106:106:"), "f", &[Change { relid: 10, xid: 103 }], 0));
        // a change B already saw, or to another relation, does not
        assert!(is_fresh(&b, &snap("106:106:"), "f", &[Change { relid: 10, xid: 102 }, Change { relid: 99, xid: 103 }], 0));
        // a change after B that the reader sees
        assert!(!is_fresh(&b, &snap("110:110:"), "f", &[Change { relid: 11, xid: 107 }], 0));
    }

    #[test]
    fn a_transactions_own_later_writes_make_its_bitmaps_stale() {
        // transaction 100 (running, so the snapshot's xmin) took its snapshot after 101 committed
        let raw = snap("100:102:");
        assert!(raw.sees(100), "the raw snapshot reads as having seen 100");
        let b = Built { snapshot: raw.hiding(100), fingerprint: "f".into(), relations: vec![10] };
        assert!(!b.snapshot.sees(100) && b.snapshot.sees(101));
        // 100 then wrote to relation 10 and committed
        assert!(!is_fresh(&b, &snap("102:102:"), "f", &[Change { relid: 10, xid: 100 }], 0));
        // hiding an id the snapshot does not see changes nothing
        assert_eq!(snap("100:102:").hiding(105), snap("100:102:"));
    }

    #[test]
    fn a_bitmap_that_missed_writes_is_behind_by_exactly_those() {
        let b = built("100:105:103");
        let seen = Change { relid: 10, xid: 102 };
        let missed = [Change { relid: 10, xid: 103 }, Change { relid: 11, xid: 107 }];
        let other = Change { relid: 99, xid: 108 };
        let all = [seen, missed[0], other, missed[1]];
        assert_eq!(freshness(&b, &snap("110:110:"), "f", &all, 0), Freshness::Behind(missed.to_vec()));
        assert_eq!(freshness(&b, &snap("110:110:"), "f", &[seen, other], 0), Freshness::Fresh);
        // what makes it unusable wins over missed writes
        assert_eq!(freshness(&b, &snap("110:110:"), "g", &all, 0), Freshness::Unusable);
        assert_eq!(freshness(&b, &snap("110:110:"), "f", &all, 101), Freshness::Unusable);
        assert_eq!(freshness(&b, &snap("100:105:102,103"), "f", &all, 0), Freshness::Unusable, "the reader does not see 102, which the build saw");
    }

    #[test]
    fn a_patch_takes_every_key_the_missed_writes_logged_or_nothing() {
        let (a, b) = (Change { relid: 10, xid: 103 }, Change { relid: 11, xid: 107 });
        let columns = [(10, "id".to_string()), (11, "person".to_string())];
        let row = |change, keys: Option<&[i64]>, cols: &[&str]| Logged {
            change,
            keys: keys.map(|k| k.to_vec()),
            columns: cols.iter().map(|x| x.to_string()).collect(),
        };
        let logged = [row(a, Some(&[3, 1]), &["id"]), row(b, Some(&[2]), &["other", "person"]), row(a, Some(&[3, -4]), &["id"])];
        assert_eq!(touched(&[a, b], &logged, &columns, 10), Some(vec![-4, 1, 2, 3]));
        assert_eq!(touched(&[a, b], &logged, &columns, 3), None, "4 contacts touched, at most 3 patched");
        // a statement of the same transaction without keys (a truncate, too many rows)
        let mut whole = logged.to_vec();
        whole.push(row(a, None, &[]));
        assert_eq!(touched(&[a, b], &whole, &columns, 10), None);
        // keys of a column the leaf does not read the contact from
        assert_eq!(touched(&[b], &[row(b, Some(&[2]), &["other"])], &columns, 10), None);
        // a relation the leaf reads only through its source (a view's table, a partition)
        assert_eq!(touched(&[Change { relid: 12, xid: 107 }], &[row(Change { relid: 12, xid: 107 }, Some(&[2]), &["id"])], &columns, 10), None);
        // nothing logged for a missed write (pruned meanwhile): no patch
        assert_eq!(touched::<i64>(&[a], &[], &columns, 10), None);
        // a write that touched no rows
        assert_eq!(touched(&[a], &[row(a, Some(&[]), &["id"])], &columns, 10), Some(vec![]));
        // uuid and text keys, as their text
        let texts = [Logged { change: a, keys: Some(vec!["k2".to_string(), "k1".into(), "k2".into()]), columns: vec!["id".into()] }];
        assert_eq!(touched(&[a], &texts, &columns, 10), Some(vec!["k1".to_string(), "k2".into()]));
    }

    #[test]
    fn definitions_and_horizon_matter() {
        let b = built("100:105:");
        assert!(!is_fresh(&b, &snap("106:106:"), "g", &[], 0));
        assert!(!is_fresh(&b, &snap("106:106:"), "f", &[], 101));
        assert!(is_fresh(&b, &snap("106:106:"), "f", &[], 100));
    }
}
