-- Shifting: a condition over a relative window ("within last 7 days", an age) is cached for one
-- as_of (the minute; the day for ages). At another as_of, its bitmap of the nearest as_of is
-- brought over by evaluating the condition again only for the contacts with a row whose compared
-- column lies between the window bounds' old and new values (found through an index on that
-- column); every answer equals the one-statement SQL engine's, as_of after as_of.
SET timezone = 'UTC';
SET client_min_messages = warning;
CREATE SCHEMA shift;
CREATE TABLE shift.people (id bigint PRIMARY KEY, country text, born date, signed_up timestamptz);
CREATE TABLE shift.clicks (person integer, at timestamptz, amount numeric, visit bigint, kind text);
-- 5000 people (birthdays on every day of the year, a sign-up every 17 minutes, some NULLs);
-- 30000 clicks every 5 minutes from 2026-09-01 to 2026-12-14 (so at whole minutes, often
-- exactly on a window's bound), some without a person, some of people that do not exist
INSERT INTO shift.people SELECT g, (ARRAY['FR', 'DE', 'IT'])[1 + g % 3],
  CASE WHEN g % 11 = 0 THEN NULL ELSE '1960-01-01'::date + (g * 37) % 15000 END,
  CASE WHEN g % 13 = 0 THEN NULL ELSE '2026-09-20'::timestamptz + g * interval '17 minutes' END
FROM generate_series(1, 5000) g;
INSERT INTO shift.clicks SELECT CASE WHEN g % 40 = 0 THEN NULL ELSE 1 + (g * 31) % 5100 END,
  '2026-09-01'::timestamptz + g * interval '5 minutes', g % 100, g / 3, (ARRAY['open', 'click'])[1 + g % 2]
FROM generate_series(1, 30000) g;
CREATE INDEX ON shift.clicks (person);
CREATE INDEX ON shift.clicks (at);
CREATE INDEX ON shift.clicks (kind, at);
CREATE INDEX ON shift.people (born);
CREATE INDEX ON shift.people (signed_up);
ANALYZE shift.people, shift.clicks;
SELECT segplan.register_contacts('shift.people', 'id');
SELECT segplan.register_events('sclicks', 'shift.clicks', 'person', 'at');
RESET client_min_messages;

CREATE TABLE shift.rules (rule text);
INSERT INTO shift.rules VALUES
  ($$sclicks(within last 40 days)$$),
  ($$sclicks(where kind = 'open', within last 30 days, count >= 3)$$),
  ($$sclicks(where at within last 30 days or amount > 95)$$),
  ($$no sclicks(within last 30 days)$$),
  ($$sclicks(within last 60 days, count <= 2)$$),
  ($$sclicks(within last 30 days, sum(amount) >= 500)$$),
  ($$ratio(sclicks, per visit, match amount >= 50, within last 40 days) >= 0.5$$),
  ($$sequence(sclicks(where kind = 'open', within last 50 days), then sclicks(within last 30 days), gap > 2 days)$$),
  ($$sequence(sclicks(where kind = 'open'), then sclicks(within last 40 days), gap < 1 days)$$),
  ($$age(born) between 30 and 40$$),
  ($$signed_up within last 30 days$$),
  ($$signed_up not within last 20 days and country = 'FR'$$),
  ($$sclicks(where at not within last 10 days, within last 60 days)$$);

-- every rule's members at `as_of` from the cached bitmaps (shifted as needed) and from the SQL engine
CREATE FUNCTION shift.check(as_of timestamptz) RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  r text;
  cached text[];
  fresh text[];
  differ text[] := '{}';
BEGIN
  FOR r IN SELECT s.rule FROM shift.rules s LOOP
    cached := ARRAY(SELECT m FROM segplan.members_text(r, as_of) m ORDER BY m);
    PERFORM set_config('segplan.engine', 'sql', true);
    fresh := ARRAY(SELECT m FROM segplan.members_text(r, as_of) m ORDER BY m);
    PERFORM set_config('segplan.engine', 'bitmap', true);
    IF cached IS DISTINCT FROM fresh THEN
      differ := differ || r;
    END IF;
  END LOOP;
  RETURN CASE WHEN differ = '{}' THEN 'all equal' ELSE 'differ: ' || array_to_string(differ, '; ') END;
END
$$;
-- how the as_of-dependent conditions' bitmaps cached since the last call came to be
CREATE TABLE shift.seen (origin text PRIMARY KEY, n bigint);
CREATE FUNCTION shift.origins() RETURNS text LANGUAGE plpgsql AS $$
DECLARE
  out text;
BEGIN
  SELECT string_agg(x.origin || ' ' || (x.n - coalesce(s.n, 0)), ', ' ORDER BY x.origin) INTO out
  FROM (SELECT origin, count(*) AS n FROM segplan.cache_stats() WHERE condition ~ 'within|age' GROUP BY 1) x
  LEFT JOIN shift.seen s USING (origin) WHERE x.n > coalesce(s.n, 0);
  DELETE FROM shift.seen;
  INSERT INTO shift.seen SELECT origin, count(*) FROM segplan.cache_stats() WHERE condition ~ 'within|age' GROUP BY 1;
  RETURN coalesce(out, 'none');
END
$$;
CREATE FUNCTION shift.clear() RETURNS boolean LANGUAGE sql AS $$
  DELETE FROM shift.seen;
  SELECT segplan.cache_clear() >= 0;
$$;

SELECT shift.clear() AS cleared;
SELECT shift.check('2026-11-01 00:00') AS built, shift.origins();
-- a minute later; 00:05 (a click exactly on each bound: 00:05 and 30, 40, 60 days before);
-- an hour later; half an hour back
SELECT shift.check('2026-11-01 00:01') AS minute, shift.origins();
SELECT shift.check('2026-11-01 00:05') AS on_the_bounds, shift.origins();
SELECT shift.check('2026-11-01 01:05') AS hour, shift.origins();
SELECT shift.check('2026-11-01 00:35') AS back, shift.origins();
-- ten days later: the rows between the bounds' old and new values are a third of a 30-day
-- window; finding them is estimated at more than a quarter of the build, which is done instead
SELECT shift.check('2026-11-11 00:35') AS ten_days, shift.origins();
-- past the last click (windows emptying) and before the first
SELECT shift.check('2026-12-30 00:00') AS after_all, shift.origins();
SELECT shift.check('2026-12-30 01:00') AS after_all_shifted, shift.origins();
SELECT shift.check('2026-08-01 00:00') AS before_all, shift.origins();
SELECT shift.check('2026-08-01 01:00') AS before_all_shifted, shift.origins();
-- another session (a pooled connection, its memory empty): the shared cache's bitmap of the
-- nearest as_of (00:35) is shifted
\c
SET timezone = 'UTC';
DELETE FROM shift.seen;
SELECT shift.check('2026-11-01 00:40') AS new_session, shift.origins();
-- a write between two as_of values: its contacts and the moved ones, in one patch
SELECT shift.clear() AS cleared;
SELECT shift.check('2026-11-20 12:00') AS built, shift.origins();
INSERT INTO shift.clicks SELECT p, '2026-11-20 11:59', 99, 90000 + p, 'open' FROM generate_series(1, 40) p, generate_series(1, 3);
UPDATE shift.people SET born = '1990-11-21', signed_up = '2026-11-20 11:00' WHERE id BETWEEN 41 AND 60;
SELECT shift.check('2026-11-20 12:01') AS after_write, shift.origins();
-- ages move with the date in the session's time zone: at 23:00 UTC it is the next day in Auckland
SET timezone = 'Pacific/Auckland';
SELECT shift.check('2026-11-20 10:30+00') AS auckland, shift.origins();
SELECT shift.check('2026-11-20 11:30+00') AS auckland_next_day, shift.origins();
SET timezone = 'UTC';
-- a patch limit below the contacts moved: built instead
SET segplan.patch_limit = 5;
SELECT shift.clear() AS cleared;
SELECT shift.check('2026-11-05 00:00') AS built, shift.origins();
SELECT shift.check('2026-11-05 01:00') AS over_limit, shift.origins();
RESET segplan.patch_limit;
-- without an index on the compared column, finding the moved contacts would be a scan like the
-- build: the condition is built
CREATE TABLE shift.visits (person bigint, at timestamptz);
INSERT INTO shift.visits SELECT 1 + g % 800, '2026-10-01'::timestamptz + g * interval '5 minutes' FROM generate_series(1, 20000) g;
ANALYZE shift.visits;
SET client_min_messages = warning;
SELECT segplan.register_events('svisits', 'shift.visits', 'person', 'at');
RESET client_min_messages;
SELECT segplan.cache_clear() >= 0 AS cleared;
SELECT segplan.count('svisits(within last 3 days)', '2026-11-01 00:00') = segplan.count('svisits(within last 3 days)', '2026-11-01 00:01') AS same_count;
SELECT origin, count(*) FROM segplan.cache_stats() WHERE condition ~ 'svisits' GROUP BY 1;
CREATE INDEX ON shift.visits (at);
SELECT segplan.count('svisits(within last 3 days)', '2026-11-01 00:02') AS with_index;
SET segplan.engine = sql;
SELECT segplan.count('svisits(within last 3 days)', '2026-11-01 00:02') AS with_index_sql;
RESET segplan.engine;
SELECT origin, count(*) FROM segplan.cache_stats() WHERE condition ~ 'svisits' GROUP BY 1 ORDER BY 1;

-- a view that answers otherwise with nothing written to the tables it reads (it reads the clock,
-- or calls a volatile function) is never cached: registration warns, and every count computes it
-- afresh (cached, the count a second later was still 5: nothing had been written)
CREATE TABLE shift.pings (person bigint, at timestamptz);
INSERT INTO shift.pings SELECT g, clock_timestamp() + interval '1 second' FROM generate_series(1, 5) g;
CREATE VIEW shift.upcoming AS SELECT person, at FROM shift.pings WHERE at > now();
CREATE VIEW shift.today AS SELECT p.person, p.at FROM shift.pings p WHERE p.person IN (SELECT q.person FROM shift.pings q WHERE q.at::date >= CURRENT_DATE);
CREATE VIEW shift.sampled AS SELECT person, at FROM shift.pings WHERE random() < 2;
-- a function of the database's own that may read another table (not immutable): writes to that
-- table are not tracked (cached, the count after the insert into shift.vips was still 0)
CREATE TABLE shift.vips (person bigint);
CREATE FUNCTION shift.is_vip(p bigint) RETURNS boolean LANGUAGE sql STABLE AS 'SELECT EXISTS (SELECT 1 FROM shift.vips v WHERE v.person = p)';
CREATE VIEW shift.vip_pings AS SELECT person, at FROM shift.pings WHERE shift.is_vip(person);
-- an immutable function of its own is no reason
CREATE FUNCTION shift.later(t timestamptz) RETURNS timestamptz LANGUAGE sql IMMUTABLE AS 'SELECT t + interval ''1 day''';
CREATE VIEW shift.plain AS SELECT person, at FROM shift.pings WHERE shift.later(at) > '2026-01-01';
SELECT segplan.register_events('upcoming', 'shift.upcoming', 'person', 'at');
SELECT segplan.register_events('today', 'shift.today', 'person', 'at');
SELECT segplan.register_events('sampled', 'shift.sampled', 'person', 'at');
SELECT segplan.register_events('vip_pings', 'shift.vip_pings', 'person', 'at');
SELECT segplan.register_events('plain', 'shift.plain', 'person', 'at');
SELECT segplan.count('upcoming()') AS upcoming_now, segplan.count('sampled()') AS sampled, segplan.count('today()') AS today,
       segplan.count('vip_pings()') AS vips, segplan.count('plain()') AS plain;
SELECT pg_sleep(1.1);
INSERT INTO shift.vips VALUES (1), (2);
SELECT segplan.count('upcoming()') AS upcoming_a_second_later, segplan.count('vip_pings()') AS vips_after_the_insert;
SELECT condition FROM segplan.cache_stats() WHERE condition ~ 'upcoming|today|sampled|vip_pings|plain' ORDER BY 1;
SET client_min_messages = warning;
SELECT segplan.unregister_events(n) FROM unnest(ARRAY['upcoming', 'today', 'sampled', 'vip_pings', 'plain']) n;
RESET client_min_messages;

-- uuid keys: the moved contacts' keys come back as text, their ids go out of the bitmap, and the
-- condition is evaluated again for them by key (a new contact between two minutes numbered on the way)
CREATE TABLE shift.upeople AS SELECT md5(id::text)::uuid AS id, country, born, signed_up FROM shift.people;
ALTER TABLE shift.upeople ADD PRIMARY KEY (id);
CREATE TABLE shift.uclicks AS SELECT md5(person::text)::uuid AS person, at, amount, visit, kind FROM shift.clicks;
CREATE INDEX ON shift.uclicks (person);
CREATE INDEX ON shift.uclicks (at);
CREATE INDEX ON shift.uclicks (kind, at);
CREATE INDEX ON shift.upeople (born);
CREATE INDEX ON shift.upeople (signed_up);
ANALYZE shift.upeople, shift.uclicks;
SET client_min_messages = warning;
SELECT segplan.register_contacts('shift.upeople', 'id');
SELECT segplan.register_events('sclicks', 'shift.uclicks', 'person', 'at');
RESET client_min_messages;
SELECT segplan.number_contacts() > 0 AS numbered;
SELECT shift.clear() AS cleared;
SELECT shift.check('2026-11-01 00:00') AS uuid_built, shift.origins();
SELECT shift.check('2026-11-01 00:05') AS uuid_minute, shift.origins();
SELECT shift.check('2026-11-01 01:05') AS uuid_hour, shift.origins();
SELECT shift.check('2026-11-01 00:35') AS uuid_back, shift.origins();
INSERT INTO shift.upeople VALUES (md5('new')::uuid, 'FR', '1990-01-01', '2026-11-01 00:36');
INSERT INTO shift.uclicks VALUES (md5('new')::uuid, '2026-11-01 00:36', 50, 1, 'open');
SELECT segplan.count($$signed_up within last 30 days$$, '2026-11-01 00:37') = (SELECT count(*) FROM shift.upeople
  WHERE signed_up BETWEEN '2026-10-02 00:37' AND '2026-11-01 00:37') AS uuid_numbered_by_a_shift;
SELECT shift.check('2026-11-01 00:38') AS uuid_after_a_new_contact, shift.origins();
