-- Contact policies: every rule kind against a hand-written query on generated contact history
-- (caps at the threshold, across brands/outlets/channels, gaps, quiet hours and blackout dates in
-- each contact's time zone incl. a DST change day, segments, opt-ins, unsubscribes, pauses incl.
-- yearly across New Year), the waterfall's arithmetic, eligible() and bad input.
SET timezone = 'UTC';
SET client_min_messages = warning;
SELECT segplan.register_contacts('demo.contacts', 'id');
SELECT segplan.register_events('message_events', 'demo.message_activity', 'contact_id', 'occurred_at');
RESET client_min_messages;

-- four contacts each for 4 of 5 contacts, spread over the 400 hours before the send, two brands,
-- three outlets, three channels; every fifth contact has no history
INSERT INTO segplan.contact_history (contact_key, brand, outlet, channel, contacted_at, source)
SELECT c.id, (ARRAY['acme', 'zenith'])[1 + (c.id + k) % 2], 'o' || (c.id % 3), (ARRAY['email', 'sms', 'push'])[1 + (c.id * k) % 3],
       '2026-11-01 12:00+00'::timestamptz - make_interval(hours => ((c.id * 37 + k * 101) % 400)::int), 'test'
FROM demo.contacts c, generate_series(1, 4) k WHERE c.id % 5 <> 0;
SELECT segplan.record_contacts(ARRAY[7, 8, NULL], 'email', 'acme', 'o1', '2026-11-01 11:00+00') AS recorded;
SELECT segplan.save_segment('paris', $$city = 'Paris'$$);

-- one policy with one rule against the hand-written set of contacts it excludes (all contacts,
-- all time zones of the data: Lisbon, London and Dublin are an hour behind the others)
CREATE FUNCTION pcheck(spec jsonb, hand text, channel text, brand text DEFAULT 'acme', outlet text DEFAULT NULL,
                       at timestamptz DEFAULT '2026-11-01 12:00+00', segment text DEFAULT $$id > 0$$)
RETURNS TABLE (excluded bigint, same boolean, same_one_by_one boolean) LANGUAGE plpgsql AS $$
DECLARE hand_n bigint;
BEGIN
  PERFORM segplan.create_policy('t', spec);
  EXECUTE format('SELECT count(*) FROM demo.contacts c WHERE c.id > 0 AND c.id IN (%s)', hand) INTO hand_n USING at;
  SELECT i.excluded INTO excluded FROM segplan.policy_impact(segment, ARRAY['t'], channel, brand, at, outlet) i WHERE i.policy = 't';
  same := excluded = hand_n;
  -- eligible() for single contacts (its own query form) agrees with the hand-written set too
  EXECUTE format('SELECT bool_and((NOT e.eligible) = (c.id IN (%s))) FROM demo.contacts c, segplan.eligible(c.id, ARRAY[''t''], $2, $3, $1, $4) e WHERE c.id <= 60', hand)
    INTO same_one_by_one USING at, channel, brand, outlet;
  PERFORM segplan.drop_policy('t');
  RETURN NEXT;
