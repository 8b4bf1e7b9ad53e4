//! The bitmap engine: each leaf condition of a rule becomes one `roaringbitmap64` (one SQL
//! statement, run as the caller); groups are combined in Rust (segplan_core::algebra). Leaf
//! bitmaps are kept in this session's memory and in a table every session reads
//! (`segplan.leaf_cache`), and reused while they are fresh (segplan_core::freshness): keyed by
//! the leaf's SQL and parameters, the caller's role and the settings that can change an answer
//! (time zone, date styles, every extension or application setting that is set), and as_of when
//! the leaf is relative. Leaves over relations under row-level security for the caller, or with
//! changes that cannot be tracked, are evaluated afresh every time.
use super::catalog;
use super::leaf_cache;
use super::dense_ids::{self, Unnumbered};
use super::error::{internal, raise};
use super::params::args;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use segplan_core::compile::{self, AsOf, Bound, Leaf, Patch, Plan, Shift};
use segplan_core::freshness::{freshness, is_fresh, touched, Built, Change, Freshness, Logged, Snapshot};
use segplan_core::model::{Model, TypeKind};
use segplan_core::rule::Rule;
use std::cell::RefCell;
use std::collections::HashMap;
use std::rc::Rc;
use std::time::Instant;

use segplan_core::bitmap::{self, RoaringTreemap};

/// `segplan.engine`: how rules are evaluated.
#[derive(PostgresGucEnum, Clone, Copy, PartialEq, Eq, Debug)]
pub enum Engine {
    /// leaf bitmaps, cached
    #[name = c"bitmap"]
    Bitmap,
    /// one SQL statement per rule, nothing cached
    #[name = c"sql"]
    Sql,
}

static ENGINE: GucSetting<Engine> = GucSetting::<Engine>::new(Engine::Bitmap);
static CACHE_MB: GucSetting<i32> = GucSetting::<i32>::new(256);
static SHARED_MB: GucSetting<i32> = GucSetting::<i32>::new(1024);
static PATCH_LIMIT: GucSetting<i32> = GucSetting::<i32>::new(10000);

