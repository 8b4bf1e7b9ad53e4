//! Contact policies: kept in segplan.policies, applied to a segment as a waterfall of bitmaps
//! (policy_impact) or to one contact at interaction time (eligible). Everything runs as the caller,
//! except reading contacts made and reserved by every brand and the named policies (src/pg/owner.rs).
use super::catalog::current_model;
use super::engine;
use super::owner;
use super::error::{internal, raise, raise_all, raise_one, report, required, required_all, timely};
use super::rules_api::regex_error;
use super::segments_api;
use pgrx::datum::{DatumWithOid, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::{JsonB, PgSqlErrorCode};
use segplan_core::bitmap::{self, RoaringTreemap};
use segplan_core::compile::{self, Param};
use segplan_core::error::{choices, Problem, Problems};
use segplan_core::model::{Model, TypeKind};
use segplan_core::policy::{self, Exclusion, Policy, Reach, Send, PAUSED_SQL};
use segplan_core::{algebra, rule, segments};
use pgrx::spi::OwnedPreparedStatement;
use pgrx::PgOid;
use std::cell::RefCell;
use std::collections::{HashMap, HashSet};

fn valid_name(name: &str) {
    if !segments::valid_name(name) {
        raise_one(Problem::invalid("name", format!("invalid policy name \"{name}\""))
            .hint("use lower-case letters, digits and underscores, starting with a letter or underscore (at most 63)"));
    }
}

/// Reads a spec and checks every rule against the model and the saved segments.
fn checked(spec: &serde_json::Value, model: &Model) -> Policy {
    let p = policy::parse(spec).unwrap_or_else(|e| raise_all(&e));
    let mut problems = Vec::new();
    for (i, r) in p.rules.iter().enumerate() {
        let path = format!("$.rules[{i}]");
        match policy::exclusion(r, model, &path, Reach::All) {
            Ok(Exclusion::Rule(rule)) => {
                let found = match segments_api::expand(&rule, None) {
                    Ok(x) => compile::check(&x, model, &regex_error),
                    Err(e) => e.0,
                };
                problems.extend(found.into_iter().map(|q| q.under(&path)));
            }
            Ok(Exclusion::Sql { .. } | Exclusion::History { .. } | Exclusion::Zones { .. }) => {}
            Err(e) => problems.extend(e.0),
        }
    }
    if !problems.is_empty() {
        raise_all(&Problems(problems));
    }
    p
}

/// Creates a policy; returns its spec as kept (normalized).
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn create_policy(name: &str, spec: JsonB) -> JsonB {
    valid_name(name);
    let p = checked(&spec.0, &current_model());
    let kept = policy::to_json(&p);
    let inserted = Spi::connect_mut(|c| {
        c.update("INSERT INTO segplan.policies (name, spec, brands) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING RETURNING 1", None,
                 &[name.into(), JsonB(kept.clone()).into(), p.scope.brands.clone().into()])
            .map(|t| t.len())
    })
    .unwrap_or_else(|e| internal("saving the policy failed", e));
    if inserted == 0 {
        report(PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT, &format!("policy \"{name}\" already exists"), "at name".into(),
               Some("change it with segplan.update_policy(name, spec)".into()));
    }
    JsonB(kept)
}

/// Replaces a policy's spec (its version goes up); returns the spec as kept.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn update_policy(name: &str, spec: JsonB) -> JsonB {
    let p = checked(&spec.0, &current_model());
    let kept = policy::to_json(&p);
    let updated = Spi::connect_mut(|c| {
        c.update(
            "UPDATE segplan.policies SET spec = $2, brands = $3, version = version + 1, updated_at = now(), updated_by = current_user WHERE name = $1 RETURNING 1",
            None,
            &[name.into(), JsonB(kept.clone()).into(), p.scope.brands.clone().into()],
        )
        .map(|t| t.len())
    })
    .unwrap_or_else(|e| internal("saving the policy failed", e));
    if updated == 0 {
        unknown(name, "name");
    }
    JsonB(kept)
}

/// Drops a policy.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn drop_policy(name: &str) {
    let n = Spi::connect_mut(|c| c.update("DELETE FROM segplan.policies WHERE name = $1 RETURNING 1", None, &[name.into()]).map(|t| t.len()))
        .unwrap_or_else(|e| internal("dropping the policy failed", e));
    if n == 0 {
        unknown(name, "name");
    }
}

