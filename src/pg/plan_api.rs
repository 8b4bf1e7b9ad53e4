//! Plans: specs in versions, the lifecycle, slots from the schedule, and runs — each (plan, slot)
//! runs exactly once (the unique key of segplan.plan_runs decides), in one subtransaction: the
//! list, the history and the hand-off land together, or nothing does and the error is recorded.
use super::catalog::current_model;
use super::engine;
use super::owner;
use super::error::{in_subtransaction, internal, raise, raise_all, raise_one, report, required, timely};
use super::policy_api::{load, waterfall};
use super::rules_api::regex_error;
use super::segments_api;
use pgrx::datum::TimestampWithTimeZone;
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, PgSqlErrorCode};
use segplan_core::algebra;
use segplan_core::bitmap::RoaringTreemap;
use segplan_core::error::{Problem, Problems};
use segplan_core::plan::{self, Audience, Delivery, Order, PlanSpec, Size};
use segplan_core::policy::Send;
use segplan_core::rule::{Cond, Rule, Tree};
use serde_json::json;

fn fail(e: pgrx::spi::Error) -> ! {
    internal("a plan statement failed", e)
}

/// Checks a spec against the model, the saved segments, policies, the time zone and the handler.
fn checked(spec: &serde_json::Value) -> PlanSpec {
    let p = plan::parse(spec).unwrap_or_else(|e| raise_all(&e));
    let mut problems = Vec::new();
    let model = current_model();
    let rule = audience_rule(&p);
    match segments_api::expand(&rule, None) {
        Ok(x) => problems.extend(segplan_core::compile::check(&x, &model, &regex_error).into_iter().map(|q| q.under("$.rule"))),
        Err(e) => problems.extend(e.0.into_iter().map(|mut q| {
            if matches!(p.audience, Audience::Segment(_)) {
                q.path = "$.segment".into();
                q
            } else {
                q.under("$.rule")
            }
        })),
    }
    Spi::connect(|c| {
        let tz_ok = c.select("SELECT EXISTS (SELECT 1 FROM pg_catalog.pg_timezone_names WHERE name = $1)", None, &[p.schedule.time_zone.clone().into()])
            .and_then(|t| t.first().get_one::<bool>()).unwrap_or_else(|e| fail(e)).unwrap_or(false);
        if !tz_ok {
            problems.push(Problem::invalid("$.schedule.time_zone", format!("unknown time zone \"{}\"", p.schedule.time_zone))
                .hint("a name from pg_timezone_names, such as \"Europe/Paris\""));
        }
        // a plan may name a policy its author's brands cannot read (policy_api::load)
        let known: Vec<String> = owner::as_owner(|| c.select("SELECT name FROM segplan.policies WHERE name = ANY ($1)", None, &[p.policies.clone().into()])
            .map(|t| t.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())).unwrap_or_else(|e| fail(e));
        for (i, n) in p.policies.iter().enumerate().filter(|(_, n)| !known.contains(n)) {
            problems.push(Problem::invalid(&format!("$.policies[{i}]"), format!("unknown policy \"{n}\"")).hint("create it with segplan.create_policy"));
        }
        if let Delivery::Handler(h) = &p.delivery {
            let ok = c.select("SELECT to_regprocedure($1 || '(bigint)') IS NOT NULL", None, &[h.clone().into()])
                .and_then(|t| t.first().get_one::<bool>()).unwrap_or_else(|e| fail(e)).unwrap_or(false);
            if !ok {
                problems.push(Problem::invalid("$.delivery.handler", format!("no function {h}(bigint)"))
                    .hint("a handler is a function taking the run id: CREATE FUNCTION schema.name(run_id bigint) ..."));
            }
        }
    });
    if let Some(Size::Exact { order: Order::Rfm(_), .. }) = &p.size {
        if let Err(e) = segplan_core::compile::rfm_scores(&model, "bigint", "$.target.order_by.rfm") {
            problems.extend(e.0);
        }
    }
    if let Some(Size::Exact { order: Order::Attr { name, .. }, .. }) = &p.size {
        if model.contacts.as_ref().is_none_or(|c| !c.columns.iter().any(|x| &x.name == name)) {
            problems.push(unknown_order_attr(name, &model));
        }
    }
    if !problems.is_empty() {
        raise_all(&Problems(problems));
    }
    p
}

fn audience_rule(p: &PlanSpec) -> Rule {
    match &p.audience {
        Audience::Segment(n) => Tree::Leaf(Cond::Segment(n.clone())),
        Audience::Rule(r) => r.clone(),
    }
}

/// Creates a plan as a draft; returns its id.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn create_plan(name: &str, spec: JsonB) -> i64 {
    if name.trim().is_empty() {
        raise_one(Problem::invalid("name", "a plan needs a name").hint("name it as people will look for it, e.g. 'Black Friday FR'"));
    }
    let p = checked(&spec.0);
    Spi::connect_mut(|c| {
        let id = c.update("INSERT INTO segplan.plans (name, brand, outlet) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING RETURNING id", None,
                          &[name.into(), p.brand.clone().into(), p.outlet.clone().into()])?.first().get_one::<i64>().ok().flatten();
        let Some(id) = id else {
            report(PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT, &format!("plan \"{name}\" already exists"), "at name".into(),
                   Some("change it with segplan.update_plan(id, spec)".into()))
        };
        c.update("INSERT INTO segplan.plan_versions (plan_id, version, spec) VALUES ($1, 1, $2)", None, &[id.into(), JsonB(plan::to_json(&p)).into()])?;
        Ok::<i64, pgrx::spi::Error>(id)
    })
    .unwrap_or_else(|e| fail(e))
}