END $$;
CREATE TABLE pcases (name text, spec jsonb, hand text, channel text, brand text, outlet text, at timestamptz);
INSERT INTO pcases VALUES
  ('cap, this brand', '{"rules": [{"max_contacts": 1, "per": {"days": 7}}]}',
   $$SELECT contact_key FROM segplan.contact_history WHERE brand = 'acme' AND contacted_at > $1 - interval '7 days' AND contacted_at <= $1 GROUP BY 1 HAVING count(*) >= 1$$,
   'email', 'acme', NULL, '2026-11-01 12:00+00'),
  ('cap, all brands', '{"rules": [{"max_contacts": 2, "per": {"days": 7}, "count_across": "all_brands"}]}',
   $$SELECT contact_key FROM segplan.contact_history WHERE contacted_at > $1 - interval '7 days' AND contacted_at <= $1 GROUP BY 1 HAVING count(*) >= 2$$,
   'email', 'acme', NULL, '2026-11-01 12:00+00'),
  ('cap exactly at the threshold', '{"rules": [{"max_contacts": 4, "per": {"days": 30}, "count_across": "all_brands"}]}',
   $$SELECT contact_key FROM segplan.contact_history WHERE contacted_at > $1 - interval '30 days' AND contacted_at <= $1 GROUP BY 1 HAVING count(*) >= 4$$,
   'email', 'acme', NULL, '2026-11-01 12:00+00'),
  ('sms cap, sms send', '{"rules": [{"max_contacts": 1, "per": {"days": 3}, "channels": ["sms"], "count_across": "all_brands"}]}',
   $$SELECT contact_key FROM segplan.contact_history WHERE channel = 'sms' AND contacted_at > $1 - interval '3 days' AND contacted_at <= $1$$,
   'sms', 'zenith', NULL, '2026-11-01 12:00+00'),
  ('cap per outlet', '{"rules": [{"max_contacts": 1, "per": {"days": 5}, "count_across": "outlet"}]}',
   $$SELECT contact_key FROM segplan.contact_history WHERE outlet = 'o1' AND contacted_at > $1 - interval '5 days' AND contacted_at <= $1$$,
   'push', 'acme', 'o1', '2026-11-01 12:00+00'),
  ('gap of 48 hours', '{"rules": [{"min_gap": {"hours": 48}}]}',
   $$SELECT contact_key FROM segplan.contact_history WHERE brand = 'zenith' AND contacted_at > $1 - interval '48 hours' AND contacted_at <= $1$$,
   'email', 'zenith', NULL, '2026-11-01 12:00+00'),
  ('no history before a send long ago', '{"rules": [{"min_gap": {"days": 30}, "count_across": "all_brands"}]}',
   $$SELECT contact_key FROM segplan.contact_history WHERE contacted_at > $1 - interval '30 days' AND contacted_at <= $1$$,
   'email', 'acme', NULL, '2025-01-01 12:00+00'),
  ('quiet hours across midnight, 20:30 UTC', '{"rules": [{"quiet_hours": {"from": "21:00", "to": "09:00"}}]}',
   $$SELECT id FROM demo.contacts WHERE (($1 AT TIME ZONE coalesce(time_zone, 'UTC'))::time >= '21:00' OR ($1 AT TIME ZONE coalesce(time_zone, 'UTC'))::time < '09:00')$$,
   'sms', 'acme', NULL, '2026-11-01 20:30+00'),
  ('quiet hours, London vs Paris at 08:30 UTC', '{"rules": [{"quiet_hours": {"from": "21:00", "to": "09:00"}}]}',
   $$SELECT id FROM demo.contacts WHERE ($1 AT TIME ZONE coalesce(time_zone, 'UTC'))::time NOT BETWEEN '09:00' AND '20:59:59.999999'$$,
   'sms', 'acme', NULL, '2026-11-01 08:30+00'),
  ('quiet hours on the DST change day', '{"rules": [{"quiet_hours": {"from": "21:00", "to": "09:00", "time_zone_attr": "time_zone"}}]}',
   $$SELECT id FROM demo.contacts WHERE ($1 AT TIME ZONE coalesce(time_zone, 'UTC'))::time NOT BETWEEN '09:00' AND '20:59:59.999999'$$,
   'sms', 'acme', NULL, '2026-03-29 07:30+00'),
  ('lunch quiet hours', '{"rules": [{"quiet_hours": {"from": "12:00", "to": "14:00"}}]}',
   $$SELECT id FROM demo.contacts WHERE ($1 AT TIME ZONE coalesce(time_zone, 'UTC'))::time BETWEEN '12:00' AND '13:59:59.999999'$$,
   'sms', 'acme', NULL, '2026-11-01 11:30+00'),
  ('blackout on Christmas, local date', '{"rules": [{"blackout_dates": ["2026-12-25", "2026-12-26"]}]}',
   $$SELECT id FROM demo.contacts WHERE ($1 AT TIME ZONE coalesce(time_zone, 'UTC'))::date IN ('2026-12-25', '2026-12-26')$$,
   'email', 'acme', NULL, '2026-12-24 23:30+00'),
  ('requires the e-mail opt-in', '{"rules": [{"require_attr": "email_opt_in"}]}',
   $$SELECT id FROM demo.contacts WHERE email_opt_in IS NOT TRUE$$, 'email', 'acme', NULL, '2026-11-01 12:00+00'),
  ('not in segment paris', '{"rules": [{"exclude_segment": "paris"}]}',
   $$SELECT id FROM demo.contacts WHERE city = 'Paris'$$, 'email', 'acme', NULL, '2026-11-01 12:00+00'),
  ('unsubscribed', '{"rules": [{"exclude_unsubscribed": {"event": "message_events", "where": {"prop": "event_type", "op": "eq", "value": "unsubscribe"}}}]}',
   $$SELECT contact_id FROM demo.message_activity WHERE event_type = 'unsubscribe'$$, 'email', 'acme', NULL, '2026-11-01 12:00+00');
