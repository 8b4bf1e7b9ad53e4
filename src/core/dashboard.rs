//! The segment dashboard: which columns of the registered model mean "gender", "opt-in",
//! "purchase amount"… (detected from names and types, overridable), and the one SQL statement that
//! computes every indicator for a set of members. Names come from the model, values are parameters.
use crate::error::{choices, Problem, Problems, DASHBOARD_HINT};
use crate::model::{find, Column, ContactSource, EventSource, Model, TypeKind};
use serde_json::{json, Map, Value};

/// Contact attributes shown as distributions (top values), in display order.
pub const DISTRIBUTIONS: &[&str] = &["gender", "country", "city", "brand", "outlet", "tier"];

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Fields {
    /// distribution name → attribute
    pub attrs: Vec<(String, String)>,
    pub birth_date: Option<String>,
    pub opt_ins: Vec<String>,
    pub messages: Option<Messages>,
    pub purchases: Option<Purchases>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Messages {
    pub event: String,
    pub type_property: String,
    pub sent: String,
    pub open: String,
    pub click: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Purchases {
    pub event: String,
    pub amount: String,
    pub occasion: Option<String>,
    pub category: Option<String>,
}

fn named<'a>(cols: &'a [Column], names: &[&str], ok: impl Fn(&Column) -> bool) -> Option<&'a Column> {
    names.iter().find_map(|n| cols.iter().find(|c| c.name.eq_ignore_ascii_case(n) && ok(c)))
}

const ATTR_NAMES: &[(&str, &[&str])] = &[
    ("gender", &["gender", "sex"]),
    ("country", &["country", "country_code"]),
    ("city", &["city", "town"]),
    ("brand", &["brand", "brand_id", "brand_name"]),
    ("outlet", &["home_outlet_id", "home_outlet", "outlet_id", "store_id", "home_store"]),
    ("tier", &["loyalty_tier", "tier", "loyalty_level"]),
];

/// What the model's names and types suggest.
pub fn detect(model: &Model) -> Fields {
    let mut f = Fields::default();
    let Some(c) = &model.contacts else { return f };
    let cols = &c.columns;
    for (field, names) in ATTR_NAMES {
        if let Some(col) = named(cols, names, |_| true) {
            f.attrs.push((field.to_string(), col.name.clone()));
        }
    }
    f.birth_date = named(cols, &["birth_date", "date_of_birth", "birthdate", "birthday", "dob"], |c| c.kind.is_time()).map(|c| c.name.clone());
    f.opt_ins = cols
        .iter()
        .filter(|c| c.kind == TypeKind::Bool && ["opt_in", "optin", "consent", "subscribed"].iter().any(|w| c.name.to_ascii_lowercase().contains(w)))
        .map(|c| c.name.clone())
        .collect();
    f.messages = model.events.iter().find_map(|e| {
        let t = named(&e.columns, &["event_type", "type", "action"], |c| c.kind == TypeKind::Text)?;
        e.time.as_ref()?;
        Some(Messages { event: e.name.clone(), type_property: t.name.clone(), sent: "sent".into(), open: "open".into(), click: "click".into() })
    });
    f.purchases = match &model.rfm {
        Some(r) => Some(Purchases {
            event: r.event.clone(),
            amount: r.amount.clone(),
            occasion: r.occasion.clone(),
            category: model.event(&r.event).and_then(|e| named(&e.columns, &["category", "product_category"], |_| true)).map(|c| c.name.clone()),
        }),
        None => model.events.iter().find_map(|e| {
            e.time.as_ref()?;
            let amount = named(&e.columns, &["total", "amount", "line_total", "revenue", "price"], |c| c.kind.is_number())?;
            Some(Purchases {
                event: e.name.clone(),
                amount: amount.name.clone(),
                occasion: named(&e.columns, &["order_id", "receipt_id", "transaction_id"], |_| true).map(|c| c.name.clone()),
                category: named(&e.columns, &["category", "product_category"], |_| true).map(|c| c.name.clone()),
            })
        }),
    };
    f
}

