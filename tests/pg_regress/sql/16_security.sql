-- Multi-brand security, tested as ordinary roles (superusers bypass row-level security, so a
-- test run as one would prove nothing): the brand matrix, 42501 without the customer's grants,
-- the customer's own RLS in every answer, operator and table capture, the catalog scan and the
-- audit log. The install hijack is in 17_install_hijack.
SET timezone = 'UTC';
SET client_min_messages = warning;
DROP ROLE IF EXISTS acme_analyst, acme_planner, bolt_analyst, bolt_planner, boss, cron_runner, nosee, mallory;
SELECT segplan.register_contacts('demo.contacts', 'id');
SELECT segplan.register_events('purchase_lines', 'demo.purchase_lines', 'contact_id', 'ordered_at');
RESET client_min_messages;

-- people and apps get segplan's group roles; brands are granted per role
CREATE ROLE acme_analyst; CREATE ROLE acme_planner; CREATE ROLE bolt_analyst; CREATE ROLE bolt_planner;
CREATE ROLE boss; CREATE ROLE cron_runner; CREATE ROLE nosee; CREATE ROLE mallory;
GRANT segplan_analyst TO acme_analyst, bolt_analyst;
GRANT segplan_planner TO acme_planner, bolt_planner, nosee, mallory;
GRANT segplan_admin TO boss;
GRANT segplan_scheduler TO cron_runner;
-- the customer's grants on their own data (nosee gets none)
GRANT USAGE ON SCHEMA demo TO acme_analyst, acme_planner, bolt_analyst, bolt_planner, boss, cron_runner, mallory;
GRANT SELECT ON ALL TABLES IN SCHEMA demo TO acme_analyst, acme_planner, bolt_analyst, bolt_planner, boss, cron_runner, mallory;
SET ROLE boss;
SELECT segplan.grant_brand('acme_analyst', 'acme'), segplan.grant_brand('acme_planner', 'acme'),
       segplan.grant_brand('bolt_analyst', 'bolt'), segplan.grant_brand('bolt_planner', 'bolt'),
       segplan.grant_brand('nosee', 'acme'), segplan.grant_brand('mallory', 'acme');
