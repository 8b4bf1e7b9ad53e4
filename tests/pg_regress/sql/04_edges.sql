-- Hand-made data where the right answer is obvious: keys of every type, NULLs, time zones at
-- window edges, contacts with no events.
SET timezone = 'UTC';
CREATE SCHEMA edge;
CREATE TABLE edge.people (id uuid PRIMARY KEY, name text, born date, tz text);
INSERT INTO edge.people VALUES
  ('00000000-0000-0000-0000-000000000001', 'ann', '2000-02-29', 'Europe/Paris'),
  ('00000000-0000-0000-0000-000000000002', 'bob', NULL, NULL),
  ('00000000-0000-0000-0000-000000000003', NULL, '2001-03-01', 'America/New_York');
CREATE TABLE edge.visits (person uuid, at timestamptz, local_at timestamp);
INSERT INTO edge.visits VALUES
  ('00000000-0000-0000-0000-000000000001', '2026-10-02 00:00:00+00', '2026-10-02 00:00:00'),  -- exactly 30 days before as_of
  ('00000000-0000-0000-0000-000000000002', '2026-11-01 00:00:00+00', '2026-11-01 00:00:00'),  -- exactly at as_of
  ('00000000-0000-0000-0000-000000000003', '2026-10-01 23:59:59+00', '2026-10-01 23:59:59'),  -- just outside
  ('00000000-0000-0000-0000-000000000003', '2026-11-01 00:00:01+00', '2026-11-01 00:00:01'),  -- after as_of
  (NULL, '2026-10-15 00:00:00+00', NULL);                                                   -- no contact
SELECT segplan.register_contacts('edge.people', 'id');
SELECT segplan.register_events('visits', 'edge.visits', 'person', 'at');
SELECT segplan.register_events('local_visits', 'edge.visits', 'person', 'local_at');
-- uuid keys: members_text lists them; members (bigint) explains what to use instead
SELECT m FROM segplan.members_text('visits(within last 30 days)', '2026-11-01 00:00:00+00') m ORDER BY 1;
SELECT segplan.members('visits()', '2026-11-01');
-- windows include both edges: [as_of - 30 days, as_of]
SELECT m FROM segplan.members_text('visits(within last 30 days)', '2026-11-01 00:00:00+00') m ORDER BY 1;
SELECT m FROM segplan.members_text('visits(within last 30 days)', '2026-11-01 00:00:00.000001+00') m ORDER BY 1;
SELECT m FROM segplan.members_text('visits(within last 30 days)', '2026-10-31 23:59:59.999999+00') m ORDER BY 1;
-- a timestamp without time zone is read in the session's time zone
-- (Paris left summer time on 25 October, New York leaves it on 1 November 2026)
SET timezone = 'Europe/Paris';
SELECT m AS paris FROM segplan.members_text('local_visits(within last 30 days)', '2026-11-01 00:00:00+00') m ORDER BY 1;
SET timezone = 'America/New_York';
SELECT m AS new_york FROM segplan.members_text('local_visits(within last 30 days)', '2026-11-01 00:00:00+00') m ORDER BY 1;
SET timezone = 'UTC';
-- ages from a birth date, leap day included
SELECT m FROM segplan.members_text('age(born) between 26 and 26', '2026-02-28') m;
SELECT m FROM segplan.members_text('age(born) between 26 and 26', '2026-03-01') m ORDER BY 1;
-- NULL attributes: only is_null matches; not(...) matches them
SELECT segplan.count($$name = 'ann'$$) AS eq, segplan.count($$name != 'ann'$$) AS ne,
       segplan.count($$not name = 'ann'$$) AS not_eq, segplan.count('name is null') AS is_null;
-- contacts with no events
SELECT segplan.count('no visits()') AS never_visited, segplan.count('visits(count < 1)') AS zero_visits;
-- text keys work too
CREATE TABLE edge.accounts (code text PRIMARY KEY, plan text);
INSERT INTO edge.accounts VALUES ('a-1', 'pro'), ('a-2', NULL), ('a''3', 'pro');
SELECT segplan.register_contacts('edge.accounts', 'code');
SELECT m FROM segplan.members_text($$plan = 'pro'$$) m ORDER BY 1;
-- an unsuitable key column is refused
SELECT segplan.register_contacts('edge.people', 'born');
SELECT segplan.register_contacts('edge.people', 'nope');
SELECT segplan.register_events('Bad Name', 'edge.visits', 'person');
SELECT segplan.register_events('visits', 'edge.visits', 'person', 'person');
-- a dropped or renamed registered column is an error, never a wrong answer
SELECT segplan.register_contacts('edge.people', 'id');
ALTER TABLE edge.visits RENAME COLUMN at TO seen_at;
SELECT segplan.count('visits()');
SELECT segplan.count('name is null') AS rules_not_using_it_still_work;
SELECT segplan.model()->'broken_events';
ALTER TABLE edge.visits RENAME COLUMN seen_at TO at;
SELECT segplan.unregister_events('local_visits');
SELECT segplan.unregister_events('local_visits');
SELECT jsonb_pretty(segplan.model());
DROP TABLE edge.visits;
SELECT segplan.count('visits()');
SELECT segplan.unregister_events('visits');
SELECT segplan.register_contacts('demo.contacts', 'id');
