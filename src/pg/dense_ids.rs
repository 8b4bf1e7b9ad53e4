//! Dense ids for contact keys that are not integers (uuid, text): a `roaringbitmap64` holds
//! numbers, so such a key gets one, for good, in `segplan.contact_ids` (sql/bootstrap.sql).
//!
//! Leaf statements return their contacts through `segplan._ids_agg` (uuid) or `segplan._keys_agg`
//! (text): one `bytea` each, built in parallel, of the ids found in the session's shared copy and
//! the keys not found (src/pg/id_share.rs).
//! Keys only ever come from a statement the caller ran as itself — the contacts it can see — and
//! are looked up or numbered here as segplan's owner (src/pg/owner.rs): no role reads the table,
//! so none can learn another brand's keys or whether a key it cannot see exists. The one other
//! source: the keys writes logged, whose ids a patch takes out of a cached bitmap (src/pg/engine.rs)
//! — looked up, never numbered, and never shown (the bitmap holds only ids the caller's own
//! statements returned). Ids go back to
//! keys only for bitmaps the caller's own statements produced, or (`keys_of`) filtered through
//! the contacts as the caller sees them.
//!
//! Numbering writes in the caller's transaction, so it happens only in a READ COMMITTED
//! transaction that may write ([`may_number`]); elsewhere keys without an id make the rule
//! functions fall back to one SQL statement (`segplan.number_contacts()` numbers ahead, e.g. from
//! pg_cron). New keys are inserted in sorted order, so two sessions numbering overlapping keys
//! never deadlock; one that meets a key another open transaction is numbering waits for it, as
//! any insert of the same unique key does. Ids are never reused (a sequence), and a bitmap built
//! with ids this transaction numbered is not kept in the session's memory until it commits
//! ([`numbered_here`]): a rollback takes the ids away.
//!
//! Ids read from the table are remembered ([`Known`]): a committed id never changes, so a leaf's
//! keys become ids in memory — in the database's shared copy (src/pg/id_share.rs), then among the
//! ids the session learnt beside it (text keys by their fingerprint, `idmap::fingerprint`) — and
//! only keys neither holds are looked up, in one statement — the whole table at once when there
//! are many.
use super::agg::state_value;
use super::bitmap64_type::Roaringbitmap64;
use super::catalog::current_model;
use super::error::{internal, raise_one, report};
use super::id_share;
use super::owner::as_owner;
use pgrx::datum::{Array, DatumWithOid, Internal};
use pgrx::prelude::*;
use pgrx::spi::{SpiClient, SpiTupleTable};
use pgrx::PgSqlErrorCode;
use segplan_core::idmap::{self, IdMap};
use segplan_core::bitmap::RoaringTreemap;
use segplan_core::compile;
use segplan_core::model::{ContactSource, Model, TypeKind};
use std::cell::{Cell, RefCell};

/// The ids of the uuid keys that have one, as one value ([`learn_rows`]).
const LOOKUP_UUIDS_SQL: &str = "\
SELECT segplan._map_agg(m.key, m.id) FROM pg_catalog.unnest($1::text[]) AS k(key)
JOIN segplan.contact_ids AS m ON m.key = k.key COLLATE \"C\"";

/// The same for text keys, by their fingerprint, as one value ([`learn_rows`]).
const LOOKUP_PRINTS_SQL: &str = "\
SELECT segplan._prints_agg(m.key, m.id) FROM pg_catalog.unnest($1::text[]) AS k(key)
JOIN segplan.contact_ids AS m ON m.key = k.key COLLATE \"C\"";

const LOAD_UUIDS_SQL: &str = "SELECT segplan._map_agg(m.key, m.id) FROM segplan.contact_ids AS m";
const LOAD_PRINTS_SQL: &str = "SELECT segplan._prints_agg(m.key, m.id) FROM segplan.contact_ids AS m";

/// Numbers the keys in the order the statement met them and returns the rows added. That is a
/// scan's order: a later scan then meets ids mostly one after another, and its workers find a
/// row's id a few places past the previous row's (src/pg/id_share.rs) instead of probing a table
/// per key. (Inserted in the key index's order; the id index fills out of order: 8.8 s per 1M
/// new keys against 4.8 s when ids followed the keys' order, once per contact.)
const NUMBER_SQL: &str = "\
WITH added AS (INSERT INTO segplan.contact_ids (key, id)
  SELECT a.key, a.id FROM (
    SELECT f.key, pg_catalog.nextval('segplan.contact_id_seq') AS id
    FROM (SELECT k.key COLLATE \"C\" AS key, pg_catalog.min(k.n) AS n FROM pg_catalog.unnest($1::text[]) WITH ORDINALITY AS k(key, n)
          GROUP BY 1 ORDER BY 2) AS f) AS a
  ORDER BY a.key ON CONFLICT DO NOTHING RETURNING key, id)
