-- segplan demo: run by `make demo` against the segplan_demo database (demo.* tables already loaded).
\set ON_ERROR_STOP 1
\pset footer off
SET client_min_messages = warning;
CREATE EXTENSION IF NOT EXISTS pg_cron;
DROP EXTENSION IF EXISTS segplan CASCADE;
CREATE EXTENSION segplan;
RESET client_min_messages;

\echo '== segplan' `date -u +%FT%TZ`
SELECT extversion AS segplan_version FROM pg_extension WHERE extname = 'segplan';
SELECT 'contacts' AS "table", count(*) AS "rows" FROM demo.contacts
UNION ALL SELECT 'message_events', count(*) FROM demo.message_events
UNION ALL SELECT 'orders', count(*) FROM demo.orders
UNION ALL SELECT 'order_lines', count(*) FROM demo.order_lines;

\echo '== 1. Register the customer''s own tables (nothing is copied)'
SELECT segplan.register_contacts('demo.contacts', 'id');
SELECT segplan.register_events('purchase_lines', 'demo.purchase_lines', 'contact_id', 'ordered_at');
SELECT segplan.register_events('message_events', 'demo.message_activity', 'contact_id', 'occurred_at');
SELECT segplan.register_events('orders', 'demo.orders', 'contact_id', 'ordered_at');
SELECT e->>'name' AS event_source, e->>'source' AS source,
       (SELECT string_agg(p->>'name', ', ') FROM jsonb_array_elements(e->'properties') p) AS properties
FROM jsonb_array_elements(segplan.model()->'events') e;

\echo '== 2. Three segments (counts straight from the tables)'
\timing on
SELECT segplan.count($$country = 'FR'$$) AS "living in France";
SELECT segplan.count($$purchase_lines(where product_range = 'children' and on_sale and outlet_kind = 'airport'
                       and city = 'Rome', within last 6 months, sum(qty) >= 3, sum(line_total) > 200)$$)
       AS "children's range on sale, airport store in Rome, 6 months";
SELECT segplan.count('{"ratio": {"event": "purchase_lines", "occasion": "order_id",
                       "match": {"prop": "color", "op": "eq", "value": "yellow"},
                       "op": "gte", "value": 0.10, "min_occasions": 3}}'::jsonb)
       AS "yellow item on >= 10% of >= 3 purchase occasions";
SELECT segplan.count($$sequence(message_events(where event_type = 'click' and campaign_kind = 'newsletter'),
                       then orders(), gap > 30 days)$$) AS "ordered > 30 days after a newsletter click";

\echo '== 3. A funnel as a rule is built condition by condition'
SELECT * FROM segplan.count_steps($$country = 'FR' and age(birth_date) between 25 and 40
   and email_opt_in and message_events(where event_type = 'open', within last 90 days, count >= 2)
   and not message_events(where event_type = 'click', within last 30 days)$$);
\timing off

\echo '== 4. The same rule as JSON, and the SQL it runs (values are $n parameters)'
SELECT jsonb_pretty(segplan.parse($$country = 'FR' and purchase_lines(within last 6 months, count >= 2)$$));
SELECT segplan.to_sql($$country = 'FR' and purchase_lines(within last 6 months, count >= 2)$$);

\echo '== 5. Mistakes are explained, with the JSON path'
SELECT jsonb_pretty(segplan.validate('{"all": [{"attr": "countri", "op": "eq", "value": "FR"},
                                               {"event": "purchase_lines", "where": {"prop": "colour", "op": "eq", "value": "red"}}]}'));
\echo '   every problem says how to fix it: values a column cannot hold, dates PostgreSQL would read by DateStyle, a string for a boolean, a window longer than PostgreSQL''s dates'
SELECT p->>'path' AS path, p->>'message' AS problem, p->>'hint' AS hint
FROM jsonb_array_elements(segplan.validate($$home_outlet_id = 99999999999 or birth_date = '21-12-31' or email_opt_in = 'yes'
  or orders(within last 10000 years)$$)->'problems') p;

\echo '== 6. Contact sets as roaring bitmaps (pg_roaringbitmap-compatible, parallel aggregates)'
WITH fr AS (SELECT segplan.rb_build_agg(m::int) AS b FROM segplan.members($$country = 'FR'$$) m),
     buyers AS (SELECT segplan.rb_build_agg(m::int) AS b FROM segplan.members($$orders(within last 90 days)$$) m)
