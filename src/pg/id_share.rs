//! uuid keys become ids inside the leaf statement's own scan: the session's ids
//! (src/pg/dense_ids.rs, `Known`) are copied into a dynamic shared memory segment, which the
//! statement's parallel workers map, so `segplan._ids_agg(uuid)` hands the leader a bitmap of ids
//! (about 1 bit per contact when dense) instead of 16 bytes per key, and the lookups run in every
//! worker instead of after the scan in the leader. Keys the segment lacks (numbered since, or
//! never) still travel as keys and are looked up as before.
//!
//! The segment is found through `segplan._shared_ids` ("handle:nonce"), a setting PostgreSQL
//! copies into parallel workers. segplan sets it only for the duration of its own statements
//! (a new GUC nest level, as a function's `SET` clause does), so a key reaches the table only from
//! a statement segplan runs as the caller, as in dense_ids; its value is hidden from roles that may
//! not read all settings, and a value that names no segment of this kind, or another nonce, maps
//! nothing (the keys travel as keys).
use super::agg::{merge, state_value_mut, with_state, AggState};
use pgrx::datum::Internal;
use pgrx::guc::{GucContext, GucFlags, GucRegistry, GucSetting};
use pgrx::pg_sys::panic::CaughtError;
use pgrx::prelude::*;
use segplan_core::bitmap::{self, Gathered, RoaringTreemap};
use segplan_core::idmap::{ByIds, IdMap, Table};
use std::cell::RefCell;
use std::ffi::{CStr, CString};

const MAGIC: u64 = u64::from_le_bytes(*b"segplids");
/// Header words: magic, nonce, words of slots that follow, words of keys by id that follow those.
const HEADER: usize = 4;
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

/// This session's segment: what it holds and how workers find it.
struct Published {
    seg: *mut pg_sys::dsm_segment,
    setting: CString,
    /// the map copied: its epoch and how many keys it held
    epoch: u64,
    len: usize,
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
        out[..HEADER].copy_from_slice(&[MAGIC, nonce, words.len() as u64, by_id as u64]);
        out[HEADER..HEADER + words.len()].copy_from_slice(words);
        map.write_keys_by_id(&mut out[HEADER + words.len()..]);
        let setting = CString::new(format!("{}:{nonce}", pg_sys::dsm_segment_handle(seg))).ok()?;
        Some(Published { seg, setting, epoch, len: map.len() })
    }
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

/// The setting that shares `map` (this session's ids, of epoch `epoch`, see [`epoch`]) with
/// parallel workers; `None` when there is nothing to share or no segment could be made. The
/// segment is made anew for a new epoch, or once the map holds 1/32 more keys than the copy: a
/// key the copy lacks only comes back as a key, so a few new contacts do not cost a copy each.
pub fn publish(map: &IdMap, epoch: u64) -> Option<CString> {
    if map.is_empty() {
        return None;
    }
    PUBLISHED.with(|p| {
        let mut p = p.borrow_mut();
        if p.as_ref().is_none_or(|p| p.epoch != epoch || map.len() > p.len + p.len / 32) {
            if let Some(old) = p.take() {
                // SAFETY: this session's own segment; a worker still attached keeps it until it detaches
                unsafe { pg_sys::dsm_detach(old.seg) };
            }
            *p = create(map, epoch);
        }
        p.as_ref().map(|p| p.setting.clone())
    })
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
    let (handle, nonce): (u32, u64) = (handle.parse().ok()?, nonce.parse().ok()?);
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
        let len = pg_sys::dsm_segment_map_length(seg) / 8;
        let words: &'static [u64] = std::slice::from_raw_parts(pg_sys::dsm_segment_address(seg).cast::<u64>(), len);
        let sizes = (len >= HEADER && words[0] == MAGIC && words[1] == nonce)
            .then(|| Some((usize::try_from(words[2]).ok()?, usize::try_from(words[3]).ok()?)))
            .flatten()
            .filter(|(slots, by_id)| slots.checked_add(*by_id).is_some_and(|n| n <= len - HEADER));
        let table = sizes.and_then(|(slots, by_id)| {
            let by_ids = (by_id > 0).then(|| ByIds::new(&words[HEADER + slots..HEADER + slots + by_id])).flatten();
            Some((Table::new(&words[HEADER..HEADER + slots])?, by_ids))
        });
        if attached {
            if table.is_some() {
                // not a resource of the statement: a worker ends with it
                pg_sys::dsm_pin_mapping(seg);
            } else {
                pg_sys::dsm_detach(seg);
            }
        }
        let (table, by_ids) = table?;
        Some((table, by_ids))
    }
}