SELECT segplan.grant_brand('acme_planner', 'acme', '{paris}');  -- narrowed to one outlet...
SELECT segplan.grant_brand('acme_planner', 'acme');             -- ...and widened again
SELECT segplan.grant_brand('acme_planner', '');                 -- no brand name, no outlets: 22023 (were 23514)
SELECT segplan.grant_brand('acme_planner', 'acme', '{}');
SELECT segplan.grant_brand(NULL, 'acme');                        -- NULL: 22004 (was brand_grants' 23502)
SELECT segplan.grant_brand('acme_planner', NULL);
SELECT role, brand, outlets FROM segplan.brand_grants ORDER BY 1, 2;
-- policies: one per brand and one across all brands (admins only)
SELECT segplan.create_policy('acme_cap', '{"scope": {"brands": ["acme"]}, "rules": [{"max_contacts": 5, "per": {"days": 7}}]}') IS NOT NULL,
       segplan.create_policy('bolt_cap', '{"scope": {"brands": ["bolt"]}, "rules": [{"max_contacts": 5, "per": {"days": 7}}]}') IS NOT NULL,
       segplan.create_policy('all_cap', '{"rules": [{"max_contacts": 1, "per": {"days": 7}, "count_across": "all_brands"}]}') IS NOT NULL,
       segplan.create_policy('acme_optin', '{"scope": {"brands": ["acme"]}, "rules": [{"require_attr": "email_opt_in"}]}') IS NOT NULL;
SELECT segplan.configure_rfm('purchase_lines', 'line_total', 'order_id') IS NOT NULL AS rfm_configured;
RESET ROLE;
-- a planner of a brand cannot grant brands
SET ROLE acme_planner;
SELECT segplan.grant_brand('acme_planner', 'bolt');
INSERT INTO segplan.brand_grants (role, brand) VALUES ('acme_planner', 'bolt');
SELECT role, brand FROM segplan.brand_grants ORDER BY 1, 2;  -- its own grants only
RESET ROLE;

-- each brand's planner makes a segment and a plan and runs it
SET ROLE acme_planner;
SELECT segplan.save_segment('acme_fr', $$country = 'FR'$$, brand => 'acme') > 0 AS saved;
SELECT segplan.create_plan('acme_mail', '{"segment": "acme_fr", "channel": "email", "brand": "acme", "policies": ["acme_cap", "all_cap"],
  "schedule": {"once": "2026-03-24 09:00", "time_zone": "UTC"}}') > 0 AS created;
SELECT segplan.run_plan((SELECT id FROM segplan.plans WHERE name = 'acme_mail'), '2026-03-24 09:00+00') > 0 AS ran;
SELECT segplan.save_segment('acme_fr', $$country = 'FR' and email_opt_in$$, brand => 'bolt');  -- not its brand
SELECT segplan.save_segment('acme_x', $$country = 'FR'$$);                                     -- no brand: every brand's
RESET ROLE;
SET ROLE bolt_planner;
SELECT segplan.save_segment('acme_fr', $$country = 'IT'$$, brand => 'bolt');  -- a name another brand holds
RESET ROLE;
SET ROLE bolt_planner;
SELECT segplan.save_segment('bolt_it', $$country = 'IT'$$, brand => 'bolt') > 0 AS saved;
SELECT segplan.create_plan('bolt_mail', '{"segment": "bolt_it", "channel": "email", "brand": "bolt", "policies": ["bolt_cap", "all_cap"],
  "schedule": {"once": "2026-03-24 09:00", "time_zone": "UTC"}}') > 0 AS created;
SELECT segplan.run_plan((SELECT id FROM segplan.plans WHERE name = 'bolt_mail'), '2026-03-24 09:00+00') > 0 AS ran;
SELECT segplan.record_contacts('{1,2,3}', 'sms', 'bolt', NULL, '2026-03-20 10:00+00');
RESET ROLE;
SELECT segplan.record_contacts('{1,2,3}', 'sms', NULL, NULL, '2026-03-20 10:00+00');  -- an import without brand
SELECT p.name, r.status, r.sent FROM segplan.plan_runs r JOIN segplan.plans p ON p.id = r.plan_id
WHERE p.name IN ('acme_mail', 'bolt_mail') ORDER BY p.name;

-- The matrix: each kind of role × the two brands' objects × each action. A cell is the count seen
-- (SELECT count), the rows changed or returned (1: the call ran), or the SQLSTATE of the refusal
-- (42501: no privilege, or a row outside one's brands; 22023: another brand's object does not
-- exist for the caller). Every attempt is rolled back.
CREATE TEMP TABLE ids AS
SELECT b.brand, p.id AS plan_id, r.id AS run_id, s.id AS segment_id
FROM (VALUES ('acme'), ('bolt')) AS b(brand)
JOIN segplan.plans p ON p.brand = b.brand JOIN segplan.plan_runs r ON r.plan_id = p.id JOIN segplan.segment s ON s.brand = b.brand;
GRANT SELECT ON ids TO PUBLIC;
CREATE FUNCTION pg_temp.attempt(who text, q text) RETURNS text LANGUAGE plpgsql AS $$
DECLARE res text; n bigint;
BEGIN
  BEGIN
    EXECUTE format('SET LOCAL ROLE %I', who);
    IF q ~ '^SELECT count' THEN
      EXECUTE q INTO n;
    ELSE
      EXECUTE q;
      GET DIAGNOSTICS n = ROW_COUNT;
    END IF;
    res := n::text;
    RAISE EXCEPTION USING ERRCODE = 'P0100';  -- undo whatever it did (and the SET LOCAL ROLE)
  EXCEPTION WHEN SQLSTATE 'P0100' THEN NULL;
            WHEN OTHERS THEN res := SQLSTATE;
  END;
  RETURN res;
END
$$;
CREATE TEMP TABLE actions (ord int, object text, action text, q text);
INSERT INTO actions VALUES
 (1, 'segment', 'select', $$SELECT count(*) FROM segplan.segments WHERE brand = '%1$s'$$),
 (2, 'segment', 'insert', $$SELECT segplan.save_segment('%1$s_new', 'country = ''DE''', brand => '%1$s')$$),
 (3, 'segment', 'update', $$UPDATE segplan.segment SET description = 'x' WHERE brand = '%1$s'$$),
 (4, 'segment', 'delete', $$SELECT segplan.drop_segment(s.name) FROM segplan.segment s WHERE s.id = %4$s$$),
 (5, 'segment', 'count', $$SELECT count(*) FROM segplan.segment_members((SELECT name FROM segplan.segment WHERE id = %4$s))$$),
 (1, 'plan', 'select', $$SELECT count(*) FROM segplan.plans WHERE brand = '%1$s'$$),
 (2, 'plan', 'insert', $$SELECT segplan.create_plan('%1$s_new', '{"rule": {"attr": "country", "op": "eq", "value": "DE"}, "channel": "sms", "brand": "%1$s", "schedule": {"once": "2026-03-25 09:00", "time_zone": "UTC"}}')$$),
 (3, 'plan', 'update', $$SELECT segplan.activate_plan(%2$s)$$),
 (4, 'plan', 'delete', $$SELECT segplan.drop_plan(%2$s)$$),
 (5, 'plan', 'run', $$SELECT segplan.run_plan(%2$s, '2026-03-31 09:00+00')$$),
 (1, 'run', 'select', $$SELECT count(*) FROM segplan.run_contacts WHERE run_id = %3$s$$),
 (2, 'run', 'update', $$UPDATE segplan.plan_runs SET status = 'cancelled' WHERE id = %3$s$$),
 (3, 'run', 'delete', $$DELETE FROM segplan.run_contacts WHERE run_id = %3$s$$),
 (4, 'run', 'export', $$SELECT count(*) FROM segplan.export_run(%3$s)$$),
 (1, 'policy', 'select', $$SELECT count(*) FROM segplan.policies WHERE name IN ('%1$s_cap', 'all_cap')$$),
 (2, 'policy', 'insert', $$SELECT segplan.create_policy('%1$s_new', '{"scope": {"brands": ["%1$s"]}, "rules": [{"blackout_dates": ["2026-12-25"]}]}')$$),
 (3, 'policy', 'update', $$UPDATE segplan.policies SET version = version + 1 WHERE name = '%1$s_cap'$$),
 (4, 'policy', 'delete', $$SELECT segplan.drop_policy('%1$s_cap')$$),
 (1, 'history', 'select', $$SELECT count(*) FROM segplan.contact_history WHERE brand = '%1$s' OR brand IS NULL$$),
 (2, 'history', 'insert', $$SELECT segplan.record_contacts('{7}', 'sms', '%1$s')$$),
 (3, 'history', 'delete', $$DELETE FROM segplan.contact_history WHERE brand = '%1$s'$$),
 (1, 'audit', 'select', $$SELECT count(*) FROM segplan.audit_log WHERE brand = '%1$s'$$),
 (2, 'audit', 'insert', $$INSERT INTO segplan.audit_log (actor, login, action, object_kind) VALUES ('x', 'x', 'forged', 'plan')$$),
 (3, 'audit', 'delete', $$DELETE FROM segplan.audit_log WHERE brand = '%1$s'$$);
SELECT w.who, i.brand, a.object,
       string_agg(a.action || '=' || pg_temp.attempt(w.who, format(a.q, i.brand, i.plan_id, i.run_id, i.segment_id)), ' ' ORDER BY a.ord) AS result
FROM (VALUES (1, 'acme_analyst'), (2, 'acme_planner'), (3, 'boss'), (4, 'cron_runner')) AS w(o, who)
CROSS JOIN ids i CROSS JOIN actions a
GROUP BY w.o, w.who, i.brand, a.object
ORDER BY w.o, i.brand, array_position(ARRAY['segment', 'plan', 'run', 'policy', 'history', 'audit'], a.object);

-- cross-brand objects: the policy across all brands and the import without brand are seen by
-- admins and the scheduler only; a plan still applies a policy its author cannot read
SET ROLE acme_analyst;
SELECT name FROM segplan.policies ORDER BY 1;
SELECT count(*) AS unbranded_history FROM segplan.contact_history WHERE brand IS NULL;
SELECT name, brand FROM segplan.segments ORDER BY 1;
RESET ROLE;
SELECT s.name, s.brand FROM segplan.segments s ORDER BY 1;
SELECT p.name, r.waterfall FROM segplan.plan_runs r JOIN segplan.plans p ON p.id = r.plan_id
WHERE p.name IN ('acme_mail', 'bolt_mail') ORDER BY 1;
-- caps count every brand's contacts, also those the caller cannot see: contact 1 had an
-- unbranded and a bolt contact this week, so all_cap (1 a week) excludes it for acme too
SET ROLE acme_planner;
SELECT eligible, reasons FROM segplan.eligible(1, '{all_cap}', 'email', 'acme', '2026-03-21 10:00+00');
SELECT contact_key, status, reason FROM segplan.reserve_contacts('{1}', '{all_cap}', 'email', 'acme', '2026-03-21 10:00+00');
SELECT contact_key, status FROM segplan.reserve_contacts('{1}', '{all_cap}', 'email', 'bolt', '2026-03-21 10:00+00');
RESET ROLE;
SELECT pg_temp.attempt('acme_planner', format($$SELECT segplan.reserve_contacts('{1}', '{all_cap}', 'email', 'acme', now(), run_id => %s)$$,
                                              (SELECT run_id FROM ids WHERE brand = 'bolt'))) AS reserve_for_bolts_run;
SET ROLE acme_planner;
-- the audit log's export entry cannot be written into another brand's log
SELECT segplan._audit_export((SELECT run_id FROM ids WHERE brand = 'bolt'));
RESET ROLE;
SELECT count(*) AS forged_entries FROM segplan.audit_log WHERE action = 'exported' AND brand = 'bolt';

-- without SELECT on the customer's contacts every function that reads them says 42501
SELECT f.name, pg_temp.attempt('nosee', f.q) AS sqlstate FROM (VALUES
  ('count', $$SELECT segplan.count('country = ''FR''')$$),
  ('members', $$SELECT count(*) FROM segplan.members('country = ''FR''')$$),
  ('members_text', $$SELECT count(*) FROM segplan.members_text('country = ''FR''')$$),
  ('count_steps', $$SELECT count(*) FROM segplan.count_steps('country = ''FR'' and email_opt_in')$$),
  ('bitmap', $$SELECT segplan.bitmap('country = ''FR''') IS NULL$$),
  ('segment_members', $$SELECT count(*) FROM segplan.segment_members('acme_fr')$$),
  ('segment_overlap', $$SELECT count(*) FROM segplan.segment_overlap('{acme_fr}')$$),
  ('refresh_segment', $$SELECT segplan.refresh_segment('acme_fr')$$),
  ('segment_dashboard', $$SELECT segplan.segment_dashboard('acme_fr') IS NULL$$),
  ('rfm_summary', $$SELECT count(*) FROM segplan.rfm_summary('2026-11-01')$$),
  ('policy_impact', $$SELECT count(*) FROM segplan.policy_impact('country = ''FR''', '{acme_cap}', 'email', 'acme')$$),
  ('export_run', $$SELECT count(*) FROM segplan.export_run((SELECT run_id FROM ids WHERE brand = 'acme'), NULL::demo.contacts)$$),
  ('export_run jsonb', $$SELECT count(*) FROM segplan.export_run((SELECT run_id FROM ids WHERE brand = 'acme'))$$),
  ('eligible', $$SELECT count(*) FROM segplan.eligible(1, '{acme_optin}', 'email', 'acme')$$),
  ('segment_dashboard_rows', $$SELECT count(*) FROM segplan.segment_dashboard_rows('acme_fr')$$),
  ('rfm_scores', $$SELECT count(*) FROM segplan.rfm_scores('2026-11-01')$$)
) AS f(name, q) ORDER BY 1;
-- a run by such a role fails, recorded with the reason
SET ROLE nosee;
SELECT segplan.run_plan((SELECT plan_id FROM ids WHERE brand = 'acme'), '2026-04-07 09:00+00') > 0 AS recorded;
RESET ROLE;
SELECT status, error FROM segplan.plan_runs WHERE slot = '2026-04-07 09:00+00';

-- Outlets: a grant limited to outlets shows that brand's rows of those outlets only; rows of the
-- whole brand (no outlet) need the whole brand
SET ROLE boss;
SELECT segplan.grant_brand('acme_analyst', 'acme', '{paris, lyon}');
SELECT segplan.create_plan(o.name, jsonb_build_object('segment', 'acme_fr', 'channel', 'sms', 'brand', 'acme', 'outlet', o.outlet,
         'schedule', jsonb_build_object('once', '2026-05-01 09:00', 'time_zone', 'UTC'))) > 0 AS created
FROM (VALUES ('acme_paris', 'paris'), ('acme_nice', 'nice')) AS o(name, outlet);
SELECT segplan.record_contacts('{10,11}', 'sms', 'acme', o, '2026-04-01 10:00+00') FROM unnest(ARRAY['paris', 'nice']) AS o;
RESET ROLE;
SET ROLE acme_analyst;
SELECT name, outlet FROM segplan.plans ORDER BY 1;
SELECT outlet, count(*) FROM segplan.contact_history WHERE brand = 'acme' GROUP BY 1 ORDER BY 1;
RESET ROLE;
SET ROLE boss;
SELECT segplan.grant_brand('acme_analyst', 'acme');
RESET ROLE;

-- The customer's RLS on contacts shows in every answer: acme's analysts see French contacts,
-- bolt's people Italian ones, acme's planners French ones with an email opt-in. The same rule
-- counted by two roles, in either order, gives each its own answer (the session cache included),
-- and members, bitmaps, dashboards and exports follow.
SELECT count(*) AS acme_run_optin FROM segplan.run_contacts rc JOIN demo.contacts c ON c.id = rc.contact_key
WHERE rc.run_id = (SELECT run_id FROM ids WHERE brand = 'acme') AND rc.status IN ('sent', 'test') AND c.email_opt_in \gset
ALTER TABLE demo.contacts ENABLE ROW LEVEL SECURITY;
CREATE POLICY acme_fr ON demo.contacts FOR SELECT TO acme_analyst USING (country = 'FR');
CREATE POLICY acme_optin ON demo.contacts FOR SELECT TO acme_planner USING (country = 'FR' AND email_opt_in);
CREATE POLICY bolt_it ON demo.contacts FOR SELECT TO bolt_analyst, bolt_planner USING (country = 'IT');
CREATE TEMP TABLE seen (who text, what text, n bigint);
GRANT ALL ON seen TO PUBLIC;
CREATE FUNCTION pg_temp.look(who text) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('SET LOCAL ROLE %I', who);
  INSERT INTO seen SELECT who, 'count', segplan.count('email_opt_in');
  INSERT INTO seen SELECT who, 'count again', segplan.count('email_opt_in');
  INSERT INTO seen SELECT who, 'members', count(*) FROM segplan.members('email_opt_in');
  INSERT INTO seen SELECT who, 'bitmap', segplan.rb64_cardinality(segplan.bitmap('email_opt_in'));
  INSERT INTO seen SELECT who, 'by hand', count(*) FROM demo.contacts WHERE email_opt_in;
  RESET ROLE;
END
$$;
SELECT pg_temp.look('acme_analyst'), pg_temp.look('bolt_analyst'), pg_temp.look('acme_analyst'), pg_temp.look('bolt_analyst');
SELECT who, string_agg(DISTINCT what, ', ') AS answers, count(*) AS answered, count(DISTINCT n) = 1 AS all_equal
FROM seen GROUP BY who ORDER BY who;
SELECT count(DISTINCT n) = 2 AS two_answers FROM seen;
SET ROLE acme_analyst;
SELECT (segplan.segment_dashboard('acme_fr') ->> 'size')::bigint = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS acme_dashboard,
       (SELECT count(*) FROM segplan.segment_members('acme_fr')) = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS acme_members;
RESET ROLE;
SET ROLE bolt_analyst;
SELECT (segplan.segment_dashboard('bolt_it') ->> 'size')::bigint = (SELECT count(*) FROM demo.contacts) AS bolt_dashboard;
RESET ROLE;
-- acme's planner exports its run: only the contacts it may read (French with an opt-in)
SET ROLE acme_planner;
SELECT count(*) = :acme_run_optin AS export_as_rls_allows, bool_and(email_opt_in) AS all_opted_in
FROM segplan.export_run((SELECT run_id FROM ids WHERE brand = 'acme'), NULL::demo.contacts);
RESET ROLE;
DROP POLICY acme_fr ON demo.contacts;
DROP POLICY acme_optin ON demo.contacts;
DROP POLICY bolt_it ON demo.contacts;
ALTER TABLE demo.contacts DISABLE ROW LEVEL SECURITY;

-- Capture: mallory puts operators, functions and tables of her own first in her search_path,
-- shadowing what segplan uses; segplan runs none of them and answers as before.
SELECT segplan.count($$country = 'FR' and first_name starts with 'a' and purchase_lines(sum(line_total) > 100, within last 400 days)$$) AS expected_count \gset
SELECT count(*) AS expected_fr FROM demo.contacts WHERE country = 'FR' \gset
SELECT count(*) AS expected_impact FROM segplan.policy_impact('country = ''FR''', '{acme_cap}', 'email', 'acme', '2026-03-24 09:00+00') \gset
CREATE SCHEMA mallory AUTHORIZATION mallory;
SET ROLE mallory;
CREATE TABLE mallory.calls (what text);
CREATE FUNCTION mallory.spy_texteq(text, text) RETURNS boolean LANGUAGE plpgsql AS 'BEGIN INSERT INTO mallory.calls VALUES (''=''); RETURN true; END';
CREATE OPERATOR mallory.= (LEFTARG = text, RIGHTARG = text, FUNCTION = mallory.spy_texteq);
CREATE FUNCTION mallory.spy_int8eq(bigint, bigint) RETURNS boolean LANGUAGE plpgsql AS 'BEGIN INSERT INTO mallory.calls VALUES (''int8=''); RETURN true; END';
CREATE OPERATOR mallory.= (LEFTARG = bigint, RIGHTARG = bigint, FUNCTION = mallory.spy_int8eq);
CREATE FUNCTION mallory.lower(text) RETURNS text LANGUAGE plpgsql AS 'BEGIN INSERT INTO mallory.calls VALUES (''lower''); RETURN $1; END';
CREATE FUNCTION mallory.now() RETURNS timestamptz LANGUAGE plpgsql AS 'BEGIN INSERT INTO mallory.calls VALUES (''now''); RETURN ''2000-01-01''; END';
CREATE FUNCTION mallory.unnest(bigint[]) RETURNS SETOF bigint LANGUAGE plpgsql AS 'BEGIN INSERT INTO mallory.calls VALUES (''unnest''); RETURN; END';
CREATE TEMP TABLE segment (id bigint, name text, brand text);
CREATE TEMP TABLE contacts (id int, country text);
CREATE TEMP TABLE policies (name text, spec jsonb);
SET search_path = mallory, pg_temp, pg_catalog;
SELECT segplan.count($$country = 'FR' and first_name starts with 'a' and purchase_lines(sum(line_total) > 100, within last 400 days)$$)
       OPERATOR(pg_catalog.=) :expected_count AS same_count;
SELECT count(*) OPERATOR(pg_catalog.=) :expected_impact AS same_impact
FROM segplan.policy_impact('country = ''FR''', '{acme_cap}', 'email', 'acme', '2026-03-24 09:00+00');
SELECT segplan.save_segment('mallory_fr', $$country = 'FR'$$, brand => 'acme') OPERATOR(pg_catalog.>) 0 AS saved;
SELECT segplan.refresh_segment('mallory_fr') OPERATOR(pg_catalog.=) :expected_fr AS same_refresh;
SELECT contact_key, status FROM segplan.reserve_contacts('{5}', '{acme_cap}', 'email', 'acme', '2026-03-21 10:00+00');
RESET search_path;
SELECT count(*) AS mallory_code_ran FROM mallory.calls;
RESET ROLE;
DROP SCHEMA mallory CASCADE;

-- The audit log: who did what to which segment, policy, plan and brand grant, and who exported
SELECT actor, action, object_kind, object_name, brand FROM segplan.audit_log
WHERE actor IN ('acme_planner', 'bolt_planner', 'boss', 'mallory', 'nosee') ORDER BY id;
SET ROLE acme_analyst;
SELECT DISTINCT brand FROM segplan.audit_log ORDER BY 1;
RESET ROLE;

-- The catalog scan. Every SECURITY DEFINER function pins search_path (pg_temp last) and is not
-- executable by PUBLIC; here is the whole list, for review:
SELECT p.oid::regprocedure AS security_definer, p.proconfig, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
FROM pg_proc p WHERE p.pronamespace = 'segplan'::regnamespace AND p.prosecdef ORDER BY 1;
-- every other function pins search_path too, or has a body bound when it was created; except the
-- bitmap functions, RFM's, the key list's and the id maps' aggregate support and RFM's scoring: they compute from their
-- arguments only (no SQL, no names looked up) and run per row, where a SET clause would cost a
-- setting saved and restored per call. Listed, for review: the keyed change-log trigger function
-- (pgrx makes trigger functions without a SET clause); every type, function and operator its
-- statements name carries its schema (src/pg/change_log.rs)
SELECT p.oid::regprocedure AS unpinned FROM pg_proc p
WHERE p.pronamespace = 'segplan'::regnamespace AND p.proname !~ '^(rb|rb64)_|^roaringbitmap'
  AND p.proname !~ '^_rfm_(step|combine|serialize|deserialize|scores)$' AND p.proname !~ '^_keys_(trans_text|combine|serialize|deserialize|final)$'
  AND p.proname !~ '^_ids_(trans|combine|serialize|deserialize|final)$' AND p.proname !~ '^_(map|prints)_(trans|final)$'
  AND p.prokind = 'f'
  AND p.prosqlbody IS NULL AND NOT coalesce(p.proconfig @> '{"search_path=pg_catalog, pg_temp"}', false) ORDER BY 1;
-- PUBLIC may run the bitmap functions and the two that row-level security calls, nothing else
SELECT p.oid::regprocedure AS public_may_execute FROM pg_proc p
WHERE p.pronamespace = 'segplan'::regnamespace AND p.proname !~ '^(rb|rb64)_|^roaringbitmap'
  AND has_function_privilege('public', p.oid, 'EXECUTE') ORDER BY 1;
-- every other function is granted to one of segplan's roles, or only segplan calls it
SELECT p.oid::regprocedure AS nobody_may_execute FROM pg_proc p
WHERE p.pronamespace = 'segplan'::regnamespace AND NOT has_function_privilege('public', p.oid, 'EXECUTE')
  AND NOT EXISTS (SELECT 1 FROM unnest(ARRAY['segplan_analyst', 'segplan_planner', 'segplan_scheduler', 'segplan_admin']) r
                  WHERE has_function_privilege(r, p.oid, 'EXECUTE')) ORDER BY 1;
-- every table holding brand data has row-level security, forced
SELECT c.relname, c.relrowsecurity, c.relforcerowsecurity FROM pg_class c
WHERE c.relnamespace = 'segplan'::regnamespace AND c.relkind = 'r' AND (c.relrowsecurity OR c.relname IN
  ('segment', 'segment_versions', 'segment_history', 'published_views', 'policies', 'plans', 'plan_versions', 'plan_runs',
   'run_contacts', 'call_list', 'contact_history', 'contact_reservations', 'audit_log')) ORDER BY 1;
-- what each role may do to segplan's tables (s select, i insert, u update, d delete)
SELECT r AS role, string_agg(c.relname || ':' || concat_ws('', CASE WHEN has_table_privilege(r, c.oid, 'SELECT') THEN 's' END,
         CASE WHEN has_table_privilege(r, c.oid, 'INSERT') THEN 'i' END, CASE WHEN has_table_privilege(r, c.oid, 'UPDATE') THEN 'u' END,
         CASE WHEN has_table_privilege(r, c.oid, 'DELETE') THEN 'd' END), ' ' ORDER BY c.relname) AS privileges
FROM unnest(ARRAY['public', 'segplan_analyst', 'segplan_planner', 'segplan_scheduler', 'segplan_admin']) AS r
CROSS JOIN pg_class c WHERE c.relnamespace = 'segplan'::regnamespace AND c.relkind IN ('r', 'v')
  AND (has_table_privilege(r, c.oid, 'SELECT') OR has_table_privilege(r, c.oid, 'INSERT'))
GROUP BY r ORDER BY array_position(ARRAY['public', 'segplan_analyst', 'segplan_planner', 'segplan_scheduler', 'segplan_admin'], r);
-- and the columns granted alone: everyone reads which relations changed in which transaction, no
-- one the contact keys writes logged (only segplan's own code does, as the owner)
SELECT c.relname, a.attname, string_agg(r, ' ' ORDER BY r) FILTER (WHERE has_column_privilege(r, c.oid, a.attnum, 'SELECT')) AS may_select
FROM pg_class c JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
CROSS JOIN unnest(ARRAY['public', 'segplan_analyst', 'segplan_planner', 'segplan_scheduler', 'segplan_admin']) AS r
WHERE c.relnamespace = 'segplan'::regnamespace AND c.relacl IS NOT NULL AND a.attacl IS NOT NULL OR c.oid = 'segplan.changes'::regclass AND a.attnum > 0
GROUP BY c.relname, a.attname, a.attnum ORDER BY c.relname, a.attnum;

SET client_min_messages = warning;
DROP OWNED BY acme_analyst, acme_planner, bolt_analyst, bolt_planner, boss, cron_runner, nosee, mallory;
DROP ROLE acme_analyst, acme_planner, bolt_analyst, bolt_planner, boss, cron_runner, nosee, mallory;
RESET client_min_messages;