SELECT segplan.rb_cardinality(fr.b) AS in_france, segplan.rb_cardinality(buyers.b) AS bought_in_90_days,
       segplan.rb_and_cardinality(fr.b, buyers.b) AS both,
       pg_size_pretty(octet_length(segplan.rb_and(fr.b, buyers.b)::bytea)::bigint) AS both_as_portable_bitmap
FROM fr, buyers;
\echo '   a stored bitmap as a filter: membership is read in place, never unpacked per row'
DROP TABLE IF EXISTS demo.saved_lists;
CREATE TABLE demo.saved_lists AS SELECT 'fr_buyers' AS name, segplan.bitmap($$country = 'FR' and orders(within last 90 days)$$) AS members;
SELECT count(*) AS fr_buyers_by_stored_bitmap FROM demo.contacts c
WHERE segplan.rb64_contains((SELECT members FROM demo.saved_lists WHERE name = 'fr_buyers'), c.id);
\echo '   stored lists intersect without being unpacked (only the containers both have are read); ::bytea is the value itself'
INSERT INTO demo.saved_lists SELECT 'openers_90d', segplan.bitmap($$message_events(where event_type = 'open', within last 90 days)$$);
SELECT segplan.rb64_cardinality(a.members) AS fr_buyers, segplan.rb64_cardinality(b.members) AS openers_90d,
       segplan.rb64_and_cardinality(a.members, b.members) AS fr_buyers_who_opened,
       segplan.rb64_cardinality(segplan.rb64_and(a.members, b.members)) = segplan.count($$country = 'FR' and orders(within last 90 days)
         and message_events(where event_type = 'open', within last 90 days)$$) AS same_as_the_rule,
       octet_length(b.members::bytea) AS openers_bytes
FROM demo.saved_lists a, demo.saved_lists b WHERE a.name = 'fr_buyers' AND b.name = 'openers_90d';
\echo '   ranges work by rank on what a bitmap holds; sizes PostgreSQL cannot hold are refused before the memory is taken'
SELECT segplan.rb64_range_cardinality(members, 0, -1) AS in_the_whole_unsigned_range FROM demo.saved_lists WHERE name = 'fr_buyers';
DO $$ BEGIN PERFORM segplan.rb64_fill('{}', 0, 9223372036854775807);
EXCEPTION WHEN program_limit_exceeded THEN RAISE NOTICE 'rb64_fill(''{}'', 0, 2^63 - 1): % %', SQLSTATE, SQLERRM; END $$;

\echo '== 7. Editing a rule: each condition is one cached bitmap, so adding one costs only that one'
SELECT segplan.cache_clear() AS dropped_cached_bitmaps;
\timing on
SELECT * FROM segplan.count_steps($$country = 'FR'$$);
SELECT * FROM segplan.count_steps($$country = 'FR' and email_opt_in$$);
SELECT * FROM segplan.count_steps($$country = 'FR' and email_opt_in and message_events(where event_type = 'open', within last 90 days)$$);
SELECT * FROM segplan.count_steps($$country = 'FR' and email_opt_in and message_events(where event_type = 'open', within last 90 days)
   and not orders(within last 1 years)$$);
\echo '   ... the same 4-condition rule again: every bitmap is cached'
SELECT segplan.count($$country = 'FR' and email_opt_in and message_events(where event_type = 'open', within last 90 days)
   and not orders(within last 1 years)$$) AS warm_count;
\timing off
SELECT condition, contacts, pg_size_pretty(bytes) AS size, hits, round(build_ms::numeric, 1) AS build_ms FROM segplan.cache_stats();
\echo '   writes are patched in: a French contact orders in store and a German one moves to France (committed);'
\echo '   the next count evaluates its conditions again for those two contacts only (origin patched), not for everyone'
SELECT segplan.count($$country = 'FR' and email_opt_in and not orders(where channel = 'store')$$) AS before_the_writes;
CREATE TEMP TABLE moved AS SELECT min(id) AS id FROM demo.contacts c WHERE country = 'DE' AND email_opt_in
  AND EXISTS (SELECT FROM demo.orders o WHERE o.contact_id = c.id AND o.channel = 'store');
