-- Who may do what, enforced by PostgreSQL itself: four group roles, brand (and outlet) scoping by
-- row-level security on every table that holds brand data, and an audit log. Runs right after
-- sql/bootstrap.sql; EXECUTE on functions is granted at the end of sql/finalize.sql.
--
-- Superusers bypass row-level security, so everything here is tested as ordinary roles
-- (tests/pg_regress/sql/16_security.sql).

-- ---------------------------------------------------------------------------------------------
-- Roles: NOLOGIN groups the customer grants to people and applications. Roles belong to the whole
-- cluster, so a second database installing segplan finds them; it adopts a role only when it is
-- segplan's (the comment below, which only CREATEROLE holders can set) and harmless (no login, no
-- attributes, a member of nothing but segplan's roles). Any other role with one of these names
-- stops the install: its privileges or members would otherwise inherit what segplan grants.
DO $$
DECLARE
  r text;
  marker CONSTANT text := 'segplan role';
  bad text;
BEGIN
  FOREACH r IN ARRAY ARRAY['segplan_analyst', 'segplan_planner', 'segplan_scheduler', 'segplan_admin'] LOOP
    IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) r) THEN
      EXECUTE pg_catalog.format('CREATE ROLE %I NOLOGIN', r);
      EXECUTE pg_catalog.format('COMMENT ON ROLE %I IS %L', r, marker OPERATOR(pg_catalog.||) ': a group role of the segplan extension (see its README, "Security")');
      CONTINUE;
    END IF;
    SELECT pg_catalog.concat_ws(', ',
             CASE WHEN a.rolcanlogin THEN 'it can log in' END,
             CASE WHEN a.rolsuper OR a.rolcreaterole OR a.rolcreatedb OR a.rolreplication OR a.rolbypassrls THEN 'it has role attributes' END,
             CASE WHEN NOT coalesce(pg_catalog.shobj_description(a.oid, 'pg_authid') OPERATOR(pg_catalog.^@) marker, false) THEN 'segplan did not create it' END,
             (SELECT 'it is a member of ' OPERATOR(pg_catalog.||) pg_catalog.string_agg(m.roleid::pg_catalog.regrole::text, ', ')
                FROM pg_catalog.pg_auth_members m
               WHERE m.member OPERATOR(pg_catalog.=) a.oid
                 AND m.roleid::pg_catalog.regrole::text OPERATOR(pg_catalog.<>) ALL (ARRAY['segplan_analyst', 'segplan_planner', 'segplan_scheduler'])))
      INTO bad FROM pg_catalog.pg_roles a WHERE a.rolname OPERATOR(pg_catalog.=) r;
    IF bad OPERATOR(pg_catalog.<>) '' THEN
      RAISE EXCEPTION 'segplan: role "%" already exists and segplan will not adopt it', r
        USING ERRCODE = '42710', DETAIL = bad,
              HINT = pg_catalog.format('drop or rename role %I, then CREATE EXTENSION segplan', r);
    END IF;
  END LOOP;
END
$$;
-- planners can do what analysts can; admins what planners and the scheduler can
GRANT segplan_analyst TO segplan_planner;
GRANT segplan_analyst TO segplan_scheduler;
GRANT segplan_planner TO segplan_admin;
GRANT segplan_scheduler TO segplan_admin;

-- ---------------------------------------------------------------------------------------------
-- Brand scoping. A role sees the rows of the brands granted to it or to a role it has the
-- privileges of; outlets limit a grant to those outlets' rows. Brand '*' means every brand.
-- Objects without a brand (a policy across all brands, contacts imported without one) are seen
-- by roles granted every brand: segplan_admin and segplan_scheduler always are.
CREATE TABLE segplan.brand_grants (
    role       pg_catalog.regrole NOT NULL,
    brand      text NOT NULL CHECK (brand OPERATOR(pg_catalog.<>) '' AND pg_catalog.strpos(brand, E'\x1f') OPERATOR(pg_catalog.=) 0),
    outlets    text[] CHECK (pg_catalog.cardinality(outlets) OPERATOR(pg_catalog.>) 0),
    granted_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    granted_by pg_catalog.name NOT NULL DEFAULT CURRENT_USER,
    PRIMARY KEY (role, brand)
);

