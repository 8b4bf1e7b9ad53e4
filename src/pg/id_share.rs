//! uuid keys become ids inside the leaf statement's own scan: the session's ids
//! (src/pg/dense_ids.rs, `Known`) are copied into a dynamic shared memory segment, which the
//! statement's parallel workers map, so `segplan._ids_agg(uuid)` hands the leader a bitmap of ids
//! (about 1 bit per contact when dense) instead of 16 bytes per key, and the lookups run in every
//! worker instead of after the scan in the leader. Keys the segment lacks (numbered since, or
//! never) still travel as keys and are looked up as before.
//!
//! The copy is the database's, not the session's: the session that makes one notes it in
//! `segplan.id_copies`, and a new session maps the newest copy there ([`adopt`]) instead of
//! reading `segplan.contact_ids` and building its own (at 1M contacts: 64 MB and ~0.2 s per
//! session). A segment lives while any session maps it; ids never change once committed, and
//! only committed ones are copied, so a copy is never wrong, only short of keys numbered since,
//! which a session keeps beside it until they come to 1/32 of it, then makes a new copy.
//!
//! The segment is found through `segplan._shared_ids` ("handle:nonce"), a setting PostgreSQL
//! copies into parallel workers. segplan sets it only for the duration of its own statements
//! (a new GUC nest level, as a function's `SET` clause does), so a key reaches the table only from
//! a statement segplan runs as the caller, as in dense_ids; its value is hidden from roles that may
//! not read all settings, and a value that names no segment of this kind, or another nonce, maps
//! nothing (the keys travel as keys).
use super::agg::{merge, state_value_mut, with_state, AggState};
use super::error::internal;
use super::owner::as_owner;
use pgrx::datum::Internal;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use segplan_core::bitmap::{self, Gathered, RoaringTreemap};
use segplan_core::idmap::{self, ByIds, IdMap, Table};
use std::cell::RefCell;
use std::ffi::{CStr, CString};

const MAGIC: u64 = u64::from_le_bytes(*b"segplids");
/// Header words: magic, nonce, words of slots that follow, words of keys by id that follow those,
/// keys held, largest id + 1 (0: none).
const HEADER: usize = 6;
/// Keys looked up together (so their table slots are prefetched).
const BATCH: usize = 512;
/// While a scan meets ids one after another: how many ids past the last one found a key is
/// looked for.
const WINDOW: usize = 32;
/// From this many rows on, a scan that has found fewer than half of its keys near the last id
/// stops looking there (ids numbered in another order, rows far apart).
const TRIAL: u32 = 4096;

static SHARED: GucSetting<Option<CString>> = GucSetting::<Option<CString>>::new(None);

pub fn register_settings() {
    GucRegistry::define_string_guc(
        c"segplan._shared_ids",
        c"Internal: the shared copy of this session's contact ids, set by segplan during its own statements.",
        c"segplan sets it for the duration of its own statements; a value set by hand names no copy and changes no answer.",
        &SHARED,
        GucContext::Userset,
        GucFlags::NO_SHOW_ALL | GucFlags::SUPERUSER_ONLY | GucFlags::NO_RESET_ALL | GucFlags::DISALLOW_IN_FILE,
    );
}

/// This session's segment (made here or adopted): what it holds and how workers find it.
struct Published {
    seg: *mut pg_sys::dsm_segment,
    handle: u32,
    nonce: u64,
    /// the epoch of the ids copied
    epoch: u64,
    /// what the segment holds, mapped for the rest of the session
    copy: Mapped,
}

impl Published {
    /// The value of `segplan._shared_ids` that names it: "handle:nonce".
    fn setting(&self) -> CString {
        // digits and a colon: no NUL
        CString::new(format!("{}:{}", self.handle, self.nonce)).unwrap_or_default()
    }
}

thread_local! {
    static PUBLISHED: RefCell<Option<Published>> = const { RefCell::new(None) };
}