/// (status, version, name) of a plan, or an error naming it; `lock` takes its row for the change.
fn plan_row(c: &mut SpiClient, id: i64, lock: bool) -> (String, i32, String) {
    let sql = format!("SELECT status, version, name FROM segplan.plans WHERE id = $1{}", if lock { " FOR UPDATE" } else { "" });
    let t = c.update(&sql, None, &[id.into()]).unwrap_or_else(|e| fail(e));
    if t.is_empty() {
        report(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, &format!("unknown plan {id}"), "at id".into(), Some("segplan.plans lists the plans".into()));
    }
    let r = t.first();
    (r.get::<String>(1).ok().flatten().unwrap_or_default(), r.get::<i32>(2).ok().flatten().unwrap_or(1), r.get::<String>(3).ok().flatten().unwrap_or_default())
}

/// Changes a plan's spec: a draft is changed in place, a plan that has been active gets a new
/// version (runs record the version they ran with).
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn update_plan(id: i64, spec: JsonB) -> i32 {
    let p = checked(&spec.0);
    let kept = JsonB(plan::to_json(&p));
    Spi::connect_mut(|c| {
        let (status, version, _) = plan_row(c, id, true);
        if matches!(status.as_str(), "completed" | "cancelled") {
            report(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, &format!("plan {id} is {status}"), "at id".into(),
                   Some("create a new plan instead".into()));
        }
        let ran = c.select("SELECT EXISTS (SELECT 1 FROM segplan.plan_runs WHERE plan_id = $1 AND version = $2)", None, &[id.into(), version.into()])
            .and_then(|t| t.first().get_one::<bool>()).unwrap_or_else(|e| fail(e)).unwrap_or(false);
        let new_version = if status == "draft" && !ran { version } else { version + 1 };
        c.update("INSERT INTO segplan.plan_versions (plan_id, version, spec) VALUES ($1, $2, $3) \
                  ON CONFLICT (plan_id, version) DO UPDATE SET spec = excluded.spec, saved_at = now(), saved_by = current_user",
                 None, &[id.into(), new_version.into(), kept.into()])?;
        c.update("UPDATE segplan.plans SET version = $2, brand = $3, outlet = $4 WHERE id = $1", None,
                 &[id.into(), new_version.into(), p.brand.clone().into(), p.outlet.clone().into()])?;
        Ok::<i32, pgrx::spi::Error>(new_version)
    })
    .unwrap_or_else(|e| fail(e))
}

fn set_status(id: i64, to: &str, allowed_from: &[&str], now: TimestampWithTimeZone) {
    Spi::connect_mut(|c| {
        let (status, _, _) = plan_row(c, id, true);
        if !allowed_from.contains(&status.as_str()) {
            report(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, &format!("plan {id} is {status} and cannot become {to}"),
                   format!("at id; {to} is reached from {}", allowed_from.join(" or ")), None);
        }
        // slots before activation are not owed: the scheduler starts from now
        let checked = if to == "active" { "now_or_kept" } else { "kept" };
        c.update(
            "UPDATE segplan.plans SET status = $2, checked_until = CASE WHEN $3 = 'now_or_kept' THEN greatest(coalesce(checked_until, $4), $4) ELSE checked_until END WHERE id = $1",
            None,
            &[id.into(), to.into(), checked.into(), now.into()],
        )
        .map(|_| ())
    })
    .unwrap_or_else(|e| fail(e))
}

/// draft or paused → active: the scheduler runs its slots from now on.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn activate_plan(id: i64) {
    set_status(id, "active", &["draft", "paused"], now());
}

/// active → paused: no slot runs while paused (missed slots are not caught up).
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn pause_plan(id: i64) {
    set_status(id, "paused", &["active"], now());
}

/// Any plan not yet ended → cancelled.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn cancel_plan(id: i64) {
    set_status(id, "cancelled", &["draft", "active", "paused"], now());
}

/// Drops a plan with its versions and runs (the contact history stays).
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn drop_plan(id: i64) {
    let n = Spi::connect_mut(|c| c.update("DELETE FROM segplan.plans WHERE id = $1 RETURNING 1", None, &[id.into()]).map(|t| t.len()))
        .unwrap_or_else(|e| fail(e));
    if n == 0 {
        report(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, &format!("unknown plan {id}"), "at id".into(), Some("the segplan.plans view lists the plans and their ids".into()));
    }
}

/// A plan ordered by an attribute the contacts do not have (any more).
fn unknown_order_attr(name: &str, model: &segplan_core::model::Model) -> Problem {
    let known = model.contacts.as_ref().map(|c| segplan_core::error::choices(c.columns.iter().map(|x| x.name.as_str()))).unwrap_or_default();
    Problem::invalid("$.target.order_by.attr", format!("unknown attribute \"{name}\"")).hint(format!("attributes of the contacts: {known}"))
}

