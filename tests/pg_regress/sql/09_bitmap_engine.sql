-- The bitmap engine: one bitmap per leaf condition, cached in the session, fresh after every
-- committed change, never shared across roles or row-level security contexts.
SET timezone = 'UTC';
SET client_min_messages = warning;
SELECT segplan.register_contacts('demo.contacts', 'id');
SELECT segplan.register_events('purchase_lines', 'demo.purchase_lines', 'contact_id', 'ordered_at');
RESET client_min_messages;
-- the change-log trigger sits on every table the sources read (the view is expanded)
SELECT tgrelid::regclass::text AS tracked, tgenabled FROM pg_trigger WHERE tgname = 'segplan_changes' AND tgrelid::regclass::text LIKE 'demo.%' ORDER BY 1;

-- bitmap(rule) holds exactly the members
SELECT segplan.rb64_to_array(segplan.bitmap($$country = 'FR' and purchase_lines(within last 90 days)$$, '2026-11-01'))
     = (SELECT array_agg(m ORDER BY m) FROM segplan.members($$country = 'FR' and purchase_lines(within last 90 days)$$, '2026-11-01') m) AS bitmap_is_members;
SELECT segplan.bitmap('{"attr": "country", "op": "eq", "value": "XX"}'::jsonb) AS empty_bitmap;

-- the second count is served from the cache: each leaf (and all contacts) built once
SELECT segplan.cache_clear() >= 0 AS cleared;
SELECT segplan.count($$country = 'FR' and purchase_lines(within last 90 days)$$, '2026-11-01') AS first;
SELECT segplan.count($$country = 'FR' and purchase_lines(within last 90 days)$$, '2026-11-01') AS second;
SELECT condition, contacts, hits FROM segplan.cache_stats() ORDER BY condition;
-- "all contacts" is built only when an answer needs it: not for conditions on the contacts' own
-- columns joined by and/or, but for a `not` (all contacts minus) or a condition on events
SELECT segplan.cache_clear() >= 0 AS cleared;
SELECT segplan.count($$country = 'FR' or (country = 'IT' and email_opt_in)$$)
     = (SELECT count(*) FROM demo.contacts WHERE country = 'FR' OR (country = 'IT' AND email_opt_in)) AS attributes_ok;
SELECT count(*) FILTER (WHERE condition = 'all contacts') AS all_contacts_built FROM segplan.cache_stats();
SELECT segplan.count($$email_opt_in and not country = 'FR'$$)
     = (SELECT count(*) FROM demo.contacts WHERE email_opt_in AND country IS DISTINCT FROM 'FR') AS negation_ok;
SELECT count(*) FILTER (WHERE condition = 'all contacts') AS all_contacts_built FROM segplan.cache_stats();
-- a relative window at another as_of is another bitmap
SELECT segplan.count($$purchase_lines(within last 90 days)$$, '2026-06-01') AS june;
SELECT count(*) AS entries FROM segplan.cache_stats();

-- a committed change is counted at once
CREATE FUNCTION fr() RETURNS bigint LANGUAGE sql AS $$ SELECT segplan.count($q$country = 'FR'$q$) $$;
SELECT fr() = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS before_ok;
INSERT INTO demo.contacts (id, country, created_at, email_opt_in, sms_opt_in, push_opt_in)
VALUES (900001, 'FR', '2026-01-01', true, false, false);
SELECT fr() = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS after_insert_ok;
-- this transaction's own writes are counted; after a rollback they are gone again
BEGIN;
UPDATE demo.contacts SET country = 'DE' WHERE id = 900001;
SELECT fr() = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS own_write_ok;
ROLLBACK;
SELECT fr() = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS after_rollback_ok;
DELETE FROM demo.contacts WHERE id = 900001;
SELECT fr() = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS after_delete_ok;
TRUNCATE segplan.changes;  -- even with the log emptied behind its back, a changed file is seen
SELECT fr() AS cached_fr;

-- a view redefined in place is a new definition, not a stale bitmap
CREATE VIEW big_lines AS SELECT * FROM demo.purchase_lines WHERE line_total > 100;
SELECT segplan.register_events('big_lines', 'big_lines', 'contact_id', 'ordered_at');
SELECT segplan.count('big_lines()') = (SELECT count(DISTINCT contact_id) FROM demo.purchase_lines WHERE line_total > 100) AS view_ok;
CREATE OR REPLACE VIEW big_lines AS SELECT * FROM demo.purchase_lines WHERE line_total > 200;
SELECT segplan.count('big_lines()') = (SELECT count(DISTINCT contact_id) FROM demo.purchase_lines WHERE line_total > 200) AS replaced_view_ok;

-- a materialized view cannot be tracked: a WARNING, correct answers, nothing cached
CREATE MATERIALIZED VIEW order_days AS SELECT contact_id, ordered_at FROM demo.orders;
SELECT segplan.register_events('order_days', 'order_days', 'contact_id', 'ordered_at');
SELECT segplan.count('order_days()') = (SELECT count(DISTINCT contact_id) FROM demo.orders) AS matview_ok;
SELECT count(*) AS cached_order_days FROM segplan.cache_stats() WHERE condition LIKE 'order_days%';