/// `_ids_agg`'s state: ids found (as a bitmap once merged or serialized), keys not found.
#[derive(Default, Clone)]
pub struct Ids {
    /// looked for the table yet
    looked: bool,
    table: Option<Table<'static>>,
    /// the keys by id, while keys are found near the last id found (see [`ByIds`])
    near: Option<ByIds<'static>>,
    /// the last id found (`u64::MAX`: none yet)
    last: u64,
    /// rows met and keys found near the last id, for the trial (see [`TRIAL`])
    rows: u32,
    hits: u32,
    batch: Vec<[u8; 16]>,
    /// the ids found, gathered as a scan meets them (mostly in order)
    ids: Gathered<RoaringTreemap>,
    keys: Vec<[u8; 16]>,
}

impl Ids {
    fn flush(&mut self) {
        let Some(table) = self.table else {
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

    /// A key of the scan: found near the last id, or else in the table at once (the first row of
    /// a new run of ids: a parallel worker's next chunk of the table, a row moved by an update),
    /// so that the rows after it are found near it again. Without the keys by id, keys wait for
    /// the table in batches.
    fn add(&mut self, key: [u8; 16]) {
        if let (Some(near), Some(table)) = (self.near, self.table) {
            self.rows += 1;
            let id = match near.near(self.last, &key, WINDOW) {
                Some(id) => {
                    self.hits += 1;
                    Some(id)
                }
                None => table.get(&key),
            };
            match id {
                Some(id) => {
                    self.ids.add(id);
                    self.last = id;
                }
                None => self.keys.push(key),
            }
            if self.rows >= TRIAL && self.hits < self.rows / 2 {
                self.near = None;
            }
            return;
        }
        self.batch.push(key);
        if self.batch.len() >= BATCH {
            self.flush();
        }
    }

    /// The aggregate's value: how many keys were not found (8 bytes, little-endian), those keys
    /// (16 bytes each), then the ids found (a roaringbitmap64's portable bytes; `packed`, as a
    /// partial state leaves a worker: see [`bitmap::append_packed64`]).
    fn bytes(&mut self, packed: bool) -> Vec<u8> {
        self.flush();
        let ids = self.ids.settled();
        let mut out = Vec::with_capacity(8 + self.keys.len() * 16 + ids.serialized_size());
        out.extend_from_slice(&(self.keys.len() as u64).to_le_bytes());
        self.keys.iter().for_each(|k| out.extend_from_slice(k));
        if packed {
            return bitmap::append_packed64(out, &ids);
        }
        // writing to a Vec cannot fail
        let _ = ids.serialize_into(&mut out);
        out
    }
}

/// [`Ids::bytes`] read back: the keys not found and the ids found.
pub fn read(b: &[u8], packed: bool) -> Option<(Vec<[u8; 16]>, RoaringTreemap)> {
    let (n, rest) = b.split_at_checked(8)?;
    let n = usize::try_from(u64::from_le_bytes(n.try_into().ok()?)).ok()?;
    let (keys, ids) = rest.split_at_checked(n.checked_mul(16)?)?;
    let keys = keys.chunks_exact(16).map(|c| c.try_into().ok()).collect::<Option<Vec<[u8; 16]>>>()?;
    let ids = if packed { bitmap::from_trusted_bytes64(&bitmap::unpack_zero_words(ids).ok()?) } else { bitmap::from_trusted_bytes64(ids) };
    Some((keys, ids.ok()?))
}

// Support of `segplan._ids_agg(uuid)`, a C-ABI step as `_keys_agg`'s (see agg::raw_step).
crate::raw_transition!(segplan_ids_trans, pg_finfo_segplan_ids_trans, Ids, |s, v| {
    let ids = &mut s.value;
    if !ids.looked {
        ids.looked = true;
        let found = attach();
        ids.table = found.map(|(t, _)| t);
        ids.near = found.and_then(|f| f.1);
        ids.last = u64::MAX;
    }
    // SAFETY: a non-NULL uuid datum points to its 16 bytes
    ids.add(unsafe { *v.cast_mut_ptr::<[u8; 16]>() });
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
        s.value = Ids { looked: true, ids: ids.into(), keys, ..Ids::default() };
        s.seen = true;
    })
}

#[pg_extern(immutable, parallel_safe)]
fn _ids_final(mut state: Internal) -> Option<Vec<u8>> {
    state_value_mut::<Ids>(&mut state).map(|ids| ids.bytes(false))
}
