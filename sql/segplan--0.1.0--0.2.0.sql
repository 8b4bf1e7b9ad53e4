-- segplan 0.1.0 -> 0.2.0 (ALTER EXTENSION segplan UPDATE). `make upgrade` installs 0.1.0, runs
-- this, and compares every object of the extension with a fresh install of 0.2.0.
-- Everything is schema-qualified; the search_path is segplan, pg_temp while it runs.

-- configure_rfm: the look-back parameter is `lookback` (`window` is a reserved word, so named
-- notation needed "window" => …). A parameter cannot be renamed in place: the function is made
-- again, with its comment and its grant.
DROP FUNCTION segplan.configure_rfm(text, text, text, interval, timestamptz);
CREATE FUNCTION segplan.configure_rfm(
	"event" TEXT,
	"amount_property" TEXT,
	"occasion_property" TEXT DEFAULT NULL,
	"lookback" interval DEFAULT '2 years',
	"as_of" timestamp with time zone DEFAULT NULL
) RETURNS jsonb
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'configure_rfm_wrapper';
COMMENT ON FUNCTION segplan.configure_rfm(text, text, text, interval, timestamptz) IS
  'Sets where RFM reads purchases: an event source, its amount property, what makes one occasion, the look-back window, an optional fixed as_of.';
