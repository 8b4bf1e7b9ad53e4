//! Registering the customer's tables (nothing is copied) and describing the model.
use super::catalog::{columns, current_model};
use super::error::{internal, raise_one, report, required, warn};
use pgrx::prelude::*;
use pgrx::{JsonB, PgRelation, PgSqlErrorCode};
use segplan_core::error::{choices, Problem};
use segplan_core::model::{self, Column, TypeKind};

/// Puts the change-log triggers on every table the source reads, so cached counts over it stay
/// exact, and the keyed ones on the table writes to it log its contacts from (catalog::keyed_by),
/// with every column they already logged and `contact_column`'s counterpart there; warns about
/// tables it could not track (counts over them are never cached).
/// Takes the relation by value and closes it first: a table this session holds open cannot get a trigger.
fn track(source: PgRelation, contact_column: &str) {
    let (oid, name) = (source.oid(), source.name().to_string());
    drop(source);
    let keyed = super::catalog::keyed_by(oid.to_u32(), contact_column);
    let missed = Spi::connect_mut(|client| {
        let (table, columns) = match keyed {
            Some((table, column)) => {
                let table = pg_sys::Oid::from(table);
                let args = client
                    .select(
                        "SELECT g.tgargs FROM pg_catalog.pg_trigger g WHERE g.tgrelid = $1 AND g.tgname = 'segplan_keys_insert'",
                        None,
                        &[table.into()],
                    )?
                    .first()
                    .get_one::<Vec<u8>>()
                    .ok()
                    .flatten()
                    .unwrap_or_default();
                // the trigger's arguments: names, each ended by a NUL byte
                let mut columns: Vec<String> = args.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
                columns.push(column);
                columns.sort();
                columns.dedup();
                (Some(table), Some(columns))
            }
            None => (None, None),
        };
        // an install still on 0.1.0's SQL (before ALTER EXTENSION segplan UPDATE) has the one-argument _track
        let keyed_track = client
            .select("SELECT pg_catalog.to_regprocedure('segplan._track(pg_catalog.regclass, pg_catalog.regclass, pg_catalog.name[])') IS NOT NULL", None, &[])?
            .first()
            .get_one::<bool>()?
            .unwrap_or(false);
        if !keyed_track {
            return client.update("SELECT segplan._track($1)::text[]", None, &[oid.into()])?.first().get_one::<Vec<String>>();
        }
        client.update("SELECT segplan._track($1, $2, $3::pg_catalog.name[])::text[]", None, &[oid.into(), table.into(), columns.into()])?.first().get_one::<Vec<String>>()
    })
    .unwrap_or_else(|e| internal("tracking changes failed", e))
    .unwrap_or_default();
    let by_itself: Vec<String> = Spi::connect(|client| {
        client
            .select("SELECT c.rel::int8, c.rel::pg_catalog.regclass::text FROM segplan._closure(ARRAY[$1::pg_catalog.oid]) c ORDER BY 2", None, &[oid.into()])
            .map(|rows| rows.filter_map(|r| Some((r.get::<i64>(1).ok()??, r.get::<String>(2).ok()??))).collect::<Vec<_>>())
    })
    .unwrap_or_else(|e| internal("tracking changes failed", e))
    .into_iter()
    .filter(|(rel, _)| super::catalog::changes_without_writes(*rel as u32))
    .map(|(_, n)| n)
    .collect();
    if !by_itself.is_empty() {
        warn(
            &format!("{} reads the clock or calls a function that may read other tables, so counts over {name} are computed afresh every time", by_itself.join(", ")),
            "a cached count follows writes to the tables a source reads: a view filtering on now() or CURRENT_DATE, or calling a volatile function or one of this database's own that is not immutable, answers otherwise with nothing written to them".into(),
            "filter by time in the rule instead (within last 90 days), or use a view without now(), CURRENT_DATE and such functions",
        );
    }
    if !missed.is_empty() {
        warn(
            &format!("changes to {} cannot be tracked, so counts over {name} are computed afresh every time", missed.join(", ")),
            "tracking needs a statement trigger on each table the source reads; only the table's owner can create one (views over functions, materialized views and foreign tables cannot be tracked)".into(),
            "run the registration as the owner of those tables to enable the bitmap cache for this source",
        );
    }
}