UPDATE demo.contacts SET country = 'FR' WHERE id = (SELECT id FROM moved);
INSERT INTO demo.orders (id, contact_id, outlet_id, channel, ordered_at, total)
SELECT (SELECT max(id) + 1 FROM demo.orders), m, 1, 'store', now() - interval '1 hour', 10
FROM segplan.members($$country = 'FR' and email_opt_in and not orders(where channel = 'store')$$) m WHERE m <> (SELECT id FROM moved) LIMIT 1;
\timing on
SELECT segplan.count($$country = 'FR' and email_opt_in and not orders(where channel = 'store')$$) AS after_the_writes,
       (SELECT count(*) FROM demo.contacts c WHERE c.country = 'FR' AND c.email_opt_in
          AND NOT EXISTS (SELECT FROM demo.orders o WHERE o.contact_id = c.id AND o.channel = 'store')) AS the_same_by_hand;
\timing off
SELECT condition, contacts, origin, round(build_ms::numeric, 1) AS ms FROM segplan.cache_stats()
WHERE condition IN ('country = ''FR''', 'email_opt_in = true', 'orders(where channel = ''store'')') ORDER BY condition;
-- the demo's data as generated
DELETE FROM demo.orders WHERE id = (SELECT max(id) FROM demo.orders);
UPDATE demo.contacts SET country = 'DE' WHERE id = (SELECT id FROM moved);
SELECT segplan.rb64_cardinality(segplan.bitmap($$country = 'FR' and email_opt_in$$)) AS "segplan.bitmap(rule) -> roaringbitmap64";
\echo '   a new session (another app connection, the scheduler) takes the bitmaps this one built'
\c
\timing on
SELECT segplan.count($$country = 'FR' and email_opt_in and message_events(where event_type = 'open', within last 90 days)
   and not orders(within last 1 years)$$) AS count_in_a_new_session;
\timing off
SELECT condition, origin FROM segplan.cache_stats() ORDER BY condition;
\echo '   a minute later the windows have moved (counts default to as_of = this minute); with an index on the time'
\echo '   column, a cached window is shifted: evaluated again only for the contacts with rows between its old and new bounds'
CREATE INDEX IF NOT EXISTS orders_ordered_at ON demo.orders (ordered_at);
CREATE INDEX IF NOT EXISTS message_events_type_time ON demo.message_events (event_type, occurred_at);
ANALYZE demo.orders, demo.message_events;
CREATE TEMP TABLE minute AS SELECT date_trunc('minute', now()) AS t;
SELECT segplan.count($$message_events(where event_type = 'open', within last 90 days) and orders(within last 1 years)$$, t) AS this_minute FROM minute;
\timing on
SELECT segplan.count($$message_events(where event_type = 'open', within last 90 days) and orders(within last 1 years)$$, t + interval '1 minute') AS next_minute
FROM minute;
SELECT (SELECT count(*) FROM demo.contacts c
         WHERE EXISTS (SELECT FROM demo.message_events e WHERE e.contact_id = c.id AND e.event_type = 'open'
                         AND e.occurred_at BETWEEN t + interval '1 minute' - interval '90 days' AND t + interval '1 minute')
           AND EXISTS (SELECT FROM demo.orders o WHERE o.contact_id = c.id
                         AND o.ordered_at BETWEEN t + interval '1 minute' - interval '1 year' AND t + interval '1 minute')) AS the_same_by_hand
FROM minute;
\timing off
SELECT condition, origin, round(build_ms::numeric, 1) AS ms FROM segplan.cache_stats() WHERE condition ~ 'within' ORDER BY condition, built_at;

\echo '== 8. RFM: recency, frequency and monetary scores and the 11 clusters, usable in any rule'
SELECT segplan.configure_rfm('orders', 'total', NULL, '2 years') AS rfm_configuration;
\timing on
SELECT * FROM segplan.rfm_summary();
SELECT segplan.count($$rfm(cluster in ('at_risk', 'cant_lose_them')) and email_opt_in$$)
       AS "at risk or can't lose, reachable by email";
\echo '   ... again: the RFM bitmap is cached until purchases change'
SELECT segplan.count($$rfm(cluster in ('at_risk', 'cant_lose_them')) and email_opt_in$$) AS warm;
\timing off
SELECT * FROM segplan.rfm_scores() ORDER BY monetary DESC LIMIT 3;

