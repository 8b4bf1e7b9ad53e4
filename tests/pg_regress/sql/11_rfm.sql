-- RFM: scores against answers worked out by hand (ties, single purchases, window edges, time
-- zones) on a purchase table shaped unlike the demo's, then against independent SQL on the
-- generated data, the cluster grid, rule conditions in both engines, and the cache.
SET timezone = 'UTC';
SET client_min_messages = warning;
CREATE SCHEMA rfmt;
CREATE TABLE rfmt.people (id int PRIMARY KEY, name text);
INSERT INTO rfmt.people SELECT i, 'p' || i FROM generate_series(1, 9) i;
-- (customer_id, sold_on, amount): no orders, no lines, a date column
CREATE TABLE rfmt.sales (customer_id int, sold_on date NOT NULL, amount numeric, label text);
INSERT INTO rfmt.sales VALUES
  (1, '2026-06-29', 100, 'a'), (1, '2026-06-20', 100, 'a'), (1, '2026-05-01', 100, 'a'),
  (2, '2026-06-29', 50, 'a'),
  (3, '2026-04-01', 500, 'a'), (3, '2026-03-01', 500, 'a'),
  (4, '2025-12-31', 20, 'a'), (4, '2026-01-15', NULL, 'a'),      -- a purchase without an amount
  (5, '2025-07-01', 10, 'a'),                                     -- first day of the 1-year window
  (6, '2026-06-10', 30, 'a'), (6, '2026-06-11', 30, 'a'), (6, '2026-06-12', 30, 'a'), (6, '2026-06-13', 30, 'a'),
  (7, '2024-08-01', 999, 'a'),                                    -- before the window
  (8, '2026-06-30', 40, 'a'), (8, '2026-07-01', 100, 'a'),        -- as_of's day counts, the next does not
  (NULL, '2026-06-01', 5, 'a');                                   -- no contact
SELECT segplan.register_contacts('rfmt.people', 'id');
SELECT segplan.register_events('sales', 'rfmt.sales', 'customer_id', 'sold_on');
RESET client_min_messages;

-- before configuration: a clear error, for functions and rules alike
SELECT * FROM segplan.rfm_scores('2026-06-30 12:00+00');
SELECT segplan.count('rfm(r >= 4)');

-- bad configurations are refused and nothing is kept
SELECT segplan.configure_rfm('nope', 'amount');
SELECT segplan.configure_rfm('sales', 'label');
SELECT segplan.configure_rfm('sales', 'amount', 'missing');
SELECT segplan.configure_rfm('sales', 'amount', NULL, '-1 day');
SELECT count(*) AS kept FROM segplan.rfm_config;

SELECT segplan.configure_rfm('sales', 'amount', lookback => '1 year');
SELECT segplan.model()->'rfm' AS model_rfm;

-- worked out by hand (N = 7 scored; score = 1 + floor(5 × contacts strictly worse / 7)):
-- recency 0,1,1,17,90,166,364 days; frequency ties at 1 (three contacts) and 2 (two)
CREATE TABLE rfmt.expected (contact_key bigint, recency_days int, frequency bigint, monetary numeric, r int, f int, m int, cluster text);
INSERT INTO rfmt.expected VALUES
  (1, 1, 3, 300, 3, 4, 4, 'loyal_customers'),
  (2, 1, 1, 50, 3, 1, 3, 'need_attention'),
  (3, 90, 2, 1000, 2, 3, 5, 'at_risk'),
  (4, 166, 2, 20, 1, 3, 1, 'hibernating'),
  (5, 364, 1, 10, 1, 1, 1, 'lost'),
  (6, 17, 4, 120, 3, 5, 3, 'loyal_customers'),
  (8, 0, 1, 40, 5, 1, 2, 'new_customers');
SELECT * FROM segplan.rfm_scores('2026-06-30 12:00+00') ORDER BY contact_key;
SELECT (SELECT count(*) FROM (SELECT * FROM segplan.rfm_scores('2026-06-30 12:00+00') EXCEPT SELECT * FROM rfmt.expected) d)
     + (SELECT count(*) FROM (SELECT * FROM rfmt.expected EXCEPT SELECT * FROM segplan.rfm_scores('2026-06-30 12:00+00')) d) AS differences;
-- keys as text for any key type
SELECT contact_key, cluster FROM segplan.rfm_scores_text('2026-06-30 12:00+00') ORDER BY contact_key LIMIT 2;
-- the day is as_of's day in the session's time zone: 03:00 UTC on July 1 is June 30 in New York
SELECT count(*) AS utc_scored, max(recency_days) AS utc_max FROM segplan.rfm_scores('2026-07-01 03:00+00');
SET timezone = 'America/New_York';
SELECT count(*) FROM (SELECT * FROM segplan.rfm_scores('2026-07-01 03:00+00') EXCEPT SELECT * FROM rfmt.expected) d;
SET timezone = 'UTC';

