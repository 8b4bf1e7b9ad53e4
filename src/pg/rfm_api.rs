//! RFM: configuration, the scores query behind `segplan.rfm_scores()` / `rfm_summary()`
//! (sql/finalize.sql runs it as the caller), and the cluster grid.
use super::catalog::current_model;
use super::error::{internal, raise, raise_one};
use pgrx::datum::{Interval, TimestampWithTimeZone};
use pgrx::prelude::*;
use pgrx::JsonB;
use segplan_core::compile;
use segplan_core::error::Problem;
use segplan_core::model::{self, TypeKind};
use segplan_core::rfm::{CLUSTERS, GRID};

/// Sets where RFM reads purchases; checked against the model before it is kept.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn configure_rfm(
    event: &str,
    amount_property: &str,
    occasion_property: default!(Option<&str>, "NULL"),
    window: default!(Interval, "'2 years'"),
    as_of: default!(Option<TimestampWithTimeZone>, "NULL"),
) -> JsonB {
    let micros = window.months() as i128 * 30 * 86_400_000_000 + window.days() as i128 * 86_400_000_000 + window.micros() as i128;
    if micros <= 0 {
        raise_one(Problem::invalid("window", "the look-back window must be positive").hint("for example interval '2 years'"));
    }
    Spi::connect_mut(|client| {
        client.update(
            "INSERT INTO segplan.rfm_config (event, amount_property, occasion_property, \"window\", as_of) VALUES ($1, $2, $3, $4, $5) \
             ON CONFLICT (singleton) DO UPDATE SET event = excluded.event, amount_property = excluded.amount_property, \
             occasion_property = excluded.occasion_property, \"window\" = excluded.\"window\", as_of = excluded.as_of, \
             configured_at = excluded.configured_at, configured_by = excluded.configured_by",
            None,
            &[event.into(), amount_property.into(), occasion_property.into(), window.into(), as_of.into()],
        )
        .map(|_| ())
    })
    .unwrap_or_else(|e| internal("saving the RFM configuration failed", e));
    // a bad configuration raises here and the statement's rollback removes it again
    let model = current_model();
    compile::rfm_scores(&model, "text", "configure_rfm").unwrap_or_else(|p| raise(&p));
    let cfg = model.rfm.unwrap_or_else(|| internal("the RFM configuration was not saved", ""));
    JsonB(model::rfm_json(&cfg))
}

/// The scores query for the caller to run (`$1` as_of, then `params`), keys cast to `key_cast`.
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn _rfm_query(key_cast: &str) -> TableIterator<'static, (name!(sql, String), name!(params, Vec<String>))> {
    let model = current_model();
    if key_cast == "bigint" && model.contacts.as_ref().is_some_and(|c| c.key.kind != TypeKind::Integer) {
        raise_one(Problem::invalid("rfm_scores", "contact keys are not integers")
            .hint("use segplan.rfm_scores_text(), which returns the keys as text"));
    }
    let q = compile::rfm_scores(&model, key_cast, "rfm").unwrap_or_else(|p| raise(&p));
    let params = q
        .params
        .into_iter()
        .map(|p| match p {
            compile::Param::Text(s) => s,
            compile::Param::TextArray(_) => internal("the RFM query has an array parameter", ""),
        })
        .collect();
    TableIterator::once((q.sql, params))
}

/// The cluster grid: each row a rectangle of R scores and fm (the average of F and M).
#[pg_extern(immutable, parallel_safe)]
#[search_path(pg_catalog, pg_temp)]
fn rfm_clusters() -> TableIterator<
    'static,
    (name!(cluster, String), name!(r_min, i32), name!(r_max, i32), name!(fm_min, f64), name!(fm_max, f64), name!(description, String)),
> {
    let rows: Vec<_> = CLUSTERS
        .iter()
        .flat_map(|(name, what)| {
            GRID.iter().filter(move |c| c.cluster == *name).map(move |c| {
                (name.to_string(), c.r.0, c.r.1, c.fm2.0 as f64 / 2.0, c.fm2.1 as f64 / 2.0, what.to_string())
            })
        })
        .collect();
    TableIterator::new(rows)
}