\echo '== 9. Stored segments: saved with versions, referenced live, refreshed with history, published for BI'
SELECT segplan.save_segment('fr_buyers', $$country = 'FR' and orders(within last 1 years)$$, 'French customers who bought this year');
SELECT segplan.save_segment('fr_buyers_at_risk', $$segment('fr_buyers') and rfm(cluster in ('at_risk', 'cant_lose_them', 'about_to_sleep'))$$,
                            'French buyers drifting away: the win-back list');
SELECT segplan.refresh_segment('fr_buyers') AS fr_buyers, segplan.refresh_segment('fr_buyers_at_risk') AS fr_buyers_at_risk;
\echo '   one French contact buys today: the next refresh records who entered'
BEGIN;
INSERT INTO demo.orders (id, contact_id, outlet_id, channel, ordered_at, total)
SELECT (SELECT max(id) + 1 FROM demo.orders), c.id, 1, 'online', now() - interval '1 hour', 25
FROM demo.contacts c WHERE c.country = 'FR' AND c.id NOT IN (SELECT segplan.segment_members('fr_buyers')) ORDER BY c.id LIMIT 1;
SELECT segplan.refresh_segment('fr_buyers') AS fr_buyers_now;
SELECT refreshed_at::time(0) AS refreshed_at, version, size, entered, exited FROM segplan.segment_history('fr_buyers');
ROLLBACK;
SELECT name, description, rule_text, version, size FROM segplan.segments ORDER BY name;
SELECT * FROM segplan.segment_overlap(ARRAY['fr_buyers', 'fr_buyers_at_risk']);
\echo '   the dashboard of the win-back list (fields detected from the model; purchases at line level for categories)'
SELECT segplan.configure_dashboard('{"purchases": {"event": "purchase_lines", "amount": "line_total", "occasion": "order_id", "category": "category"}}') IS NOT NULL AS dashboard_configured;
\timing on
SELECT section, label, contacts, round(value, 2) AS value FROM segplan.segment_dashboard_rows('fr_buyers_at_risk', 3);
SELECT t.j->'share_of_contacts' AS share_of_contacts, t.j->'engagement_90_days' AS engagement_90_days,
       (t.j->'purchases_365_days') - 'top_categories' AS purchases_365_days
FROM segplan.segment_dashboard('fr_buyers_at_risk', 3) AS t(j);
\timing off
SELECT segplan.publish_segment('fr_buyers_at_risk') AS "published for BI tools";
SELECT id, email, city, loyalty_tier FROM segments.fr_buyers_at_risk ORDER BY id LIMIT 5;

\echo '== 10. Contact policies: what each rule removes from a segment, live'
-- a contact history: every e-mail and SMS the campaigns sent, as another system would import it
SELECT sum(n) AS contacts_imported FROM (
  SELECT segplan.record_contacts(array_agg(m.contact_id), m.channel, b.name, NULL, m.occurred_at, 'demo import') AS n
  FROM demo.message_events m JOIN demo.brands b ON b.id = m.brand_id
  WHERE m.event_type = 'sent' AND m.occurred_at > now() - interval '30 days'
  GROUP BY m.channel, b.name, m.occurred_at) x;
SELECT count(*) AS paused_contacts FROM (
  SELECT segplan.pause_contact(c.id, daterange(current_date - 3, current_date + 10), 'asked for a break')
  FROM demo.contacts c WHERE c.country = 'FR' ORDER BY c.id LIMIT 25) x;
SELECT segplan.create_policy('fatigue', '{"rules": [
  {"max_contacts": 3, "per": {"days": 7}, "count_across": "all_brands"},
  {"min_gap": {"hours": 48}},
  {"max_contacts": 1, "per": {"days": 1}, "channels": ["sms"]}]}') IS NOT NULL AS fatigue;
SELECT segplan.create_policy('consent', '{"rules": [
  {"require_attr": "email_opt_in"},
  {"exclude_unsubscribed": {"event": "message_events", "where": {"prop": "event_type", "op": "eq", "value": "unsubscribe"}}},
  {"quiet_hours": {"from": "21:00", "to": "09:00"}},
  {"blackout_dates": ["2026-12-25", "2026-12-26"]}]}') IS NOT NULL AS consent;
