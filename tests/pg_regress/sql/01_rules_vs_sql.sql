-- Every rule type and op, counted and listed by segplan, against a hand-written query on the
-- generated data (3000 contacts, seed 7, ending 2026-11-01). as_of is fixed for reproducibility.
SET timezone = 'UTC';
SELECT segplan.register_contacts('demo.contacts', 'id');
SELECT segplan.register_events('purchase_lines', 'demo.purchase_lines', 'contact_id', 'ordered_at');
SELECT segplan.register_events('message_events', 'demo.message_activity', 'contact_id', 'occurred_at');

CREATE FUNCTION check_rule(rule text, hand text, as_of timestamptz DEFAULT '2026-11-01 00:00:00+00')
RETURNS TABLE (n bigint, same_count boolean, same_members boolean) LANGUAGE plpgsql AS $$
DECLARE hand_ids bigint[]; seg_ids bigint[];
BEGIN
  EXECUTE format('SELECT coalesce(array_agg(id ORDER BY id), ''{}'') FROM (%s) h(id)', hand) INTO hand_ids;
  SELECT coalesce(array_agg(m ORDER BY m), '{}') INTO seg_ids FROM segplan.members(rule, as_of) m;
  n := segplan.count(rule, as_of);
  same_count := n = cardinality(hand_ids);
  same_members := seg_ids = hand_ids;
  RETURN NEXT;
END $$;

CREATE TABLE cases (name text PRIMARY KEY, rule text, hand text);
INSERT INTO cases VALUES
('eq',          $$country = 'FR'$$, $$SELECT id FROM demo.contacts WHERE country = 'FR'$$),
('ne (NULL never matches)', $$country != 'FR'$$, $$SELECT id FROM demo.contacts WHERE country <> 'FR'$$),
('not eq (NULL matches)', $$not country = 'FR'$$, $$SELECT id FROM demo.contacts WHERE country IS DISTINCT FROM 'FR'$$),
('lt date',     $$birth_date < '1960-01-01'$$, $$SELECT id FROM demo.contacts WHERE birth_date < '1960-01-01'$$),
('lte/gte int', $$home_outlet_id >= 10 and home_outlet_id <= 12$$, $$SELECT id FROM demo.contacts WHERE home_outlet_id BETWEEN 10 AND 12$$),
('gt timestamptz', $$created_at > '2026-06-01T00:00:00Z'$$, $$SELECT id FROM demo.contacts WHERE created_at > '2026-06-01'$$),
('between',     $$birth_date between '1970-01-01' and '1979-12-31'$$, $$SELECT id FROM demo.contacts WHERE birth_date BETWEEN '1970-01-01' AND '1979-12-31'$$),
('in',          $$city in ('Rome', 'Milan', 'Naples')$$, $$SELECT id FROM demo.contacts WHERE city IN ('Rome', 'Milan', 'Naples')$$),
('not_in',      $$city not in ('Paris', 'London')$$, $$SELECT id FROM demo.contacts WHERE city NOT IN ('Paris', 'London')$$),
('is_null',     $$gender is null$$, $$SELECT id FROM demo.contacts WHERE gender IS NULL$$),
('not_null',    $$phone is not null$$, $$SELECT id FROM demo.contacts WHERE phone IS NOT NULL$$),
('contains ci', $$first_name contains 'AR'$$, $$SELECT id FROM demo.contacts WHERE lower(first_name) LIKE '%ar%'$$),
('starts_with', $$email starts with 'contact1'$$, $$SELECT id FROM demo.contacts WHERE email LIKE 'contact1%'$$),
('ends_with',   $$first_name ends with 'a'$$, $$SELECT id FROM demo.contacts WHERE lower(first_name) LIKE '%a'$$),
('contains wildcard is literal', $$email contains '_'$$, $$SELECT id FROM demo.contacts WHERE strpos(email, '_') > 0$$),
('matches',     $$first_name matches '^[LM]'$$, $$SELECT id FROM demo.contacts WHERE first_name ~ '^[LM]'$$),
('bool shorthand', $$email_opt_in$$, $$SELECT id FROM demo.contacts WHERE email_opt_in$$),
('within_last', $$created_at within last 90 days$$, $$SELECT id FROM demo.contacts WHERE created_at BETWEEN timestamptz '2026-11-01' - interval '90 days' AND '2026-11-01'$$),
('not_within_last', $$created_at not within last 1 years$$, $$SELECT id FROM demo.contacts WHERE NOT (created_at BETWEEN timestamptz '2026-11-01' - interval '1 year' AND '2026-11-01')$$),
('age_between', $$age(birth_date) between 25 and 40$$, $$SELECT id FROM demo.contacts WHERE extract(year FROM age(date '2026-11-01', birth_date)) BETWEEN 25 AND 40$$),
('all/any/not', $$(country = 'IT' or country = 'ES') and not gender = 'M'$$, $$SELECT id FROM demo.contacts WHERE country IN ('IT', 'ES') AND gender IS DISTINCT FROM 'M'$$),
('event at least one', $$purchase_lines(where category = 'bags')$$, $$SELECT DISTINCT contact_id FROM demo.purchase_lines WHERE category = 'bags'$$),
('event window', $$message_events(where event_type = 'click' and campaign_kind = 'newsletter', within last 90 days)$$,
   $$SELECT DISTINCT contact_id FROM demo.message_activity WHERE event_type = 'click' AND campaign_kind = 'newsletter' AND occurred_at BETWEEN timestamptz '2026-11-01' - interval '90 days' AND '2026-11-01'$$),