fn unknown(name: &str, at: &str) -> ! {
    let known: Vec<String> = Spi::connect(|c| {
        c.select("SELECT name FROM segplan.policies ORDER BY name", None, &[])
            .map(|t| t.filter_map(|r| r.get::<String>(1).ok().flatten()).collect())
    })
    .unwrap_or_default();
    report(
        PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
        &format!("unknown policy \"{name}\""),
        format!("at {at}"),
        Some(if known.is_empty() { "create one with segplan.create_policy(name, spec)".into() } else { format!("policies: {}", choices(known.iter().map(|s| s.as_str()))) }),
    )
}

/// The named policies, in the order given. A policy applies wherever it is named, also when the
/// caller's brands may not read it (a policy across all brands is seen by admins only): read as
/// segplan's owner.
pub fn load(client: &SpiClient, names: &[String]) -> Vec<(String, Policy)> {
    let rows: Vec<(String, String)> = owner::as_owner(|| {
        client
            .select("SELECT name, spec::text FROM segplan.policies WHERE name = ANY ($1)", None, &[names.to_vec().into()])
            .map(|t| t.filter_map(|r| Some((r.get::<String>(1).ok()??, r.get::<String>(2).ok()??))).collect())
    })
    .unwrap_or_else(|e| internal("reading the policies failed", e));
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let Some((_, spec)) = rows.iter().find(|(k, _)| k == n) else { unknown(n, &format!("policies[{}]", i + 1)) };
            let v: serde_json::Value = serde_json::from_str(spec).unwrap_or_else(|e| internal("a stored policy is not JSON", e));
            (n.clone(), policy::parse(&v).unwrap_or_else(|e| raise(&e)))
        })
        .collect()
}

fn send_args(at: TimestampWithTimeZone, s: &Send, params: &[Param]) -> Vec<DatumWithOid<'static>> {
    let mut out: Vec<DatumWithOid<'static>> = vec![at.into(), s.channel.to_string().into(), s.brand.map(String::from).into(), s.outlet.map(String::from).into()];
    out.extend(params.iter().map(|p| super::params::bind(at, p)));
    out
}

/// A contact's time zone name when PostgreSQL knows the zone (its own tz cache, no catalog
/// scan), else NULL: quiet hours then use the session's zone.
#[pg_extern(stable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn _zone(name: Option<&str>) -> Option<String> {
    let name = name?;
    let c = std::ffi::CString::new(name).ok()?;
    let known = unsafe { !pg_sys::pg_tzset(c.as_ptr()).is_null() };
    known.then(|| name.to_string())
}

/// `what` (policies, plans) keeps contacts by bigint key: refused over other keys.
pub(super) fn require_integer_keys(model: &Model, what: &str) {
    if model.contacts.as_ref().is_some_and(|c| c.key.kind != TypeKind::Integer) {
        raise_one(Problem::invalid("$", format!("{what} need integer contact keys"))
            .hint("contact history, pauses and run lists are kept by bigint contact key: register a contact source with an integer key (a view can add one)"));
    }
}

/// The rules of the policies that apply to a send, in order, with their policy's name.
fn applicable<'p>(policies: &'p [(String, Policy)], send: &Send) -> Vec<(&'p str, &'p policy::PolicyRule)> {
    let mut out = Vec::new();
    for (name, p) in policies.iter().filter(|(_, p)| p.applies(send)) {
        for r in p.rules.iter().filter(|r| r.applies(send)) {
            if let policy::PolicyRule::MaxContacts { across: policy::Across::Outlet, .. } | policy::PolicyRule::MinGap { across: policy::Across::Outlet, .. } = r {
                if send.outlet.is_none() {
                    raise_one(Problem::invalid("outlet", format!("policy \"{name}\" counts contacts per outlet, but no outlet was given"))
                        .hint("pass the outlet of the send"));
                }
            }
            out.push((name.as_str(), r));
        }
    }
    out
}

/// Each applicable rule of the policies, labelled, with what it excludes (pauses first).
fn steps(policies: &[(String, Policy)], send: &Send, model: &Model, reach: Reach) -> Vec<(Option<String>, String, Exclusion)> {
    let mut out = vec![(None, "paused".to_string(), Exclusion::Sql { sql: PAUSED_SQL.into(), params: vec![] })];
    for (i, (name, r)) in applicable(policies, send).into_iter().enumerate() {
        let x = policy::exclusion(r, model, &format!("$.rules[{i}]"), reach).unwrap_or_else(|e| raise_all(&e));
        out.push((Some(name.to_string()), r.label(), x));
    }
    out
}

