//! Reads the registered model from segplan's tables and the system catalog, on every use, so a
//! dropped or renamed column is an error rather than a wrong answer. Quoting is Postgres's own.
use super::error::{internal, report};
use pgrx::prelude::*;
use pgrx::spi::SpiClient;
use pgrx::PgSqlErrorCode;
use segplan_core::error::Code;
use segplan_core::model::{Broken, Column, ContactSource, EventSource, Model, Relation, TypeKind};

/// The quoted and display names of a relation, or None if it no longer exists.
fn relation(client: &SpiClient, relid: pg_sys::Oid) -> Option<Relation> {
    let row = client
        .select(
            "SELECT pg_catalog.quote_ident(n.nspname) || '.' || pg_catalog.quote_ident(c.relname), n.nspname || '.' || c.relname \
             FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace WHERE c.oid = $1",
            Some(1),
            &[relid.into()],
        )
        .and_then(|t| if t.is_empty() { Ok(None) } else { t.first().get_two::<String, String>().map(Some) })
        .unwrap_or_else(|e| internal("reading the catalog failed", e));
    match row {
        Some((Some(sql), Some(name))) => Some(Relation { sql, name }),
        _ => None,
    }
}

pub fn columns(client: &SpiClient, relid: pg_sys::Oid) -> Vec<Column> {
    let table = client
        .select(
            "SELECT a.attname::text, pg_catalog.quote_ident(a.attname), pg_catalog.format_type(a.atttypid, a.atttypmod), bt.typname::text \
             FROM pg_catalog.pg_attribute a JOIN pg_catalog.pg_type t ON t.oid = a.atttypid \
             JOIN pg_catalog.pg_type bt ON bt.oid = CASE WHEN t.typtype = 'd' THEN t.typbasetype ELSE t.oid END \
             WHERE a.attrelid = $1 AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum",
            None,
            &[relid.into()],
        )
        .unwrap_or_else(|e| internal("reading the catalog failed", e));
    table
        .map(|row| {
            let get = |i| row.get::<String>(i).ok().flatten().unwrap_or_default();
            Column { name: get(1), sql: get(2), type_sql: get(3), kind: TypeKind::from_typname(&get(4)) }
        })
        .collect()
}

fn registered_column(cols: &[Column], name: &str, rel: &Relation, what: &str) -> Result<Column, Broken> {
    cols.iter().find(|c| c.name == name).cloned().ok_or_else(|| Broken {
        name: String::new(),
        code: Code::UndefinedColumn,
        reason: format!("its {what} \"{name}\" no longer exists in {}", rel.name),
    })
}

/// The registered model, read in its own SPI connection.
pub fn current_model() -> Model {
    Spi::connect(load_model)
}

/// The registered model, checked against the catalog now. A missing contact source is an error
/// at once; a broken event source is recorded and is an error only for rules that use it.
pub fn load_model(client: &SpiClient) -> Model {
    let mut model = Model::default();
    let contact = client
        .select("SELECT relid::oid, key_column::text FROM segplan.contact_source", Some(1), &[])
        .and_then(|t| if t.is_empty() { Ok(None) } else { t.first().get_two::<pg_sys::Oid, String>().map(Some) })
        .unwrap_or_else(|e| internal("reading segplan.contact_source failed", e));
    if let Some((Some(relid), Some(key))) = contact {
        let Some(rel) = relation(client, relid) else {
            report(
                PgSqlErrorCode::ERRCODE_UNDEFINED_TABLE,
                "the registered contact source no longer exists",
                "the table or view it named was dropped".into(),
                Some("register it again with segplan.register_contacts".into()),
            )
        };
        let cols = columns(client, relid);
        let key = registered_column(&cols, &key, &rel, "contact key column").unwrap_or_else(|b| {
            report(
                PgSqlErrorCode::ERRCODE_UNDEFINED_COLUMN,
                &format!("the registered contact source is broken: {}", b.reason),
                format!("columns of {}: {}", rel.name, cols.iter().map(|c| c.name.as_str()).collect::<Vec<_>>().join(", ")),
                Some("the column was dropped or renamed: register the source again".into()),
            )
        });
        model.contacts = Some(ContactSource { rel, key, columns: cols });
    }
    let events: Vec<(String, pg_sys::Oid, String, Option<String>)> = client
        .select("SELECT name, relid::oid, contact_column::text, time_column::text FROM segplan.event_sources ORDER BY name", None, &[])
        .unwrap_or_else(|e| internal("reading segplan.event_sources failed", e))
        .filter_map(|row| {
            Some((
                row.get::<String>(1).ok()??,
                row.get::<pg_sys::Oid>(2).ok()??,
                row.get::<String>(3).ok()??,
                row.get::<String>(4).ok()?,
            ))
        })
        .collect();
    for (name, relid, contact, time) in events {
        let Some(rel) = relation(client, relid) else {
            model.broken.push(Broken { name, code: Code::UndefinedTable, reason: "the table or view it named was dropped".into() });
            continue;
        };
        let cols = columns(client, relid);
        let source = registered_column(&cols, &contact, &rel, "contact column").and_then(|contact| {
            let time = time.map(|t| registered_column(&cols, &t, &rel, "time column")).transpose()?;
            Ok((contact, time))
        });
        match source {
            Ok((contact, time)) => model.events.push(EventSource { name, rel, contact, time, columns: cols }),
            Err(b) => model.broken.push(Broken { name, ..b }),
        }
    }
    model
}