SELECT pg_catalog.array_agg(a.key), pg_catalog.array_agg(a.id) FROM added AS a";

const KEYS_SQL: &str = "\
SELECT m.key FROM pg_catalog.unnest($1::int8[]) AS i(id) JOIN segplan.contact_ids AS m ON m.id = i.id";

/// Keys a statement returned: uuids as their bytes, with the ids `segplan._ids_agg` found for
/// others in the statement itself (src/pg/id_share.rs); any other key as text.
pub enum Keys {
    Uuid(Vec<[u8; 16]>, RoaringTreemap),
    /// the keys, their fingerprints (`idmap::fingerprint`, made once), the ids found
    Text(Vec<String>, Vec<[u8; 16]>, RoaringTreemap),
}

impl Keys {
    /// Column `col` of a statement's current row: `segplan._ids_agg` (uuid) or
    /// `segplan._keys_agg` of keys of type `kind` (NULL is none).
    pub fn read(row: &SpiTupleTable, col: usize, kind: TypeKind) -> Keys {
        let bytes = row.get::<&[u8]>(col).unwrap_or_else(|e| internal("reading contact keys failed", e));
        let keys = match (kind, bytes) {
            (TypeKind::Uuid, None) => Some(Keys::Uuid(Vec::new(), RoaringTreemap::new())),
            (TypeKind::Uuid, Some(b)) => id_share::read(b, false).map(|(keys, ids)| Keys::Uuid(keys, ids)),
            (_, None) => Some(Keys::Text(Vec::new(), Vec::new(), RoaringTreemap::new())),
            (_, Some(b)) => id_share::read_texts(b, false).map(|(keys, ids)| {
                let prints = keys.iter().map(|k| idmap::fingerprint(k.as_bytes())).collect();
                Keys::Text(keys, prints, ids)
            }),
        };
        keys.unwrap_or_else(|| internal("reading contact keys failed", "malformed key list"))
    }

    /// Keys given as text (a uuid in any form uuid_in reads; one that is not a uuid has no id).
    pub fn from_texts(texts: &[String], kind: TypeKind) -> Keys {
        if kind == TypeKind::Uuid {
            let uuids = texts.iter().filter_map(|t| uuid_bytes(t)).collect();
            Keys::Uuid(uuids, RoaringTreemap::new())
        } else {
            let prints = texts.iter().map(|k| idmap::fingerprint(k.as_bytes())).collect();
            Keys::Text(texts.to_vec(), prints, RoaringTreemap::new())
        }
    }

    /// How many contacts: keys to look up and ids found.
    pub fn len(&self) -> usize {
        match self {
            Keys::Uuid(k, found) | Keys::Text(_, k, found) => k.len() + found.len() as usize,
        }
    }

    /// Keys to look up.
    fn count(&self) -> usize {
        self.key16().len()
    }

    /// The keys as the session's ids hold them: a uuid's 16 bytes, a text key's fingerprint.
    fn key16(&self) -> &[[u8; 16]] {
        match self {
            Keys::Uuid(k, _) | Keys::Text(_, k, _) => k,
        }
    }

    /// Key `i` as `segplan.contact_ids` keeps it (a uuid in its canonical text form).
    fn text(&self, i: usize) -> String {
        match self {
            Keys::Uuid(k, _) => pgrx::Uuid::from_bytes(k[i]).to_string(),
            Keys::Text(k, _, _) => k[i].clone(),
        }
    }
}

// Support of `segplan._map_agg(text, bigint)` and `segplan._prints_agg(text, bigint)`: rows of
// `segplan.contact_ids` leave as one value of 24 bytes per row (the key's 16 bytes — a uuid's own,
// a text key's fingerprint — and the id's 8, little-endian), built as the rows come, where two
// `array_agg`s would build and hand over 1M text values and ids.
crate::raw_transition!(@finfo pg_finfo_segplan_map_trans);
crate::raw_transition!(@finfo pg_finfo_segplan_prints_trans);

