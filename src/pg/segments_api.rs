//! Stored segments: saving (validated, versioned, cycle-free) and expanding references in rules.
//! Refresh, history, members, publishing and overlap are SQL in sql/segments.sql.
use super::catalog::current_model;
use super::error::{internal, raise, raise_one, report, required};
use pgrx::prelude::*;
use pgrx::{JsonB, PgSqlErrorCode};
use segplan_core::error::Problems;
use segplan_core::rule::{self, json, text, Rule};
use segplan_core::segments;

/// The current rule of a stored segment, if there is one.
fn current_rule(name: &str) -> Option<Rule> {
    let found = Spi::connect(|client| {
        client
            .select(
                "SELECT v.rule::text FROM segplan.segment s JOIN segplan.segment_versions v \
                 ON v.segment_id = s.id AND v.version = s.version WHERE s.name = $1",
                None,
                &[name.into()],
            )
            .and_then(|t| t.first().get_one::<String>())
    })
    .ok()
    .flatten()?;
    // a stored rule was valid when saved; should it no longer parse, say which segment it is
    Some(rule::parse_any(&found).unwrap_or_else(|p| {
        report(
            PgSqlErrorCode::ERRCODE_DATA_CORRUPTED,
            &format!("the stored rule of segment \"{name}\" cannot be read"),
            p.first().message.clone(),
            Some("save the segment again with segplan.save_segment".into()),
        )
    }))
}

/// A rule with every segment reference replaced by that segment's current rule.
pub fn expand(rule: &Rule, within: Option<&str>) -> Result<Rule, Problems> {
    if segments::references(rule).is_empty() {
        return Ok(rule.clone());
    }
    segments::expand(rule, within, &mut |n| current_rule(n))
}

/// Saves (creates or updates) a segment; a changed rule becomes a new version. Returns its id.
#[pg_extern(volatile)]
#[search_path(pg_catalog, pg_temp)]
fn save_segment(name: Option<&str>, rule: Option<&str>, description: default!(Option<&str>, "NULL"), brand: default!(Option<&str>, "NULL")) -> i64 {
    let (name, rule) = (required(name, "name"), required(rule, "rule"));
    if !segments::valid_name(name) {
        raise_one(segments::name_problem("name", name));
    }
    let parsed = rule::parse_any(rule).unwrap_or_else(|p| raise(&p));
    let expanded = expand(&parsed, Some(name)).unwrap_or_else(|p| raise(&p));
    let problems = segplan_core::compile::check(&expanded, &current_model(), &super::rules_api::regex_error);
    if !problems.is_empty() {
        raise(&Problems(problems));
    }
    let rule_json = json::to_json(&parsed).to_string();
    let rule_text = text::format(&parsed);
    let refs = segments::references(&parsed);
    Spi::connect_mut(|client| {
        let created = client
            .update(
                "INSERT INTO segplan.segment (name, brand, description) VALUES ($1, $2, $3) ON CONFLICT (name) DO NOTHING RETURNING id",
                None,
                &[name.into(), brand.into(), description.into()],
            )?
            .first()
            .get_one::<i64>()
            .ok()
            .flatten();
        if let Some(id) = created {
            client.update(
                "INSERT INTO segplan.segment_versions (segment_id, version, rule, rule_text, refs) VALUES ($1, 1, $2::jsonb, $3, $4)",
                None,
                &[id.into(), rule_json.clone().into(), rule_text.clone().into(), refs.clone().into()],
            )?;
            return Ok(id);
        }
        let row = client.update(
            "SELECT s.id, s.brand, s.version, v.rule = $2::jsonb FROM segplan.segment s \
             JOIN segplan.segment_versions v ON v.segment_id = s.id AND v.version = s.version WHERE s.name = $1 FOR UPDATE OF s",
            None,
            &[name.into(), rule_json.clone().into()],
        )?;
        if row.is_empty() {
            // the name is taken by a segment of a brand the caller may not see
            report(
                PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
                &format!("segment \"{name}\" already exists in a brand not granted to you"),
                "at name".into(),
                Some("segment names are unique across brands: choose another name".into()),
            );
        }
        let row = row.first();
        let id = row.get::<i64>(1)?.unwrap_or_else(|| internal("a saved segment has no id", name));
        let old_brand = row.get::<String>(2)?;
        let version = row.get::<i32>(3)?.unwrap_or(1);
        let same_rule = row.get::<bool>(4)?.unwrap_or(false);
        if old_brand.as_deref() != brand {
            report(
                PgSqlErrorCode::ERRCODE_DUPLICATE_OBJECT,
                &format!("segment \"{name}\" already exists in {}", old_brand.map(|b| format!("brand \"{b}\"")).unwrap_or_else(|| "no brand".into())),
                format!("at name; saving it for {} would take it over", brand.map(|b| format!("brand \"{b}\"")).unwrap_or_else(|| "no brand".into())),
                Some("segment names are unique across brands: choose another name".into()),
            );
        }
        if let Some(d) = description {
            client.update("UPDATE segplan.segment SET description = $2 WHERE id = $1", None, &[id.into(), d.into()])?;
        }
        if !same_rule {
            client.update(
                "INSERT INTO segplan.segment_versions (segment_id, version, rule, rule_text, refs) VALUES ($1, $2, $3::jsonb, $4, $5)",
                None,
                &[id.into(), (version + 1).into(), rule_json.into(), rule_text.into(), refs.into()],
            )?;
            client.update("UPDATE segplan.segment SET version = $2 WHERE id = $1", None, &[id.into(), (version + 1).into()])?;
        }
        Ok::<i64, pgrx::spi::Error>(id)
    })
    .unwrap_or_else(|e| internal("saving the segment failed", e))
}

/// The rule of a stored segment with its references expanded, as JSON (what a count evaluates).
#[pg_extern(stable)]
#[search_path(pg_catalog, pg_temp)]
fn segment_rule(name: &str) -> JsonB {
    let r = rule::Tree::Leaf(rule::Cond::Segment(name.to_string()));
    JsonB(json::to_json(&expand(&r, None).unwrap_or_else(|p| raise(&p))))
}
