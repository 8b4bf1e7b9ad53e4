-- Contacts keyed by uuid or text: segplan numbers them (segplan.contact_ids) and the bitmap
-- engine answers as it does over integer keys. Every case of 01_rules_vs_sql, over the same data
-- keyed by uuid, against the same hand-written queries (within today's contacts: 12_segments
-- deleted two that still have orders), with both engines.
SET timezone = 'UTC';
CREATE SCHEMA u;
CREATE VIEW u.contacts WITH (security_invoker = true) AS SELECT md5('c' || id)::uuid AS uid, * FROM demo.contacts;
CREATE VIEW u.purchase_lines AS SELECT md5('c' || contact_id)::uuid AS uid, * FROM demo.purchase_lines;
CREATE VIEW u.message_activity AS SELECT md5('c' || contact_id)::uuid AS uid, * FROM demo.message_activity;
SELECT segplan.register_contacts('u.contacts', 'uid');
SELECT segplan.register_events('purchase_lines', 'u.purchase_lines', 'uid', 'ordered_at');
SELECT segplan.register_events('message_events', 'u.message_activity', 'uid', 'occurred_at');
SELECT count(*) AS numbered_before FROM segplan.contact_ids;

CREATE FUNCTION check_uuid_rule(rule text, hand text, as_of timestamptz DEFAULT '2026-11-01 00:00:00+00')
RETURNS TABLE (n bigint, same_count boolean, same_members boolean, same_bitmap boolean) LANGUAGE plpgsql AS $$
DECLARE hand_keys text[]; seg_keys text[]; bm_keys text[];
BEGIN
  EXECUTE format('SELECT coalesce(array_agg(k ORDER BY k), ''{}'') FROM (SELECT md5(''c'' || id)::uuid::text AS k FROM (%s) h(id) WHERE id IN (SELECT id FROM demo.contacts)) x', hand) INTO hand_keys;
  SELECT coalesce(array_agg(m ORDER BY m), '{}') INTO seg_keys FROM segplan.members_text(rule, as_of) m;
  SELECT coalesce(array_agg(m ORDER BY m), '{}') INTO bm_keys FROM segplan.keys_of(segplan.bitmap(rule, as_of)) m;
  n := segplan.count(rule, as_of);
  same_count := n = cardinality(hand_keys);
  same_members := seg_keys = hand_keys;
  same_bitmap := bm_keys = hand_keys;
  RETURN NEXT;
END $$;

SELECT c.name, r.n, r.same_count, r.same_members, r.same_bitmap FROM cases c, check_uuid_rule(c.rule, c.hand) r ORDER BY c.name;
-- the first count numbered every contact, once
SELECT count(*) AS numbered, count(DISTINCT id) AS distinct_ids, max(id) - min(id) + 1 AS id_span FROM segplan.contact_ids;
SELECT segplan.number_contacts() AS numbered_again;
SET segplan.engine = sql;
SELECT count(*) AS cases, count(*) FILTER (WHERE r.same_count AND r.same_members) AS agree FROM cases c, check_uuid_rule(c.rule, c.hand) r;
RESET segplan.engine;
SELECT * FROM segplan.count_steps($$country = 'FR' and email_opt_in and purchase_lines(within last 1 years)$$, '2026-11-01');

-- Leaf statements over uuid keys look ids up in their parallel workers, in a shared copy of the
-- ids this session knows (src/pg/id_share.rs): the same answers with every statement run by a
-- worker. The copy is named by a setting that only segplan's own statements carry.
SELECT segplan.cache_clear() >= 0 AS cleared;
SET force_parallel_mode = on;
SELECT count(*) AS cases, count(*) FILTER (WHERE r.same_count AND r.same_members AND r.same_bitmap) AS agree FROM cases c, check_uuid_rule(c.rule, c.hand) r;
RESET force_parallel_mode;
SELECT current_setting('segplan._shared_ids') = '' AS not_set_between_statements;
-- the copy is the database's: noted in segplan.id_copies for the next session (a second session
-- maps it while this one lives: tests/isolation/specs/id_copies.spec); once no session maps it,
-- the next session to read the ids makes and notes a new one, and counts the same
SELECT count(*) AS noted, max(keys) > 0 AS holds_keys FROM segplan.id_copies;
CREATE TABLE seen_copy AS SELECT handle, nonce FROM segplan.id_copies;
\c
SELECT segplan.count($$country = 'FR'$$) = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS same_count;
SELECT count(*) AS noted, bool_and((handle, nonce) NOT IN (SELECT handle, nonce FROM seen_copy)) AS a_new_copy FROM segplan.id_copies;
DROP TABLE seen_copy;
-- called directly, _ids_agg finds no copy: every key comes back as a key (8 + 16 per key + 8 bytes)
SELECT length(segplan._ids_agg(uid)) = 16 + 16 * count(*) AS keys_only FROM u.contacts;
-- _map_agg (how a session reads segplan.contact_ids) keeps 24 bytes per uuid key with an id;
-- anything else called with it is left out, not an error
SELECT length(segplan._map_agg(k, i)) AS kept_bytes FROM (VALUES ('not a uuid', 1::bigint), (NULL, 2),
  ('00000000-0000-0000-0000-000000000001', NULL), ('00000000-0000-0000-0000-000000000002', 3)) v(k, i);