SELECT p.name, x.excluded, x.same, x.same_one_by_one FROM pcases p, pcheck(p.spec, p.hand, p.channel, p.brand, p.outlet, p.at) x;

-- a rule limited to sms does not apply to an e-mail send; a policy scoped to a brand not to another
SELECT segplan.create_policy('sms_only', '{"rules": [{"max_contacts": 0, "per": {"days": 1}, "channels": ["sms"]}]}')->'rules';
SELECT step, policy, rule FROM segplan.policy_impact($$country = 'FR'$$, ARRAY['sms_only'], 'email', 'acme', '2026-11-01 12:00+00');
SELECT segplan.create_policy('acme_email', '{"scope": {"brands": ["acme"], "channels": ["email"]}, "rules": [{"require_attr": "email_opt_in"}]}') IS NOT NULL AS created;
SELECT count(*) AS rules_applied FROM segplan.policy_impact($$country = 'FR'$$, ARRAY['acme_email'], 'email', 'zenith', '2026-11-01 12:00+00') WHERE policy IS NOT NULL;

-- quiet hours over a population test each distinct zone once, with the contacts grouped by zone
-- kept for the session: a committed change of zone shows at once, one being made shows to its own
-- transaction only; a zone name PostgreSQL does not know falls back to the session's zone, and
-- names are read as PostgreSQL reads them (case-insensitively)
SELECT segplan.create_policy('quiet', '{"rules": [{"quiet_hours": {"from": "21:00", "to": "09:00"}}]}') IS NOT NULL AS created;
CREATE FUNCTION quiet_now() RETURNS TABLE (excluded bigint, by_hand bigint) LANGUAGE sql AS $$
  SELECT (SELECT i.excluded FROM segplan.policy_impact('id > 0', ARRAY['quiet'], 'sms', 'acme', '2026-11-01 08:30+00') i WHERE i.policy = 'quiet'),
         (SELECT count(*) FROM demo.contacts WHERE ('2026-11-01 08:30+00'::timestamptz AT TIME ZONE
            coalesce(CASE WHEN time_zone = 'Nowhere/Mars' THEN NULL ELSE time_zone END, 'UTC'))::time NOT BETWEEN '09:00' AND '20:59:59.999999')
$$;
CREATE TEMP TABLE zones_before AS SELECT id, time_zone FROM demo.contacts WHERE id <= 30;
SELECT * FROM quiet_now();
UPDATE demo.contacts SET time_zone = (ARRAY['Europe/London', 'europe/paris', 'Nowhere/Mars', NULL])[1 + id % 4] WHERE id <= 30;
SELECT * FROM quiet_now();
BEGIN;
UPDATE demo.contacts SET time_zone = 'Asia/Tokyo' WHERE id <= 30;
SELECT * FROM quiet_now();
ROLLBACK;
SELECT * FROM quiet_now();
UPDATE demo.contacts c SET time_zone = b.time_zone FROM zones_before b WHERE b.id = c.id;
SELECT * FROM quiet_now();
SELECT segplan.drop_policy('quiet');

-- pauses: now, yearly across New Year, every August, sms only
SELECT segplan.pause_contact(11, tstzrange('2026-10-01', '2026-11-15'), 'asked for a break');
SELECT segplan.pause_contact(12, daterange('2024-12-20', '2025-01-06'), 'holidays', yearly => true);
SELECT segplan.pause_contact(13, daterange('2025-08-01', '2025-09-01'), 'every August', yearly => true);
SELECT segplan.pause_contact(14, tstzrange('2026-01-01', NULL), 'no sms', channels => ARRAY['sms']);
SELECT k, at, ch, (SELECT eligible FROM segplan.eligible(k, '{}', ch, 'acme', at)) AS eligible
FROM (VALUES (11, '2026-11-01 12:00+00'::timestamptz, 'email'), (11, '2026-11-20 12:00+00', 'email'),
             (12, '2027-01-02 12:00+00', 'email'), (12, '2026-12-19 12:00+00', 'email'), (12, '2031-12-31 12:00+00', 'email'),
             (13, '2026-08-15 12:00+00', 'email'), (13, '2026-09-15 12:00+00', 'email'),
             (14, '2026-11-01 12:00+00', 'sms'), (14, '2026-11-01 12:00+00', 'email')) v(k, at, ch);
