//! The segment dashboard: key indicators of a segment's live members, from the fields the model's
//! names suggest (segplan_core::dashboard) or the user's mapping.
use super::catalog::current_model;
use super::error::{internal, raise, raise_all, raise_one, report};
use segplan_core::error::Problem;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::{AnyNumeric, JsonB, PgSqlErrorCode};
use segplan_core::compile;
use segplan_core::dashboard::{self, Fields};
use segplan_core::model::Model;
use serde_json::{json, Map, Value};

fn overrides() -> Value {
    super::read_one::<JsonB>("SELECT coalesce((SELECT fields FROM segplan.dashboard_config), '{}'::jsonb)")
        .unwrap_or_else(|e| internal("reading the dashboard configuration failed", e))
        .map(|j| j.0)
        .unwrap_or_else(|| json!({}))
}

fn fields(model: &Model) -> Fields {
    dashboard::effective(model, &overrides()).unwrap_or_else(|p| raise_all(&p))
}

/// Sets which attributes and event properties the dashboard uses (a JSON object of the shape
/// `dashboard_fields()` returns; keys left out keep their detected value, `null` turns one off).
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn configure_dashboard(fields: JsonB) -> JsonB {
    let model = current_model();
    let f = dashboard::effective(&model, &fields.0).unwrap_or_else(|p| raise_all(&p));
    Spi::run_with_args(
        "INSERT INTO segplan.dashboard_config (fields) VALUES ($1) ON CONFLICT (singleton) DO UPDATE \
         SET fields = excluded.fields, configured_at = excluded.configured_at, configured_by = excluded.configured_by",
        &[fields.into()],
    )
    .unwrap_or_else(|e| internal("saving the dashboard configuration failed", e));
    JsonB(dashboard::to_json(&f))
}

/// The fields the dashboard uses now: detected from the model, with the configured overrides.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn dashboard_fields() -> JsonB {
    JsonB(dashboard::to_json(&fields(&current_model())))
}

struct Row {
    section: String,
    label: Option<String>,
    contacts: Option<i64>,
    value: Option<AnyNumeric>,
}

fn rows(name: &str, top_n: i32, as_of: TimestampWithTimeZone) -> (Fields, Vec<Row>) {
    if top_n < 0 {
        raise_one(Problem::invalid("top_n", format!("top_n must be 0 or more, not {top_n}")).hint("the number of values listed per distribution, e.g. 5"));
    }
    let model = current_model();
    let f = fields(&model);
    let sql = dashboard::query(&model, &f).unwrap_or_else(|| {
        report(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, "no contact source is registered", "at name".into(), Some("register the contacts first: segplan.register_contacts(table, key_column)".into()))
    });
    let (sent, open, click) = f.messages.as_ref().map(|m| (m.sent.clone(), m.open.clone(), m.click.clone())).unwrap_or_default();
    Spi::connect(|client| {
        let members = client
            .select("SELECT segplan.bitmap(jsonb_build_object('segment', $1::text), $2)::bytea", None, &[name.into(), as_of.into()])
            .and_then(|t| t.first().get_one::<Vec<u8>>())
            .unwrap_or_else(|e| internal("evaluating the segment failed", e))
            .unwrap_or_default();
        let args: Vec<DatumWithOid> = vec![members.clone().into(), top_n.into(), as_of.into(), sent.into(), open.into(), click.into()];
        let mut out: Vec<Row> = client
            .select(&sql, None, &args)
            .unwrap_or_else(|e| internal("computing the dashboard failed", e))
            .map(|r| Row {
                section: r.get::<String>(1).ok().flatten().unwrap_or_default(),
                label: r.get::<String>(2).ok().flatten(),
                contacts: r.get::<i64>(3).ok().flatten(),
                value: r.get::<AnyNumeric>(4).ok().flatten(),
            })
            .collect();
        if model.rfm.is_some() {
            let q = compile::rfm_scores(&model, "bigint", "rfm").unwrap_or_else(|p| raise(&p));
            let n = q.params.len() + 2;
            let mix = format!(
                "SELECT s.cluster, count(*) FROM ({}) AS s WHERE s.k IN (SELECT segplan.rb64_iterate(segplan.roaringbitmap64(${n}))) GROUP BY 1 ORDER BY 2 DESC, 1",
                q.sql
            );
            let mut args = super::params::args(as_of, &q.params);
            args.push(members.into());
            let mix = client.select(&mix, None, &args).unwrap_or_else(|e| internal("computing the RFM mix failed", e));
            out.extend(mix.map(|r| Row {
                section: "rfm_clusters".into(),
                label: r.get::<String>(1).ok().flatten(),
                contacts: r.get::<i64>(2).ok().flatten(),
                value: None,
            }));
        }
        (f, out)
    })
}

