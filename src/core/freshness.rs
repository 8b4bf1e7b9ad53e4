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
    built.fingerprint == fingerprint
        && built.snapshot.xmin >= horizon
        && reader.covers(&built.snapshot)
        && !changes.iter().any(|c| built.relations.contains(&c.relid) && !built.snapshot.sees(c.xid))
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
    fn definitions_and_horizon_matter() {
        let b = built("100:105:");
        assert!(!is_fresh(&b, &snap("106:106:"), "g", &[], 0));
        assert!(!is_fresh(&b, &snap("106:106:"), "f", &[], 101));
        assert!(is_fresh(&b, &snap("106:106:"), "f", &[], 100));
    }
}