SELECT * FROM segplan.rfm_summary('2026-06-30 12:00+00');

-- the grid: 14 rectangles, every (r, f, m) in exactly one
SELECT * FROM segplan.rfm_clusters();
SELECT count(*) AS combinations, count(*) FILTER (WHERE hits = 1) AS exactly_once FROM (
  SELECT r, f, m, (SELECT count(*) FROM segplan.rfm_clusters() c
                   WHERE r BETWEEN c.r_min AND c.r_max AND (f + m) / 2.0 BETWEEN c.fm_min AND c.fm_max) AS hits
  FROM generate_series(1, 5) r, generate_series(1, 5) f, generate_series(1, 5) m) g;

-- rule conditions, both forms, both engines, against the expected table
CREATE FUNCTION rfmt.check(rule text, hand text) RETURNS TABLE (n bigint, same boolean) LANGUAGE plpgsql AS $$
DECLARE hand_ids bigint[]; seg_ids bigint[];
BEGIN
  EXECUTE format('SELECT coalesce(array_agg(id ORDER BY id), ''{}'') FROM (%s) h(id)', hand) INTO hand_ids;
  SELECT coalesce(array_agg(x ORDER BY x), '{}') INTO seg_ids FROM segplan.members(rule, '2026-06-30 12:00+00') x;
  n := segplan.count(rule, '2026-06-30 12:00+00');
  same := seg_ids = hand_ids AND n = cardinality(hand_ids);
  RETURN NEXT;
END $$;
CREATE TABLE rfmt.cases (rule text, hand text);
INSERT INTO rfmt.cases VALUES
  ('{"rfm": {"cluster": ["loyal_customers", "lost"]}}', $$SELECT contact_key FROM rfmt.expected WHERE cluster IN ('loyal_customers', 'lost')$$),
  ('rfm(r >= 3, fm <= 2)', $$SELECT contact_key FROM rfmt.expected WHERE r >= 3 AND (f + m) / 2.0 <= 2$$),
  ('rfm(fm = 2.5)', $$SELECT contact_key FROM rfmt.expected WHERE f + m = 5$$),
  ('rfm(f > 1, m < 5) and name <> ''p6''', $$SELECT contact_key FROM rfmt.expected WHERE f > 1 AND m < 5 AND contact_key <> 6$$),
  ('not rfm(cluster in (''lost''))', $$SELECT id FROM rfmt.people WHERE id NOT IN (SELECT contact_key FROM rfmt.expected WHERE cluster = 'lost')$$),
  ('rfm(cluster in (''champions''))', $$SELECT 1 WHERE false$$);
SELECT c.rule, x.n, x.same FROM rfmt.cases c, rfmt.check(c.rule, c.hand) x;
SET segplan.engine = sql;
SELECT c.rule, x.n, x.same FROM rfmt.cases c, rfmt.check(c.rule, c.hand) x;
RESET segplan.engine;
SELECT segplan.format('{"rfm": {"fm": {"op": "lte", "value": 2}, "cluster": ["at_risk"], "r": {"op": "gte", "value": 4}}}'::jsonb);
SELECT segplan.parse('rfm(cluster in (''at_risk''), R >= 4)');
SELECT segplan.validate('{"rfm": {"cluster": ["vips"], "m": {"op": "gte", "value": 7}}}'::jsonb);

-- the scores are reused until purchases change, and across as_of times on the same day
SELECT segplan.cache_clear() >= 0 AS cleared;
SELECT segplan.count('rfm(cluster in (''loyal_customers''))', '2026-06-30 09:00+00') AS morning;
SELECT segplan.count('rfm(cluster in (''loyal_customers''))', '2026-06-30 18:00+00') AS evening;
SELECT condition, contacts, hits FROM segplan.cache_stats() WHERE condition LIKE 'rfm%';
INSERT INTO rfmt.sales VALUES (2, '2026-06-30', 900, 'b');
SELECT segplan.count('rfm(cluster in (''loyal_customers''))', '2026-06-30 18:00+00') AS after_purchase;
SELECT contact_key, r, f, m, cluster FROM segplan.rfm_scores('2026-06-30 18:00+00') WHERE contact_key = 2;
-- a fixed as_of in the configuration wins over the caller's
SELECT segplan.configure_rfm('sales', 'amount', NULL, '1 year', '2026-06-29 12:00+00')->>'as_of' AS fixed_as_of;
SELECT min(recency_days) AS min_recency FROM segplan.rfm_scores('2030-01-01');
-- an as_of outside years 1 to 9999 is 22023 (was PostgreSQL's 22008 from the window's start)
\set VERBOSITY sqlstate
SELECT count(*) FROM segplan.rfm_summary('4713-01-01 BC');
SELECT count(*) FROM segplan.rfm_scores('infinity');
\set VERBOSITY default