pub fn to_json(f: &Fields) -> Value {
    let mut m = Map::new();
    for name in DISTRIBUTIONS {
        m.insert(name.to_string(), json!(f.attrs.iter().find(|(k, _)| k == name).map(|(_, v)| v)));
    }
    m.insert("birth_date".into(), json!(f.birth_date));
    m.insert("opt_ins".into(), json!(f.opt_ins));
    m.insert("messages".into(), match &f.messages {
        Some(x) => json!({"event": x.event, "type_property": x.type_property, "sent": x.sent, "open": x.open, "click": x.click}),
        None => Value::Null,
    });
    m.insert("purchases".into(), match &f.purchases {
        Some(p) => json!({"event": p.event, "amount": p.amount, "occasion": p.occasion, "category": p.category}),
        None => Value::Null,
    });
    Value::Object(m)
}

/// The detected fields with `overrides` (a JSON object of the same shape; `null` turns one off),
/// checked against the model.
pub fn effective(model: &Model, overrides: &Value) -> Result<Fields, Problems> {
    let mut v = to_json(&detect(model));
    let Some(o) = overrides.as_object() else {
        return Err(Problems::from(Problem::invalid("$", "the dashboard fields must be a JSON object")).or_hint(DASHBOARD_HINT));
    };
    let mut problems = Vec::new();
    let known: Vec<String> = v.as_object().map(|m| m.keys().cloned().collect()).unwrap_or_default();
    for (k, x) in o {
        if !known.contains(k) {
            problems.push(Problem::invalid(&format!("$.{k}"), format!("unknown dashboard field \"{k}\"")).hint(format!("fields: {}", choices(known.iter().map(|s| s.as_str())))));
        } else if let Some(m) = v.as_object_mut() {
            m.insert(k.clone(), x.clone());
        }
    }
    let Some(c) = &model.contacts else {
        return Err(Problem::invalid("$", "no contact source is registered").hint("call segplan.register_contacts first").into());
    };
    let f = read(&v, model, c, &mut problems);
    if problems.is_empty() { Ok(f) } else { Err(Problems(problems).or_hint(DASHBOARD_HINT)) }
}

