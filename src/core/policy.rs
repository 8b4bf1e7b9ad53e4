//! Contact policies: a scope and rules that exclude contacts from a send (caps across channels,
//! brands and outlets, gaps, quiet hours and blackout dates in the contact's time zone, segments,
//! required opt-ins, unsubscribes). A policy reads as strictly as a rule (unknown keys → 22023
//! with a path); each rule becomes a query listing the contacts it excludes for one send.
//!
//! Queries share the parameters of a send: `$1` the time of the send, `$2` its channel, `$3` its
//! brand, `$4` its outlet (NULL when none); a rule's own values follow from `$5`.
use crate::error::{choices, unknown_keys, Problem, Problems, POLICY_HINT};
use crate::model::{find, Model, TypeKind};
use crate::compile::{renumber_from, Param};
use crate::rule::{self, Compare, Cond, Op, Operand, Rule, Scalar, Span, Tree, SPAN_HINT, UNITS};
use chrono::{NaiveDate, NaiveTime};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Scope {
    pub brands: Option<Vec<String>>,
    pub outlets: Option<Vec<String>>,
    pub channels: Option<Vec<String>>,
}

/// Whose past contacts count toward a cap or a gap.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Across { Brand, AllBrands, Outlet }

const ACROSS: &[(&str, Across)] = &[("brand", Across::Brand), ("all_brands", Across::AllBrands), ("outlet", Across::Outlet)];

#[derive(Debug, Clone, PartialEq)]
pub enum PolicyRule {
    MaxContacts { max: i64, per: Span, across: Across, channels: Option<Vec<String>> },
    MinGap { gap: Span, across: Across, channels: Option<Vec<String>> },
    QuietHours { from: NaiveTime, to: NaiveTime, time_zone_attr: Option<String> },
    BlackoutDates { dates: Vec<NaiveDate>, time_zone_attr: Option<String> },
    ExcludeSegment(String),
    RequireAttr(String),
    ExcludeUnsubscribed(Rule),
}

#[derive(Debug, Clone, PartialEq)]
pub struct Policy {
    pub scope: Scope,
    pub rules: Vec<PolicyRule>,
}

/// One send a policy is applied to.
pub struct Send<'a> {
    pub channel: &'a str,
    pub brand: Option<&'a str>,
    pub outlet: Option<&'a str>,
}

impl Policy {
    /// Whether the policy covers this send.
    pub fn applies(&self, s: &Send) -> bool {
        let has = |list: &Option<Vec<String>>, v: Option<&str>| list.as_ref().is_none_or(|l| v.is_some_and(|v| l.iter().any(|x| x == v)));
        has(&self.scope.brands, s.brand) && has(&self.scope.outlets, s.outlet) && has(&self.scope.channels, Some(s.channel))
    }
}

impl PolicyRule {
    /// Whether the rule takes part in this send (a rule limited to channels applies to those only).
    pub fn applies(&self, s: &Send) -> bool {
        match self {
            PolicyRule::MaxContacts { channels: Some(c), .. } | PolicyRule::MinGap { channels: Some(c), .. } => c.iter().any(|x| x == s.channel),
            _ => true,
        }
    }

