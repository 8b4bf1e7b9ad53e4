//! Rule functions. Each takes the rule as text (text form, or JSON text); the jsonb overloads in
//! sql/finalize.sql pass their argument on as text. All run as the caller (SECURITY INVOKER), so
//! the caller's grants and row-level security decide what is counted.
use super::catalog::load_model;
use super::error::{internal, raise, report};
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode};
use segplan_core::compile::{self, Param, Query};
use segplan_core::error::Problem;
use segplan_core::model::{Model, TypeKind};
use segplan_core::rule::{self, json, text, Rule};
use serde_json::json;

fn read_rule(rule: &str) -> Rule {
    rule::parse_any(rule).unwrap_or_else(|p| raise(&p))
}

fn args(as_of: TimestampWithTimeZone, params: &[Param]) -> Vec<DatumWithOid<'static>> {
    let mut out: Vec<DatumWithOid<'static>> = Vec::with_capacity(params.len() + 1);
    out.push(as_of.into());
    for p in params {
        out.push(match p {
            Param::Text(s) => s.clone().into(),
            Param::TextArray(v) => v.clone().into(),
        });
    }
    out
}

fn with_model<R>(f: impl FnOnce(&pgrx::spi::SpiClient, &Model) -> R) -> R {
    Spi::connect(|client| {
        let model = load_model(&client);
        f(&client, &model)
    })
}

fn compiled<'m>(rule: &Rule, model: &'m Model) -> compile::Compiled<'m> {
    compile::compile(rule, model).unwrap_or_else(|p| raise(&p))
}

fn run_one(client: &pgrx::spi::SpiClient, q: &Query, as_of: TimestampWithTimeZone) -> i64 {
    client
        .select(&q.sql, Some(1), &args(as_of, &q.params))
        .and_then(|t| t.first().get_one::<i64>())
        .unwrap_or_else(|e| internal("running the count failed", e))
        .unwrap_or(0)
}

/// Number of contacts matching the rule.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn count(rule: &str, as_of: default!(TimestampWithTimeZone, "now()")) -> i64 {
    let r = read_rule(rule);
    with_model(|client, model| run_one(client, &compiled(&r, model).count(), as_of))
}

fn member_rows<T: FromDatum + IntoDatum>(rule: &str, as_of: TimestampWithTimeZone, cast: &str) -> Vec<T> {
    let r = read_rule(rule);
    with_model(|client, model| {
        let q = compiled(&r, model).members(cast);
        let table = client.select(&q.sql, None, &args(as_of, &q.params)).unwrap_or_else(|e| internal("listing members failed", e));
        let mut out = Vec::with_capacity(table.len());
        for row in table {
            pgrx::check_for_interrupts!();
            if let Ok(Some(k)) = row.get::<T>(1) {
                out.push(k);
            }
        }
        out
    })
}

/// Keys of the matching contacts, as bigint (integer contact keys).
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn members(rule: &str, as_of: default!(TimestampWithTimeZone, "now()")) -> SetOfIterator<'static, i64> {
    let is_integer = with_model(|_, m| m.contacts.as_ref().map(|c| c.key.kind == TypeKind::Integer));
    if is_integer == Some(false) {
        report(
            PgSqlErrorCode::ERRCODE_DATATYPE_MISMATCH,
            "contact keys are not integers",
            "segplan.members returns bigint keys".into(),
            Some("use segplan.members_text(rule), which returns keys of any type as text".into()),
        );
    }
    SetOfIterator::new(member_rows::<i64>(rule, as_of, "bigint"))
}

/// Keys of the matching contacts as text, for any key type (uuid, text, integers).
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn members_text(rule: &str, as_of: default!(TimestampWithTimeZone, "now()")) -> SetOfIterator<'static, String> {
    SetOfIterator::new(member_rows::<String>(rule, as_of, "text"))
}

/// The funnel of the top-level conditions: each alone, and the running result of 1..k.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn count_steps(
    rule: &str,
    as_of: default!(TimestampWithTimeZone, "now()"),
) -> TableIterator<'static, (name!(step, i32), name!(path, String), name!(label, String), name!(matched, i64), name!(running, i64))> {
    let r = read_rule(rule);
    let rows = with_model(|client, model| {
        let (steps, q) = compile::steps(&r, model).unwrap_or_else(|p| raise(&p));
        let table = client.select(&q.sql, Some(1), &args(as_of, &q.params)).unwrap_or_else(|e| internal("counting steps failed", e));
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
    with_model(|_, model| compiled(&r, model).members("bigint").sql)
}

/// Every problem of a rule (syntax, limits, unknown names, types), without raising.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn validate(rule: &str) -> JsonB {
    let problems: Vec<Problem> = match rule::parse_any(rule) {
        Err(p) => p.0,
        Ok(r) => with_model(|_, model| compile::check(&r, model)),
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
    JsonB(json::to_json(&read_rule(rule)))
}

/// The text form of a rule given as JSON (or text, normalized).
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn format(rule: &str) -> String {
    text::format(&read_rule(rule))
}
