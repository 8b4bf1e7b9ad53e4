//! Rule functions. Each takes the rule as text (text form, or JSON text); the jsonb overloads in
//! sql/finalize.sql pass their argument on as text. All run as the caller (SECURITY INVOKER), so
//! the caller's grants and row-level security decide what is counted.
use super::catalog::current_model;
use super::error::{in_subtransaction, internal, raise, report};
use super::bitmap64_type::Roaringbitmap64;
use super::dense_ids;
use super::engine;
use super::params::args;
use super::segments_api;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode};
use segplan_core::algebra;
use segplan_core::bitmap::RoaringTreemap;
use segplan_core::compile::{self, Query};
use segplan_core::error::Problem;
use segplan_core::model::{Model, TypeKind};
use segplan_core::rule::{self, json, text, Rule};
use serde_json::json;

fn parse_rule(rule: &str) -> Rule {
    rule::parse_any(rule).unwrap_or_else(|p| raise(&p))
}

/// A rule to evaluate: parsed, with stored segments' current rules in place of references.
fn read_rule(rule: &str) -> Rule {
    segments_api::expand(&parse_rule(rule), None).unwrap_or_else(|p| raise(&p))
}

/// The rule evaluated by the bitmap engine, unless `segplan.engine = sql` or contacts without
/// an id cannot be numbered in this transaction (then one SQL statement answers).
fn evaluate(rule: &Rule, model: &Model, as_of: TimestampWithTimeZone) -> Option<engine::Evaluation> {
    if engine::engine() != engine::Engine::Bitmap {
        return None;
    }
    engine::try_evaluate(rule, model, as_of, &regex_error).ok()
}

fn compiled<'m>(rule: &Rule, model: &'m Model) -> compile::Compiled<'m> {
    compile::compile(rule, model, &regex_error).unwrap_or_else(|p| raise(&p))
}

/// Compiles a pattern with Postgres's regex engine (as `~` would) inside a subtransaction and
/// returns its error message if it is invalid.
pub(super) fn regex_error(pattern: &str) -> Option<String> {
    in_subtransaction(|| unsafe {
        let empty = "".into_datum().unwrap_or_else(|| unreachable!());
        let pat = pattern.into_datum().unwrap_or_else(|| unreachable!());
        pg_sys::OidFunctionCall2Coll(pg_sys::Oid::from(pg_sys::F_TEXTREGEXEQ), pg_sys::DEFAULT_COLLATION_OID, empty, pat);
    })
    .err()
    .map(|(msg, _)| msg)
}

/// Runs a one-row query. No SPI row limit: PostgreSQL runs no parallel workers for a statement
/// executed with a limit, and segplan's counts scan large tables.
fn run_one(client: &pgrx::spi::SpiClient, q: &Query, as_of: TimestampWithTimeZone) -> i64 {
    client
        .select(&q.sql, None, &args(as_of, &q.params))
        .and_then(|t| t.first().get_one::<i64>())
        .unwrap_or_else(|e| internal("running the count failed", e))
        .unwrap_or(0)
}

/// Number of contacts matching the rule.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn count(rule: &str, as_of: default!(TimestampWithTimeZone, "pg_catalog.date_trunc('minute', pg_catalog.now())")) -> i64 {
    let r = read_rule(rule);
    let model = current_model();
    if let Some(ev) = evaluate(&r, &model, as_of) {
        return algebra::count(&ev.plan.expr(), &ev.leaf_refs(), ev.universe.as_deref()) as i64;
    }
    let q = compiled(&r, &model).count();
    Spi::connect(|client| run_one(client, &q, as_of))
}

/// The matching contacts as a bitmap: of their keys when keys are integers, else of their
/// segplan ids (`segplan.keys_of` turns those back into keys).
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn bitmap(rule: &str, as_of: default!(TimestampWithTimeZone, "pg_catalog.date_trunc('minute', pg_catalog.now())")) -> Roaringbitmap64 {
    let r = read_rule(rule);
    let model = current_model();
    let ev = engine::evaluate(&r, &model, as_of, &regex_error);
    Roaringbitmap64(algebra::eval(&ev.plan.expr(), &ev.leaf_refs(), ev.universe.as_deref()))
}

fn require_integer_keys(model: &Model, detail: &str, hint: &str) {
    if model.contacts.as_ref().is_some_and(|c| c.key.kind != TypeKind::Integer) {
        report(PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH, "contact keys are not integers", detail.into(), Some(hint.into()));
    }
}

/// The matching keys cast to `cast`; `integer_keys` refuses a contact source whose keys are not integers.
fn member_rows<T: FromDatum + IntoDatum + Key>(rule: &str, as_of: TimestampWithTimeZone, cast: &str, integer_keys: bool) -> Vec<T> {
    let r = read_rule(rule);
    let model = current_model();
    if integer_keys {
        require_integer_keys(&model, "segplan.members returns bigint keys", "use segplan.members_text(rule), which returns keys of any type as text");
    }
    if let Some(ev) = evaluate(&r, &model, as_of) {
        let b = algebra::eval(&ev.plan.expr(), &ev.leaf_refs(), ev.universe.as_deref());
        return T::members(&b, model.contacts.as_ref().is_some_and(|c| c.key.kind != TypeKind::Integer));
    }
    let q = compiled(&r, &model).members(cast);
    Spi::connect(|client| dense_ids::first_column(client.select(&q.sql, None, &args(as_of, &q.params)).unwrap_or_else(|e| internal("listing members failed", e))))
}

/// Member keys from the bitmap engine's answer: integer keys are its values; other keys (`dense`)
/// are read back from their ids.
trait Key: Sized {
    fn members(ids: &RoaringTreemap, dense: bool) -> Vec<Self>;
}

