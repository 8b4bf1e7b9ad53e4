-- The same install after ALTER EXTENSION segplan UPDATE: what it held still answers the same.
SELECT extversion FROM pg_extension WHERE extname = 'segplan';
SELECT segplan.count('segment(''fr_buyers'')', '2026-11-01 00:00:00+00') = (SELECT n FROM counted) AS same_count;
SELECT name FROM segplan.segments ORDER BY 1;
SELECT name FROM segplan.policies ORDER BY 1;
SELECT segplan.model() -> 'rfm' ->> 'window' AS rfm_window;
SELECT segplan.configure_rfm('orders', 'total', lookback => '2 years') ->> 'window' AS rfm_window_now;
