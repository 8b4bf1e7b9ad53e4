//! Test support shared by the modules' fuzz tests: a model with a column of every kind, and JSON
//! with one value replaced by an odd one.
use crate::error::Problems;
use crate::model::{Column, ContactSource, EventSource, Model, Relation, RfmConfig, TypeKind};
use proptest::prelude::*;
use serde_json::{json, Value};

pub fn col(name: &str, type_sql: &str, kind: TypeKind) -> Column {
    Column { name: name.into(), sql: name.into(), type_sql: type_sql.into(), kind }
}

/// Contacts `public.people` (bigint `id`, `country`) and one event source `clicks` (`person`,
/// `at`, `amount`, `order_id`); no RFM configuration.
pub fn small_model() -> Model {
    let key = col("id", "bigint", TypeKind::Integer);
    let contacts = ContactSource {
        rel: Relation { oid: 10, name: "public.people".into(), sql: "public.people".into() },
        key: key.clone(),
        columns: vec![key, col("country", "text", TypeKind::Text)],
        keyed: Some((10, "id".into())),
    };
    let cols = vec![col("person", "bigint", TypeKind::Integer), col("at", "timestamp with time zone", TypeKind::TimestampTz),
                    col("amount", "numeric", TypeKind::Numeric), col("order_id", "bigint", TypeKind::Integer)];
    let clicks = EventSource {
        name: "clicks".into(),
        rel: Relation { oid: 20, name: "public.clicks".into(), sql: "public.clicks".into() },
        contact: cols[0].clone(),
        time: Some(cols[1].clone()),
        columns: cols,
        keyed: Some((20, "person".into())),
    };
    Model { contacts: Some(contacts), events: vec![clicks], broken: vec![], rfm: None }
}

/// [`small_model`] with a contact column of every kind (`time_zone` among them), an event column
/// `kind`, and RFM reading `clicks`.
pub fn model() -> Model {
    let mut m = small_model();
    let c = m.contacts.as_mut().expect("contacts");
    c.columns.extend([col("city", "text", TypeKind::Text), col("score", "numeric", TypeKind::Numeric), col("opt_in", "boolean", TypeKind::Bool),
                      col("birth", "date", TypeKind::Date), col("created", "timestamp with time zone", TypeKind::TimestampTz),
                      col("visits", "integer", TypeKind::Integer), col("tag", "uuid", TypeKind::Uuid), col("seen", "timestamp without time zone", TypeKind::Timestamp),
                      col("time_zone", "text", TypeKind::Text)]);
    m.events[0].columns.push(col("kind", "text", TypeKind::Text));
    m.rfm = Some(RfmConfig { event: "clicks".into(), amount: "amount".into(), occasion: Some("order_id".into()), window: "2 years".into(), as_of: None });
    m
}

/// Values of every kind a user could put where another was expected: empty, negative, huge,
/// non-finite-looking, wrongly typed, nested.
pub fn odd_json() -> impl Strategy<Value = Value> {
    prop::sample::select(vec![
        json!(null), json!(-1), json!(0), json!(1e300), json!(u64::MAX), json!(i64::MIN), json!(0.5), json!(true), json!(""),
        json!([]), json!({}), json!({"days": -5}), json!({"hours": i64::MAX}), json!({"days": 1e300}), json!("2026-13-01"), json!("9999-12-31"),
        json!("0001-01-01"), json!("25:00"), json!("23:59"), json!("00:00"), json!("* * * * *"), json!("59 23 31 12 *"), json!("*/1 0-23 1-31 1-12 0-6"),
        json!([1, "a", null]), json!(["mon", "mon"]), json!("country"), json!("Europe/Paris"), json!("America/Sao_Paulo"), json!("Mars/Olympus"),
        json!("2026-03-29 02:30"), json!("2026-10-25 02:30"), json!("9999-12-31 23:59"), json!("0001-01-01 00:00"), json!(i32::MAX), json!(-2147483649i64), json!(100), json!(101), json!("\u{0}"),
    ])
}

fn count(v: &Value) -> usize {
    1 + match v {
        Value::Array(a) => a.iter().map(count).sum(),
        Value::Object(o) => o.values().map(count).sum(),
        _ => 0,
    }
}

/// Replaces the `k`-th node (depth first, counted down) with `with`.
fn replace(v: &mut Value, k: &mut usize, with: &Value) -> bool {
    if *k == 0 {
        *v = with.clone();
        return true;
    }
    *k -= 1;
    match v {
        Value::Array(a) => a.iter_mut().any(|x| replace(x, k, with)),
        Value::Object(o) => o.values_mut().any(|x| replace(x, k, with)),
        _ => false,
    }
}

/// `v` with node number `pick` (modulo how many there are, depth first) replaced by `with`.
pub fn with_one_replaced(mut v: Value, pick: usize, with: Value) -> Value {
    let mut k = pick % count(&v);
    assert!(replace(&mut v, &mut k, &with));
    v
}

/// Every problem says how to fix it (a HINT reaches the user with it).
pub fn assert_hinted(p: &Problems) {
    for x in &p.0 {
        assert!(x.hint.as_deref().is_some_and(|h| !h.is_empty()), "a problem without a hint: {x:?}");
    }
}