REVOKE EXECUTE ON FUNCTION segplan.configure_rfm(text, text, text, interval, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segplan.configure_rfm(text, text, text, interval, timestamptz) TO segplan_admin;

-- publish_segment: a schema name with a dot or a quote in it is a name like any other (0.1.0 parsed
-- it with to_regnamespace: 42602 "invalid name syntax"), an empty one is 22023, NULL 22004 (was
-- format()'s, without a hint). The function
-- is replaced in place (its grants and comment stay).
CREATE OR REPLACE FUNCTION segplan.publish_segment(name text, schema name DEFAULT 'segments') RETURNS text
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s segplan.segment := segplan._segment(name);
  src regclass; key name; key_type text; ours record; target text;
  filter text;
BEGIN
  IF schema IS NULL THEN
    RAISE EXCEPTION 'segplan: schema must not be NULL' USING ERRCODE = '22004', DETAIL = 'at schema',
      HINT = 'leave it out (segments) or name a schema';
  END IF;
  target := format('%I.%I', schema, s.name);
  IF schema = '' THEN
    RAISE EXCEPTION 'segplan: the schema to publish into has no name' USING ERRCODE = '22023', DETAIL = 'at schema',
      HINT = 'leave it out (segments) or name a schema';
  END IF;
  SELECT c.relid, c.key_column INTO src, key FROM segplan.contact_source c;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'segplan: no contact source is registered' USING ERRCODE = '22023',
      HINT = 'call segplan.register_contacts(''schema.table'', ''key_column'') first';
  END IF;
  SELECT format_type(a.atttypid, NULL) INTO key_type FROM pg_attribute a WHERE a.attrelid = src AND a.attname = key;
  SELECT * INTO ours FROM segplan.published_views p WHERE p.segment_id = s.id;
  IF to_regclass(target) IS NOT NULL AND NOT (FOUND AND ours.view_schema = schema AND ours.view_name = s.name) THEN
    RAISE EXCEPTION 'segplan: % already exists and is not this segment''s published view', target USING ERRCODE = '42P07',
      HINT = 'publish into another schema: segplan.publish_segment(name, ''other_schema'')';
  END IF;
  IF FOUND AND ours.view_schema <> schema THEN
    PERFORM segplan.unpublish_segment(s.name);
  END IF;
  filter := CASE WHEN key_type IN ('smallint', 'integer', 'bigint')
    THEN format('c.%I IN (SELECT segplan.members(%L::jsonb))', key, jsonb_build_object('segment', s.name))
    ELSE format('c.%I::text IN (SELECT segplan.members_text(%L::jsonb))', key, jsonb_build_object('segment', s.name)) END;
  -- the name as it is (to_regnamespace would parse it: a dot or a quote in it is an error there)
  IF NOT EXISTS (SELECT 1 FROM pg_namespace n WHERE n.nspname = schema) THEN
    EXECUTE format('CREATE SCHEMA %I', schema);
  END IF;
  EXECUTE format('CREATE OR REPLACE VIEW %s WITH (security_invoker = true) AS SELECT c.* FROM %s AS c WHERE %s', target, src, filter);
  EXECUTE format('COMMENT ON VIEW %s IS %L', target,
                 'segplan segment ' || s.name || coalesce(': ' || s.description, '') || ' (live members; published by segplan.publish_segment)');
  INSERT INTO segplan.published_views (segment_id, view_schema, view_name) VALUES (s.id, schema, s.name)
  ON CONFLICT (segment_id) DO UPDATE SET published_at = now(), published_by = current_user;
  RETURN target;
END
$$;

-- grant_brand: an empty brand name or an empty list of outlets is 22023 with a hint (0.1.0 let
-- brand_grants' check constraints refuse them: 23514 naming the constraint). Replaced in place.
CREATE OR REPLACE FUNCTION segplan.grant_brand(role pg_catalog.regrole, brand text, outlets text[] DEFAULT NULL) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
#variable_conflict use_column
BEGIN
  -- what brand_grants' checks refuse, said as the caller's mistake
  IF $1 IS NULL OR $2 IS NULL THEN
    RAISE EXCEPTION 'segplan: % must not be NULL', CASE WHEN $1 IS NULL THEN 'role' ELSE 'brand' END USING ERRCODE = '22004',
      DETAIL = CASE WHEN $1 IS NULL THEN 'at role' ELSE 'at brand' END, HINT = 'name a role and a brand (''*'' means every brand)';
  END IF;
  IF $2 = '' OR strpos($2, E'\x1f') > 0 THEN
    RAISE EXCEPTION 'segplan: % is not a brand name', quote_literal($2) USING ERRCODE = '22023', DETAIL = 'at brand',
      HINT = 'a brand is a name that is not empty (''*'' means every brand)';
  END IF;
  IF cardinality($3) = 0 THEN
    RAISE EXCEPTION 'segplan: no outlets given' USING ERRCODE = '22023', DETAIL = 'at outlets',
      HINT = 'pass NULL (the default) for every outlet of the brand, or name the outlets';
  END IF;
  INSERT INTO segplan.brand_grants AS g (role, brand, outlets) VALUES ($1, $2, $3)
  ON CONFLICT (role, brand) DO UPDATE SET outlets = EXCLUDED.outlets, granted_at = now(), granted_by = CURRENT_USER;
END
$$;

-- rfm_scores, rfm_scores_text, rfm_summary: an as_of outside years 1 to 9999 is 22023 with a hint
-- (0.1.0: PostgreSQL's 22008 "timestamp out of range" from the window's start). The check is a
-- new internal function; the three are replaced in place (their grants and comments stay).
CREATE FUNCTION segplan._rfm_as_of(
	"as_of" timestamp with time zone
) RETURNS timestamp with time zone
IMMUTABLE STRICT PARALLEL SAFE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', '_rfm_as_of_wrapper';
COMMENT ON FUNCTION segplan._rfm_as_of(timestamptz) IS 'Internal: rfm_scores'' and rfm_summary''s as_of, checked to be in years 1 to 9999 (22023).';
REVOKE EXECUTE ON FUNCTION segplan._rfm_as_of(timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segplan._rfm_as_of(timestamptz) TO segplan_analyst;
CREATE OR REPLACE FUNCTION segplan.rfm_scores(as_of timestamptz DEFAULT NULL)
RETURNS TABLE (contact_key bigint, recency_days integer, frequency bigint, monetary numeric, r integer, f integer, m integer, cluster text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE q record;
BEGIN
  SELECT * INTO q FROM segplan._rfm_query('bigint');
  RETURN QUERY EXECUTE q.sql USING segplan._rfm_as_of(coalesce(as_of, date_trunc('minute', now()))), q.params[1], q.params[2];
END
$$;
CREATE OR REPLACE FUNCTION segplan.rfm_scores_text(as_of timestamptz DEFAULT NULL)
RETURNS TABLE (contact_key text, recency_days integer, frequency bigint, monetary numeric, r integer, f integer, m integer, cluster text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE q record;
BEGIN
  SELECT * INTO q FROM segplan._rfm_query('text');
  RETURN QUERY EXECUTE q.sql USING segplan._rfm_as_of(coalesce(as_of, date_trunc('minute', now()))), q.params[1], q.params[2];
END
$$;
CREATE OR REPLACE FUNCTION segplan.rfm_summary(as_of timestamptz DEFAULT NULL)
RETURNS TABLE (cluster text, contacts bigint, share numeric, avg_recency_days numeric, avg_frequency numeric, avg_monetary numeric)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE q record;
BEGIN
  SELECT * INTO q FROM segplan._rfm_query('text');
  RETURN QUERY EXECUTE
    'WITH s AS (' || q.sql || '),
     g AS (SELECT s.cluster, count(*) AS n, avg(s.recency_days) AS r, avg(s.frequency) AS f, avg(s.monetary) AS m
           FROM s GROUP BY s.cluster),
     c AS (SELECT k.cluster, min(k.ord) AS ord FROM segplan.rfm_clusters() WITH ORDINALITY AS k(cluster, r_min, r_max, fm_min, fm_max, description, ord)
           GROUP BY k.cluster)
     SELECT c.cluster, coalesce(g.n, 0), round(coalesce(g.n, 0)::numeric / nullif(sum(g.n) OVER (), 0), 4),
            round(g.r, 1), round(g.f, 2), round(g.m, 2)
     FROM c LEFT JOIN g ON g.cluster = c.cluster ORDER BY c.ord'
  USING segplan._rfm_as_of(coalesce(as_of, date_trunc('minute', now()))), q.params[1], q.params[2];
END
$$;

-- record_contacts: contacted_at or source NULL is 22004 (was the table's 23502), outside years 1 to 9999
-- 22023 ('infinity' went into the history, where no cap ever counted it). Replaced in place.
CREATE OR REPLACE FUNCTION segplan.record_contacts(contact_keys bigint[], channel text, brand text DEFAULT NULL, outlet text DEFAULT NULL,
                                        contacted_at timestamptz DEFAULT pg_catalog.now(), source text DEFAULT 'import')
RETURNS bigint LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE n bigint;
BEGIN
  IF channel IS NULL OR channel = '' THEN
    RAISE EXCEPTION 'segplan: a contact needs a channel' USING ERRCODE = '22023', DETAIL = 'at channel', HINT = 'for example ''email'' or ''sms''';
  END IF;
  IF contacted_at IS NULL OR source IS NULL THEN
    RAISE EXCEPTION 'segplan: % must not be NULL', CASE WHEN source IS NULL THEN 'source' ELSE 'contacted_at' END USING ERRCODE = '22004',
      DETAIL = CASE WHEN source IS NULL THEN 'at source' ELSE 'at contacted_at' END, HINT = 'pass a value (or leave it out for the default)';
  END IF;
  -- as every time segplan takes: caps count back from a send's time in years 1 to 9999
  IF NOT (contacted_at >= '0001-01-02 00:00+00' AND contacted_at < '9999-12-31 00:00+00') THEN
    RAISE EXCEPTION 'segplan: contacted_at must be a time from 0001-01-02 to 9999-12-30, not %', contacted_at
      USING ERRCODE = '22023', DETAIL = 'at contacted_at', HINT = 'give a date and time such as now() or ''2026-12-01 09:00''';
  END IF;
  INSERT INTO segplan.contact_history (contact_key, brand, outlet, channel, contacted_at, source)
  SELECT k, brand, outlet, channel, contacted_at, source FROM unnest(contact_keys) AS k WHERE k IS NOT NULL;
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;

-- pause_contact: a NULL contact_key or yearly is 22004 (was contact_pauses' 23502). Replaced in place.
CREATE OR REPLACE FUNCTION segplan.pause_contact(contact_key bigint, during tstzrange, reason text DEFAULT NULL,
                                      yearly boolean DEFAULT false, channels text[] DEFAULT NULL)
RETURNS void LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF contact_key IS NULL OR yearly IS NULL THEN
    RAISE EXCEPTION 'segplan: % must not be NULL', CASE WHEN contact_key IS NULL THEN 'contact_key' ELSE 'yearly' END USING ERRCODE = '22004',
      DETAIL = CASE WHEN contact_key IS NULL THEN 'at contact_key' ELSE 'at yearly' END, HINT = 'pass a value (yearly: true or false)';
  END IF;
  IF during IS NULL OR isempty(during) THEN
    RAISE EXCEPTION 'segplan: a pause needs a non-empty period' USING ERRCODE = '22023', DETAIL = 'at during',
      HINT = 'for example tstzrange(''2026-08-01'', ''2026-09-01'')';
  END IF;
  IF yearly AND (lower_inf(during) OR upper_inf(during) OR upper(during) > lower(during) + interval '1 year') THEN
    RAISE EXCEPTION 'segplan: a yearly pause is a period of at most one year with both ends given' USING ERRCODE = '22023',
      DETAIL = 'at during: ' || during::text, HINT = 'for example every August: daterange(''2026-08-01'', ''2026-09-01''), yearly => true';
  END IF;
  INSERT INTO segplan.contact_pauses (contact_key, during, reason, yearly, channels)
  VALUES (contact_key, during, reason, yearly, channels);
END
$$;

-- call_queue: a day outside years 1 to 9999 is 22023 (a day past 294276 was PostgreSQL's 22008
-- from its cast to a timestamp; 'infinity' listed nothing). Replaced in place, now in PL/pgSQL.
CREATE OR REPLACE FUNCTION segplan.call_queue(assignee text, day date DEFAULT current_date)
RETURNS TABLE (call_at timestamptz, run_id bigint, plan text, contact_key bigint, status text, attempts integer, note text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  -- as every time segplan takes (a day past 294276 has no timestamp: PostgreSQL's 22008)
  IF NOT (day BETWEEN '0001-01-01' AND '9999-12-31') THEN
    RAISE EXCEPTION 'segplan: day must be a date from 0001-01-01 to 9999-12-31, not %', day
      USING ERRCODE = '22023', DETAIL = 'at day', HINT = 'give a date such as current_date or ''2026-12-01''';
  END IF;
  RETURN QUERY
  SELECT l.call_at, l.run_id, p.name, l.contact_key, l.status, l.attempts, l.note
  FROM segplan.call_list l JOIN segplan.plan_runs r ON r.id = l.run_id JOIN segplan.plans p ON p.id = r.plan_id
  WHERE l.assignee = call_queue.assignee AND l.status IN ('queued', 'call_later')
    AND l.call_at >= call_queue.day::timestamptz AND l.call_at < (call_queue.day + 1)::timestamptz
  ORDER BY l.call_at, l.contact_key;
END
$$;

-- Patching cached bitmaps after writes: a write to a registered table logs the contact keys it
-- touched (new columns of segplan.changes, a new keyed trigger function in the library), so a cached bitmap that
-- missed it is re-evaluated for those contacts only. _track takes the table and columns to key
-- (made again, with its comment and grant) and is run again for every registered table, which
-- gives them the keyed triggers (tables whose owner is not the one updating keep their trigger and
-- are simply not patched; a registered view's table gets them at the view's next registration),
-- then for every source, which gives each table it reads segplan_replica (0.1.0's statement
-- triggers never fired in a logical replication subscriber's apply worker).
ALTER TABLE segplan.changes ADD COLUMN keys bigint[], ADD COLUMN key_columns pg_catalog.name[], ADD COLUMN text_keys text[];
-- callers read oids and transaction ids only (the keys are of rows a caller may not be allowed to read)
REVOKE ALL ON segplan.changes FROM PUBLIC;
GRANT SELECT (relid, xid) ON segplan.changes TO PUBLIC;
CREATE FUNCTION segplan._note_keys() RETURNS trigger LANGUAGE c AS 'MODULE_PATHNAME', '_note_keys_wrapper';
REVOKE ALL ON FUNCTION segplan._note_keys() FROM PUBLIC;
COMMENT ON FUNCTION segplan._note_keys() IS 'Internal: the change-log trigger function on registered tables, logging the contact keys a write touched.';
GRANT EXECUTE ON FUNCTION segplan._note_keys() TO segplan_admin;
DROP FUNCTION segplan._track(regclass);
CREATE FUNCTION segplan._track(source pg_catalog.regclass, keyed pg_catalog.regclass DEFAULT NULL, key_columns pg_catalog.name[] DEFAULT NULL)
RETURNS pg_catalog.regclass[]
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  t pg_catalog.regclass;
  partition boolean;
  whole boolean;
  by_keys boolean;
  replica boolean;
  trigger_name pg_catalog.name;
  args text;
  missed pg_catalog.regclass[] := '{}';
BEGIN
  -- the keyed triggers' arguments: the columns, as literals
  SELECT pg_catalog.string_agg(pg_catalog.quote_literal(c), ', ' ORDER BY c) INTO args FROM pg_catalog.unnest(key_columns) AS c;
  FOR t, partition IN
    SELECT DISTINCT c.rel::pg_catalog.regclass, k.relispartition FROM segplan._closure(ARRAY[source::pg_catalog.oid]) c
    JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) c.rel
    WHERE k.relkind OPERATOR(pg_catalog.<>) 'v'
  LOOP
    -- tracked as a whole (segplan_changes on all four events), or by keys; for replication
    SELECT coalesce(pg_catalog.bool_or(g.tgname OPERATOR(pg_catalog.=) 'segplan_changes' AND g.tgenabled OPERATOR(pg_catalog.=) 'A'
                                       AND (g.tgtype::integer OPERATOR(pg_catalog.&) 60) OPERATOR(pg_catalog.=) 60), false),
           coalesce(pg_catalog.bool_or(g.tgname OPERATOR(pg_catalog.=) 'segplan_changes' AND g.tgenabled OPERATOR(pg_catalog.=) 'A'
                                       AND (g.tgtype::integer OPERATOR(pg_catalog.&) 60) OPERATOR(pg_catalog.=) 32), false)
             AND pg_catalog.count(*) FILTER (WHERE g.tgname OPERATOR(pg_catalog.~) '^segplan_keys_' AND g.tgenabled OPERATOR(pg_catalog.=) 'A') OPERATOR(pg_catalog.=) 3,
           coalesce(pg_catalog.bool_or(g.tgname OPERATOR(pg_catalog.=) 'segplan_replica' AND g.tgenabled OPERATOR(pg_catalog.=) 'R'), false)
      INTO whole, by_keys, replica
    FROM pg_catalog.pg_trigger g
    WHERE g.tgrelid OPERATOR(pg_catalog.=) t
      AND g.tgname OPERATOR(pg_catalog.=) ANY ('{segplan_changes,segplan_keys_insert,segplan_keys_update,segplan_keys_delete,segplan_replica}'::pg_catalog.name[]);
    CONTINUE WHEN (t IS DISTINCT FROM keyed OR args IS NULL) AND (whole OR by_keys) AND (replica OR partition);
    BEGIN
      IF (t OPERATOR(pg_catalog.=) keyed AND args IS NOT NULL) OR NOT (whole OR by_keys) THEN
        FOR trigger_name IN SELECT g.tgname FROM pg_catalog.pg_trigger g WHERE g.tgrelid OPERATOR(pg_catalog.=) t
          AND g.tgname OPERATOR(pg_catalog.=) ANY ('{segplan_changes,segplan_keys_insert,segplan_keys_update,segplan_keys_delete}'::pg_catalog.name[])
        LOOP
          EXECUTE pg_catalog.format('DROP TRIGGER %I ON %s', trigger_name, t);
        END LOOP;
        IF t OPERATOR(pg_catalog.=) keyed AND args IS NOT NULL THEN
          EXECUTE pg_catalog.format('CREATE TRIGGER segplan_keys_insert AFTER INSERT ON %s REFERENCING NEW TABLE AS segplan_new FOR EACH STATEMENT EXECUTE FUNCTION segplan._note_keys(%s)', t, args);
          EXECUTE pg_catalog.format('CREATE TRIGGER segplan_keys_update AFTER UPDATE ON %s REFERENCING OLD TABLE AS segplan_old NEW TABLE AS segplan_new FOR EACH STATEMENT EXECUTE FUNCTION segplan._note_keys(%s)', t, args);
          EXECUTE pg_catalog.format('CREATE TRIGGER segplan_keys_delete AFTER DELETE ON %s REFERENCING OLD TABLE AS segplan_old FOR EACH STATEMENT EXECUTE FUNCTION segplan._note_keys(%s)', t, args);
          EXECUTE pg_catalog.format('CREATE TRIGGER segplan_changes AFTER TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION segplan._note_change()', t);
          EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER segplan_keys_insert', t);
          EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER segplan_keys_update', t);
          EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER segplan_keys_delete', t);
        ELSE
          EXECUTE pg_catalog.format('CREATE TRIGGER segplan_changes AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON %s FOR EACH STATEMENT EXECUTE FUNCTION segplan._note_change()', t);
        END IF;
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE ALWAYS TRIGGER segplan_changes', t);
      END IF;
      IF NOT (replica OR partition) THEN
        IF EXISTS (SELECT 1 FROM pg_catalog.pg_trigger g WHERE g.tgrelid OPERATOR(pg_catalog.=) t AND g.tgname OPERATOR(pg_catalog.=) 'segplan_replica') THEN
          EXECUTE pg_catalog.format('DROP TRIGGER segplan_replica ON %s', t);
        END IF;
        EXECUTE pg_catalog.format('CREATE TRIGGER segplan_replica AFTER INSERT OR UPDATE OR DELETE ON %s FOR EACH ROW EXECUTE FUNCTION segplan._note_change()', t);
        EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE REPLICA TRIGGER segplan_replica', t);
      END IF;
    EXCEPTION WHEN insufficient_privilege OR wrong_object_type OR feature_not_supported THEN
      -- a table tracked already stays so
      IF NOT (whole OR by_keys) THEN
        missed := missed OPERATOR(pg_catalog.||) t;
      END IF;
    END;
  END LOOP;
  -- partitions hold their parent's segplan_replica: for replication only there too
  FOR t IN
    SELECT DISTINCT c.rel::pg_catalog.regclass FROM segplan._closure(ARRAY[source::pg_catalog.oid]) c
    JOIN pg_catalog.pg_trigger g ON g.tgrelid OPERATOR(pg_catalog.=) c.rel AND g.tgname OPERATOR(pg_catalog.=) 'segplan_replica'
    WHERE g.tgenabled OPERATOR(pg_catalog.<>) 'R'
  LOOP
    BEGIN
      EXECUTE pg_catalog.format('ALTER TABLE %s ENABLE REPLICA TRIGGER segplan_replica', t);
    EXCEPTION WHEN insufficient_privilege THEN
      missed := missed OPERATOR(pg_catalog.||) t;
    END;
  END LOOP;
  RETURN missed;
END
$$;
COMMENT ON FUNCTION segplan._track(regclass, regclass, name[]) IS 'Internal: puts the change-log triggers on the tables a source reads, the keyed ones on the table given; returns those it could not.';
REVOKE ALL ON FUNCTION segplan._track(regclass, regclass, name[]) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segplan._track(regclass, regclass, name[]) TO segplan_admin;
SELECT segplan._track(r.relid, r.relid, pg_catalog.array_agg(r.col ORDER BY r.col))
FROM (SELECT c.relid, c.key_column AS col FROM segplan.contact_source c UNION SELECT e.relid, e.contact_column FROM segplan.event_sources e) AS r
JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) r.relid::pg_catalog.oid
JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) k.oid AND a.attname OPERATOR(pg_catalog.=) r.col
WHERE k.relkind OPERATOR(pg_catalog.=) ANY ('{r,p}'::"char"[]) AND a.atttypid OPERATOR(pg_catalog.=) ANY ('{int2,int4,int8,uuid,text,varchar}'::pg_catalog.regtype[])
GROUP BY r.relid;
-- and every source's tables the replication trigger (segplan_replica)
SELECT segplan._track(r.relid) FROM (SELECT c.relid FROM segplan.contact_source c UNION SELECT e.relid FROM segplan.event_sources e) AS r;

-- _prune_changes: with `keep`, called as the shared cache is trimmed, it prunes the change log up
-- to what the shared cache built or patched lately (0.1.0 pruned on cache_clear only: a table
-- written to without pause grew the log without end, and counts read it from their bitmaps' builds
-- on). Made again with the parameter, its comment and grant.
DROP FUNCTION segplan._prune_changes();
CREATE FUNCTION segplan._prune_changes(keep interval DEFAULT NULL) RETURNS bigint
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  h pg_catalog.xid8 := pg_catalog.pg_snapshot_xmin(pg_catalog.pg_current_snapshot());
  n bigint;
BEGIN
  IF keep IS NOT NULL THEN
    PERFORM 1 FROM segplan.cache_horizon FOR UPDATE SKIP LOCKED;
    IF NOT FOUND THEN
      RETURN 0;
    END IF;
    h := LEAST(h, (SELECT pg_catalog.min(pg_catalog.pg_snapshot_xmin(l.snapshot::pg_catalog.pg_snapshot)) FROM segplan.leaf_cache l
                   WHERE l.built_at OPERATOR(pg_catalog.>) (pg_catalog.clock_timestamp() OPERATOR(pg_catalog.-) keep)));
  END IF;
  UPDATE segplan.cache_horizon SET xid = h WHERE xid OPERATOR(pg_catalog.<) h;
  DELETE FROM segplan.changes d WHERE d.ctid OPERATOR(pg_catalog.=) ANY (ARRAY(
    SELECT c.ctid FROM segplan.changes c WHERE c.xid OPERATOR(pg_catalog.<) h
    LIMIT CASE WHEN keep IS NULL THEN NULL ELSE 10000 END FOR UPDATE SKIP LOCKED));
  GET DIAGNOSTICS n = ROW_COUNT;
  RETURN n;
END
$$;
COMMENT ON FUNCTION segplan._prune_changes(interval) IS 'Internal: prunes the change log up to the oldest running transaction (with keep: not past the shared cache''s bitmaps of that recent, at most 10000 rows).';
REVOKE ALL ON FUNCTION segplan._prune_changes(interval) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segplan._prune_changes(interval) TO segplan_analyst;

-- Relative windows shifted: a leaf over a relative window cached for one as_of is brought to
-- another (src/pg/engine.rs); the shared cache keeps, for such leaves, the key but for as_of and
-- the as_of, so another session can shift it too. The table is a cache: its rows are kept.
ALTER TABLE segplan.leaf_cache ADD COLUMN moves text, ADD COLUMN as_of timestamptz;
CREATE INDEX leaf_cache_moves ON segplan.leaf_cache USING hash (moves);