    /// A short text for waterfalls and reasons.
    pub fn label(&self) -> String {
        let across = |a: &Across| match a {
            Across::Brand => "this brand",
            Across::AllBrands => "all brands",
            Across::Outlet => "this outlet",
        };
        let chans = |c: &Option<Vec<String>>| c.as_ref().map(|c| format!(", {}", c.join("/"))).unwrap_or_default();
        match self {
            PolicyRule::MaxContacts { max, per, across: a, channels } => format!("at most {max} per {} {} ({}{})", per.n, per.unit.name(), across(a), chans(channels)),
            PolicyRule::MinGap { gap, across: a, channels } => format!("at least {} {} apart ({}{})", gap.n, gap.unit.name(), across(a), chans(channels)),
            PolicyRule::QuietHours { from, to, .. } => format!("quiet hours {}–{}", from.format("%H:%M"), to.format("%H:%M")),
            PolicyRule::BlackoutDates { dates, .. } => format!("blackout {}", dates.iter().map(|d| d.to_string()).collect::<Vec<_>>().join(", ")),
            PolicyRule::ExcludeSegment(s) => format!("not in segment {s}"),
            PolicyRule::RequireAttr(a) => format!("requires {a}"),
            PolicyRule::ExcludeUnsubscribed(r) => format!("not {}", rule::text::format(r)),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON → policy

#[derive(Default)]
struct Reader {
    problems: Vec<Problem>,
}

impl Reader {
    fn err(&mut self, p: Problem) {
        self.problems.push(p);
    }

    fn object<'v>(&mut self, v: &'v Value, path: &str, what: &str) -> Option<&'v Map<String, Value>> {
        let m = v.as_object();
        if m.is_none() {
            self.err(Problem::invalid(path, format!("{what} must be a JSON object, not {v}")));
        }
        m
    }

    fn keys(&mut self, m: &Map<String, Value>, path: &str, allowed: &[&str]) -> bool {
        let unknown = unknown_keys(m, path, allowed);
        let ok = unknown.is_empty();
        self.problems.extend(unknown);
        ok
    }

    fn strings(&mut self, v: &Value, path: &str) -> Option<Vec<String>> {
        match v.as_array() {
            Some(xs) if !xs.is_empty() && xs.iter().all(|x| x.as_str().is_some_and(|s| !s.is_empty())) => {
                Some(xs.iter().filter_map(|x| x.as_str().map(String::from)).collect())
            }
            _ => {
                self.err(Problem::invalid(path, format!("must be a non-empty list of strings, not {v}")));
                None
            }
        }
    }

    fn span(&mut self, v: &Value, path: &str) -> Option<Span> {
        let m = self.object(v, path, "a length of time")?;
        let units: Vec<&str> = UNITS.iter().map(|(n, _)| *n).collect();
        match (m.len(), m.iter().next()) {
            (1, Some((k, n))) => match (UNITS.iter().find(|(u, _)| u == k), n.as_i64()) {
                (Some((_, unit)), Some(n)) if (1..=unit.max()).contains(&n) => Some(Span { n, unit: *unit }),
                (None, _) => {
                    self.err(Problem::invalid(&format!("{path}.{k}"), format!("unknown unit \"{k}\"")).hint(format!("units: {}", choices(units.iter().copied()))));
                    None
                }
                (Some((_, unit)), _) => {
                    self.err(Problem::invalid(&format!("{path}.{k}"), format!("must be a whole number from 1 to {}, not {n}", unit.max()))
                        .hint(SPAN_HINT));
                    None
                }
            },
            _ => {
                self.err(Problem::invalid(path, "a length of time has exactly one unit, e.g. {\"days\": 7}"));
                None
            }
        }
    }

    fn across(&mut self, m: &Map<String, Value>, path: &str) -> Option<Across> {
        match m.get("count_across") {
            None => Some(Across::Brand),
            Some(v) => {
                let found = v.as_str().and_then(|s| ACROSS.iter().find(|(n, _)| *n == s)).map(|(_, a)| *a);
                if found.is_none() {
                    self.err(Problem::invalid(&format!("{path}.count_across"), format!("unknown count_across {v}")).hint(format!("choose one of: {}", choices(ACROSS.iter().map(|(n, _)| *n)))));
                }
                found
            }
        }
    }

    fn tz_attr(&mut self, m: &Map<String, Value>, path: &str) -> Option<Option<String>> {
        match m.get("time_zone_attr") {
            None => Some(None),
            Some(Value::String(s)) if !s.is_empty() => Some(Some(s.clone())),
            Some(v) => {
                self.err(Problem::invalid(&format!("{path}.time_zone_attr"), format!("must be an attribute name, not {v}")));
                None
            }
        }
    }

    fn time(&mut self, v: Option<&Value>, path: &str) -> Option<NaiveTime> {
        let t = v.and_then(|v| v.as_str()).and_then(|s| NaiveTime::parse_from_str(s, "%H:%M").ok());
        if t.is_none() {
            self.err(Problem::invalid(path, format!("must be a time \"HH:MM\", not {}", v.map(|v| v.to_string()).unwrap_or_else(|| "missing".into()))));
        }
        t
    }

    fn rule(&mut self, v: &Value, path: &str) -> Option<PolicyRule> {
        let m = self.object(v, path, "a policy rule")?;
        let kinds = ["max_contacts", "min_gap", "quiet_hours", "blackout_dates", "exclude_segment", "require_attr", "exclude_unsubscribed"];
        let Some(kind) = kinds.iter().find(|k| m.contains_key(**k)) else {
            self.err(Problem::invalid(path, "unknown policy rule").hint(format!("a rule is one of: {}", choices(kinds.iter().copied()))));
            return None;
        };
        let kp = format!("{path}.{kind}");
        let x = &m[*kind];
        match *kind {
            "max_contacts" => {
                let ok = self.keys(m, path, &["max_contacts", "per", "count_across", "channels"]);
                let max = x.as_i64().filter(|n| (0..=1_000_000).contains(n));
                if max.is_none() {
                    self.err(Problem::invalid(&kp, format!("must be a whole number from 0 to 1000000, not {x}")));
                }
                let per = match m.get("per") {
                    Some(p) => self.span(p, &format!("{path}.per")),
                    None => {
                        self.err(Problem::invalid(path, "missing key \"per\"").hint("for example \"per\": {\"days\": 7}"));
                        None
                    }
                };
                let across = self.across(m, path);
                let channels = m.get("channels").map(|c| self.strings(c, &format!("{path}.channels")));
                if !ok { return None }
                Some(PolicyRule::MaxContacts { max: max?, per: per?, across: across?, channels: channels.map_or(Some(None), |c| c.map(Some))? })
            }
            "min_gap" => {
                let ok = self.keys(m, path, &["min_gap", "count_across", "channels"]);
                let gap = self.span(x, &kp);
                let across = self.across(m, path);
                let channels = m.get("channels").map(|c| self.strings(c, &format!("{path}.channels")));
                if !ok { return None }
                Some(PolicyRule::MinGap { gap: gap?, across: across?, channels: channels.map_or(Some(None), |c| c.map(Some))? })
            }
            "quiet_hours" => {
                let ok = self.keys(m, path, &["quiet_hours"]);
                let q = self.object(x, &kp, "quiet_hours")?;
                let ok = self.keys(q, &kp, &["from", "to", "time_zone_attr"]) && ok;
                let from = self.time(q.get("from"), &format!("{kp}.from"));
                let to = self.time(q.get("to"), &format!("{kp}.to"));
                let tz = self.tz_attr(q, &kp);
                if from.is_some() && from == to {
                    self.err(Problem::invalid(&kp, "quiet hours from and to are the same time").hint("give a window such as 21:00 to 09:00"));
                    return None;
                }
                if !ok { return None }
                Some(PolicyRule::QuietHours { from: from?, to: to?, time_zone_attr: tz? })
            }
            "blackout_dates" => {
                let ok = self.keys(m, path, &["blackout_dates", "time_zone_attr"]);
                let mut dates = Vec::new();
                match x.as_array() {
                    Some(xs) if !xs.is_empty() => {
                        for (i, d) in xs.iter().enumerate() {
                            match d.as_str().and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()) {
                                Some(d) => dates.push(d),
                                None => self.err(Problem::invalid(&format!("{kp}[{i}]"), format!("must be a date \"YYYY-MM-DD\", not {d}"))),
                            }
                        }
                    }
                    _ => self.err(Problem::invalid(&kp, format!("must be a non-empty list of dates, not {x}"))),
                }
                let tz = self.tz_attr(m, path);
                if !ok || dates.is_empty() { return None }
                Some(PolicyRule::BlackoutDates { dates, time_zone_attr: tz? })
            }
            "exclude_segment" | "require_attr" => {
                let ok = self.keys(m, path, &[kind]);
                let name = x.as_str().filter(|s| !s.is_empty()).map(String::from);
                if name.is_none() {
                    self.err(Problem::invalid(&kp, format!("must be a name, not {x}")));
                }
                if !ok { return None }
                Some(if *kind == "exclude_segment" { PolicyRule::ExcludeSegment(name?) } else { PolicyRule::RequireAttr(name?) })
            }
            _ => {
                let ok = self.keys(m, path, &["exclude_unsubscribed"]);
                let u = self.object(x, &kp, "exclude_unsubscribed")?;
                let ok = self.keys(u, &kp, &["event", "where"]) && ok;
                let mut ev = Map::new();
                ev.insert("event".into(), u.get("event").cloned().unwrap_or(Value::Null));
                if let Some(w) = u.get("where") {
                    ev.insert("where".into(), w.clone());
                }
                match rule::json::parse_value(&Value::Object(ev)) {
                    Ok(r) if ok => Some(PolicyRule::ExcludeUnsubscribed(r)),
                    Ok(_) => None,
                    Err(p) => {
                        self.problems.extend(p.0.into_iter().map(|x| x.under(&kp)));
                        None
                    }
                }
            }
        }
    }
}