/// The step of both (C-ABI functions, as `_ids_agg`'s: see agg::raw_step); a row whose key
/// `key16` refuses or whose id is NULL is left out.
///
/// # Safety
/// `fcinfo` is a call of a (internal, text, bigint) step.
unsafe fn pairs_step(fcinfo: pg_sys::FunctionCallInfo, key16: impl Fn(&[u8]) -> Option<[u8; 16]>) -> pg_sys::Datum {
    use pgrx::fcinfo::{pg_arg_is_null, pg_getarg_datum_raw};
    // int8 is passed by value
    let id = (!pg_arg_is_null(fcinfo, 2)).then(|| pg_getarg_datum_raw(fcinfo, 2).value() as u64);
    super::agg::raw_step::<Vec<u8>>(fcinfo, |s, key| {
        // SAFETY: a non-NULL text datum
        if let (Some(key), Some(id)) = (unsafe { super::datum::with_detoasted(key, &key16) }, id) {
            s.value.extend_from_slice(&key);
            s.value.extend_from_slice(&id.to_le_bytes());
            s.seen = true;
        }
    })
}

/// `_map_agg`'s step: uuid keys (text that is not one is left out).
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn segplan_map_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    pairs_step(fcinfo, |b| std::str::from_utf8(b).ok().and_then(uuid_bytes))
}

/// `_prints_agg`'s step: text keys, by their fingerprint.
#[no_mangle]
#[pg_guard]
pub unsafe extern "C-unwind" fn segplan_prints_trans(fcinfo: pg_sys::FunctionCallInfo) -> pg_sys::Datum {
    pairs_step(fcinfo, |b| Some(idmap::fingerprint(b)))
}

#[pg_extern(immutable, parallel_safe)]
fn _map_final(state: Internal) -> Option<&'static [u8]> {
    state_value::<Vec<u8>>(&state).map(|v| v.as_slice())
}

/// The SQL that collects the keys of `FROM {from}` (the contacts as `c`) as [`Keys::read`] reads them.
fn key_array(c: &ContactSource, from: &str) -> String {
    compile::gather(c, &format!("c.{}", c.key.sql), from, false)
}

/// Ids of `segplan.contact_ids` this session has read (or, for one call, rows this transaction
/// numbered).
#[derive(Default)]
struct Known {
    /// the table's oid: a re-created extension is a new numbering
    table: u32,
    /// uuid keys by their 16 bytes, text keys by their fingerprint (`idmap::fingerprint`)
    ids: IdMap,
    /// see id_share::epoch (a new one when the table is another)
    epoch: u64,
}

/// Keys are looked up in the database's shared copy the session maps (src/pg/id_share.rs), then
/// among the ids it learnt since (`ids`).
impl Known {
    fn get(&self, keys: &Keys, i: usize) -> Option<u64> {
        let k = &keys.key16()[i];
        self.ids.get(k).or_else(|| id_share::with_copy(self.epoch, |c| c.and_then(|(t, _)| t.get(k))))
    }

    fn max_id(&self) -> Option<u64> {
        self.ids.max_id().max(id_share::with_copy(self.epoch, |c| c.and_then(|(_, max)| max)))
    }

    /// Looks up keys `which(n)` for `n` in `0..count`, calling `found(n, id)`.
    fn get_each(&self, keys: &Keys, count: usize, which: impl Fn(usize) -> usize, mut found: impl FnMut(usize, Option<u64>)) {
        let k = keys.key16();
        id_share::with_copy(self.epoch, |copy| match copy {
            Some((t, _)) => t.get_each(count, |n| &k[which(n)], |n, id| found(n, id.or_else(|| self.ids.get(&k[which(n)])))),
            None => self.ids.get_each(count, |n| &k[which(n)], found),
        })
    }
}