SELECT b.name AS brand FROM demo.brands b ORDER BY b.id LIMIT 1 \gset
\timing on
SELECT * FROM segplan.policy_impact('segment(''fr_buyers'')', ARRAY['fatigue', 'consent'], 'email', :'brand',
                                    date_trunc('day', now()) + interval '10 hours');
\timing off
\echo '   one contact, at interaction time, with every reason'
SELECT c.id, e.* FROM demo.contacts c,
  segplan.eligible(c.id, ARRAY['fatigue', 'consent'], 'email', :'brand', date_trunc('day', now()) + interval '10 hours') e
WHERE c.country = 'FR' ORDER BY c.id LIMIT 3;
\echo '   two plans reserve the same contacts: the cap holds, the higher priority wins'
SELECT status, count(*) FROM segplan.reserve_contacts(ARRAY(SELECT m FROM segplan.segment_members('fr_buyers_at_risk') m LIMIT 100),
  ARRAY['fatigue'], 'email', :'brand', now(), priority => 1, run_id => 1) GROUP BY 1;
SELECT status, count(*) FROM segplan.reserve_contacts(ARRAY(SELECT m FROM segplan.segment_members('fr_buyers_at_risk') m LIMIT 50),
  ARRAY['fatigue'], 'email', :'brand', now() + interval '1 hour', priority => 9, run_id => 2) GROUP BY 1;
SELECT segplan.release_reservations(1) + segplan.release_reservations(2) AS released;

\echo '== 11. Plans: a recurring plan on the scheduler, one slot run exactly once, its list, hand-off, export and report'
-- a delivery handler: called with the run id inside the run's transaction (here it queues the list
-- for an ESP connector; segplan runs it with search_path = pg_catalog, pg_temp, so names are qualified)
CREATE TABLE IF NOT EXISTS public.esp_outbox (run_id bigint, contact_id bigint, email text, queued_at timestamptz DEFAULT now());
CREATE OR REPLACE FUNCTION public.queue_for_esp(run_id bigint) RETURNS void LANGUAGE sql AS $$
  INSERT INTO public.esp_outbox (run_id, contact_id, email)
  SELECT run_id, c.id, c.email FROM segplan.export_run(run_id, NULL::demo.contacts) c WHERE c.email IS NOT NULL
$$;
TRUNCATE public.esp_outbox;
SELECT segplan.configure_responses('{"window": {"days": 7},
  "open": {"event": "message_events", "where": {"prop": "event_type", "op": "eq", "value": "open"}},
  "click": {"event": "message_events", "where": {"prop": "event_type", "op": "eq", "value": "click"}},
  "conversion": {"event": "orders"}}') IS NOT NULL AS responses_configured;
SELECT segplan.create_plan('winback_fr', jsonb_build_object(
  'segment', 'fr_buyers_at_risk', 'channel', 'email', 'brand', :'brand', 'policies', jsonb_build_array('fatigue', 'consent'),
  'schedule', jsonb_build_object('weekdays', jsonb_build_array('tue', 'thu'), 'at', '09:00', 'time_zone', 'Europe/Paris'),
  'exceptions', jsonb_build_array('2026-12-24', '2026-12-31'), 'target', jsonb_build_object('min', 100, 'on_shortfall', 'cancel'),
  'holdout_percent', 10, 'test_contacts', jsonb_build_array(1, 2), 'test_addresses', jsonb_build_array('qa@example.com'),
  'priority', 5, 'delivery', jsonb_build_object('handler', 'public.queue_for_esp'))) AS plan_id \gset
