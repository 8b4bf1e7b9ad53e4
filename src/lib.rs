//! segplan: the PostgreSQL edge. The rule language, validation and SQL compiler live in the
//! pure-Rust crate `segplan-core` (src/core); this crate exposes them as SQL functions, reads the
//! registered model from the catalog and runs the compiled SQL through SPI as the caller.
use pgrx::prelude::*;

pub(crate) mod pg;

::pgrx::pg_module_magic!(name, version);

extension_sql_file!("../sql/bootstrap.sql", name = "bootstrap", bootstrap);
extension_sql_file!("../sql/security.sql", name = "security", requires = ["bootstrap"]);

#[pg_guard]
pub extern "C-unwind" fn _PG_init() {
    pg::bitmap_type::register_settings();
    pg::engine::register_settings();
    pg::id_share::register_settings();
    pg::catalog::register_invalidation();
}
extension_sql_file!("../sql/finalize.sql", name = "finalize", finalize);

/// In-process tests (each runs in a rolled-back transaction). Golden tests of the SQL surface
/// are in tests/pg_regress, races in tests/isolation, an application client in tests/client.
#[cfg(any(test, feature = "pg_test"))]
#[pg_schema]
mod tests {
    use pgrx::prelude::*;

    fn setup() {
        Spi::run(
            "CREATE TABLE people (id int PRIMARY KEY, country text, born date);
             INSERT INTO people VALUES (1, 'FR', '1990-05-01'), (2, 'DE', NULL), (3, NULL, '2001-01-01'), (4, 'FR', '1950-12-31');
             CREATE TABLE clicks (person int, at timestamptz, url text);
             INSERT INTO clicks VALUES (1, '2026-10-30', 'a'), (1, '2026-10-31', 'b'), (3, '2026-01-01', 'a');
             SELECT segplan.register_contacts('people', 'id');
             SELECT segplan.register_events('clicks', 'clicks', 'person', 'at');",
        )
        .expect("setup");
    }

    fn count(rule: &str) -> i64 {
        Spi::get_one_with_args::<i64>("SELECT segplan.count($1, '2026-11-01T00:00:00Z')", &[rule.into()])
            .expect("count")
            .expect("not null")
    }