('event fixed range', $$purchase_lines(within from '2026-01-01' to '2026-02-01')$$,
   $$SELECT DISTINCT contact_id FROM demo.purchase_lines WHERE ordered_at >= '2026-01-01' AND ordered_at < '2026-02-01'$$),
('count >= 3 opens, no click 30d', $$message_events(where event_type = 'open', within last 30 days, count >= 3) and no message_events(where event_type = 'click', within last 30 days)$$,
   $$SELECT contact_id FROM demo.message_events WHERE event_type = 'open' AND occurred_at BETWEEN timestamptz '2026-11-01' - interval '30 days' AND '2026-11-01' GROUP BY 1 HAVING count(*) >= 3
     EXCEPT SELECT contact_id FROM demo.message_events WHERE event_type = 'click' AND occurred_at BETWEEN timestamptz '2026-11-01' - interval '30 days' AND '2026-11-01'$$),
('count < 2 includes no events', $$purchase_lines(within last 1 years, count < 2)$$,
   $$SELECT id FROM demo.contacts c WHERE (SELECT count(*) FROM demo.purchase_lines p WHERE p.contact_id = c.id AND ordered_at BETWEEN timestamptz '2026-11-01' - interval '1 year' AND '2026-11-01') < 2$$),
('count = 0 is never', $$purchase_lines(count = 0)$$, $$SELECT id FROM demo.contacts c WHERE NOT EXISTS (SELECT FROM demo.purchase_lines p WHERE p.contact_id = c.id)$$),
('performed false', $$no purchase_lines()$$, $$SELECT id FROM demo.contacts c WHERE NOT EXISTS (SELECT FROM demo.orders o WHERE o.contact_id = c.id)$$),
('having sum/avg/min/max/count_distinct', $$purchase_lines(sum(line_total) > 500, avg(line_total) >= 40, min(qty) = 1, max(ordered_at) > '2026-06-01', count_distinct(order_id) >= 3)$$,
   $$SELECT contact_id FROM demo.purchase_lines GROUP BY 1 HAVING sum(line_total) > 500 AND avg(line_total) >= 40 AND min(qty) = 1 AND max(ordered_at) > '2026-06-01' AND count(DISTINCT order_id) >= 3$$),
('brochure', $$purchase_lines(where product_range = 'children' and on_sale and outlet_kind = 'airport' and city = 'Rome', within last 6 months, sum(qty) >= 3, sum(line_total) > 200)$$,
   $$SELECT contact_id FROM demo.purchase_lines WHERE product_range = 'children' AND on_sale AND outlet_kind = 'airport' AND city = 'Rome'
     AND ordered_at BETWEEN timestamptz '2026-11-01' - interval '6 months' AND '2026-11-01' GROUP BY 1 HAVING sum(qty) >= 3 AND sum(line_total) > 200$$),
('brochure, wider', $$purchase_lines(where product_range = 'children' and on_sale, within last 6 months, sum(qty) >= 3, sum(line_total) > 100)$$,
   $$SELECT contact_id FROM demo.purchase_lines WHERE product_range = 'children' AND on_sale
     AND ordered_at BETWEEN timestamptz '2026-11-01' - interval '6 months' AND '2026-11-01' GROUP BY 1 HAVING sum(qty) >= 3 AND sum(line_total) > 100$$),
('ratio', $$ratio(purchase_lines, per order_id, match category = 'bags' and color = 'black', min_occasions 2) >= 0.1$$,
   $$SELECT contact_id FROM (SELECT contact_id, order_id, bool_or(category = 'bags' AND color = 'black') AS hit FROM demo.purchase_lines GROUP BY 1, 2) o
     GROUP BY 1 HAVING count(*) >= 2 AND count(*) FILTER (WHERE hit) >= 0.1 * count(*)$$),
