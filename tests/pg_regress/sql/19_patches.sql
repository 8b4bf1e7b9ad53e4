-- Patching: a cached leaf bitmap that missed writes to registered tables is brought up to date by
-- evaluating its condition again for the contacts those writes touched (keys the change-log
-- triggers logged); every answer equals the one-statement SQL engine's, write after write.
SET timezone = 'UTC';
SET client_min_messages = warning;
CREATE SCHEMA patch;
CREATE TABLE patch.people (id bigint PRIMARY KEY, country text, years int);
CREATE TABLE patch.clicks (person integer, at timestamptz, amount numeric, visit bigint);
CREATE INDEX ON patch.clicks (person);
-- 1000 people (every 7th without a country), 6000 clicks (every 50th without a person, some of
-- people that do not exist)
INSERT INTO patch.people SELECT g, CASE WHEN g % 7 = 0 THEN NULL ELSE (ARRAY['FR', 'DE', 'IT'])[1 + g % 3] END, 18 + g % 60
FROM generate_series(1, 1000) g;
INSERT INTO patch.clicks SELECT CASE WHEN g % 50 = 0 THEN NULL ELSE 1 + (g * 37) % 1010 END,
  '2026-01-01'::timestamptz + (g % 300) * interval '1 day' + (g % 24) * interval '1 hour', g % 100, g / 3
FROM generate_series(1, 6000) g;
-- a writer without any privilege on segplan (granted now: a grant changes the table's definition,
-- after which cached bitmaps over it are built again)
CREATE ROLE patch_writer;
GRANT USAGE ON SCHEMA patch TO patch_writer;
GRANT INSERT, UPDATE ON patch.clicks TO patch_writer;
SELECT segplan.register_contacts('patch.people', 'id');
SELECT segplan.register_events('pclicks', 'patch.clicks', 'person', 'at');
RESET client_min_messages;
-- registered tables get the keyed triggers (insert, update, delete) and segplan_changes for truncate
SELECT tgrelid::regclass::text AS tracked, tgname, tgtype & 60 AS events, tgenabled FROM pg_trigger
WHERE tgrelid IN ('patch.people'::regclass, 'patch.clicks'::regclass) ORDER BY 1, 2;

CREATE TABLE patch.rules (rule text);
INSERT INTO patch.rules VALUES
  ($$country = 'FR'$$),
  ($$not country = 'FR' and years >= 40$$),
  ($$pclicks(count >= 6)$$),
  ($$pclicks(count <= 1)$$),
  ($$no pclicks(within last 30 days)$$),
  ($$pclicks(where amount > 50, count >= 2) and country in ('FR', 'DE')$$),
  ($$pclicks(sum(amount) >= 300)$$),
  ($$ratio(pclicks, per visit, match amount >= 50) >= 0.5$$),
  ($$sequence(pclicks(where amount < 10), then pclicks(where amount > 90), gap > 20 days)$$),
  ($$sequence(pclicks(where amount < 10), then pclicks(where amount > 90), gap < 5 days)$$);

-- every rule's members from the cached bitmaps (patched as needed) and from the SQL engine
CREATE FUNCTION patch.check() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  r text;
  cached text[];
  fresh text[];
  differ text[] := '{}';
BEGIN
  FOR r IN SELECT p.rule FROM patch.rules p LOOP
    cached := ARRAY(SELECT m FROM segplan.members_text(r, '2026-11-01') m ORDER BY m);
    PERFORM set_config('segplan.engine', 'sql', true);
    fresh := ARRAY(SELECT m FROM segplan.members_text(r, '2026-11-01') m ORDER BY m);
    PERFORM set_config('segplan.engine', 'bitmap', true);
    IF cached IS DISTINCT FROM fresh THEN
      differ := differ || r;
    END IF;
  END LOOP;
  RETURN CASE WHEN differ = '{}' THEN 'all equal' ELSE 'differ: ' || array_to_string(differ, '; ') END;