    #[pg_test]
    fn counts_attribute_and_event_rules() {
        setup();
        assert_eq!(count("country = 'FR'"), 2);
        assert_eq!(count(r#"{"attr": "country", "op": "ne", "value": "FR"}"#), 1);
        assert_eq!(count("not country = 'FR'"), 2);
        assert_eq!(count("clicks(within last 7 days)"), 1);
        assert_eq!(count("clicks(count >= 2)"), 1);
        assert_eq!(count("clicks(count < 2)"), 3);
        assert_eq!(count("no clicks()"), 2);
    }

    #[pg_test]
    fn jsonb_and_text_overloads_agree() {
        setup();
        let a = Spi::get_one::<i64>("SELECT segplan.count('{\"attr\":\"country\",\"op\":\"eq\",\"value\":\"FR\"}'::jsonb)").unwrap();
        let b = Spi::get_one::<i64>("SELECT segplan.count('country = ''FR''')").unwrap();
        assert_eq!(a, b);
    }

    #[pg_test(error = "segplan: unknown attribute \"countri\"")]
    fn unknown_attribute_is_an_error() {
        setup();
        count("countri = 'FR'");
    }

    #[pg_test]
    fn uuid_text_forms_read_back_as_their_bytes() {
        use crate::pg::dense_ids::uuid_bytes;
        let rows = Spi::get_two::<Vec<pgrx::Uuid>, Vec<String>>(
            "SELECT array_agg(u), array_agg(u::text) FROM (SELECT gen_random_uuid() FROM generate_series(1, 500)
             UNION ALL SELECT '00000000-0000-0000-0000-000000000000' UNION ALL SELECT 'ffffffff-ffff-ffff-ffff-ffffffffffff') AS g(u)",
        )
        .expect("uuids");
        let (uuids, texts) = (rows.0.expect("uuids"), rows.1.expect("texts"));
        for (u, t) in uuids.iter().zip(&texts) {
            assert_eq!(uuid_bytes(t), Some(**u), "{t}");
        }
        for bad in ["", "0000000000000000000000000000000000", "00000000-0000-0000-0000-00000000000g", "00000000-0000-0000-0000-00000000000A",
                    "00000000_0000-0000-0000-000000000000", "0000000-00000-0000-0000-000000000000"] {
            assert_eq!(uuid_bytes(bad), None, "{bad}");
        }
    }

    /// A leaf statement's parallel worker maps the session's shared copy of its ids: the keys it
    /// holds come back as ids, the others as keys; outside segplan's statements nothing is shared.
    #[pg_test]
    fn parallel_workers_turn_keys_into_ids_from_the_shared_copy() {
        use crate::pg::id_share;
        use segplan_core::idmap::IdMap;
        Spi::run(
            "CREATE TABLE upeople AS SELECT g, md5('p' || g)::uuid AS uid FROM generate_series(1, 3000) g;
             SET LOCAL force_parallel_mode = on;",
        )
        .unwrap();
        let keys = Spi::get_one::<Vec<pgrx::Uuid>>("SELECT array_agg(uid ORDER BY g) FROM upeople").unwrap().unwrap();
        // ids 1..=2000 known, keys of 2001..=3000 not
        let mut map = IdMap::default();
        for (g, k) in keys.iter().enumerate().take(2000) {
            map.insert(**k, g as u64 + 1);
        }
        let sql = "SELECT segplan._ids_agg(uid) FROM upeople WHERE g % 3 = 0";
        let plan = Spi::get_one::<pgrx::Json>(&format!("EXPLAIN (ANALYZE, FORMAT JSON) {sql}")).unwrap().unwrap();
        assert!(plan.0.to_string().contains("\"Workers Launched\":1"), "{}", plan.0);
        let run = || id_share::read(&Spi::get_one::<Vec<u8>>(sql).unwrap().unwrap(), false).expect("readable");
        let epoch = id_share::epoch();
        let setting = id_share::publish(&mut map, epoch);
        assert!(setting.is_some() && map.is_empty(), "the ids went into the copy");
        let (missing, ids) = id_share::with_setting(setting.clone(), run);
        assert_eq!(ids.iter().collect::<Vec<_>>(), (3..=2000).step_by(3).collect::<Vec<u64>>());
        let mut want: Vec<[u8; 16]> = (2001..=3000).filter(|g| g % 3 == 0).map(|g| *keys[g - 1]).collect();
        let mut missing = missing;
        missing.sort_unstable();
        want.sort_unstable();
        assert_eq!(missing, want);
        // ids learnt beside the copy: a few keep it (their keys come back as keys); 1/32 of it more
        // make another holding both, noted as the database's; a new epoch drops the copy
        let mut more = IdMap::default();
        let add = |map: &mut IdMap, from: u64, n: u64| (from..from + n).for_each(|i| map.insert((i as u128 + (1 << 100)).to_le_bytes(), i));
        add(&mut map, 1_000_000, 60);
        assert_eq!(id_share::publish(&mut map, epoch), setting);
        assert_eq!(map.len(), 60);
        add(&mut map, 2_000_000, 10);
        let merged = id_share::publish(&mut map, epoch);
        assert_ne!(merged, setting);
        assert!(map.is_empty());
        assert_eq!(id_share::with_copy(epoch, |c| c.map(|(t, max)| (t.entries().count(), max))), Some((2070, Some(2_000_009))));
        let noted = Spi::get_one::<String>("SELECT handle || ':' || (nonce::numeric + 18446744073709551616) % 18446744073709551616 FROM segplan.id_copies").unwrap();
        assert_eq!(noted.as_deref(), merged.as_ref().and_then(|m| m.to_str().ok()));
        add(&mut more, 1, 1);
        assert_ne!(id_share::publish(&mut more, id_share::epoch()), merged);
        assert!(!id_share::with_copy(epoch, |c| c.is_some()));
        // the setting is gone after the statement: every key comes back as a key
        let (missing, ids) = run();
        assert_eq!((missing.len(), ids.len()), (1000, 0));
        // a value naming no segment of segplan's maps nothing either
        Spi::run("SET LOCAL segplan._shared_ids = '12345:678'").unwrap();
        assert_eq!(run().0.len(), 1000);
    }

    #[pg_test]
    fn a_renamed_column_is_an_error_not_a_wrong_answer() {
        setup();
        Spi::run("ALTER TABLE clicks RENAME COLUMN at TO happened_at").unwrap();
        let r = std::panic::catch_unwind(|| count("clicks()"));
        assert!(r.is_err());
    }
}

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
