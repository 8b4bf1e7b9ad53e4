//! Reads the registered model from segplan's tables and the system catalog, so a dropped or
//! renamed column is an error rather than a wrong answer. Quoting is Postgres's own.
//!
//! The model is kept per backend until PostgreSQL's own cache invalidation says something it was
//! read from changed: a registered relation (ALTER, DROP, CREATE OR REPLACE VIEW), segplan's
//! registration tables (their trigger sends an invalidation, `segplan._invalidate`), or any type or
//! schema (names and types the model holds). Invalidations of aborted transactions are replayed
//! locally by PostgreSQL, so a rolled-back change never stays cached.
use super::error::{internal, report};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::PgSqlErrorCode;
use std::cell::{Cell, RefCell};
use segplan_core::error::Code;
use segplan_core::model::{Broken, Column, ContactSource, EventSource, Model, Relation, RfmConfig, TypeKind};

pub fn columns(client: &SpiClient, relid: pg_sys::Oid) -> Vec<Column> {
    let table = client
        .select(
            "SELECT a.attname::text, pg_catalog.quote_ident(a.attname), pg_catalog.format_type(a.atttypid, a.atttypmod), bt.typname::text \
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            None,
            &[relid.into()],
        )
        .unwrap_or_else(|e| internal("reading the catalog failed", e));
    table
        .map(|row| {
            let get = |i| row.get::<String>(i).ok().flatten().unwrap_or_default();
            Column { name: get(1), sql: get(2), type_sql: get(3), kind: TypeKind::from_typname(&get(4)) }
        })
        .collect()
}

fn registered_column(cols: &[Column], name: &str, rel: &Relation, what: &str) -> Result<Column, Broken> {
    cols.iter().find(|c| c.name == name).cloned().ok_or_else(|| Broken {
        name: String::new(),
        code: Code::UndefinedColumn,
        reason: format!("its {what} \"{name}\" no longer exists in {}", rel.name),
    })
}

/// The registered model, read in its own SPI connection.
pub fn current_model() -> Model {
    Spi::connect(load_model)
}

/// What a backend-local cache read from the catalog is valid for: a generation that every
/// invalidation of a relation it read (or of any type or schema) moves on. While it is reading
/// (`loading`) every relation counts, so an invalidation arriving mid-read is not missed.
pub struct Watch {
    generation: Cell<u64>,
    loading: Cell<bool>,
    watched: RefCell<Vec<pg_sys::Oid>>,
}

impl Watch {
    const fn new() -> Self {
        Watch { generation: Cell::new(0), loading: Cell::new(false), watched: RefCell::new(Vec::new()) }
    }

    fn bump(&self) {
        self.generation.set(self.generation.get().wrapping_add(1));
    }

