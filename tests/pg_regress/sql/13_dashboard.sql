-- The segment dashboard: fields detected from the model and overridden, every indicator against
-- a hand-written query on the generated data.
SET timezone = 'UTC';
SET client_min_messages = warning;
SELECT segplan.register_contacts('demo.contacts', 'id');
SELECT segplan.register_events('message_events', 'demo.message_activity', 'contact_id', 'occurred_at');
SELECT segplan.register_events('purchase_lines', 'demo.purchase_lines', 'contact_id', 'ordered_at');
RESET client_min_messages;
SELECT jsonb_pretty(segplan.dashboard_fields());
-- purchases per order, with categories; no outlet distribution
SELECT jsonb_pretty(segplan.configure_dashboard('{"purchases": {"event": "purchase_lines", "amount": "line_total", "occasion": "order_id", "category": "category"}, "outlet": null}'));
SELECT segplan.configure_dashboard('{"colour": "x", "city": "nope", "opt_ins": ["birth_date"], "messages": {"event": "purchase_lines", "type_property": "qty", "sent": "s", "open": "o", "click": "c"}}');
SELECT segplan.save_segment('fr_women', $$country = 'FR' and gender = 'F'$$);
SELECT segplan.save_segment('paris', $$city = 'Paris'$$);

CREATE TEMP TABLE d AS SELECT segplan.segment_dashboard('paris', 3, '2026-11-01 00:00+00') AS j;
CREATE TEMP VIEW paris AS SELECT * FROM demo.contacts WHERE city = 'Paris';
SELECT (j->>'size')::bigint = (SELECT count(*) FROM paris) AS size_ok,
       (j->>'share_of_contacts')::numeric = round((SELECT count(*) FROM paris)::numeric / (SELECT count(*) FROM demo.contacts), 4) AS share_ok
FROM d;
SELECT j->'gender' = (SELECT jsonb_agg(jsonb_build_object('value', g, 'contacts', n, 'share', round(n::numeric / t, 4)) ORDER BY n DESC, g)
                      FROM (SELECT coalesce(gender, '(none)') AS g, count(*) AS n, (SELECT count(*) FROM paris) AS t FROM paris GROUP BY 1
                            ORDER BY 2 DESC, 1 LIMIT 3) x) AS gender_ok,
       jsonb_array_length(j->'city') AS cities, j ? 'outlet' AS has_outlet, j->'tier'->0->>'value' IS NOT NULL AS has_tier
FROM d;
SELECT (SELECT sum((b->>'contacts')::bigint) FROM jsonb_array_elements(j->'age_band') b) = (SELECT count(*) FROM paris) AS age_bands_cover_all,
       (SELECT (b->>'contacts')::bigint FROM jsonb_array_elements(j->'age_band') b WHERE b->>'value' = '25-34')
     = (SELECT count(*) FROM paris WHERE extract(year FROM age('2026-11-01'::date, birth_date)) BETWEEN 25 AND 34) AS age_25_34_ok
FROM d;
SELECT (j->'reachability'->'email_opt_in'->>'contacts')::bigint = (SELECT count(*) FROM paris WHERE email_opt_in) AS email_ok,
       (j->'reachability'->'sms_opt_in'->>'contacts')::bigint = (SELECT count(*) FROM paris WHERE sms_opt_in) AS sms_ok
FROM d;
WITH e AS (SELECT * FROM demo.message_activity WHERE contact_id IN (SELECT id FROM paris)
           AND occurred_at > '2026-11-01'::timestamptz - interval '90 days' AND occurred_at <= '2026-11-01')
SELECT (j->'engagement_90_days'->>'sent')::bigint = (SELECT count(*) FROM e WHERE event_type = 'sent') AS sent_ok,
       (j->'engagement_90_days'->>'opens')::bigint = (SELECT count(*) FROM e WHERE event_type = 'open') AS opens_ok,
       (j->'engagement_90_days'->>'open_rate')::numeric
     = round((SELECT count(*) FROM e WHERE event_type = 'open')::numeric / (SELECT count(*) FROM e WHERE event_type = 'sent'), 4) AS open_rate_ok,
       (j->'engagement_90_days'->>'clicks')::bigint = (SELECT count(*) FROM e WHERE event_type = 'click') AS clicks_ok
FROM d;
WITH p AS (SELECT * FROM demo.purchase_lines WHERE contact_id IN (SELECT id FROM paris)
           AND ordered_at > '2026-11-01'::timestamptz - interval '365 days' AND ordered_at <= '2026-11-01')
SELECT (j->'purchases_365_days'->>'buyers')::bigint = (SELECT count(DISTINCT contact_id) FROM p) AS buyers_ok,
       (j->'purchases_365_days'->>'total_spend')::numeric = (SELECT round(sum(line_total), 2) FROM p) AS spend_ok,
       (j->'purchases_365_days'->>'orders_per_buyer')::numeric = (SELECT round(count(DISTINCT order_id)::numeric / count(DISTINCT contact_id), 2) FROM p) AS orders_per_buyer_ok,
       (j->'purchases_365_days'->'top_categories'->0->>'value') = (SELECT category FROM p GROUP BY 1 ORDER BY count(DISTINCT contact_id) DESC, 1 LIMIT 1) AS top_category_ok
FROM d;
-- no RFM configured: no RFM mix; configured: the mix adds up to the members with scores
SELECT j ? 'rfm_clusters' AS has_rfm FROM d;
SELECT segplan.configure_rfm('purchase_lines', 'line_total', 'order_id') IS NOT NULL AS rfm_on;
SELECT (SELECT sum((c->>'contacts')::bigint) FROM jsonb_array_elements(segplan.segment_dashboard('paris', 3, '2026-11-01 00:00+00')->'rfm_clusters') c)
     = (SELECT count(*) FROM segplan.rfm_scores('2026-11-01 00:00+00') s WHERE s.contact_key IN (SELECT id FROM paris)) AS rfm_mix_ok;
-- the same indicators as rows
SELECT section, count(*) AS rows FROM segplan.segment_dashboard_rows('fr_women', 2, '2026-11-01 00:00+00') GROUP BY 1 ORDER BY 1;
SELECT label FROM segplan.segment_dashboard_rows('fr_women') WHERE section = 'reachable' ORDER BY 1;
SELECT segplan.segment_dashboard('nope');
-- a negative top_n is 22023 (was PostgreSQL's LIMIT error)
SELECT segplan.segment_dashboard('paris', -1);

DELETE FROM segplan.rfm_config;
DELETE FROM segplan.dashboard_config;
SELECT segplan.drop_segment('fr_women'), segplan.drop_segment('paris');