pub fn register_settings() {
    GucRegistry::define_enum_guc(
        c"segplan.engine",
        c"How rules are evaluated: bitmap (leaf bitmaps, cached) or sql (one statement per rule).",
        c"Both give the same answers; sql is there to compare and to debug.",
        &ENGINE,
        GucContext::Userset,
        GucFlags::default(),
    );
    GucRegistry::define_int_guc(
        c"segplan.cache_memory",
        c"Memory for this session's cache of leaf bitmaps, in MB (0 turns the cache off).",
        c"Least recently used bitmaps are dropped first.",
        &CACHE_MB,
        0,
        1 << 20,
        GucContext::Userset,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_int_guc(
        c"segplan.shared_cache_memory",
        c"Size of the leaf bitmaps kept for every session (segplan.leaf_cache), in MB (0 turns it off).",
        c"The oldest bitmaps are dropped first, by each session after every 1/64 of this size it has written.",
        &SHARED_MB,
        0,
        1 << 20,
        GucContext::Suset,
        GucFlags::UNIT_MB,
    );
    GucRegistry::define_int_guc(
        c"segplan.patch_limit",
        c"The most contacts re-evaluated to bring a cached leaf bitmap up to date after writes (0: build it again instead).",
        c"Writes to a registered table log the contact keys they touched; a cached bitmap that missed them is patched for those contacts only.",
        &PATCH_LIMIT,
        0,
        i32::MAX,
        GucContext::Userset,
        GucFlags::default(),
    );
}

pub fn engine() -> Engine {
    ENGINE.get()
}

/// Where a session's cached bitmap came from.
#[derive(Clone, Copy)]
enum Origin {
    Built,
    Shared,
    /// a cached bitmap brought up to date for the contacts that writes touched
    Patched,
}

struct Entry {
    bitmap: Rc<RoaringTreemap>,
    origin: Origin,
    built: Built,
    label: String,
    /// the leaf's statement (part of its key)
    sql: String,
    /// for a leaf that moves with as_of: its key but for as_of, and the as_of it was built for
    moves: Option<(String, TimestampWithTimeZone)>,
    bytes: usize,
    build_ms: f64,
    built_at: TimestampWithTimeZone,
    hits: i64,
    last_used: u64,
}

#[derive(Default)]
struct Cache {
    entries: HashMap<String, Entry>,
    clock: u64,
    bytes: usize,
}

impl Cache {
    fn insert(&mut self, key: String, e: Entry, cap: usize) {
        self.bytes += e.bytes;
        if let Some(old) = self.entries.insert(key, e) {
            self.bytes -= old.bytes;
        }
        while self.bytes > cap && !self.entries.is_empty() {
            let Some(k) = self.entries.iter().min_by_key(|(_, e)| e.last_used).map(|(k, _)| k.clone()) else { break };
            if let Some(old) = self.entries.remove(&k) {
                self.bytes -= old.bytes;
            }
        }
    }
}

thread_local! {
    static CACHE: RefCell<Cache> = RefCell::new(Cache::default());
}

/// A rule's plan and the bitmaps of its leaves and of all contacts.
pub struct Evaluation {
    pub plan: Plan,
    /// all contacts, when the rule needs them (`Plan::needs_universe`)
    pub universe: Option<Rc<RoaringTreemap>>,
    pub leaves: Vec<Rc<RoaringTreemap>>,
}

impl Evaluation {
    pub fn leaf_refs(&self) -> Vec<&RoaringTreemap> {
        self.leaves.iter().map(|b| b.as_ref()).collect()
    }
}

/// What the catalog says about a source a leaf reads: kept per backend while no relation under
/// it changes (PostgreSQL's invalidations, `catalog::SOURCES`).
#[derive(Clone)]
struct SourceState {
    relations: Vec<u32>,
    fingerprint: String,
    /// every table under it carries the change-log trigger, and no view under it answers otherwise
    /// with nothing written (catalog::changes_without_writes)
    tracked: bool,
}

thread_local! {
    static SOURCE_STATES: RefCell<(u64, HashMap<u32, SourceState>)> = RefCell::new((0, HashMap::new()));
}

/// Per source: every relation it reads (views expanded), their definitions, tracking (segplan's
/// enabled triggers cover insert, update, delete and truncate: tgtype bits 4, 16, 8 and 32).
const SOURCES_SQL: &str = "\
SELECT c.source::int8, pg_catalog.array_agg(c.rel::int8),
  pg_catalog.string_agg(k.oid::text || '/' || k.relfilenode::text || '/' || k.xmin::text
    || '/' || coalesce((SELECT pg_catalog.string_agg(r.xmin::text, ',') FROM pg_catalog.pg_rewrite r WHERE r.ev_class = k.oid), '')
    || '/' || coalesce((SELECT pg_catalog.string_agg(p.xmin::text, ',') FROM pg_catalog.pg_policy p WHERE p.polrelid = k.oid), ''),
    ';' ORDER BY k.oid),
  pg_catalog.bool_and(k.relkind = 'v' OR (SELECT coalesce(pg_catalog.bit_or(g.tgtype::int4), 0) & 60 FROM pg_catalog.pg_trigger g WHERE g.tgrelid = k.oid
    AND g.tgname IN ('segplan_changes', 'segplan_keys_insert', 'segplan_keys_update', 'segplan_keys_delete') AND g.tgenabled = 'A') = 60)
FROM segplan._closure($1) c JOIN pg_catalog.pg_class k ON k.oid = c.rel
GROUP BY c.source";

/// The reader's snapshot, the log horizon, visible change-log rows from `$2` on and all of this
/// transaction's own (whatever is cached, a transaction that wrote to a leaf's tables itself must
/// neither take nor keep a bitmap of them: it may roll back), this
/// transaction's id, the role, the date of as_of (`$3`) in the session's time zone, and — never cached, they depend on the role and its memberships —
/// the sources (`$4`) it may read and the relations under row-level security for it.
const READER_SQL: &str = "\
SELECT pg_catalog.pg_current_snapshot()::text, (SELECT h.xid::text FROM segplan.cache_horizon h),
  ARRAY(SELECT ch.relid::int8 || ':' || ch.xid::text FROM segplan.changes ch WHERE ch.relid = ANY ($1)
        AND (ch.xid >= $2::xid8 OR ch.xid = pg_catalog.pg_current_xact_id_if_assigned())),
  pg_catalog.pg_current_xact_id_if_assigned()::text,
  current_user::pg_catalog.regrole::pg_catalog.oid::text,
  $3::pg_catalog.date::text,
  ARRAY(SELECT s::int8 FROM pg_catalog.unnest($4::pg_catalog.oid[]) s WHERE pg_catalog.has_table_privilege(s, 'SELECT')),
  ARRAY(SELECT r::int8 FROM pg_catalog.unnest($1::pg_catalog.oid[]) r WHERE pg_catalog.row_security_active(r::pg_catalog.regclass))";

struct Reader {
    snapshot: Snapshot,
    horizon: u64,
    changes: Vec<Change>,
    own_xid: Option<u64>,
    role: String,
    as_of_date: String,
    readable: Vec<u32>,
    row_security: Vec<u32>,
}

fn read_sources(client: &SpiClient, oids: &[u32]) -> HashMap<u32, SourceState> {
    let generation = catalog::SOURCES.with(catalog::Watch::generation);
    let (mut out, missing, fresh) = SOURCE_STATES.with(|c| {
        let mut c = c.borrow_mut();
        if c.0 != generation {
            *c = (generation, HashMap::new());
        }
        let out: HashMap<u32, SourceState> = oids.iter().filter_map(|o| c.1.get(o).map(|s| (*o, s.clone()))).collect();
        let missing: Vec<u32> = oids.iter().copied().filter(|o| !c.1.contains_key(o)).collect();
        (out, missing, c.1.is_empty())
    });
    if missing.is_empty() {
        return out;
    }
    let (read, kept) = catalog::SOURCES.with(|w| {
        // what is watched starts afresh with an empty cache
        w.read(fresh, || {
            let arg: Vec<pg_sys::Oid> = missing.iter().map(|o| pg_sys::Oid::from(*o)).collect();
            let rows = client.select(SOURCES_SQL, None, &[arg.into()]).unwrap_or_else(|e| internal("reading the catalog failed", e));
            let mut read = HashMap::new();
            for row in rows {
                let source = row.get::<i64>(1).ok().flatten().unwrap_or(0) as u32;
                let relations: Vec<u32> = row.get::<Vec<i64>>(2).ok().flatten().unwrap_or_default().into_iter().map(|o| o as u32).collect();
                let fingerprint = row.get::<String>(3).ok().flatten().unwrap_or_default();
                // a view that answers otherwise with nothing written (the clock, volatile functions) is never cached
                let tracked = row.get::<bool>(4).ok().flatten().unwrap_or(false) && !relations.iter().any(|r| catalog::changes_without_writes(*r));
                read.insert(source, SourceState { relations, fingerprint, tracked });
            }
            let watched = read.values().flat_map(|s: &SourceState| s.relations.iter().map(|o| pg_sys::Oid::from(*o))).collect();
            (read, watched)
        })
    });
    if kept {
        SOURCE_STATES.with(|c| c.borrow_mut().1.extend(read.iter().map(|(k, v)| (*k, v.clone()))));
    }
    out.extend(read);
    out
}

/// What besides the role can change a leaf's answer for the same SQL: the settings that change
/// how values read (time zone, date and interval styles) and every extension or application
/// setting that is set — a view may filter on `current_setting('app.tenant')`, and a pooled
/// connection changes it between requests.
fn settings_key() -> String {
    use std::ffi::CStr;
    let value = |name: *const std::ffi::c_char| unsafe {
        let v = pg_sys::GetConfigOption(name, true, false);
        if v.is_null() { String::new() } else { CStr::from_ptr(v).to_string_lossy().into_owned() }
    };
    let mut out: Vec<String> = [c"TimeZone", c"DateStyle", c"IntervalStyle"].iter().map(|n| value(n.as_ptr())).collect();
    // SAFETY: PostgreSQL 15's array of every setting, sorted by name, valid for the backend's life
    unsafe {
        let vars = pg_sys::get_guc_variables();
        for i in 0..pg_sys::GetNumConfigOptions().max(0) as usize {
            let Some(g) = (*vars.add(i)).as_ref() else { continue };
            if g.source == pg_sys::GucSource::PGC_S_DEFAULT || g.name.is_null() {
                continue;
            }
            let name = CStr::from_ptr(g.name).to_bytes();
            if name.contains(&b'.') && !name.starts_with(b"segplan.") && !name.starts_with(b"segplan_internal.") {
                out.push(format!("{}={}", String::from_utf8_lossy(name), value(g.name)));
            }
        }
    }
    out.join("\u{1e}")
}

/// Change-log rows as `relid:xid` texts.
pub(super) fn parse_changes(texts: Option<Vec<String>>) -> Vec<Change> {
    texts
        .unwrap_or_default()
        .iter()
        .filter_map(|s| s.split_once(':').and_then(|(r, x)| Some(Change { relid: r.parse().ok()?, xid: x.parse().ok()? })))
        .collect()
}

fn read_reader(client: &SpiClient, relations: &[u32], sources: &[u32], from_xid: u64, as_of: TimestampWithTimeZone) -> Reader {
    let arg: Vec<pg_sys::Oid> = relations.iter().map(|o| pg_sys::Oid::from(*o)).collect();
    let srcs: Vec<pg_sys::Oid> = sources.iter().map(|o| pg_sys::Oid::from(*o)).collect();
    let row = super::kept::select(client, READER_SQL, &[arg.into(), from_xid.to_string().into(), as_of.into(), srcs.into()])
        .unwrap_or_else(|e| internal("reading the change log failed", e));
    let row = row.first();
    let text = |i| row.get::<String>(i).ok().flatten().unwrap_or_default();
    let oids = |i| row.get::<Vec<i64>>(i).ok().flatten().unwrap_or_default().into_iter().map(|o| o as u32).collect::<Vec<u32>>();
    let own_xid: Option<u64> = row.get::<String>(4).ok().flatten().and_then(|x| x.parse().ok());
    let snapshot = Snapshot::parse(&text(1)).unwrap_or_else(|| internal("reading the snapshot failed", text(1)));
    // what this transaction writes after the build is not in the bitmap
    let snapshot = match own_xid {
        Some(own) => snapshot.hiding(own),
        None => snapshot,
    };
    Reader {
        snapshot,
        horizon: text(2).parse().unwrap_or(0),
        changes: parse_changes(row.get::<Vec<String>>(3).ok().flatten()),
        own_xid,
        role: format!("{}\u{1e}{}", text(5), settings_key()),
        as_of_date: text(6),
        readable: oids(7),
        row_security: oids(8),
    }
}

/// The cache key of a leaf and whether its bitmap may be cached at all, with what it was built on.
fn leaf_identity(leaf: &Leaf, sources: &HashMap<u32, SourceState>, reader: &Reader, as_of: &str) -> Option<(String, Built)> {
    let mut relations = Vec::new();
    let mut fingerprint = String::new();
    for oid in &leaf.relations {
        let s = sources.get(oid)?;
        // Row-level security may depend on anything (settings, lookups, functions): answers
        // under it are never cached, so no context can be served another's.
        let row_security = s.relations.iter().any(|r| reader.row_security.contains(r));
        if !s.tracked || !reader.readable.contains(oid) || row_security {
            return None;
        }
        relations.extend(&s.relations);
        fingerprint.push_str(&s.fingerprint);
        fingerprint.push('|');
    }
    relations.sort_unstable();
    relations.dedup();
    // a transaction that wrote to these tables itself may roll back: its view is not shared
    if let Some(own) = reader.own_xid {
        if reader.changes.iter().any(|c| c.xid == own && relations.contains(&c.relid)) {
            return None;
        }
    }
    let key = format!(
        "{}\u{1f}{}\u{1f}{}\u{1f}{:?}",
        reader.role,
        match leaf.as_of {
            AsOf::No => "",
            AsOf::Date => &reader.as_of_date,
            AsOf::Exact => as_of,
        },
        leaf.query.sql,
        leaf.query.params
    );
    Some((key, Built { snapshot: reader.snapshot.clone(), fingerprint, relations }))
}

/// A leaf's cache key but for as_of: the bitmaps of one leaf at other as_of values.
fn moves_key(leaf: &Leaf, reader: &Reader) -> String {
    format!("{}\u{1f}*\u{1f}{}\u{1f}{:?}", reader.role, leaf.query.sql, leaf.query.params)
}

/// This session's bitmap of the leaf `moves` (its key but for as_of) of the as_of nearest to `at`
/// that is fresh or only missed writes, with the writes it missed and its as_of.
fn nearest_kept(moves: &str, at: TimestampWithTimeZone, fingerprint: &str, r: &Reader) -> Option<(Rc<RoaringTreemap>, Vec<Change>, TimestampWithTimeZone)> {
    CACHE.with(|c| {
        c.borrow()
            .entries
            .values()
            .filter_map(|e| {
                let (_, then) = e.moves.as_ref().filter(|(k, _)| k == moves)?;
                let missed = match freshness(&e.built, &r.snapshot, fingerprint, &r.changes, r.horizon) {
                    Freshness::Fresh => Vec::new(),
                    Freshness::Behind(missed) => missed,
                    Freshness::Unusable => return None,
                };
                Some(((i64::from(*then) - i64::from(at)).abs(), e.bitmap.clone(), missed, *then))
            })
            .min_by_key(|u| u.0)
            .map(|(_, bitmap, missed, then)| (bitmap, missed, then))
    })
}

/// What a leaf's statement returned: integer keys as a bitmap, other keys to number.
enum Raw {
    Bitmap(RoaringTreemap),
    Keys(dense_ids::Keys),
}

/// Column `col` of a leaf statement's row, over contact keys of type `kind`.
fn raw(row: &pgrx::spi::SpiTupleTable, col: usize, kind: TypeKind) -> Raw {
    if kind != TypeKind::Integer {
        return Raw::Keys(dense_ids::Keys::read(row, col, kind));
    }
    Raw::Bitmap(bitmap_at(row, col))
}

/// Column `col` of a leaf statement's row over integer keys: a `roaringbitmap64`'s bytes.
fn bitmap_at(row: &pgrx::spi::SpiTupleTable, col: usize) -> RoaringTreemap {
    row.get::<Vec<u8>>(col)
        .unwrap_or_else(|e| internal("reading a condition's bitmap failed", e))
        .map(|b| bitmap::from_trusted_bytes64(&b).unwrap_or_else(|e| internal("reading a condition's bitmap failed", e)))
        .unwrap_or_default()
}

fn build(client: &SpiClient, leaf: &Leaf, as_of: TimestampWithTimeZone, kind: TypeKind) -> Raw {
    let rows = client.select(&leaf.query.sql, None, &args(as_of, &leaf.query.params)).unwrap_or_else(|e| internal("evaluating a condition failed", e));
    raw(&rows.first(), 1, kind)
}

/// The change-log rows of the writes `missed`, with the keys they logged (none on an install still on
/// 0.1.0's SQL, before ALTER EXTENSION segplan UPDATE: its log has no keys), as `keys` reads
/// them from a row of [`LOGGED_SQL`]: integer keys (column 3) or the text of uuid and text keys (5).
fn read_logged<K>(client: &SpiClient, missed: &[Change], keys: impl Fn(&pgrx::spi::SpiHeapTupleData) -> Option<Vec<K>>) -> Vec<Logged<K>> {
    let keyed = super::kept::select(client, KEYED_LOG_SQL, &[])
        .and_then(|t| t.first().get_one::<bool>())
        .unwrap_or_else(|e| internal("reading the change log failed", e))
        .unwrap_or(false);
    if !keyed {
        return Vec::new();
    }
    let relids: Vec<pg_sys::Oid> = missed.iter().map(|c| pg_sys::Oid::from(c.relid)).collect();
    let xids: Vec<String> = missed.iter().map(|c| c.xid.to_string()).collect();
    // as the owner: callers may not read the keys (rows they may not be allowed to read)
    let rows = super::owner::as_owner(|| super::kept::select(client, LOGGED_SQL, &[relids.into(), xids.into()]))
        .unwrap_or_else(|e| internal("reading the change log failed", e));
    rows.into_iter()
        .map(|row| Logged {
            change: Change {
                relid: row.get::<i64>(1).ok().flatten().unwrap_or(0) as u32,
                xid: row.get::<String>(2).ok().flatten().and_then(|x| x.parse().ok()).unwrap_or(0),
            },
            keys: keys(&row),
            columns: row.get::<Vec<String>>(4).ok().flatten().unwrap_or_default(),
        })
        .collect()
}

/// Whether the change log has keys.
const KEYED_LOG_SQL: &str = "SELECT EXISTS (SELECT FROM pg_catalog.pg_attribute a WHERE a.attrelid = 'segplan.changes'::pg_catalog.regclass AND a.attname = 'keys' AND NOT a.attisdropped)";

/// The rows of the change log for some (relation, transaction) pairs, as the reader sees them
/// (the same snapshot: the statement's): integer keys, columns, and the text of uuid and text keys
/// (NULL, as the integer keys: the relation changed as a whole).
const LOGGED_SQL: &str = "\
SELECT ch.relid::int8, ch.xid::text, ch.keys, ch.key_columns::text[],
  CASE WHEN ch.keys IS NOT NULL THEN COALESCE(ch.text_keys, '{}'::text[]) END
FROM segplan.changes ch WHERE ch.relid = ANY ($1) AND ch.xid = ANY ($2::pg_catalog.xid8[])";

/// The contacts a patch evaluates again: integer keys, or the text of uuid and text keys.
enum Touched {
    Ids(RoaringTreemap),
    Keys(std::collections::BTreeSet<String>),
}

impl Touched {
    fn len(&self) -> u64 {
        match self {
            Touched::Ids(t) => t.len(),
            Touched::Keys(t) => t.len() as u64,
        }
    }

    fn add(&mut self, more: Touched) {
        match (self, more) {
            (Touched::Ids(a), Touched::Ids(b)) => *a |= b,
            (Touched::Keys(a), Touched::Keys(b)) => a.extend(b),
            _ => internal("patching a condition failed", "keys of two kinds"),
        }
    }
}

/// `old` with the `touched` contacts evaluated again: out if they no longer match, in if they do
/// now. Over uuid and text keys, the touched keys' ids (those that have one: no other can be in
/// `old`) go out, and the ids of the keys that match now come in (numbered if `number`, as a
/// build's are).
fn patched(client: &mut SpiClient, patch: &Patch, as_of: TimestampWithTimeZone, old: &RoaringTreemap, touched: Touched, kind: TypeKind, number: bool) -> Result<RoaringTreemap, Unnumbered> {
    // nothing touched (writes that changed no rows, a minute without rows at a window's ends)
    if touched.len() == 0 {
        return Ok(old.clone());
    }
    let mut a = args(as_of, &patch.query.params);
    let gone = match touched {
        Touched::Ids(ids) => {
            a.push(ids.iter().map(|k| k as i64).collect::<Vec<i64>>().into());
            ids
        }
        Touched::Keys(keys) => {
            let keys: Vec<String> = keys.into_iter().collect();
            let ids = dense_ids::ids(client, dense_ids::Keys::from_texts(&keys, kind), false)?;
            a.push(keys.into());
            ids
        }
    };
    let rows = client.select(&patch.query.sql, None, &a).unwrap_or_else(|e| internal("evaluating a condition failed", e));
    let now = match raw(&rows.first(), 1, kind) {
        Raw::Bitmap(b) => b,
        Raw::Keys(keys) => dense_ids::ids(client, keys, number)?,
    };
    let mut out = old - &gone;
    out |= now;
    Ok(out)
}

/// The leaf's arguments, then each bound's value at `from` and at `to`, the lower one first.
fn shift_args(leaf: &Leaf, shift: &Shift, from: TimestampWithTimeZone, to: TimestampWithTimeZone) -> Vec<pgrx::datum::DatumWithOid<'static>> {
    let mut a = args(to, &leaf.query.params);
    // every bound is as_of, or as_of (or its date) minus an interval: it grows with as_of
    let (lo, hi) = if from <= to { (from, to) } else { (to, from) };
    for b in &shift.bounds {
        match b {
            Bound::AsOf => {
                a.push(lo.into());
                a.push(hi.into());
            }
            Bound::Param(i) => {
                let p = &leaf.query.params[*i];
                a.push(super::params::bind(lo, p));
                a.push(super::params::bind(hi, p));
            }
        }
    }
    a
}

