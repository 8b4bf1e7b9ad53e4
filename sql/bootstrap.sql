-- segplan's own tables. Runs first in the install script, with search_path = segplan.
-- Everything is schema-qualified; nothing outside schema segplan is created or replaced.

-- Install guard (PostgreSQL's "Security Considerations for Extensions"): segplan adopts nothing it
-- did not create. CREATE EXTENSION uses an existing schema named segplan as it is (DROP EXTENSION
-- leaves it behind), so it must be the installer's, empty, and nobody else may create in it;
-- anything else (a schema someone prepared, with functions or operators waiting in it) stops the
-- install. The roles are checked in sql/security.sql.
DO $$
DECLARE
  nsp pg_catalog.oid := pg_catalog.to_regnamespace('segplan');
  found text;
BEGIN
  SELECT pg_catalog.string_agg(o.what, ', ') INTO found FROM (
    SELECT 'relation ' OPERATOR(pg_catalog.||) relname AS what FROM pg_catalog.pg_class WHERE relnamespace OPERATOR(pg_catalog.=) nsp
    UNION ALL SELECT 'function ' OPERATOR(pg_catalog.||) proname FROM pg_catalog.pg_proc WHERE pronamespace OPERATOR(pg_catalog.=) nsp
    UNION ALL SELECT 'type ' OPERATOR(pg_catalog.||) typname FROM pg_catalog.pg_type WHERE typnamespace OPERATOR(pg_catalog.=) nsp
    UNION ALL SELECT 'operator ' OPERATOR(pg_catalog.||) oprname FROM pg_catalog.pg_operator WHERE oprnamespace OPERATOR(pg_catalog.=) nsp
    UNION ALL SELECT 'collation ' OPERATOR(pg_catalog.||) collname FROM pg_catalog.pg_collation WHERE collnamespace OPERATOR(pg_catalog.=) nsp
    UNION ALL SELECT 'conversion ' OPERATOR(pg_catalog.||) conname FROM pg_catalog.pg_conversion WHERE connamespace OPERATOR(pg_catalog.=) nsp
    UNION ALL SELECT 'operator family ' OPERATOR(pg_catalog.||) opfname FROM pg_catalog.pg_opfamily WHERE opfnamespace OPERATOR(pg_catalog.=) nsp
    UNION ALL SELECT 'text search configuration ' OPERATOR(pg_catalog.||) cfgname FROM pg_catalog.pg_ts_config WHERE cfgnamespace OPERATOR(pg_catalog.=) nsp
    UNION ALL SELECT 'statistics object ' OPERATOR(pg_catalog.||) stxname FROM pg_catalog.pg_statistic_ext WHERE stxnamespace OPERATOR(pg_catalog.=) nsp
  ) o;
  IF found IS NOT NULL
     OR (SELECT n.nspowner OPERATOR(pg_catalog.<>) (SELECT r.oid FROM pg_catalog.pg_roles r WHERE r.rolname OPERATOR(pg_catalog.=) CURRENT_USER)
           OR EXISTS (SELECT 1 FROM pg_catalog.aclexplode(n.nspacl) a
                      WHERE a.privilege_type OPERATOR(pg_catalog.=) 'CREATE' AND a.grantee OPERATOR(pg_catalog.<>) n.nspowner)
         FROM pg_catalog.pg_namespace n WHERE n.oid OPERATOR(pg_catalog.=) nsp) THEN
    RAISE EXCEPTION 'segplan: schema "segplan" already exists and was not made by this installation'
      USING ERRCODE = '42P06',
        DETAIL = pg_catalog.format('owner %s, privileges %s%s',
          (SELECT n.nspowner::pg_catalog.regrole FROM pg_catalog.pg_namespace n WHERE n.oid OPERATOR(pg_catalog.=) nsp),
          coalesce((SELECT n.nspacl::text FROM pg_catalog.pg_namespace n WHERE n.oid OPERATOR(pg_catalog.=) nsp), 'default'),
          coalesce(', holding ' OPERATOR(pg_catalog.||) found, '')),
        HINT = 'segplan installs into a schema of its own: drop or rename the existing schema "segplan", then CREATE EXTENSION segplan.';
  END IF;
END
$$;

-- The one contact source: a table or view of the customer's, and its key column.
CREATE TABLE segplan.contact_source (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    relid         pg_catalog.regclass NOT NULL,
    key_column    pg_catalog.name NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    registered_by pg_catalog.name NOT NULL DEFAULT CURRENT_USER
);

-- Dense ids for contact keys that are not integers (uuid, text): a bitmap holds ids, this table
-- says whose. A key is numbered the first time a caller's own statement returns it as one of the
-- contacts it can see (src/pg/dense_ids.rs) and keeps its id for good, so bitmaps built by any
-- session, cached or stored by the user, stay comparable. Only segplan's own code reads or
-- writes it, as the owner: keys are customer data, and no role may learn another brand's.
CREATE SEQUENCE segplan.contact_id_seq MINVALUE 0 START 0;
CREATE TABLE segplan.contact_ids (
    key text COLLATE "C" PRIMARY KEY,     -- the key's text form; "C": compared as bytes, fast
    id  bigint NOT NULL UNIQUE DEFAULT pg_catalog.nextval('segplan.contact_id_seq')
);
REVOKE ALL ON segplan.contact_ids, segplan.contact_id_seq FROM PUBLIC;
-- Where a session finds the database's shared copy of those ids (src/pg/id_share.rs): a dynamic
-- shared memory segment a session made, alive while any session maps it, so a new session maps
-- it instead of reading the table and building its own. Unlogged: segments do not outlive the
-- server. Only segplan's own code reads or writes it, as the owner.
CREATE UNLOGGED TABLE segplan.id_copies (
    handle bigint NOT NULL,
    nonce  bigint NOT NULL,
    keys   bigint NOT NULL,
    made   timestamptz NOT NULL DEFAULT pg_catalog.now()
);
REVOKE ALL ON segplan.id_copies FROM PUBLIC;

-- Event sources: any table or view whose rows belong to a contact.
CREATE TABLE segplan.event_sources (
    name           text PRIMARY KEY CHECK (name OPERATOR(pg_catalog.~) '^[a-z_][a-z0-9_]{0,62}$'),
    relid          pg_catalog.regclass NOT NULL,
    contact_column pg_catalog.name NOT NULL,
    time_column    pg_catalog.name,
    registered_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    registered_by  pg_catalog.name NOT NULL DEFAULT CURRENT_USER
);

-- Where RFM reads purchases (segplan.configure_rfm): a registered event source, its amount
-- property, what makes one purchase occasion, the look-back window, an optional fixed as_of.
CREATE TABLE segplan.rfm_config (
    singleton         boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    event             text NOT NULL,
    amount_property   pg_catalog.name NOT NULL,
    occasion_property pg_catalog.name,
    "window"          interval NOT NULL CHECK ("window" OPERATOR(pg_catalog.>) '0'::interval),
    as_of             timestamptz,
    configured_at     timestamptz NOT NULL DEFAULT pg_catalog.now(),
    configured_by     pg_catalog.name NOT NULL DEFAULT CURRENT_USER
);

-- The segment dashboard's field mapping: overrides of what segplan detects from the model's names
-- (segplan.configure_dashboard / segplan.dashboard_fields).
CREATE TABLE segplan.dashboard_config (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    fields        jsonb NOT NULL,
    configured_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    configured_by pg_catalog.name NOT NULL DEFAULT CURRENT_USER
);

-- Stored segments: a name, the brand it belongs to, its rule in versions (who, when), the members
-- of its last refresh (portable roaring bytes: segplan.roaringbitmap64's ::bytea) and the history
-- of refreshes. Names are valid unquoted identifiers, so a published view can carry the name.
CREATE SEQUENCE segplan.segment_id_seq;
CREATE TABLE segplan.segment (
    id           bigint PRIMARY KEY DEFAULT pg_catalog.nextval('segplan.segment_id_seq'),
    name         text NOT NULL UNIQUE CHECK (name OPERATOR(pg_catalog.~) '^[a-z_][a-z0-9_]{0,62}$'),
    brand        text,
    description  text,
    owner        pg_catalog.name NOT NULL DEFAULT CURRENT_USER,
    created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    version      integer NOT NULL DEFAULT 1,
    members      bytea,
    size         bigint,
    refreshed_at timestamptz
);
ALTER SEQUENCE segplan.segment_id_seq OWNED BY segplan.segment.id;
CREATE TABLE segplan.segment_versions (
    segment_id bigint NOT NULL REFERENCES segplan.segment ON DELETE CASCADE,
    version    integer NOT NULL,
    rule       jsonb NOT NULL,
    rule_text  text NOT NULL,
    -- the segments this version references directly
    refs       text[] NOT NULL DEFAULT '{}',
    saved_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
    saved_by   pg_catalog.name NOT NULL DEFAULT CURRENT_USER,
    PRIMARY KEY (segment_id, version)
);
CREATE TABLE segplan.segment_history (
    segment_id   bigint NOT NULL REFERENCES segplan.segment ON DELETE CASCADE,
    refreshed_at timestamptz NOT NULL,
    version      integer NOT NULL,
    size         bigint NOT NULL,
    entered      bigint NOT NULL,
    exited       bigint NOT NULL,
    PRIMARY KEY (segment_id, refreshed_at)
);
-- Views segplan created for BI tools (publish_segment); only these may be replaced or dropped.
CREATE TABLE segplan.published_views (
    segment_id   bigint PRIMARY KEY REFERENCES segplan.segment ON DELETE CASCADE,
    view_schema  pg_catalog.name NOT NULL,
    view_name    pg_catalog.name NOT NULL,
    published_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    published_by pg_catalog.name NOT NULL DEFAULT CURRENT_USER,
    UNIQUE (view_schema, view_name)
);

-- Contact policies (segplan.create_policy): a scope and rules, validated like rules.
CREATE TABLE segplan.policies (
    name       text PRIMARY KEY CHECK (name OPERATOR(pg_catalog.~) '^[a-z_][a-z0-9_]{0,62}$'),
    spec       jsonb NOT NULL,
    -- the brands of its scope (NULL: every brand); who may see it (sql/security.sql)
    brands     text[],
    version    integer NOT NULL DEFAULT 1,
    created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by pg_catalog.name NOT NULL DEFAULT CURRENT_USER,
    updated_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    updated_by pg_catalog.name NOT NULL DEFAULT CURRENT_USER
);
-- Every contact made, by any channel, brand or system: plan runs append, other systems import
-- (segplan.record_contacts or COPY). Caps and gaps count these rows.
CREATE TABLE segplan.contact_history (
    contact_key  bigint NOT NULL,
    brand        text,
    outlet       text,
    channel      text NOT NULL,
    plan_id      bigint,
    run_id       bigint,
    contacted_at timestamptz NOT NULL,
    source       text NOT NULL DEFAULT 'segplan'
);
CREATE INDEX contact_history_time ON segplan.contact_history (contacted_at) INCLUDE (contact_key, brand, outlet, channel);
CREATE INDEX contact_history_contact ON segplan.contact_history (contact_key, contacted_at);
-- Per-contact pauses: no contact during the range (every year when yearly), on the listed
-- channels or on all.
CREATE TABLE segplan.contact_pauses (
    contact_key bigint NOT NULL,
    during      tstzrange NOT NULL CHECK (NOT pg_catalog.isempty(during)),
    reason      text,
    yearly      boolean NOT NULL DEFAULT false,
    channels    text[],
    created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by  pg_catalog.name NOT NULL DEFAULT CURRENT_USER,
    CHECK (NOT yearly OR (NOT pg_catalog.lower_inf(during) AND NOT pg_catalog.upper_inf(during)
                          AND pg_catalog.upper(during) OPERATOR(pg_catalog.<=) (pg_catalog.lower(during) OPERATOR(pg_catalog.+) '1 year'::interval)))
);
CREATE INDEX contact_pauses_contact ON segplan.contact_pauses (contact_key);
-- Contacts planned but not yet made (segplan.reserve_contacts): they count against caps like made
-- ones, for plans of the same or lower priority. One row per contact in contact_locks serializes
-- reservations of the same contact (row locks scale to any list size; advisory locks would not).
CREATE TABLE segplan.contact_reservations (
    -- the columns of a contact made, so caps count both alike; contacted_at is the planned time
    LIKE segplan.contact_history INCLUDING DEFAULTS,
    priority     integer NOT NULL DEFAULT 0,
    reserved_at  timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp()
);
CREATE INDEX contact_reservations_contact ON segplan.contact_reservations (contact_key, contacted_at);
CREATE INDEX contact_reservations_run ON segplan.contact_reservations (run_id);
CREATE TABLE segplan.contact_locks (contact_key bigint PRIMARY KEY);

-- Plans (segplan.create_plan): a spec in versions, a lifecycle, and how far the scheduler got.
CREATE SEQUENCE segplan.plan_id_seq;
CREATE TABLE segplan.plans (
    id            bigint PRIMARY KEY DEFAULT pg_catalog.nextval('segplan.plan_id_seq'),
    name          text NOT NULL UNIQUE,
    status        text NOT NULL DEFAULT 'draft' CHECK (status IN ('draft', 'active', 'paused', 'completed', 'cancelled')),
    version       integer NOT NULL DEFAULT 1,
    brand         text,
    outlet        text,
    -- the scheduler has handled every slot up to here (set when the plan is activated)
    checked_until timestamptz,
    created_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
    created_by    pg_catalog.name NOT NULL DEFAULT CURRENT_USER
);
ALTER SEQUENCE segplan.plan_id_seq OWNED BY segplan.plans.id;
CREATE TABLE segplan.plan_versions (
    plan_id  bigint NOT NULL REFERENCES segplan.plans ON DELETE CASCADE,
    version  integer NOT NULL,
    spec     jsonb NOT NULL,
    saved_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    saved_by pg_catalog.name NOT NULL DEFAULT CURRENT_USER,
    PRIMARY KEY (plan_id, version)
);
-- One row per (plan, slot): the unique key is what makes a slot run exactly once. A run and its
-- list are written in one transaction, so no partial run is ever visible.
CREATE SEQUENCE segplan.run_id_seq;
CREATE TABLE segplan.plan_runs (
    id           bigint PRIMARY KEY DEFAULT pg_catalog.nextval('segplan.run_id_seq'),
    plan_id      bigint NOT NULL REFERENCES segplan.plans ON DELETE CASCADE,
    version      integer NOT NULL,
    slot         timestamptz NOT NULL,
    status       text NOT NULL CHECK (status IN ('running', 'sent', 'cancelled', 'skipped', 'failed')),
    started_at   timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    finished_at  timestamptz,
    segment_size bigint,
    holdout      bigint,
    excluded     bigint,
    sent         bigint,
    test         bigint,
    -- the plan's test addresses, added to this run's hand-off
    test_addresses text[] NOT NULL DEFAULT '{}',
    waterfall    jsonb,
    error        text,
    UNIQUE (plan_id, slot)
);
ALTER SEQUENCE segplan.run_id_seq OWNED BY segplan.plan_runs.id;
-- Call lists: each contact of a call plan's run gets a time within the plan's call windows.
CREATE TABLE segplan.call_list (
    run_id      bigint NOT NULL REFERENCES segplan.plan_runs ON DELETE CASCADE,
    contact_key bigint NOT NULL,
    assignee    text NOT NULL,
    call_at     timestamptz NOT NULL,
    status      text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'completed', 'unavailable', 'busy', 'call_later', 'converted', 'failed')),
    attempts    integer NOT NULL DEFAULT 0,
    note        text,
    updated_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    PRIMARY KEY (run_id, contact_key)
);
CREATE INDEX call_list_queue ON segplan.call_list (assignee, call_at);
-- Which events mean open, click and conversion after a run (segplan.configure_responses).
CREATE TABLE segplan.response_config (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    spec          jsonb NOT NULL,
    configured_at timestamptz NOT NULL DEFAULT pg_catalog.now()
);
CREATE TABLE segplan.run_contacts (
    run_id      bigint NOT NULL REFERENCES segplan.plan_runs ON DELETE CASCADE,
    contact_key bigint NOT NULL,
    status      text NOT NULL CHECK (status IN ('sent', 'test', 'holdout')),
    PRIMARY KEY (run_id, contact_key)
);

