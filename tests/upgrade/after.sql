-- The same install after ALTER EXTENSION segplan UPDATE: what it held still answers the same.
SELECT extversion FROM pg_extension WHERE extname = 'segplan';
SELECT segplan.count('segment(''fr_buyers'')', '2026-11-01 00:00:00+00') = (SELECT n FROM counted) AS same_count;
SELECT name FROM segplan.segments ORDER BY 1;
SELECT name FROM segplan.policies ORDER BY 1;
SELECT segplan.model() -> 'rfm' ->> 'window' AS rfm_window;
SELECT segplan.configure_rfm('orders', 'total', lookback => '2 years') ->> 'window' AS rfm_window_now;
-- the update gave the registered tables the keyed triggers: a write is patched into cached bitmaps
SELECT tgrelid::regclass::text AS keyed, string_agg(tgname, ', ' ORDER BY tgname) AS triggers FROM pg_trigger
WHERE tgname LIKE 'segplan%' AND tgrelid IN ('demo.contacts'::regclass, 'demo.orders'::regclass) GROUP BY 1 ORDER BY 1;
SELECT segplan.count('country = ''FR'' and orders()') = (SELECT count(*) FROM demo.contacts c WHERE c.country = 'FR' AND EXISTS (SELECT FROM demo.orders o WHERE o.contact_id = c.id)) AS before_write;
UPDATE demo.contacts SET country = 'FR' WHERE id = (SELECT min(id) FROM demo.contacts WHERE country <> 'FR');
SELECT segplan.count('country = ''FR'' and orders()') = (SELECT count(*) FROM demo.contacts c WHERE c.country = 'FR' AND EXISTS (SELECT FROM demo.orders o WHERE o.contact_id = c.id)) AS after_write;
SELECT condition, origin FROM segplan.cache_stats() ORDER BY 1;
-- the shared cache now keeps as_of: another session at the next minute takes the bitmap to shift
-- it (built here: with 1500 orders and no index on ordered_at, building is the cheaper way)
SELECT segplan.count('orders(within last 30 days)', '2026-10-21 00:00+00') = (SELECT count(DISTINCT o.contact_id) FROM demo.orders o
  JOIN demo.contacts c ON c.id = o.contact_id WHERE o.ordered_at BETWEEN '2026-09-21 00:00+00' AND '2026-10-21 00:00+00') AS window_counted;
SELECT count(*) AS shared_with_as_of FROM segplan.leaf_cache WHERE as_of = '2026-10-21 00:00+00' AND moves IS NOT NULL;
\c
SELECT segplan.count('orders(within last 30 days)', '2026-10-21 00:01+00') = (SELECT count(DISTINCT o.contact_id) FROM demo.orders o
  JOIN demo.contacts c ON c.id = o.contact_id WHERE o.ordered_at BETWEEN '2026-09-21 00:01+00' AND '2026-10-21 00:01+00') AS window_next_minute;
