-- Plans: spec validation, the calendar across a DST change in a non-UTC zone, exceptions, runs
-- exactly once (by hand and by the scheduler), min/exact/shortfall, test contacts, a stable
-- holdout, caps shared between two plans, failed hand-offs, versions, exports, pg_cron.
SET timezone = 'UTC';
SET client_min_messages = warning;
SELECT segplan.register_contacts('demo.contacts', 'id');
SELECT segplan.register_events('purchase_lines', 'demo.purchase_lines', 'contact_id', 'ordered_at');
RESET client_min_messages;
SELECT segplan.save_segment('it', $$country = 'IT'$$) IS NOT NULL AS segment;
SELECT segplan.create_policy('daily', '{"rules": [{"max_contacts": 1, "per": {"days": 1}, "count_across": "all_brands"}]}') IS NOT NULL AS policy;

-- bad specs: every problem with its path, nothing created
SELECT segplan.create_plan('bad', '{"segment": "nope", "channel": "email", "policies": ["nope"], "schedule": {"weekdays": ["tue", "funday"], "at": "25:00", "time_zone": "Mars/Olympus"}, "target": {"min": 0}, "delivery": {"handler": "public.missing"}, "colour": 1}');
SELECT segplan.create_plan('bad', '{"segment": "nope", "channel": "email", "policies": ["nope"], "schedule": {"cron": "0 9 * * *", "time_zone": "Mars/Olympus"}, "delivery": {"handler": "public.missing"}}');
SELECT segplan.create_plan('bad', '{"rule": {"attr": "countri", "op": "eq", "value": "IT"}, "channel": "email", "schedule": {"once": "2026-03-24 09:00", "time_zone": "UTC"}}');
SELECT segplan.create_plan(' ', '{"segment": "it", "channel": "email", "schedule": {"once": "2026-03-24 09:00", "time_zone": "UTC"}}');
-- a handler that is not a function name is the spec's problem (it was PostgreSQL's parse error)
SELECT segplan.create_plan('bad', '{"segment": "it", "channel": "email", "schedule": {"once": "2026-03-24 09:00", "time_zone": "UTC"}, "delivery": {"handler": "crm.deliver(bigint); drop"}}');
SELECT count(*) AS plans FROM segplan.plans;

-- Tuesdays and Thursdays at 09:00 in Paris: 08:00 UTC before the DST change of March 29, 07:00 after
SELECT segplan.create_plan('it_weekly', '{"segment": "it", "channel": "email", "brand": "acme", "policies": ["daily"],
  "schedule": {"weekdays": ["tue", "thu"], "at": "09:00", "time_zone": "Europe/Paris", "from": "2026-03-20", "until": "2026-04-05"},
  "exceptions": ["2026-04-02"], "test_contacts": [2999, 3000], "test_addresses": ["qa@example.com"], "holdout_percent": 20}') AS weekly \gset
SELECT segplan.activate_plan(:weekly);
SELECT plan, slot, channel, brand FROM segplan.calendar('2026-03-01', '2026-05-01');

-- the calendar leaves out the blackout dates of the plan's policies
SELECT segplan.create_policy('xmas', '{"rules": [{"blackout_dates": ["2026-12-25"]}]}') IS NOT NULL AS policy;
SELECT segplan.create_plan('fridays', '{"segment": "it", "channel": "email", "policies": ["xmas"], "schedule": {"weekdays": ["fri"], "at": "09:00", "time_zone": "Europe/Paris"}}') AS fri \gset
SELECT segplan.activate_plan(:fri);
SELECT slot FROM segplan.calendar('2026-12-15', '2027-01-05') WHERE plan_id = :fri;
-- times with no local time, and a calendar too long to list, are 22023 (infinity was XX000, and
-- so were years of five digits: the local time was read back with four)
SELECT * FROM segplan.calendar('-infinity', 'infinity');
SELECT * FROM segplan.calendar('262000-01-01', '262000-01-03');
SELECT segplan.tick('10000-01-01');
SELECT count(*) AS last_days FROM segplan.calendar('9999-12-01', '9999-12-30 23:00+00');
SELECT * FROM segplan.calendar('2026-01-01', '2036-01-20');
SELECT segplan.tick('infinity');
SELECT segplan.run_plan(:fri, '-infinity');
SELECT segplan.pause_plan(:fri);

