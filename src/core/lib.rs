//! segplan's pure-Rust core. No Postgres here: `cargo test -p segplan-core` runs it all.
//!
//! Pipeline: rule (JSON | text) → [`rule`] AST → [`compile`] against a [`model::Model`]
//! (the registered tables, read from the catalog by the extension) → parameterized SQL
//! (one query per leaf condition) → [`algebra`] over the leaves' bitmaps ([`bitmap`]).
pub mod algebra;
pub mod bitmap;
pub mod compile;
pub mod dashboard;
pub mod error;
pub mod freshness;
pub mod frozen;
pub mod idmap;
pub mod model;
pub mod numeric;
pub mod plan;
pub mod policy;
pub mod ranges;
pub mod rfm;
pub mod rule;
pub mod segments;
#[cfg(test)]
pub mod testing;
