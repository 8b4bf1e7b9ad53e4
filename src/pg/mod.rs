//! SQL functions and their plumbing.
mod agg;
pub mod bitmap64_type;
pub mod bitmap_type;
pub mod catalog;
mod change_log;
mod dashboard_api;
pub(crate) mod dense_ids;
pub mod engine;
mod error;
pub mod id_share;
mod kept;
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
pub(crate) mod srf;

/// The first column of a query's first row, read only: pgrx's `Spi::get_one` runs the query as
/// an update, which assigns the transaction an id — an error on a standby.
fn read_one<T: pgrx::FromDatum + pgrx::IntoDatum>(query: &str) -> pgrx::spi::Result<Option<T>> {
    pgrx::spi::Spi::connect(|c| c.select(query, Some(1), &[])?.first().get_one::<T>())
}