SELECT segplan.activate_plan(:plan_id);
SELECT plan, slot, channel FROM segplan.calendar(now(), now() + interval '14 days') LIMIT 4;
SELECT slot AS next_slot FROM segplan.calendar(now(), now() + interval '14 days') WHERE plan_id = :plan_id ORDER BY slot LIMIT 1 \gset
\timing on
SELECT segplan.run_plan(:plan_id, :'next_slot') AS run_id \gset
\timing off
SELECT segplan.run_plan(:plan_id, :'next_slot') = :run_id AS "the same slot again is the same run";
SELECT status, segment_size, holdout, excluded, sent, test, round(extract(epoch FROM finished_at - started_at) * 1000) AS ms
FROM segplan.plan_runs WHERE id = :run_id;
SELECT w->>'rule' AS step, w->>'excluded' AS excluded, w->>'remaining' AS remaining FROM segplan.plan_runs r, jsonb_array_elements(r.waterfall) w WHERE r.id = :run_id;
SELECT id, email, city FROM segplan.export_run(:run_id, NULL::demo.contacts) LIMIT 3;
SELECT count(*) AS "queued for the ESP by the handler" FROM public.esp_outbox WHERE run_id = :run_id;
\echo '   a run of the same plan a month ago, and the report: responses within 7 days, holdout, lift'
SELECT segplan.run_plan(:plan_id, date_trunc('day', now()) - interval '30 days' + interval '8 hours') IS NOT NULL AS past_run;
SELECT slot::date, status, sent, holdout, opened, clicked, converted, round(open_rate::numeric, 3) AS open_rate,
       round(conversion_rate::numeric, 3) AS conv_rate, round(holdout_conversion_rate::numeric, 3) AS holdout_conv, round(lift::numeric, 2) AS lift
FROM segplan.plan_report(:plan_id) ORDER BY slot;
\echo '   (COPY (SELECT * FROM segplan.export_run(run_id, NULL::demo.contacts)) TO ''/path/list.csv'' WITH (FORMAT csv, HEADER))'
-- the job runs as segplan_scheduler: the customer decides what it may read
GRANT USAGE ON SCHEMA demo TO segplan_scheduler;
GRANT SELECT ON ALL TABLES IN SCHEMA demo TO segplan_scheduler;
SELECT CASE WHEN EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron')
            THEN (SELECT segplan.enable_scheduler() > 0) END AS "pg_cron job calling segplan.tick() every minute as segplan_scheduler";
SELECT segplan.disable_scheduler() AS "scheduler off again (demo)";