-- a run by hand; the same slot again is the same run
SELECT segplan.run_plan(:weekly, '2026-03-24 08:00+00') AS run1 \gset
SELECT segplan.run_plan(:weekly, '2026-03-24 08:00+00') = :run1 AS same_run;
SELECT status, version, segment_size = (SELECT count(*) FROM demo.contacts WHERE country = 'IT') AS size_ok,
       sent + holdout + excluded = segment_size AS adds_up, test
FROM segplan.plan_runs WHERE id = :run1;
SELECT status, count(*) FROM segplan.run_contacts WHERE run_id = :run1 GROUP BY 1 ORDER BY 1;
-- the holdout is about a fifth, and test contacts are not in the history
SELECT round(holdout::numeric / segment_size, 1) AS holdout_share FROM segplan.plan_runs WHERE id = :run1;
SELECT count(*) AS history_rows, count(*) FILTER (WHERE contact_key IN (2999, 3000)) AS test_in_history
FROM segplan.contact_history WHERE run_id = :run1;
SELECT (SELECT count(*) FROM segplan.export_run(:run1, NULL::demo.contacts)) = (SELECT sent + test FROM segplan.plan_runs WHERE id = :run1) AS export_ok,
       (SELECT bool_and(contact ? 'email') FROM segplan.export_run(:run1) WHERE contact_key IS NOT NULL) AS json_export_ok,
       (SELECT array_agg(contact->>'address') FROM segplan.export_run(:run1) WHERE status = 'test_address') AS test_addresses;
SELECT jsonb_array_length(waterfall) > 3 AS has_waterfall, waterfall->2->>'rule' AS first_policy_rule FROM segplan.plan_runs WHERE id = :run1;
-- two days later the same contacts (not held out) are sent again, the holdout is the same set
SELECT segplan.run_plan(:weekly, '2026-03-26 08:00+00') AS run2 \gset
SELECT (SELECT array_agg(contact_key ORDER BY contact_key) FROM segplan.run_contacts WHERE run_id = :run1 AND status = 'holdout')
     = (SELECT array_agg(contact_key ORDER BY contact_key) FROM segplan.run_contacts WHERE run_id = :run2 AND status = 'holdout') AS stable_holdout;

-- a second plan the same day: the cap counts the first plan's contacts
SELECT segplan.create_plan('it_sms', '{"segment": "it", "channel": "sms", "brand": "zenith", "policies": ["daily"], "priority": 5,
  "schedule": {"once": "2026-03-26 12:00", "time_zone": "UTC"}}') AS sms \gset
SELECT segplan.run_plan(:sms, '2026-03-26 12:00+00') AS run3 \gset
SELECT sent, sent + (SELECT sent FROM segplan.plan_runs WHERE id = :run2) <= (SELECT count(*) FROM demo.contacts WHERE country = 'IT') AS cap_holds,
       NOT EXISTS (SELECT 1 FROM segplan.run_contacts a JOIN segplan.run_contacts b USING (contact_key)
                   WHERE a.run_id = :run2 AND b.run_id = :run3 AND a.status = 'sent' AND b.status = 'sent') AS nobody_twice
FROM segplan.plan_runs WHERE id = :run3;

