//! Plans: the spec (what, to whom, when, how many, how it is handed off), validated strictly like
//! rules, and the schedule's slots as local times (the database turns them into instants in the
//! plan's time zone, so DST is Postgres's own).
use crate::error::{choices, unknown_keys, Problem, Problems, PLAN_HINT, RESPONSES_HINT};
use crate::rule::{self, Rule};
pub use chrono::{NaiveDate, NaiveDateTime};
use chrono::{Datelike, Duration, NaiveTime};
use serde_json::{json, Map, Value};

#[derive(Debug, Clone, PartialEq)]
pub enum Audience {
    Segment(String),
    Rule(Rule),
}

#[derive(Debug, Clone, PartialEq)]
pub enum When {
    Once(NaiveDateTime),
    Cron(Cron),
    Weekdays { days: [bool; 7], at: NaiveTime },
}

#[derive(Debug, Clone, PartialEq)]
pub struct Schedule {
    pub when: When,
    pub time_zone: String,
    pub from: Option<NaiveDate>,
    pub until: Option<NaiveDate>,
    /// slots missed while nothing ran: run each once (true) or record them as skipped
    pub catch_up: bool,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Order {
    Random { seed: i64 },
    Attr { name: String, desc: bool },
    /// best RFM score first (contacts without one last)
    Rfm(rule::Score),
}

#[derive(Debug, Clone, PartialEq)]
pub enum Size {
    Min(i64),
    Exact { n: i64, order: Order },
}

#[derive(Debug, Clone, PartialEq)]
pub enum Delivery {
    None,
    Notify,
    Handler(String),
}

#[derive(Debug, Clone, PartialEq)]
pub struct PlanSpec {
    pub audience: Audience,
    pub brand: Option<String>,
    pub outlet: Option<String>,
    pub channel: String,
    pub policies: Vec<String>,
    pub schedule: Schedule,
    pub exceptions: Vec<NaiveDate>,
    pub size: Option<Size>,
    /// with a size target not met: false cancels the run, true sends what there is
    pub send_anyway: bool,
    pub priority: i32,
    pub test_contacts: Vec<i64>,
    /// addresses (e-mail, phone) that get every run's message, outside the contact base
    pub test_addresses: Vec<String>,
    pub holdout_percent: f64,
    pub delivery: Delivery,
    pub assignee: Option<String>,
    /// for channel "call": when calls may be placed, and how long one takes
    pub call_windows: Vec<CallWindow>,
    pub call_minutes: i64,
}

/// Local hours on some weekdays when calls are placed: `[from, to)`.
#[derive(Debug, Clone, PartialEq)]
pub struct CallWindow {
    pub days: [bool; 7],
    pub from: NaiveTime,
    pub to: NaiveTime,
}

impl PlanSpec {
    /// `count` call times from `start` on (local), one every call_minutes inside the windows,
    /// never on exception dates; at most a year ahead.
    pub fn call_times(&self, start: NaiveDateTime, count: usize) -> Vec<NaiveDateTime> {
        let mut out = Vec::new();
        let step = Duration::minutes(self.call_minutes.max(1));
        let mut day = start.date();
        let last = day + Duration::days(366);
        while out.len() < count && day <= last {
            if !self.exceptions.contains(&day) {
                let mut times: Vec<NaiveDateTime> = Vec::new();
                for w in self.call_windows.iter().filter(|w| w.days[day.weekday().num_days_from_sunday() as usize]) {
                    let mut t = day.and_time(w.from);
                    while t + step <= day.and_time(w.to) {
                        if t >= start {
                            times.push(t);
                        }
                        t += step;
                    }
                }
                times.sort();
                times.dedup();
                out.extend(times.into_iter().take(count - out.len()));
            }
            day += Duration::days(1);
        }
        out
    }
}

// ---------------------------------------------------------------------------------------------
// cron: minute hour day-of-month month day-of-week, with *, a-b, */n, a-b/n and lists

#[derive(Debug, Clone, PartialEq)]
pub struct Cron {
    pub text: String,
    minutes: Vec<bool>,
    hours: Vec<bool>,
    dom: Vec<bool>,
    months: Vec<bool>,
    dow: Vec<bool>,
    dom_any: bool,
    dow_any: bool,
}

fn cron_field(s: &str, lo: u32, hi: u32) -> Option<(Vec<bool>, bool)> {
    let mut set = vec![false; hi as usize + 1];
    for part in s.split(',') {
        let (range, step) = match part.split_once('/') {
            Some((r, st)) => (r, st.parse::<u32>().ok().filter(|s| *s > 0)?),
            None => (part, 1),
        };
        let (a, b) = if range == "*" {
            (lo, hi)
        } else if let Some((a, b)) = range.split_once('-') {
            (a.parse().ok()?, b.parse().ok()?)
        } else {
            let a: u32 = range.parse().ok()?;
            (a, if part.contains('/') { hi } else { a })
        };
        if a < lo || b > hi || a > b {
            return None;
        }
        (a..=b).step_by(step as usize).for_each(|i| set[i as usize] = true);
    }
    Some((set, s == "*"))
}

impl Cron {
    pub fn parse(s: &str) -> Option<Cron> {
        let f: Vec<&str> = s.split_whitespace().collect();
        if f.len() != 5 {
            return None;
        }
        let (minutes, _) = cron_field(f[0], 0, 59)?;
        let (hours, _) = cron_field(f[1], 0, 23)?;
        let (dom, dom_any) = cron_field(f[2], 1, 31)?;
        let (months, _) = cron_field(f[3], 1, 12)?;
        let (mut dow, dow_any) = cron_field(f[4], 0, 7)?;
        if dow[7] {
            dow[0] = true;
        }
        Some(Cron { text: f.join(" "), minutes, hours, dom, months, dow, dom_any, dow_any })
    }