-- row-level security that reads a setting: each context its own answer, in either order
-- (answers under RLS are never cached)
CREATE ROLE seg_brand;
GRANT USAGE ON SCHEMA demo TO seg_brand;
-- segplan's functions are for its roles (sql/security.sql); the data is the customer's to grant
GRANT segplan_analyst TO seg_brand;
GRANT SELECT ON segplan.contact_source, segplan.event_sources TO seg_brand;
GRANT SELECT ON demo.contacts TO seg_brand;
ALTER TABLE demo.contacts ENABLE ROW LEVEL SECURITY;
CREATE POLICY by_country ON demo.contacts FOR SELECT TO seg_brand USING (country = current_setting('app.country', true));
SELECT segplan.count('email_opt_in') AS as_owner;
SET ROLE seg_brand;
SET app.country = 'FR';
SELECT segplan.count('email_opt_in') AS fr, (SELECT count(*) FROM demo.contacts WHERE email_opt_in) AS fr_by_hand;
SET app.country = 'IT';
SELECT segplan.count('email_opt_in') AS it, (SELECT count(*) FROM demo.contacts WHERE email_opt_in) AS it_by_hand;
SET app.country = 'FR';
SELECT segplan.count('email_opt_in') AS fr_again;
SELECT count(*) AS cached_under_rls FROM segplan.cache_stats() WHERE condition = 'email_opt_in';
RESET app.country;
RESET ROLE;
-- a role that loses its grant gets 42501, not the answer it had cached
REVOKE SELECT ON demo.contacts FROM seg_brand;
SET ROLE seg_brand;
SET app.country = 'FR';
SELECT segplan.count('email_opt_in');
RESET app.country;
RESET ROLE;
DROP POLICY by_country ON demo.contacts;
ALTER TABLE demo.contacts DISABLE ROW LEVEL SECURITY;
DROP OWNED BY seg_brand;
DROP ROLE seg_brand;

-- the shared cache: a new session of the same role and settings takes the bitmaps another built
SELECT segplan.cache_clear() >= 0 AS cleared;
SELECT segplan.count($$country = 'IT' and email_opt_in$$) = (SELECT count(*) FROM demo.contacts WHERE country = 'IT' AND email_opt_in) AS built_ok;
SELECT condition, origin FROM segplan.cache_stats() ORDER BY condition;
SELECT condition, contacts = (SELECT count(*) FROM demo.contacts) AS all_contacts FROM segplan.shared_cache_stats() ORDER BY condition;
\c
SET timezone = 'UTC';
SELECT segplan.count($$country = 'IT' and email_opt_in$$) = (SELECT count(*) FROM demo.contacts WHERE country = 'IT' AND email_opt_in) AS shared_ok;
SELECT condition, origin, hits FROM segplan.cache_stats() ORDER BY condition;
-- another time zone, or any application setting, is another context: built afresh
SET timezone = 'Europe/Rome';
SELECT segplan.count($$country = 'IT'$$) > 0 AS in_rome;
SET app.tenant = 'north';
SELECT segplan.count($$country = 'IT'$$) > 0 AS with_setting;
SELECT origin, count(*) FROM segplan.cache_stats() WHERE condition = 'country = ''IT''' GROUP BY origin ORDER BY origin;
RESET app.tenant;
SET timezone = 'UTC';
-- a view that reads a setting (no row-level security): each value its own answer, in any order
CREATE VIEW tenant_contacts AS SELECT * FROM demo.contacts WHERE country = current_setting('app.tenant', true);
SELECT segplan.register_events('tenant_rows', 'tenant_contacts', 'id');
SET app.tenant = 'FR';
SELECT segplan.count('tenant_rows()') = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS fr_ok;
SET app.tenant = 'IT';
SELECT segplan.count('tenant_rows()') = (SELECT count(*) FROM demo.contacts WHERE country = 'IT') AS it_ok;
SET app.tenant = 'FR';
SELECT segplan.count('tenant_rows()') = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS fr_again_ok;
\c
SET timezone = 'UTC';
SET app.tenant = 'IT';
SELECT segplan.count('tenant_rows()') = (SELECT count(*) FROM demo.contacts WHERE country = 'IT') AS it_in_new_session_ok;
SELECT origin FROM segplan.cache_stats() WHERE condition = 'tenant_rows()';
RESET app.tenant;
SELECT segplan.unregister_events('tenant_rows');
DROP VIEW tenant_contacts;
-- another role builds its own, though the same rule is in the shared cache
CREATE ROLE seg_other;
GRANT segplan_analyst TO seg_other;
GRANT USAGE ON SCHEMA demo TO seg_other;
GRANT SELECT ON segplan.contact_source, segplan.event_sources TO seg_other;
GRANT SELECT ON demo.contacts TO seg_other;
SET ROLE seg_other;
SELECT segplan.count($$country = 'IT' and email_opt_in$$) = (SELECT count(*) FROM demo.contacts WHERE country = 'IT' AND email_opt_in) AS other_ok;
SELECT condition, origin FROM segplan.cache_stats() WHERE condition <> 'all contacts' AND origin = 'built' ORDER BY condition;
-- and sees only its own entries; the table itself is segplan's
SELECT count(*) AS own_entries FROM segplan.shared_cache_stats();
SELECT count(*) FROM segplan.leaf_cache;
RESET ROLE;
DROP OWNED BY seg_other;
DROP ROLE seg_other;
-- turned off: nothing is shared
SET segplan.shared_cache_memory = 0;
SELECT segplan.count($$country = 'ES'$$) > 0 AS counted;
SELECT count(*) AS shared_es FROM segplan.shared_cache_stats() WHERE condition = 'country = ''ES''';
RESET segplan.shared_cache_memory;
SELECT segplan.cache_clear() > 0 AS cleared;
SELECT segplan.count($$country = 'ES'$$) > 0 AS counted;
SELECT count(*) AS shared_es FROM segplan.shared_cache_stats() WHERE condition = 'country = ''ES''';