-- bitmaps of ids combine with SQL operators; bitmap_of takes keys (unknown ones are no contact)
SELECT segplan.rb64_cardinality(segplan.bitmap($$country = 'FR'$$) OPERATOR(segplan.&) segplan.bitmap('email_opt_in')) =
       (SELECT count(*) FROM demo.contacts WHERE country = 'FR' AND email_opt_in) AS and_ok;
SELECT segplan.bitmap_of(ARRAY(SELECT uid::text FROM u.contacts WHERE country = 'FR') || ARRAY['00000000-0000-0000-0000-000000000000', NULL])
       OPERATOR(segplan.=) segplan.bitmap($$country = 'FR'$$) AS bitmap_of_ok;
SELECT segplan.bitmap_of('{}') AS empty;
-- a key the key's type cannot read: 22023 at its position (was uuid_in's 22P02, saying neither)
SELECT segplan.bitmap_of(ARRAY[NULL, 'not a uuid']);

-- A contact numbered in a transaction that rolls back loses its id: nothing this session keeps
-- may still use it (members_text turns ids back into keys).
INSERT INTO demo.contacts (id, first_name, country, created_at, email_opt_in, sms_opt_in, push_opt_in) VALUES (900001, 'Rolled', 'ZZ', '2026-01-01', true, false, false);
BEGIN;
SELECT segplan.count($$country = 'ZZ'$$) AS in_transaction;
ROLLBACK;
SELECT count(*) AS kept_id FROM segplan.contact_ids WHERE key = md5('c900001')::uuid::text;
SELECT m = md5('c900001')::uuid::text AS listed FROM segplan.members_text($$country = 'ZZ'$$) m;
SELECT count(*) AS numbered_after FROM segplan.contact_ids WHERE key = md5('c900001')::uuid::text;

-- Read-only or REPEATABLE READ transactions do not number: counts answer through one SQL
-- statement, a bitmap says what to do.
INSERT INTO demo.contacts (id, first_name, country, created_at, email_opt_in, sms_opt_in, push_opt_in) VALUES (900002, 'Later', 'ZZ', '2026-01-01', true, false, false);
BEGIN READ ONLY;
SELECT segplan.count($$country = 'ZZ'$$) AS read_only_count;
SELECT m FROM segplan.members_text($$country = 'ZZ'$$) m ORDER BY 1;
SAVEPOINT before;
SELECT segplan.bitmap($$country = 'ZZ'$$);
ROLLBACK TO before;
\set VERBOSITY sqlstate
SELECT segplan.bitmap($$country = 'ZZ'$$);
\set VERBOSITY default
ROLLBACK;
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT segplan.count($$country = 'ZZ'$$) AS repeatable_read_count;
ROLLBACK;
SELECT segplan.number_contacts() AS numbered_ahead;
BEGIN READ ONLY;
SELECT segplan.rb64_cardinality(segplan.bitmap($$country = 'ZZ'$$)) AS read_only_bitmap;
ROLLBACK;
DELETE FROM demo.contacts WHERE id IN (900001, 900002);