    fn day(&self, d: NaiveDate) -> bool {
        if !self.months[d.month() as usize] {
            return false;
        }
        let (dm, dw) = (self.dom[d.day() as usize], self.dow[d.weekday().num_days_from_sunday() as usize]);
        // as cron: when both are restricted, either matches
        match (self.dom_any, self.dow_any) {
            (true, true) => true,
            (true, false) => dw,
            (false, true) => dm,
            (false, false) => dm || dw,
        }
    }
}

const WEEKDAYS: &[&str] = &["sun", "mon", "tue", "wed", "thu", "fri", "sat"];

impl Schedule {
    /// The local times of the slots on local dates `from..=to`, within the schedule's own range
    /// and outside `exceptions`, in order.
    pub fn local_slots(&self, from: NaiveDate, to: NaiveDate, exceptions: &[NaiveDate]) -> Vec<NaiveDateTime> {
        let from = self.from.map_or(from, |f| f.max(from));
        let to = self.until.map_or(to, |u| u.min(to));
        let mut out = Vec::new();
        if from > to {
            return out;
        }
        let mut d = from;
        while d <= to {
            if !exceptions.contains(&d) {
                match &self.when {
                    When::Once(t) if t.date() == d => out.push(*t),
                    When::Once(_) => {}
                    When::Weekdays { days, at } => {
                        if days[d.weekday().num_days_from_sunday() as usize] {
                            out.push(d.and_time(*at));
                        }
                    }
                    When::Cron(c) => {
                        if c.day(d) {
                            for h in (0..24).filter(|h| c.hours[*h]) {
                                for m in (0..60).filter(|m| c.minutes[*m]) {
                                    if let Some(t) = NaiveTime::from_hms_opt(h as u32, m as u32, 0) {
                                        out.push(d.and_time(t));
                                    }
                                }
                            }
                        }
                    }
                }
            }
            d += Duration::days(1);
        }
        out
    }
}

/// A stable number in [0, 1) for a contact and a salt (splitmix64): the same contact always
/// lands in or out of a plan's holdout, and a seeded sample is reproducible.
pub fn unit_hash(key: i64, salt: i64) -> f64 {
    let mut z = (key as u64) ^ (salt as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

// ---------------------------------------------------------------------------------------------
// JSON → spec

#[derive(Default)]
struct Reader {
    problems: Vec<Problem>,
}

impl Reader {
    fn bad(&mut self, path: &str, msg: String) {
        self.problems.push(Problem::invalid(path, msg));
    }

    fn keys(&mut self, m: &Map<String, Value>, path: &str, allowed: &[&str]) {
        self.problems.extend(unknown_keys(m, path, allowed));
    }

    fn text(&mut self, v: Option<&Value>, path: &str) -> Option<String> {
        match v? {
            Value::String(s) if !s.is_empty() => Some(s.clone()),
            Value::Null => None,
            other => {
                self.bad(path, format!("must be a non-empty string, not {other}"));
                None
            }
        }
    }

    fn int(&mut self, v: Option<&Value>, path: &str, lo: i64, hi: i64) -> Option<i64> {
        let v = v?;
        let n = v.as_i64().filter(|n| (lo..=hi).contains(n));
        if n.is_none() {
            self.bad(path, format!("must be a whole number from {lo} to {hi}, not {v}"));
        }
        n
    }

    fn date(&mut self, v: Option<&Value>, path: &str) -> Option<NaiveDate> {
        let v = v?;
        let d = v.as_str().and_then(|s| NaiveDate::parse_from_str(s, "%Y-%m-%d").ok());
        if d.is_none() {
            self.bad(path, format!("must be a date \"YYYY-MM-DD\", not {v}"));
        }
        d
    }

    fn schedule(&mut self, v: Option<&Value>) -> Option<Schedule> {
        let p = "$.schedule";
        let Some(m) = v.and_then(|v| v.as_object()) else {
            self.problems.push(Problem::invalid(p, "a plan needs a schedule object")
                .hint("{\"once\": \"2026-12-01 09:00\"}, {\"cron\": \"0 9 * * 2,4\"} or {\"weekdays\": [\"tue\", \"thu\"], \"at\": \"09:00\"}, with \"time_zone\""));
            return None;
        };
        self.keys(m, p, &["once", "cron", "weekdays", "at", "time_zone", "from", "until", "catch_up"]);
        let kinds = ["once", "cron", "weekdays"].iter().filter(|k| m.contains_key(**k)).count();
        if kinds != 1 {
            self.bad(p, "give exactly one of once, cron or weekdays".into());
            return None;
        }
        let when = if let Some(o) = m.get("once") {
            let t = o.as_str().and_then(|s| {
                NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").or_else(|_| NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M")).ok()
            });
            if t.is_none() {
                self.bad(&format!("{p}.once"), format!("must be a local time \"YYYY-MM-DD HH:MM\" (in the plan's time_zone), not {o}"));
            }
            When::Once(t?)
        } else if let Some(c) = m.get("cron") {
            let cron = c.as_str().and_then(Cron::parse);
            if cron.is_none() {
                self.problems.push(Problem::invalid(&format!("{p}.cron"), format!("invalid cron expression {c}"))
                    .hint("five fields: minute hour day-of-month month day-of-week, e.g. \"0 9 * * 2,4\""));
            }
            if m.contains_key("at") {
                self.bad(&format!("{p}.at"), "\"at\" goes with \"weekdays\"".into());
            }
            When::Cron(cron?)
        } else {
            let mut days = [false; 7];
            match m.get("weekdays").and_then(|w| w.as_array()) {
                Some(xs) if !xs.is_empty() => {
                    for (i, x) in xs.iter().enumerate() {
                        match x.as_str().and_then(|s| WEEKDAYS.iter().position(|w| *w == s)) {
                            Some(d) => days[d] = true,
                            None => self.problems.push(Problem::invalid(&format!("{p}.weekdays[{i}]"), format!("unknown weekday {x}"))
                                .hint(format!("weekdays: {}", choices(WEEKDAYS.iter().copied())))),
                        }
                    }
                }
                _ => self.bad(&format!("{p}.weekdays"), "must be a non-empty list of weekdays".into()),
            }
            let at = m.get("at").and_then(|a| a.as_str()).and_then(|s| NaiveTime::parse_from_str(s, "%H:%M").ok());
            if at.is_none() {
                self.bad(&format!("{p}.at"), "weekdays need \"at\": a local time \"HH:MM\"".into());
            }
            When::Weekdays { days, at: at? }
        };
        let time_zone = self.text(m.get("time_zone"), &format!("{p}.time_zone"));
        if time_zone.is_none() {
            self.problems.push(Problem::invalid(&format!("{p}.time_zone"), "a schedule needs its time_zone").hint("for example \"Europe/Paris\""));
        }
        let from = self.date(m.get("from"), &format!("{p}.from"));
        let until = self.date(m.get("until"), &format!("{p}.until"));
        if let (Some(f), Some(u)) = (from, until) {
            if f > u {
                self.bad(&format!("{p}.until"), format!("until ({u}) is before from ({f})"));
            }
        }
        let catch_up = match m.get("catch_up") {
            None => false,
            Some(Value::Bool(b)) => *b,
            Some(other) => {
                self.bad(&format!("{p}.catch_up"), format!("must be true or false, not {other}"));
                false
            }
        };
        Some(Schedule { when, time_zone: time_zone?, from, until, catch_up })
    }
}

const SPEC_KEYS: &[&str] = &["segment", "rule", "brand", "outlet", "channel", "policies", "schedule", "exceptions", "target",
    "priority", "test_contacts", "test_addresses", "holdout_percent", "delivery", "assignee", "call_windows", "call_minutes"];

/// A function name as PostgreSQL reads one (what `to_regprocedure` may look up without a syntax
/// error): an identifier, or a schema and an identifier, each plain (`crm_2`) or double-quoted
/// (`"CRM"`, `""` inside for a quote).
fn function_name(h: &str) -> bool {
    // one identifier, and what follows it
    fn identifier(s: &str) -> Option<&str> {
        if let Some(q) = s.strip_prefix('"') {
            // a quoted one ends at a quote not followed by another, and is not empty
            let mut i = 0;
            loop {
                let end = i + q[i..].find('"')?;
                if q[end + 1..].starts_with('"') {
                    i = end + 2;
                } else {
                    return (end > 0).then(|| &q[end + 1..]);
                }
            }
        }
        // letters beyond ASCII are identifier letters to PostgreSQL too
        let n = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == '$' || !c.is_ascii())).unwrap_or(s.len());
        (n > 0 && !s.starts_with(|c: char| c.is_ascii_digit() || c == '$')).then(|| &s[n..])
    }
    match identifier(h) {
        Some("") => true,
        Some(rest) => rest.strip_prefix('.').and_then(identifier) == Some(""),
        None => false,
    }
}