/// The longest period `calendar` lists (every slot of every active plan in it is made).
const CALENDAR_DAYS: i64 = 3660;

fn now() -> TimestampWithTimeZone {
    Spi::get_one::<TimestampWithTimeZone>("SELECT now()").ok().flatten().unwrap_or_else(|| internal("reading the time failed", ""))
}

fn spec_of(c: &SpiClient, id: i64, version: i32) -> PlanSpec {
    let s = c.select("SELECT spec::text FROM segplan.plan_versions WHERE plan_id = $1 AND version = $2", None, &[id.into(), version.into()])
        .and_then(|t| t.first().get_one::<String>()).unwrap_or_else(|e| fail(e)).unwrap_or_default();
    let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| internal("a stored plan spec is not JSON", e));
    plan::parse(&v).unwrap_or_else(|e| raise(&e))
}

/// The slots of a schedule in (from, to], as instants (local times made absolute in its zone).
fn slots(c: &SpiClient, p: &PlanSpec, from: TimestampWithTimeZone, to: TimestampWithTimeZone) -> Vec<TimestampWithTimeZone> {
    let tz = p.schedule.time_zone.clone();
    // a day either side: a slot's local date can differ from the instant's date in UTC
    let (Some(d1), Some(d2)) = (to_local(c, from, &tz).date().pred_opt(), to_local(c, to, &tz).date().succ_opt()) else { return Vec::new() };
    let local: Vec<String> = p.schedule.local_slots(d1, d2, &p.exceptions).iter().map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).collect();
    c.select(
        "SELECT s FROM (SELECT DISTINCT (x::timestamp AT TIME ZONE $4) AS s FROM unnest($1::text[]) AS x) q WHERE s > $2 AND s <= $3 ORDER BY s",
        None,
        &[local.into(), from.into(), to.into(), tz.into()],
    )
    .map(|t| t.filter_map(|r| r.get::<TimestampWithTimeZone>(1).ok().flatten()).collect())
    .unwrap_or_else(|e| fail(e))
}

/// Upcoming slots of every active plan in (from, to]: a campaign calendar.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn calendar(
    from: default!(TimestampWithTimeZone, "pg_catalog.now()"),
    to: default!(TimestampWithTimeZone, "pg_catalog.now() + interval '30 days'"),
) -> TableIterator<'static, (name!(plan_id, i64), name!(plan, String), name!(slot, TimestampWithTimeZone), name!(channel, String), name!(brand, Option<String>))> {
    let (from, to) = (timely(from, "from"), timely(to, "to"));
    let micros = |t: TimestampWithTimeZone| pg_sys::TimestampTz::from(t);
    if micros(to) - micros(from) > CALENDAR_DAYS * 86_400_000_000 {
        raise_one(Problem::invalid("to", format!("the calendar spans at most {CALENDAR_DAYS} days (10 years)")).hint("ask for a shorter period, e.g. calendar(now(), now() + interval '1 year')"));
    }
    let rows = Spi::connect(|c| {
        let plans: Vec<(i64, String, i32)> = c.select("SELECT id, name, version FROM segplan.plans WHERE status = 'active' ORDER BY id", None, &[])
            .map(|t| t.filter_map(|r| Some((r.get::<i64>(1).ok()??, r.get::<String>(2).ok()??, r.get::<i32>(3).ok()??))).collect())
            .unwrap_or_else(|e| fail(e));
        let mut out = Vec::new();
        for (id, name, version) in plans {
            let p = spec_of(c, id, version);
            // the blackout dates of the plan's policies, on the plan's calendar
            let send = Send { channel: &p.channel, brand: p.brand.as_deref(), outlet: p.outlet.as_deref() };
            let blackout: Vec<plan::NaiveDate> = load(c, &p.policies)
                .iter()
                .filter(|(_, pol)| pol.applies(&send))
                .flat_map(|(_, pol)| pol.rules.iter())
                .filter_map(|r| match r {
                    segplan_core::policy::PolicyRule::BlackoutDates { dates, .. } => Some(dates.clone()),
                    _ => None,
                })
                .flatten()
                .collect();
            for s in slots(c, &p, from, to) {
                if blackout.is_empty() || !blackout.contains(&to_local(c, s, &p.schedule.time_zone).date()) {
                    out.push((id, name.clone(), s, p.channel.clone(), p.brand.clone()));
                }
            }
        }
        out.sort_by_key(|r| (r.2, r.0));
        out
    });
    TableIterator::new(rows)
}

struct Outcome {
    status: &'static str,
    segment_size: i64,
    holdout: i64,
    excluded: i64,
    sent: i64,
    test: i64,
    waterfall: serde_json::Value,
}