-- Contacts are numbered in the order a scan meets them (not in their keys' order), so a later
-- scan meets their ids one after another and its workers find them by reading on
-- (src/pg/id_share.rs). Twenty new contacts whose keys sort in another order than they are stored:
INSERT INTO demo.contacts (id, first_name, country, created_at, email_opt_in, sms_opt_in, push_opt_in)
SELECT 900100 + g, 'Order', 'ZY', '2026-01-01', true, false, false FROM generate_series(1, 20) g;
SELECT segplan.count($$country = 'ZY'$$) AS new_contacts;
SELECT array_agg(i.id ORDER BY c.ctid) = array_agg(i.id ORDER BY i.id) AS ids_in_scan_order,
       array_agg(i.id ORDER BY c.ctid) = array_agg(i.id ORDER BY i.key) AS ids_in_key_order
FROM demo.contacts c JOIN segplan.contact_ids i ON i.key = md5('c' || c.id)::uuid::text WHERE c.country = 'ZY';
DELETE FROM demo.contacts WHERE id > 900100 AND id <= 900120;

-- text keys of any content travel intact: empty, quotes and separators, multibyte, tabs, long
CREATE TABLE u.accounts (code text PRIMARY KEY, plan text);
INSERT INTO u.accounts VALUES ('', 'pro'), (E'\u00e4,"{}\\''', 'pro'), (repeat('x', 3000), 'pro'), ('日本', NULL), (E'tab\there', 'pro');
SELECT segplan.register_contacts('u.accounts', 'code');
SELECT left(m, 12) AS key, length(m) AS chars FROM segplan.members_text($$plan = 'pro'$$) m ORDER BY 1, 2;
SELECT segplan.count($$plan = 'pro'$$) AS pro, segplan.count($$not plan = 'pro'$$) AS not_pro,
       (SELECT count(*) FROM segplan.keys_of(segplan.bitmap($$plan = 'pro'$$)) k JOIN u.accounts a ON a.code = k) AS keys_back;
-- text keys are found in the session's shared copy by their fingerprint (the first half of their
-- SHA-256), by every parallel worker of a leaf: the same answers as the hand-written queries,
-- in this session and in the next
CREATE VIEW u.people WITH (security_invoker = true) AS SELECT 'c-' || id AS code, * FROM demo.contacts;
SELECT segplan.register_contacts('u.people', 'code');
SELECT segplan.number_contacts() > 0 AS numbered;
CREATE TABLE text_cases (rule text, hand text);
INSERT INTO text_cases VALUES
  ($$country = 'FR'$$, $$SELECT code FROM u.people WHERE country = 'FR'$$),
  ($$country = 'FR' and email_opt_in$$, $$SELECT code FROM u.people WHERE country = 'FR' AND email_opt_in$$),
  ($$not gender = 'F'$$, $$SELECT code FROM u.people WHERE gender IS DISTINCT FROM 'F'$$);
CREATE FUNCTION text_agree() RETURNS TABLE (rule text, same_count boolean, same_members boolean) LANGUAGE plpgsql AS $f$
DECLARE c record; hand text[];
BEGIN
  FOR c IN SELECT * FROM text_cases LOOP
    EXECUTE format('SELECT array_agg(k ORDER BY k) FROM (%s) h(k)', c.hand) INTO hand;
    rule := c.rule;
    same_count := segplan.count(c.rule) = cardinality(hand);
    same_members := (SELECT array_agg(m ORDER BY m) FROM segplan.members_text(c.rule) m) = hand;
    RETURN NEXT;
  END LOOP;
END $f$;
SELECT segplan.cache_clear() >= 0 AS cleared;
-- workers build partial states (ids found and keys not found), which the leader combines
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
EXPLAIN (COSTS OFF) SELECT segplan._keys_agg(code) FROM u.people WHERE country = 'FR';
SELECT * FROM text_agree();
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
SELECT count(*) AS noted FROM segplan.id_copies;
\c
SELECT segplan.cache_clear() >= 0 AS cleared;
SET force_parallel_mode = on;
SELECT * FROM text_agree();
RESET force_parallel_mode;
DROP FUNCTION text_agree();
DROP TABLE text_cases;
SELECT segplan.register_contacts('u.contacts', 'uid');