END
$$;
-- how this session's cached bitmaps came to be
CREATE FUNCTION patch.origins() RETURNS text LANGUAGE sql AS $$
  SELECT string_agg(origin || ' ' || n, ', ' ORDER BY origin) FROM (SELECT origin, count(*) AS n FROM segplan.cache_stats() GROUP BY 1) x
$$;

SELECT segplan.cache_clear() >= 0 AS cleared;
SELECT patch.check() AS built, patch.origins();
SELECT patch.check() AS cached, patch.origins();

-- new clicks, some of people who do not exist (yet)
INSERT INTO patch.clicks SELECT p, '2026-10-20', 95, 5000 + p FROM generate_series(1, 30) p, generate_series(1, 4);
INSERT INTO patch.clicks VALUES (2000, '2026-10-25', 5, 9000), (2000, '2026-10-26', 99, 9001);
SELECT patch.check() AS after_insert, patch.origins();
-- changed attributes, to and from NULL
UPDATE patch.people SET country = 'FR' WHERE id IN (2, 7, 14);
UPDATE patch.people SET country = NULL, years = 70 WHERE id IN (3, 6);
SELECT patch.check() AS after_update, patch.origins();
-- clicks moved from one person to another: both are touched
UPDATE patch.clicks SET person = 500 WHERE person = 501;
UPDATE patch.clicks SET person = NULL WHERE person = 502;
UPDATE patch.clicks SET person = 503 WHERE person IS NULL AND visit < 100;
SELECT patch.check() AS after_move, patch.origins();
-- deleted people and clicks; a new person for the clicks of 2000
DELETE FROM patch.people WHERE id IN (10, 11);
DELETE FROM patch.clicks WHERE person IN (12, 13) OR amount = 42;
INSERT INTO patch.people VALUES (2000, 'FR', 30);
SELECT patch.check() AS after_delete, patch.origins();
-- several statements in one transaction, one of them rolled back to a savepoint
BEGIN;
UPDATE patch.people SET years = 45 WHERE id BETWEEN 100 AND 120;
SAVEPOINT s;
DELETE FROM patch.people WHERE id BETWEEN 121 AND 900;
ROLLBACK TO SAVEPOINT s;
INSERT INTO patch.clicks SELECT 130, '2026-10-01', a, 7000 + a FROM generate_series(1, 10) a;
COMMIT;
SELECT patch.check() AS after_transaction, patch.origins();
-- an upsert and a MERGE (each fires the insert and update triggers, MERGE the delete one too)
INSERT INTO patch.people VALUES (4, 'FR', 33), (2001, 'DE', 40) ON CONFLICT (id) DO UPDATE SET country = excluded.country;
MERGE INTO patch.clicks c USING (VALUES (15, 99), (2001, 98)) AS v(person, amount) ON c.person = v.person AND c.amount < 10
WHEN MATCHED THEN DELETE WHEN NOT MATCHED THEN INSERT VALUES (v.person, '2026-10-15', v.amount, 8000 + v.person);
SELECT patch.check() AS after_upsert_and_merge, patch.origins();
-- a rolled-back transaction changes nothing: no patch, the bitmaps are fresh
BEGIN;
DELETE FROM patch.people;
ROLLBACK;
SELECT patch.check() AS after_rollback, patch.origins();
SELECT sum(hits) > 0 AS served_from_cache FROM segplan.cache_stats();
-- a statement that touches no row
UPDATE patch.people SET years = 1 WHERE id < 0;
SELECT patch.check() AS after_nothing, patch.origins();

-- a writer without any privilege on segplan: the triggers log its keys all the same
SET ROLE patch_writer;
INSERT INTO patch.clicks VALUES (600, '2026-10-30', 77, 9100);
-- nor may it read the keys writes logged (of rows it may not be allowed to read); oids and
-- transaction ids it may
SELECT count(*) > 0 AS reads_the_log FROM segplan.changes;
SELECT keys FROM segplan.changes;
RESET ROLE;
SELECT patch.check() AS after_other_writer, patch.origins();