-- Granting and revoking brands (segplan_admin): as the caller, so only those who may write
-- segplan.brand_grants can; both are in the audit log.
CREATE FUNCTION segplan.grant_brand(role pg_catalog.regrole, brand text, outlets text[] DEFAULT NULL) RETURNS void
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
CREATE FUNCTION segplan.revoke_brand(role pg_catalog.regrole, brand text) RETURNS boolean
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
  WITH gone AS (DELETE FROM segplan.brand_grants g WHERE g.role = $1 AND g.brand = $2 RETURNING 1)
  SELECT count(*) > 0 FROM gone
$$;
COMMENT ON FUNCTION segplan.grant_brand(pg_catalog.regrole, text, text[]) IS
  'Lets a role (and its members) see and work on a brand''s segments, plans, runs and contact history; outlets limit it to those outlets, brand ''*'' means every brand.';
COMMENT ON FUNCTION segplan.revoke_brand(pg_catalog.regrole, text) IS 'Takes a brand back from a role; returns whether it had it.';

-- What the current role (or another: the audit log's SECURITY DEFINER code asks for its caller's)
-- may see, as tokens: '*' (every brand), a brand (all of its outlets), or a brand and an outlet
-- joined by U+001F. Read as the caller, brand_grants shows a role only its own grants. SQL-standard bodies are bound when created, so a caller's
-- search_path cannot change what they call.
CREATE FUNCTION segplan._scope(who pg_catalog.name DEFAULT CURRENT_USER) RETURNS text[]
LANGUAGE sql STABLE PARALLEL SAFE
BEGIN ATOMIC
  SELECT CASE
    WHEN pg_catalog.pg_has_role(who, 'segplan_admin', 'USAGE')
      OR pg_catalog.pg_has_role(who, 'segplan_scheduler', 'USAGE') THEN ARRAY['*']
    ELSE coalesce((
      SELECT pg_catalog.array_agg(t.token)
      FROM segplan.brand_grants g
      CROSS JOIN LATERAL pg_catalog.unnest(CASE WHEN g.outlets IS NULL THEN ARRAY[g.brand]
        ELSE ARRAY(SELECT g.brand OPERATOR(pg_catalog.||) E'\x1f' OPERATOR(pg_catalog.||) o FROM pg_catalog.unnest(g.outlets) AS o) END) AS t(token)
      WHERE pg_catalog.pg_has_role(who, g.role::pg_catalog.oid, 'USAGE')), '{}'::text[])
  END;
END;

-- Whether a row of (brand, outlet) is within a scope. NULL (not visible) for rows without a brand
-- unless the scope has every brand.
CREATE FUNCTION segplan._in_scope(brand text, outlet text, scope text[]) RETURNS boolean
LANGUAGE sql IMMUTABLE PARALLEL SAFE
BEGIN ATOMIC
  SELECT '*' OPERATOR(pg_catalog.=) ANY (scope)
      OR brand OPERATOR(pg_catalog.=) ANY (scope)
      OR (brand OPERATOR(pg_catalog.||) E'\x1f' OPERATOR(pg_catalog.||) outlet) OPERATOR(pg_catalog.=) ANY (scope);
END;

-- Row-level security. FORCE: the tables' owner is held to it too. The scope is computed once per
-- statement (an uncorrelated subquery); child tables follow their parent row's visibility.
ALTER TABLE segplan.brand_grants ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY own_or_admin ON segplan.brand_grants
  USING (pg_catalog.pg_has_role(CURRENT_USER, role::pg_catalog.oid, 'USAGE') OR pg_catalog.pg_has_role(CURRENT_USER, 'segplan_admin', 'USAGE'));

ALTER TABLE segplan.segment ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY brand_scope ON segplan.segment USING (segplan._in_scope(brand, NULL, (SELECT segplan._scope())));
ALTER TABLE segplan.segment_versions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY brand_scope ON segplan.segment_versions
  USING (EXISTS (SELECT 1 FROM segplan.segment s WHERE s.id OPERATOR(pg_catalog.=) segment_id));
ALTER TABLE segplan.segment_history ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY brand_scope ON segplan.segment_history
  USING (EXISTS (SELECT 1 FROM segplan.segment s WHERE s.id OPERATOR(pg_catalog.=) segment_id));
