//! The registered data model, as the extension reads it from the catalog on every use.
//! Every `sql` string here was quoted by Postgres (`quote_ident`, `format_type`), never by us.
use serde_json::{json, Value};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TypeKind { Integer, Numeric, Text, Bool, Date, Timestamp, TimestampTz, Uuid, Other }

impl TypeKind {
    /// From the base type's `pg_type.typname`.
    pub fn from_typname(t: &str) -> TypeKind {
        match t {
            "int2" | "int4" | "int8" => TypeKind::Integer,
            "numeric" | "float4" | "float8" | "money" => TypeKind::Numeric,
            "text" | "varchar" | "bpchar" | "name" | "citext" => TypeKind::Text,
            "bool" => TypeKind::Bool,
            "date" => TypeKind::Date,
            "timestamp" => TypeKind::Timestamp,
            "timestamptz" => TypeKind::TimestampTz,
            "uuid" => TypeKind::Uuid,
            _ => TypeKind::Other,
        }
    }
    pub fn is_time(self) -> bool {
        matches!(self, TypeKind::Date | TypeKind::Timestamp | TypeKind::TimestampTz)
    }
    pub fn is_number(self) -> bool {
        matches!(self, TypeKind::Integer | TypeKind::Numeric)
    }
    fn label(self) -> &'static str {
        match self {
            TypeKind::Integer => "integer",
            TypeKind::Numeric => "number",
            TypeKind::Text => "text",
            TypeKind::Bool => "boolean",
            TypeKind::Date => "date",
            TypeKind::Timestamp | TypeKind::TimestampTz => "timestamp",
            TypeKind::Uuid => "uuid",
            TypeKind::Other => "other",
        }
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Column {
    pub name: String,
    /// the quoted identifier
    pub sql: String,
    /// `format_type()` of the column's type, used in casts of bind parameters
    pub type_sql: String,
    pub kind: TypeKind,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Relation {
    /// `pg_class.oid`
    pub oid: u32,
    /// schema-qualified display name
    pub name: String,
    /// quoted, schema-qualified
    pub sql: String,
}

#[derive(Debug, Clone, PartialEq)]
pub struct ContactSource {
    pub rel: Relation,
    pub key: Column,
    pub columns: Vec<Column>,
    /// the table and column whose logged keys name the contacts whose rows a write
    /// touched ([`Keyed`])
    pub keyed: Keyed,
}

/// Where writes to a source log the contacts they touched: a table (its oid) and its column that
/// the source's contact column is. The source itself for a table; for a view, the one table its
/// rows come from, when the view is simple enough that a contact's rows come from that table's
/// rows of the contact only (catalog.rs); `None` for anything else (its cached bitmaps are built
/// again after a write instead of patched).
pub type Keyed = Option<(u32, String)>;

#[derive(Debug, Clone, PartialEq)]
pub struct EventSource {
    pub name: String,
    pub rel: Relation,
    pub contact: Column,
    pub time: Option<Column>,
    pub columns: Vec<Column>,
    pub keyed: Keyed,
}

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Model {
    pub contacts: Option<ContactSource>,
    pub events: Vec<EventSource>,
    /// Registered event sources whose table, view or columns are gone: an error only for rules
    /// that use them.
    pub broken: Vec<Broken>,
    /// set by `segplan.configure_rfm`
    pub rfm: Option<RfmConfig>,
}

/// Where RFM reads purchases. Names are checked against the model when a rule or function uses
/// them; `window` and `as_of` are Postgres's own text of an interval and a timestamptz.
#[derive(Debug, Clone, PartialEq)]
pub struct RfmConfig {
    pub event: String,
    pub amount: String,
    /// one purchase occasion per distinct value (e.g. the order id); otherwise one per row
    pub occasion: Option<String>,
    pub window: String,
    /// a fixed evaluation time; otherwise the caller's as_of
    pub as_of: Option<String>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Broken {
    pub name: String,
    pub code: crate::error::Code,
    pub reason: String,
}

impl Model {
    pub fn event(&self, name: &str) -> Option<&EventSource> {
        self.events.iter().find(|e| e.name == name)
    }
}

pub fn find<'a>(cols: &'a [Column], name: &str) -> Option<&'a Column> {
    cols.iter().find(|c| c.name == name)
}

fn columns_json(cols: &[Column]) -> Value {
    Value::Array(cols.iter().map(|c| json!({"name": c.name, "type": c.type_sql, "kind": c.kind.label()})).collect())
}

/// What a UI needs to build its pickers: attributes, event sources and their properties.
pub fn to_json(m: &Model) -> Value {
    let contacts = m.contacts.as_ref().map(|c| json!({
        "source": c.rel.name, "key": c.key.name, "key_type": c.key.type_sql, "attributes": columns_json(&c.columns),
    }));
    let events: Vec<Value> = m.events.iter().map(|e| json!({
        "name": e.name, "source": e.rel.name, "contact_column": e.contact.name,
        "time_column": e.time.as_ref().map(|t| t.name.clone()), "properties": columns_json(&e.columns),
    })).collect();
    let broken: Vec<Value> = m.broken.iter().map(|b| json!({"name": b.name, "problem": b.reason})).collect();
    let rfm = m.rfm.as_ref().map(rfm_json);
    json!({"contacts": contacts, "events": events, "broken_events": broken, "rfm": rfm})
}

pub fn rfm_json(r: &RfmConfig) -> Value {
    json!({"event": r.event, "amount_property": r.amount, "occasion_property": r.occasion, "window": r.window, "as_of": r.as_of})
}