/// Reads a policy spec, collecting every problem with its JSON path.
pub fn parse(v: &Value) -> Result<Policy, Problems> {
    let mut r = Reader::default();
    let Some(m) = r.object(v, "$", "a policy") else { return Err(Problems(r.problems).or_hint(POLICY_HINT)) };
    r.keys(m, "$", &["scope", "rules"]);
    let mut scope = Scope::default();
    if let Some(s) = m.get("scope") {
        if let Some(sm) = r.object(s, "$.scope", "the scope") {
            r.keys(sm, "$.scope", &["brands", "outlets", "channels"]);
            scope.brands = sm.get("brands").and_then(|x| r.strings(x, "$.scope.brands"));
            scope.outlets = sm.get("outlets").and_then(|x| r.strings(x, "$.scope.outlets"));
            scope.channels = sm.get("channels").and_then(|x| r.strings(x, "$.scope.channels"));
        }
    }
    let mut rules = Vec::new();
    match m.get("rules").and_then(|x| x.as_array()) {
        Some(xs) if !xs.is_empty() && xs.len() <= 100 => {
            for (i, x) in xs.iter().enumerate() {
                if let Some(rule) = r.rule(x, &format!("$.rules[{i}]")) {
                    rules.push(rule);
                }
            }
        }
        _ => r.err(Problem::invalid("$.rules", "a policy needs \"rules\": a list of 1 to 100 rules")
            .hint("for example {\"rules\": [{\"max_contacts\": 2, \"per\": {\"days\": 7}}]}")),
    }
    if r.problems.is_empty() { Ok(Policy { scope, rules }) } else { Err(Problems(r.problems).or_hint(POLICY_HINT)) }
}