/// The run itself, inside the caller's subtransaction: audience, holdout, policies, size target,
/// reservations by priority, the contact list, the history, the hand-off.
fn execute(c: &mut SpiClient, plan_id: i64, run_id: i64, p: &PlanSpec, slot: TimestampWithTimeZone) -> Outcome {
    let model = current_model();
    super::policy_api::require_integer_keys(&model, "plan runs");
    let rule = segments_api::expand(&audience_rule(p), None).unwrap_or_else(|e| raise(&e));
    let ev = engine::evaluate(&rule, &model, slot, &regex_error);
    let audience = algebra::eval(&ev.plan.expr(), &ev.leaf_refs(), ev.universe.as_deref());
    let segment_size = audience.len() as i64;
    let tests: RoaringTreemap = p.test_contacts.iter().filter_map(|k| u64::try_from(*k).ok()).collect();
    let holdout: RoaringTreemap = audience.iter().filter(|k| plan::unit_hash(*k as i64, plan_id) * 100.0 < p.holdout_percent).collect();
    let mut remaining = &audience - &holdout;
    remaining -= &tests;
    let send = Send { channel: &p.channel, brand: p.brand.as_deref(), outlet: p.outlet.as_deref() };
    let pols = load(c, &p.policies);
    let steps = waterfall(c, &model, &mut remaining, &pols, &send, slot);
    let mut wf: Vec<serde_json::Value> = vec![json!({"step": 0, "rule": "audience", "remaining": segment_size}),
                                            json!({"step": 0, "rule": "holdout", "excluded": holdout.len(), "remaining": segment_size - holdout.len() as i64})];
    wf.extend(steps.iter().map(|(s, pol, rule, ex, rem)| json!({"step": s, "policy": pol, "rule": rule, "excluded": ex, "remaining": rem})));
    // the candidates in the order the size target takes them
    let mut candidates: Vec<i64> = remaining.iter().map(|k| k as i64).collect();
    match &p.size {
        Some(Size::Exact { order: Order::Random { seed }, .. }) => {
            candidates.sort_by(|a, b| plan::unit_hash(*a, *seed).total_cmp(&plan::unit_hash(*b, *seed)).then(a.cmp(b)));
        }
        Some(Size::Exact { order: Order::Attr { name, desc }, .. }) => {
            let cs = model.contacts.as_ref().unwrap_or_else(|| internal("no contact source", ""));
            let col = cs.columns.iter().find(|x| &x.name == name).unwrap_or_else(|| raise_one(unknown_order_attr(name, &model)));
            let sql = format!("SELECT c.{k}::bigint FROM {rel} AS c WHERE c.{k} = ANY ($1) ORDER BY c.{a} {dir} NULLS LAST, c.{k}",
                              k = cs.key.sql, rel = cs.rel.sql, a = col.sql, dir = if *desc { "DESC" } else { "ASC" });
            candidates = c.select(&sql, None, &[candidates.into()]).map(|t| t.filter_map(|r| r.get::<i64>(1).ok().flatten()).collect()).unwrap_or_else(|e| fail(e));
        }
        Some(Size::Exact { order: Order::Rfm(score), .. }) => {
            let q = segplan_core::compile::rfm_scores(&model, "bigint", "$.target.order_by.rfm").unwrap_or_else(|e| raise(&e));
            let (expr, _) = segplan_core::rfm::score_sql(*score, "s");
            let n = q.params.len() + 2;
            let sql = format!("SELECT u.k FROM unnest(${n}::bigint[]) AS u(k) LEFT JOIN ({}) AS s ON s.k = u.k ORDER BY {expr} DESC NULLS LAST, u.k", q.sql);
            let mut args = super::params::args(slot, &q.params);
            args.push(candidates.into());
            candidates = c.select(&sql, None, &args).map(|t| t.filter_map(|r| r.get::<i64>(1).ok().flatten()).collect()).unwrap_or_else(|e| fail(e));
        }
        _ => {}
    }
    let want = match &p.size {
        Some(Size::Min(n)) | Some(Size::Exact { n, .. }) => Some(*n),
        None => None,
    };
    let reserved: Vec<i64> = c.update(
        "SELECT r.contact_key FROM segplan.reserve_contacts($1, $2, $3, $4, $5, $6, $7, $8, $9) AS r WHERE r.status = 'reserved'",
        None,
        &[candidates.clone().into(), p.policies.clone().into(), p.channel.clone().into(), p.brand.clone().into(), slot.into(),
          p.priority.into(), plan_id.into(), run_id.into(), p.outlet.clone().into()],
    )
    .map(|t| t.filter_map(|r| r.get::<i64>(1).ok().flatten()).collect())
    .unwrap_or_else(|e| fail(e));
    let reserved_set: std::collections::HashSet<i64> = reserved.into_iter().collect();
    let mut list: Vec<i64> = candidates.into_iter().filter(|k| reserved_set.contains(k)).collect();
    let cap_refused = remaining.len() as i64 - list.len() as i64;
    wf.push(json!({"step": wf.len(), "rule": "caps at reservation (plans of higher priority)", "excluded": cap_refused, "remaining": list.len()}));
    if let Some(Size::Exact { n, .. }) = &p.size {
        list.truncate(*n as usize);
    }
    let short = want.is_some_and(|n| (list.len() as i64) < n);
    let excluded = segment_size - holdout.len() as i64 - list.len() as i64;
    if short && !p.send_anyway {
        c.update("DELETE FROM segplan.contact_reservations WHERE run_id = $1", None, &[run_id.into()]).unwrap_or_else(|e| fail(e));
        return Outcome { status: "cancelled", segment_size, holdout: holdout.len() as i64, excluded, sent: 0, test: 0, waterfall: json!(wf) };
    }
    c.update("DELETE FROM segplan.contact_reservations WHERE run_id = $1 AND NOT (contact_key = ANY ($2))", None, &[run_id.into(), list.clone().into()])
        .unwrap_or_else(|e| fail(e));
    let test_keys: Vec<i64> = tests.iter().map(|k| k as i64).collect();
    let hold_keys: Vec<i64> = holdout.iter().map(|k| k as i64).collect();
    c.update(
        "INSERT INTO segplan.run_contacts (run_id, contact_key, status) \
         SELECT $1, k, 'sent' FROM unnest($2::bigint[]) k UNION ALL SELECT $1, k, 'test' FROM unnest($3::bigint[]) k \
         UNION ALL SELECT $1, k, 'holdout' FROM unnest($4::bigint[]) k",
        None,
        &[run_id.into(), list.clone().into(), test_keys.into(), hold_keys.into()],
    )
    .unwrap_or_else(|e| fail(e));
    c.update("SELECT segplan.confirm_reservations($1)", None, &[run_id.into()]).unwrap_or_else(|e| fail(e));
    if p.channel == "call" {
        schedule_calls(c, run_id, p, slot, &list);
    }
    match &p.delivery {
        Delivery::None => {}
        Delivery::Notify => {
            let payload = json!({"run_id": run_id, "plan_id": plan_id}).to_string();
            c.update("SELECT pg_notify('segplan_runs', $1)", None, &[payload.into()]).unwrap_or_else(|e| fail(e));
        }
        Delivery::Handler(h) => {
            // the name was checked at save time; Postgres quotes it (regprocedure output)
            let f = c.select("SELECT to_regprocedure($1 || '(bigint)')::oid::regproc::text", None, &[h.clone().into()])
                .and_then(|t| t.first().get_one::<String>()).unwrap_or_else(|e| fail(e))
                .unwrap_or_else(|| raise_one(Problem::invalid("$.delivery.handler", format!("no function {h}(bigint)"))
                    .hint("the handler was dropped since the plan was saved: create it again, or update the plan's delivery")));
            c.update(&format!("SELECT {f}($1::bigint)"), None, &[run_id.into()]).unwrap_or_else(|e| fail(e));
        }
    }
    Outcome { status: "sent", segment_size, holdout: holdout.len() as i64, excluded, sent: list.len() as i64, test: tests.len() as i64, waterfall: json!(wf) }
}

