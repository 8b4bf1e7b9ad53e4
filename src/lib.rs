//! segplan: the PostgreSQL edge. The rule language, validation and SQL compiler live in the
//! pure-Rust crate `segplan-core` (src/core); this crate exposes them as SQL functions, reads the
//! registered model from the catalog and runs the compiled SQL through SPI as the caller.
use pgrx::prelude::*;

mod pg;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests;

/// Required by `cargo pgrx test`. The test cluster uses the same settings as every other cluster
/// of the project (pg_test_config/postgresql.conf), with pg_cron pointed at its database.
#[cfg(test)]
pub mod pg_test {
    pub fn setup(_options: Vec<&str>) {}

    pub fn postgresql_conf_options() -> Vec<&'static str> {
        let mut opts: Vec<&'static str> = include_str!("../pg_test_config/postgresql.conf")
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .collect();
        opts.push("cron.database_name = 'pgrx_tests'");
        opts
    }
}