thread_local! {
    /// the planner's estimate of each leaf statement's cost (by its relations' definitions, SQL and
    /// parameters), asked once a session
    static BUILD_COST: RefCell<HashMap<String, f64>> = RefCell::new(HashMap::new());
}

/// The planner's estimated total cost of a statement with these arguments: planned as it would
/// run (a cursor is opened, not read, and closed; EXPLAIN is refused in a stable function).
fn estimate(client: &SpiClient, sql: &str, args: &[pgrx::datum::DatumWithOid]) -> f64 {
    let cursor = client.try_open_cursor(sql, args).unwrap_or_else(|e| internal("planning a condition failed", e));
    let name = std::ffi::CString::new(cursor.detach_into_name()).unwrap_or_else(|e| internal("planning a condition failed", e));
    // SAFETY: the portal was just opened by SPI in this transaction; its statements are PlannedStmt
    unsafe {
        let portal = pg_sys::SPI_cursor_find(name.as_ptr());
        if portal.is_null() {
            return f64::INFINITY;
        }
        let stmts = pgrx::PgList::<pg_sys::PlannedStmt>::from_pg((*portal).stmts);
        let cost = stmts.get_ptr(0).and_then(|s| (*s).planTree.as_ref()).map_or(f64::INFINITY, |p| p.total_cost);
        pg_sys::SPI_cursor_close(portal);
        cost
    }
}