-- more than 10000 rows in a transaction: the table changed as a whole, the bitmaps over it are
-- built again (the others are patched)
INSERT INTO patch.clicks SELECT 1 + g % 900, '2026-09-01', 1, 10000 + g FROM generate_series(1, 10001) g;
UPDATE patch.people SET country = 'IT' WHERE id = 20;
SELECT patch.check() AS after_bulk, patch.origins();
SELECT condition, origin FROM segplan.cache_stats() ORDER BY condition;
-- a truncate, too
TRUNCATE patch.clicks;
SELECT patch.check() AS after_truncate, patch.origins();

-- segplan.patch_limit: the most contacts a bitmap is patched for (0: never)
INSERT INTO patch.clicks SELECT p, '2026-10-20', 60, p FROM generate_series(1, 5) p;
SET segplan.patch_limit = 4;
SELECT patch.check() AS five_touched_limit_4, patch.origins();
INSERT INTO patch.clicks VALUES (7, '2026-10-21', 60, 7);
SET segplan.patch_limit = 0;
SELECT patch.check() AS limit_0, patch.origins();
RESET segplan.patch_limit;
INSERT INTO patch.clicks VALUES (9, '2026-10-21', 60, 9);
SELECT patch.check() AS default_limit, patch.origins();

-- a view whose rows each come from one row of the table writes log (joined with a lookup table)
-- is patched after writes to that table, built again after one to the lookup table; a view that
-- groups rows is never patched (a contact's row there sums many)
CREATE TABLE patch.kinds (id int PRIMARY KEY, kind text);
INSERT INTO patch.kinds VALUES (0, 'low'), (1, 'high');
CREATE VIEW patch.click_kinds AS SELECT c.person AS who, c.at, c.amount, k.kind FROM patch.clicks c LEFT JOIN patch.kinds k ON k.id = (c.amount > 50)::int;
CREATE VIEW patch.click_sums AS SELECT person, sum(amount) AS total, max(at) AS at FROM patch.clicks GROUP BY person;
SET client_min_messages = warning;
SELECT segplan.register_events('pkinds', 'patch.click_kinds', 'who', 'at');
SELECT segplan.register_events('psums', 'patch.click_sums', 'person', 'at');
RESET client_min_messages;
-- the keyed triggers log both registrations' columns of patch.clicks; the lookup table is tracked as a whole
SELECT tgrelid::regclass::text AS tracked, tgname, regexp_replace(pg_get_triggerdef(oid), '.* EXECUTE FUNCTION ', '') AS logs FROM pg_trigger
WHERE tgrelid IN ('patch.clicks'::regclass, 'patch.kinds'::regclass) ORDER BY 1, 2;
INSERT INTO patch.rules VALUES ($$pkinds(where kind = 'high', count >= 2)$$), ($$psums(where total > 100)$$);
SELECT patch.check() AS views_built;
INSERT INTO patch.clicks SELECT p, '2026-10-23', 99, p FROM generate_series(1, 40) p;
SELECT patch.check() AS views_after_write;
SELECT condition, origin FROM segplan.cache_stats() WHERE condition ~ '^p(kinds|sums)' ORDER BY condition;
UPDATE patch.kinds SET kind = 'HIGH' WHERE id = 1;
SELECT patch.check() AS views_after_lookup_write;
SELECT condition, origin FROM segplan.cache_stats() WHERE condition ~ '^p(kinds|sums)' ORDER BY condition;

-- which views are patched: for each shape, whether registering it gives its table the keyed triggers
CREATE TABLE patch.visits (person bigint, at timestamptz, place int);
CREATE FUNCTION patch.keyed_by(view_sql text) RETURNS text LANGUAGE plpgsql AS $f$
DECLARE out text;
BEGIN
  EXECUTE 'CREATE VIEW patch.shape AS ' || view_sql;
  PERFORM set_config('client_min_messages', 'warning', true);
  PERFORM segplan.register_events('shape', 'patch.shape', 'who', 'at');
  SELECT string_agg(regexp_replace(pg_get_triggerdef(oid), '.* EXECUTE FUNCTION segplan._note_keys', 'keyed by '), ', ') INTO out
  FROM pg_trigger WHERE tgrelid = 'patch.visits'::regclass AND tgname = 'segplan_keys_insert';
  PERFORM segplan.unregister_events('shape');
  DROP VIEW patch.shape;
  DROP TRIGGER IF EXISTS segplan_keys_insert ON patch.visits;
  DROP TRIGGER IF EXISTS segplan_keys_update ON patch.visits;
  DROP TRIGGER IF EXISTS segplan_keys_delete ON patch.visits;
  DROP TRIGGER IF EXISTS segplan_changes ON patch.visits;
  RETURN coalesce(out, 'as a whole');
END
$f$;
SELECT v AS view, patch.keyed_by(v) AS writes_to_visits_logged FROM unnest(ARRAY[
  'SELECT person AS who, at FROM patch.visits',
  'SELECT v.person AS who, v.at, k.kind FROM patch.visits v JOIN patch.kinds k ON k.id = v.place WHERE v.place > 0',
  'SELECT person + 0 AS who, at FROM patch.visits',
  'SELECT DISTINCT person AS who, at FROM patch.visits',
  'SELECT person AS who, max(at) AS at FROM patch.visits GROUP BY person',
  'SELECT person AS who, at FROM patch.visits UNION ALL SELECT person, at FROM patch.visits',
  'SELECT a.person AS who, b.at FROM patch.visits a JOIN patch.visits b ON b.place = a.place',
  'SELECT person AS who, at FROM patch.visits WHERE place IN (SELECT id FROM patch.kinds)',
  'SELECT person AS who, at FROM patch.visits LIMIT 10',
  'SELECT person AS who, at, row_number() OVER () FROM patch.visits',
  'SELECT who, at FROM (SELECT person AS who, at FROM patch.visits) s']) AS v;

-- a partitioned table: the keyed triggers on the table written to (rows routed to partitions are in
-- its transition tables), each partition tracked as a whole for writes that name it directly;
-- every table, partitions included, has segplan_replica for a logical replication subscriber
-- (enabled for replication only: it never fires here)
CREATE TABLE patch.taps (person bigint, at timestamptz) PARTITION BY RANGE (at);
CREATE TABLE patch.taps_2025 PARTITION OF patch.taps FOR VALUES FROM ('2025-01-01') TO ('2026-01-01');
CREATE TABLE patch.taps_2026 PARTITION OF patch.taps FOR VALUES FROM ('2026-01-01') TO ('2027-01-01');
INSERT INTO patch.taps SELECT 1 + g % 300, '2025-06-01'::timestamptz + g * interval '1 hour' FROM generate_series(1, 9000) g;
SET client_min_messages = warning;
SELECT segplan.register_events('ptaps', 'patch.taps', 'person', 'at');
RESET client_min_messages;
SELECT tgrelid::regclass::text AS tracked, tgname, tgtype & 61 AS events, tgenabled FROM pg_trigger
WHERE tgrelid::regclass::text ~ '^patch\.(taps|people)' AND tgname ~ '^segplan' ORDER BY 1, 2;
INSERT INTO patch.rules VALUES ($$ptaps(count >= 30)$$), ($$ptaps(within from '2026-01-01' to '2026-03-01')$$);
SELECT patch.check() AS partitions_built;
INSERT INTO patch.taps SELECT p, '2026-02-01' FROM generate_series(1, 10) p;
SELECT patch.check() AS after_write_through_the_parent;
SELECT condition, origin FROM segplan.cache_stats() WHERE condition ~ '^ptaps' ORDER BY condition;
INSERT INTO patch.taps_2026 VALUES (11, '2026-02-02');
SELECT patch.check() AS after_write_to_a_partition;
SELECT condition, origin FROM segplan.cache_stats() WHERE condition ~ '^ptaps' ORDER BY condition;
-- as a logical replication apply worker writes (session_replication_role = replica; its statement
-- triggers do not fire there, segplan_replica does): the table changed as a whole
SET session_replication_role = replica;
UPDATE patch.people SET country = 'DE' WHERE id = 30;
RESET session_replication_role;
SELECT count(*) FILTER (WHERE keys IS NULL) AS logged_as_a_whole FROM segplan.changes
WHERE relid = 'patch.people'::regclass AND xid = (SELECT max(xid) FROM segplan.changes WHERE relid = 'patch.people'::regclass);
SELECT patch.check() AS after_replicated_write;
SELECT condition, origin FROM segplan.cache_stats() WHERE condition IN ('country = ''FR''', 'all contacts') ORDER BY condition;

-- the change log is pruned as the shared cache is trimmed (at a session's first write to it and
-- after every 1/64 of its size): up to the oldest running transaction, but not past what the shared
-- cache built or patched within 10 minutes, so the bitmaps in use stay usable: the next write is
-- patched in
-- (here with 5 seconds: the bitmaps patched just now are kept usable, the rest of the log goes)
SELECT pg_sleep(5.1);
INSERT INTO patch.clicks VALUES (2, '2026-10-28', 70, 2);
SELECT patch.check() AS patched_before_pruning;
CREATE TEMP TABLE log_before AS SELECT count(*) AS n FROM segplan.changes;
DO $$ BEGIN LOOP EXIT WHEN segplan._prune_changes('5 seconds') = 0; END LOOP; END $$;
SELECT (SELECT count(*) FROM segplan.changes) < (SELECT n FROM log_before) AS pruned,
       (SELECT count(*) FROM segplan.changes WHERE xid < (SELECT xid FROM segplan.cache_horizon)) AS below_the_horizon;
SELECT (SELECT xid FROM segplan.cache_horizon) <= (SELECT min(pg_snapshot_xmin(snapshot::pg_snapshot)) FROM segplan.leaf_cache
  WHERE built_at > clock_timestamp() - interval '5 seconds') AS horizon_below_the_recent_bitmaps;
INSERT INTO patch.clicks VALUES (3, '2026-10-28', 70, 3);
SELECT patch.check() AS after_pruning;
SELECT condition, origin FROM segplan.cache_stats() WHERE condition ~ '^pclicks' ORDER BY condition;

-- a transaction's own writes are counted inside it and never kept, whatever is cached (with
-- nothing cached the change log was read from nowhere, missed them and kept what it built: after a
-- rollback the count still held the rolled-back writes)
SELECT segplan.cache_clear() >= 0 AS cleared;
BEGIN;
UPDATE patch.people SET country = 'FR' WHERE id IN (SELECT id FROM patch.people WHERE country = 'DE' ORDER BY id LIMIT 3);
SELECT segplan.count($$country = 'FR'$$) = (SELECT count(*) FROM patch.people WHERE country = 'FR') AS inside_ok;
ROLLBACK;
SELECT segplan.count($$country = 'FR'$$) = (SELECT count(*) FROM patch.people WHERE country = 'FR') AS after_rollback_ok;