-- exact with a seeded sample is reproducible; exact by attribute; min with shortfall
SELECT segplan.create_plan('sample_a', '{"rule": {"attr": "country", "op": "eq", "value": "ES"}, "channel": "push", "target": {"exact": 10, "seed": 7}, "schedule": {"once": "2026-05-01 10:00", "time_zone": "UTC"}}') AS sa \gset
SELECT segplan.create_plan('sample_b', '{"rule": {"attr": "country", "op": "eq", "value": "ES"}, "channel": "push", "target": {"exact": 10, "seed": 7}, "schedule": {"once": "2026-05-01 10:00", "time_zone": "UTC"}}') AS sb \gset
SELECT segplan.run_plan(:sa, '2026-05-01 10:00+00') AS ra \gset
SELECT segplan.run_plan(:sb, '2026-05-01 10:00+00') AS rb \gset
SELECT (SELECT array_agg(contact_key ORDER BY contact_key) FROM segplan.run_contacts WHERE run_id = :ra)
     = (SELECT array_agg(contact_key ORDER BY contact_key) FROM segplan.run_contacts WHERE run_id = :rb) AS same_sample,
       (SELECT sent FROM segplan.plan_runs WHERE id = :ra) AS sent;
SELECT segplan.create_plan('oldest', '{"rule": {"attr": "country", "op": "eq", "value": "ES"}, "channel": "mail", "target": {"exact": 3, "order_by": {"attr": "birth_date"}}, "schedule": {"once": "2026-05-01 10:00", "time_zone": "UTC"}}') AS old \gset
SELECT segplan.run_plan(:old, '2026-05-01 10:00+00') AS ro \gset
SELECT (SELECT array_agg(contact_key ORDER BY contact_key) FROM segplan.run_contacts WHERE run_id = :ro)
     = (SELECT array_agg(id ORDER BY id) FROM (SELECT id FROM demo.contacts WHERE country = 'ES' ORDER BY birth_date NULLS LAST, id LIMIT 3) x) AS oldest_three;
-- exact by RFM score: the best monetary scores first, contacts without purchases last
SELECT segplan.configure_rfm('purchase_lines', 'line_total', 'order_id') IS NOT NULL AS rfm;
SELECT segplan.create_plan('big_spenders', '{"rule": {"attr": "country", "op": "eq", "value": "ES"}, "channel": "mail", "target": {"exact": 5, "order_by": {"rfm": "m"}}, "schedule": {"once": "2026-05-01 10:00", "time_zone": "UTC"}}') AS bs \gset
SELECT segplan.run_plan(:bs, '2026-05-01 10:00+00') AS rbs \gset
SELECT (SELECT array_agg(contact_key ORDER BY contact_key) FROM segplan.run_contacts WHERE run_id = :rbs)
     = (SELECT array_agg(id ORDER BY id) FROM (SELECT c.id FROM demo.contacts c LEFT JOIN segplan.rfm_scores('2026-05-01 10:00+00') s ON s.contact_key = c.id
        WHERE c.country = 'ES' ORDER BY s.m DESC NULLS LAST, c.id LIMIT 5) x) AS best_m_five;
DELETE FROM segplan.rfm_config;
SELECT segplan.create_plan('no_rfm', '{"rule": {"attr": "country", "op": "eq", "value": "ES"}, "channel": "mail", "target": {"exact": 5, "order_by": {"rfm": "m"}}, "schedule": {"once": "2026-05-01 10:00", "time_zone": "UTC"}}');
SELECT segplan.create_plan('too_few', '{"rule": {"attr": "country", "op": "eq", "value": "ES"}, "channel": "push", "target": {"min": 100000}, "schedule": {"once": "2026-05-02 10:00", "time_zone": "UTC"}}') AS few \gset
SELECT segplan.run_plan(:few, '2026-05-02 10:00+00') AS rf \gset
SELECT status, sent, (SELECT count(*) FROM segplan.run_contacts WHERE run_id = :rf) AS listed,
       (SELECT count(*) FROM segplan.contact_history WHERE run_id = :rf) AS history FROM segplan.plan_runs WHERE id = :rf;