-- stored segments over uuid keys: members kept as ids (history counts them), keys back through keys_of
SELECT segplan.save_segment('uuid_fr', $$country = 'FR'$$) > 0 AS saved;
SELECT segplan.refresh_segment('uuid_fr') = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS refreshed;
SELECT size = entered AND exited = 0 AS history_ok FROM segplan.segment_history('uuid_fr');
SELECT segplan.segment_members('uuid_fr', false);
SELECT (SELECT count(*) FROM segplan.segment_members_text('uuid_fr', false) k JOIN u.contacts c ON c.uid::text = k) AS stored_keys,
       (SELECT count(*) FROM segplan.segment_members_text('uuid_fr') k JOIN u.contacts c ON c.uid::text = k) AS live_keys,
       (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS expected;
SELECT count(*) = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS keys_back
FROM segplan.keys_of((SELECT members::segplan.roaringbitmap64 FROM segplan.segment WHERE name = 'uuid_fr'));
SELECT segplan.drop_segment('uuid_fr');

-- plan runs keep contacts by bigint key: over uuid keys a run fails and says why
SELECT segplan.run_plan(segplan.create_plan('uuid_plan',
  '{"rule": {"attr": "country", "op": "eq", "value": "FR"}, "channel": "email", "schedule": {"once": "2026-03-24 09:00", "time_zone": "UTC"}}'),
  '2026-03-24 09:00+00') > 0 AS ran;
SELECT r.status, r.error FROM segplan.plan_runs r JOIN segplan.plans p ON p.id = r.plan_id WHERE p.name = 'uuid_plan';
SELECT segplan.drop_plan(id) FROM segplan.plans WHERE name = 'uuid_plan';

-- The mapping is segplan's alone: keys are customer data. Row-level security on the contacts:
-- each role's bitmaps, keys_of and bitmap_of only ever show its own contacts.
CREATE ROLE seg_fr;
CREATE ROLE seg_it;
GRANT segplan_analyst TO seg_fr, seg_it;
GRANT USAGE ON SCHEMA demo, u TO seg_fr, seg_it;
GRANT SELECT ON demo.contacts, u.contacts TO seg_fr, seg_it;
ALTER TABLE demo.contacts ENABLE ROW LEVEL SECURITY;
CREATE POLICY fr ON demo.contacts FOR SELECT TO seg_fr USING (country = 'FR');
CREATE POLICY it ON demo.contacts FOR SELECT TO seg_it USING (country = 'IT');
SET ROLE seg_fr;
SELECT * FROM segplan.contact_ids LIMIT 1;
SHOW segplan._shared_ids;
SELECT segplan.count('email_opt_in') AS fr_count, (SELECT count(*) FROM u.contacts WHERE email_opt_in) AS fr_by_hand;
CREATE TEMP TABLE fr_bitmap AS SELECT segplan.bitmap('email_opt_in') AS b;
SELECT count(*) AS fr_keys FROM segplan.keys_of((SELECT b FROM fr_bitmap));
RESET ROLE;
GRANT SELECT ON fr_bitmap TO seg_it;
SET ROLE seg_it;
SELECT segplan.count('email_opt_in') AS it_count, (SELECT count(*) FROM u.contacts WHERE email_opt_in) AS it_by_hand;
-- another brand's bitmap or keys: nothing comes back
SELECT count(*) AS fr_keys_seen_by_it FROM segplan.keys_of((SELECT b FROM fr_bitmap));
SELECT segplan.bitmap_of(ARRAY(SELECT md5('c' || id)::uuid::text FROM generate_series(1, 3000) id)) OPERATOR(segplan.=) segplan.bitmap($$country = 'IT'$$) AS only_its_own;
RESET ROLE;
DROP TABLE fr_bitmap;
DROP POLICY fr ON demo.contacts;
DROP POLICY it ON demo.contacts;
ALTER TABLE demo.contacts DISABLE ROW LEVEL SECURITY;
DROP OWNED BY seg_fr, seg_it;
DROP ROLE seg_fr, seg_it;
-- Many contacts without an id (a table just loaded, or counted for the first time) are numbered
-- all together, in the order a serial scan of the contacts meets them: not in the order of the
-- statement that met them, whose parallel workers interleave their pages. Later scans find a
-- row's id next to the previous row's (src/pg/id_share.rs) only in scan order.
CREATE TABLE u.many AS SELECT md5('m' || g)::uuid AS uid, g % 3 = 0 AS third FROM generate_series(1, 200000) g;
ANALYZE u.many;
SELECT segplan.register_contacts('u.many', 'uid');
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2; SET parallel_leader_participation = off;
SELECT segplan.count('third') AS thirds;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather; RESET parallel_leader_participation;
SELECT count(*) AS numbered, count(*) FILTER (WHERE d <> 1) AS out_of_scan_order
FROM (SELECT m.id - lag(m.id) OVER (ORDER BY c.ctid) AS d FROM u.many c JOIN segplan.contact_ids m ON m.key = c.uid::text) x;
-- counted again in two workers sharing the session's ids: each meets a new run of ids at every
-- chunk of pages it takes (looked up at once, then read on from there); the same contacts
SELECT segplan.count('third') AS thirds_again;
SELECT segplan.cache_clear() >= 0 AS cleared;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2; SET parallel_leader_participation = off;
SELECT segplan.bitmap('third') OPERATOR(segplan.=) segplan.bitmap_of(ARRAY(SELECT uid::text FROM u.many WHERE third)) AS same_contacts,
       segplan.bitmap('not third') OPERATOR(segplan.=) segplan.bitmap_of(ARRAY(SELECT uid::text FROM u.many WHERE NOT third)) AS same_others;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size;
RESET max_parallel_workers_per_gather; RESET parallel_leader_participation;
DROP TABLE u.many;
SELECT segplan.register_contacts('demo.contacts', 'id');
SELECT segplan.register_events('purchase_lines', 'demo.purchase_lines', 'contact_id', 'ordered_at');
SELECT segplan.register_events('message_events', 'demo.message_activity', 'contact_id', 'occurred_at');