/// The 16 bytes of a uuid in its canonical text form (`8-4-4-4-12` lower-case hex digits).
pub(crate) fn uuid_bytes(s: &str) -> Option<[u8; 16]> {
    /// where each byte's two digits start
    const AT: [usize; 16] = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
    /// a digit's value, 16 for anything else
    const DIGIT: [u8; 256] = {
        let mut t = [16u8; 256];
        let mut c = 0;
        while c < 10 {
            t[b'0' as usize + c] = c as u8;
            c += 1;
        }
        let mut c = 0;
        while c < 6 {
            t[b'a' as usize + c] = 10 + c as u8;
            c += 1;
        }
        t
    };
    let b = s.as_bytes();
    if b.len() != 36 || [8, 13, 18, 23].iter().any(|i| b[*i] != b'-') {
        return None;
    }
    let mut out = [0u8; 16];
    let mut bad = 0;
    for (o, at) in out.iter_mut().zip(AT) {
        let (hi, lo) = (DIGIT[b[at] as usize], DIGIT[b[at + 1] as usize]);
        bad |= hi | lo;
        *o = hi << 4 | lo;
    }
    // every digit below 16: bit 4 never set
    (bad & 16 == 0).then_some(out)
}

thread_local! {
    /// the top transaction that last numbered keys
    static NUMBERED_IN: Cell<u64> = const { Cell::new(0) };
    static KNOWN: RefCell<Known> = RefCell::new(Known::default());
}

/// Keys lacked ids and this transaction may not number them.
#[derive(Debug)]
pub struct Unnumbered {
    pub keys: usize,
}

fn top_xid() -> u64 {
    // SAFETY: reads backend-global transaction state
    unsafe { pg_sys::GetTopFullTransactionIdIfAny() }.value
}

/// Whether this transaction has numbered keys: its bitmaps may hold ids a rollback takes away.
pub fn numbered_here() -> bool {
    let top = top_xid();
    top != 0 && NUMBERED_IN.with(Cell::get) == top
}

/// Whether this transaction may number keys: READ COMMITTED (an insert never fails it for a key
/// a concurrent transaction numbered), writable, not in recovery or parallel mode.
pub fn may_number() -> bool {
    // SAFETY: reads of backend-global transaction state
    unsafe {
        !pg_sys::RecoveryInProgress()
            && !pg_sys::XactReadOnly
            && !pg_sys::IsInParallelMode()
            && pg_sys::XactIsoLevel == pg_sys::XACT_READ_COMMITTED as i32
    }
}

fn table_oid() -> u32 {
    // SAFETY: catalog lookups by name
    unsafe {
        let ns = pg_sys::get_namespace_oid(c"segplan".as_ptr(), true);
        pg_sys::get_relname_relid(c"contact_ids".as_ptr(), ns).to_u32()
    }
}

/// Forgets the ids of a `segplan.contact_ids` that is no more (the extension was re-created).
fn current_table() {
    let table = table_oid();
    KNOWN.with(|k| {
        let mut k = k.borrow_mut();
        if k.table != table {
            *k = Known { table, epoch: id_share::epoch(), ..Known::default() };
        }
    });
}

/// Runs `f`, whose statements may use `segplan._ids_agg`, with the ids this session knows
/// shared with their parallel workers (src/pg/id_share.rs): the database's copy, adopted when
/// the session has none yet. Ids `f` made the session read (a session that found no copy reads
/// them all) go into a copy after it, for the next statement and the next session.
pub fn sharing<T>(f: impl FnOnce() -> T) -> T {
    current_table();
    let publish = || {
        KNOWN.with(|k| {
            let mut k = k.borrow_mut();
            let epoch = k.epoch;
            if k.ids.is_empty() {
                id_share::adopt(epoch);
            }
            id_share::publish(&mut k.ids, epoch)
        })
    };
    let out = id_share::with_setting(publish(), f);
    publish();
    out
}

