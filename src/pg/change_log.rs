//! The keyed change-log trigger (`segplan_keys_insert`, `_update`, `_delete`: statement triggers
//! with the statement's transition tables, installed by `segplan._track` on the table writes to a
//! registered source log its contacts from, catalog::keyed_by). Besides the relation and the
//! writing transaction it logs the contact keys the statement's rows name in the columns given as
//! the trigger's arguments, those of integer, uuid or text types (old and new rows of an update), so a cached
//! bitmap that missed the write is patched for those contacts only (src/pg/engine.rs). Up to
//! [`BUDGET`] rows per table and transaction; past that, or without such a column, it logs the table
//! as changed as a whole, as `segplan._note_change` does (both share the transaction's list of such
//! tables).
//!
//! In Rust rather than PL/pgSQL: the keys are read straight from the transition tables' tuples (no
//! statement planned per write, no output function run), which took what tracking adds to a
//! one-row update from 0.11 ms (a PL/pgSQL version with a dynamic query per statement) to 0.05 ms,
//! on 0.07 ms of PostgreSQL's own; the table-wide trigger adds 0.02 ms.
use super::error::internal;
use super::owner::as_owner;
use pgrx::prelude::*;
use pgrx::PgTupleDesc;
use std::cell::RefCell;
use std::collections::HashMap;
use std::ffi::CStr;

/// The most rows whose keys a transaction logs per table.
const BUDGET: usize = 10_000;

/// Its statements name every type, function and operator with its schema: a trigger runs with the
/// writer's search_path (no `SET search_path` for trigger functions made by pgrx), and these run as
/// segplan's owner.
const KEYS_SQL: &str = "INSERT INTO segplan.changes (relid, xid, keys, key_columns, text_keys) VALUES ($1, pg_catalog.pg_current_xact_id(), $2, $3, $4)";
const WHOLE_SQL: &str = "INSERT INTO segplan.changes (relid, xid) VALUES ($1, pg_catalog.pg_current_xact_id())";
const MARK_SQL: &str = "SELECT pg_catalog.set_config('segplan_internal.changed', $1, true)";

thread_local! {
    /// rows whose keys this transaction (its top-level id) logged, per table
    static LOGGED: RefCell<(u64, HashMap<u32, usize>)> = RefCell::new((0, HashMap::new()));
}

#[pg_trigger]
fn _note_keys<'a>(trigger: &'a PgTrigger<'a>) -> Result<Option<PgHeapTuple<'a, AllocatedByRust>>, std::convert::Infallible> {
    let data = trigger.trigger_data();
    // SAFETY: the trigger's relation, open for the statement
    let (relid, desc) = unsafe { ((*data.tg_relation).rd_id, (*data.tg_relation).rd_att) };
    let marks = changed_as_a_whole();
    let mark = format!(",{},", relid.to_u32());
    if marks.contains(&mark) {
        return Ok(None);
    }
    // SAFETY: the top-level transaction writing (it has an id)
    let xid = unsafe { pg_sys::GetTopFullTransactionId() }.value;
    let used = LOGGED.with(|l| {
        let mut l = l.borrow_mut();
        if l.0 != xid {
            *l = (xid, HashMap::new());
        }
        l.1.get(&relid.to_u32()).copied().unwrap_or(0)
    });
    as_owner(|| {
        Spi::connect_mut(|mut client| {
            // the columns, as segplan._track gave them
            let names = trigger.extra_args().unwrap_or_default();
            // SAFETY: the relation's descriptor, valid while it is open
            let tupdesc = unsafe { PgTupleDesc::from_pg_unchecked(desc) };
            let columns: Vec<(i32, pg_sys::Oid, String)> = tupdesc
                .iter()
                .enumerate()
                .filter(|(_, a)| !a.is_dropped() && names.iter().any(|n| n == a.name()))
                .filter(|(_, a)| super::catalog::key_type(a.type_oid().value()))
                .map(|(i, a)| (i as i32 + 1, a.type_oid().value(), a.name().to_string()))
                .collect();
            let mut keys = Keys::default();
            let mut rows = 0;
            if !columns.is_empty() {
                for table in [data.tg_oldtable, data.tg_newtable] {
                    if !table.is_null() && rows <= BUDGET - used {
                        // SAFETY: a transition table of this statement, in the relation's row type
                        rows += unsafe { read_keys(table, desc, &columns, BUDGET - used + 1 - rows, &mut keys) };
                    }
                }
            }
            if columns.is_empty() || used + rows > BUDGET {
                super::kept::update(&mut client, WHOLE_SQL, &[relid.into()]).unwrap_or_else(|e| internal("logging a change failed", e));
                super::kept::update(&mut client, MARK_SQL, &[format!("{marks}{mark}").into()]).unwrap_or_else(|e| internal("logging a change failed", e));
            } else {
                let (mut ints, mut texts) = (keys.ints, keys.texts);
                ints.sort_unstable();
                ints.dedup();
                texts.sort_unstable();
                texts.dedup();
                let names: Vec<String> = columns.into_iter().map(|c| c.2).collect();
                super::kept::update(&mut client, KEYS_SQL, &[relid.into(), ints.into(), names.into(), texts.into()]).unwrap_or_else(|e| internal("logging a change failed", e));
                LOGGED.with(|l| *l.borrow_mut().1.entry(relid.to_u32()).or_insert(0) += rows);
            }
        })
    });
    Ok(None)
}