/// The canonical JSON of a policy (what is stored).
pub fn to_json(p: &Policy) -> Value {
    let mut scope = Map::new();
    for (k, v) in [("brands", &p.scope.brands), ("outlets", &p.scope.outlets), ("channels", &p.scope.channels)] {
        if let Some(v) = v {
            scope.insert(k.into(), json!(v));
        }
    }
    let across = |a: &Across| ACROSS.iter().find(|(_, x)| x == a).map(|(n, _)| *n).unwrap_or("brand");
    let span = |s: &Span| json!({ s.unit.name(): s.n });
    let rules: Vec<Value> = p.rules.iter().map(|r| {
        let mut m = Map::new();
        match r {
            PolicyRule::MaxContacts { max, per, across: a, channels } => {
                m.insert("max_contacts".into(), json!(max));
                m.insert("per".into(), span(per));
                m.insert("count_across".into(), json!(across(a)));
                if let Some(c) = channels { m.insert("channels".into(), json!(c)); }
            }
            PolicyRule::MinGap { gap, across: a, channels } => {
                m.insert("min_gap".into(), span(gap));
                m.insert("count_across".into(), json!(across(a)));
                if let Some(c) = channels { m.insert("channels".into(), json!(c)); }
            }
            PolicyRule::QuietHours { from, to, time_zone_attr } => {
                let mut q = Map::new();
                q.insert("from".into(), json!(from.format("%H:%M").to_string()));
                q.insert("to".into(), json!(to.format("%H:%M").to_string()));
                if let Some(t) = time_zone_attr { q.insert("time_zone_attr".into(), json!(t)); }
                m.insert("quiet_hours".into(), Value::Object(q));
            }
            PolicyRule::BlackoutDates { dates, time_zone_attr } => {
                m.insert("blackout_dates".into(), json!(dates.iter().map(|d| d.to_string()).collect::<Vec<_>>()));
                if let Some(t) = time_zone_attr { m.insert("time_zone_attr".into(), json!(t)); }
            }
            PolicyRule::ExcludeSegment(s) => { m.insert("exclude_segment".into(), json!(s)); }
            PolicyRule::RequireAttr(a) => { m.insert("require_attr".into(), json!(a)); }
            PolicyRule::ExcludeUnsubscribed(r) => {
                let j = rule::json::to_json(r);
                let mut u = Map::new();
                u.insert("event".into(), j["event"].clone());
                if let Some(w) = j.get("where") { u.insert("where".into(), w.clone()); }
                m.insert("exclude_unsubscribed".into(), Value::Object(u));
            }
        }
        Value::Object(m)
    }).collect();
    json!({"scope": scope, "rules": rules})
}