ALTER TABLE segplan.published_views ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY brand_scope ON segplan.published_views
  USING (EXISTS (SELECT 1 FROM segplan.segment s WHERE s.id OPERATOR(pg_catalog.=) segment_id));

-- a policy is seen by roles granted every brand it covers (whole brands, not single outlets)
ALTER TABLE segplan.policies ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY brand_scope ON segplan.policies
  USING (segplan._in_scope(NULL, NULL, (SELECT segplan._scope())) OR brands OPERATOR(pg_catalog.<@) (SELECT segplan._scope()));

ALTER TABLE segplan.plans ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY brand_scope ON segplan.plans USING (segplan._in_scope(brand, outlet, (SELECT segplan._scope())));
ALTER TABLE segplan.plan_versions ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY brand_scope ON segplan.plan_versions
  USING (EXISTS (SELECT 1 FROM segplan.plans p WHERE p.id OPERATOR(pg_catalog.=) plan_id));
ALTER TABLE segplan.plan_runs ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY brand_scope ON segplan.plan_runs
  USING (EXISTS (SELECT 1 FROM segplan.plans p WHERE p.id OPERATOR(pg_catalog.=) plan_id));
ALTER TABLE segplan.run_contacts ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY brand_scope ON segplan.run_contacts
  USING (EXISTS (SELECT 1 FROM segplan.plan_runs r WHERE r.id OPERATOR(pg_catalog.=) run_id));
ALTER TABLE segplan.call_list ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY brand_scope ON segplan.call_list
  USING (EXISTS (SELECT 1 FROM segplan.plan_runs r WHERE r.id OPERATOR(pg_catalog.=) run_id));

ALTER TABLE segplan.contact_history ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY brand_scope ON segplan.contact_history USING (segplan._in_scope(brand, outlet, (SELECT segplan._scope())));
ALTER TABLE segplan.contact_reservations ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY brand_scope ON segplan.contact_reservations USING (segplan._in_scope(brand, outlet, (SELECT segplan._scope())));

-- ---------------------------------------------------------------------------------------------
-- The audit log: who created, changed, activated, paused, cancelled or dropped which segment,
-- policy and plan, who granted which brand, and who exported which run. Written only by the
-- SECURITY DEFINER functions below (nobody holds INSERT), read by brand like everything else.
CREATE SEQUENCE segplan.audit_log_id_seq;
CREATE TABLE segplan.audit_log (
    id          bigint PRIMARY KEY DEFAULT pg_catalog.nextval('segplan.audit_log_id_seq'),
    at          timestamptz NOT NULL DEFAULT pg_catalog.clock_timestamp(),
    -- the role in effect (SET ROLE) or else the session's user; the login user beside it
    actor       pg_catalog.name NOT NULL,
    login       pg_catalog.name NOT NULL,
    action      text NOT NULL,
    object_kind text NOT NULL,
    object_name text,
    object_id   bigint,
    brand       text,
    detail      jsonb
);
ALTER SEQUENCE segplan.audit_log_id_seq OWNED BY segplan.audit_log.id;
CREATE INDEX audit_log_object ON segplan.audit_log (object_kind, object_id, at);
ALTER TABLE segplan.audit_log ENABLE ROW LEVEL SECURITY, FORCE ROW LEVEL SECURITY;
CREATE POLICY brand_scope ON segplan.audit_log FOR SELECT USING (segplan._in_scope(brand, NULL, (SELECT segplan._scope())));

-- SECURITY DEFINER: writers need no INSERT on the log, so they cannot forge or remove entries.
-- Inside, CURRENT_USER is the owner; the caller is the SET ROLE setting (only settable to a role
-- one belongs to) or else the session user, neither of which a function can change.
CREATE FUNCTION segplan._audit(action text, object_kind text, object_name text, object_id bigint, brand text, detail jsonb) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  INSERT INTO segplan.audit_log (actor, login, action, object_kind, object_name, object_id, brand, detail)
  VALUES (CASE WHEN pg_catalog.current_setting('role') = 'none' THEN SESSION_USER ELSE pg_catalog.current_setting('role')::pg_catalog.name END,
          SESSION_USER, $1, $2, $3, $4, $5, $6)
