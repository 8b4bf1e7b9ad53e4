//! The leaf cache every session shares: `segplan.leaf_cache`, an unlogged table of leaf bitmaps
//! with what they were built under. A session that misses in its own memory looks here before
//! building, and what it builds is written here for the next session (a pooled connection, a
//! second planner, a scheduled run). The session cache's freshness rules apply unchanged
//! (segplan_core::freshness): an entry is used only if the reader's snapshot covers the build's,
//! no change-log row for its relations that the reader sees was invisible to the build, and the
//! definitions are the same; the change log is read in the reader's own snapshot. The key holds
//! the role and the settings (engine.rs), so an entry only answers a session that would compute
//! the same bitmap; leaves under row-level security are never cached at all.
//!
//! Read and written as segplan's owner (src/pg/owner.rs): callers hold no privilege on the
//! table. Writing never waits and never fails the caller's transaction: rows are only appended
//! (no unique key, so no insert waits on another session's), dropping old rows skips rows another
//! session holds and happens in READ COMMITTED only (a row version deleted after a REPEATABLE READ
//! snapshot would raise a serialization failure), and nothing is written in read-only,
//! serializable (a cache row must not join the caller's serialization conflicts), parallel or
//! recovery transactions.
use super::error::internal;
use super::owner::as_owner;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use segplan_core::bitmap::{self, RoaringTreemap};
use segplan_core::freshness::{freshness, Built, Change, Freshness, Snapshot};
use std::collections::HashMap;
use std::rc::Rc;

/// An entry read from the table: fresh, or exact but for the writes it missed.
pub struct Found {
    pub bitmap: Rc<RoaringTreemap>,
    pub built: Built,
    /// the writes it missed (empty: fresh)
    pub missed: Vec<Change>,
    pub label: String,
    pub build_ms: f64,
    pub built_at: TimestampWithTimeZone,
    /// the as_of it was built for (entries found by [`nearest`])
    pub as_of: Option<TimestampWithTimeZone>,
}

/// A bitmap this session built, to share.
pub struct New {
    pub key: String,
    pub built: Built,
    pub label: String,
    pub bitmap: Rc<RoaringTreemap>,
    pub build_ms: f64,
    /// for a leaf over a relative window: its key but for as_of, and the as_of
    pub moves: Option<(String, TimestampWithTimeZone)>,
}

/// The candidates for the keys, newest first, each with the change-log rows for its relations
/// from its build's xmin on, as the reader sees them.
const LOOKUP_SQL: &str = "\
SELECT l.ctid::text, l.key, l.snapshot, l.fingerprint, l.relations::int8[], l.label, l.build_ms, l.built_at,
  ARRAY(SELECT ch.relid::int8 || ':' || ch.xid::text FROM segplan.changes ch
        WHERE ch.relid = ANY (l.relations) AND ch.xid >= pg_catalog.pg_snapshot_xmin(l.snapshot::pg_catalog.pg_snapshot)),
  NULL::pg_catalog.timestamptz
FROM segplan.leaf_cache l WHERE l.key = ANY ($1) ORDER BY l.built_at DESC";

/// The same for the keys but for as_of of leaves over relative windows (`moves`), the as_of
/// nearest to `$2` first.
const NEAREST_SQL: &str = "\
SELECT l.ctid::text, l.moves, l.snapshot, l.fingerprint, l.relations::int8[], l.label, l.build_ms, l.built_at,
  ARRAY(SELECT ch.relid::int8 || ':' || ch.xid::text FROM segplan.changes ch
        WHERE ch.relid = ANY (l.relations) AND ch.xid >= pg_catalog.pg_snapshot_xmin(l.snapshot::pg_catalog.pg_snapshot)),
  l.as_of
FROM segplan.leaf_cache l WHERE l.moves = ANY ($1) AND l.as_of IS NOT NULL
ORDER BY pg_catalog.abs(EXTRACT(EPOCH FROM l.as_of OPERATOR(pg_catalog.-) $2)), l.built_at DESC";

/// Whether the table keeps as_of (0.1.0's SQL, before ALTER EXTENSION segplan UPDATE, does not).
const MOVES_SQL: &str = "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = 'segplan.leaf_cache'::pg_catalog.regclass AND a.attname = 'moves' AND NOT a.attisdropped)";