fn excluded_set(client: &SpiClient, x: &Exclusion, model: &Model, at: TimestampWithTimeZone, send: &Send) -> RoaringTreemap {
    let listed = |sql: &str, params: &[Param]| {
        client
            .select(&format!("SELECT segplan.rb64_build_agg(s.k::bigint)::pg_catalog.bytea FROM ({sql}) AS s(k)"), None, &send_args(at, send, params))
            .and_then(|t| t.first().get_one::<Vec<u8>>())
            .unwrap_or_else(|e| internal("evaluating a policy rule failed", e))
            .map(|b| bitmap::from_trusted_bytes64(&b).unwrap_or_else(|e| internal("reading a policy bitmap failed", e)))
            .unwrap_or_default()
    };
    match x {
        Exclusion::Sql { sql, params } => listed(sql, params),
        Exclusion::History { sql, params } => owner::as_owner(|| listed(sql, params)),
        Exclusion::Zones { column, sql, params } => {
            let parts = engine::partition(client, model, column, at);
            let mut args = send_args(at, send, params);
            args.push(parts.iter().map(|(zone, _)| zone.clone()).collect::<Vec<String>>().into());
            let hit: HashSet<String> = client
                .select(sql, None, &args)
                .unwrap_or_else(|e| internal("evaluating a policy rule failed", e))
                .filter_map(|r| r.get::<String>(1).ok().flatten())
                .collect();
            let mut out = RoaringTreemap::new();
            for (_, contacts) in parts.iter().filter(|(zone, _)| hit.contains(zone)) {
                out |= contacts;
            }
            out
        }
        Exclusion::Rule(r) => {
            let r = segments_api::expand(r, None).unwrap_or_else(|p| raise(&p));
            let ev = engine::evaluate(&r, model, at, &regex_error);
            algebra::eval(&ev.plan.expr(), &ev.leaf_refs(), ev.universe.as_deref())
        }
    }
}

/// Takes out of `remaining` what pauses and each applicable rule exclude, in order; one row per
/// step: (step, policy, rule, excluded, remaining).
pub fn waterfall(
    client: &SpiClient,
    model: &Model,
    remaining: &mut RoaringTreemap,
    policies: &[(String, Policy)],
    send: &Send,
    at: TimestampWithTimeZone,
) -> Vec<(i32, Option<String>, String, i64, i64)> {
    let mut rows = Vec::new();
    for (i, (pol, label, x)) in steps(policies, send, model, Reach::All).into_iter().enumerate() {
        pgrx::check_for_interrupts!();
        let set = excluded_set(client, &x, model, at, send);
        let before = remaining.len();
        *remaining -= &set;
        rows.push((i as i32 + 1, pol, label, (before - remaining.len()) as i64, remaining.len() as i64));
    }
    rows
}

/// The waterfall of a segment through policies for one send: each row the contacts a rule
/// removes (each counted under the first rule that excludes it) and what remains.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn policy_impact(
    rule: Option<&str>,
    policies: Option<Vec<Option<String>>>,
    channel: Option<&str>,
    brand: default!(Option<&str>, "NULL"),
    at: default!(Option<TimestampWithTimeZone>, "pg_catalog.now()"),
    outlet: default!(Option<&str>, "NULL"),
) -> TableIterator<'static, (name!(step, i32), name!(policy, Option<String>), name!(rule, String), name!(excluded, i64), name!(remaining, i64))> {
    let (rule, policies, channel, at) = (required(rule, "rule"), required_all(policies, "policies"), required(channel, "channel"), timely(required(at, "at"), "at"));
    let parsed = rule::parse_any(rule).unwrap_or_else(|p| raise(&p));
    let model = current_model();
    require_integer_keys(&model, "contact policies");
    let expanded = segments_api::expand(&parsed, None).unwrap_or_else(|p| raise(&p));
    let ev = engine::evaluate(&expanded, &model, at, &regex_error);
    let mut remaining = algebra::eval(&ev.plan.expr(), &ev.leaf_refs(), ev.universe.as_deref());
    let send = Send { channel, brand, outlet };
    let mut rows = vec![(0, None, rule::text::format(&parsed), 0, remaining.len() as i64)];
    Spi::connect(|client| {
        let pols = load(client, &policies);
        rows.extend(waterfall(client, &model, &mut remaining, &pols, &send, at));
    });
    TableIterator::new(rows)
}