$$;
REVOKE ALL ON FUNCTION segplan._audit(text, text, text, bigint, text, jsonb) FROM PUBLIC;

-- The trigger behind the log (one function for every audited table; rows are read as jsonb so
-- each table's own columns can be used).
CREATE FUNCTION segplan._audit_change() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  n jsonb := CASE WHEN TG_OP = 'DELETE' THEN NULL ELSE to_jsonb(NEW) END;
  o jsonb := CASE WHEN TG_OP = 'INSERT' THEN NULL ELSE to_jsonb(OLD) END;
  r jsonb := coalesce(n, o);
  kind text := CASE TG_TABLE_NAME WHEN 'segment' THEN 'segment' WHEN 'policies' THEN 'policy'
                                  WHEN 'brand_grants' THEN 'brand_grant' ELSE 'plan' END;
  action text;
  obj_name text := r ->> 'name';
  obj_id bigint := (r ->> 'id')::bigint;
  brand text := r ->> 'brand';
  detail jsonb;
BEGIN
  -- a bulk load (pg_dump's restore is COPY) brings back rows, it does not create them; the log
  -- comes back with them
  IF pg_catalog.current_query() ~* '^\s*copy\s' THEN
    RETURN NULL;
  END IF;
  IF TG_TABLE_NAME = 'plan_versions' THEN
    SELECT p.name, p.id, p.brand INTO obj_name, obj_id, brand FROM segplan.plans p WHERE p.id = (r ->> 'plan_id')::bigint;
    IF TG_OP = 'DELETE' OR (TG_OP = 'INSERT' AND (n ->> 'version')::int = 1) THEN RETURN NULL; END IF;
    action := 'changed';
    detail := jsonb_build_object('version', n -> 'version');
  ELSIF TG_OP = 'INSERT' THEN
    action := CASE kind WHEN 'brand_grant' THEN 'granted' ELSE 'created' END;
  ELSIF TG_OP = 'DELETE' THEN
    action := CASE kind WHEN 'brand_grant' THEN 'revoked' ELSE 'dropped' END;
  ELSIF kind = 'plan' AND n ->> 'status' IS DISTINCT FROM o ->> 'status' THEN
    action := CASE n ->> 'status' WHEN 'active' THEN 'activated' ELSE n ->> 'status' END;
  ELSE
    action := 'changed';
    detail := jsonb_build_object('version', n -> 'version');
  END IF;
  IF kind = 'brand_grant' THEN
    obj_name := r ->> 'role';
    detail := jsonb_build_object('outlets', r -> 'outlets');
  END IF;
  PERFORM segplan._audit(action, kind, obj_name, obj_id, brand, detail);
  RETURN NULL;
END
$$;
REVOKE ALL ON FUNCTION segplan._audit_change() FROM PUBLIC;
-- WHEN clauses keep bookkeeping updates (refreshed members, the scheduler's progress) out of it
CREATE TRIGGER audit AFTER INSERT OR DELETE ON segplan.segment FOR EACH ROW EXECUTE FUNCTION segplan._audit_change();
CREATE TRIGGER audit_version AFTER UPDATE ON segplan.segment FOR EACH ROW
  WHEN (OLD.version IS DISTINCT FROM NEW.version) EXECUTE FUNCTION segplan._audit_change();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON segplan.policies FOR EACH ROW EXECUTE FUNCTION segplan._audit_change();
CREATE TRIGGER audit AFTER INSERT OR DELETE ON segplan.plans FOR EACH ROW EXECUTE FUNCTION segplan._audit_change();
CREATE TRIGGER audit_status AFTER UPDATE ON segplan.plans FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION segplan._audit_change();
CREATE TRIGGER audit AFTER INSERT OR UPDATE ON segplan.plan_versions FOR EACH ROW EXECUTE FUNCTION segplan._audit_change();
CREATE TRIGGER audit AFTER INSERT OR UPDATE OR DELETE ON segplan.brand_grants FOR EACH ROW EXECUTE FUNCTION segplan._audit_change();

-- Records an export of a run (segplan.export_run), under the run's plan and brand; only a run of
-- the caller's own brands (called directly, it cannot write into another brand's log).
CREATE FUNCTION segplan._audit_export(run_id bigint) RETURNS void
LANGUAGE sql VOLATILE SECURITY DEFINER SET search_path = pg_catalog, pg_temp AS $$
  SELECT segplan._audit('exported', 'run', p.name, r.id, p.brand, pg_catalog.jsonb_build_object('plan_id', p.id, 'slot', r.slot))
  FROM segplan.plan_runs r JOIN segplan.plans p ON p.id = r.plan_id
  WHERE r.id = $1 AND segplan._in_scope(p.brand, p.outlet, segplan._scope(
    CASE WHEN pg_catalog.current_setting('role') = 'none' THEN SESSION_USER ELSE pg_catalog.current_setting('role')::pg_catalog.name END))
$$;
REVOKE ALL ON FUNCTION segplan._audit_export(bigint) FROM PUBLIC;
COMMENT ON FUNCTION segplan._scope(pg_catalog.name) IS 'Internal: the brands (and outlets) a role (by default the current one) may see; what row-level security checks.';
COMMENT ON FUNCTION segplan._in_scope(text, text, text[]) IS 'Internal: whether a row of a brand and outlet is within a scope.';
COMMENT ON FUNCTION segplan._audit(text, text, text, bigint, text, jsonb) IS 'Internal (SECURITY DEFINER): appends to the audit log as the role in effect.';
COMMENT ON FUNCTION segplan._audit_change() IS 'Internal (SECURITY DEFINER): the audit trigger of segments, policies, plans and brand grants.';
COMMENT ON FUNCTION segplan._audit_export(bigint) IS 'Internal (SECURITY DEFINER): records an export of a run in the audit log.';

SELECT pg_catalog.pg_extension_config_dump('segplan.brand_grants', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.audit_log', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.audit_log_id_seq', '');

-- ---------------------------------------------------------------------------------------------
-- Table privileges. Everything else stays with the owner: nobody but segplan's own SECURITY
-- DEFINER code writes the audit log, the change log or the reservation locks. Every object in the
-- schema carries its own privileges, so everyone may look names up in it (the bitmap types are
-- for everyone, as in pg_roaringbitmap).
GRANT USAGE ON SCHEMA segplan TO PUBLIC;
GRANT SELECT ON segplan.brand_grants TO PUBLIC;
GRANT INSERT, UPDATE, DELETE ON segplan.brand_grants TO segplan_admin;

GRANT SELECT ON segplan.segment, segplan.segment_versions, segplan.segment_history, segplan.published_views,
                segplan.policies, segplan.plans, segplan.plan_versions, segplan.plan_runs, segplan.run_contacts,
                segplan.call_list, segplan.contact_history, segplan.contact_reservations, segplan.contact_pauses,
                segplan.response_config, segplan.audit_log
  TO segplan_analyst;

GRANT INSERT, UPDATE, DELETE ON segplan.segment, segplan.segment_versions, segplan.segment_history, segplan.published_views,
                                segplan.plans, segplan.plan_versions, segplan.plan_runs, segplan.run_contacts, segplan.call_list,
                                segplan.contact_reservations, segplan.contact_pauses
  TO segplan_planner;
-- contacts made are what caps count: planners and the scheduler add to them, only admins correct them
GRANT INSERT ON segplan.contact_history TO segplan_planner, segplan_scheduler;
GRANT UPDATE, DELETE ON segplan.contact_history TO segplan_admin;
GRANT USAGE ON SEQUENCE segplan.segment_id_seq, segplan.plan_id_seq, segplan.run_id_seq TO segplan_planner;

-- the scheduler: runs due plans (the runs, their lists and the plans' progress), nothing else
GRANT UPDATE ON segplan.plans TO segplan_scheduler;
GRANT INSERT, UPDATE, DELETE ON segplan.plan_runs, segplan.run_contacts, segplan.call_list, segplan.contact_reservations
  TO segplan_scheduler;
GRANT USAGE ON SEQUENCE segplan.run_id_seq TO segplan_scheduler;

GRANT INSERT, UPDATE, DELETE ON segplan.contact_source, segplan.event_sources, segplan.rfm_config, segplan.dashboard_config,
                                segplan.response_config, segplan.policies
  TO segplan_admin;