fn read(v: &Value, model: &Model, c: &ContactSource, problems: &mut Vec<Problem>) -> Fields {
    let attr = |key: &str, x: &Value, problems: &mut Vec<Problem>| -> Option<String> {
        match x {
            Value::Null => None,
            Value::String(s) if find(&c.columns, s).is_some() => Some(s.clone()),
            other => {
                problems.push(Problem::invalid(&format!("$.{key}"), format!("{other} is not an attribute of {}", c.rel.name))
                    .hint(format!("attributes: {}", choices(c.columns.iter().map(|c| c.name.as_str())))));
                None
            }
        }
    };
    let mut f = Fields::default();
    for name in DISTRIBUTIONS {
        if let Some(a) = attr(name, &v[*name], problems) {
            f.attrs.push((name.to_string(), a));
        }
    }
    f.birth_date = attr("birth_date", &v["birth_date"], problems);
    if let Some(b) = f.birth_date.as_deref().and_then(|b| find(&c.columns, b)) {
        if !b.kind.is_time() {
            problems.push(Problem::invalid("$.birth_date", format!("\"{}\" is of type {}, not a date", b.name, b.type_sql)));
        }
    }
    match &v["opt_ins"] {
        Value::Array(xs) => {
            for (i, x) in xs.iter().enumerate() {
                match x.as_str().and_then(|s| find(&c.columns, s)) {
                    Some(col) if col.kind == TypeKind::Bool => f.opt_ins.push(col.name.clone()),
                    _ => problems.push(Problem::invalid(&format!("$.opt_ins[{i}]"), format!("{x} is not a boolean attribute of {}", c.rel.name))),
                }
            }
        }
        Value::Null => {}
        other => problems.push(Problem::invalid("$.opt_ins", format!("opt_ins is a list of boolean attributes, not {other}"))),
    }
    let event = |key: &str, name: &Value, problems: &mut Vec<Problem>| -> Option<EventSource> {
        let n = name.as_str().unwrap_or_default();
        let e = model.event(n).cloned();
        if e.is_none() {
            problems.push(Problem::invalid(&format!("$.{key}.event"), format!("unknown event source {name}"))
                .hint(format!("registered event sources: {}", choices(model.events.iter().map(|e| e.name.as_str())))));
        } else if e.as_ref().is_some_and(|e| e.time.is_none()) {
            problems.push(Problem::invalid(&format!("$.{key}.event"), format!("event source {name} has no time column")));
            return None;
        }
        e
    };
    let prop = |key: &str, e: &EventSource, x: &Value, need: fn(TypeKind) -> bool, problems: &mut Vec<Problem>| -> Option<String> {
        match x.as_str().and_then(|s| find(&e.columns, s)) {
            Some(col) if need(col.kind) => Some(col.name.clone()),
            _ => {
                problems.push(Problem::invalid(&format!("$.{key}"), format!("{x} is not a suitable property of event source \"{}\"", e.name))
                    .hint(format!("properties: {}", choices(e.columns.iter().map(|c| c.name.as_str())))));
                None
            }
        }
    };
    let any = |_: TypeKind| true;
    let text_value = |key: &str, x: &Value, problems: &mut Vec<Problem>| -> String {
        x.as_str().map(String::from).unwrap_or_else(|| {
            problems.push(Problem::invalid(&format!("$.messages.{key}"), format!("{key} is the {key} value of the type property, a string")));
            String::new()
        })
    };
    let msg = &v["messages"];
    if !msg.is_null() {
        if let Some(e) = event("messages", &msg["event"], problems) {
            let t = prop("messages.type_property", &e, &msg["type_property"], |k| k == TypeKind::Text, problems);
            let (sent, open, click) = (text_value("sent", &msg["sent"], problems), text_value("open", &msg["open"], problems), text_value("click", &msg["click"], problems));
            f.messages = t.map(|type_property| Messages { event: e.name.clone(), type_property, sent, open, click });
        }
    }
    let pur = &v["purchases"];
    if !pur.is_null() {
        if let Some(e) = event("purchases", &pur["event"], problems) {
            let amount = prop("purchases.amount", &e, &pur["amount"], TypeKind::is_number, problems);
            let occasion = if pur["occasion"].is_null() { None } else { prop("purchases.occasion", &e, &pur["occasion"], any, problems) };
            let category = if pur["category"].is_null() { None } else { prop("purchases.category", &e, &pur["category"], any, problems) };
            f.purchases = amount.map(|amount| Purchases { event: e.name.clone(), amount, occasion, category });
        }
    }
    f
}