const BITMAPS_SQL: &str = "SELECT l.ctid::text, l.bitmap FROM segplan.leaf_cache l WHERE l.ctid = ANY ($1::pg_catalog.tid[])";

const INSERT_SQL: &str = "\
INSERT INTO segplan.leaf_cache (key, role, snapshot, fingerprint, relations, label, contacts, bytes, build_ms, bitmap, moves, as_of)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)";

/// On 0.1.0's SQL.
const INSERT_SQL_0_1: &str = "\
INSERT INTO segplan.leaf_cache (key, role, snapshot, fingerprint, relations, label, contacts, bytes, build_ms, bitmap)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)";

/// Rows beyond the size limit (oldest first), superseded by a newer build of the same key, or
/// built before the change log's horizon (never fresh again), that no other session holds.
const EVICT_SQL: &str = "\
WITH ranked AS (
  SELECT l.ctid AS id,
    pg_catalog.sum(l.bytes) OVER (ORDER BY l.built_at DESC, l.ctid) AS total,
    pg_catalog.row_number() OVER (PARTITION BY l.key ORDER BY l.built_at DESC, l.ctid) AS nth,
    pg_catalog.pg_snapshot_xmin(l.snapshot::pg_catalog.pg_snapshot) < (SELECT h.xid FROM segplan.cache_horizon h) AS pruned
  FROM segplan.leaf_cache l)
DELETE FROM segplan.leaf_cache d WHERE d.ctid IN (
  SELECT l.ctid FROM segplan.leaf_cache l
  WHERE l.ctid = ANY (ARRAY(SELECT r.id FROM ranked r WHERE r.total > $1 OR r.nth > 1 OR r.pruned))
  FOR UPDATE SKIP LOCKED)";

/// Whether this install prunes the change log as the cache is trimmed.
const PRUNABLE_SQL: &str = "SELECT pg_catalog.to_regprocedure('segplan._prune_changes(pg_catalog.interval)') IS NOT NULL";

/// Prunes the change log, but not past what the shared cache built or patched within the last 10
/// minutes: a log written to without pause (every write logs a row) would otherwise grow without
/// end and be read by every count from its bitmaps' builds on; bitmaps older than that are built
/// again once.
const PRUNE_SQL: &str = "SELECT segplan._prune_changes('10 minutes')";

/// For each of `wanted` (key → the fingerprint of its definitions now, and whether an entry that
/// only missed some writes will do: the leaf can be patched), the newest entry that is fresh, or
/// behind when that will do (segplan_core::freshness::Freshness).
pub fn lookup(client: &SpiClient, wanted: &HashMap<String, (String, bool)>, reader: &Snapshot, horizon: u64) -> HashMap<String, Found> {
    if !primary() {
        return HashMap::new();
    }
    let keys: Vec<String> = wanted.keys().cloned().collect();
    find(client, LOOKUP_SQL, &[keys.into()], wanted, reader, horizon)
}

/// For each of `wanted` (a key but for as_of → the fingerprint of its definitions now), the entry
/// of the as_of nearest to `as_of` that is fresh or only missed writes (to shift to `as_of`).
pub fn nearest(client: &SpiClient, wanted: &HashMap<String, String>, as_of: TimestampWithTimeZone, reader: &Snapshot, horizon: u64) -> HashMap<String, Found> {
    if !primary() || !has_moves(client) {
        return HashMap::new();
    }
    let keys: Vec<String> = wanted.keys().cloned().collect();
    let wanted: HashMap<String, (String, bool)> = wanted.iter().map(|(k, f)| (k.clone(), (f.clone(), true))).collect();
    find(client, NEAREST_SQL, &[keys.into(), as_of.into()], &wanted, reader, horizon)
}

fn has_moves(client: &SpiClient) -> bool {
    super::kept::select(client, MOVES_SQL, &[])
        .and_then(|t| t.first().get_one::<bool>())
        .unwrap_or_else(|e| internal("reading the shared cache failed", e))
        .unwrap_or(false)
}