-- The model names tables and columns, which the catalog shows everyone anyway; every function
-- reads it as the caller. What a caller may count is decided by their grants on the data itself.
-- Who may read and change segplan's other tables: sql/security.sql.
GRANT SELECT ON segplan.contact_source, segplan.event_sources, segplan.rfm_config, segplan.dashboard_config TO PUBLIC;

-- The change log behind the bitmap cache: rows of (tracked relation, writing transaction),
-- written by statement triggers in the writer's own transaction, so they become visible exactly
-- when the data does (src/core/freshness.rs has the rules). On a registered table, each insert,
-- update or delete also logs the contact keys its rows name (`keys` of integer columns, `text_keys`
-- of uuid and text ones, the registered columns `key_columns`; segplan._note_keys, src/pg/change_log.rs), so a cached bitmap that missed
-- the write is patched by re-evaluating those contacts only; a row without keys (truncate, other
-- tables, more than 10000 rows in a transaction) means the relation changed as a whole. Rows
-- below the horizon are pruned.
CREATE TABLE segplan.changes (
    relid       pg_catalog.oid NOT NULL,
    xid         pg_catalog.xid8 NOT NULL,
    keys        bigint[],
    key_columns pg_catalog.name[],
    text_keys   text[]                      -- uuid and text keys, as text
);
CREATE INDEX changes_relid_xid ON segplan.changes (relid, xid);
CREATE TABLE segplan.cache_horizon (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    xid       pg_catalog.xid8 NOT NULL
);
INSERT INTO segplan.cache_horizon (xid) VALUES ('0');
-- every caller reads them to check its cached bitmaps: oids and transaction ids only (the keys
-- are of rows a caller may not be allowed to read: only segplan's own code reads them, as the owner)
REVOKE ALL ON segplan.changes FROM PUBLIC;
GRANT SELECT (relid, xid) ON segplan.changes TO PUBLIC;
GRANT SELECT ON segplan.cache_horizon TO PUBLIC;

-- The leaf cache every session shares (src/pg/leaf_cache.rs): bitmaps one session built, with the
-- snapshot, definitions and relations they were built on, reused by any session of the same role
-- and settings while the change log shows them fresh. Unlogged (a cache: emptied by a crash,
-- never dumped), append-only (no unique key, so no session waits on another's insert), kept
-- within segplan.shared_cache_memory. Only segplan's own code reads it, as the owner.
CREATE UNLOGGED TABLE segplan.leaf_cache (
    key         text NOT NULL,              -- role, settings, as_of, the leaf's SQL and parameters
    role        pg_catalog.oid NOT NULL,
    snapshot    text NOT NULL,              -- pg_snapshot of the build
    fingerprint text NOT NULL,
    relations   pg_catalog.oid[] NOT NULL,
    label       text NOT NULL,
    contacts    bigint NOT NULL,
    bytes       bigint NOT NULL,
    build_ms    double precision NOT NULL,
    built_at    timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    bitmap      bytea NOT NULL,
    moves       text,                       -- for a leaf over a relative window: the key but for as_of
    as_of       timestamptz                 -- and the as_of it was built for
);
-- roaring bitmaps are compressed already
ALTER TABLE segplan.leaf_cache ALTER COLUMN bitmap SET STORAGE EXTERNAL;
CREATE INDEX leaf_cache_key ON segplan.leaf_cache USING hash (key);
CREATE INDEX leaf_cache_role ON segplan.leaf_cache (role);
CREATE INDEX leaf_cache_moves ON segplan.leaf_cache USING hash (moves);
REVOKE ALL ON segplan.leaf_cache FROM PUBLIC;

-- The trigger function: runs as the extension's owner (writers need no grant on segplan.changes),
-- records each relation once per transaction.
CREATE FUNCTION segplan._note_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  seen text := coalesce(pg_catalog.current_setting('segplan_internal.changed', true), '');
  mark text := ',' OPERATOR(pg_catalog.||) TG_RELID::text OPERATOR(pg_catalog.||) ',';
BEGIN
  IF pg_catalog.strpos(seen, mark) OPERATOR(pg_catalog.=) 0 THEN
    INSERT INTO segplan.changes (relid, xid) VALUES (TG_RELID, pg_catalog.pg_current_xact_id());
    PERFORM pg_catalog.set_config('segplan_internal.changed', seen OPERATOR(pg_catalog.||) mark, true);
  END IF;
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION segplan._note_change() FROM PUBLIC;

-- The tables a source reads: itself, what its views read, what row-level security policies on
-- them read, and partitions/children, recursively.
CREATE FUNCTION segplan._closure(sources pg_catalog.oid[]) RETURNS TABLE (source pg_catalog.oid, rel pg_catalog.oid)
LANGUAGE sql STABLE SET search_path = pg_catalog, pg_temp AS $$
WITH RECURSIVE edges(parent, child) AS (
  SELECT r.ev_class, d.refobjid FROM pg_catalog.pg_rewrite r
  JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_rewrite'::pg_catalog.regclass
   AND d.objid OPERATOR(pg_catalog.=) r.oid AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.refobjid OPERATOR(pg_catalog.<>) r.ev_class
  UNION ALL
  SELECT p.polrelid, d.refobjid FROM pg_catalog.pg_policy p
  JOIN pg_catalog.pg_depend d ON d.classid OPERATOR(pg_catalog.=) 'pg_catalog.pg_policy'::pg_catalog.regclass
   AND d.objid OPERATOR(pg_catalog.=) p.oid AND d.refclassid OPERATOR(pg_catalog.=) 'pg_catalog.pg_class'::pg_catalog.regclass
   AND d.refobjid OPERATOR(pg_catalog.<>) p.polrelid
  UNION ALL
  SELECT i.inhparent, i.inhrelid FROM pg_catalog.pg_inherits i
), closure(source, rel) AS (
  SELECT s, s FROM pg_catalog.unnest(sources) AS s
  UNION
  SELECT c.source, e.child FROM closure c JOIN edges e ON e.parent OPERATOR(pg_catalog.=) c.rel
)
SELECT c.source, c.rel FROM closure c JOIN pg_catalog.pg_class k ON k.oid OPERATOR(pg_catalog.=) c.rel
WHERE k.relkind OPERATOR(pg_catalog.=) ANY ('{r,p,v,m,f}'::"char"[])
$$;

-- Installs the change-log triggers on every table a source reads (as the caller: it needs to own
-- them): segplan_changes for insert, update, delete and truncate; on `keyed`, the table writes to
-- the source log its contacts from (src/pg/catalog.rs, keyed_by: the source itself if a table),
-- the keyed triggers instead (segplan_keys_insert/update/delete, src/pg/change_log.rs, logging
-- `key_columns`, made afresh with each registration) and segplan_changes for truncate only. Those
-- are statement triggers, ENABLE ALWAYS; a logical replication subscriber's apply worker fires row
-- triggers only, so every table also gets segplan_replica, a row trigger enabled for replication
-- only (ENABLE REPLICA: it fires in the apply worker and nowhere else), logging the table as
-- changed once per transaction (partitions of a partitioned table get it from their parent).
-- Returns the tables it could not track; counts over those are computed afresh each time.
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

-- Prunes the change log: rows of transactions every snapshot sees are dropped and the horizon
-- moves up (cached bitmaps built before it are rebuilt). With `keep` (the shared cache's trim, every
-- so often as sessions write to it): not past what the shared cache built or patched within
-- `keep`, so bitmaps in use stay usable; at most 10000 rows a call, and never waiting on another
-- session's prune. Returns the number of rows dropped.
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

-- Registrations are part of a dump of the database.
SELECT pg_catalog.pg_extension_config_dump('segplan.contact_source', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.event_sources', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.contact_ids', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.contact_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.rfm_config', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.dashboard_config', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.policies', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.contact_history', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.contact_pauses', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.contact_reservations', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.plans', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.plan_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.plan_versions', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.plan_runs', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.run_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.run_contacts', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.response_config', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.call_list', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.segment', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.segment_id_seq', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.segment_versions', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.segment_history', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.published_views', '');

-- segplan works without pg_cron; say how scheduling works then (a WARNING: extension scripts
-- run with client_min_messages = warning, so a NOTICE would never be seen).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
    RAISE WARNING 'segplan: pg_cron is not installed in this database; segments and counts work, scheduled plans need a scheduler'
      USING HINT = 'To schedule with pg_cron: shared_preload_libraries = ''pg_cron'', cron.database_name = this database, then CREATE EXTENSION pg_cron. Any other scheduler can call segplan''s functions instead (see the README, "Scheduling").';
  END IF;
END
$$;
