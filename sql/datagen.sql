-- Demo data generator: a multi-brand retailer's own tables in schema "demo".
-- Not part of the extension: segplan never requires customer data to live in its schema.
--
--   SELECT demo.generate(n_contacts => 100000, seed => 42, end_at => '2026-11-01');
--
-- demo.generate runs four phases in one transaction: generate_base (dimensions and contacts), then
-- generate_messages and generate_orders (independent of each other: tests/tools/gendata.sh runs them
-- in two sessions at once, one per core), then generate_finish (indexes, views, statistics).
--
-- Deterministic: every random draw is demo.rnd(seed, n, salt), a hash of its inputs, so the same
-- seed and end_at give the same rows (checked by demo.checksum() in the tests), whatever the plan.
-- Sizes used by `make data SIZE=...`: XS = 100k contacts, S = 1M, L = 10M; message events are about
-- 20 per contact, orders 5 per contact.
SET client_min_messages = warning;
SET check_function_bodies = off;
CREATE SCHEMA IF NOT EXISTS demo;

-- uniform [0,1) from (seed, n, salt)
CREATE OR REPLACE FUNCTION demo.rnd(seed int, n bigint, salt int) RETURNS float8
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT (pg_catalog.hashint8extended(n, seed::bigint * 1000 + salt) & 140737488355327)::float8
             / 140737488355328.0 $$;

-- Zipf-like index in [0, k): small indexes are much more frequent (power-law skew)
CREATE OR REPLACE FUNCTION demo.skewed(u float8, k bigint, power float8) RETURNS bigint
LANGUAGE sql IMMUTABLE PARALLEL SAFE
AS $$ SELECT least(k - 1, floor(k * pg_catalog.power(u, power))::bigint) $$;