/// Local time of an instant in a zone, and instants of local times there.
fn to_local(c: &SpiClient, t: TimestampWithTimeZone, tz: &str) -> plan::NaiveDateTime {
    let s = c.select("SELECT to_char($1 AT TIME ZONE $2, 'YYYY-MM-DD HH24:MI:SS')", None, &[t.into(), tz.to_string().into()])
        .and_then(|r| r.first().get_one::<String>()).unwrap_or_else(|e| fail(e)).unwrap_or_default();
    plan::NaiveDateTime::parse_from_str(&s, "%Y-%m-%d %H:%M:%S").unwrap_or_else(|e| internal("reading a local time failed", e))
}

fn to_instants(c: &SpiClient, local: &[plan::NaiveDateTime], tz: &str) -> Vec<TimestampWithTimeZone> {
    let texts: Vec<String> = local.iter().map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string()).collect();
    c.select("SELECT x::timestamp AT TIME ZONE $2 FROM unnest($1::text[]) WITH ORDINALITY AS u(x, i) ORDER BY i", None, &[texts.into(), tz.to_string().into()])
        .map(|t| t.filter_map(|r| r.get::<TimestampWithTimeZone>(1).ok().flatten()).collect())
        .unwrap_or_else(|e| fail(e))
}

fn paused_for_calls(c: &SpiClient, key: i64, at: TimestampWithTimeZone) -> bool {
    c.select(&format!("SELECT EXISTS (SELECT 1 FROM ({}) AS s(k) WHERE s.k = $3)", segplan_core::policy::PAUSED_SQL), None,
             &[at.into(), "call".into(), key.into()])
        .and_then(|t| t.first().get_one::<bool>()).unwrap_or_else(|e| fail(e)).unwrap_or(false)
}