/// Reads a plan spec, collecting every problem with its JSON path.
pub fn parse(v: &Value) -> Result<PlanSpec, Problems> {
    let mut r = Reader::default();
    let Some(m) = v.as_object() else { return Err(Problems::from(Problem::invalid("$", "a plan spec must be a JSON object")).or_hint(PLAN_HINT)) };
    r.keys(m, "$", SPEC_KEYS);
    let audience = match (m.get("segment"), m.get("rule")) {
        (Some(s), None) => r.text(Some(s), "$.segment").map(Audience::Segment),
        (None, Some(x)) => match rule::json::parse_value(x) {
            Ok(rule) => Some(Audience::Rule(rule)),
            Err(p) => {
                r.problems.extend(p.0.into_iter().map(|q| q.under("$.rule")));
                None
            }
        },
        _ => {
            r.problems.push(Problem::invalid("$", "a plan targets exactly one of \"segment\" (a saved segment's name) or \"rule\"")
                .hint("for example \"segment\": \"fr_buyers\""));
            None
        }
    };
    let channel = r.text(m.get("channel"), "$.channel");
    if channel.is_none() && !m.contains_key("channel") {
        r.problems.push(Problem::invalid("$", "missing key \"channel\"").hint("for example \"email\", \"sms\" or \"call\""));
    }
    let brand = r.text(m.get("brand"), "$.brand");
    let outlet = r.text(m.get("outlet"), "$.outlet");
    let assignee = r.text(m.get("assignee"), "$.assignee");
    let mut policies = Vec::new();
    if let Some(p) = m.get("policies") {
        match p.as_array() {
            Some(xs) => xs.iter().enumerate().for_each(|(i, x)| match x.as_str() {
                Some(s) if !s.is_empty() => policies.push(s.to_string()),
                _ => r.bad(&format!("$.policies[{i}]"), format!("must be a policy name, not {x}")),
            }),
            None => r.bad("$.policies", format!("must be a list of policy names, not {p}")),
        }
    }
    let schedule = r.schedule(m.get("schedule"));
    let mut exceptions = Vec::new();
    if let Some(e) = m.get("exceptions") {
        match e.as_array() {
            Some(xs) => xs.iter().enumerate().for_each(|(i, x)| {
                if let Some(d) = r.date(Some(x), &format!("$.exceptions[{i}]")) {
                    exceptions.push(d);
                }
            }),
            None => r.bad("$.exceptions", format!("must be a list of dates, not {e}")),
        }
    }
    let (size, send_anyway) = match m.get("target") {
        None => (None, false),
        Some(t) => match t.as_object() {
            None => {
                r.bad("$.target", format!("must be an object such as {{\"min\": 1000}}, not {t}"));
                (None, false)
            }
            Some(tm) => {
                r.keys(tm, "$.target", &["min", "exact", "order_by", "seed", "on_shortfall"]);
                let send_anyway = match tm.get("on_shortfall").and_then(|x| x.as_str()) {
                    None if !tm.contains_key("on_shortfall") => false,
                    Some("cancel") => false,
                    Some("send_anyway") => true,
                    _ => {
                        r.problems.push(Problem::invalid("$.target.on_shortfall", "unknown on_shortfall").hint("cancel or send_anyway"));
                        false
                    }
                };
                let size = match (tm.get("min"), tm.get("exact")) {
                    (Some(n), None) => {
                        if tm.contains_key("order_by") || tm.contains_key("seed") {
                            r.bad("$.target", "order_by and seed go with \"exact\"".into());
                        }
                        r.int(Some(n), "$.target.min", 1, 100_000_000).map(Size::Min)
                    }
                    (None, Some(n)) => {
                        let n = r.int(Some(n), "$.target.exact", 1, 100_000_000);
                        let order = match tm.get("order_by") {
                            None => Some(Order::Random { seed: 0 }),
                            Some(Value::String(s)) if s == "random" => Some(Order::Random { seed: 0 }),
                            Some(Value::Object(o)) if o.contains_key("rfm") => {
                                r.keys(o, "$.target.order_by", &["rfm"]);
                                let score = o["rfm"].as_str().and_then(|s| rule::SCORES.iter().find(|(n, _)| *n == s)).map(|(_, sc)| *sc);
                                if score.is_none() {
                                    r.problems.push(Problem::invalid("$.target.order_by.rfm", format!("unknown RFM score {}", o["rfm"])).hint("r, f, m or fm"));
                                }
                                score.map(Order::Rfm)
                            }
                            Some(Value::Object(o)) => {
                                r.keys(o, "$.target.order_by", &["attr", "desc"]);
                                let name = r.text(o.get("attr"), "$.target.order_by.attr");
                                let desc = o.get("desc").and_then(|d| d.as_bool()).unwrap_or(false);
                                name.map(|name| Order::Attr { name, desc })
                            }
                            Some(other) => {
                                r.problems.push(Problem::invalid("$.target.order_by", format!("unknown order_by {other}"))
                                    .hint("\"random\" (with \"seed\"), {\"attr\": \"loyalty_points\", \"desc\": true} or {\"rfm\": \"m\"}"));
                                None
                            }
                        };
                        let order = match (order, tm.get("seed")) {
                            (Some(Order::Random { .. }), Some(s)) => r.int(Some(s), "$.target.seed", i64::MIN, i64::MAX).map(|seed| Order::Random { seed }),
                            (Some(Order::Attr { .. } | Order::Rfm(_)), Some(_)) => {
                                r.bad("$.target.seed", "a seed goes with a random order".into());
                                None
                            }
                            (o, _) => o,
                        };
                        match (n, order) {
                            (Some(n), Some(order)) => Some(Size::Exact { n, order }),
                            _ => None,
                        }
                    }
                    _ => {
                        r.bad("$.target", "give exactly one of \"min\" or \"exact\"".into());
                        None
                    }
                };
                (size, send_anyway)
            }
        },
    };
    let priority = r.int(m.get("priority"), "$.priority", -1000, 1000).unwrap_or(0) as i32;
    let mut test_contacts = Vec::new();
    if let Some(t) = m.get("test_contacts") {
        match t.as_array() {
            Some(xs) if xs.len() <= 1000 => xs.iter().enumerate().for_each(|(i, x)| match x.as_i64() {
                Some(k) => test_contacts.push(k),
                None => r.bad(&format!("$.test_contacts[{i}]"), format!("must be a contact key (a whole number), not {x}")),
            }),
            _ => r.bad("$.test_contacts", "must be a list of at most 1000 contact keys".into()),
        }
    }
    let mut test_addresses = Vec::new();
    if let Some(t) = m.get("test_addresses") {
        match t.as_array() {
            Some(xs) if xs.len() <= 1000 => xs.iter().enumerate().for_each(|(i, x)| match x.as_str() {
                Some(a) if !a.trim().is_empty() => test_addresses.push(a.to_string()),
                _ => r.bad(&format!("$.test_addresses[{i}]"), format!("must be an address (a non-empty string), not {x}")),
            }),
            _ => r.bad("$.test_addresses", "must be a list of at most 1000 addresses".into()),
        }
    }
    let holdout_percent = match m.get("holdout_percent") {
        None => 0.0,
        Some(h) => match h.as_f64().filter(|p| (0.0..=50.0).contains(p)) {
            Some(p) => p,
            None => {
                r.bad("$.holdout_percent", format!("must be a number from 0 to 50, not {h}"));
                0.0
            }
        },
    };
    let delivery = match m.get("delivery") {
        None => Delivery::None,
        Some(Value::String(s)) if s == "none" => Delivery::None,
        Some(Value::String(s)) if s == "notify" => Delivery::Notify,
        Some(Value::Object(d)) if d.len() == 1 && d.get("handler").and_then(|h| h.as_str()).is_some() => {
            let h = d["handler"].as_str().unwrap_or_default();
            if !function_name(h) {
                r.problems.push(Problem::invalid("$.delivery.handler", format!("{h:?} is not a function name"))
                    .hint("a name such as crm.deliver or \"CRM\".\"Deliver\": one or two identifiers, double-quoted when not plain"));
            }
            Delivery::Handler(h.to_string())
        }
        Some(other) => {
            r.problems.push(Problem::invalid("$.delivery", format!("unknown delivery {other}"))
                .hint("\"none\" (export only), \"notify\" (NOTIFY segplan_runs) or {\"handler\": \"schema.function\"}"));
            Delivery::None
        }
    };
    let mut call_windows = Vec::new();
    if let Some(w) = m.get("call_windows") {
        match w.as_array() {
            Some(xs) if !xs.is_empty() => {
                for (i, x) in xs.iter().enumerate() {
                    let p = format!("$.call_windows[{i}]");
                    let Some(o) = x.as_object() else {
                        r.bad(&p, format!("must be an object such as {{\"weekdays\": [\"mon\"], \"from\": \"09:00\", \"to\": \"12:00\"}}, not {x}"));
                        continue;
                    };
                    r.keys(o, &p, &["weekdays", "from", "to"]);
                    let mut days = [false; 7];
                    match o.get("weekdays").and_then(|d| d.as_array()) {
                        Some(ds) if !ds.is_empty() => ds.iter().enumerate().for_each(|(j, d)| match d.as_str().and_then(|s| WEEKDAYS.iter().position(|w| *w == s)) {
                            Some(k) => days[k] = true,
                            None => r.problems.push(Problem::invalid(&format!("{p}.weekdays[{j}]"), format!("unknown weekday {d}"))
                                .hint(format!("weekdays: {}", choices(WEEKDAYS.iter().copied())))),
                        }),
                        _ => r.problems.push(Problem::invalid(&format!("{p}.weekdays"), "must be a non-empty list of weekdays")
                            .hint(format!("for example [\"mon\", \"tue\"]; weekdays: {}", choices(WEEKDAYS.iter().copied())))),
                    }
                    let time = |r: &mut Reader, k: &str| -> Option<NaiveTime> {
                        let t = o.get(k).and_then(|t| t.as_str()).and_then(|s| NaiveTime::parse_from_str(s, "%H:%M").ok());
                        if t.is_none() {
                            r.bad(&format!("{p}.{k}"), "must be a local time \"HH:MM\"".into());
                        }
                        t
                    };
                    if let (Some(from), Some(to)) = (time(&mut r, "from"), time(&mut r, "to")) {
                        if from >= to {
                            r.bad(&format!("{p}.to"), format!("the window ends ({}) before it starts ({})", to.format("%H:%M"), from.format("%H:%M")));
                        } else {
                            call_windows.push(CallWindow { days, from, to });
                        }
                    }
                }
            }
            _ => r.bad("$.call_windows", "must be a non-empty list of call windows".into()),
        }
    }
    let call_minutes = r.int(m.get("call_minutes"), "$.call_minutes", 1, 480).unwrap_or(15);
    if channel.as_deref() == Some("call") {
        if call_windows.is_empty() && !m.contains_key("call_windows") {
            r.problems.push(Problem::invalid("$", "a call plan needs \"call_windows\"").hint("for example [{\"weekdays\": [\"mon\", \"tue\"], \"from\": \"09:00\", \"to\": \"12:00\"}]"));
        }
        if assignee.is_none() {
            r.problems.push(Problem::invalid("$", "a call plan needs an \"assignee\"").hint("the user who makes the calls"));
        }
    } else if m.contains_key("call_windows") || m.contains_key("call_minutes") {
        r.bad("$.call_windows", "call windows go with channel \"call\"".into());
    }
    if !r.problems.is_empty() {
        return Err(Problems(r.problems).or_hint(PLAN_HINT));
    }
    match (audience, channel, schedule) {
        (Some(audience), Some(channel), Some(schedule)) => Ok(PlanSpec {
            audience, brand, outlet, channel, policies, schedule, exceptions, size, send_anyway, priority, test_contacts,
            test_addresses, holdout_percent, delivery, assignee, call_windows, call_minutes,
        }),
        _ => Err(Problems::from(Problem::invalid("$", "incomplete plan spec")).or_hint(PLAN_HINT)),
    }
}