('ratio with of and window', $$ratio(purchase_lines, per order_id, of order_channel = 'store', match on_sale, within last 1 years) > 0.5$$,
   $$SELECT contact_id FROM (SELECT contact_id, order_id, bool_or(order_channel = 'store') AS is_of, bool_or(on_sale) AS hit FROM demo.purchase_lines
       WHERE ordered_at BETWEEN timestamptz '2026-11-01' - interval '1 year' AND '2026-11-01' GROUP BY 1, 2) o
     WHERE is_of GROUP BY 1 HAVING count(*) FILTER (WHERE hit) > 0.5 * count(*)$$),
('sequence gap >', $$sequence(message_events(where event_type = 'click' and campaign_kind = 'newsletter'), then purchase_lines(), gap > 30 days)$$,
   $$SELECT DISTINCT m.contact_id FROM demo.message_activity m JOIN demo.orders o ON o.contact_id = m.contact_id
     WHERE m.event_type = 'click' AND m.campaign_kind = 'newsletter' AND o.ordered_at > m.occurred_at + interval '30 days'$$),
('sequence gap <=', $$sequence(message_events(where event_type = 'click'), then purchase_lines(where on_sale), gap <= 3 days)$$,
   $$SELECT DISTINCT m.contact_id FROM demo.message_events m JOIN demo.purchase_lines o ON o.contact_id = m.contact_id
     WHERE m.event_type = 'click' AND o.on_sale AND o.ordered_at > m.occurred_at AND o.ordered_at <= m.occurred_at + interval '3 days'$$),
('empty result', $$country = 'XX'$$, $$SELECT id FROM demo.contacts WHERE false$$),
('in json with list param', '{"attr": "loyalty_tier", "op": "in", "value": ["gold", "platinum"]}', $$SELECT id FROM demo.contacts WHERE loyalty_tier IN ('gold', 'platinum')$$);

SELECT c.name, r.n, r.same_count, r.same_members FROM cases c, check_rule(c.rule, c.hand) r ORDER BY c.name;

-- count_steps: each condition alone and the running result
SELECT * FROM segplan.count_steps($$country = 'FR' and email_opt_in and purchase_lines(within last 1 years)$$, '2026-11-01');
SELECT (SELECT count(*) FROM demo.contacts WHERE country = 'FR' AND email_opt_in) AS by_hand_step2;
SELECT * FROM segplan.count_steps($$country = 'FR' or country = 'DE'$$, '2026-11-01');
SELECT * FROM segplan.count_steps('{"attr": "country", "op": "eq", "value": "FR"}'::jsonb, '2026-11-01');

-- as_of makes relative windows reproducible
SELECT segplan.count('purchase_lines(within last 30 days)', '2026-11-01') AS nov,
       segplan.count('purchase_lines(within last 30 days)', '2026-06-01') AS june;

-- members joins back to the contacts' index
SELECT count(*) FROM demo.contacts c JOIN segplan.members($$country = 'IT'$$) m ON c.id = m;

-- the same cases through the plain SQL engine (no bitmaps, no cache)
SET segplan.engine = sql;
SELECT count(*) AS cases, count(*) FILTER (WHERE r.same_count AND r.same_members) AS agree FROM cases c, check_rule(c.rule, c.hand) r;
RESET segplan.engine;

-- The SQL engine writes "no …" / "not …" of related rows as NOT EXISTS: an anti-join whatever
-- work_mem is (NOT IN is a sub-plan, re-run for every contact once its hash outgrows work_mem).
-- Its values are typed parameters: PREPARE infers their types from the statement alone.
SET work_mem = '64kB';
DO $$
DECLARE plan text; anti int := 0; sub int := 0;
BEGIN
  EXECUTE 'PREPARE lapsed AS ' || segplan.to_sql($r$no message_events(where event_type = 'open', within last 30 days) and not purchase_lines(where on_sale)$r$);
  FOR plan IN EXECUTE $q$EXPLAIN (COSTS OFF) EXECUTE lapsed('2026-11-01', 'open', '2026-10-02', true)$q$ LOOP
    anti := anti + (plan ~ 'Anti Join')::int;
    sub := sub + (plan ~ 'SubPlan')::int;
  END LOOP;
  RAISE NOTICE 'anti-joins: %, sub-plans: %', anti, sub;
  DEALLOCATE lapsed;
END $$;
RESET work_mem;