/// Gives each contact of a call run the next free call time after the slot, skipping times at
/// which the contact is paused (for calls).
fn schedule_calls(c: &mut SpiClient, run_id: i64, p: &PlanSpec, slot: TimestampWithTimeZone, list: &[i64]) {
    let tz = &p.schedule.time_zone;
    let paused: std::collections::HashSet<i64> = c
        .select("SELECT DISTINCT contact_key FROM segplan.contact_pauses WHERE contact_key = ANY ($1) AND (channels IS NULL OR 'call' = ANY (channels))",
                None, &[list.to_vec().into()])
        .map(|t| t.filter_map(|r| r.get::<i64>(1).ok().flatten()).collect())
        .unwrap_or_else(|e| fail(e));
    let times = to_instants(c, &p.call_times(to_local(c, slot, tz), list.len() + 20 * paused.len() + 20), tz);
    let mut free: Vec<Option<TimestampWithTimeZone>> = times.into_iter().map(Some).collect();
    let (mut keys, mut ats) = (Vec::new(), Vec::new());
    for k in list {
        pgrx::check_for_interrupts!();
        let pick = free.iter().position(|t| t.is_some_and(|t| !paused.contains(k) || !paused_for_calls(c, *k, t)));
        if let Some(i) = pick {
            keys.push(*k);
            ats.push(free[i].take().unwrap_or(slot));
        }
    }
    c.update(
        "INSERT INTO segplan.call_list (run_id, contact_key, assignee, call_at) SELECT $1, k, $2, t FROM unnest($3::bigint[], $4::timestamptz[]) AS u(k, t)",
        None,
        &[run_id.into(), p.assignee.clone().unwrap_or_default().into(), keys.into(), ats.into()],
    )
    .unwrap_or_else(|e| fail(e));
}

/// Records a call's outcome; `call_later` re-queues the call for the next call time an hour or
/// more from now.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn record_outcome(run_id: Option<i64>, contact_key: Option<i64>, status: Option<&str>, note: default!(Option<&str>, "NULL")) {
    let (run_id, contact_key, status) = (required(run_id, "run_id"), required(contact_key, "contact_key"), required(status, "status"));
    const STATUSES: &[&str] = &["completed", "unavailable", "busy", "call_later", "converted", "failed"];
    if !STATUSES.contains(&status) {
        raise_one(Problem::invalid("status", format!("unknown call outcome \"{status}\"")).hint(format!("outcomes: {}", STATUSES.join(", "))));
    }
    Spi::connect_mut(|c| {
        let t = c.update(
            "SELECT r.plan_id, r.version, greatest(l.call_at, now() + interval '1 hour') FROM segplan.call_list l JOIN segplan.plan_runs r ON r.id = l.run_id \
             WHERE l.run_id = $1 AND l.contact_key = $2 FOR UPDATE OF l",
            None,
            &[run_id.into(), contact_key.into()],
        ).unwrap_or_else(|e| fail(e));
        if t.is_empty() {
            report(PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE, &format!("contact {contact_key} is not on the call list of run {run_id}"),
                   "at contact_key".into(), Some("segplan.call_queue(assignee, day) lists the calls".into()));
        }
        let r = t.first();
        let (plan_id, version, after) = (r.get::<i64>(1).ok().flatten().unwrap_or(0), r.get::<i32>(2).ok().flatten().unwrap_or(1),
                                         r.get::<TimestampWithTimeZone>(3).ok().flatten());
        let next = if status == "call_later" {
            let p = spec_of(c, plan_id, version);
            after.and_then(|a| to_instants(c, &p.call_times(to_local(c, a, &p.schedule.time_zone), 1), &p.schedule.time_zone).into_iter().next())
        } else {
            None
        };
        c.update(
            "UPDATE segplan.call_list SET status = $3, note = coalesce($4, note), attempts = attempts + 1, updated_at = now(), \
             call_at = coalesce($5, call_at) WHERE run_id = $1 AND contact_key = $2",
            None,
            &[run_id.into(), contact_key.into(), status.into(), note.into(), next.into()],
        )
        .map(|_| ())
    })
    .unwrap_or_else(|e| fail(e))
}

/// Runs (plan, slot) unless it ran already; returns the run id. A failure rolls the run back and
/// is recorded as a failed run (run_plan again retries it).
fn run_slot(plan_id: i64, slot: TimestampWithTimeZone, skip: bool) -> i64 {
    let (version, p) = Spi::connect_mut(|c| {
        let (_, version, _) = plan_row(c, plan_id, false);
        (version, spec_of(c, plan_id, version))
    });
    let status = if skip { "skipped" } else { "running" };
    // the unique (plan, slot) key: a concurrent run of the same slot waits here and then finds it
    let claimed = Spi::connect_mut(|c| {
        let t = c.update(
            "INSERT INTO segplan.plan_runs (plan_id, version, slot, status) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (plan_id, slot) DO UPDATE SET status = excluded.status, version = excluded.version, error = NULL, started_at = clock_timestamp() \
             WHERE segplan.plan_runs.status = 'failed' RETURNING id",
            None,
            &[plan_id.into(), version.into(), slot.into(), status.into()],
        )?;
        if t.is_empty() { Ok(None) } else { t.first().get_one::<i64>() }
    })
    .unwrap_or_else(|e| fail(e));
    let Some(run_id) = claimed else {
        return Spi::get_one_with_args::<i64>("SELECT id FROM segplan.plan_runs WHERE plan_id = $1 AND slot = $2", &[plan_id.into(), slot.into()])
            .ok().flatten().unwrap_or(0);
    };
    if skip {
        return run_id;
    }
    let result = in_subtransaction(|| Spi::connect_mut(|c| execute(c, plan_id, run_id, &p, slot)))
        .map_err(|(msg, detail)| format!("{msg}{}", detail.map(|d| format!(" ({d})")).unwrap_or_default()));
    Spi::connect_mut(|c| match result {
        Ok(o) => c.update(
            "UPDATE segplan.plan_runs SET status = $2, finished_at = clock_timestamp(), segment_size = $3, holdout = $4, excluded = $5, \
             sent = $6, test = $7, waterfall = $8, test_addresses = CASE WHEN $2 = 'sent' THEN $9 ELSE '{}' END WHERE id = $1",
            None,
            &[run_id.into(), o.status.into(), o.segment_size.into(), o.holdout.into(), o.excluded.into(), o.sent.into(), o.test.into(), JsonB(o.waterfall).into(),
              p.test_addresses.clone().into()],
        ).map(|_| ()),
        Err(msg) => c.update("UPDATE segplan.plan_runs SET status = 'failed', finished_at = clock_timestamp(), error = $2 WHERE id = $1", None,
                             &[run_id.into(), msg.into()]).map(|_| ()),
    })
    .unwrap_or_else(|e| fail(e));
    run_id
}

