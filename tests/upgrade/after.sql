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