/// The canonical JSON of a spec (what is stored).
pub fn to_json(s: &PlanSpec) -> Value {
    let mut m = Map::new();
    match &s.audience {
        Audience::Segment(n) => m.insert("segment".into(), json!(n)),
        Audience::Rule(r) => m.insert("rule".into(), rule::json::to_json(r)),
    };
    m.insert("channel".into(), json!(s.channel));
    if let Some(b) = &s.brand { m.insert("brand".into(), json!(b)); }
    if let Some(o) = &s.outlet { m.insert("outlet".into(), json!(o)); }
    if !s.policies.is_empty() { m.insert("policies".into(), json!(s.policies)); }
    let mut sc = Map::new();
    match &s.schedule.when {
        When::Once(t) => { sc.insert("once".into(), json!(t.format("%Y-%m-%d %H:%M").to_string())); }
        When::Cron(c) => { sc.insert("cron".into(), json!(c.text)); }
        When::Weekdays { days, at } => {
            sc.insert("weekdays".into(), json!(WEEKDAYS.iter().enumerate().filter(|(i, _)| days[*i]).map(|(_, d)| *d).collect::<Vec<_>>()));
            sc.insert("at".into(), json!(at.format("%H:%M").to_string()));
        }
    }
    sc.insert("time_zone".into(), json!(s.schedule.time_zone));
    if let Some(f) = s.schedule.from { sc.insert("from".into(), json!(f.to_string())); }
    if let Some(u) = s.schedule.until { sc.insert("until".into(), json!(u.to_string())); }
    if s.schedule.catch_up { sc.insert("catch_up".into(), json!(true)); }
    m.insert("schedule".into(), Value::Object(sc));
    if !s.exceptions.is_empty() { m.insert("exceptions".into(), json!(s.exceptions.iter().map(|d| d.to_string()).collect::<Vec<_>>())); }
    if let Some(size) = &s.size {
        let mut t = Map::new();
        match size {
            Size::Min(n) => { t.insert("min".into(), json!(n)); }
            Size::Exact { n, order } => {
                t.insert("exact".into(), json!(n));
                match order {
                    Order::Random { seed } => { t.insert("order_by".into(), json!("random")); t.insert("seed".into(), json!(seed)); }
                    Order::Attr { name, desc } => { t.insert("order_by".into(), json!({"attr": name, "desc": desc})); }
                    Order::Rfm(score) => { t.insert("order_by".into(), json!({"rfm": score.name()})); }
                }
            }
        }
        t.insert("on_shortfall".into(), json!(if s.send_anyway { "send_anyway" } else { "cancel" }));
        m.insert("target".into(), Value::Object(t));
    }
    if s.priority != 0 { m.insert("priority".into(), json!(s.priority)); }
    if !s.test_contacts.is_empty() { m.insert("test_contacts".into(), json!(s.test_contacts)); }
    if !s.test_addresses.is_empty() { m.insert("test_addresses".into(), json!(s.test_addresses)); }
    if s.holdout_percent > 0.0 { m.insert("holdout_percent".into(), json!(s.holdout_percent)); }
    match &s.delivery {
        Delivery::None => {}
        Delivery::Notify => { m.insert("delivery".into(), json!("notify")); }
        Delivery::Handler(h) => { m.insert("delivery".into(), json!({"handler": h})); }
    }
    if let Some(a) = &s.assignee { m.insert("assignee".into(), json!(a)); }
    if !s.call_windows.is_empty() {
        let ws: Vec<Value> = s.call_windows.iter().map(|w| json!({
            "weekdays": WEEKDAYS.iter().enumerate().filter(|(i, _)| w.days[*i]).map(|(_, d)| *d).collect::<Vec<_>>(),
            "from": w.from.format("%H:%M").to_string(), "to": w.to.format("%H:%M").to_string(),
        })).collect();
        m.insert("call_windows".into(), Value::Array(ws));
        m.insert("call_minutes".into(), json!(s.call_minutes));
    }
    Value::Object(m)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn d(s: &str) -> NaiveDate {
        NaiveDate::parse_from_str(s, "%Y-%m-%d").unwrap()
    }

    #[test]
    fn cron_matches_like_cron() {
        let c = Cron::parse("0 9 * * 2,4").unwrap();
        let s = Schedule { when: When::Cron(c), time_zone: "UTC".into(), from: None, until: None, catch_up: false };
        // 2026-11-23 is a Monday
        let slots = s.local_slots(d("2026-11-23"), d("2026-11-29"), &[d("2026-11-26")]);
        assert_eq!(slots.iter().map(|t| t.to_string()).collect::<Vec<_>>(), vec!["2026-11-24 09:00:00"]);
        let every = Cron::parse("*/15 8-9 1,15 * *").unwrap();
        let s = Schedule { when: When::Cron(every), ..s };
        assert_eq!(s.local_slots(d("2026-12-01"), d("2026-12-01"), &[]).len(), 8);
        assert_eq!(s.local_slots(d("2026-12-02"), d("2026-12-14"), &[]).len(), 0);
        // day-of-month and day-of-week both restricted: either matches (the 1st, and Sundays)
        let either = Cron::parse("0 0 1 * 0").unwrap();
        let s = Schedule { when: When::Cron(either), ..s };
        assert_eq!(s.local_slots(d("2026-11-01"), d("2026-11-30"), &[]).len(), 5);
        for bad in ["0 9 * *", "60 9 * * *", "0 9 * * 8", "0 9 5-1 * *", "*/0 * * * *", "a b c d e"] {
            assert!(Cron::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn weekdays_once_and_range() {
        let v = json!({"segment": "vip", "channel": "email", "schedule": {"weekdays": ["tue", "thu"], "at": "09:30", "time_zone": "Europe/Paris", "from": "2026-11-25", "until": "2026-12-03"}});
        let p = parse(&v).unwrap();
        let slots = p.schedule.local_slots(d("2026-11-01"), d("2026-12-31"), &[]);
        assert_eq!(slots.iter().map(|t| t.to_string()).collect::<Vec<_>>(), vec!["2026-11-26 09:30:00", "2026-12-01 09:30:00", "2026-12-03 09:30:00"]);
        assert_eq!(parse(&to_json(&p)).unwrap(), p);
        let once = parse(&json!({"rule": {"attr": "country", "op": "eq", "value": "FR"}, "channel": "sms",
            "schedule": {"once": "2026-12-01 09:00", "time_zone": "UTC"}, "target": {"exact": 100, "order_by": {"rfm": "fm"}}, "holdout_percent": 10,
            "test_contacts": [1, 2], "test_addresses": ["qa@example.com"], "delivery": {"handler": "crm.deliver"}, "priority": 3})).unwrap();
        assert_eq!(once.schedule.local_slots(d("2026-12-01"), d("2026-12-01"), &[]).len(), 1);
        assert_eq!(once.schedule.local_slots(d("2026-12-01"), d("2026-12-01"), &[d("2026-12-01")]).len(), 0);
        assert_eq!(parse(&to_json(&once)).unwrap(), once);
    }

    #[test]
    fn problems_have_paths() {
        let e = parse(&json!({"segment": "x", "rule": {"attr": "a", "op": "eq", "value": 1}, "schedule": {"cron": "bad", "time_zone": "UTC", "at": "09:00"},
            "target": {"exact": 0, "order_by": {"attr": "x"}, "seed": 3}, "holdout_percent": 80, "colour": 1})).unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["$.colour", "$", "$", "$.schedule.cron", "$.schedule.at", "$.target.exact", "$.target.seed", "$.holdout_percent"]);
    }

    /// Plans of every schedule kind and every field, the fuzz test's seeds.
    fn fuzz_seeds() -> Vec<Value> {
        vec![
            json!({"segment": "vip", "brand": "acme", "outlet": "o1", "channel": "call", "policies": ["daily"],
                   "schedule": {"weekdays": ["mon", "fri"], "at": "09:30", "time_zone": "Europe/Paris", "from": "2026-11-25", "until": "2027-03-01", "catch_up": true},
                   "exceptions": ["2026-12-25"], "target": {"min": 10}, "priority": 2,
                   "test_contacts": [1, 2], "test_addresses": ["qa@example.com"], "holdout_percent": 10, "delivery": {"handler": "crm.deliver"},
                   "assignee": "ann", "call_windows": [{"weekdays": ["mon", "tue"], "from": "09:00", "to": "12:00"}], "call_minutes": 20}),
            json!({"rule": {"attr": "country", "op": "eq", "value": "FR"}, "channel": "email",
                   "schedule": {"cron": "*/30 8-18 * * 1-5", "time_zone": "America/Sao_Paulo"}, "target": {"exact": 100, "order_by": {"attr": "score", "desc": true}}}),
            json!({"segment": "x", "channel": "sms", "schedule": {"once": "2026-03-29 02:30", "time_zone": "Europe/Paris"}, "target": {"exact": 50, "seed": 3}}),
        ]
    }

    #[test]
    fn the_fuzz_seeds_are_valid_plans() {
        for s in fuzz_seeds() {
            parse(&s).unwrap_or_else(|e| panic!("{s}: {e:?}"));
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(3000))]
        /// A plan spec with one value anywhere replaced by an odd one is read (or refused with
        /// problems), written back, and its slots and call times are made, at the ends of the
        /// dates a schedule is read over (0001-01-01 to 9999-12-31) too, without a panic.
        #[test]
        fn specs_with_a_value_replaced_never_panic(seed in 0usize..3, pick in 0usize..200, with in crate::testing::odd_json()) {
            let read = parse(&crate::testing::with_one_replaced(fuzz_seeds()[seed].clone(), pick, with));
            if let Err(p) = &read {
                crate::testing::assert_hinted(p);
            }
            if let Ok(p) = read {
                proptest::prop_assert_eq!(parse(&to_json(&p)).ok(), Some(p.clone()));
                for (from, to) in [("2026-10-20", "2027-01-31"), ("9999-11-01", "9999-12-31"), ("0001-01-01", "0001-02-01")] {
                    p.schedule.local_slots(d(from), d(to), &p.exceptions);
                    p.call_times(d(from).and_hms_opt(9, 0, 0).unwrap(), 5);
                    p.call_times(d(to).and_hms_opt(23, 59, 0).unwrap(), 5);
                }
            }
        }
    }

    #[test]
    fn handlers_are_function_names() {
        for ok in ["deliver", "crm.deliver", "livraison.envoyé", "crm_2.deliver$x", "\"CRM\".\"Deliver\"", "\"a.b\".c", "\"say \"\"hi\"\"\".f", "Crm.Deliver"] {
            assert!(function_name(ok), "{ok}");
        }
        for bad in ["", "x\"y", "a.b.c", "a.", ".a", "\"\"", "2fast", "a b", "crm.deliver(bigint)", "\"open", "a;drop"] {
            assert!(!function_name(bad), "{bad}");
        }
    }

    #[test]
    fn call_times_fill_the_windows_in_order() {
        let p = parse(&json!({"segment": "x", "channel": "call", "assignee": "ann", "call_minutes": 20,
            "call_windows": [{"weekdays": ["mon", "tue"], "from": "09:00", "to": "10:00"}, {"weekdays": ["mon"], "from": "14:00", "to": "14:40"}],
            "exceptions": ["2026-11-24"], "schedule": {"once": "2026-11-23 09:30", "time_zone": "UTC"}})).unwrap();
        assert_eq!(parse(&to_json(&p)).unwrap(), p);
        let start = NaiveDateTime::parse_from_str("2026-11-23 09:30", "%Y-%m-%d %H:%M").unwrap();
        let t: Vec<String> = p.call_times(start, 5).iter().map(|t| t.format("%a %H:%M").to_string()).collect();
        // Monday 09:40, the afternoon window, Tuesday is an exception, next Monday
        assert_eq!(t, vec!["Mon 09:40", "Mon 14:00", "Mon 14:20", "Mon 09:00", "Mon 09:20"]);
        let e = parse(&json!({"segment": "x", "channel": "call", "call_windows": [{"weekdays": ["mon"], "from": "10:00", "to": "09:00"}], "schedule": {"once": "2026-11-23 09:30", "time_zone": "UTC"}})).unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["$.call_windows[0].to", "$"]);
    }

    #[test]
    fn holdout_hash_is_stable_and_uniform() {
        assert_eq!(unit_hash(42, 7), unit_hash(42, 7));
        assert_ne!(unit_hash(42, 7), unit_hash(42, 8));
        let n = (0..100_000).filter(|k| unit_hash(*k, 3) < 0.1).count();
        assert!((9_500..10_500).contains(&n), "{n}");
    }
}