/// Runs one slot of a plan by hand (any status but cancelled); returns the run id. A slot that
/// already ran is not run again: its run id is returned.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn run_plan(id: i64, slot: default!(TimestampWithTimeZone, "pg_catalog.now()")) -> i64 {
    let slot = timely(slot, "slot");
    let (status, _, _) = Spi::connect_mut(|c| plan_row(c, id, false));
    if status == "cancelled" {
        report(PgSqlErrorCode::ERRCODE_OBJECT_NOT_IN_PREREQUISITE_STATE, &format!("plan {id} is cancelled"), "at id".into(), Some("a cancelled plan does not run again: create a new plan (segplan.create_plan) from its spec".into()));
    }
    run_slot(id, slot, false)
}

/// Runs every due slot of every active plan up to `now`; returns the number of runs made.
/// Missed slots (several due at once) run each once when the plan catches up, else are recorded
/// as skipped and only the latest runs. Plans are locked one at a time, so ticks can overlap.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn tick(now: default!(TimestampWithTimeZone, "pg_catalog.now()")) -> i32 {
    let now = timely(now, "now");
    let ids: Vec<i64> = Spi::connect(|c| {
        c.select("SELECT id FROM segplan.plans WHERE status = 'active' ORDER BY id", None, &[])
            .map(|t| t.filter_map(|r| r.get::<i64>(1).ok().flatten()).collect())
            .unwrap_or_else(|e| fail(e))
    });
    let mut runs = 0;
    for id in ids {
        pgrx::check_for_interrupts!();
        // lock the plan: a concurrent tick waits, then sees how far this one got
        let due = Spi::connect_mut(|c| {
            let t = c.update("SELECT version, checked_until FROM segplan.plans WHERE id = $1 AND status = 'active' FOR UPDATE", None, &[id.into()])
                .unwrap_or_else(|e| fail(e));
            if t.is_empty() {
                return None;
            }
            let r = t.first();
            let version = r.get::<i32>(1).ok().flatten().unwrap_or(1);
            let from = r.get::<TimestampWithTimeZone>(2).ok().flatten().unwrap_or(now);
            let p = spec_of(c, id, version);
            let due = slots(c, &p, from, now);
            c.update("UPDATE segplan.plans SET checked_until = greatest(checked_until, $2) WHERE id = $1", None, &[id.into(), now.into()])
                .unwrap_or_else(|e| fail(e));
            Some((p, due))
        });
        let Some((p, due)) = due else { continue };
        let last = due.len().saturating_sub(1);
        for (i, slot) in due.iter().enumerate() {
            run_slot(id, *slot, i < last && !p.schedule.catch_up);
            runs += 1;
        }
        // a one-off plan, or one past its last day, is done once no slot is left after now
        let last_day = match (&p.schedule.when, p.schedule.until) {
            (plan::When::Once(t), _) => Some(t.date()),
            (_, until) => until,
        };
        if let Some(day) = last_day {
            let done = Spi::connect_mut(|c| {
                let end = c.select("SELECT greatest($1, ($2::date + 2)::timestamptz)", None, &[now.into(), day.format("%Y-%m-%d").to_string().into()])
                    .and_then(|t| t.first().get_one::<TimestampWithTimeZone>()).unwrap_or_else(|e| fail(e)).unwrap_or(now);
                slots(c, &p, now, end).is_empty()
            });
            if done {
                Spi::run_with_args("UPDATE segplan.plans SET status = 'completed' WHERE id = $1 AND status = 'active'", &[id.into()])
                    .unwrap_or_else(|e| fail(e));
            }
        }
    }
    runs
}

fn responses(c: &SpiClient) -> Option<plan::Responses> {
    let s = c.select("SELECT spec::text FROM segplan.response_config", None, &[]).unwrap_or_else(|e| fail(e));
    let s = s.into_iter().next().and_then(|r| r.get::<String>(1).ok().flatten())?;
    let v: serde_json::Value = serde_json::from_str(&s).unwrap_or_else(|e| internal("the response configuration is not JSON", e));
    Some(plan::parse_responses(&v).unwrap_or_else(|e| raise(&e)))
}