thread_local! {
    /// eligible()'s statements, planned once per backend and kept (PostgreSQL re-plans a kept
    /// statement when what it reads changes); at most 64, then started afresh.
    static PLANS: RefCell<HashMap<String, OwnedPreparedStatement>> = RefCell::new(HashMap::new());
}

/// Runs a statement returning one boolean array through its kept plan.
fn select_planned(client: &SpiClient, sql: &str, args: &[DatumWithOid]) -> pgrx::spi::SpiResult<Option<Vec<bool>>> {
    let types: Vec<PgOid> = args.iter().map(|a| PgOid::from(a.oid())).collect();
    let key = format!("{sql}\u{1f}{types:?}");
    if !PLANS.with(|p| p.borrow().contains_key(&key)) {
        let kept = client.prepare(sql, &types)?.keep();
        PLANS.with(|p| {
            let mut p = p.borrow_mut();
            if p.len() >= 64 {
                p.clear();
            }
            p.insert(key.clone(), kept);
        });
    }
    PLANS.with(|p| {
        let p = p.borrow();
        let stmt = p.get(&key).unwrap_or_else(|| internal("a kept statement is missing", &key));
        client.select(stmt, None, args).and_then(|t| t.first().get_one::<Vec<bool>>())
    })
}

/// Whether one contact may be contacted now under the policies, and every reason it may not.
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn eligible(
    contact_key: Option<i64>,
    policies: Option<Vec<Option<String>>>,
    channel: Option<&str>,
    brand: default!(Option<&str>, "NULL"),
    at: default!(Option<TimestampWithTimeZone>, "pg_catalog.now()"),
    outlet: default!(Option<&str>, "NULL"),
) -> TableIterator<'static, (name!(eligible, bool), name!(reasons, Vec<String>))> {
    let (contact_key, policies, channel, at) = (required(contact_key, "contact_key"), required_all(policies, "policies"), required(channel, "channel"), timely(required(at, "at"), "at"));
    let model = current_model();
    require_integer_keys(&model, "contact policies");
    let send = Send { channel, brand, outlet };
    let reasons: Vec<String> = Spi::connect(|client| {
        let pols = load(client, &policies);
        let steps = steps(&pols, &send, &model, Reach::One);
        // the query steps in two statements (what reads the customer's data as the caller, the
        // contacts made by every brand as segplan's owner), the rule steps from their bitmaps
        let mut hit = vec![false; steps.len()];
        for history in [false, true] {
            let picked: Vec<(usize, &str, &[Param])> = steps.iter().enumerate().filter_map(|(i, (_, _, x))| match x {
                Exclusion::Sql { sql, params } if !history => Some((i, sql.as_str(), params.as_slice())),
                Exclusion::History { sql, params } if history => Some((i, sql.as_str(), params.as_slice())),
                _ => None,
            }).collect();
            if picked.is_empty() {
                continue;
            }
            let (sql, params) = policy::checks_for_one(&picked.iter().map(|(_, q, p)| (*q, *p)).collect::<Vec<_>>());
            let mut args = send_args(at, &send, &params);
            args.push(contact_key.into());
            let run = || select_planned(client, &sql, &args);
            let found = if history { owner::as_owner(run) } else { run() }
                .unwrap_or_else(|e| internal("evaluating a policy rule failed", e))
                .unwrap_or_default();
            for ((i, _, _), h) in picked.iter().zip(found) {
                hit[*i] = h;
            }
        }
        let mut reasons = Vec::new();
        for ((pol, label, x), mut h) in steps.into_iter().zip(hit) {
            if let Exclusion::Rule(_) = &x {
                h = u64::try_from(contact_key).is_ok_and(|k| excluded_set(client, &x, &model, at, &send).contains(k));
            }
            if h {
                reasons.push(match pol { Some(p) => format!("{p}: {label}"), None => label });
            }
        }
        reasons
    });
    TableIterator::once((reasons.is_empty(), reasons))
}