// ---------------------------------------------------------------------------------------------
// responses: which events mean open, click and conversion after a run, for plan reports

#[derive(Debug, Clone, PartialEq)]
pub struct Responses {
    pub window: rule::Span,
    /// kind ("open", "click", "conversion") → an event condition
    pub kinds: Vec<(String, Rule)>,
}

pub const RESPONSE_KINDS: &[&str] = &["open", "click", "conversion"];

/// Reads `{"window": {"days": 7}, "open": {"event": …, "where": …}, "click": …, "conversion": …}`.
pub fn parse_responses(v: &Value) -> Result<Responses, Problems> {
    let mut problems = Vec::new();
    let Some(m) = v.as_object() else { return Err(Problems::from(Problem::invalid("$", "responses must be a JSON object")).or_hint(RESPONSES_HINT)) };
    let mut allowed = vec!["window"];
    allowed.extend(RESPONSE_KINDS);
    problems.extend(unknown_keys(m, "$", &allowed));
    let window = match m.get("window").and_then(|w| w.as_object()) {
        Some(w) if w.len() == 1 => {
            let (u, n) = w.iter().next().map(|(u, n)| (u.clone(), n.as_i64())).unwrap_or_default();
            match (rule::UNITS.iter().find(|(name, _)| *name == u), n) {
                (Some((_, unit)), Some(n)) if (1..=3650).contains(&n) => Some(rule::Span { n, unit: *unit }),
                _ => {
                    problems.push(Problem::invalid("$.window", format!("bad window {}", m["window"])).hint("for example {\"days\": 7}"));
                    None
                }
            }
        }
        None if !m.contains_key("window") => Some(rule::Span { n: 7, unit: rule::Unit::Days }),
        _ => {
            problems.push(Problem::invalid("$.window", "a window has exactly one unit, e.g. {\"days\": 7}"));
            None
        }
    };
    let mut kinds = Vec::new();
    for kind in RESPONSE_KINDS {
        let Some(x) = m.get(*kind) else { continue };
        let ok = x.as_object().is_some_and(|o| o.contains_key("event") && o.keys().all(|k| k == "event" || k == "where"));
        if !ok {
            problems.push(Problem::invalid(&format!("$.{kind}"), format!("{kind} is {{\"event\": name, \"where\": condition}}, not {x}")));
            continue;
        }
        match rule::json::parse_value(x) {
            Ok(r) => kinds.push((kind.to_string(), r)),
            Err(p) => problems.extend(p.0.into_iter().map(|q| q.under(&format!("$.{kind}")))),
        }
    }
    match window {
        Some(window) if problems.is_empty() => Ok(Responses { window, kinds }),
        _ => Err(Problems(problems).or_hint(RESPONSES_HINT)),
    }
}