/// The first usable row per key of `sql`'s (see [`LOOKUP_SQL`] for its columns), with its bitmap.
fn find(client: &SpiClient, sql: &'static str, args: &[pgrx::datum::DatumWithOid], wanted: &HashMap<String, (String, bool)>, reader: &Snapshot, horizon: u64) -> HashMap<String, Found> {
    as_owner(|| {
        let rows = super::kept::select(client, sql, args).unwrap_or_else(|e| internal("reading the shared cache failed", e));
        // per key, the row's ctid and what it holds (its bitmap read below)
        let mut chosen: HashMap<String, (String, Found)> = HashMap::new();
        for row in rows {
            let text = |i| row.get::<String>(i).ok().flatten().unwrap_or_default();
            let key = text(2);
            let Some((fingerprint, behind_will_do)) = wanted.get(&key) else { continue };
            if chosen.contains_key(&key) {
                continue;
            }
            let Some(snapshot) = Snapshot::parse(&text(3)) else { continue };
            let relations = row.get::<Vec<i64>>(5).ok().flatten().unwrap_or_default().into_iter().map(|o| o as u32).collect();
            let built = Built { snapshot, fingerprint: text(4), relations };
            let changes: Vec<Change> = super::engine::parse_changes(row.get::<Vec<String>>(9).ok().flatten());
            let missed = match freshness(&built, reader, fingerprint, &changes, horizon) {
                Freshness::Fresh => Vec::new(),
                Freshness::Behind(missed) if *behind_will_do => missed,
                Freshness::Behind(_) | Freshness::Unusable => continue,
            };
            let build_ms = row.get::<f64>(7).ok().flatten().unwrap_or(0.0);
            let built_at = row.get::<TimestampWithTimeZone>(8).ok().flatten().unwrap_or_else(|| internal("reading the shared cache failed", "no built_at"));
            let as_of = row.get::<TimestampWithTimeZone>(10).ok().flatten();
            chosen.insert(key, (text(1), Found { bitmap: Rc::default(), built, missed, label: text(6), build_ms, built_at, as_of }));
        }
        if chosen.is_empty() {
            return HashMap::new();
        }
        let tids: Vec<String> = chosen.values().map(|c| c.0.clone()).collect();
        let rows = super::kept::select(client, BITMAPS_SQL, &[tids.into()]).unwrap_or_else(|e| internal("reading the shared cache failed", e));
        let mut bitmaps: HashMap<String, Vec<u8>> = HashMap::new();
        for row in rows {
            if let (Ok(Some(tid)), Ok(Some(bytes))) = (row.get::<String>(1), row.get::<Vec<u8>>(2)) {
                bitmaps.insert(tid, bytes);
            }
        }
        chosen
            .into_iter()
            .filter_map(|(key, (tid, found))| {
                let bytes = bitmaps.get(&tid)?;
                let bitmap = bitmap::from_trusted_bytes64(bytes).unwrap_or_else(|e| internal("reading a shared bitmap failed", e));
                Some((key, Found { bitmap: Rc::new(bitmap), ..found }))
            })
            .collect()
    })
}

/// Whether this is a primary, not a standby: a standby cannot read unlogged tables (its sessions
/// go without the shared cache, and without the shared copy of contact ids, src/pg/id_share.rs).
pub(super) fn primary() -> bool {
    // SAFETY: reads backend-global state
    !unsafe { pg_sys::RecoveryInProgress() }
}

/// Whether this transaction may write to the table without waiting or risking the caller's work.
pub(super) fn writable() -> bool {
    // SAFETY: reads of backend-global transaction state
    primary() && unsafe { !pg_sys::XactReadOnly && !pg_sys::IsInParallelMode() && pg_sys::XactIsoLevel != pg_sys::XACT_SERIALIZABLE as i32 }
}