// ---------------------------------------------------------------------------------------------
// policy rule → what it excludes

/// What a rule excludes: contacts listed by a query (send parameters `$1`–`$4`, then `params`),
/// the same over segplan's contact history of every brand (caps and gaps: run with segplan's
/// privileges, since a cap counts contacts the caller's brands may not see), or the contacts
/// matching a segment rule (evaluated by the rule engine at the send's time).
#[derive(Debug, Clone, PartialEq)]
pub enum Exclusion {
    Sql { sql: String, params: Vec<Param> },
    History { sql: String, params: Vec<Param> },
    Rule(Rule),
    /// the contacts whose time zone (the contacts' column `column`, as text, `''` for NULL) is
    /// one of the zone names `sql` selects (`d.name`) from the names given as its last parameter,
    /// after the send's `$1`–`$4` and `params`: the rule is tested once per distinct zone, and the
    /// contacts grouped by zone are cached like a leaf
    Zones { column: String, sql: String, params: Vec<Param> },
}

/// The contacts' time zone column (`time_zone_attr`, else one named time_zone, timezone or tz), as
/// SQL; None: the session's zone for everyone.
fn tz_column(model: &Model, attr: &Option<String>, path: &str, problems: &mut Vec<Problem>) -> Option<String> {
    let c = model.contacts.as_ref()?;
    let col = match attr {
        Some(a) => {
            let col = find(&c.columns, a);
            if col.is_none_or(|x| x.kind != TypeKind::Text) {
                problems.push(Problem::invalid(&format!("{path}.time_zone_attr"), format!("\"{a}\" is not a text attribute of {}", c.rel.name))
                    .hint("name the contacts' time zone column, holding names such as 'Europe/Rome'"));
                return None;
            }
            col
        }
        None => ["time_zone", "timezone", "tz"].iter().find_map(|n| find(&c.columns, n).filter(|x| x.kind == TypeKind::Text)),
    };
    col.map(|c| c.sql.clone())
}

/// How an exclusion will be used: for a whole population (a waterfall, a run) or for one contact
/// (`eligible`, which filters on the contact's key).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reach { All, One }

/// The contacts for whom `pred` holds in their own time zone (`pred` gets the zone as SQL); an
/// unknown zone name in the data falls back to the session's zone instead of failing the send
/// (segplan._zone: the name when PostgreSQL knows the zone, else NULL). For a population, `pred`
/// is tested once per distinct zone name ([`Exclusion::Zones`]).
fn zoned(model: &Model, tz: Option<String>, reach: Reach, params: Vec<Param>, pred: impl Fn(&str) -> String) -> Exclusion {
    let Some(c) = model.contacts.as_ref() else { return Exclusion::Sql { sql: String::new(), params } };
    let (k, rel) = (&c.key.sql, &c.rel.sql);
    let session = "pg_catalog.current_setting('TimeZone')";
    let sql = match (tz, reach) {
        (None, _) => format!("SELECT c.{k} FROM {rel} AS c WHERE c.{k} IS NOT NULL AND ({})", pred(session)),
        (Some(z), Reach::One) => format!(
            "SELECT c.{k} FROM {rel} AS c WHERE c.{k} IS NOT NULL AND ({})", pred(&format!("coalesce(segplan._zone(c.{z}), {session})"))),
        (Some(z), Reach::All) => {
            let names = params.len() + 5;
            let sql = format!(
                "SELECT d.name FROM pg_catalog.unnest(${names}::text[]) AS d(name) WHERE {}",
                pred(&format!("coalesce(segplan._zone(NULLIF(d.name, '')), {session})"))
            );
            return Exclusion::Zones { column: z, sql, params };
        }
    };
    Exclusion::Sql { sql, params }
}

/// A cap on past contacts: contacts matching `conds` (over alias `h` of a table with the columns
/// of segplan.contact_history; send parameters `$1`–`$4`, then `params`) reach the cap at `max`.
#[derive(Debug, Clone, PartialEq)]
pub struct Cap {
    pub max: i64,
    pub conds: String,
    pub params: Vec<Param>,
}