/// The contacts whose answer to the leaf may differ at `to` from at `from`, when finding them is
/// estimated to cost under a quarter of building the leaf (with no index on the compared column
/// it is a scan like the build: then the leaf is built).
fn moved(client: &SpiClient, leaf: &Leaf, shift: &Shift, fingerprint: &str, from: TimestampWithTimeZone, to: TimestampWithTimeZone, kind: TypeKind) -> Option<Touched> {
    let a = shift_args(leaf, shift, from, to);
    let key = format!("{fingerprint}\u{1f}{}\u{1f}{:?}", leaf.query.sql, leaf.query.params);
    let build = BUILD_COST.with(|c| c.borrow().get(&key).copied());
    let build = build.unwrap_or_else(|| {
        let cost = estimate(client, &leaf.query.sql, &args(to, &leaf.query.params));
        BUILD_COST.with(|c| {
            let mut c = c.borrow_mut();
            if c.len() >= 1024 {
                c.clear();
            }
            c.insert(key, cost)
        });
        cost
    });
    if estimate(client, &shift.sql, &a) * 4.0 > build {
        return None;
    }
    let rows = client.select(&shift.sql, None, &a).unwrap_or_else(|e| internal("evaluating a condition failed", e));
    Some(if kind == TypeKind::Integer {
        Touched::Ids(bitmap_at(&rows.first(), 1))
    } else {
        let keys = rows.first().get::<Vec<String>>(1).unwrap_or_else(|e| internal("evaluating a condition failed", e));
        Touched::Keys(keys.unwrap_or_default().into_iter().collect())
    })
}