-- uuid and text contact keys: writes log the keys' text, a patch evaluates the touched contacts
-- again by key and takes their ids (segplan.contact_ids) out of the cached bitmap; a new contact is
-- numbered by the patch of all contacts, as a build would number it
CREATE TABLE patch.upeople (id uuid PRIMARY KEY, country text, years int);
CREATE TABLE patch.uclicks (person uuid, at timestamptz, amount numeric, visit bigint);
CREATE INDEX ON patch.uclicks (person);
INSERT INTO patch.upeople SELECT md5(id::text)::uuid, country, years FROM patch.people;
INSERT INTO patch.uclicks SELECT md5(person::text)::uuid, at, amount, visit FROM patch.clicks;
CREATE TABLE patch.tpeople (id varchar(20) PRIMARY KEY, country text, years int);
CREATE TABLE patch.tclicks (person varchar(20), at timestamptz, amount numeric, visit bigint);
CREATE INDEX ON patch.tclicks (person);
INSERT INTO patch.tpeople SELECT 'p-' || id, country, years FROM patch.people;
INSERT INTO patch.tclicks SELECT 'p-' || person, at, amount, visit FROM patch.clicks;
DELETE FROM patch.rules WHERE rule ~ 'ptaps|pkinds|psums';
CREATE FUNCTION patch.with_keys(people regclass, clicks regclass) RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
  SET LOCAL client_min_messages = warning;
  PERFORM segplan.register_contacts(people::text, 'id');
  PERFORM segplan.register_events('pclicks', clicks::text, 'person', 'at');
  RETURN segplan.cache_clear() >= 0;