fn nonce() -> u64 {
    let mut b = [0u8; 8];
    // SAFETY: writes 8 bytes into b
    if !unsafe { pg_sys::pg_strong_random(b.as_mut_ptr().cast(), 8) } {
        // no strong randomness: the time still differs between segments
        b = unsafe { pg_sys::GetCurrentTimestamp() }.to_le_bytes();
    }
    u64::from_le_bytes(b)
}

/// A new segment holding `map`, mapped for the rest of the session; `None` when dynamic shared
/// memory is short (the statement then runs without it).
fn create(map: &IdMap, epoch: u64) -> Option<Published> {
    let words = map.words();
    let by_id = map.keys_by_id_words();
    let size = (HEADER + words.len() + by_id) * 8;
    // SAFETY: the subtransaction confines an out-of-memory error of dsm_create (it is caught,
    // rolled back and forgotten, as PL/pgSQL's exception blocks do); memory context and resource
    // owner are restored after it either way
    unsafe {
        let (cxt, owner) = (pg_sys::CurrentMemoryContext, pg_sys::CurrentResourceOwner);
        pg_sys::BeginInternalSubTransaction(std::ptr::null());
        pg_sys::MemoryContextSwitchTo(cxt);
        let seg = PgTryBuilder::new(|| {
            let seg = pg_sys::dsm_create(size, pg_sys::DSM_CREATE_NULL_IF_MAXSEGMENTS as i32);
            if !seg.is_null() {
                pg_sys::dsm_pin_mapping(seg);
            }
            pg_sys::ReleaseCurrentSubTransaction();
            seg
        })
        .catch_others(|e| {
            pg_sys::MemoryContextSwitchTo(cxt);
            pg_sys::RollbackAndReleaseCurrentSubTransaction();
            if let CaughtError::PostgresError(r) | CaughtError::ErrorReport(r) = &e {
                debug1!("segplan: no shared copy of the contact ids: {}", r.message());
            }
            std::ptr::null_mut()
        })
        .execute();
        pg_sys::MemoryContextSwitchTo(cxt);
        pg_sys::CurrentResourceOwner = owner;
        if seg.is_null() {
            return None;
        }
        let nonce = nonce();
        let out = std::slice::from_raw_parts_mut(pg_sys::dsm_segment_address(seg).cast::<u64>(), HEADER + words.len() + by_id);
        out[..HEADER].copy_from_slice(&[MAGIC, nonce, words.len() as u64, by_id as u64, map.len() as u64, map.max_id().map_or(0, |m| m + 1)]);
        out[HEADER..HEADER + words.len()].copy_from_slice(words);
        map.write_keys_by_id(&mut out[HEADER + words.len()..]);
        let Some(copy) = read_copy(seg, nonce) else {
            pg_sys::dsm_detach(seg);
            return None;
        };
        Some(Published { seg, handle: pg_sys::dsm_segment_handle(seg), nonce, epoch, copy })
    }
}

/// What a segment holds, its header checked (magic, nonce, sizes within the mapping).
struct Mapped {
    table: Table<'static>,
    by_ids: Option<ByIds<'static>>,
    len: usize,
    max: Option<u64>,
}

/// # Safety
/// `seg` is mapped for the rest of this process's life (pinned): the slices borrow it.
unsafe fn read_copy(seg: *mut pg_sys::dsm_segment, nonce: u64) -> Option<Mapped> {
    let len = unsafe { pg_sys::dsm_segment_map_length(seg) } / 8;
    let words: &'static [u64] = unsafe { std::slice::from_raw_parts(pg_sys::dsm_segment_address(seg).cast::<u64>(), len) };
    if len < HEADER || words[0] != MAGIC || words[1] != nonce {
        return None;
    }
    let (slots, by_id) = (usize::try_from(words[2]).ok()?, usize::try_from(words[3]).ok()?);
    if slots.checked_add(by_id).is_none_or(|n| n > len - HEADER) {
        return None;
    }
    let by_ids = (by_id > 0).then(|| ByIds::new(&words[HEADER + slots..HEADER + slots + by_id])).flatten();
    let table = Table::new(&words[HEADER..HEADER + slots])?;
    Some(Mapped { table, by_ids, len: usize::try_from(words[4]).ok()?, max: words[5].checked_sub(1) })
}