/// Plans the rule (raising its problems) and evaluates every leaf; keys without an id that this
/// transaction may not number are an error (see [`try_evaluate`]).
pub fn evaluate(rule: &Rule, model: &Model, as_of: TimestampWithTimeZone, regex: compile::RegexCheck) -> Evaluation {
    try_evaluate(rule, model, as_of, regex).unwrap_or_else(|u| dense_ids::unnumbered(&u))
}

/// Plans the rule (raising its problems) and evaluates every leaf: from this session's cache,
/// else from the shared cache, else built (and then kept in both) — whatever is fresh. Over keys
/// that are not integers, the contacts are numbered (src/pg/dense_ids.rs); `Err` when some have
/// no id and this transaction may not number them.
pub fn try_evaluate(rule: &Rule, model: &Model, as_of: TimestampWithTimeZone, regex: compile::RegexCheck) -> Result<Evaluation, Unnumbered> {
    let plan = compile::plan(rule, model, regex).unwrap_or_else(|p| raise(&p));
    let as_of = super::error::timely(as_of, "as_of");
    let cap = CACHE_MB.get().max(0) as usize * 1024 * 1024;
    let shared_cap = SHARED_MB.get().max(0) as usize * 1024 * 1024;
    let as_of_text = format!("{as_of:?}");
    let started = Instant::now();
    let mut shared_new: Vec<leaf_cache::New> = Vec::new();
    let kind = model.contacts.as_ref().map_or(TypeKind::Integer, |c| c.key.kind);
    // "all contacts" (last) only when an answer needs them
    let with_universe = plan.needs_universe();
    let mut run = || Spi::connect_mut(|client| {
        let all: Vec<&Leaf> = plan.leaves.iter().chain(with_universe.then_some(&plan.universe)).collect();
        let mut oids: Vec<u32> = all.iter().flat_map(|l| l.relations.iter().copied()).collect();
        oids.sort_unstable();
        oids.dedup();
        let caching = cap > 0 || shared_cap > 0;
        let sources = if caching { read_sources(client, &oids) } else { HashMap::new() };
        let read: Vec<u32> = sources.values().flat_map(|s| s.relations.iter().copied()).collect();
        // the change log from the oldest of this rule's cached bitmaps on (every entry of one of its
        // statements, whatever its role or as_of; an old bitmap of another rule would have every
        // count read the log since it was built)
        let from_xid = CACHE.with(|c| {
            c.borrow().entries.values().filter(|e| all.iter().any(|l| l.query.sql == e.sql)).map(|e| e.built.snapshot.xmin).min().unwrap_or(u64::MAX)
        });
        let reader = caching.then(|| read_reader(client, &read, &oids, from_xid, as_of));
        let total = all.len();
        let identities: Vec<Option<(String, Built)>> =
            all.iter().map(|l| reader.as_ref().and_then(|r| leaf_identity(l, &sources, r, &as_of_text))).collect();
        // fresh bitmaps from this session's cache; those that only missed writes may be patched
        let mut behind: Vec<Option<(Rc<RoaringTreemap>, Vec<Change>)>> = vec![None; total];
        let mut got: Vec<Option<Rc<RoaringTreemap>>> = identities
            .iter()
            .enumerate()
            .map(|(i, identity)| {
                let ((key, built), r) = (identity.as_ref()?, reader.as_ref()?);
                CACHE.with(|c| {
                    let mut c = c.borrow_mut();
                    c.clock += 1;
                    let clock = c.clock;
                    let e = c.entries.get_mut(key)?;
                    match freshness(&e.built, &r.snapshot, &built.fingerprint, &r.changes, r.horizon) {
                        Freshness::Fresh => {
                            e.hits += 1;
                            e.last_used = clock;
                            Some(e.bitmap.clone())
                        }
                        Freshness::Behind(missed) => {
                            behind[i] = Some((e.bitmap.clone(), missed));
                            None
                        }
                        Freshness::Unusable => None,
                    }
                })
            })
            .collect();
        // the key but for as_of of the leaves whose bitmaps can be shifted to another as_of
        // (for those this session's cache did not answer: a warm count needs none)
        let moves: Vec<Option<(String, TimestampWithTimeZone)>> = (0..total)
            .map(|i| {
                let shift = all[i].patch.as_ref().and_then(|p| p.shift.as_ref());
                let wanted = got[i].is_none() && shift.is_some() && identities[i].is_some();
                Some((moves_key(all[i], reader.as_ref().filter(|_| wanted)?), as_of))
            })
            .collect();
        let keep = |key: String, entry: Entry| {
            // ids this transaction numbered go away if it rolls back: nothing outlives it then
            if cap > 0 && !dense_ids::numbered_here() {
                CACHE.with(|c| c.borrow_mut().insert(key, entry, cap));
            }
        };
        // then from the shared cache
        if let (true, Some(r)) = (shared_cap > 0, reader.as_ref()) {
            // an entry that missed writes is of use only to a leaf that can be patched
            let patching = PATCH_LIMIT.get() > 0;
            let wanted: HashMap<String, (String, bool)> = (0..total)
                .filter(|i| got[*i].is_none())
                .filter_map(|i| identities[i].as_ref().map(|(k, b)| (k.clone(), (b.fingerprint.clone(), patching && all[i].patch.is_some()))))
                .collect();
            if !wanted.is_empty() {
                let mut found = leaf_cache::lookup(client, &wanted, &r.snapshot, r.horizon);
                for i in 0..total {
                    let Some((key, _)) = identities[i].as_ref().filter(|_| got[i].is_none()) else { continue };
                    let Some(f) = found.remove(key) else { continue };
                    if !f.missed.is_empty() {
                        // the one that missed fewer writes
                        if behind[i].as_ref().is_none_or(|(_, m)| m.len() > f.missed.len()) {
                            behind[i] = Some((f.bitmap, f.missed));
                        }
                        continue;
                    }
                    let bytes = f.bitmap.serialized_size() + all[i].query.sql.len();
                    let last_used = CACHE.with(|c| c.borrow().clock);
                    let entry = Entry { bitmap: f.bitmap.clone(), origin: Origin::Shared, built: f.built, label: f.label, sql: all[i].query.sql.clone(), moves: moves[i].clone(), bytes, build_ms: f.build_ms, built_at: f.built_at, hits: 1, last_used };
                    keep(key.clone(), entry);
                    got[i] = Some(f.bitmap);
                }
            }
        }
        let mut store = |i: usize, bitmap: &Rc<RoaringTreemap>, build_ms: f64, origin: Origin| {
            if let Some((key, built)) = identities[i].clone() {
                if shared_cap > 0 {
                    shared_new.push(leaf_cache::New { key: key.clone(), built: built.clone(), label: all[i].label.clone(), bitmap: bitmap.clone(), build_ms, moves: moves[i].clone() });
                }
                let entry = Entry {
                    bitmap: bitmap.clone(),
                    origin,
                    built,
                    label: all[i].label.clone(),
                    sql: all[i].query.sql.clone(),
                    moves: moves[i].clone(),
                    bytes: bitmap.serialized_size() + all[i].query.sql.len(),
                    build_ms,
                    built_at: pgrx::datum::TimestampWithTimeZone::try_from(unsafe { pg_sys::GetCurrentTimestamp() }).unwrap_or(as_of),
                    hits: 0,
                    last_used: CACHE.with(|c| c.borrow().clock),
                };
                keep(key, entry);
            }
        };
        if let limit @ 1.. = PATCH_LIMIT.get().max(0) as usize {
            // a leaf that moves with as_of, cached at another as_of only: the nearest such bitmap
            // that is fresh or only missed writes, shifted below
            let mut from: Vec<Option<TimestampWithTimeZone>> = vec![None; total];
            if let Some(r) = reader.as_ref() {
                let wanting: Vec<usize> = (0..total).filter(|i| got[*i].is_none() && behind[*i].is_none()).collect();
                for i in wanting {
                    let (Some((key, at)), Some((_, built))) = (moves[i].as_ref(), identities[i].as_ref()) else { continue };
                    if let Some((bitmap, missed, then)) = nearest_kept(key, *at, &built.fingerprint, r) {
                        behind[i] = Some((bitmap, missed));
                        from[i] = Some(then);
                    }
                }
                // else the shared cache's nearest
                let wanting: Vec<usize> = (0..total).filter(|i| got[*i].is_none() && behind[*i].is_none()).collect();
                let wanted: HashMap<String, String> =
                    wanting.iter().filter_map(|i| Some((moves[*i].as_ref()?.0.clone(), identities[*i].as_ref()?.1.fingerprint.clone()))).collect();
                if shared_cap > 0 && !wanted.is_empty() {
                    let found = leaf_cache::nearest(client, &wanted, as_of, &r.snapshot, r.horizon);
                    for i in wanting {
                        let Some(f) = moves[i].as_ref().and_then(|(k, _)| found.get(k)) else { continue };
                        behind[i] = Some((f.bitmap.clone(), f.missed.clone()));
                        from[i] = f.as_of;
                    }
                }
            }
            // bitmaps that missed writes or are of another as_of: re-evaluated for the contacts
            // those writes touched and those whose rows compare otherwise with the new as_of
            // all contacts (last) first: over uuid and text keys it numbers new contacts, as a build does
            let due: Vec<usize> = (0..total).rev().filter(|i| got[*i].is_none() && behind[*i].is_some() && all[*i].patch.is_some()).collect();
            let missed: Vec<Change> = due.iter().flat_map(|i| behind[*i].iter().flat_map(|(_, m)| m.iter().copied())).collect();
            let texts = kind != TypeKind::Integer;
            let (ints, keys) = match (missed.is_empty(), texts) {
                (true, _) => (Vec::new(), Vec::new()),
                (false, false) => (read_logged(client, &missed, |r| r.get::<Vec<i64>>(3).ok().flatten()), Vec::new()),
                (false, true) => (Vec::new(), read_logged(client, &missed, |r| r.get::<Vec<String>>(5).ok().flatten())),
            };
            for i in due {
                let (Some((old, missed)), Some(patch)) = (behind[i].as_ref(), all[i].patch.as_ref()) else { continue };
                let mut touched_now = if texts {
                    let Some(k) = touched(missed, &keys, &patch.keys, limit) else { continue };
                    Touched::Keys(k.into_iter().collect())
                } else {
                    let Some(k) = touched(missed, &ints, &patch.keys, limit) else { continue };
                    Touched::Ids(k.iter().map(|k| *k as u64).collect())
                };
                pgrx::check_for_interrupts!();
                let t0 = Instant::now();
                if let (Some(then), Some(shift)) = (from[i], patch.shift.as_ref()) {
                    let fingerprint = identities[i].as_ref().map_or("", |(_, b)| b.fingerprint.as_str());
                    match moved(client, all[i], shift, fingerprint, then, as_of, kind) {
                        Some(m) => touched_now.add(m),
                        None => continue,
                    }
                    if touched_now.len() > limit as u64 {
                        continue;
                    }
                }
                let number = !with_universe || i == total - 1;
                let bitmap = Rc::new(patched(client, patch, as_of, old, touched_now, kind, number)?);
                store(i, &bitmap, t0.elapsed().as_secs_f64() * 1000.0, Origin::Patched);
                got[i] = Some(bitmap);
            }
        }
        let mut built: Vec<(usize, Raw, f64)> = Vec::new();
        // conditions on the contacts' own columns (and all contacts) that must be built: one scan
        let batch: Vec<usize> = (0..total).filter(|i| got[*i].is_none() && all[*i].filter.is_some()).collect();
        if batch.len() >= 2 {
            if let Some(contacts) = model.contacts.as_ref() {
                pgrx::check_for_interrupts!();
                let t0 = Instant::now();
                let q = compile::one_scan(&batch.iter().map(|i| all[*i]).collect::<Vec<_>>(), contacts);
                let rows = client.select(&q.sql, None, &args(as_of, &q.params)).unwrap_or_else(|e| internal("evaluating conditions failed", e));
                let row = rows.first();
                let build_ms = t0.elapsed().as_secs_f64() * 1000.0 / batch.len() as f64;
                for (col, i) in batch.iter().enumerate() {
                    built.push((*i, raw(&row, col + 1, kind), build_ms));
                }
                if started.elapsed().as_secs() >= 2 {
                    notice!("segplan: {} conditions on the contacts evaluated in one scan in {:.0} ms", batch.len(), build_ms * batch.len() as f64);
                }
            }
        }
        for i in 0..total {
            if got[i].is_some() || built.iter().any(|b| b.0 == i) {
                continue;
            }
            pgrx::check_for_interrupts!();
            let t0 = Instant::now();
            let raw = build(client, all[i], as_of, kind);
            let build_ms = t0.elapsed().as_secs_f64() * 1000.0;
            if started.elapsed().as_secs() >= 2 {
                let n = match &raw {
                    Raw::Bitmap(b) => b.len(),
                    Raw::Keys(k) => k.len() as u64,
                };
                notice!("segplan: condition {}/{total} ({}) evaluated: {n} contacts in {build_ms:.0} ms", i + 1, all[i].label);
            }
            built.push((i, raw, build_ms));
        }
        // Keys become ids: all contacts' (the universe, last) are numbered first; any other
        // leaf's key without an id is no contact the caller can see, and every answer is within
        // the universe. Without the universe, every leaf is of contacts' own columns: its keys
        // are contacts the caller sees, numbered as they come.
        built.sort_by_key(|b| std::cmp::Reverse(b.0));
        for (i, raw, build_ms) in built {
            let bitmap = Rc::new(match raw {
                Raw::Bitmap(b) => b,
                Raw::Keys(keys) => {
                    pgrx::check_for_interrupts!();
                    dense_ids::ids(client, keys, !with_universe || i == total - 1)?
                }
            });
            store(i, &bitmap, build_ms, Origin::Built);
            got[i] = Some(bitmap);
        }
        let mut leaves: Vec<Rc<RoaringTreemap>> = got.into_iter().map(|b| b.unwrap_or_default()).collect();
        let universe = if with_universe { leaves.pop() } else { None };
        Ok((universe, leaves))
    });
    // uuid and text keys: the statements' workers look ids up themselves
    let evaluated = if kind == TypeKind::Integer { run() } else { dense_ids::sharing(&mut run) };
    let (universe, leaves) = evaluated?;
    // SAFETY: the current user, as the statements above ran
    leaf_cache::store(unsafe { pg_sys::GetUserId() }, shared_new, shared_cap);
    Ok(Evaluation { plan, universe, leaves })
}