/// The plan-side hook: reserves contacts for a send, atomically against the policies' caps and
/// gaps. Contacts made, and contacts reserved by plans of the same or higher priority, count
/// against a cap; when a reservation takes the last free slot from lower-priority reservations,
/// those are bumped (returned with status 'bumped'). Concurrent reservations of the same contact
/// wait for each other (row locks in contact order), so a cap is never exceeded.
#[allow(clippy::too_many_arguments)]
#[pg_extern(volatile, parallel_unsafe)]
#[search_path(pg_catalog, pg_temp)]
fn reserve_contacts(
    contact_keys: Option<Vec<Option<i64>>>,
    policies: Option<Vec<Option<String>>>,
    channel: Option<&str>,
    brand: default!(Option<&str>, "NULL"),
    at: default!(Option<TimestampWithTimeZone>, "pg_catalog.now()"),
    priority: default!(Option<i32>, 0),
    plan_id: default!(Option<i64>, "NULL"),
    run_id: default!(Option<i64>, "NULL"),
    outlet: default!(Option<&str>, "NULL"),
) -> TableIterator<'static, (name!(contact_key, i64), name!(status, String), name!(reason, Option<String>), name!(bumped_plan, Option<i64>), name!(bumped_run, Option<i64>))> {
    let (contact_keys, policies, channel, at, priority) = (required(contact_keys, "contact_keys"), required_all(policies, "policies"), required(channel, "channel"), timely(required(at, "at"), "at"), required(priority, "priority"));
    let mut keys: Vec<i64> = contact_keys.into_iter().flatten().collect();
    keys.sort_unstable();
    keys.dedup();
    let send = Send { channel, brand, outlet };
    let granted = Spi::get_one_with_args::<bool>("SELECT coalesce(segplan._in_scope($1, $2, segplan._scope()), false)", &[brand.into(), outlet.into()])
        .unwrap_or_else(|e| internal("reading the caller's brands failed", e))
        .unwrap_or(false);
    if !granted {
        report(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, "reserving contacts for a brand not granted to the caller",
               format!("brand {}, outlet {}", brand.unwrap_or("(none: every brand)"), outlet.unwrap_or("(none)")),
               Some("an admin grants brands with segplan.grant_brand(role, brand, outlets)".into()));
    }
    // a segplan plan or run named must be one the caller can see (row-level security decides);
    // other systems may pass ids of their own
    for (what, id, sql) in [("plan", plan_id, "SELECT EXISTS (SELECT 1 FROM segplan.plans WHERE id = $1)"),
                            ("run", run_id, "SELECT EXISTS (SELECT 1 FROM segplan.plan_runs WHERE id = $1)")] {
        let Some(id) = id else { continue };
        let exists = |as_caller: bool| {
            let q = || Spi::get_one_with_args::<bool>(sql, &[id.into()]);
            if as_caller { q() } else { owner::as_owner(q) }.unwrap_or_else(|e| internal("reading plans failed", e)).unwrap_or(false)
        };
        if !exists(true) && exists(false) {
            report(PgSqlErrorCode::ERRCODE_INSUFFICIENT_PRIVILEGE, &format!("{what} {id} belongs to a brand not granted to the caller"),
                   format!("at {what}_id"), Some("reserve for your own brands' plans and runs".into()));
        }
    }
    // locks, caps over every brand's contacts, reservations and bumps: as segplan's owner
    let out = owner::as_owner(|| Spi::connect_mut(|client| {
        let iso = client.select("SELECT current_setting('transaction_isolation')", None, &[])
            .and_then(|t| t.first().get_one::<String>()).ok().flatten().unwrap_or_default();
        if iso != "read committed" {
            report(PgSqlErrorCode::ERRCODE_INVALID_TRANSACTION_STATE, "reserving contacts needs READ COMMITTED isolation",
                   format!("this transaction is {iso}: it would not see reservations committed while it waited"),
                   Some("reserve in a READ COMMITTED transaction (the default)".into()));
        }
        let pols = load(client, &policies);
        let caps: Vec<(String, policy::Cap)> = applicable(&pols, &send)
            .into_iter()
            .filter_map(|(p, r)| policy::cap(r).map(|c| (format!("{p}: {}", r.label()), c)))
            .collect();
        let fail = |e: pgrx::spi::Error| -> ! { internal("reserving contacts failed", e) };
        // one lock row per contact, locked in key order: concurrent reservers of a contact queue up
        client.update("INSERT INTO segplan.contact_locks (contact_key) SELECT unnest($1::bigint[]) ON CONFLICT DO NOTHING", None, &[keys.clone().into()]).unwrap_or_else(|e| fail(e));
        client.update("SELECT 1 FROM segplan.contact_locks WHERE contact_key = ANY ($1) ORDER BY contact_key FOR UPDATE", None, &[keys.clone().into()]).unwrap_or_else(|e| fail(e));
        let used = |c: &policy::Cap, all_priorities: bool| -> String {
            format!(
                "SELECT h.contact_key, count(*) AS n FROM (SELECT contact_key, brand, outlet, channel, contacted_at FROM segplan.contact_history \
                 WHERE contact_key = ANY (${k}) UNION ALL SELECT contact_key, brand, outlet, channel, contacted_at FROM segplan.contact_reservations \
                 WHERE contact_key = ANY (${k}) AND {prio}) AS h WHERE {conds} GROUP BY 1",
                k = c.params.len() + 5,
                prio = if all_priorities { "true".to_string() } else { format!("priority >= ${}", c.params.len() + 6) },
                conds = c.conds
            )
        };
        let args = |c: &policy::Cap, keys: &[i64]| -> Vec<DatumWithOid<'static>> {
            let mut a = send_args(at, &send, &c.params);
            a.push(keys.to_vec().into());
            a.push(priority.into());
            a.push(c.max.into());
            a
        };
        let mut refused: HashMap<i64, String> = HashMap::new();
        for (label, c) in &caps {
            pgrx::check_for_interrupts!();
            let sql = format!("SELECT u.contact_key FROM ({}) AS u WHERE u.n >= ${}", used(c, false), c.params.len() + 7);
            let hit: Vec<i64> = client.select(&sql, None, &args(c, &keys)).unwrap_or_else(|e| fail(e))
                .filter_map(|r| r.get::<i64>(1).ok().flatten()).collect();
            for k in hit {
                refused.entry(k).or_insert_with(|| label.clone());
            }
        }
        let accepted: Vec<i64> = keys.iter().copied().filter(|k| !refused.contains_key(k)).collect();
        client.update(
            "INSERT INTO segplan.contact_reservations (contact_key, brand, outlet, channel, plan_id, run_id, contacted_at, priority) \
             SELECT k, $3, $4, $2, $5, $6, $1, $7 FROM unnest($8::bigint[]) AS k",
            None,
            &[at.into(), channel.into(), brand.into(), outlet.into(), plan_id.into(), run_id.into(), priority.into(), accepted.clone().into()],
        ).unwrap_or_else(|e| fail(e));
        let mut bumped: Vec<(i64, Option<i64>, Option<i64>)> = Vec::new();
        for (_, c) in &caps {
            let sql = format!(
                "WITH over AS (SELECT u.contact_key, u.n - ${m} AS excess FROM ({used}) AS u WHERE u.n > ${m}), \
                 victims AS (SELECT h.ctid AS rid, row_number() OVER (PARTITION BY h.contact_key ORDER BY h.priority, h.reserved_at DESC) AS rn, o.excess \
                 FROM segplan.contact_reservations AS h JOIN over AS o USING (contact_key) WHERE h.priority < ${p} AND {conds}) \
                 DELETE FROM segplan.contact_reservations AS d USING victims AS v WHERE d.ctid = v.rid AND v.rn <= v.excess \
                 RETURNING d.contact_key, d.plan_id, d.run_id",
                m = c.params.len() + 7, p = c.params.len() + 6, used = used(c, true), conds = c.conds
            );
            let rows = client.update(&sql, None, &args(c, &accepted)).unwrap_or_else(|e| fail(e));
            bumped.extend(rows.map(|r| (r.get::<i64>(1).ok().flatten().unwrap_or(0), r.get::<i64>(2).ok().flatten(), r.get::<i64>(3).ok().flatten())));
        }
        let mut out: Vec<(i64, String, Option<String>, Option<i64>, Option<i64>)> = keys
            .iter()
            .map(|k| match refused.get(k) {
                Some(why) => (*k, "refused".to_string(), Some(why.clone()), None, None),
                None => (*k, "reserved".to_string(), None, None, None),
            })
            .collect();
        out.extend(bumped.into_iter().map(|(k, p, r)| (k, "bumped".to_string(), Some("a plan of higher priority took the slot".to_string()), p, r)));
        out
    }));
    TableIterator::new(out)
}
