-- An install of segplan 0.1.0 in use: a model, an RFM configuration (0.1.0's parameter name), a
-- saved segment and a policy, all kept through the update (pg_cron is in the regression database
-- only, so neither install has it).
SET client_min_messages = warning;
CREATE EXTENSION segplan VERSION '0.1.0';
SELECT demo.generate(500, 3, '2026-11-01 00:00:00+00') IS NOT NULL AS generated;
SELECT segplan.register_contacts('demo.contacts', 'id') IS NOT NULL AS contacts;
SELECT segplan.register_events('orders', 'demo.orders', 'contact_id', 'ordered_at') IS NOT NULL AS orders;
SELECT segplan.configure_rfm('orders', 'total', "window" => '1 year') ->> 'window' AS rfm_window;
SELECT segplan.save_segment('fr_buyers', $$country = 'FR' and orders(count >= 1)$$) IS NOT NULL AS segment;
SELECT segplan.create_policy('daily', '{"rules": [{"max_contacts": 1, "per": {"days": 1}, "count_across": "all_brands"}]}') IS NOT NULL AS policy;
-- this build's library under 0.1.0's SQL: a write after a count is counted (the log has no keys:
-- the bitmaps are built again, not patched)
SELECT segplan.count('segment(''fr_buyers'')', '2026-11-01 00:00:00+00') > 0 AS counted_before_the_write;
UPDATE demo.contacts SET country = 'FR' WHERE id = (SELECT min(c.id) FROM demo.contacts c WHERE c.country <> 'FR' AND EXISTS (SELECT FROM demo.orders o WHERE o.contact_id = c.id));
SELECT segplan.count('segment(''fr_buyers'')', '2026-11-01 00:00:00+00') = (SELECT count(*) FROM demo.contacts c WHERE c.country = 'FR'
  AND EXISTS (SELECT FROM demo.orders o WHERE o.contact_id = c.id)) AS counted_after_the_write;
SELECT origin, count(*) FROM segplan.cache_stats() GROUP BY 1 ORDER BY 1;
-- a relative window, then another session at the next minute (0.1.0's shared cache keeps no as_of:
-- the new session's library finds no bitmap there to shift)
SELECT segplan.count('orders(within last 30 days)', '2026-10-20 00:00+00') = (SELECT count(DISTINCT o.contact_id) FROM demo.orders o
  JOIN demo.contacts c ON c.id = o.contact_id WHERE o.ordered_at BETWEEN '2026-09-20 00:00+00' AND '2026-10-20 00:00+00') AS window_counted;
\c
SELECT segplan.count('orders(within last 30 days)', '2026-10-20 00:01+00') = (SELECT count(DISTINCT o.contact_id) FROM demo.orders o
  JOIN demo.contacts c ON c.id = o.contact_id WHERE o.ordered_at BETWEEN '2026-09-20 00:01+00' AND '2026-10-20 00:01+00') AS window_next_minute;
CREATE TABLE counted AS SELECT segplan.count('segment(''fr_buyers'')', '2026-11-01 00:00:00+00') AS n;
SELECT extversion FROM pg_extension WHERE extname = 'segplan';