fn share(n: i64, of: i64) -> Value {
    if of == 0 { Value::Null } else { json!(((n as f64 / of as f64) * 10_000.0).round() / 10_000.0) }
}

fn ratio(a: f64, b: f64, digits: i32) -> Value {
    if b == 0.0 { Value::Null } else { let k = 10f64.powi(digits); json!(((a / b) * k).round() / k) }
}

fn num(v: &Option<AnyNumeric>) -> f64 {
    v.as_ref().and_then(|n| n.to_string().parse().ok()).unwrap_or(0.0)
}

/// Key indicators of a segment's live members as JSON.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn segment_dashboard(
    name: &str,
    top_n: default!(i32, 5),
    as_of: default!(TimestampWithTimeZone, "pg_catalog.date_trunc('minute', pg_catalog.now())"),
) -> JsonB {
    let (f, rows) = rows(name, top_n, as_of);
    let get = |section: &str, label: Option<&str>| rows.iter().find(|r| r.section == section && r.label.as_deref() == label);
    let size = get("size", None).and_then(|r| r.contacts).unwrap_or(0);
    let all = get("all_contacts", None).and_then(|r| r.contacts).unwrap_or(0);
    let mut out = Map::new();
    out.insert("segment".into(), json!(name));
    out.insert("size".into(), json!(size));
    out.insert("share_of_contacts".into(), share(size, all));
    let dist = |section: &str| -> Value {
        Value::Array(rows.iter().filter(|r| r.section == section).map(|r| {
            let n = r.contacts.unwrap_or(0);
            json!({"value": r.label, "contacts": n, "share": share(n, size)})
        }).collect())
    };
    for (section, _) in &f.attrs {
        out.insert(section.clone(), dist(section));
    }
    if f.birth_date.is_some() {
        out.insert("age_band".into(), dist("age_band"));
    }
    let mut reach = Map::new();
    for (i, o) in f.opt_ins.iter().enumerate() {
        let n = get("reachable", Some(&i.to_string())).and_then(|r| r.contacts).unwrap_or(0);
        reach.insert(o.clone(), json!({"contacts": n, "share": share(n, size)}));
    }
    out.insert("reachability".into(), Value::Object(reach));
    if f.messages.is_some() {
        let n = |l: &str| get("engagement_90_days", Some(l)).and_then(|r| r.contacts).unwrap_or(0);
        out.insert("engagement_90_days".into(), json!({
            "sent": n("sent"), "opens": n("opens"), "clicks": n("clicks"), "contacts_who_opened": n("contacts_who_opened"),
            "open_rate": ratio(n("opens") as f64, n("sent") as f64, 4), "click_rate": ratio(n("clicks") as f64, n("sent") as f64, 4),
        }));
    }
    if f.purchases.is_some() {
        let n = |l: &str| get("purchases_365_days", Some(l)).and_then(|r| r.contacts).unwrap_or(0);
        let spend = get("purchases_365_days", Some("spend")).map(|r| num(&r.value)).unwrap_or(0.0);
        let (buyers, occasions) = (n("buyers"), n("occasions"));
        let cats: Vec<Value> = rows.iter().filter(|r| r.section == "top_categories").map(|r| {
            json!({"value": r.label, "buyers": r.contacts, "spend": ratio(num(&r.value), 1.0, 2)})
        }).collect();
        out.insert("purchases_365_days".into(), json!({
            "buyers": buyers, "buyer_share": share(buyers, size), "orders_per_buyer": ratio(occasions as f64, buyers as f64, 2),
            "average_order_value": ratio(spend, occasions as f64, 2), "total_spend": ratio(spend, 1.0, 2), "top_categories": cats,
        }));
    }
    if rows.iter().any(|r| r.section == "rfm_clusters") {
        out.insert("rfm_clusters".into(), dist("rfm_clusters"));
    }
    out.insert("fields".into(), dashboard::to_json(&f));
    JsonB(Value::Object(out))
}

/// The dashboard as rows, for BI tools: one row per indicator.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn segment_dashboard_rows(
    name: &str,
    top_n: default!(i32, 5),
    as_of: default!(TimestampWithTimeZone, "pg_catalog.date_trunc('minute', pg_catalog.now())"),
) -> TableIterator<'static, (name!(section, String), name!(label, Option<String>), name!(contacts, Option<i64>), name!(value, Option<AnyNumeric>))> {
    let (f, rows) = rows(name, top_n, as_of);
    TableIterator::new(rows.into_iter().map(move |r| {
        let label = match (r.section.as_str(), &r.label) {
            ("reachable", Some(i)) => i.parse::<usize>().ok().and_then(|i| f.opt_ins.get(i).cloned()),
            _ => r.label,
        };
        (r.section, label, r.contacts, r.value)
    }))
}
