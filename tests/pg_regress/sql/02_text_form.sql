-- The text form and JSON: parse, format, round trip.
SELECT segplan.parse($$country = 'FR' and age(birth_date) between 25 and 40$$);
SELECT segplan.format('{"any": [{"attr": "city", "op": "in", "value": ["Rome", "Milan"]}, {"not": {"attr": "phone", "op": "is_null"}}]}'::jsonb);
SELECT segplan.format(segplan.parse(t)) = t AS round_trip, t FROM (VALUES
  ($$country = 'FR' and (city = 'Paris' or city = 'Lyon')$$),
  ($$purchase_lines(where product_range = 'children' and on_sale = true, within last 6 months, sum(qty) >= 3, sum(line_total) > 200)$$),
  ($$no message_events(where event_type = 'click', within last 90 days)$$),
  ($$ratio(purchase_lines, per order_id, of category = 'bags', match color = 'yellow', within last 12 months, min_occasions 3) >= 0.1$$),
  ($$sequence(message_events(where event_type = 'click'), then purchase_lines(), gap > 30 days)$$),
  ($$"count" = 1 and "select"" drop" <> 'x''y'$$),
  ($$all(country = 'FR')$$),
  ($$not not email_opt_in = true$$),
  ($$created_at within last 2 weeks and created_at not within last 1 hours$$),
  ($$purchase_lines(within from '2026-01-01' to '2026-02-01', count_distinct(order_id) >= 2)$$),
  ($$segment('vip')$$)) v(t);
-- keywords are case-insensitive, spacing is free, singular units and != are accepted
SELECT segplan.format($$COUNTRY != 'FR' AND Purchase_Lines( WITHIN LAST 1 MONTH )$$);
-- jsonb and text give the same JSON
SELECT segplan.parse('{"attr": "a", "op": "eq", "value": 1.50}') = '{"attr": "a", "op": "eq", "value": 1.50}'::jsonb AS same;