SELECT segplan.update_plan(:few, '{"rule": {"attr": "country", "op": "eq", "value": "ES"}, "channel": "push", "target": {"min": 100000, "on_shortfall": "send_anyway"}, "schedule": {"once": "2026-05-02 10:00", "time_zone": "UTC"}}') AS new_version;
SELECT segplan.run_plan(:few, '2026-05-03 10:00+00') AS rf2 \gset
SELECT status, version, sent > 0 AS sent FROM segplan.plan_runs WHERE id = :rf2;

-- a failing hand-off leaves nothing behind and is recorded; after the fix the slot runs once
CREATE FUNCTION public.flaky_delivery(run_id bigint) RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_class WHERE relname = 'delivery_ok') THEN
    RAISE EXCEPTION 'ESP is down';
  END IF;
  INSERT INTO public.delivery_ok SELECT run_id;  -- handlers run with segplan's pinned search_path
END $$;
SELECT segplan.create_plan('handoff', '{"rule": {"attr": "country", "op": "eq", "value": "BE"}, "channel": "email", "delivery": {"handler": "public.flaky_delivery"}, "schedule": {"once": "2026-06-01 10:00", "time_zone": "UTC"}}') AS ho \gset
SELECT segplan.run_plan(:ho, '2026-06-01 10:00+00') AS rh \gset
SELECT status, error, (SELECT count(*) FROM segplan.run_contacts WHERE run_id = :rh) AS listed,
       (SELECT count(*) FROM segplan.contact_history WHERE run_id = :rh) AS history FROM segplan.plan_runs WHERE id = :rh;
CREATE TABLE delivery_ok (run_id bigint);
SELECT segplan.run_plan(:ho, '2026-06-01 10:00+00') = :rh AS same_run_retried;
SELECT status, error, sent > 0 AS sent, (SELECT count(*) FROM delivery_ok) AS handed_off FROM segplan.plan_runs WHERE id = :rh;

-- the scheduler: due slots run once; missed ones are skipped (or caught up); a one-off completes
SELECT segplan.create_plan('daily_it', '{"segment": "it", "channel": "push", "schedule": {"cron": "0 9 * * *", "time_zone": "Europe/Rome"}}') AS daily \gset
SELECT segplan.create_plan('daily_catch_up', '{"segment": "it", "channel": "letter", "schedule": {"cron": "0 9 * * *", "time_zone": "Europe/Rome", "catch_up": true}}') AS catchup \gset
SELECT segplan.create_plan('once_soon', '{"segment": "it", "channel": "fax", "schedule": {"once": "2030-01-01 00:00", "time_zone": "UTC"}}') AS soon \gset
SELECT segplan.activate_plan(:daily), segplan.activate_plan(:catchup), segplan.activate_plan(:soon);
-- as if activated on June 1: three 09:00 Rome slots (07:00 UTC) are due by June 3, noon
UPDATE segplan.plans SET checked_until = '2026-06-01 00:00+00' WHERE id IN (:daily, :catchup);
SELECT segplan.tick('2026-06-03 12:00+00') AS runs;
SELECT p.name, r.status, count(*), min(r.slot) AS first_slot FROM segplan.plan_runs r JOIN segplan.plans p ON p.id = r.plan_id
WHERE p.id IN (:daily, :catchup) GROUP BY 1, 2 ORDER BY 1, 2;
SELECT segplan.tick('2026-06-03 12:00+00') AS runs_again;
SELECT segplan.pause_plan(:daily), segplan.pause_plan(:catchup);
SELECT segplan.tick('2030-01-01 00:30+00') AS ran;
SELECT (SELECT status FROM segplan.plans WHERE id = :soon) AS one_off_status, (SELECT status FROM segplan.plans WHERE id = :weekly) AS past_until_status;