/// Shares what this session built for `role`, then, when due ([`trim_due`]), trims the table to
/// `cap` bytes.
pub fn store(role: pg_sys::Oid, new: Vec<New>, cap: usize) {
    if new.is_empty() || !writable() {
        return;
    }
    // SAFETY: reads the backend's isolation level
    let read_committed = unsafe { pg_sys::XactIsoLevel } == pg_sys::XACT_READ_COMMITTED as i32;
    let mut written = 0;
    as_owner(|| {
        Spi::connect_mut(|mut client| {
            let moves = has_moves(&client);
            for n in new {
                let relations: Vec<pg_sys::Oid> = n.built.relations.iter().map(|o| pg_sys::Oid::from(*o)).collect();
                let bytes = bitmap::to_bytes64(&n.bitmap);
                written += bytes.len();
                let (at_key, at) = n.moves.map_or((None, None), |(k, a)| (Some(k), Some(a)));
                let mut args = vec![
                    n.key.into(),
                    role.into(),
                    n.built.snapshot.to_string().into(),
                    n.built.fingerprint.into(),
                    relations.into(),
                    n.label.into(),
                    (n.bitmap.len() as i64).into(),
                    (bytes.len() as i64).into(),
                    n.build_ms.into(),
                    bytes.into(),
                ];
                let sql = if moves {
                    args.push(at_key.into());
                    args.push(at.into());
                    INSERT_SQL
                } else {
                    INSERT_SQL_0_1
                };
                super::kept::update(&mut client, sql, &args).unwrap_or_else(|e| internal("writing the shared cache failed", e));
            }
            if trim_due(written, cap) && read_committed {
                super::kept::update(&mut client, EVICT_SQL, &[(cap as i64).into()]).unwrap_or_else(|e| internal("trimming the shared cache failed", e));
                // and the change log (0.1.0's SQL, before ALTER EXTENSION segplan UPDATE, prunes on cache_clear only)
                let prunes = super::kept::select(&client, PRUNABLE_SQL, &[])
                    .and_then(|t| t.first().get_one::<bool>())
                    .unwrap_or_else(|e| internal("trimming the shared cache failed", e))
                    .unwrap_or(false);
                if prunes {
                    super::kept::update(&mut client, PRUNE_SQL, &[]).unwrap_or_else(|e| internal("pruning the change log failed", e));
                }
                UNTRIMMED.with(|u| u.set(Some(0)));
            }
        })
    })
}

/// A session trims the shared cache after every this much of its size it has written.
const TRIM_EVERY: usize = 64;

thread_local! {
    /// bytes this session has written to the shared cache since it last trimmed it (`None`: it
    /// has not trimmed it yet)
    static UNTRIMMED: std::cell::Cell<Option<usize>> = const { std::cell::Cell::new(None) };
}

/// Counts `written` more bytes; whether this session should trim now: at its first write, then
/// after every 1/[`TRIM_EVERY`] of `cap` written. The trim reads every row (a window over the
/// whole table: at 100k contacts two to three times the insert of a condition's bitmap), so the
/// table may exceed its size by up to 1/64 of it per writing session, and keep superseded rows
/// (which lookups skip) until a trim.
fn trim_due(written: usize, cap: usize) -> bool {
    UNTRIMMED.with(|u| {
        let total = u.get().map(|w| w.saturating_add(written));
        u.set(total);
        total.is_none_or(|w| w >= cap / TRIM_EVERY)
    })
}

/// The role's entries: condition, contacts, bytes, build_ms, built_at.
pub fn entries(role: pg_sys::Oid) -> Vec<(String, i64, i64, f64, TimestampWithTimeZone)> {
    if !primary() {
        return Vec::new();
    }
    as_owner(|| {
        Spi::connect(|client| {
            client
                .select(
                    "SELECT l.label, l.contacts, l.bytes, l.build_ms, l.built_at FROM segplan.leaf_cache l WHERE l.role = $1 ORDER BY l.built_at DESC, l.label",
                    None,
                    &[role.into()],
                )
                .unwrap_or_else(|e| internal("reading the shared cache failed", e))
                .filter_map(|row| Some((row.get(1).ok()??, row.get(2).ok()??, row.get(3).ok()??, row.get(4).ok()??, row.get(5).ok()??)))
                .collect()
        })
    })
}

/// Drops the role's entries; returns how many.
pub fn clear(role: pg_sys::Oid) -> i64 {
    if !primary() {
        return 0;
    }
    as_owner(|| {
        Spi::connect_mut(|client| {
            client
                .update("DELETE FROM segplan.leaf_cache l WHERE l.role = $1", None, &[role.into()])
                .map(|t| t.len() as i64)
                .unwrap_or_else(|e| internal("clearing the shared cache failed", e))
        })
    })
}