/// Learns the keys and ids a statement returned, read in place: two arrays (numbering), or one
/// value of `segplan._map_agg` (uuid keys) or `segplan._prints_agg` (text keys' fingerprints).
fn learn_rows(rows: SpiTupleTable, uuid: bool, into: &mut Known) -> usize {
    fn fail<T>(e: pgrx::spi::Error) -> T {
        internal("reading contact ids failed", e)
    }
    if rows.columns().unwrap_or_else(fail) == 1 {
        let Some(packed) = rows.first().get::<&[u8]>(1).unwrap_or_else(fail) else {
            return 0;
        };
        let pairs: Vec<([u8; 16], u64)> = packed.chunks_exact(24).map(|c| (c[..16].try_into().unwrap_or_default(), u64::from_le_bytes(c[16..].try_into().unwrap_or_default()))).collect();
        into.ids.insert_all(&pairs);
        return pairs.len();
    }
    let row = rows.first();
    let (Some(keys), Some(ids)) = (row.get::<Array<&str>>(1).unwrap_or_else(fail), row.get::<Array<i64>>(2).unwrap_or_else(fail)) else {
        return 0;
    };
    let mut n = 0;
    let pairs = keys.iter().zip(ids.iter()).filter_map(|(k, id)| {
        if n % 65536 == 0 {
            pgrx::check_for_interrupts!();
        }
        n += 1;
        Some((k?, id? as u64))
    });
    // parsed (or fingerprinted) first, then inserted in one batch (see IdMap::insert_all)
    let pairs: Vec<([u8; 16], u64)> = if uuid {
        pairs.filter_map(|(k, id)| Some((uuid_bytes(k)?, id))).collect()
    } else {
        pairs.map(|(k, id)| (idmap::fingerprint(k.as_bytes()), id)).collect()
    };
    into.ids.insert_all(&pairs);
    pairs.len()
}

/// The keys of `which` (all keys when `None`) that neither the session nor `local` knows; the ids
/// of the others go to `out`.
fn resolve(keys: &Keys, which: Option<&[usize]>, local: &Known, out: &mut RoaringTreemap) -> Vec<usize> {
    KNOWN.with(|k| {
        let k = k.borrow();
        let count = which.map_or(keys.count(), <[usize]>::len);
        let index = |n: usize| which.map_or(n, |w| w[n]);
        let mut missing = Vec::new();
        let mut found = Vec::with_capacity(count);
        k.get_each(keys, count, index, |n, id| {
            if n % 65536 == 0 {
                pgrx::check_for_interrupts!();
            }
            match id.or_else(|| local.get(keys, index(n))) {
                Some(id) => found.push(id),
                None => missing.push(index(n)),
            }
        });
        // ids follow the keys' numbering order, not the scan's
        let max = k.max_id().max(local.max_id()).unwrap_or(0);
        if out.is_empty() {
            *out = idmap::collect(found, max);
        } else {
            *out |= idmap::collect(found, max);
        }
        missing
    })
}

/// Above this many keys without an id, a statement numbers every contact first ([`number_all`]).
const NUMBER_ALL_ABOVE: usize = 10_000;

/// The ids of `keys` (keys the caller's own statement returned) and how many keys were numbered.
/// Keys without an id are left out, or with `number` numbered first — `Err` when this
/// transaction may not. Many keys without an id (a table loaded or first counted) are numbered
/// with all contacts, in the contacts' order ([`number_all`]), not in the order of the statement
/// that met them (which a parallel scan interleaves).
fn lookup(client: &mut SpiClient, mut keys: Keys, number: bool) -> Result<(RoaringTreemap, usize), Unnumbered> {
    let found = match &mut keys {
        Keys::Uuid(_, found) | Keys::Text(_, _, found) => std::mem::take(found),
    };
    lookup_from(client, &keys, found, number, true)
}

/// [`lookup`], from the ids already found for `keys` (`found`); with `all_first`, many keys without an id
/// are numbered with all contacts first ([`number_all`]).
fn lookup_from(client: &mut SpiClient, keys: &Keys, found: RoaringTreemap, number: bool, all_first: bool) -> Result<(RoaringTreemap, usize), Unnumbered> {
    match lookup_once(client, keys, found, number, all_first)? {
        Lookup::Done(out, added) => Ok((out, added)),
        Lookup::NumberAllFirst(out) => {
            let added = number_all(client)?;
            lookup_from(client, keys, out, number, false).map(|(out, more)| (out, added + more))
        }
    }
}

enum Lookup {
    /// the ids and how many keys were numbered
    Done(RoaringTreemap, usize),
    /// too many keys lack an id: [`number_all`] first, then look again from the ids found so far
    NumberAllFirst(RoaringTreemap),
}

/// Numbers every contact the caller can see that has no id yet, in the order a serial scan meets
/// them (mostly the order later scans meet them in, which lets a scan find a row's id next to the
/// previous row's, src/pg/id_share.rs); returns how many were numbered.
fn number_all(client: &mut SpiClient) -> Result<usize, Unnumbered> {
    let model = current_model();
    let c = contacts(&model);
    let sql = key_array(c, &format!("{} AS c WHERE c.{} IS NOT NULL", c.rel.sql, c.key.sql));
    let all = id_share::with_guc(c"max_parallel_workers_per_gather", c"0", || {
        let rows = client.select(&sql, None, &[]).unwrap_or_else(|e| internal("reading contacts failed", e));
        Keys::read(&rows.first(), 1, c.key.kind)
    });
    lookup_from(client, &all, RoaringTreemap::new(), true, false).map(|(_, added)| added)
}