fn column_of(relid: pg_sys::Oid, rel_name: &str, name: &str, what: &str, path: &str) -> Column {
    let cols = Spi::connect(|client| columns(client, relid));
    match cols.iter().find(|c| c.name == name) {
        Some(c) => c.clone(),
        None => raise_one(
            Problem::invalid(path, format!("{rel_name} has no column \"{name}\" to use as {what}"))
                .hint(format!("columns of {rel_name}: {}", choices(cols.iter().map(|c| c.name.as_str())))),
        ),
    }
}

/// Registers the contact table or view and its key column (int2/int4/int8, uuid or text).
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn register_contacts(source: PgRelation, key_column: &str) {
    let key = column_of(source.oid(), source.name(), key_column, "the contact key", "key_column");
    if !matches!(key.kind, TypeKind::Integer | TypeKind::Uuid | TypeKind::Text) {
        raise_one(
            Problem::invalid("key_column", format!("contact key \"{}\" is of type {}", key.name, key.type_sql))
                .hint("use a column of type integer, bigint, uuid or text"),
        );
    }
    Spi::connect_mut(|client| {
        client.update(
            "INSERT INTO segplan.contact_source (relid, key_column) VALUES ($1, $2) \
             ON CONFLICT (singleton) DO UPDATE SET relid = excluded.relid, key_column = excluded.key_column, \
             registered_at = excluded.registered_at, registered_by = excluded.registered_by",
            None,
            &[source.oid().into(), key_column.into()],
        )
        .map(|_| ())
    })
    .unwrap_or_else(|e| internal("registering the contact source failed", e));
    track(source, key_column);
}

/// Registers (or updates) an event source: a table or view whose rows belong to a contact.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn register_events(name: Option<&str>, source: Option<PgRelation>, contact_column: Option<&str>, time_column: default!(Option<&str>, "NULL")) {
    let (name, source, contact_column) = (required(name, "name"), required(source, "source"), required(contact_column, "contact_column"));
    if !segplan_core::segments::valid_name(name) {
        raise_one(Problem::invalid("name", format!("invalid event source name \"{name}\""))
            .hint("use lower-case letters, digits and underscores, starting with a letter (at most 63)"));
    }
    column_of(source.oid(), source.name(), contact_column, "the contact column", "contact_column");
    if let Some(t) = time_column {
        let col = column_of(source.oid(), source.name(), t, "the time column", "time_column");
        if !col.kind.is_time() {
            raise_one(Problem::invalid("time_column", format!("time column \"{t}\" is of type {}", col.type_sql))
                .hint("use a column of type date, timestamp or timestamptz"));
        }
    }
    Spi::connect_mut(|client| {
        client.update(
            "INSERT INTO segplan.event_sources (name, relid, contact_column, time_column) VALUES ($1, $2, $3, $4) \
             ON CONFLICT (name) DO UPDATE SET relid = excluded.relid, contact_column = excluded.contact_column, \
             time_column = excluded.time_column, registered_at = excluded.registered_at, registered_by = excluded.registered_by",
            None,
            &[name.into(), source.oid().into(), contact_column.into(), time_column.into()],
        )
        .map(|_| ())
    })
    .unwrap_or_else(|e| internal("registering the event source failed", e));
    track(source, contact_column);
}

/// Removes an event source registration.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn unregister_events(name: &str) {
    let removed = Spi::connect_mut(|client| {
        client.update("DELETE FROM segplan.event_sources WHERE name = $1 RETURNING name", None, &[name.into()]).map(|t| t.len())
    })
    .unwrap_or_else(|e| internal("unregistering failed", e));
    if removed == 0 {
        report(
            PgSqlErrorCode::ERRCODE_INVALID_PARAMETER_VALUE,
            &format!("no event source named \"{name}\""),
            "at name".into(),
            Some("segplan.model() lists the registered event sources".into()),
        );
    }
}

/// The registered model as JSON: attributes, event sources and their properties with types.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn model() -> JsonB {
    JsonB(model::to_json(&current_model()))
}