/// `segplan_internal.changed`: the tables this transaction logged as changed as a whole.
fn changed_as_a_whole() -> String {
    // SAFETY: reads a setting by name; NULL when it was never set
    unsafe {
        let v = pg_sys::GetConfigOption(c"segplan_internal.changed".as_ptr(), true, false);
        if v.is_null() { String::new() } else { CStr::from_ptr(v).to_string_lossy().into_owned() }
    }
}

/// Keys read from transition tables: integers, and uuid and text keys as text (a uuid in its
/// canonical form, as `segplan.contact_ids` keeps it).
#[derive(Default)]
struct Keys {
    ints: Vec<i64>,
    texts: Vec<String>,
}

/// Appends the keys in `columns` (attribute number, key type, name) of at most `limit` rows of a
/// transition table to `keys`; returns the rows read.
///
/// # Safety
/// `table` must be a tuplestore of tuples of descriptor `desc`.
unsafe fn read_keys(table: *mut pg_sys::Tuplestorestate, desc: pg_sys::TupleDesc, columns: &[(i32, pg_sys::Oid, String)], limit: usize, keys: &mut Keys) -> usize {
    let slot = pg_sys::MakeSingleTupleTableSlot(desc, &pg_sys::TTSOpsMinimalTuple);
    // the first read pointer, from the start (other readers of the table rescan their own)
    pg_sys::tuplestore_select_read_pointer(table, 0);
    pg_sys::tuplestore_rescan(table);
    let mut rows = 0;
    while rows < limit && pg_sys::tuplestore_gettupleslot(table, true, false, slot) {
        rows += 1;
        for (attnum, type_oid, _) in columns {
            let mut isnull = false;
            let d = pg_sys::slot_getattr(slot, *attnum, &mut isnull);
            if !isnull {
                let int = |v: Option<i64>| v.unwrap_or_else(|| internal("reading a key failed", "NULL"));
                match *type_oid {
                    pg_sys::INT2OID => keys.ints.push(int(i16::from_datum(d, false).map(i64::from))),
                    pg_sys::INT4OID => keys.ints.push(int(i32::from_datum(d, false).map(i64::from))),
                    pg_sys::INT8OID => keys.ints.push(int(i64::from_datum(d, false))),
                    pg_sys::UUIDOID => keys.texts.push(pgrx::Uuid::from_datum(d, false).map(|u| u.to_string()).unwrap_or_default()),
                    // text and varchar: the same varlena text
                    _ => keys.texts.push(String::from_datum(d, false).unwrap_or_default()),
                }
            }
        }
        if rows % 1024 == 0 {
            pgrx::check_for_interrupts!();
        }
    }
    pg_sys::tuplestore_rescan(table);
    pg_sys::ExecDropSingleTupleTableSlot(slot);
    rows
}