/// One pass of [`lookup_from`]: with `all_first`, many keys without an id ask for [`number_all`]
/// instead of being numbered.
fn lookup_once(client: &mut SpiClient, keys: &Keys, mut out: RoaringTreemap, number: bool, all_first: bool) -> Result<Lookup, Unnumbered> {
    current_table();
    let uuid = matches!(keys, Keys::Uuid(..));
    let mut local = Known::default();
    let missing = resolve(keys, None, &local, &mut out);
    if missing.is_empty() {
        return Ok(Lookup::Done(out, 0));
    }
    as_owner(|| {
        // only committed rows are remembered: this transaction's own numbering may roll back
        let learn = |local: &mut Known, rows: SpiTupleTable| -> usize {
            if numbered_here() {
                learn_rows(rows, uuid, local)
            } else {
                KNOWN.with(|k| learn_rows(rows, uuid, &mut k.borrow_mut()))
            }
        };
        let select = |sql: &str, args: &[DatumWithOid]| client.select(sql, None, args).unwrap_or_else(|e| internal("reading contact ids failed", e));
        let texts = |which: &[usize]| which.iter().map(|i| keys.text(*i)).collect::<Vec<_>>();
        // many unknown keys (a new session): the whole table at once is cheaper
        let (load, lookup) = if uuid { (LOAD_UUIDS_SQL, LOOKUP_UUIDS_SQL) } else { (LOAD_PRINTS_SQL, LOOKUP_PRINTS_SQL) };
        let rows = if missing.len() > 10_000 && !numbered_here() { select(load, &[]) } else { select(lookup, &[texts(&missing).into()]) };
        learn(&mut local, rows);
        let missing = resolve(keys, Some(&missing), &local, &mut out);
        if missing.is_empty() || !number {
            return Ok(Lookup::Done(out, 0));
        }
        if !may_number() {
            return Err(Unnumbered { keys: missing.len() });
        }
        if all_first && missing.len() > NUMBER_ALL_ABOVE {
            return Ok(Lookup::NumberAllFirst(out));
        }
        pgrx::check_for_interrupts!();
        let rows = client.update(NUMBER_SQL, None, &[texts(&missing).into()]).unwrap_or_else(|e| internal("numbering contacts failed", e));
        NUMBERED_IN.with(|n| n.set(top_xid()));
        let added = learn_rows(rows, uuid, &mut local);
        let mut missing = resolve(keys, Some(&missing), &local, &mut out);
        if !missing.is_empty() {
            // numbered meanwhile by a transaction that has committed since: a new statement sees it
            let rows = client.select(lookup, None, &[texts(&missing).into()]).unwrap_or_else(|e| internal("reading contact ids failed", e));
            learn_rows(rows, uuid, &mut local);
            missing = resolve(keys, Some(&missing), &local, &mut out);
        }
        if !missing.is_empty() {
            internal("numbering contacts failed", format!("{} keys have no id after numbering", missing.len()));
        }
        Ok(Lookup::Done(out, added))
    })
}

/// The ids of `keys` (keys the caller's own statement returned): see [`lookup`].
pub fn ids(client: &mut SpiClient, keys: Keys, number: bool) -> Result<RoaringTreemap, Unnumbered> {
    lookup(client, keys, number).map(|(ids, _)| ids)
}

/// The keys of `ids`, which the caller's own statements produced (ids without a key are skipped).
pub fn keys(client: &SpiClient, ids: &RoaringTreemap) -> Vec<String> {
    let ids: Vec<i64> = ids.iter().map(|i| i as i64).collect();
    if ids.is_empty() {
        return Vec::new();
    }
    as_owner(|| first_column(client.select(KEYS_SQL, None, &[ids.into()]).unwrap_or_else(|e| internal("reading contact keys failed", e))))
}

/// The first column's non-NULL values of every row.
pub(super) fn first_column<T: FromDatum + IntoDatum>(rows: SpiTupleTable) -> Vec<T> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        pgrx::check_for_interrupts!();
        if let Ok(Some(k)) = row.get::<T>(1) {
            out.push(k);
        }
    }
    out
}

