//! Dense ids for contact keys that are not integers (uuid, text): a `roaringbitmap64` holds
//! numbers, so such a key gets one, for good, in `segplan.contact_ids` (sql/bootstrap.sql).
//!
//! Keys only ever come from a statement the caller ran as itself — the contacts it can see — and
//! are looked up or numbered here as segplan's owner (src/pg/owner.rs): no role reads the table,
//! so none can learn another brand's keys or whether a key it cannot see exists. Ids go back to
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
use super::bitmap64_type::Roaringbitmap64;
use super::catalog::current_model;
use super::error::{internal, raise_one, report};
use super::owner::as_owner;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::PgSqlErrorCode;
use segplan_core::bitmap::{self, RoaringTreemap};
use segplan_core::compile;
use segplan_core::model::{ContactSource, Model, TypeKind};
use std::cell::Cell;

/// The ids of the keys, and the keys that have none.
const LOOKUP_SQL: &str = "\
SELECT segplan.rb64_to_bytea(segplan.rb64_build_agg(m.id)), pg_catalog.array_agg(k.key) FILTER (WHERE m.id IS NULL)
FROM pg_catalog.unnest($1::text[]) AS k(key) LEFT JOIN segplan.contact_ids AS m ON m.key = k.key";

const NUMBER_SQL: &str = "\
INSERT INTO segplan.contact_ids (key) SELECT DISTINCT k.key COLLATE \"C\" FROM pg_catalog.unnest($1::text[]) AS k(key)
ORDER BY 1 ON CONFLICT DO NOTHING";

const KEYS_SQL: &str = "\
SELECT m.key FROM pg_catalog.unnest($1::int8[]) AS i(id) JOIN segplan.contact_ids AS m ON m.id = i.id";

thread_local! {
    /// the top transaction that last numbered keys
    static NUMBERED_IN: Cell<u64> = const { Cell::new(0) };
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

fn lookup(client: &SpiClient, keys: Vec<String>) -> (RoaringTreemap, Vec<String>) {
    let rows = client.select(LOOKUP_SQL, None, &[keys.into()]).unwrap_or_else(|e| internal("reading contact ids failed", e));
    let row = rows.first();
    let ids = row
        .get::<Vec<u8>>(1)
        .unwrap_or_else(|e| internal("reading contact ids failed", e))
        .map(|b| bitmap::from_bytes64(&b).unwrap_or_else(|e| internal("reading contact ids failed", e)))
        .unwrap_or_default();
    let missing = row.get::<Vec<String>>(2).unwrap_or_else(|e| internal("reading contact ids failed", e)).unwrap_or_default();
    (ids, missing)
}

/// The ids of `keys` (keys the caller's own statement returned). Keys without an id are left out,
/// or with `number` numbered first — `Err` when this transaction may not.
pub fn ids(client: &mut SpiClient, keys: Vec<String>, number: bool) -> Result<RoaringTreemap, Unnumbered> {
    if keys.is_empty() {
        return Ok(RoaringTreemap::new());
    }
    as_owner(|| {
        let (mut ids, missing) = lookup(client, keys);
        if missing.is_empty() || !number {
            return Ok(ids);
        }
        if !may_number() {
            return Err(Unnumbered { keys: missing.len() });
        }
        pgrx::check_for_interrupts!();
        let added = client.update(NUMBER_SQL, None, &[missing.clone().into()]).unwrap_or_else(|e| internal("numbering contacts failed", e)).len();
        if added > 0 {
            NUMBERED_IN.with(|n| n.set(top_xid()));
        }
        // a new statement: sees what this one and concurrent ones committed numbered
        let (more, still) = lookup(client, missing);
        if !still.is_empty() {
            internal("numbering contacts failed", format!("{} keys have no id after numbering", still.len()));
        }
        ids |= more;
        Ok(ids)
    })
}

/// The keys of `ids`, which the caller's own statements produced (ids without a key are skipped).
pub fn keys(client: &SpiClient, ids: &RoaringTreemap) -> Vec<String> {
    let ids: Vec<i64> = ids.iter().map(|i| i as i64).collect();
    if ids.is_empty() {
        return Vec::new();
    }
    as_owner(|| {
        let rows = client.select(KEYS_SQL, None, &[ids.into()]).unwrap_or_else(|e| internal("reading contact keys failed", e));
        let mut out = Vec::with_capacity(rows.len());
        for row in rows {
            pgrx::check_for_interrupts!();
            if let Ok(Some(k)) = row.get::<String>(1) {
                out.push(k);
            }
        }
        out
    })
}

fn contacts(model: &Model) -> &ContactSource {
    model.contacts.as_ref().unwrap_or_else(|| raise_one(compile::no_contacts()))
}

/// The keys (as text) of the contacts the caller can see among `keys`, read as the caller.
fn visible(client: &SpiClient, c: &ContactSource, keys: Vec<String>) -> Vec<String> {
    let sql = format!("SELECT c.{k}::text FROM {rel} AS c WHERE c.{k} = ANY ($1::text[]::{t}[])", k = c.key.sql, rel = c.rel.sql, t = c.key.type_sql);
    let rows = client.select(&sql, None, &[keys.into()]).unwrap_or_else(|e| internal("reading contacts failed", e));
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        pgrx::check_for_interrupts!();
        if let Ok(Some(k)) = row.get::<String>(1) {
            out.push(k);
        }
    }
    out
}

/// The keys, as text, of the contacts in a bitmap that `segplan.bitmap` returned, among those the
/// caller can see.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn keys_of(bitmap: Roaringbitmap64) -> SetOfIterator<'static, String> {
    let model = current_model();
    let c = contacts(&model);
    let keys = Spi::connect(|client| {
        let keys = if c.key.kind == TypeKind::Integer { bitmap.0.iter().map(|k| k.to_string()).collect() } else { keys(client, &bitmap.0) };
        if keys.is_empty() { keys } else { visible(client, c, keys) }
    });
    SetOfIterator::new(keys)
}

/// The contacts with these keys (as text) that the caller can see, as a bitmap comparable with
/// `segplan.bitmap`'s; keys without an id are numbered.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn bitmap_of(keys: Vec<Option<String>>) -> Roaringbitmap64 {
    let model = current_model();
    let c = contacts(&model);
    let keys: Vec<String> = keys.into_iter().flatten().collect();
    Roaringbitmap64(Spi::connect_mut(|client| {
        let seen = if keys.is_empty() { keys } else { visible(client, c, keys) };
        if c.key.kind == TypeKind::Integer {
            return seen.iter().filter_map(|k| k.parse::<u64>().ok()).collect();
        }
        ids(client, seen, true).unwrap_or_else(|u| unnumbered(&u))
    }))
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
    let sql = format!("SELECT pg_catalog.array_agg(c.{k}::text) FROM {rel} AS c WHERE c.{k} IS NOT NULL", k = c.key.sql, rel = c.rel.sql);
    Spi::connect_mut(|client| {
        let all = client
            .select(&sql, None, &[])
            .and_then(|t| t.first().get_one::<Vec<String>>())
            .unwrap_or_else(|e| internal("reading contacts failed", e))
            .unwrap_or_default();
        let missing = as_owner(|| lookup(client, all).1);
        let n = missing.len() as i64;
        ids(client, missing, true).unwrap_or_else(|u| unnumbered(&u));
        n
    })
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
