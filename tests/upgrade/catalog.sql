-- Every object of extension segplan in this database, one line each with what defines it (names,
-- never OIDs), sorted: `make upgrade` compares an updated install with a fresh one line by line.
SET search_path = pg_catalog;
WITH ext AS (SELECT oid, extconfig, extcondition FROM pg_extension WHERE extname = 'segplan'),
m AS (
  SELECT d.classid, d.objid FROM pg_depend d, ext
  WHERE d.refclassid = 'pg_extension'::regclass AND d.refobjid = ext.oid AND d.deptype = 'e'
)
SELECT pg_describe_object(m.classid, m.objid, 0) || ' :: ' || replace(coalesce(CASE m.classid
  WHEN 'pg_proc'::regclass THEN (
    SELECT concat_ws(' | ', p.prokind, pg_get_function_arguments(p.oid), pg_get_function_result(p.oid), p.provolatile, p.proisstrict,
                     p.proparallel, p.prosecdef, p.proleakproof, p.procost, p.prorows, p.proconfig::text, p.prosrc, p.probin, p.proacl::text,
                     obj_description(p.oid, 'pg_proc'),
                     (SELECT concat_ws(' ', a.aggkind, a.aggnumdirectargs, a.aggtransfn, a.aggfinalfn, a.aggcombinefn, a.aggserialfn, a.aggdeserialfn,
                                       a.aggfinalextra, a.aggfinalmodify, a.aggsortop::regoperator, format_type(a.aggtranstype, NULL), a.aggtransspace, a.agginitval)
                      FROM pg_aggregate a WHERE a.aggfnoid = p.oid))
    FROM pg_proc p WHERE p.oid = m.objid)
  WHEN 'pg_class'::regclass THEN (
    SELECT concat_ws(' | ', c.relkind, c.relpersistence, c.relrowsecurity, c.relforcerowsecurity, c.reloptions::text, c.relacl::text,
                     obj_description(c.oid, 'pg_class'),
                     CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END,
                     (SELECT string_agg(concat_ws(' ', a.attname, format_type(a.atttypid, a.atttypmod), CASE WHEN a.attnotnull THEN 'not null' END,
                                                  pg_get_expr(ad.adbin, ad.adrelid), a.attidentity, a.attgenerated, a.attacl::text,
                                                  col_description(c.oid, a.attnum)), ', ' ORDER BY a.attnum)
                      FROM pg_attribute a LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
                      WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
                     (SELECT string_agg(co.conname || ' ' || pg_get_constraintdef(co.oid), ', ' ORDER BY co.conname) FROM pg_constraint co WHERE co.conrelid = c.oid),
                     (SELECT string_agg(pg_get_indexdef(i.indexrelid), ', ' ORDER BY 1) FROM pg_index i WHERE i.indrelid = c.oid),
                     (SELECT string_agg(pg_get_triggerdef(t.oid), ', ' ORDER BY t.tgname) FROM pg_trigger t WHERE t.tgrelid = c.oid AND NOT t.tgisinternal),
                     (SELECT string_agg(concat_ws(' ', po.policyname, po.permissive, po.roles::text, po.cmd, po.qual, po.with_check), ', ' ORDER BY po.policyname)
                      FROM pg_policies po WHERE po.schemaname = c.relnamespace::regnamespace::text AND po.tablename = c.relname),
                     (SELECT concat_ws(' ', format_type(s.seqtypid, NULL), s.seqstart, s.seqincrement, s.seqmax, s.seqmin, s.seqcache, s.seqcycle)
                      FROM pg_sequence s WHERE s.seqrelid = c.oid),
                     (SELECT 'dumped as configuration ' || coalesce(ext.extcondition[k], '') FROM ext, generate_subscripts(ext.extconfig, 1) k
                      WHERE ext.extconfig[k] = c.oid))
    FROM pg_class c WHERE c.oid = m.objid)
  WHEN 'pg_type'::regclass THEN (
    SELECT concat_ws(' | ', t.typtype, t.typlen, t.typbyval, t.typcategory, t.typalign, t.typstorage, t.typinput, t.typoutput, t.typreceive, t.typsend,
                     t.typmodin, t.typmodout, t.typanalyze, format_type(t.typelem, NULL), format_type(t.typbasetype, t.typtypmod), t.typnotnull, t.typacl::text,
                     obj_description(t.oid, 'pg_type'),
                     (SELECT string_agg(e.enumlabel, ', ' ORDER BY e.enumsortorder) FROM pg_enum e WHERE e.enumtypid = t.oid),
                     (SELECT string_agg(co.conname || ' ' || pg_get_constraintdef(co.oid), ', ' ORDER BY co.conname) FROM pg_constraint co WHERE co.contypid = t.oid))
    FROM pg_type t WHERE t.oid = m.objid)
  WHEN 'pg_operator'::regclass THEN (
    SELECT concat_ws(' | ', o.oprkind, o.oprcode, format_type(o.oprresult, NULL), o.oprcom::regoperator, o.oprnegate::regoperator, o.oprrest, o.oprjoin,
                     o.oprcanmerge, o.oprcanhash, obj_description(o.oid, 'pg_operator'))
    FROM pg_operator o WHERE o.oid = m.objid)
  WHEN 'pg_cast'::regclass THEN (
    SELECT concat_ws(' | ', c.castfunc::regprocedure, c.castcontext, c.castmethod) FROM pg_cast c WHERE c.oid = m.objid)
  WHEN 'pg_namespace'::regclass THEN (
    SELECT concat_ws(' | ', n.nspowner::regrole, n.nspacl::text, obj_description(n.oid, 'pg_namespace')) FROM pg_namespace n WHERE n.oid = m.objid)
  WHEN 'pg_event_trigger'::regclass THEN (
    SELECT concat_ws(' | ', e.evtevent, e.evtfoid::regprocedure, e.evtenabled, e.evttags::text) FROM pg_event_trigger e WHERE e.oid = m.objid)
  END, '(no definition read)'), E'\n', '\n') AS line
FROM m
UNION ALL
SELECT 'default privileges ' || pg_describe_object('pg_default_acl'::regclass, d.oid, 0) || ' :: ' || d.defaclacl::text
FROM pg_default_acl d WHERE d.defaclnamespace = 'segplan'::regnamespace
ORDER BY 1;