/// The dashboard as one statement returning rows (section, label, contacts, value). Parameters:
/// `$1` the members as portable roaringbitmap64 bytes, `$2` top N, `$3` as_of, `$4`–`$6` the
/// message type values sent, open, click.
pub fn query(model: &Model, f: &Fields) -> Option<String> {
    let c = model.contacts.as_ref()?;
    let key = &c.key.sql;
    let mut parts = vec![
        "SELECT 'size'::text, NULL::text, (SELECT count(*) FROM c), NULL::numeric".to_string(),
        format!("SELECT 'all_contacts', NULL, (SELECT count(*) FROM {} AS x WHERE x.{key} IS NOT NULL), NULL", c.rel.sql),
    ];
    for (name, attr) in &f.attrs {
        let Some(col) = find(&c.columns, attr) else { continue };
        parts.push(format!(
            "(SELECT '{name}', coalesce(c.{s}::text, '(none)'), count(*), NULL FROM c GROUP BY 2 ORDER BY 3 DESC, 2 LIMIT $2)",
            s = col.sql
        ));
    }
    if let Some(col) = f.birth_date.as_deref().and_then(|b| find(&c.columns, b)) {
        let age = format!("extract(year FROM age(($3)::date, c.{}::date))", col.sql);
        parts.push(format!(
            "(SELECT 'age_band', CASE WHEN {age} IS NULL THEN '(none)' WHEN {age} < 25 THEN '<25' WHEN {age} < 35 THEN '25-34' \
             WHEN {age} < 45 THEN '35-44' WHEN {age} < 55 THEN '45-54' WHEN {age} < 65 THEN '55-64' ELSE '65+' END, count(*), NULL \
             FROM c GROUP BY 2 ORDER BY min({age}) NULLS FIRST)"
        ));
    }
    // labelled by position in `opt_ins` (the caller maps them back to names)
    for (i, o) in f.opt_ins.iter().enumerate() {
        if let Some(col) = find(&c.columns, o) {
            parts.push(format!("SELECT 'reachable', '{i}', count(*) FILTER (WHERE c.{s}), NULL FROM c", s = col.sql));
        }
    }
    if let Some(m) = &f.messages {
        if let (Some(e), Some(t)) = (model.event(&m.event), model.event(&m.event).and_then(|e| find(&e.columns, &m.type_property))) {
            let time = e.time.as_ref()?;
            parts.push(format!(
                "SELECT 'engagement_90_days', x.label, x.n, NULL FROM (SELECT count(*) FILTER (WHERE e.{t} = $4) AS sent, \
                 count(*) FILTER (WHERE e.{t} = $5) AS opens, count(*) FILTER (WHERE e.{t} = $6) AS clicks, \
                 count(DISTINCT e.{ec}) FILTER (WHERE e.{t} = $5) AS openers FROM {rel} AS e \
                 WHERE e.{ec} IN (SELECT m.k FROM m) AND e.{tt} > ($3 - interval '90 days') AND e.{tt} <= $3) AS a, \
                 LATERAL (VALUES ('sent', a.sent), ('opens', a.opens), ('clicks', a.clicks), ('contacts_who_opened', a.openers)) AS x(label, n)",
                t = t.sql, ec = e.contact.sql, tt = time.sql, rel = e.rel.sql
            ));
        }
    }
    if let Some(p) = &f.purchases {
        if let (Some(e), Some(amount)) = (model.event(&p.event), model.event(&p.event).and_then(|e| find(&e.columns, &p.amount))) {
            let time = e.time.as_ref()?;
            let occ = p.occasion.as_deref().and_then(|o| find(&e.columns, o)).map(|o| format!("count(DISTINCT e.{})", o.sql)).unwrap_or_else(|| "count(*)".into());
            let base = format!("FROM {rel} AS e WHERE e.{ec} IN (SELECT m.k FROM m) AND e.{tt} > ($3 - interval '365 days') AND e.{tt} <= $3",
                               rel = e.rel.sql, ec = e.contact.sql, tt = time.sql);
            parts.push(format!(
                "SELECT 'purchases_365_days', x.label, x.n, x.v FROM (SELECT count(DISTINCT e.{ec}) AS buyers, {occ} AS occasions, \
                 sum(e.{a}) AS spend {base}) AS a, \
                 LATERAL (VALUES ('buyers', a.buyers, NULL::numeric), ('occasions', a.occasions, NULL), ('spend', NULL, a.spend)) AS x(label, n, v)",
                ec = e.contact.sql, a = amount.sql
            ));
            if let Some(cat) = p.category.as_deref().and_then(|x| find(&e.columns, x)) {
                parts.push(format!(
                    "(SELECT 'top_categories', coalesce(e.{s}::text, '(none)'), count(DISTINCT e.{ec}), sum(e.{a}) {base} GROUP BY 2 ORDER BY 3 DESC, 2 LIMIT $2)",
                    s = cat.sql, ec = e.contact.sql, a = amount.sql
                ));
            }
        }
    }
    Some(format!(
        "WITH m AS MATERIALIZED (SELECT segplan.rb64_iterate(segplan.roaringbitmap64($1)) AS k), \
         c AS MATERIALIZED (SELECT x.* FROM {rel} AS x WHERE x.{key} IN (SELECT m.k FROM m)) {}",
        parts.join(" UNION ALL "),
        rel = c.rel.sql
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::{Relation, RfmConfig};

    fn col(name: &str, kind: TypeKind) -> Column {
        Column { name: name.into(), sql: name.into(), type_sql: "t".into(), kind }
    }

    fn model() -> Model {
        let cols = vec![col("id", TypeKind::Integer), col("Gender", TypeKind::Text), col("dob", TypeKind::Date),
                        col("email_opt_in", TypeKind::Bool), col("vip", TypeKind::Bool), col("loyalty_tier", TypeKind::Text)];
        let ev = vec![col("person", TypeKind::Integer), col("at", TypeKind::TimestampTz), col("type", TypeKind::Text)];
        let buys = vec![col("person", TypeKind::Integer), col("at", TypeKind::TimestampTz), col("amount", TypeKind::Numeric), col("category", TypeKind::Text)];
        let rel = |n: &str| Relation { oid: 1, name: n.into(), sql: n.into() };
        Model {
            contacts: Some(ContactSource { rel: rel("people"), key: cols[0].clone(), columns: cols, keyed: None }),
            events: vec![
                EventSource { name: "mails".into(), rel: rel("mails"), contact: ev[0].clone(), time: Some(ev[1].clone()), columns: ev.clone(), keyed: None },
                EventSource { name: "buys".into(), rel: rel("buys"), contact: buys[0].clone(), time: Some(buys[1].clone()), columns: buys.clone(), keyed: None },
            ],
            broken: vec![],
            rfm: None,
        }
    }

    #[test]
    fn detects_fields_from_names_and_types() {
        let f = detect(&model());
        assert_eq!(f.attrs, vec![("gender".into(), "Gender".into()), ("tier".into(), "loyalty_tier".into())]);
        assert_eq!(f.birth_date.as_deref(), Some("dob"));
        assert_eq!(f.opt_ins, vec!["email_opt_in"]);
        assert_eq!(f.messages.as_ref().map(|m| m.type_property.as_str()), Some("type"));
        let p = f.purchases.unwrap();
        assert_eq!((p.event.as_str(), p.amount.as_str(), p.category.as_deref()), ("buys", "amount", Some("category")));
        // RFM's configuration names the purchases when there is one
        let mut m = model();
        m.rfm = Some(RfmConfig { event: "buys".into(), amount: "amount".into(), occasion: None, window: "1 year".into(), as_of: None });
        assert_eq!(detect(&m).purchases.map(|p| p.event), Some("buys".into()));
    }

    #[test]
    fn overrides_are_checked_and_null_turns_a_field_off() {
        let m = model();
        let f = effective(&m, &json!({"tier": null, "country": "Gender", "opt_ins": ["email_opt_in", "vip"]})).unwrap();
        assert_eq!(f.attrs, vec![("gender".into(), "Gender".into()), ("country".into(), "Gender".into())]);
        assert_eq!(f.opt_ins, vec!["email_opt_in", "vip"]);
        let e = effective(&m, &json!({"colour": "x", "city": "nope", "opt_ins": ["dob"], "purchases": {"event": "buys", "amount": "category"}})).unwrap_err();
        let paths: Vec<&str> = e.0.iter().map(|p| p.path.as_str()).collect();
        assert_eq!(paths, vec!["$.colour", "$.city", "$.opt_ins[0]", "$.purchases.amount"]);
        let q = query(&m, &f).unwrap();
        assert!(q.contains("'engagement_90_days'") && q.contains("'top_categories'") && q.contains("'age_band'"));
    }
}