-- text keys, a timestamp column, an occasion property with NULL occasions (they count for the last
-- day and the amount but are not occasions), amounts at mixed scales summed exactly: 0.1 + 0.2 + 1
-- ties with 0.300 + 1.0, and a total of 29 significant digits
SET client_min_messages = warning;
CREATE TABLE rfmt.members (code text PRIMARY KEY);
INSERT INTO rfmt.members VALUES ('a'), ('b'), ('c'), ('d'), ('e');
CREATE TABLE rfmt.tickets (member text, ticket int, at timestamp, paid numeric);
INSERT INTO rfmt.tickets VALUES
  ('a', 1, '2026-06-01 10:00', 0.1), ('a', 1, '2026-06-01 11:00', 0.2), ('a', NULL, '2026-06-20 09:00', 1),
  ('b', 7, '2026-06-10 00:00', 0.300), ('b', 8, '2026-06-11 00:00', 1.0), ('b', 8, '2026-06-11 00:01', NULL),
  ('c', NULL, '2026-06-25 12:00', 5),
  ('d', 3, '2026-06-30 23:59:59.999999', 12345678901234567890.123456789), ('d', 4, '2026-07-01 00:00', 1);
SELECT segplan.register_contacts('rfmt.members', 'code');
SELECT segplan.register_events('tickets', 'rfmt.tickets', 'member', 'at');
RESET client_min_messages;
SELECT segplan.configure_rfm('tickets', 'paid', 'ticket', '1 year')->>'occasion_property' AS occasion;
SELECT * FROM segplan.rfm_scores_text('2026-06-30 12:00+00') ORDER BY contact_key;
CREATE VIEW rfmt.ticket_truth AS
  WITH p AS (SELECT member AS k, ('2026-06-30'::date - max(at)::date) AS rec, count(DISTINCT ticket) AS freq, coalesce(sum(paid), 0) AS mon
             FROM rfmt.tickets WHERE at < '2026-07-01' AND at >= '2025-07-01' GROUP BY 1),
       n AS (SELECT count(*) AS n FROM p)
  SELECT p.k, p.rec, p.freq, p.mon::text AS mon,
         (1 + 5 * (SELECT count(*) FROM p w WHERE w.rec > p.rec) / n.n)::int AS r,
         (1 + 5 * (SELECT count(*) FROM p w WHERE w.freq < p.freq) / n.n)::int AS f,
         (1 + 5 * (SELECT count(*) FROM p w WHERE w.mon < p.mon) / n.n)::int AS m
  FROM p, n;
SELECT (SELECT count(*) FROM (SELECT contact_key, recency_days, frequency, monetary::text, r, f, m FROM segplan.rfm_scores_text('2026-06-30 12:00+00')
                              EXCEPT SELECT * FROM rfmt.ticket_truth) d)
     + (SELECT count(*) FROM (SELECT * FROM rfmt.ticket_truth EXCEPT
                              SELECT contact_key, recency_days, frequency, monetary::text, r, f, m FROM segplan.rfm_scores_text('2026-06-30 12:00+00')) d) AS text_key_differences;
SELECT segplan.members_text('rfm(m >= 3)', '2026-06-30 12:00+00') AS big_spenders ORDER BY 1;
-- integer keys for rfm_scores only; NaN and totals past 38 digits are refused with the contact named
SELECT * FROM segplan.rfm_scores('2026-06-30 12:00+00');
INSERT INTO rfmt.tickets VALUES ('e', 5, '2026-06-01', 'NaN');
SELECT count(*) FROM segplan.rfm_scores_text('2026-06-30 12:00+00');
UPDATE rfmt.tickets SET paid = 9e37 WHERE member = 'e';
INSERT INTO rfmt.tickets VALUES ('e', 6, '2026-06-02', 9e37);
SELECT count(*) FROM segplan.rfm_scores_text('2026-06-30 12:00+00');
DELETE FROM rfmt.tickets WHERE member = 'e';
-- the scoring function refuses bytes its aggregate did not write (22023), and scores an empty result
SELECT * FROM segplan._rfm_scores('\x01ff'::bytea, '2026-06-30');
\set VERBOSITY sqlstate
SELECT * FROM segplan._rfm_scores('\x010026'::bytea, '2026-06-30');
\set VERBOSITY default
SELECT count(*) AS none_scored FROM segplan._rfm_scores('\x00'::bytea, '2026-06-30');