fn contacts(model: &Model) -> &ContactSource {
    model.contacts.as_ref().unwrap_or_else(|| raise_one(compile::no_contacts()))
}

/// The contacts the caller can see among `keys` (as text): read as the caller.
fn visible_where(c: &ContactSource) -> String {
    format!("{rel} AS c WHERE c.{k} = ANY ($1::text[]::{t}[])", k = c.key.sql, rel = c.rel.sql, t = c.key.type_sql)
}

// The keys, as text, of the contacts in a bitmap that `segplan.bitmap` returned, among those the
// caller can see: `segplan.keys_of(bitmap roaringbitmap64)`, declared in sql/finalize.sql (all
// rows in one call, see src/pg/srf.rs).
crate::materialized_srf!(keys_of_wrapper, pg_finfo_keys_of_wrapper, |fcinfo| {
    // SAFETY: the function is strict, of one roaringbitmap64
    let bitmap = unsafe { pgrx::fcinfo::pg_getarg::<Roaringbitmap64>(fcinfo, 0) }.unwrap_or_else(|| internal("a strict function got NULL", "bitmap"));
    keys_of(bitmap)
});

fn keys_of(bitmap: Roaringbitmap64) -> Vec<String> {
    let model = current_model();
    let c = contacts(&model);
    Spi::connect(|client| {
        let keys = if c.key.kind == TypeKind::Integer { bitmap.0.iter().map(|k| k.to_string()).collect() } else { keys(client, &bitmap.0) };
        if keys.is_empty() {
            return keys;
        }
        let sql = format!("SELECT c.{}::text FROM {}", c.key.sql, visible_where(c));
        first_column(client.select(&sql, None, &[keys.into()]).unwrap_or_else(|e| internal("reading contacts failed", e)))
    })
}

/// The contacts with these keys (as text) that the caller can see, as a bitmap comparable with
/// `segplan.bitmap`'s; keys without an id are numbered.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn bitmap_of(keys: Vec<Option<String>>) -> Roaringbitmap64 {
    let model = current_model();
    let c = contacts(&model);
    let bad = keys.iter().enumerate().find_map(|(i, k)| compile::key_problem(k.as_deref()?, &c.key, &format!("keys[{}]", i + 1)));
    if let Some(p) = bad {
        raise_one(p);
    }
    let keys: Vec<String> = keys.into_iter().flatten().collect();
    if keys.is_empty() {
        return Roaringbitmap64(RoaringTreemap::new());
    }
    Roaringbitmap64(sharing(|| Spi::connect_mut(|client| {
        if c.key.kind == TypeKind::Integer {
            let sql = format!("SELECT c.{}::bigint FROM {}", c.key.sql, visible_where(c));
            let rows = client.select(&sql, None, &[keys.into()]).unwrap_or_else(|e| internal("reading contacts failed", e));
            return rows.filter_map(|r| r.get::<i64>(1).ok().flatten().and_then(|k| u64::try_from(k).ok())).collect();
        }
        let rows = client.select(&key_array(c, &visible_where(c)), None, &[keys.into()]).unwrap_or_else(|e| internal("reading contacts failed", e));
        let seen = Keys::read(&rows.first(), 1, c.key.kind);
        ids(client, seen, true).unwrap_or_else(|u| unnumbered(&u))
    })))
}

/// Numbers every contact the caller can see that has no id yet (keys that are not integers);
/// returns how many were numbered. Counts do it as they go; this does it ahead, in one place.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn number_contacts() -> i64 {
    let model = current_model();
    let c = contacts(&model);
    if c.key.kind == TypeKind::Integer {
        return 0;
    }
    sharing(|| Spi::connect_mut(|client| number_all(client).unwrap_or_else(|u| unnumbered(&u)) as i64))
}

/// The error for keys without an id that this transaction may not number.
pub fn unnumbered(u: &Unnumbered) -> ! {
    report(
        PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE,
        "contacts without a segplan id",
        format!("{} contacts whose key is not an integer have no id yet; a writable READ COMMITTED transaction numbers them, and this one is read-only, in recovery or not READ COMMITTED", u.keys),
        Some("run SELECT segplan.number_contacts() on the primary in a READ COMMITTED transaction (e.g. from pg_cron after loading contacts), then retry".into()),
    )
}