SELECT segplan.pause_contact(15, daterange('2026-01-01', '2027-06-01'), yearly => true);
SELECT segplan.pause_contact(NULL, daterange('2026-01-01', '2026-02-01'));
SELECT segplan.pause_contact(15, daterange('2026-01-01', '2026-02-01'), yearly => NULL);
SELECT segplan.pause_contact(15, 'empty'::tstzrange);

-- the waterfall: each contact counted once, under the first rule that excludes it
SELECT segplan.create_policy('fatigue', '{"rules": [{"max_contacts": 3, "per": {"days": 14}, "count_across": "all_brands"}, {"min_gap": {"hours": 24}}]}') IS NOT NULL AS created;
SELECT segplan.create_policy('consent', '{"rules": [{"require_attr": "email_opt_in"}, {"exclude_segment": "paris"}, {"quiet_hours": {"from": "21:00", "to": "09:00"}}]}') IS NOT NULL AS created;
SELECT * FROM segplan.policy_impact($$country in ('FR', 'IT')$$, ARRAY['fatigue', 'consent'], 'email', 'acme', '2026-11-01 12:00+00');
WITH w AS (SELECT * FROM segplan.policy_impact('{"attr": "country", "op": "in", "value": ["FR", "IT"]}'::jsonb, ARRAY['fatigue', 'consent'], 'email', 'acme', '2026-11-01 12:00+00'))
SELECT (SELECT remaining FROM w WHERE step = 0) - (SELECT sum(excluded) FROM w) = (SELECT remaining FROM w ORDER BY step DESC LIMIT 1) AS adds_up,
       (SELECT remaining FROM w ORDER BY step DESC LIMIT 1) = (
         SELECT count(*) FROM demo.contacts c WHERE c.country IN ('FR', 'IT') AND c.email_opt_in AND c.city IS DISTINCT FROM 'Paris'
           AND c.id NOT IN (SELECT contact_key FROM segplan.contact_pauses WHERE during @> '2026-11-01 12:00+00'::timestamptz)
           AND c.id NOT IN (SELECT contact_key FROM segplan.contact_history WHERE contacted_at > '2026-10-18 12:00+00' AND contacted_at <= '2026-11-01 12:00+00' GROUP BY 1 HAVING count(*) >= 3)
           AND c.id NOT IN (SELECT contact_key FROM segplan.contact_history WHERE brand = 'acme' AND contacted_at > '2026-10-31 12:00+00' AND contacted_at <= '2026-11-01 12:00+00')
           AND (('2026-11-01 12:00+00'::timestamptz AT TIME ZONE coalesce(c.time_zone, 'UTC'))::time BETWEEN '09:00' AND '20:59:59')) AS deliverable_ok;
-- eligible() names every reason
SELECT * FROM segplan.eligible(7, ARRAY['fatigue', 'consent'], 'email', 'acme', '2026-11-01 12:00+00');
SELECT e.eligible = (c.id NOT IN (SELECT m FROM segplan.members('segment(''paris'') or not email_opt_in') m)
                     AND c.id NOT IN (SELECT contact_key FROM segplan.contact_history WHERE contacted_at > '2026-10-18 12:00+00' AND contacted_at <= '2026-11-01 12:00+00' GROUP BY 1 HAVING count(*) >= 3)
                     AND c.id NOT IN (SELECT contact_key FROM segplan.contact_history WHERE brand = 'acme' AND contacted_at > '2026-10-31 12:00+00' AND contacted_at <= '2026-11-01 12:00+00')
                     AND c.id NOT IN (SELECT contact_key FROM segplan.contact_pauses WHERE during @> '2026-11-01 12:00+00'::timestamptz)) AS agrees,
       count(*)