-- lifecycle and versions: a draft changes in place, a plan that ran gets a new version
SELECT segplan.create_plan('life', '{"segment": "it", "channel": "email", "schedule": {"weekdays": ["mon"], "at": "10:00", "time_zone": "Europe/Paris"}}') AS life \gset
SELECT segplan.update_plan(:life, '{"segment": "it", "channel": "sms", "schedule": {"weekdays": ["mon"], "at": "10:00", "time_zone": "Europe/Paris"}}') AS draft_version;
SELECT segplan.activate_plan(:life);
SELECT segplan.run_plan(:life, '2026-06-08 08:00+00') IS NOT NULL AS ran;
SELECT segplan.update_plan(:life, '{"segment": "it", "channel": "sms", "schedule": {"weekdays": ["wed"], "at": "10:00", "time_zone": "Europe/Paris"}}') AS version;
SELECT segplan.run_plan(:life, '2026-06-10 08:00+00') IS NOT NULL AS ran;
SELECT version, count(*) FROM segplan.plan_runs WHERE plan_id = :life GROUP BY 1 ORDER BY 1;
SELECT segplan.pause_plan(:life);
SELECT segplan.pause_plan(:life);
SELECT segplan.activate_plan(:life);
SELECT segplan.cancel_plan(:life);
SELECT segplan.run_plan(:life, '2026-06-17 08:00+00');
SELECT segplan.update_plan(:life, '{"segment": "it", "channel": "sms", "schedule": {"weekdays": ["wed"], "at": "10:00", "time_zone": "Europe/Paris"}}');
SELECT segplan.activate_plan(:life);
SELECT segplan.create_plan('it_weekly', '{"segment": "it", "channel": "email", "schedule": {"once": "2026-01-01 00:00", "time_zone": "UTC"}}');
SELECT segplan.run_plan(999999);
SELECT * FROM segplan.export_run(999999, NULL::demo.contacts);
SELECT * FROM segplan.export_run(:run1, NULL::demo.orders);

-- the report: responses of the sent contacts (and of the holdout) in the week after each slot
SELECT segplan.register_events('message_events', 'demo.message_activity', 'contact_id', 'occurred_at');
SELECT segplan.configure_responses('{"window": {"days": 7}, "open": {"event": "message_events", "where": {"prop": "event_type", "op": "eq", "value": "open"}},
  "click": {"event": "message_events", "where": {"prop": "event_type", "op": "eq", "value": "click"}}, "conversion": {"event": "purchase_lines"}}')->'window' AS window;
SELECT segplan.configure_responses('{"window": {"days": 7}, "open": {"event": "message_events", "where": {"prop": "kind", "op": "eq", "value": "open"}}}');
SELECT segplan.create_plan('report_me', '{"rule": {"attr": "country", "op": "in", "value": ["FR", "DE"]}, "channel": "email", "holdout_percent": 25, "schedule": {"once": "2026-10-01 09:00", "time_zone": "UTC"}}') AS rep \gset
SELECT segplan.run_plan(:rep, '2026-10-01 09:00+00') AS rr \gset
WITH s AS (SELECT contact_key FROM segplan.run_contacts WHERE run_id = :rr AND status = 'sent'),
     h AS (SELECT contact_key FROM segplan.run_contacts WHERE run_id = :rr AND status = 'holdout'),
     m AS (SELECT * FROM demo.message_activity WHERE occurred_at >= '2026-10-01 09:00+00' AND occurred_at < '2026-10-08 09:00+00'),
     p AS (SELECT DISTINCT contact_id FROM demo.purchase_lines WHERE ordered_at >= '2026-10-01 09:00+00' AND ordered_at < '2026-10-08 09:00+00')