/// The contacts grouped by one of their columns: per value (as text, `''` for NULL), its contacts.
pub type Partition = Vec<(String, RoaringTreemap)>;

thread_local! {
    /// partitions built in this session, with what they were built on (at most 8 kept)
    static PARTITIONS: RefCell<HashMap<String, (Built, Rc<Partition>)>> = RefCell::new(HashMap::new());
}

/// The contacts partitioned by their column `column` (quoted SQL): one grouped scan, run as the
/// caller, then kept in this session and reused while fresh, under the same rules as a leaf
/// (same role and settings, no change to the contacts since, never under row-level security).
pub fn partition(client: &SpiClient, model: &Model, column: &str, as_of: TimestampWithTimeZone) -> Rc<Partition> {
    let Some(contacts) = model.contacts.as_ref() else { return Rc::default() };
    let (k, rel, oid) = (&contacts.key.sql, &contacts.rel.sql, contacts.rel.oid);
    let sql = format!(
        "SELECT coalesce(c.{column}::text, ''), segplan.rb64_build_agg(c.{k}::bigint)::pg_catalog.bytea FROM {rel} AS c WHERE c.{k} IS NOT NULL GROUP BY 1"
    );
    let leaf = Leaf { query: compile::Query { sql, params: Vec::new() }, as_of: AsOf::No, relations: vec![oid], label: format!("contacts by {column}"), filter: None, patch: None };
    let sources = read_sources(client, &[oid]);
    let all: Vec<u32> = sources.values().flat_map(|s| s.relations.iter().copied()).collect();
    let from_xid = PARTITIONS.with(|p| p.borrow().values().map(|(b, _)| b.snapshot.xmin).min().unwrap_or(u64::MAX));
    let reader = read_reader(client, &all, &[oid], from_xid, as_of);
    let identity = leaf_identity(&leaf, &sources, &reader, "");
    if let Some((key, built)) = &identity {
        let kept = PARTITIONS.with(|p| {
            p.borrow().get(key).filter(|(b, _)| is_fresh(b, &reader.snapshot, &built.fingerprint, &reader.changes, reader.horizon)).map(|(_, x)| x.clone())
        });
        if let Some(x) = kept {
            return x;
        }
    }
    let rows = client.select(&leaf.query.sql, None, &[]).unwrap_or_else(|e| internal("grouping the contacts failed", e));
    let mut parts = Partition::new();
    for row in rows {
        pgrx::check_for_interrupts!();
        let value = row.get::<String>(1).ok().flatten().unwrap_or_default();
        let bytes = row.get::<Vec<u8>>(2).unwrap_or_else(|e| internal("reading a group's bitmap failed", e)).unwrap_or_default();
        parts.push((value, bitmap::from_trusted_bytes64(&bytes).unwrap_or_else(|e| internal("reading a group's bitmap failed", e))));
    }
    let parts = Rc::new(parts);
    if let Some((key, built)) = identity {
        PARTITIONS.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() >= 8 {
                p.clear();
            }
            p.insert(key, (built, parts.clone()));
        });
    }
    parts
}