END
$$;
SELECT patch.with_keys('patch.upeople', 'patch.uclicks') AS uuid_keys;
SELECT patch.check() AS uuid_built;
INSERT INTO patch.uclicks SELECT md5(p::text)::uuid, '2026-10-20', 95, 6000 + p FROM generate_series(1, 20) p, generate_series(1, 4);
UPDATE patch.upeople SET country = 'FR' WHERE id IN (SELECT md5(g::text)::uuid FROM generate_series(40, 45) g);
UPDATE patch.upeople SET country = 'DE' WHERE id IN (SELECT id FROM patch.upeople WHERE country = 'FR' ORDER BY id LIMIT 4);
DELETE FROM patch.uclicks WHERE person IN (SELECT person FROM patch.uclicks GROUP BY 1 HAVING count(*) >= 6 ORDER BY 1 LIMIT 3);
UPDATE patch.uclicks SET person = md5('61')::uuid WHERE person = md5('60')::uuid;
DELETE FROM patch.uclicks WHERE person = md5('50')::uuid;
INSERT INTO patch.upeople VALUES (md5('5000')::uuid, 'FR', 33);
INSERT INTO patch.uclicks VALUES (md5('5000')::uuid, '2026-10-21', 99, 9999), (md5('5000')::uuid, '2026-10-22', 3, 9998);
-- (a statement that numbers contacts keeps nothing until it commits: a rollback takes the ids away)
SELECT segplan.count($$country = 'FR'$$) = (SELECT count(*) FROM patch.upeople WHERE country = 'FR') AS numbered_by_a_patch;
SELECT condition, origin FROM segplan.cache_stats();
SELECT patch.check() AS uuid_after_writes, patch.origins();
SELECT count(*) FILTER (WHERE text_keys <> '{}') > 0 AS uuid_keys_logged FROM segplan.changes WHERE relid = 'patch.uclicks'::regclass;
SELECT patch.with_keys('patch.tpeople', 'patch.tclicks') AS text_keys;
SELECT patch.check() AS text_built;
INSERT INTO patch.tclicks SELECT 'p-' || p, '2026-10-20', 95, 6000 + p FROM generate_series(1, 20) p, generate_series(1, 4);
UPDATE patch.tpeople SET country = NULL WHERE id IN (SELECT id FROM patch.tpeople WHERE country = 'FR' ORDER BY id LIMIT 4);
DELETE FROM patch.tclicks WHERE person IN (SELECT person FROM patch.tclicks GROUP BY 1 HAVING count(*) >= 6 ORDER BY 1 LIMIT 3);
UPDATE patch.tclicks SET person = 'p-81' WHERE person = 'p-80';
INSERT INTO patch.tpeople VALUES ('p-new', 'DE', 50);
INSERT INTO patch.tclicks VALUES ('p-new', '2026-10-21', 99, 9999);
SELECT segplan.count($$country = 'DE'$$) = (SELECT count(*) FROM patch.tpeople WHERE country = 'DE') AS numbered_by_a_patch;
SELECT patch.check() AS text_after_writes, patch.origins();

SET client_min_messages = warning;
SELECT segplan.unregister_events('ptaps');
SELECT segplan.unregister_events('pkinds');
SELECT segplan.unregister_events('psums');
SELECT segplan.unregister_events('pclicks');
SELECT segplan.register_contacts('demo.contacts', 'id');
DROP SCHEMA patch CASCADE;
DROP OWNED BY patch_writer;
DROP ROLE patch_writer;
RESET client_min_messages;