SELECT r.opened = (SELECT count(DISTINCT contact_id) FROM m WHERE event_type = 'open' AND contact_id IN (SELECT contact_key FROM s)) AS opened_ok,
       r.clicked = (SELECT count(DISTINCT contact_id) FROM m WHERE event_type = 'click' AND contact_id IN (SELECT contact_key FROM s)) AS clicked_ok,
       r.converted = (SELECT count(*) FROM p WHERE contact_id IN (SELECT contact_key FROM s)) AS converted_ok,
       round(r.holdout_conversion_rate::numeric, 6) = round((SELECT count(*) FROM p WHERE contact_id IN (SELECT contact_key FROM h))::numeric / (SELECT count(*) FROM h), 6) AS holdout_rate_ok,
       round(r.lift::numeric, 6) = round((r.conversion_rate / r.holdout_conversion_rate - 1)::numeric, 6) AS lift_ok,
       r.open_rate > 0 AS opens
FROM segplan.plan_report(:rep) r;
SELECT run_id = :rr AS one_run, status FROM segplan.plan_report(:rep);
SELECT * FROM segplan.plan_report(999999);

-- call lists: 20-minute calls Mon/Tue 09:00-10:00 Paris time, not on the exception day, not while
-- a contact is paused for calls
SELECT segplan.create_plan('callers', '{"rule": {"attr": "id", "op": "between", "value": [2990, 2996]}, "channel": "call", "assignee": "ann",
  "call_windows": [{"weekdays": ["mon", "tue"], "from": "09:00", "to": "10:00"}], "call_minutes": 20, "exceptions": ["2026-06-09"],
  "schedule": {"once": "2026-06-08 09:30", "time_zone": "Europe/Paris"}}') AS calls \gset
SELECT segplan.pause_contact(2991, tstzrange('2026-06-15 00:00+02', '2026-06-16 00:00+02'), 'not on the 15th', channels => ARRAY['call']);
SELECT segplan.run_plan(:calls, '2026-06-08 07:30+00') AS rc \gset
SELECT contact_key, call_at AT TIME ZONE 'Europe/Paris' AS local_call_at, status FROM segplan.call_list WHERE run_id = :rc ORDER BY call_at, contact_key;
SELECT call_at AT TIME ZONE 'Europe/Paris' AS local, contact_key FROM segplan.call_queue('ann', '2026-06-08');
SELECT count(*) FROM segplan.call_queue('ann', '5874897-12-31');  -- 22023 (was 22008 from the cast)
SELECT segplan.record_outcome(:rc, 2990, 'call_later', 'call back next week');
SELECT segplan.record_outcome(:rc, 2992, 'converted');
SELECT contact_key, status, attempts, note, call_at > '2026-06-08 07:40+00' AS later,
       extract(isodow FROM call_at AT TIME ZONE 'Europe/Paris') IN (1, 2) AND (call_at AT TIME ZONE 'Europe/Paris')::time BETWEEN '09:00' AND '09:40' AS in_a_window
FROM segplan.call_list WHERE run_id = :rc AND contact_key IN (2990, 2992) ORDER BY 1;
SELECT segplan.record_outcome(:rc, 2990, 'maybe');
SELECT segplan.record_outcome(:rc, 1, 'completed');
SELECT segplan.create_plan('bad_calls', '{"segment": "it", "channel": "call", "schedule": {"once": "2026-06-08 09:30", "time_zone": "UTC"}}');

-- pg_cron: the job calls segplan.tick() every minute
SELECT segplan.enable_scheduler() > 0 AS scheduled;
SELECT jobname, schedule, command FROM cron.job WHERE jobname = 'segplan-tick';
SELECT segplan.disable_scheduler() AS unscheduled;

SELECT segplan.drop_plan(id) FROM segplan.plans;
SELECT segplan.drop_policy('daily'), segplan.drop_policy('xmas'), segplan.drop_segment('it');
DELETE FROM segplan.response_config;
DROP FUNCTION public.flaky_delivery(bigint);
DROP TABLE delivery_ok;
TRUNCATE segplan.contact_history, segplan.contact_reservations, segplan.contact_locks, segplan.contact_pauses;
