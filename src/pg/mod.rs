//! SQL functions and their plumbing.
mod catalog;
mod error;
mod model_api;
mod rules_api;