/// The cap a rule sets (a gap is a cap of one within the gap), if it is one.
pub fn cap(r: &PolicyRule) -> Option<Cap> {
    match r {
        PolicyRule::MaxContacts { max, per, across, channels } => Some(cap_of(*max, per, across, channels)),
        PolicyRule::MinGap { gap, across, channels } => Some(cap_of(1, gap, across, channels)),
        _ => None,
    }
}

fn cap_of(max: i64, span: &Span, across: &Across, channels: &Option<Vec<String>>) -> Cap {
    let mut params = vec![Param::Text(span.interval())];
    let mut conds = vec!["h.contacted_at > $1 - $5::interval".to_string(), "h.contacted_at <= $1".to_string()];
    if let Some(c) = channels {
        params.push(Param::TextArray(c.clone()));
        conds.push(format!("h.channel = ANY (${}::text[])", params.len() + 4));
    }
    match across {
        Across::Brand => conds.push("h.brand IS NOT DISTINCT FROM $3".into()),
        Across::Outlet => conds.push("h.outlet IS NOT DISTINCT FROM $4".into()),
        Across::AllBrands => {}
    }
    Cap { max, conds: conds.join(" AND "), params }
}

fn capped(c: Cap) -> Exclusion {
    let mut params = c.params;
    params.push(Param::Text(c.max.to_string()));
    let sql = format!("SELECT h.contact_key FROM segplan.contact_history AS h WHERE {} GROUP BY 1 HAVING count(*) >= ${}::bigint", c.conds, params.len() + 4);
    Exclusion::History { sql, params }
}

/// Several exclusion queries checked for one contact in one statement returning a boolean array,
/// in order: each query's own parameters (from `$5`; `$1`–`$4` are the send's) are renumbered
/// after those of the queries before it, and the contact's key is the last parameter.
pub fn checks_for_one(queries: &[(&str, &[Param])]) -> (String, Vec<Param>) {
    let mut params: Vec<Param> = Vec::new();
    let mut shifted = Vec::new();
    for (sql, own) in queries {
        shifted.push(renumber_from(sql, 5, params.len()));
        params.extend(own.iter().cloned());
    }
    let key = params.len() + 5;
    let checks: Vec<String> = shifted.iter().map(|q| format!("EXISTS (SELECT 1 FROM ({q}) AS s(k) WHERE s.k = ${key}::bigint)")).collect();
    (format!("SELECT ARRAY[{}]::boolean[]", checks.join(", ")), params)
}

/// Contacts paused at the send's time on its channel (yearly pauses recur, also across New Year).
pub const PAUSED_SQL: &str = "\
SELECT p.contact_key FROM segplan.contact_pauses AS p \
WHERE (p.channels IS NULL OR $2 = ANY (p.channels)) AND CASE WHEN NOT p.yearly THEN p.during @> $1 ELSE \
  p.during @> ($1 - pg_catalog.make_interval(years => (extract(year FROM $1) - extract(year FROM pg_catalog.lower(p.during)))::int)) \
  OR p.during @> ($1 - pg_catalog.make_interval(years => (extract(year FROM $1) - extract(year FROM pg_catalog.lower(p.during)))::int - 1)) END";

