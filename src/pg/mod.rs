//! SQL functions and their plumbing.
mod agg;
pub mod bitmap64_type;
pub mod bitmap_type;
pub mod catalog;
mod dashboard_api;
pub(crate) mod dense_ids;
pub mod engine;
mod error;
pub(crate) mod datum;
mod leaf_cache;
mod model_api;
mod owner;
mod params;
mod plan_api;
mod policy_api;
mod rfm_api;
mod rules_api;
mod segments_api;