pub fn responses_json(r: &Responses) -> Value {
    let mut m = Map::new();
    m.insert("window".into(), json!({ r.window.unit.name(): r.window.n }));
    for (k, rule) in &r.kinds {
        m.insert(k.clone(), rule::json::to_json(rule));
    }
    Value::Object(m)
}

/// A response condition limited to `[from, to)` (timestamps the rule language reads).
pub fn response_in(r: &Rule, from: &str, to: &str) -> Rule {
    match r {
        rule::Tree::Leaf(rule::Cond::Event(e)) => {
            let mut e = e.clone();
            e.within = Some(rule::Window::Range { from: Some(from.to_string()), to: Some(to.to_string()) });
            rule::Tree::Leaf(rule::Cond::Event(e))
        }
        other => other.clone(),
    }
}

#[cfg(test)]
mod response_tests {
    use super::*;

    #[test]
    fn responses_read_and_limit_to_the_window() {
        let r = parse_responses(&json!({"window": {"days": 3}, "open": {"event": "m", "where": {"prop": "t", "op": "eq", "value": "open"}}, "conversion": {"event": "orders"}})).unwrap();
        assert_eq!(r.kinds.len(), 2);
        assert_eq!(parse_responses(&responses_json(&r)).unwrap(), r);
        let w = response_in(&r.kinds[1].1, "2026-06-01T09:00:00Z", "2026-06-04T09:00:00Z");
        assert_eq!(crate::rule::text::format(&w), "orders(within from '2026-06-01T09:00:00Z' to '2026-06-04T09:00:00Z')");
        let e = parse_responses(&json!({"window": {"dayz": 3}, "open": {"attr": "x"}, "x": 1})).unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["$.x", "$.window", "$.open"]);
    }
}