/// Maps the segment `handle` names for the rest of this process's life if it is a copy with
/// `nonce` (a handle the server has since given to another segment is not): as a parallel
/// worker does for its statement's workers, or a session adopting the database's copy.
fn map(handle: u32, nonce: u64) -> Option<(*mut pg_sys::dsm_segment, Mapped)> {
    // SAFETY: a mapping is read only within its length, and stays mapped while this process
    // lives (pinned, by its maker or here)
    unsafe {
        let mut seg = pg_sys::dsm_find_mapping(handle);
        let attached = seg.is_null();
        if attached {
            seg = pg_sys::dsm_attach(handle);
        }
        if seg.is_null() {
            return None;
        }
        let copy = read_copy(seg, nonce);
        if attached {
            if copy.is_some() {
                // not a resource of the statement: kept until the process ends
                pg_sys::dsm_pin_mapping(seg);
            } else {
                pg_sys::dsm_detach(seg);
            }
        }
        Some((seg, copy?))
    }
}

/// The newest copy of the ids `segplan.id_copies` notes that is still alive, mapped as this
/// session's (of `epoch`), when the session has none: then its keys need not be read.
pub fn adopt(epoch: u64) {
    if PUBLISHED.with(|p| p.borrow().is_some()) || !super::leaf_cache::primary() {
        return;
    }
    let noted: Vec<(i64, i64)> = as_owner(|| {
        Spi::connect(|c| {
            c.select("SELECT handle, nonce FROM segplan.id_copies ORDER BY keys DESC, made DESC LIMIT 4", None, &[])
                .map(|t| t.filter_map(|r| Some((r.get::<i64>(1).ok()??, r.get::<i64>(2).ok()??))).collect())
                .unwrap_or_else(|e| internal("reading the shared copies of contact ids failed", e))
        })
    });
    for (handle, nonce) in noted {
        let (Ok(handle), nonce) = (u32::try_from(handle), nonce as u64) else { continue };
        if let Some((seg, copy)) = map(handle, nonce) {
            PUBLISHED.with(|p| *p.borrow_mut() = Some(Published { seg, handle, nonce, epoch, copy }));
            return;
        }
    }
}

/// Notes a copy this session made as the database's newest, when this transaction may write
/// (a read-only one leaves it to the next session that makes one). Notes of other copies are
/// removed in READ COMMITTED only (in REPEATABLE READ a row deleted since the snapshot would fail
/// the caller's transaction), and not those another transaction holds (never waited for).
fn note(p: &Published) {
    if !super::leaf_cache::writable() {
        return;
    }
    // SAFETY: reads the backend's isolation level
    let read_committed = unsafe { pg_sys::XactIsoLevel } == pg_sys::XACT_READ_COMMITTED as i32;
    as_owner(|| {
        Spi::connect_mut(|c| {
            if read_committed {
                c.update("DELETE FROM segplan.id_copies d WHERE d.ctid IN (SELECT ctid FROM segplan.id_copies FOR UPDATE SKIP LOCKED)", None, &[])
                    .unwrap_or_else(|e| internal("noting the shared copy of contact ids failed", e));
            }
            c.update("INSERT INTO segplan.id_copies (handle, nonce, keys) VALUES ($1, $2, $3)", None, &[i64::from(p.handle).into(), (p.nonce as i64).into(), (p.copy.len as i64).into()])
                .unwrap_or_else(|e| internal("noting the shared copy of contact ids failed", e));
        })
    });
}