/// The exclusion of one rule for a send, checked against the model (`path` locates problems).
pub fn exclusion(r: &PolicyRule, model: &Model, path: &str, reach: Reach) -> Result<Exclusion, Problems> {
    let mut problems = Vec::new();
    let contacts = model.contacts.as_ref();
    let from_contacts = |pred: &str| contacts.map(|c| format!("SELECT c.{k} FROM {rel} AS c WHERE c.{k} IS NOT NULL AND ({pred})", k = c.key.sql, rel = c.rel.sql));
    let out = match r {
        PolicyRule::MaxContacts { max, per, across, channels } => capped(cap_of(*max, per, across, channels)),
        PolicyRule::MinGap { gap, across, channels } => capped(cap_of(1, gap, across, channels)),
        PolicyRule::QuietHours { from, to, time_zone_attr } => {
            let tz = tz_column(model, time_zone_attr, &format!("{path}.quiet_hours"), &mut problems);
            let pred = |zone: &str| {
                let local = format!("(($1 AT TIME ZONE ({zone}))::time)");
                if from < to {
                    format!("{local} >= $5::time AND {local} < $6::time")
                } else {
                    format!("({local} >= $5::time OR {local} < $6::time)")
                }
            };
            let params = vec![Param::Text(from.format("%H:%M").to_string()), Param::Text(to.format("%H:%M").to_string())];
            zoned(model, tz, reach, params, pred)
        }
        PolicyRule::BlackoutDates { dates, time_zone_attr } => {
            let tz = tz_column(model, time_zone_attr, path, &mut problems);
            let pred = |zone: &str| format!("(($1 AT TIME ZONE ({zone}))::date) = ANY ($5::date[])");
            let params = vec![Param::TextArray(dates.iter().map(|d| d.to_string()).collect())];
            zoned(model, tz, reach, params, pred)
        }
        PolicyRule::RequireAttr(a) => {
            let col = contacts.and_then(|c| find(&c.columns, a));
            match col {
                // a whole segment: the complement of the attribute's bitmap (a leaf the engine
                // caches like any rule's); one contact: a lookup of its row
                Some(col) if col.kind == TypeKind::Bool => match reach {
                    Reach::All => {
                        let set = Compare { field: a.clone(), op: Op::Eq, value: Operand::Scalar(Scalar::Bool(true)) };
                        Exclusion::Rule(Tree::Not(Box::new(Tree::Leaf(Cond::Attr(set)))))
                    }
                    Reach::One => Exclusion::Sql { sql: from_contacts(&format!("c.{} IS NOT TRUE", col.sql)).unwrap_or_default(), params: vec![] },
                },
                _ => {
                    let bools = contacts.map(|c| choices(c.columns.iter().filter(|x| x.kind == TypeKind::Bool).map(|x| x.name.as_str()))).unwrap_or_default();
                    problems.push(Problem::invalid(&format!("{path}.require_attr"), format!("\"{a}\" is not a boolean attribute of the contacts")).hint(format!("boolean attributes: {bools}")));
                    Exclusion::Sql { sql: String::new(), params: vec![] }
                }
            }
        }
        PolicyRule::ExcludeSegment(s) => Exclusion::Rule(Tree::Leaf(Cond::Segment(s.clone()))),
        PolicyRule::ExcludeUnsubscribed(r) => Exclusion::Rule(r.clone()),
    };
    if contacts.is_none() {
        problems.push(Problem::invalid(path, "no contact source is registered").hint("call segplan.register_contacts first"));
    }
    if problems.is_empty() { Ok(out) } else { Err(Problems(problems).or_hint(POLICY_HINT)) }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checks_for_one_contact_share_one_statement() {
        let a = [Param::Text("7 days".into())];
        let b = [Param::Text("21:00".into()), Param::Text("09:00".into())];
        let (sql, params) = checks_for_one(&[("SELECT x FROM h WHERE t > $1 - $5::interval", &a[..]), ("SELECT y FROM c WHERE $2 = 'sms' AND z >= $5 AND z < $6", &b[..])]);
        assert_eq!(sql, "SELECT ARRAY[EXISTS (SELECT 1 FROM (SELECT x FROM h WHERE t > $1 - $5::interval) AS s(k) WHERE s.k = $8::bigint), \
                         EXISTS (SELECT 1 FROM (SELECT y FROM c WHERE $2 = 'sms' AND z >= $6 AND z < $7) AS s(k) WHERE s.k = $8::bigint)]::boolean[]");
        assert_eq!(params.len(), 3);
    }

    fn p(v: Value) -> Result<Policy, Problems> {
        parse(&v)
    }

    #[test]
    fn the_issue_example_reads_and_round_trips() {
        let v = json!({"scope": {"brands": ["acme"], "channels": ["email", "sms"]}, "rules": [
            {"max_contacts": 2, "per": {"days": 7}, "count_across": "all_brands"},
            {"max_contacts": 1, "per": {"days": 1}, "channels": ["sms"]},
            {"min_gap": {"hours": 48}},
            {"quiet_hours": {"from": "21:00", "to": "09:00"}},
            {"blackout_dates": ["2026-12-25", "2026-12-26"], "time_zone_attr": "time_zone"},
            {"exclude_segment": "complainers"},
            {"require_attr": "email_opt_in"},
            {"exclude_unsubscribed": {"event": "message_events", "where": {"prop": "event_type", "op": "eq", "value": "unsubscribe"}}}]});
        let pol = p(v).unwrap();
        assert_eq!(pol.rules.len(), 8);
        assert_eq!(parse(&to_json(&pol)).unwrap(), pol);
        let send = Send { channel: "sms", brand: Some("acme"), outlet: None };
        assert!(pol.applies(&send) && pol.rules[1].applies(&send));
        let email = Send { channel: "email", brand: Some("acme"), outlet: None };
        assert!(!pol.rules[1].applies(&email));
        assert!(!pol.applies(&Send { channel: "email", brand: Some("other"), outlet: None }));
        assert_eq!(pol.rules[0].label(), "at most 2 per 7 days (all brands)");
        assert_eq!(pol.rules[3].label(), "quiet hours 21:00–09:00");
    }

    #[test]
    fn problems_have_paths() {
        let e = p(json!({"scope": {"brand": ["x"]}, "rules": [
            {"max_contacts": -1, "per": {"dayz": 7}},
            {"quiet_hours": {"from": "25:00", "to": "09:00"}},
            {"min_gap": {"hours": 2}, "count_across": "planet"},
            {"exclude_unsubscribed": {"event": "e", "where": {"prop": "p", "op": "eqq", "value": 1}}},
            {"nonsense": 1}]})).unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|x| x.path.as_str()).collect();
        assert_eq!(paths, vec!["$.scope.brand", "$.rules[0].max_contacts", "$.rules[0].per.dayz", "$.rules[1].quiet_hours.from",
                               "$.rules[2].count_across", "$.rules[3].exclude_unsubscribed.where.op", "$.rules[4]"]);
        assert_eq!(p(json!({"rules": []})).unwrap_err().0[0].path, "$.rules");
        // a period fits before any send time in years 1 to 9999 (at most 1000 years)
        assert!(p(json!({"rules": [{"max_contacts": 1, "per": {"years": 1000}}]})).is_ok());
        let e = p(json!({"rules": [{"max_contacts": 1, "per": {"years": 1001}}, {"min_gap": {"months": 12001}}]})).unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|x| x.path.as_str()).collect();
        assert_eq!(paths, vec!["$.rules[0].per.years", "$.rules[1].min_gap.months"]);
        assert!(e.0.iter().all(|x| x.hint.as_deref().is_some_and(|h| h.contains("1000 years"))), "{e:?}");
    }

    /// A policy of every rule kind over [`crate::testing::model`].
    fn fuzz_seed() -> Value {
        json!({"scope": {"brands": ["acme"], "channels": ["email", "sms"], "outlets": ["o1"]}, "rules": [
            {"max_contacts": 2, "per": {"days": 7}, "count_across": "all_brands"},
            {"max_contacts": 1, "per": {"hours": 12}, "channels": ["sms"], "count_across": "outlet"},
            {"min_gap": {"hours": 48}},
            {"quiet_hours": {"from": "21:00", "to": "09:00", "time_zone_attr": "time_zone"}},
            {"blackout_dates": ["2026-12-25", "2026-12-26"], "time_zone_attr": "time_zone"},
            {"exclude_segment": "complainers"},
            {"require_attr": "opt_in"},
            {"exclude_unsubscribed": {"event": "clicks", "where": {"prop": "kind", "op": "eq", "value": "unsubscribe"}}}]})
    }

    #[test]
    fn the_fuzz_seed_is_a_valid_policy() {
        let pol = parse(&fuzz_seed()).unwrap();
        for (i, r) in pol.rules.iter().enumerate() {
            exclusion(r, &crate::testing::model(), &format!("$.rules[{i}]"), Reach::All).unwrap();
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// A policy spec with one value anywhere replaced by an odd one is read (or refused with
        /// problems), written back, labelled and made into SQL without a panic.
        #[test]
        fn specs_with_a_value_replaced_never_panic(pick in 0usize..200, with in crate::testing::odd_json()) {
            let seed = fuzz_seed();
            let m = crate::testing::model();
            let read = parse(&crate::testing::with_one_replaced(seed, pick, with));
            if let Err(p) = &read {
                crate::testing::assert_hinted(p);
            }
            if let Ok(pol) = read {
                proptest::prop_assert_eq!(parse(&to_json(&pol)).ok(), Some(pol.clone()));
                for (i, r) in pol.rules.iter().enumerate() {
                    r.label();
                    cap(r);
                    for reach in [Reach::All, Reach::One] {
                        if let Err(p) = exclusion(r, &m, &format!("$.rules[{i}]"), reach) {
                            crate::testing::assert_hinted(&p);
                        }
                    }
                }
            }
        }
    }
}
