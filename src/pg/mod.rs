//! SQL functions and their plumbing.
pub mod bitmap_type;
mod catalog;
mod error;
mod model_api;
mod rules_api;