-- the generated data: order level (one row per occasion) and line level (occasion = order id),
-- against independent SQL where a score is 1 + floor(5 × (number of contacts strictly worse) / N)
SET client_min_messages = warning;
SELECT segplan.register_contacts('demo.contacts', 'id');
SELECT segplan.register_events('orders', 'demo.orders', 'contact_id', 'ordered_at');
SELECT segplan.register_events('purchase_lines', 'demo.purchase_lines', 'contact_id', 'ordered_at');
RESET client_min_messages;
CREATE FUNCTION rfmt.truth(per_line boolean) RETURNS TABLE (contact_key bigint, recency_days int, frequency bigint, monetary numeric, r int, f int, m int)
LANGUAGE sql AS $$
  WITH p AS (
    SELECT contact_id::bigint AS k, ('2026-11-01'::date - max(ordered_at)::date) AS rec, count(*) AS freq, sum(total) AS mon
    FROM demo.orders WHERE NOT per_line AND ordered_at < '2026-11-02' AND ordered_at >= '2024-11-02' GROUP BY 1
    UNION ALL
    SELECT contact_id, ('2026-11-01'::date - max(ordered_at)::date), count(DISTINCT order_id), coalesce(sum(line_total), 0)
    FROM demo.purchase_lines WHERE per_line AND ordered_at < '2026-11-02' AND ordered_at >= '2024-11-02' GROUP BY 1),
  n AS (SELECT count(*) AS n FROM p)
  SELECT p.k, p.rec, p.freq, p.mon,
    (1 + 5 * (SELECT count(*) FROM p w WHERE w.rec > p.rec) / n.n)::int,
    (1 + 5 * (SELECT count(*) FROM p w WHERE w.freq < p.freq) / n.n)::int,
    (1 + 5 * (SELECT count(*) FROM p w WHERE w.mon < p.mon) / n.n)::int
  FROM p, n
$$;
SELECT segplan.configure_rfm('orders', 'total')->>'window' AS window;
SELECT count(*) AS scored,
       (SELECT count(*) FROM (SELECT contact_key, recency_days, frequency, monetary, r, f, m FROM segplan.rfm_scores('2026-11-01 10:00+00')
                              EXCEPT SELECT * FROM rfmt.truth(false)) d) AS missing_from_truth,
       (SELECT count(*) FROM (SELECT * FROM rfmt.truth(false) EXCEPT
                              SELECT contact_key, recency_days, frequency, monetary, r, f, m FROM segplan.rfm_scores('2026-11-01 10:00+00')) d) AS missing_from_segplan
FROM rfmt.truth(false);
SELECT bool_and(s.cluster = (SELECT c.cluster FROM segplan.rfm_clusters() c
                             WHERE s.r BETWEEN c.r_min AND c.r_max AND (s.f + s.m) / 2.0 BETWEEN c.fm_min AND c.fm_max)) AS clusters_follow_grid
FROM segplan.rfm_scores('2026-11-01 10:00+00') s;
SELECT segplan.configure_rfm('purchase_lines', 'line_total', 'order_id')->>'occasion_property' AS occasion;
SELECT (SELECT count(*) FROM (SELECT contact_key, recency_days, frequency, monetary, r, f, m FROM segplan.rfm_scores('2026-11-01 10:00+00')
                              EXCEPT SELECT * FROM rfmt.truth(true)) d)
     + (SELECT count(*) FROM (SELECT * FROM rfmt.truth(true) EXCEPT
                              SELECT contact_key, recency_days, frequency, monetary, r, f, m FROM segplan.rfm_scores('2026-11-01 10:00+00')) d) AS line_level_differences;
SELECT sum(contacts) = (SELECT count(*) FROM rfmt.truth(true)) AS summary_adds_up, round(sum(share), 2) AS shares
FROM segplan.rfm_summary('2026-11-01 10:00+00');
-- a cluster segment counted through the bitmap engine equals the scores' own count
SELECT segplan.count('rfm(cluster in (''champions'', ''at_risk''))', '2026-11-01 10:00+00')
     = (SELECT count(*) FROM segplan.rfm_scores('2026-11-01 10:00+00') WHERE cluster IN ('champions', 'at_risk')) AS cluster_count_ok;

DELETE FROM segplan.rfm_config;
DROP SCHEMA rfmt CASCADE;