/// Runs `f` with the session's copy of epoch `epoch` (its slots and largest id), if it has one.
pub fn with_copy<R>(epoch: u64, f: impl FnOnce(Option<(&Table<'static>, Option<u64>)>) -> R) -> R {
    PUBLISHED.with(|p| f(p.borrow().as_ref().filter(|p| p.epoch == epoch).map(|p| (&p.copy.table, p.copy.max))))
}

thread_local! {
    static EPOCHS: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
}

/// A new epoch (distinct within the session) for a map made anew: within an epoch a map only
/// gains keys, and a key keeps its id.
pub fn epoch() -> u64 {
    EPOCHS.with(|g| {
        g.set(g.get() + 1);
        g.get()
    })
}

/// The setting that shares this session's ids with parallel workers: its copy (made here or
/// adopted) and `map`, the ids it learnt beside it (of epoch `epoch`, see [`epoch`]); `None` when
/// there is nothing to share or no segment could be made. Once `map` holds 1/32 as many keys as
/// the copy (or there is no copy), both go into a new copy, noted as the database's, and `map`
/// is emptied: a key the copy lacks only comes back as a key, so a few new contacts do not cost
/// a copy each.
pub fn publish(map: &mut IdMap, epoch: u64) -> Option<CString> {
    PUBLISHED.with(|p| {
        let mut p = p.borrow_mut();
        if p.as_ref().is_some_and(|p| p.epoch != epoch) {
            drop_copy(p.take());
        }
        if !map.is_empty() && p.as_ref().is_none_or(|p| map.len() > p.copy.len / 32) {
            let merged = match p.as_ref() {
                Some(old) => {
                    let mut m = IdMap::default();
                    m.insert_all(&old.copy.table.entries().collect::<Vec<_>>());
                    m.insert_all(&map.table().entries().collect::<Vec<_>>());
                    m
                }
                None => std::mem::take(map),
            };
            match create(&merged, epoch) {
                Some(new) => {
                    note(&new);
                    drop_copy(p.replace(new));
                    *map = IdMap::default();
                }
                // no shared memory: the ids stay in the session
                None if p.is_none() => *map = merged,
                None => {}
            }
        }
        p.as_ref().map(Published::setting)
    })
}

fn drop_copy(old: Option<Published>) {
    if let Some(old) = old {
        // SAFETY: this session's mapping; the segment lives on while other processes map it
        unsafe { pg_sys::dsm_detach(old.seg) };
    }
}

/// Runs `f` with `segplan._shared_ids` set to `setting` (see [`publish`] and [`with_guc`]).
pub fn with_setting<T>(setting: Option<CString>, f: impl FnOnce() -> T) -> T {
    match setting {
        Some(setting) => with_guc(c"segplan._shared_ids", &setting, f),
        None => f(),
    }
}

/// Runs `f` with the setting `name` at `value`, as a function's `SET` clause would: restored
/// after `f`, or by the (sub)transaction's abort when `f` fails.
pub fn with_guc<T>(name: &CStr, value: &CStr, f: impl FnOnce() -> T) -> T {
    // SAFETY: a GUC nest level as fmgr_security_definer makes for a function's SET clause
    unsafe {
        let level = pg_sys::NewGUCNestLevel();
        pg_sys::set_config_option(
            name.as_ptr(),
            value.as_ptr(),
            pg_sys::GucContext::PGC_USERSET,
            pg_sys::GucSource::PGC_S_SESSION,
            pg_sys::GucAction::GUC_ACTION_SAVE,
            true,
            pgrx::PgLogLevel::ERROR as i32,
            false,
        );
        let out = f();
        pg_sys::AtEOXact_GUC(true, level);
        out
    }
}

/// The shared table this process may use now: the segment `segplan._shared_ids` names, mapped
/// by the session that made it, or attached by a parallel worker for the rest of its life (the
/// statement's); checked; the table and the keys by id (if copied).
fn attach() -> Option<(Table<'static>, Option<ByIds<'static>>)> {
    let setting = SHARED.get()?;
    let (handle, nonce) = setting.to_str().ok()?.split_once(':')?;
    let (_, copy) = map(handle.parse().ok()?, nonce.parse().ok()?)?;
    Some((copy.table, copy.by_ids))
}

/// How a scan finds the ids of its keys in the shared copy: near the last id found (keys by id),
/// else in the table.
#[derive(Default, Clone, Copy)]
struct Finder {
    /// looked for the copy yet
    looked: bool,
    table: Option<Table<'static>>,
    /// the keys by id, while keys are found near the last id found (see [`ByIds`])
    near: Option<ByIds<'static>>,
    /// the last id found (`u64::MAX`: none yet)
    last: u64,
    /// rows met and keys found near the last id, for the trial (see [`TRIAL`])
    rows: u32,
    hits: u32,
}

impl Finder {
    fn start(&mut self) {
        if !self.looked {
            self.looked = true;
            let found = attach();
            self.table = found.map(|(t, _)| t);
            self.near = found.and_then(|f| f.1);
            self.last = u64::MAX;
        }
    }

    /// A key of the scan, when the copy has its keys by id: found near the last id, or else in
    /// the table at once (the first row of a new run of ids: a parallel worker's next chunk of
    /// the table, a row moved by an update), so that the rows after it are found near it again.
    /// `None` without keys by id.
    fn near_or_table(&mut self, key: &[u8; 16]) -> Option<Option<u64>> {
        let (Some(near), Some(table)) = (self.near, self.table) else { return None };
        self.rows += 1;
        let id = match near.near(self.last, key, WINDOW) {
            Some(id) => {
                self.hits += 1;
                Some(id)
            }
            None => table.get(key),
        };
        if let Some(id) = id {
            self.last = id;
        }
        if self.rows >= TRIAL && self.hits < self.rows / 2 {
            self.near = None;
        }
        Some(id)
    }
}

/// `_ids_agg`'s state: ids found (as a bitmap once merged or serialized), keys not found.
#[derive(Default, Clone)]
pub struct Ids {
    finder: Finder,
    batch: Vec<[u8; 16]>,
    /// the ids found, gathered as a scan meets them (mostly in order)
    ids: Gathered<RoaringTreemap>,
    keys: Vec<[u8; 16]>,
}

impl Ids {
    fn flush(&mut self) {
        let Some(table) = self.finder.table else {
            self.keys.append(&mut self.batch);
            return;
        };
        let (batch, ids, keys) = (&self.batch, &mut self.ids, &mut self.keys);
        table.get_each(batch.len(), |n| &batch[n], |n, id| match id {
            Some(id) => ids.add(id),
            None => keys.push(batch[n]),
        });
        self.batch.clear();
    }

    /// A key of the scan ([`Finder::near_or_table`]); without the keys by id, keys wait for the
    /// table in batches.
    fn add(&mut self, key: [u8; 16]) {
        match self.finder.near_or_table(&key) {
            Some(Some(id)) => self.ids.add(id),
            Some(None) => self.keys.push(key),
            None => {
                self.batch.push(key);
                if self.batch.len() >= BATCH {
                    self.flush();
                }
            }
        }
    }

    /// The aggregate's value: how many keys were not found (8 bytes, little-endian), those keys
    /// (16 bytes each), then the ids found (a roaringbitmap64's portable bytes; `packed`, as a
    /// partial state leaves a worker: see [`bitmap::append_packed64`]).
    fn bytes(&mut self, packed: bool) -> Vec<u8> {
        self.flush();
        let mut out = Vec::with_capacity(8 + self.keys.len() * 16);
        out.extend_from_slice(&(self.keys.len() as u64).to_le_bytes());
        self.keys.iter().for_each(|k| out.extend_from_slice(k));
        append_ids(out, &self.ids, packed)
    }
}

/// `out` followed by the ids found: packed, or as portable bytes.
fn append_ids(mut out: Vec<u8>, ids: &Gathered<RoaringTreemap>, packed: bool) -> Vec<u8> {
    let ids = ids.settled();
    if packed {
        return bitmap::append_packed64(out, &ids);
    }
    out.reserve(ids.serialized_size());
    // writing to a Vec cannot fail
    let _ = ids.serialize_into(&mut out);
    out
}

fn read_ids(ids: &[u8], packed: bool) -> Option<RoaringTreemap> {
    if packed { bitmap::from_trusted_bytes64(&bitmap::unpack_zero_words(ids).ok()?) } else { bitmap::from_trusted_bytes64(ids) }.ok()
}

/// [`Ids::bytes`] read back: the keys not found and the ids found.
pub fn read(b: &[u8], packed: bool) -> Option<(Vec<[u8; 16]>, RoaringTreemap)> {
    let (n, rest) = b.split_at_checked(8)?;
    let n = usize::try_from(u64::from_le_bytes(n.try_into().ok()?)).ok()?;
    let (keys, ids) = rest.split_at_checked(n.checked_mul(16)?)?;
    let keys = keys.chunks_exact(16).map(|c| c.try_into().ok()).collect::<Option<Vec<[u8; 16]>>>()?;
    Some((keys, read_ids(ids, packed)?))
}

// Support of `segplan._ids_agg(uuid)`, a C-ABI step as `_keys_agg`'s (see agg::raw_step).
crate::raw_transition!(segplan_ids_trans, pg_finfo_segplan_ids_trans, Ids, |s, v| {
    s.value.finder.start();
    // SAFETY: a non-NULL uuid datum points to its 16 bytes
    s.value.add(unsafe { *v.cast_mut_ptr::<[u8; 16]>() });
    s.seen = true;
});

#[pg_extern(immutable, parallel_safe)]
fn _ids_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    merge(a, b, fcinfo, |x: &mut Ids, y| {
        // ids found stay found; keys not yet looked up are looked up with the others of x
        x.ids.absorb(&y.ids);
        x.keys.extend_from_slice(&y.keys);
        for k in &y.batch {
            x.batch.push(*k);
            if x.batch.len() >= BATCH {
                x.flush();
            }
        }
    })
}

#[pg_extern(immutable, parallel_safe)]
fn _ids_serialize(mut state: Internal) -> Vec<u8> {
    state_value_mut::<Ids>(&mut state).map_or_else(|| Ids::default().bytes(true), |ids| ids.bytes(true))
}

#[pg_extern(immutable, parallel_safe, strict)]
fn _ids_deserialize(bytes: &[u8], _unused: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    let (keys, ids) = read(bytes, true).unwrap_or_else(|| super::error::internal("reading contact ids failed", "malformed partial state"));
    with_state(Internal::default(), fcinfo, |s: &mut AggState<Ids>| {
        s.value = Ids { finder: Finder { looked: true, ..Finder::default() }, ids: ids.into(), keys, ..Ids::default() };
        s.seen = true;
    })
}

#[pg_extern(immutable, parallel_safe)]
fn _ids_final(mut state: Internal) -> Option<Vec<u8>> {
    state_value_mut::<Ids>(&mut state).map(|ids| ids.bytes(false))
}

/// `_keys_agg(text)`'s state: text keys are found in the same copy by their fingerprint
/// ([`idmap::fingerprint`]); the ids found, and the keys not found as text (their length, 4
/// bytes little-endian, and their UTF-8 bytes), which numbering and lookups need.
#[derive(Default, Clone)]
pub struct TextIds {
    finder: Finder,
    ids: Gathered<RoaringTreemap>,
    texts: Vec<u8>,
}

impl TextIds {
    fn add(&mut self, key: &[u8]) {
        self.finder.start();
        let found = match self.finder.table {
            Some(table) => {
                let f = idmap::fingerprint(key);
                self.finder.near_or_table(&f).unwrap_or_else(|| table.get(&f))
            }
            None => None,
        };
        match found {
            Some(id) => self.ids.add(id),
            None => {
                self.texts.extend_from_slice(&(key.len() as u32).to_le_bytes());
                self.texts.extend_from_slice(key);
            }
        }
    }

    /// The aggregate's value: the length of the keys not found (8 bytes), those keys, then the
    /// ids found (as in [`Ids::bytes`]).
    fn bytes(&self, packed: bool) -> Vec<u8> {
        let mut out = Vec::with_capacity(8 + self.texts.len());
        out.extend_from_slice(&(self.texts.len() as u64).to_le_bytes());
        out.extend_from_slice(&self.texts);
        append_ids(out, &self.ids, packed)
    }
}

/// [`TextIds::bytes`] split: the keys not found (as written) and the ids found.
fn split_texts(b: &[u8], packed: bool) -> Option<(&[u8], RoaringTreemap)> {
    let (n, rest) = b.split_at_checked(8)?;
    let (texts, ids) = rest.split_at_checked(usize::try_from(u64::from_le_bytes(n.try_into().ok()?)).ok()?)?;
    Some((texts, read_ids(ids, packed)?))
}

/// [`TextIds::bytes`] read back: the keys not found and the ids found.
pub fn read_texts(b: &[u8], packed: bool) -> Option<(Vec<String>, RoaringTreemap)> {
    let (mut texts, ids) = split_texts(b, packed)?;
    let mut keys = Vec::new();
    while !texts.is_empty() {
        let (len, more) = texts.split_at_checked(4)?;
        let (key, more) = more.split_at_checked(u32::from_le_bytes(len.try_into().ok()?) as usize)?;
        keys.push(String::from_utf8(key.to_vec()).ok()?);
        texts = more;
    }
    Some((keys, ids))
}

// Support of `segplan._keys_agg(text)`, built in parallel (PostgreSQL 15's `array_agg` is serial);
// its step is a C-ABI function as `_ids_agg`'s (see agg::raw_step).
crate::raw_transition!(segplan_keys_trans, pg_finfo_segplan_keys_trans, TextIds, |s, v| {
    // SAFETY: a non-NULL text datum
    unsafe { super::datum::with_detoasted(v, |key| s.value.add(key)) };
    s.seen = true;
});

#[pg_extern(immutable, parallel_safe)]
fn _keys_combine(a: Internal, b: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    merge(a, b, fcinfo, |x: &mut TextIds, y| {
        x.ids.absorb(&y.ids);
        x.texts.extend_from_slice(&y.texts);
    })
}

#[pg_extern(immutable, parallel_safe)]
fn _keys_serialize(mut state: Internal) -> Vec<u8> {
    state_value_mut::<TextIds>(&mut state).map_or_else(|| TextIds::default().bytes(true), |t| t.bytes(true))
}

#[pg_extern(immutable, parallel_safe, strict)]
fn _keys_deserialize(bytes: &[u8], _unused: Internal, fcinfo: pg_sys::FunctionCallInfo) -> Internal {
    let (texts, ids) = split_texts(bytes, true).unwrap_or_else(|| super::error::internal("reading contact keys failed", "malformed partial state"));
    with_state(Internal::default(), fcinfo, |s: &mut AggState<TextIds>| {
        s.value = TextIds { finder: Finder { looked: true, ..Finder::default() }, ids: ids.into(), texts: texts.to_vec() };
        s.seen = true;
    })
}

#[pg_extern(immutable, parallel_safe)]
fn _keys_final(mut state: Internal) -> Option<Vec<u8>> {
    state_value_mut::<TextIds>(&mut state).map(|t| t.bytes(false))
}