    fn relation_changed(&self, relid: pg_sys::Oid) {
        let ours = self.loading.get() || self.watched.try_borrow().map(|w| w.contains(&relid)).unwrap_or(true);
        if relid == pg_sys::InvalidOid || ours {
            self.bump();
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation.get()
    }

    /// Reads with `read`; returns what it read and whether it may be cached at the generation
    /// of before the read (nothing that concerns it changed meanwhile). `replace`: the relations
    /// it returns are all that is watched from now on, else they are added.
    pub fn read<T>(&self, replace: bool, read: impl FnOnce() -> (T, Vec<pg_sys::Oid>)) -> (T, bool) {
        let since = self.generation.get();
        self.loading.set(true);
        let (value, relations) = read();
        self.loading.set(false);
        if self.generation.get() != since {
            return (value, false);
        }
        let mut w = self.watched.borrow_mut();
        if replace {
            *w = relations;
        } else {
            w.extend(relations);
            w.sort_unstable_by_key(|o| o.to_u32());
            w.dedup();
        }
        (value, true)
    }
}

thread_local! {
    /// The model and the generation it was read at.
    static CACHED: RefCell<Option<(u64, Model)>> = const { RefCell::new(None) };
    static MODEL: Watch = const { Watch::new() };
    /// The catalog state of the sources rules read (src/pg/engine.rs).
    pub static SOURCES: Watch = const { Watch::new() };
}

unsafe extern "C-unwind" fn relation_changed(_arg: pg_sys::Datum, relid: pg_sys::Oid) {
    MODEL.with(|w| w.relation_changed(relid));
    SOURCES.with(|w| w.relation_changed(relid));
}

unsafe extern "C-unwind" fn names_changed(_arg: pg_sys::Datum, _cache: std::ffi::c_int, _hash: u32) {
    MODEL.with(Watch::bump);
    SOURCES.with(Watch::bump);
}

/// Subscribes to the invalidations that end a cached model (from _PG_init).
pub fn register_invalidation() {
    unsafe {
        pg_sys::CacheRegisterRelcacheCallback(Some(relation_changed), pg_sys::Datum::from(0));
        for cache in [pg_sys::SysCacheIdentifier::TYPEOID, pg_sys::SysCacheIdentifier::NAMESPACEOID] {
            pg_sys::CacheRegisterSyscacheCallback(cache as std::ffi::c_int, Some(names_changed), pg_sys::Datum::from(0));
        }
    }
}

/// Sends a relation cache invalidation for a relation (segplan's registration tables' trigger:
/// every backend drops its cached model when the change commits).
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn _invalidate(rel: pg_sys::Oid) {
    unsafe { pg_sys::CacheInvalidateRelcacheByRelid(rel) };
}

/// One registered source as the catalog describes it now.
struct Source {
    name: Option<String>,
    contact_column: String,
    time_column: Option<String>,
    rel: Option<Relation>,
    cols: Vec<Column>,
}

/// Every registered source with its relation and columns, in one query (one row per column).
const MODEL_SQL: &str = "\
WITH src AS (
  SELECT 0 AS ord, NULL::text AS name, relid::oid AS relid, key_column::text AS contact_column, NULL::text AS time_column
  FROM segplan.contact_source
  UNION ALL
  SELECT 1, name, relid::oid, contact_column::text, time_column::text FROM segplan.event_sources)
SELECT s.ord, s.name, s.contact_column, s.time_column,
       pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), n.nspname || '.' || c.relname,
       a.attname::text, pg_catalog.quote_ident(a.attname), pg_catalog.format_type(a.atttypid, a.atttypmod), bt.typname::text,
       c.oid
FROM src s
LEFT JOIN pg_catalog.pg_class c ON c.oid = s.relid
LEFT JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
LEFT JOIN pg_catalog.pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_catalog.pg_type t ON t.oid = a.atttypid
LEFT JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END
ORDER BY s.ord, s.name, a.attnum";

fn read_sources(client: &SpiClient) -> (Option<Source>, Vec<Source>) {
    let rows = client.select(MODEL_SQL, None, &[]).unwrap_or_else(|e| internal("reading the registered model failed", e));
    let mut sources: Vec<(i32, Source)> = Vec::new();
    for row in rows {
        let text = |i| row.get::<String>(i).ok().flatten();
        let ord = row.get::<i32>(1).ok().flatten().unwrap_or(1);
        let name = text(2);
        let same = sources.last().is_some_and(|(o, s)| *o == ord && s.name == name);
        if !same {
            let oid = row.get::<pg_sys::Oid>(11).ok().flatten();
            let rel = match (text(5), text(6), oid) {
                (Some(sql), Some(name), Some(oid)) => Some(Relation { oid: oid.to_u32(), sql, name }),
                _ => None,
            };
            let src = Source { name, contact_column: text(3).unwrap_or_default(), time_column: text(4), rel, cols: Vec::new() };
            sources.push((ord, src));
        }
        if let (Some((_, src)), Some(col)) = (sources.last_mut(), text(7)) {
            let kind = TypeKind::from_typname(&text(10).unwrap_or_default());
            src.cols.push(Column { name: col, sql: text(8).unwrap_or_default(), type_sql: text(9).unwrap_or_default(), kind });
        }
    }
    let mut contacts = None;
    let mut events = Vec::new();
    for (ord, src) in sources {
        if ord == 0 { contacts = Some(src) } else { events.push(src) }
    }
    (contacts, events)
}

