-- The demo data generator: deterministic, sized as documented, and skewed like real data.
SET timezone = 'UTC';
SELECT count(*) AS contacts, (SELECT count(*) FROM demo.orders) AS orders,
       (SELECT count(*) FROM demo.message_events WHERE event_type = 'sent') AS sends
FROM demo.contacts;
CREATE TEMP TABLE sum1 AS SELECT demo.checksum() AS c;
SET client_min_messages = warning;
SELECT demo.generate(3000, 7, '2026-11-01 00:00:00+00');
SELECT demo.checksum() = (SELECT c FROM sum1) AS same_seed_same_data;
SELECT demo.generate(3000, 8, '2026-11-01 00:00:00+00');
SELECT demo.checksum() <> (SELECT c FROM sum1) AS other_seed_other_data;
-- the phases are independent (gendata.sh runs messages and orders at once): any order, same data
SELECT demo.generate_base(3000, 7, '2026-11-01 00:00:00+00');
SELECT demo.generate_orders(3000, 7, '2026-11-01 00:00:00+00');
SELECT demo.generate_messages(3000, 7, '2026-11-01 00:00:00+00');
SELECT demo.generate_finish();
SELECT demo.checksum() = (SELECT c FROM sum1) AS phases_in_any_order_same_data;
RESET client_min_messages;
-- 40-60% never buy; the top city holds far more than an even share; activity is power-law
SELECT (1 - count(DISTINCT contact_id)::numeric / 3000) BETWEEN 0.4 AND 0.6 AS non_buyers_40_60
FROM demo.orders;
SELECT max(n)::numeric / sum(n) > 0.15 AS top_city_over_15pct FROM (SELECT count(*) AS n FROM demo.contacts GROUP BY city) x;
SELECT sum(n) FILTER (WHERE r <= 300)::numeric / sum(n) > 0.25 AS top_10pct_over_25pct_of_events
FROM (SELECT count(*) AS n, row_number() OVER (ORDER BY count(*) DESC) AS r FROM demo.message_events GROUP BY contact_id) x;
SELECT count(*) FILTER (WHERE event_type = 'open')::numeric / count(*) FILTER (WHERE event_type = 'delivered') BETWEEN 0.1 AND 0.35 AS open_rate_realistic,
       count(*) FILTER (WHERE event_type = 'click')::numeric / count(*) FILTER (WHERE event_type = 'delivered') BETWEEN 0.01 AND 0.08 AS click_rate_realistic
FROM demo.message_events;
SELECT kind, count(*) > 0 AS present FROM demo.outlets GROUP BY kind ORDER BY kind;
SELECT count(*) > 0 AS airport_in_rome FROM demo.outlets WHERE kind = 'airport' AND city = 'Rome';
SELECT count(*) FILTER (WHERE birth_date IS NULL) > 0 AS some_null_birth_dates,
       count(*) FILTER (WHERE phone IS NULL) > 0 AS some_null_phones FROM demo.contacts;
-- message events are appended in time order
SELECT bool_and(ordered) AS time_ordered FROM (SELECT occurred_at >= lag(occurred_at, 1, '-infinity') OVER (ORDER BY id) AS ordered FROM demo.message_events) x;