-- a session trims the shared cache at its first write, then after every 1/64 of its size it
-- has written: a condition rebuilt after a change keeps its older row until then
\c
SET timezone = 'UTC';
SELECT segplan.count($$country = 'DE'$$) > 0 AS first_write;
UPDATE demo.contacts SET email_opt_in = email_opt_in WHERE id = (SELECT min(id) FROM demo.contacts);
SELECT segplan.count($$country = 'DE'$$) > 0 AS rebuilt;
SELECT count(*) AS de_rows FROM segplan.leaf_cache WHERE label = 'country = ''DE''';
\c
SET timezone = 'UTC';
SELECT segplan.count($$country = 'NL'$$) > 0 AS next_session_first_write;
SELECT count(*) AS de_rows FROM segplan.leaf_cache WHERE label = 'country = ''DE''';

-- the plain SQL engine gives the same answers
SET segplan.engine = sql;
SELECT segplan.count($$country = 'FR' and purchase_lines(within last 90 days)$$, '2026-11-01') AS sql_engine;
SELECT * FROM segplan.count_steps($$country = 'FR' and not purchase_lines(within last 1 years)$$, '2026-11-01');
RESET segplan.engine;
SELECT * FROM segplan.count_steps($$country = 'FR' and not purchase_lines(within last 1 years)$$, '2026-11-01');

SELECT segplan.unregister_events('big_lines');
SELECT segplan.unregister_events('order_days');
DROP VIEW big_lines;
DROP MATERIALIZED VIEW order_days;
DROP FUNCTION fr();

-- members, members_text and keys_of hand back all their rows in one call (materialize mode, so
-- their pinned search_path is set once, not per row): the same rows wherever a set-returning
-- function goes, in both engines
CREATE TEMP TABLE fr_ids AS SELECT id FROM demo.contacts WHERE country = 'FR';
SELECT (SELECT count(*) FROM segplan.members($$country = 'FR'$$)) = (SELECT count(*) FROM fr_ids) AS in_from,
       (SELECT count(*) FROM (SELECT segplan.members($$country = 'FR'$$)) s) = (SELECT count(*) FROM fr_ids) AS in_select_list,
       (SELECT count(*) FROM segplan.members_text($$country = 'FR'$$) k JOIN fr_ids ON k = fr_ids.id::text) = (SELECT count(*) FROM fr_ids) AS text_keys,
       (SELECT count(*) FROM segplan.keys_of(segplan.bitmap($$country = 'FR'$$))) = (SELECT count(*) FROM fr_ids) AS keys_of,
       (SELECT count(*) FROM (SELECT * FROM segplan.members($$country = 'FR'$$) LIMIT 3) s) AS limited;
-- called again for each outer row (LATERAL), and inside plpgsql's RETURN QUERY
SELECT c, n FROM (VALUES ('FR'), ('IT'), ('XX')) v(c),
  LATERAL (SELECT count(*) AS n FROM segplan.members(format('country = %L', c))) m
WHERE n = (SELECT count(*) FROM demo.contacts WHERE country = v.c) ORDER BY c;
CREATE FUNCTION pg_temp.fr_members() RETURNS SETOF bigint LANGUAGE plpgsql AS $f$
BEGIN RETURN QUERY SELECT segplan.members($$country = 'FR'$$); END $f$;
SELECT count(*) = (SELECT count(*) FROM fr_ids) AS through_plpgsql FROM pg_temp.fr_members();
SET segplan.engine = sql;
SELECT (SELECT count(*) FROM segplan.members($$country = 'FR'$$)) = (SELECT count(*) FROM fr_ids) AS sql_engine_in_from;
RESET segplan.engine;