\echo '== 12. Security: roles, brands and the audit log, enforced by PostgreSQL (grants and row-level security)'
DO $$
DECLARE r text;
BEGIN
  FOREACH r IN ARRAY ARRAY['demo_analyst_a', 'demo_planner_a', 'demo_planner_b'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN EXECUTE format('CREATE ROLE %I', r); END IF;
  END LOOP;
END
$$;
SET client_min_messages = warning;  -- a second run of the demo finds the memberships in place
GRANT segplan_analyst TO demo_analyst_a;
GRANT segplan_planner TO demo_planner_a, demo_planner_b;
RESET client_min_messages;
-- segplan reads the customer's data as the caller: the customer grants it to segplan's roles
GRANT USAGE ON SCHEMA demo TO segplan_analyst;
GRANT SELECT ON ALL TABLES IN SCHEMA demo TO segplan_analyst;
SELECT b.name AS brand_b FROM demo.brands b ORDER BY b.id OFFSET 1 LIMIT 1 \gset
SELECT segplan.grant_brand('demo_analyst_a', :'brand'), segplan.grant_brand('demo_planner_a', :'brand'),
       segplan.grant_brand('demo_planner_b', :'brand_b');
SET ROLE demo_planner_b;
SELECT segplan.save_segment('loyal_b', 'loyalty_tier in (''gold'', ''platinum'')', 'gold and platinum members', :'brand_b') > 0 AS saved_by_planner_b;
RESET ROLE;
\echo '   each role sees its brands only (segments without a brand, like the demo''s first ones, are for admins)'
SET ROLE demo_analyst_a;
SELECT current_user AS role, (SELECT string_agg(name, ', ') FROM segplan.segments) AS segments,
       (SELECT string_agg(name, ', ') FROM segplan.plans) AS plans, (SELECT string_agg(name, ', ') FROM segplan.policies) AS policies;
RESET ROLE;
SET ROLE demo_planner_b;
SELECT current_user AS role, (SELECT string_agg(name, ', ') FROM segplan.segments) AS segments,
       (SELECT string_agg(name, ', ') FROM segplan.plans) AS plans, segplan.count('segment(''loyal_b'')') AS loyal_b_count;
RESET ROLE;
\echo '   an analyst may count but not change; a planner may not write for another brand'
DO $$
BEGIN
  BEGIN
    SET LOCAL ROLE demo_analyst_a;
    PERFORM segplan.save_segment('nope', 'country = ''FR''');
  EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'demo_analyst_a: % (%)', SQLERRM, SQLSTATE;
  END;
  BEGIN
    SET LOCAL ROLE demo_planner_a;
    PERFORM segplan.save_segment('loyal_b', 'country = ''FR''', NULL, (SELECT name FROM demo.brands ORDER BY id OFFSET 1 LIMIT 1));
  EXCEPTION WHEN insufficient_privilege THEN RAISE NOTICE 'demo_planner_a: % (%)', SQLERRM, SQLSTATE;
  END;
END
$$;
SELECT to_char(at, 'HH24:MI:SS') AS at, actor, action, object_kind, object_name, brand FROM segplan.audit_log ORDER BY id DESC LIMIT 6;

\echo '== 13. Contacts keyed by uuid (or text): segplan numbers them once, then the same bitmap engine answers'
-- the same contacts and orders as another system might keep them, keyed by uuid
SET client_min_messages = warning;
DROP SCHEMA IF EXISTS crm CASCADE;
RESET client_min_messages;
CREATE SCHEMA crm;
CREATE TABLE crm.customers AS SELECT md5('c' || id)::uuid AS customer_id, country, email_opt_in, loyalty_tier FROM demo.contacts;
ALTER TABLE crm.customers ADD PRIMARY KEY (customer_id);
CREATE TABLE crm.orders AS SELECT md5('c' || contact_id)::uuid AS customer_id, ordered_at, total FROM demo.orders;
SELECT segplan.register_contacts('crm.customers', 'customer_id');
SELECT segplan.register_events('crm_orders', 'crm.orders', 'customer_id', 'ordered_at');
\timing on
SELECT segplan.number_contacts() AS numbered;
SELECT segplan.count($$country = 'IT' and email_opt_in and crm_orders(within last 90 days)$$) AS italians_buying;
SELECT segplan.count($$country = 'IT' and email_opt_in and crm_orders(within last 90 days)$$) AS again_cached;
\echo '   a fresh condition: the parallel workers of its scan turn keys into ids themselves (a shared copy of the ids)'
SELECT segplan.count($$loyalty_tier = 'gold'$$) AS gold;
SELECT count(*) AS gold_by_hand FROM crm.customers WHERE loyalty_tier = 'gold';
\timing off
\echo '   writes are patched in over uuid keys too: the keys they touched are evaluated again (origin patched)'
CREATE INDEX ON crm.orders (customer_id);
INSERT INTO crm.orders SELECT customer_id, now() - interval '1 day', 42 FROM crm.customers WHERE country = 'IT' AND email_opt_in ORDER BY customer_id LIMIT 5;
\timing on
SELECT segplan.count($$country = 'IT' and email_opt_in and crm_orders(within last 90 days)$$) AS italians_buying_after_5_orders;
\timing off
SELECT condition, origin, round(build_ms::numeric, 1) AS ms FROM segplan.cache_stats() WHERE condition ~ 'crm_orders|IT|email' ORDER BY condition;
\echo '   the copy of the ids is the database''s: noted for the next sessions, which map it instead of reading the ids'
SELECT count(*) AS copies_noted, max(keys) AS ids_in_the_copy FROM segplan.id_copies;
\echo '   segplan.bitmap holds ids for such keys; keys_of turns them back into the keys the caller may see'
SELECT k AS first_keys FROM segplan.keys_of(segplan.bitmap($$country = 'IT' and loyalty_tier = 'platinum'$$)) k ORDER BY k LIMIT 3;
SELECT segplan.rb64_and_cardinality(segplan.bitmap($$country = 'IT'$$),
         segplan.bitmap_of(ARRAY(SELECT customer_id::text FROM crm.customers WHERE loyalty_tier = 'gold'))) AS uploaded_gold_in_italy;
\echo '   a stored segment over uuid keys lists its members as text keys'
SELECT segplan.save_segment('crm_it_platinum', $$country = 'IT' and loyalty_tier = 'platinum'$$) > 0 AS saved,
       segplan.refresh_segment('crm_it_platinum') AS members;
SELECT k AS stored_members FROM segplan.segment_members_text('crm_it_platinum', false) k ORDER BY k LIMIT 3;
SELECT segplan.drop_segment('crm_it_platinum');
-- back to the integer-keyed contacts the rest of the demo uses
SELECT segplan.register_contacts('demo.contacts', 'id');
SELECT segplan.unregister_events('crm_orders');
