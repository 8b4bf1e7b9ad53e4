-- Bad input: a SQLSTATE, a message, DETAIL with the JSON path, HINT with the fix. Nothing runs.
CREATE FUNCTION try(sql text) RETURNS TABLE (state text, message text, detail text, hint text)
LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE sql;
  state := 'ok'; RETURN NEXT;
EXCEPTION WHEN OTHERS THEN
  GET STACKED DIAGNOSTICS state = RETURNED_SQLSTATE, message = MESSAGE_TEXT, detail = PG_EXCEPTION_DETAIL, hint = PG_EXCEPTION_HINT;
  RETURN NEXT;
END $$;
\x on
SELECT * FROM try($$SELECT segplan.count('{"all": [{"attr": "country", "op": "eq", "value": "FR"}, {"attr": "countri", "op": "eq", "value": "FR"}]}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('{"event": "purchase_lines", "where": {"any": [{"prop": "colour", "op": "eq", "value": "red"}]}}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('{"event": "nope"}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('{"attr": "country", "op": "like", "value": "F%"}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('{"attr": "country", "op": "eq", "value": "FR", "extra": 1}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('[{"attr": "country", "op": "eq", "value": "FR"}]'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('home_outlet_id <> 9223372036854775807 or birth_date = ''21-12-31''')$$);
SELECT * FROM try($$SELECT segplan.count('{"attr": "home_outlet_id", "op": "eq", "value": "seven"}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('{"attr": "birth_date", "op": "gt", "value": "yesterday"}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('{"all": []}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('{"attr": "home_outlet_id", "op": "between", "value": [9, 3]}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('{"event": "purchase_lines", "within": {"last": {"fortnights": 2}}}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('{"attr": "country", "op": "contains", "value": 3}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('{"attr": "created_at", "op": "contains", "value": "x"}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('{"event": "purchase_lines", "having": [{"fn": "sum", "prop": "category", "op": "gt", "value": 1}]}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('{"segment": "vip"}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('country = ''FR'' and and')$$);
SELECT * FROM try($$SELECT segplan.count('{"attr": "country", "op": "matches", "value": "("}'::jsonb)$$);
-- limits: depth (54001), size (54000), list length (54000)
SELECT * FROM try($$SELECT segplan.count(repeat('{"not": ', 10000) || '{"attr": "country", "op": "is_null"}' || repeat('}', 10000))$$);
SELECT * FROM try($$SELECT segplan.count(repeat('(', 100) || 'country = ''FR''' || repeat(')', 100))$$);
SELECT * FROM try($$SELECT segplan.count('{"attr": "country", "op": "eq", "value": "' || repeat('x', 2000000) || '"}')$$);
SELECT * FROM try($$SELECT segplan.count('{"attr": "country", "op": "in", "value": [' || (SELECT string_agg('"x"', ',') FROM generate_series(1, 100001)) || ']}')$$);
-- `not not … x` nests without parentheses (100000 of them crashed the backend: stack overflow)
SELECT * FROM try($$SELECT segplan.count(repeat('not ', 100000) || 'country = ''FR''')$$);
-- NULL where a value is required: 22004 naming the argument (was XX000 from the function call)
SELECT * FROM try($$SELECT * FROM segplan.eligible(NULL, ARRAY['p'], 'email')$$);
SELECT * FROM try($$SELECT * FROM segplan.eligible(1, ARRAY['p', NULL], 'email')$$);
SELECT * FROM try($$SELECT * FROM segplan.policy_impact('country = ''FR''', ARRAY['p'], 'email', at => NULL)$$);
SELECT * FROM try($$SELECT * FROM segplan.reserve_contacts(ARRAY[1], NULL, 'email')$$);
SELECT * FROM try($$SELECT segplan.save_segment('s', NULL::text)$$);
SELECT * FROM try($$SELECT segplan.record_outcome(1, 2, NULL)$$);
SELECT * FROM try($$SELECT segplan.register_events('e', NULL, 'contact_id')$$);
SELECT * FROM try($$SELECT segplan.configure_rfm(NULL, 'total')$$);
-- times: as_of and a send's time in years 1 to 9999 (±infinity counted nothing, 4713 BC was
-- PostgreSQL's 22008 without a path); a length of time at most 1000 years (10000 years was 22008)
SELECT * FROM try($$SELECT segplan.count('purchase_lines(within last 90 days)', '4713-01-01 BC')$$);
SELECT * FROM try($$SELECT segplan.count('country = ''FR''', 'infinity')$$);
SELECT * FROM try($$SELECT count(*) FROM segplan.members('country = ''FR''', '294276-12-31')$$);
SELECT * FROM try($$SELECT count(*) FROM segplan.count_steps('country = ''FR''', '-infinity')$$);
SELECT * FROM try($$SELECT * FROM segplan.policy_impact('country = ''FR''', ARRAY[]::text[], 'email', at => 'infinity')$$);
SELECT * FROM try($$SELECT segplan.count('purchase_lines(within last 10000 years)')$$);
SELECT * FROM try($$SELECT segplan.count('{"attr": "birth_date", "op": "within_last", "value": {"months": 12001}}'::jsonb)$$);
SELECT * FROM try($$SELECT segplan.count('age(birth_date) between 25 and 500')$$);
SELECT * FROM try($$SELECT segplan.configure_rfm('orders', 'total', lookback => '2000 years')$$);
-- an uploaded key the integer key column cannot read (was int8in's 22P02 without its position)
SELECT * FROM try($$SELECT segplan.bitmap_of(ARRAY['1', ' 2 ', ''])$$);
SELECT segplan.count('purchase_lines(within last 1000 years)', '0001-01-02') AS longest_window_from_year_1;
\x off
-- validate lists every problem and raises nothing
SELECT jsonb_pretty(segplan.validate('{"all": [{"attr": "countri", "op": "eq", "value": 1}, {"event": "purchase_lines", "within": {"last": {"days": 0}}}]}'));
-- a rule that does not read is checked against the model too, where it reads: every problem at once
SELECT p->>'path' AS path, p->>'message' AS message FROM jsonb_array_elements(segplan.validate(
  $$home_outlet_id = 99999999999 or purchase_lines(within last 10000 years) or not countri = 'FR'$$)->'problems') p;
SELECT segplan.validate($$country = 'FR'$$);