/// The registered model, as the catalog describes it now (cached while nothing it was read from
/// changed). A missing contact source is an error at once; a broken event source is recorded and
/// is an error only for rules that use it.
pub fn load_model(client: &SpiClient) -> Model {
    unsafe { pg_sys::AcceptInvalidationMessages() };
    let generation = MODEL.with(Watch::generation);
    if let Some(m) = CACHED.with(|c| c.borrow().as_ref().filter(|(g, _)| *g == generation).map(|(_, m)| m.clone())) {
        return m;
    }
    let (model, kept) = MODEL.with(|w| {
        w.read(true, || {
            let model = read_model(client);
            let mut watched: Vec<pg_sys::Oid> = model.contacts.iter().map(|c| c.rel.oid).chain(model.events.iter().map(|e| e.rel.oid))
                .map(pg_sys::Oid::from)
                .collect();
            watched.extend(registration_tables(client));
            (model, watched)
        })
    });
    if kept {
        CACHED.with(|c| *c.borrow_mut() = Some((generation, model.clone())));
    }
    model
}

thread_local! {
    static OWNER: Cell<Option<(u64, pg_sys::Oid)>> = const { Cell::new(None) };
}

/// The extension's owner. Kept while a model is cached: the model watches segplan's registration
/// tables, which DROP EXTENSION drops, so a reinstalled extension is read anew.
pub fn extension_owner() -> pg_sys::Oid {
    let generation = MODEL.with(Watch::generation);
    let model_cached = CACHED.with(|c| c.borrow().as_ref().is_some_and(|(g, _)| *g == generation));
    if let Some((_, o)) = OWNER.with(Cell::get).filter(|(g, _)| model_cached && *g == generation) {
        return o;
    }
    let o = super::read_one::<pg_sys::Oid>("SELECT e.extowner FROM pg_catalog.pg_extension e WHERE e.extname = 'segplan'")
        .unwrap_or_else(|e| internal("reading segplan's owner failed", e))
        .unwrap_or_else(|| internal("reading segplan's owner failed", "no extension row"));
    if model_cached {
        OWNER.with(|c| c.set(Some((generation, o))));
    }
    o
}

fn registration_tables(client: &SpiClient) -> Vec<pg_sys::Oid> {
    client
        .select("SELECT ARRAY['segplan.contact_source'::pg_catalog.regclass::pg_catalog.oid, 'segplan.event_sources'::pg_catalog.regclass::pg_catalog.oid, \
                 'segplan.rfm_config'::pg_catalog.regclass::pg_catalog.oid]", None, &[])
        .and_then(|t| t.first().get_one::<Vec<pg_sys::Oid>>())
        .unwrap_or_else(|e| internal("reading segplan's tables failed", e))
        .unwrap_or_default()
}