impl Key for i64 {
    // `members` refuses contact keys that are not integers before evaluating
    fn members(ids: &RoaringTreemap, _dense: bool) -> Vec<Self> {
        ids.iter().map(|k| k as i64).collect()
    }
}

impl Key for String {
    fn members(ids: &RoaringTreemap, dense: bool) -> Vec<Self> {
        // the caller's own contacts: no need to check what it may see
        if dense { Spi::connect(|client| dense_ids::keys(client, ids)) } else { ids.iter().map(|k| k.to_string()).collect() }
    }
}

// Keys of the matching contacts, as bigint (integer contact keys): `segplan.members(rule text,
// as_of timestamptz)`, declared in sql/finalize.sql (all rows in one call, see src/pg/srf.rs).
crate::materialized_srf!(members_wrapper, pg_finfo_members_wrapper, |fcinfo| {
    // SAFETY: the call of members(rule text, as_of timestamptz), strict
    let (rule, as_of) = unsafe { rule_args(fcinfo) };
    member_rows::<i64>(rule, as_of, "bigint", true)
});

// Keys of the matching contacts as text, for any key type (uuid, text, integers):
// `segplan.members_text(rule text, as_of timestamptz)`, declared in sql/finalize.sql.
crate::materialized_srf!(members_text_wrapper, pg_finfo_members_text_wrapper, |fcinfo| {
    // SAFETY: the call of members_text(rule text, as_of timestamptz), strict
    let (rule, as_of) = unsafe { rule_args(fcinfo) };
    member_rows::<String>(rule, as_of, "text", false)
});

/// The arguments of a strict function of `(rule text, as_of timestamptz)`.
///
/// # Safety
/// `fcinfo` is such a function's call.
unsafe fn rule_args<'a>(fcinfo: pg_sys::FunctionCallInfo) -> (&'a str, TimestampWithTimeZone) {
    use pgrx::fcinfo::pg_getarg;
    let rule = pg_getarg::<&str>(fcinfo, 0).unwrap_or_else(|| internal("a strict function got NULL", "rule"));
    let as_of = pg_getarg::<TimestampWithTimeZone>(fcinfo, 1).unwrap_or_else(|| internal("a strict function got NULL", "as_of"));
    (rule, as_of)
}

/// The funnel of the top-level conditions: each alone, and the running result of 1..k.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn count_steps(
    rule: &str,
    as_of: default!(TimestampWithTimeZone, "pg_catalog.date_trunc('minute', pg_catalog.now())"),
) -> TableIterator<'static, (name!(step, i32), name!(path, String), name!(label, String), name!(matched, i64), name!(running, i64))> {
    let r = read_rule(rule);
    let model = current_model();
    if let Some(ev) = evaluate(&r, &model, as_of) {
        let leaves = ev.leaf_refs();
        let mut rows = Vec::with_capacity(ev.plan.steps.len());
        let mut running: Option<segplan_core::bitmap::RoaringTreemap> = None;
        for (i, (step, expr)) in ev.plan.steps.iter().enumerate() {
            let alone = algebra::eval(expr, &leaves, ev.universe.as_deref());
            let matched = alone.len() as i64;
            let acc = match running.take() {
                None => alone,
                Some(prev) if ev.plan.any => prev | alone,
                Some(prev) => prev & alone,
            };
            rows.push((i as i32 + 1, step.path.clone(), step.label.clone(), matched, acc.len() as i64));
            running = Some(acc);
        }
        return TableIterator::new(rows);
    }
    let (steps, q) = compile::steps(&r, &model, &regex_error).unwrap_or_else(|p| raise(&p));
    let rows = Spi::connect(|client| {
        let table = client.select(&q.sql, None, &args(as_of, &q.params)).unwrap_or_else(|e| internal("counting steps failed", e));
        let row = table.first();
        steps
            .into_iter()
            .enumerate()
            .map(|(i, s)| {
                let matched = row.get::<i64>(2 * i + 1).ok().flatten().unwrap_or(0);
                let running = row.get::<i64>(2 * i + 2).ok().flatten().unwrap_or(0);
                (i as i32 + 1, s.path, s.label, matched, running)
            })
            .collect::<Vec<_>>()
    });
    TableIterator::new(rows)
}

/// The SQL that `segplan.members` runs for the rule, with $n placeholders ($1 is as_of).
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn to_sql(rule: &str) -> String {
    let r = read_rule(rule);
    compiled(&r, &current_model()).members("bigint").sql
}

/// Every problem of a rule (syntax, limits, unknown names, types), without raising.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn validate(rule: &str) -> JsonB {
    let against_model = |r: &Rule| match segments_api::expand(r, None) {
        Ok(r) => compile::check(&r, &current_model(), &regex_error),
        Err(p) => p.0,
    };
    let problems: Vec<Problem> = match rule::parse_any(rule) {
        Ok(r) => against_model(&r),
        // what does read is checked too, so every problem shows at once
        Err(p) => p.0.into_iter().chain(rule::readable_part(rule).map(|r| against_model(&r)).unwrap_or_default()).collect(),
    };
    let list: Vec<serde_json::Value> = problems
        .iter()
        .map(|p| json!({"path": p.path, "message": p.message, "hint": p.hint, "sqlstate": p.code.sqlstate()}))
        .collect();
    JsonB(json!({"valid": list.is_empty(), "problems": list}))
}

/// The JSON form of a rule given in the text form (or JSON, normalized).
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn parse(rule: &str) -> JsonB {
    JsonB(json::to_json(&parse_rule(rule)))
}

/// The text form of a rule given as JSON (or text, normalized).
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn format(rule: &str) -> String {
    text::format(&parse_rule(rule))
}