/// This session's cached leaf bitmaps: built here, or taken from the shared cache.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn cache_stats() -> TableIterator<
    'static,
    (
        name!(condition, String),
        name!(contacts, i64),
        name!(bytes, i64),
        name!(hits, i64),
        name!(build_ms, f64),
        name!(built_at, TimestampWithTimeZone),
        name!(origin, String),
    ),
> {
    let mut rows: Vec<_> = CACHE.with(|c| {
        c.borrow()
            .entries
            .values()
            .map(|e| {
                let origin = match e.origin {
                    Origin::Built => "built",
                    Origin::Shared => "shared",
                    Origin::Patched => "patched",
                };
                (e.label.clone(), e.bitmap.len() as i64, e.bytes as i64, e.hits, e.build_ms, e.built_at, origin.to_string())
            })
            .collect()
    });
    rows.sort_by(|a, b| b.3.cmp(&a.3).then(a.0.cmp(&b.0)));
    TableIterator::new(rows)
}

/// The shared cache's bitmaps for the current role (every session's builds), newest first.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn shared_cache_stats() -> TableIterator<
    'static,
    (name!(condition, String), name!(contacts, i64), name!(bytes, i64), name!(build_ms, f64), name!(built_at, TimestampWithTimeZone)),
> {
    // SAFETY: the current user
    TableIterator::new(leaf_cache::entries(unsafe { pg_sys::GetUserId() }))
}

/// Drops this session's cached bitmaps and the current role's in the shared cache, and prunes the
/// change log; returns the number dropped.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn cache_clear() -> i64 {
    let n = CACHE.with(|c| {
        let mut c = c.borrow_mut();
        let n = c.entries.len() as i64;
        *c = Cache::default();
        n
    }) + PARTITIONS.with(|p| p.borrow_mut().drain().count() as i64);
    // SAFETY: the current user
    let shared = leaf_cache::clear(unsafe { pg_sys::GetUserId() });
    // a standby cannot write: its primary prunes the log
    if leaf_cache::primary() {
        Spi::run("SELECT segplan._prune_changes()").unwrap_or_else(|e| internal("pruning the change log failed", e));
    }
    n + shared
}