fn read_model(client: &SpiClient) -> Model {
    let mut model = Model::default();
    let (contacts, events) = read_sources(client);
    if let Some(src) = contacts {
        let Some(rel) = src.rel else {
            report(
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                "the registered contact source no longer exists",
                "the table or view it named was dropped".into(),
                Some("register it again with segplan.register_contacts".into()),
            )
        };
        let key = registered_column(&src.cols, &src.contact_column, &rel, "contact key column").unwrap_or_else(|b| {
            report(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                &format!("the registered contact source is broken: {}", b.reason),
                format!("columns of {}: {}", rel.name, src.cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")),
                Some("the column was dropped or renamed: register the source again".into()),
            )
        });
        let keyed = keyed_by(rel.oid, &key.name);
        model.contacts = Some(ContactSource { rel, key, columns: src.cols, keyed });
    }
    for src in events {
        let name = src.name.unwrap_or_default();
        let Some(rel) = src.rel else {
            model.broken.push(Broken { name, code: Code::UndefinedTable, reason: "the table or view it named was dropped".into() });
            continue;
        };
        let cols = src.cols;
        let found = registered_column(&cols, &src.contact_column, &rel, "contact column").and_then(|contact| {
            let time = src.time_column.map(|t| registered_column(&cols, &t, &rel, "time column")).transpose()?;
            Ok((contact, time))
        });
        match found {
            Ok((contact, time)) => {
                let keyed = keyed_by(rel.oid, &contact.name);
                model.events.push(EventSource { name, rel, contact, time, columns: cols, keyed })
            }
            Err(b) => model.broken.push(Broken { name, ..b }),
        }
    }
    model.rfm = read_rfm(client);
    model
}

/// Where writes to source `relid` log the contacts named by its column `column`
/// (segplan_core::model::Keyed): the table itself and the column, if it is of a key type ([`key_type`]); for
/// a view, the one table its contact column comes from, when every row of the view comes from one
/// row of that table (joined with rows of other tables, or not): no aggregate, window function,
/// DISTINCT, set operation, LIMIT, sub-select or WITH; nothing but tables and joins in its FROM,
/// that table in it once; the column that table's own column of a key type. Then a write to
/// the table changes the view's rows of the contacts it touched only; a write to any other table
/// the view reads is not patched (it logs no keys).
pub fn keyed_by(relid: u32, column: &str) -> segplan_core::model::Keyed {
    // SAFETY: a relation opened and closed here (None if it is gone), its view query read only
    unsafe {
        let rel = pg_sys::try_relation_open(pg_sys::Oid::from(relid), pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        if rel.is_null() {
            return None;
        }
        let out = match (*(*rel).rd_rel).relkind as u8 {
            b'r' | b'p' => {
                let desc = pgrx::PgTupleDesc::from_pg_unchecked((*rel).rd_att);
                desc.iter()
                    .find(|a| !a.is_dropped() && a.name() == column)
                    .filter(|a| key_type(a.type_oid().value()))
                    .map(|_| (relid, column.to_string()))
            }
            b'v' => view_source(pg_sys::get_view_query(rel), relid, column),
            _ => None,
        };
        pg_sys::relation_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        out
    }
}

/// Whether a column of this type holds keys the change log logs (smallint, integer, bigint; uuid,
/// text, varchar as text).
pub(super) fn key_type(t: pg_sys::Oid) -> bool {
    [pg_sys::INT2OID, pg_sys::INT4OID, pg_sys::INT8OID, pg_sys::UUIDOID, pg_sys::TEXTOID, pg_sys::VARCHAROID].contains(&t)
}

/// [`keyed_by`] for a view's query.
///
/// # Safety
/// `q` must be a view's stored query.
unsafe fn view_source(q: *mut pg_sys::Query, view: u32, column: &str) -> segplan_core::model::Keyed {
    let q = q.as_ref()?;
    let simple = !(q.hasAggs || q.hasWindowFuncs || q.hasTargetSRFs || q.hasSubLinks || q.hasDistinctOn || q.hasRecursive || q.hasModifyingCTE || q.hasForUpdate)
        && q.setOperations.is_null() && q.distinctClause.is_null() && q.groupClause.is_null() && q.groupingSets.is_null()
        && q.havingQual.is_null() && q.limitCount.is_null() && q.limitOffset.is_null() && q.cteList.is_null();
    if !simple {
        return None;
    }
    let rtable = pgrx::PgList::<pg_sys::RangeTblEntry>::from_pg(q.rtable);
    let mut tables = Vec::new();
    for rte in rtable.iter_ptr() {
        let rte = rte.as_ref()?;
        match rte.rtekind {
            pg_sys::RTEKind::RTE_JOIN => {}
            // PostgreSQL 15 keeps the view itself in its rule's range table (OLD and NEW), not in FROM
            pg_sys::RTEKind::RTE_RELATION if rte.relid == pg_sys::Oid::from(view) && !rte.inFromCl => {}
            pg_sys::RTEKind::RTE_RELATION if [b'r', b'p'].contains(&(rte.relkind as u8)) => tables.push(rte.relid),
            _ => return None,
        }
    }
    let targets = pgrx::PgList::<pg_sys::TargetEntry>::from_pg(q.targetList);
    let entry = targets.iter_ptr().filter_map(|t| t.as_ref()).find(|t| {
        !t.resjunk && !t.resname.is_null() && std::ffi::CStr::from_ptr(t.resname).to_bytes() == column.as_bytes()
    })?;
    if !pgrx::is_a(entry.expr.cast(), pg_sys::NodeTag::T_Var) {
        return None;
    }
    let var = entry.expr.cast::<pg_sys::Var>().as_ref()?;
    if var.varlevelsup != 0 || var.varno < 1 || !key_type(var.vartype) {
        return None;
    }
    let rte = rtable.get_ptr(var.varno as usize - 1)?.as_ref()?;
    if rte.rtekind != pg_sys::RTEKind::RTE_RELATION || tables.iter().filter(|t| **t == rte.relid).count() != 1 {
        return None;
    }
    let name = pg_sys::get_attname(rte.relid, var.varattno, true);
    if name.is_null() {
        return None;
    }
    Some((rte.relid.to_u32(), std::ffi::CStr::from_ptr(name).to_string_lossy().into_owned()))
}

fn read_rfm(client: &SpiClient) -> Option<RfmConfig> {
    let rows = client
        .select("SELECT event, amount_property::text, occasion_property::text, \"window\"::text, as_of::text FROM segplan.rfm_config", None, &[])
        .unwrap_or_else(|e| internal("reading the RFM configuration failed", e));
    rows.into_iter().next().map(|row| {
        let text = |i| row.get::<String>(i).ok().flatten();
        RfmConfig {
            event: text(1).unwrap_or_default(),
            amount: text(2).unwrap_or_default(),
            occasion: text(3),
            window: text(4).unwrap_or_default(),
            as_of: text(5),
        }
    })
}

/// Functions whose answer moves with the clock: now(), statement_timestamp(),
/// transaction_timestamp(), clock_timestamp(), timeofday(), and age() of one argument (from today,
/// or from the current transaction id).
const CLOCK_FUNCTIONS: [u32; 8] = [1299, 2648, 2647, 2649, 274, 1386, 2059, 1181];

/// Whether view `relid` can answer otherwise with nothing written to the tables it reads: its
/// query (sub-queries included) reads the clock (a function of [`CLOCK_FUNCTIONS`], CURRENT_DATE,
/// CURRENT_TIME, CURRENT_TIMESTAMP, LOCALTIME, LOCALTIMESTAMP), calls a volatile function
/// (`random()`), or a function or operator of the database's own that is not immutable (it may
/// read tables segplan does not see). A bitmap of such a view would not follow it: conditions over
/// it are never cached. Anything else (a table, a view that is not) is false.
pub fn changes_without_writes(relid: u32) -> bool {
    // SAFETY: a relation opened and closed here (false if it is gone), its view query only read
    unsafe {
        let rel = pg_sys::try_relation_open(pg_sys::Oid::from(relid), pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        if rel.is_null() {
            return false;
        }
        let out = (*(*rel).rd_rel).relkind as u8 == b'v' && {
            let q = pg_sys::get_view_query(rel);
            pg_sys::contain_volatile_functions(q.cast()) || pg_sys::query_tree_walker(q, Some(reads_clock), std::ptr::null_mut(), 0)
        };
        pg_sys::relation_close(rel, pg_sys::AccessShareLock as pg_sys::LOCKMODE);
        out
    }
}

/// Tree walker: whether an expression (or query) under `node` reads the clock or calls a function
/// of the database's own that is not immutable (see [`changes_without_writes`]).
#[pg_guard]
unsafe extern "C-unwind" fn reads_clock(node: *mut pg_sys::Node, context: *mut std::ffi::c_void) -> bool {
    if node.is_null() {
        return false;
    }
    // a function or operator of the database's own (not built in) that is not immutable
    let own_mutable = |f: pg_sys::Oid| f.to_u32() >= pg_sys::FirstNormalObjectId && pg_sys::func_volatile(f) != pg_sys::PROVOLATILE_IMMUTABLE as std::ffi::c_char;
    if pgrx::is_a(node, pg_sys::NodeTag::T_FuncExpr) {
        let f = (*node.cast::<pg_sys::FuncExpr>()).funcid;
        if CLOCK_FUNCTIONS.contains(&f.to_u32()) || own_mutable(f) {
            return true;
        }
    } else if pgrx::is_a(node, pg_sys::NodeTag::T_OpExpr) {
        if own_mutable(pg_sys::get_opcode((*node.cast::<pg_sys::OpExpr>()).opno)) {
            return true;
        }
    } else if pgrx::is_a(node, pg_sys::NodeTag::T_SQLValueFunction) {
        use pg_sys::SQLValueFunctionOp::*;
        let op = (*node.cast::<pg_sys::SQLValueFunction>()).op;
        if [SVFOP_CURRENT_DATE, SVFOP_CURRENT_TIME, SVFOP_CURRENT_TIME_N, SVFOP_CURRENT_TIMESTAMP, SVFOP_CURRENT_TIMESTAMP_N,
            SVFOP_LOCALTIME, SVFOP_LOCALTIME_N, SVFOP_LOCALTIMESTAMP, SVFOP_LOCALTIMESTAMP_N].contains(&op) {
            return true;
        }
    } else if pgrx::is_a(node, pg_sys::NodeTag::T_Query) {
        return pg_sys::query_tree_walker(node.cast(), Some(reads_clock), context, 0);
    }
    pg_sys::expression_tree_walker(node, Some(reads_clock), context)
}