FROM demo.contacts c, segplan.eligible(c.id, ARRAY['fatigue', 'consent'], 'email', 'acme', '2026-11-01 12:00+00') e
WHERE c.id <= 60 GROUP BY 1 ORDER BY 1;

-- bad input
SELECT segplan.create_policy('fatigue', '{"rules": [{"min_gap": {"hours": 1}}]}');
SELECT segplan.create_policy('Bad', '{"rules": [{"min_gap": {"hours": 1}}]}');
SELECT segplan.create_policy('x', '{"rules": [{"max_contacts": 2, "per": {"dayz": 7}, "colour": 1}, {"require_attr": "city"}, {"exclude_segment": "nope"}]}');
SELECT segplan.create_policy('x', '{"rules": [{"exclude_unsubscribed": {"event": "message_events", "where": {"prop": "kind", "op": "eq", "value": 1}}}]}');
SELECT segplan.update_policy('nope', '{"rules": [{"min_gap": {"hours": 1}}]}');
SELECT * FROM segplan.policy_impact($$country = 'FR'$$, ARRAY['fatigue', 'nope'], 'email');
SELECT segplan.create_policy('per_outlet', '{"rules": [{"min_gap": {"days": 1}, "count_across": "outlet"}]}')->'rules';
SELECT * FROM segplan.policy_impact($$country = 'FR'$$, ARRAY['per_outlet'], 'email', 'acme');
SELECT segplan.record_contacts(ARRAY[1], '');
SELECT segplan.record_contacts(ARRAY[1], 'email', contacted_at => 'infinity');
SELECT segplan.record_contacts(ARRAY[1], 'email', contacted_at => NULL);
SELECT segplan.record_contacts(ARRAY[1], 'email', source => NULL);
SELECT segplan.update_policy('fatigue', '{"rules": [{"max_contacts": 5, "per": {"weeks": 2}}]}')->'rules' AS updated;
SELECT name, version FROM segplan.policies ORDER BY name;

-- the plan-side hook: reserve (priority decides), confirm into the history, release
SELECT segplan.create_policy('weekly', '{"rules": [{"max_contacts": 1, "per": {"days": 7}, "count_across": "all_brands"}]}') IS NOT NULL AS created;
SELECT contact_key, status, reason FROM segplan.reserve_contacts(ARRAY[15, 20, 25, NULL, 20], ARRAY['weekly'], 'email', 'acme', '2025-06-01 10:00+00', priority => 5, run_id => 1);
-- a lower-priority plan finds the slots taken; an equal one too
SELECT contact_key, status FROM segplan.reserve_contacts(ARRAY[15, 30], ARRAY['weekly'], 'sms', 'zenith', '2025-06-02 10:00+00', priority => 1, run_id => 2);
SELECT contact_key, status FROM segplan.reserve_contacts(ARRAY[20], ARRAY['weekly'], 'sms', 'zenith', '2025-06-02 10:00+00', priority => 5, run_id => 3);
-- a higher-priority one bumps run 2's contact 30
SELECT contact_key, status, bumped_run FROM segplan.reserve_contacts(ARRAY[30], ARRAY['weekly'], 'push', 'acme', '2025-06-03 10:00+00', priority => 9, run_id => 4);
SELECT segplan.confirm_reservations(1) AS confirmed, segplan.release_reservations(4) AS released;
SELECT contact_key, channel, run_id, source FROM segplan.contact_history WHERE run_id IS NOT NULL ORDER BY 1;
SELECT run_id, count(*) FROM segplan.contact_reservations GROUP BY 1 ORDER BY 1;
-- made contacts count as much as reservations: contact 15 is refused now
SELECT contact_key, status FROM segplan.reserve_contacts(ARRAY[15], ARRAY['weekly'], 'email', 'acme', '2025-06-04 10:00+00', priority => 9, run_id => 5);
BEGIN ISOLATION LEVEL REPEATABLE READ;
SELECT * FROM segplan.reserve_contacts(ARRAY[1], ARRAY['weekly'], 'email');
ROLLBACK;

SELECT segplan.drop_policy(name) FROM segplan.policies;
SELECT segplan.drop_segment('paris');
TRUNCATE segplan.contact_history, segplan.contact_pauses, segplan.contact_reservations, segplan.contact_locks;