/// Sets which events mean open, click and conversion after a run, and the window they are
/// counted in (default 7 days); checked against the model.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn configure_responses(spec: JsonB) -> JsonB {
    let r = plan::parse_responses(&spec.0).unwrap_or_else(|e| raise_all(&e));
    let model = current_model();
    let mut problems = Vec::new();
    for (k, rule) in &r.kinds {
        problems.extend(segplan_core::compile::check(rule, &model, &regex_error).into_iter().map(|q| q.under(&format!("$.{k}"))));
    }
    if !problems.is_empty() {
        raise_all(&Problems(problems));
    }
    let kept = plan::responses_json(&r);
    Spi::run_with_args(
        "INSERT INTO segplan.response_config (spec) VALUES ($1) ON CONFLICT (singleton) DO UPDATE SET spec = excluded.spec, configured_at = now()",
        &[JsonB(kept.clone()).into()],
    )
    .unwrap_or_else(|e| fail(e));
    JsonB(kept)
}


/// Per run of a plan: sizes, and the responses of the sent contacts (and of the holdout) within
/// the configured window after the slot; lift = conversion rate ÷ holdout conversion rate − 1.
#[pg_extern(stable, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn plan_report(plan_id: i64) -> TableIterator<'static, (
    name!(run_id, i64), name!(slot, TimestampWithTimeZone), name!(status, String), name!(segment_size, Option<i64>), name!(excluded, Option<i64>),
    name!(sent, Option<i64>), name!(test, Option<i64>), name!(holdout, Option<i64>), name!(opened, Option<i64>), name!(clicked, Option<i64>),
    name!(converted, Option<i64>), name!(open_rate, Option<f64>), name!(click_rate, Option<f64>), name!(conversion_rate, Option<f64>),
    name!(holdout_conversion_rate, Option<f64>), name!(lift, Option<f64>),
)> {
    let model = current_model();
    let rows = Spi::connect_mut(|c| {
        plan_row(c, plan_id, false);
        let resp = responses(c);
        let runs: Vec<(i64, TimestampWithTimeZone, String, Option<i64>, Option<i64>, Option<i64>, Option<i64>, Option<i64>, String, String)> = c
            .update(
                "SELECT id, slot, status, segment_size, excluded, sent, test, holdout, \
                 to_char(slot AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), \
                 to_char((slot + $2::interval) AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"') \
                 FROM segplan.plan_runs WHERE plan_id = $1 ORDER BY slot",
                None,
                &[plan_id.into(), resp.as_ref().map(|r| r.window.interval()).unwrap_or_else(|| "7 days".into()).into()],
            )
            .map(|t| {
                t.filter_map(|r| {
                    Some((r.get::<i64>(1).ok()??, r.get::<TimestampWithTimeZone>(2).ok()??, r.get::<String>(3).ok()??, r.get::<i64>(4).ok()?,
                          r.get::<i64>(5).ok()?, r.get::<i64>(6).ok()?, r.get::<i64>(7).ok()?, r.get::<i64>(8).ok()?,
                          r.get::<String>(9).ok()??, r.get::<String>(10).ok()??))
                })
                .collect()
            })
            .unwrap_or_else(|e| fail(e));
        let mut out = Vec::new();
        for (run_id, slot, status, size, excluded, sent, test, holdout, from, to) in runs {
            pgrx::check_for_interrupts!();
            let members = |kind: &str| -> RoaringTreemap {
                c.select("SELECT contact_key FROM segplan.run_contacts WHERE run_id = $1 AND status = $2", None, &[run_id.into(), kind.into()])
                    .map(|t| t.filter_map(|r| r.get::<i64>(1).ok().flatten().and_then(|k| u64::try_from(k).ok())).collect())
                    .unwrap_or_else(|e| fail(e))
            };
            let (s, h) = (members("sent"), members("holdout"));
            let mut counts = std::collections::HashMap::new();
            if let (Some(r), "sent") = (&resp, status.as_str()) {
                for (kind, rule) in &r.kinds {
                    let ev = engine::evaluate(&plan::response_in(rule, &from, &to), &model, slot, &regex_error);
                    let b = algebra::eval(&ev.plan.expr(), &ev.leaf_refs(), ev.universe.as_deref());
                    counts.insert(kind.clone(), ((&b & &s).len() as i64, (&b & &h).len() as i64));
                }
            }
            let n = |k: &str| counts.get(k).map(|x| x.0);
            let rate = |x: Option<i64>, of: u64| x.and_then(|x| (of > 0).then(|| x as f64 / of as f64));
            let conv = rate(n("conversion"), s.len());
            let hold = counts.get("conversion").and_then(|x| rate(Some(x.1), h.len()));
            let lift = match (conv, hold) {
                (Some(a), Some(b)) if b > 0.0 => Some(a / b - 1.0),
                _ => None,
            };
            out.push((run_id, slot, status, size, excluded, sent, test, holdout, n("open"), n("click"), n("conversion"),
                      rate(n("open"), s.len()), rate(n("click"), s.len()), conv, hold, lift));
        }
        out
    });
    TableIterator::new(rows)
}