CREATE OR REPLACE FUNCTION demo.generate_base(n_contacts bigint, seed int, end_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $gen$
DECLARE
  n_outlets int := 40 + (n_contacts / 5000)::int;
  n_products int := 500 + (n_contacts / 1000)::int;
  n_campaigns int := 400 + (n_contacts / 2000)::int;
  n_cities  int;
BEGIN
  DROP VIEW IF EXISTS demo.purchase_lines, demo.message_activity;
  DROP TABLE IF EXISTS demo.order_lines, demo.orders, demo.message_events, demo.campaigns,
                       demo.products, demo.contacts, demo.outlets, demo.cities, demo.brands;

  CREATE TABLE demo.brands (id int PRIMARY KEY, name text NOT NULL);
  INSERT INTO demo.brands VALUES (1, 'acme'), (2, 'bellamy'), (3, 'corsa'), (4, 'dunmore'), (5, 'elkin');

  -- city list in popularity order (Zipf draws pick early rows most)
  CREATE TABLE demo.cities (idx int PRIMARY KEY, city text, country text, time_zone text, language text);
  INSERT INTO demo.cities SELECT row_number() OVER () - 1, * FROM (VALUES
    ('Paris','FR','Europe/Paris','fr'), ('London','GB','Europe/London','en'), ('Rome','IT','Europe/Rome','it'),
    ('Madrid','ES','Europe/Madrid','es'), ('Berlin','DE','Europe/Berlin','de'), ('Milan','IT','Europe/Rome','it'),
    ('Barcelona','ES','Europe/Madrid','es'), ('Lyon','FR','Europe/Paris','fr'), ('Munich','DE','Europe/Berlin','de'),
    ('Amsterdam','NL','Europe/Amsterdam','nl'), ('Brussels','BE','Europe/Brussels','fr'),
    ('Lisbon','PT','Europe/Lisbon','pt'), ('Vienna','AT','Europe/Vienna','de'), ('Marseille','FR','Europe/Paris','fr'),
    ('Hamburg','DE','Europe/Berlin','de'), ('Zurich','CH','Europe/Zurich','de'), ('Dublin','IE','Europe/Dublin','en'),
    ('Naples','IT','Europe/Rome','it'), ('Copenhagen','DK','Europe/Copenhagen','da'),
    ('Stockholm','SE','Europe/Stockholm','sv'), ('Nice','FR','Europe/Paris','fr'), ('Turin','IT','Europe/Rome','it'),
    ('Valencia','ES','Europe/Madrid','es'), ('Warsaw','PL','Europe/Warsaw','pl'), ('Prague','CZ','Europe/Prague','cs'),
    ('Manchester','GB','Europe/London','en'), ('Toulouse','FR','Europe/Paris','fr'), ('Florence','IT','Europe/Rome','it'),
    ('Oslo','NO','Europe/Oslo','no'), ('Helsinki','FI','Europe/Helsinki','fi'), ('Athens','GR','Europe/Athens','el'),
    ('Budapest','HU','Europe/Budapest','hu'), ('Seville','ES','Europe/Madrid','es'), ('Frankfurt','DE','Europe/Berlin','de'),
    ('Rotterdam','NL','Europe/Amsterdam','nl'), ('Porto','PT','Europe/Lisbon','pt'), ('Geneva','CH','Europe/Zurich','fr'),
    ('Bordeaux','FR','Europe/Paris','fr'), ('Venice','IT','Europe/Rome','it'), ('New York','US','America/New_York','en'),
    ('Montreal','CA','America/Toronto','fr')) v;
  SELECT count(*) INTO n_cities FROM demo.cities;

  -- outlets 1-5: each brand's online shop; 6-9: airport stores in Rome and Paris; the rest drawn
  CREATE TABLE demo.outlets (id int PRIMARY KEY, brand_id int NOT NULL REFERENCES demo.brands,
                             name text NOT NULL, city text, country text, kind text NOT NULL
                             CHECK (kind IN ('airport', 'mall', 'street', 'online')));
  INSERT INTO demo.outlets
  SELECT i, b, initcap(br.name) || ' ' || coalesce(c.city, 'Online') || ' ' || k || ' #' || i,
         c.city, c.country, k
  FROM generate_series(1, n_outlets) i
  CROSS JOIN LATERAL (SELECT CASE WHEN i <= 5 THEN i WHEN i <= 9 THEN 1 + (i % 2)
                                  ELSE 1 + floor(demo.rnd(seed, i, 1) * 5)::int END AS b,
                             CASE WHEN i <= 5 THEN 'online' WHEN i <= 9 THEN 'airport'
                                  ELSE (CASE WHEN demo.rnd(seed, i, 2) < 0.10 THEN 'airport'
                                             WHEN demo.rnd(seed, i, 2) < 0.40 THEN 'mall'
                                             WHEN demo.rnd(seed, i, 2) < 0.92 THEN 'street'
                                             ELSE 'online' END) END AS k) x
  JOIN demo.brands br ON br.id = x.b
  LEFT JOIN demo.cities c ON x.k <> 'online' AND c.idx = CASE WHEN i IN (6, 7) THEN 2 WHEN i IN (8, 9) THEN 0
                                         ELSE demo.skewed(demo.rnd(seed, i, 3), n_cities, 2.0) END;

  ANALYZE demo.brands, demo.cities, demo.outlets;

  CREATE TABLE demo.contacts (
    id bigint PRIMARY KEY, email text, phone text, first_name text, gender text, birth_date date,
    city text, country text, language text, time_zone text, created_at timestamptz NOT NULL,
    email_opt_in boolean NOT NULL, sms_opt_in boolean NOT NULL, push_opt_in boolean NOT NULL,
    home_outlet_id int REFERENCES demo.outlets, loyalty_tier text);
  INSERT INTO demo.contacts
  SELECT i,
         CASE WHEN demo.rnd(seed, i, 10) < 0.95 THEN 'contact' || i || '@example.com' END,
         CASE WHEN demo.rnd(seed, i, 11) < 0.70 THEN '+3' || lpad((i * 7919 % 1000000000)::text, 10, '0') END,
         CASE WHEN demo.rnd(seed, i, 12) < 0.97 THEN (ARRAY['Anna','Luca','Marie','Tom','Sofia','Hugo','Emma',
              'Noah','Lea','Paul','Mia','Jan','Elena','Marco','Julia','Lucas','Sara','Max','Ines','Leo'])
              [1 + floor(demo.rnd(seed, i, 13) * 20)::int] END,
         CASE WHEN g < 0.52 THEN 'F' WHEN g < 0.92 THEN 'M' WHEN g < 0.94 THEN 'X' END,
         CASE WHEN demo.rnd(seed, i, 15) < 0.88
              THEN date '1945-01-01' + floor(demo.rnd(seed, i, 16) * 21900)::int END,
         c.city, c.country, c.language, c.time_zone,
         end_at - interval '2190 days' * demo.rnd(seed, i, 17),
         demo.rnd(seed, i, 18) < 0.70, demo.rnd(seed, i, 19) < 0.35, demo.rnd(seed, i, 20) < 0.25,
         CASE WHEN demo.rnd(seed, i, 21) < 0.80
              THEN 6 + demo.skewed(demo.rnd(seed, i, 22), n_outlets - 5, 2.0)::int END,
         CASE WHEN t < 0.50 THEN 'bronze' WHEN t < 0.80 THEN 'silver' WHEN t < 0.95 THEN 'gold' ELSE 'platinum' END
  FROM generate_series(1, n_contacts) i
  CROSS JOIN LATERAL (SELECT demo.rnd(seed, i, 14) AS g, demo.rnd(seed, i, 23) AS t) r
  LEFT JOIN demo.cities c ON demo.rnd(seed, i, 24) >= 0.02
                         AND c.idx = demo.skewed(demo.rnd(seed, i, 25), n_cities, 2.5);

  CREATE TABLE demo.products (id int PRIMARY KEY, name text NOT NULL, category text NOT NULL,
                              color text NOT NULL, product_range text NOT NULL, price numeric(10,2) NOT NULL);
  INSERT INTO demo.products
  SELECT i, initcap(col) || ' ' || cat || ' ' || i, cat, col, rng,
         round((5 + demo.rnd(seed, i, 33) * 195)::numeric, 2)
  FROM generate_series(1, n_products) i
  CROSS JOIN LATERAL (SELECT
     (ARRAY['bags','shoes','tops','trousers','dresses','toys','accessories','jewellery','home','beauty'])
       [1 + demo.skewed(demo.rnd(seed, i, 30), 10, 1.5)::int] AS cat,
     (ARRAY['black','white','blue','red','grey','beige','brown','green','pink','yellow'])
       [1 + demo.skewed(demo.rnd(seed, i, 31), 10, 1.7)::int] AS col,
     CASE WHEN demo.rnd(seed, i, 32) < 0.15 THEN 'children' WHEN demo.rnd(seed, i, 32) < 0.55 THEN 'women'
          WHEN demo.rnd(seed, i, 32) < 0.85 THEN 'men' ELSE 'home' END AS rng) x;

  CREATE TABLE demo.campaigns (id int PRIMARY KEY, brand_id int NOT NULL REFERENCES demo.brands,
                               name text NOT NULL, kind text NOT NULL
                               CHECK (kind IN ('newsletter', 'promo', 'transactional')));
  INSERT INTO demo.campaigns
  SELECT i, b, 'campaign ' || i, k
  FROM generate_series(1, n_campaigns) i
  CROSS JOIN LATERAL (SELECT 1 + floor(demo.rnd(seed, i, 40) * 5)::int AS b,
                             CASE WHEN demo.rnd(seed, i, 41) < 0.60 THEN 'newsletter'
                                  WHEN demo.rnd(seed, i, 41) < 0.90 THEN 'promo' ELSE 'transactional' END AS k) x;

  ANALYZE demo.contacts, demo.products, demo.campaigns;

END
$gen$;

CREATE OR REPLACE FUNCTION demo.generate_messages(n_contacts bigint, seed int, end_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $gen$
DECLARE
  span      interval := interval '730 days';
  start_at  timestamptz := end_at - span;
  n_campaigns int := (SELECT count(*) FROM demo.campaigns);  -- as generate_base made them
  n_sends   bigint := n_contacts * 9;
BEGIN
  -- the time-order sort of message events stays in memory up to S
  PERFORM pg_catalog.set_config('work_mem', '2GB', true);
  DROP TABLE IF EXISTS demo.message_events CASCADE;
  -- Each send yields sent (+ delivered | bounce) (+ open (+ click)) (+ unsubscribe); campaign i goes
  -- out at start + i/n * span, so sends are in time order. Opens depend on a per-contact propensity.
  CREATE TABLE demo.message_events (id bigint PRIMARY KEY, contact_id bigint NOT NULL, brand_id int NOT NULL,
                                    campaign_id int NOT NULL, channel text NOT NULL, event_type text NOT NULL,
                                    link_url text, occurred_at timestamptz NOT NULL);
  INSERT INTO demo.message_events
  SELECT row_number() OVER (ORDER BY e.occurred_at, s.s, e.ord), s.contact_id, cp.brand_id, s.campaign_id,
         s.channel, e.event_type, e.link_url, e.occurred_at
  FROM (SELECT s, 1 + (demo.skewed(demo.rnd(seed, s, 50), n_contacts, 2.0) * 7919) % n_contacts AS contact_id,
               1 + ((s - 1) * n_campaigns / n_sends)::int AS campaign_id,
               start_at + span * ((s - 1)::float8 / n_sends) + interval '6 hours' * demo.rnd(seed, s, 51) AS sent_at,
               CASE WHEN demo.rnd(seed, s, 52) < 0.75 THEN 'email'
                    WHEN demo.rnd(seed, s, 52) < 0.90 THEN 'sms' ELSE 'push' END AS channel,
               demo.rnd(seed, s, 53) AS u_deliver, demo.rnd(seed, s, 54) AS u_open,
               demo.rnd(seed, s, 55) AS u_click, demo.rnd(seed, s, 56) AS u_unsub,
               demo.rnd(seed, 1 + (demo.skewed(demo.rnd(seed, s, 50), n_contacts, 2.0) * 7919) % n_contacts, 57) AS propensity
        FROM generate_series(1, n_sends) s
        OFFSET 0) s  -- computed once per send, not once per event row below
  JOIN demo.campaigns cp ON cp.id = s.campaign_id
  CROSS JOIN LATERAL (VALUES
      (1, 'sent', NULL::text, s.sent_at, true),
      (2, 'delivered', NULL, s.sent_at + interval '1 minute', s.u_deliver < 0.96),
      (3, 'bounce', NULL, s.sent_at + interval '2 minutes', s.u_deliver >= 0.96),
      (4, 'open', NULL, s.sent_at + interval '48 hours' * s.u_click,
          s.u_deliver < 0.96 AND s.channel <> 'sms' AND s.u_open < 0.45 * s.propensity),
      (5, 'click', 'https://shop.example.com/' ||
          (ARRAY['sale','new','kids','bags','shoes'])[1 + floor(s.u_unsub * 5)::int],
          s.sent_at + interval '48 hours' * s.u_click + interval '5 minutes',
          s.u_deliver < 0.96 AND ((s.channel <> 'sms' AND s.u_open < 0.45 * s.propensity
                                   AND s.u_click < 0.3 * s.propensity)
                                  OR (s.channel = 'sms' AND s.u_open < 0.04 * s.propensity))),
      (6, 'unsubscribe', NULL, s.sent_at + interval '1 day',
          s.u_deliver < 0.96 AND s.channel = 'email' AND s.u_unsub < 0.003)
    ) e(ord, event_type, link_url, occurred_at, happens)
  WHERE e.happens;

END
$gen$;

CREATE OR REPLACE FUNCTION demo.generate_orders(n_contacts bigint, seed int, end_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $gen$
DECLARE
  span      interval := interval '730 days';
  start_at  timestamptz := end_at - span;
  n_outlets int := (SELECT count(*) FROM demo.outlets);  -- as generate_base made them
  n_products int := (SELECT count(*) FROM demo.products);
  n_orders  bigint := n_contacts * 5;
BEGIN
  PERFORM pg_catalog.set_config('work_mem', '1GB', true);
  DROP TABLE IF EXISTS demo.order_lines, demo.orders CASCADE;
  -- Buyers are about half of the contacts (the same permutation as message activity, so heavy
  -- readers tend to be heavy buyers); orders are drawn in time order.
  CREATE TABLE demo.orders (id bigint PRIMARY KEY, contact_id bigint NOT NULL, outlet_id int NOT NULL
                            REFERENCES demo.outlets, channel text NOT NULL CHECK (channel IN ('online', 'store')),
                            ordered_at timestamptz NOT NULL, total numeric(12,2) NOT NULL);
  CREATE TABLE demo.order_lines (order_id bigint NOT NULL, product_id int NOT NULL REFERENCES demo.products,
                                 qty int NOT NULL, unit_price numeric(10,2) NOT NULL, on_sale boolean NOT NULL);
  INSERT INTO demo.order_lines
  SELECT o, pr.id, 1 + (demo.rnd(seed, o * 8 + k, 62) < 0.2)::int, round(pr.price * CASE WHEN sale THEN 0.7 ELSE 1 END, 2), sale
  FROM generate_series(1, n_orders) o
  CROSS JOIN LATERAL generate_series(1, 1 + floor(demo.rnd(seed, o, 60) * 3.5)::int) k
  CROSS JOIN LATERAL (SELECT 1 + demo.skewed(demo.rnd(seed, o * 8 + k, 61), n_products, 2.0)::int AS pid,
                             demo.rnd(seed, o * 8 + k, 63) < 0.25 AS sale OFFSET 0) x
  JOIN demo.products pr ON pr.id = x.pid;

  ANALYZE demo.order_lines;
  INSERT INTO demo.orders
  SELECT o, 1 + (demo.skewed(demo.rnd(seed, o, 64), n_contacts / 2, 2.0) * 7919) % n_contacts, ou.id,
         CASE WHEN ou.kind = 'online' THEN 'online' ELSE 'store' END,
         start_at + span * ((o - 1)::float8 / n_orders) + interval '10 hours' * demo.rnd(seed, o, 65),
         coalesce(t.total, 0)
  FROM generate_series(1, n_orders) o
  JOIN demo.outlets ou ON ou.id = 1 + demo.skewed(demo.rnd(seed, o, 66), n_outlets, 1.8)::int
  LEFT JOIN (SELECT l.order_id, sum(l.qty * l.unit_price) AS total FROM demo.order_lines l GROUP BY 1) t
         ON t.order_id = o;

END
$gen$;

CREATE OR REPLACE FUNCTION demo.generate_finish() RETURNS text LANGUAGE plpgsql AS $gen$
BEGIN
  CREATE INDEX ON demo.message_events (contact_id);
  CREATE INDEX ON demo.orders (contact_id);
  CREATE INDEX ON demo.order_lines (order_id);

  -- What segplan's demo registers: purchases at line level with everything a rule may ask about,
  -- and message activity with the campaign's kind. Lookups are LEFT JOINs on primary keys (every
  -- foreign key matches, so the rows are the same), which lets PostgreSQL drop the joins a rule
  -- does not use.
  CREATE VIEW demo.purchase_lines AS
  SELECT o.contact_id, o.id AS order_id, o.ordered_at, o.channel AS order_channel, l.product_id, l.qty,
         l.qty * l.unit_price AS line_total, l.on_sale, p.category, p.color, p.product_range,
         b.name AS brand, ou.kind AS outlet_kind, ou.city, ou.country
  FROM demo.order_lines l
  JOIN demo.orders o ON o.id = l.order_id
  LEFT JOIN demo.products p ON p.id = l.product_id
  LEFT JOIN demo.outlets ou ON ou.id = o.outlet_id
  LEFT JOIN demo.brands b ON b.id = ou.brand_id;

  CREATE VIEW demo.message_activity AS
  SELECT m.id, m.contact_id, b.name AS brand, m.campaign_id, c.kind AS campaign_kind, m.channel,
         m.event_type, m.link_url, m.occurred_at
  FROM demo.message_events m
  LEFT JOIN demo.campaigns c ON c.id = m.campaign_id
  LEFT JOIN demo.brands b ON b.id = m.brand_id;

  ANALYZE demo.message_events, demo.orders, demo.order_lines;
  RETURN format('%s contacts, %s message events, %s orders, %s order lines',
                (SELECT count(*) FROM demo.contacts), (SELECT count(*) FROM demo.message_events),
                (SELECT count(*) FROM demo.orders), (SELECT count(*) FROM demo.order_lines));
END
$gen$;

CREATE OR REPLACE FUNCTION demo.generate(n_contacts bigint, seed int DEFAULT 42,
                                         end_at timestamptz DEFAULT '2026-11-01 00:00:00+00')
RETURNS text LANGUAGE plpgsql AS $gen$
BEGIN
  PERFORM demo.generate_base(n_contacts, seed, end_at);
  PERFORM demo.generate_messages(n_contacts, seed, end_at);
  PERFORM demo.generate_orders(n_contacts, seed, end_at);
  RETURN demo.generate_finish();
END
$gen$;

-- Order-independent checksum of every generated table (for the determinism test).
CREATE OR REPLACE FUNCTION demo.checksum() RETURNS text LANGUAGE sql STABLE AS $$
  SELECT md5(string_agg(t || ':' || s, ',' ORDER BY t)) FROM (
    SELECT 'contacts' AS t, sum(hashtext(c::text)::numeric) AS s FROM demo.contacts c
    UNION ALL SELECT 'outlets', sum(hashtext(o::text)::numeric) FROM demo.outlets o
    UNION ALL SELECT 'products', sum(hashtext(p::text)::numeric) FROM demo.products p
    UNION ALL SELECT 'campaigns', sum(hashtext(c::text)::numeric) FROM demo.campaigns c
    UNION ALL SELECT 'message_events', sum(hashtext(m::text)::numeric) FROM demo.message_events m
    UNION ALL SELECT 'orders', sum(hashtext(o::text)::numeric) FROM demo.orders o
    UNION ALL SELECT 'order_lines', sum(hashtext(l::text)::numeric) FROM demo.order_lines l) x
$$;
