-- jsonb overloads and documentation; runs last in the install script.

-- Set-returning functions that hand back all their rows in one call (src/pg/srf.rs): a pinned
-- search_path would otherwise be set again for every row.
CREATE FUNCTION segplan.members(rule text, as_of timestamptz DEFAULT pg_catalog.date_trunc('minute', pg_catalog.now())) RETURNS SETOF bigint
STRICT STABLE PARALLEL UNSAFE SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'members_wrapper';
CREATE FUNCTION segplan.members_text(rule text, as_of timestamptz DEFAULT pg_catalog.date_trunc('minute', pg_catalog.now())) RETURNS SETOF text
STRICT STABLE PARALLEL UNSAFE SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'members_text_wrapper';
CREATE FUNCTION segplan.keys_of(bitmap segplan.roaringbitmap64) RETURNS SETOF text
STRICT STABLE PARALLEL UNSAFE SET search_path TO pg_catalog, pg_temp
LANGUAGE c AS 'MODULE_PATHNAME', 'keys_of_wrapper';

CREATE FUNCTION segplan.count(rule jsonb, as_of timestamptz DEFAULT pg_catalog.date_trunc('minute', pg_catalog.now())) RETURNS bigint
LANGUAGE sql STABLE STRICT
BEGIN ATOMIC SELECT segplan.count($1::text, $2); END;
CREATE FUNCTION segplan.members(rule jsonb, as_of timestamptz DEFAULT pg_catalog.date_trunc('minute', pg_catalog.now())) RETURNS SETOF bigint
LANGUAGE sql STABLE STRICT
BEGIN ATOMIC SELECT segplan.members($1::text, $2); END;
CREATE FUNCTION segplan.members_text(rule jsonb, as_of timestamptz DEFAULT pg_catalog.date_trunc('minute', pg_catalog.now())) RETURNS SETOF text
LANGUAGE sql STABLE STRICT
BEGIN ATOMIC SELECT segplan.members_text($1::text, $2); END;
CREATE FUNCTION segplan.count_steps(rule jsonb, as_of timestamptz DEFAULT pg_catalog.date_trunc('minute', pg_catalog.now()))
RETURNS TABLE (step int, path text, label text, matched bigint, running bigint)
LANGUAGE sql STABLE STRICT
BEGIN ATOMIC SELECT * FROM segplan.count_steps($1::text, $2); END;
CREATE FUNCTION segplan.bitmap(rule jsonb, as_of timestamptz DEFAULT pg_catalog.date_trunc('minute', pg_catalog.now())) RETURNS segplan.roaringbitmap64
LANGUAGE sql STABLE STRICT
BEGIN ATOMIC SELECT segplan.bitmap($1::text, $2); END;
CREATE FUNCTION segplan.to_sql(rule jsonb) RETURNS text
LANGUAGE sql STABLE STRICT
BEGIN ATOMIC SELECT segplan.to_sql($1::text); END;
CREATE FUNCTION segplan.validate(rule jsonb) RETURNS jsonb
LANGUAGE sql STABLE STRICT
BEGIN ATOMIC SELECT segplan.validate($1::text); END;
CREATE FUNCTION segplan.format(rule jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT
BEGIN ATOMIC SELECT segplan.format($1::text); END;

COMMENT ON FUNCTION segplan.register_contacts(regclass, text) IS
  'Registers the contact table or view and its key column (integer, bigint, uuid or text). Nothing is copied.';
COMMENT ON FUNCTION segplan.register_events(text, regclass, text, text) IS
  'Registers (or updates) an event source: a table or view whose rows belong to a contact, with an optional time column.';
COMMENT ON FUNCTION segplan.unregister_events(text) IS 'Removes an event source registration.';
COMMENT ON FUNCTION segplan.model() IS
  'The registered model as jsonb: contact attributes, event sources and their properties with types.';
COMMENT ON FUNCTION segplan.count(text, timestamptz) IS
  'Number of contacts matching a rule (text form or JSON). Relative windows are measured from as_of.';
COMMENT ON FUNCTION segplan.count(jsonb, timestamptz) IS 'Number of contacts matching a JSON rule.';
COMMENT ON FUNCTION segplan.members(text, timestamptz) IS 'Keys (bigint) of the contacts matching a rule.';
COMMENT ON FUNCTION segplan.members(jsonb, timestamptz) IS 'Keys (bigint) of the contacts matching a JSON rule.';
COMMENT ON FUNCTION segplan.members_text(text, timestamptz) IS 'Keys, as text, of the contacts matching a rule (any key type).';
COMMENT ON FUNCTION segplan.members_text(jsonb, timestamptz) IS 'Keys, as text, of the contacts matching a JSON rule.';
COMMENT ON FUNCTION segplan.count_steps(text, timestamptz) IS
  'Funnel of the top-level conditions: contacts matching each alone and the running result of conditions 1..k.';
COMMENT ON FUNCTION segplan.count_steps(jsonb, timestamptz) IS 'Funnel of the top-level conditions of a JSON rule.';
COMMENT ON FUNCTION segplan.bitmap(text, timestamptz) IS
  'The contacts matching a rule as a roaringbitmap64: of their keys when keys are integers, else of their segplan ids (segplan.keys_of turns them back into keys).';
COMMENT ON FUNCTION segplan.keys_of(segplan.roaringbitmap64) IS
  'The keys, as text, of the contacts in a bitmap from segplan.bitmap or segplan.bitmap_of, among those the caller can see.';
COMMENT ON FUNCTION segplan.bitmap_of(text[]) IS
  'The contacts with these keys (as text) that the caller can see, as a roaringbitmap64 comparable with segplan.bitmap''s.';
COMMENT ON FUNCTION segplan.number_contacts() IS
  'Gives every contact the caller can see a segplan id if it has none (keys that are not integers; counts do it as they go); returns how many were numbered.';
COMMENT ON FUNCTION segplan.bitmap(jsonb, timestamptz) IS 'The contacts matching a JSON rule as a roaringbitmap64.';
COMMENT ON FUNCTION segplan.cache_stats() IS 'This session''s cached leaf bitmaps: condition, contacts, bytes, hits, build time, origin (built here or taken from the shared cache).';
COMMENT ON FUNCTION segplan.shared_cache_stats() IS 'The shared leaf cache''s bitmaps for the current role (built by any session), newest first.';
COMMENT ON FUNCTION segplan.cache_clear() IS 'Drops this session''s cached leaf bitmaps and the current role''s in the shared cache, and prunes the change log; returns the number dropped.';
COMMENT ON FUNCTION segplan._note_change() IS 'Internal: the change-log trigger function on tracked tables.';
COMMENT ON FUNCTION segplan._note_keys() IS 'Internal: the change-log trigger function on registered tables, logging the contact keys a write touched.';
COMMENT ON FUNCTION segplan._closure(oid[]) IS 'Internal: the relations each source reads (views, policies and partitions expanded).';
COMMENT ON FUNCTION segplan._track(regclass, regclass, name[]) IS 'Internal: puts the change-log triggers on the tables a source reads, the keyed ones on the table given; returns those it could not.';
COMMENT ON FUNCTION segplan._prune_changes(interval) IS 'Internal: prunes the change log up to the oldest running transaction (with keep: not past the shared cache''s bitmaps of that recent, at most 10000 rows).';
COMMENT ON FUNCTION segplan.to_sql(text) IS 'The SQL segplan runs for a rule, with $n placeholders ($1 is as_of).';
COMMENT ON FUNCTION segplan.to_sql(jsonb) IS 'The SQL segplan runs for a JSON rule.';
COMMENT ON FUNCTION segplan.validate(text) IS 'All problems of a rule with their JSON paths, without raising.';
COMMENT ON FUNCTION segplan.validate(jsonb) IS 'All problems of a JSON rule with their JSON paths, without raising.';
COMMENT ON FUNCTION segplan.parse(text) IS 'The JSON form of a rule written in the text form.';
COMMENT ON FUNCTION segplan.format(text) IS 'The text form of a rule (normalized).';
COMMENT ON FUNCTION segplan.format(jsonb) IS 'The text form of a JSON rule.';

-- The registered model is cached per backend (src/pg/catalog.rs); a change to a registration ends
-- every backend's copy when it commits, through PostgreSQL's relation cache invalidation.
CREATE FUNCTION segplan._model_changed() RETURNS trigger
LANGUAGE plpgsql SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  PERFORM segplan._invalidate(TG_RELID);
  RETURN NULL;
END
$$;
CREATE TRIGGER model_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON segplan.contact_source
  FOR EACH STATEMENT EXECUTE FUNCTION segplan._model_changed();
CREATE TRIGGER model_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON segplan.event_sources
  FOR EACH STATEMENT EXECUTE FUNCTION segplan._model_changed();
CREATE TRIGGER model_changed AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE ON segplan.rfm_config
  FOR EACH STATEMENT EXECUTE FUNCTION segplan._model_changed();
COMMENT ON FUNCTION segplan._zone(text) IS 'Internal: a time zone name if PostgreSQL knows the zone, else NULL (quiet hours fall back to the session''s zone).';
COMMENT ON FUNCTION segplan._model_changed() IS 'Internal: the trigger that ends cached models when a registration changes.';
COMMENT ON FUNCTION segplan._invalidate(oid) IS 'Internal: sends a relation cache invalidation (ends cached models in every backend at commit).';

-- RFM: purchases are folded per contact in one pass by a parallel aggregate (Rust, exact sums),
-- whose result segplan._rfm_scores ranks and clusters (see src/core/rfm.rs).
CREATE AGGREGATE segplan._rfm_agg(bigint, date, bigint, numeric) (
  SFUNC = segplan._rfm_step, STYPE = internal, FINALFUNC = segplan._rfm_serialize,
  COMBINEFUNC = segplan._rfm_combine, SERIALFUNC = segplan._rfm_serialize,
  DESERIALFUNC = segplan._rfm_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE segplan._rfm_agg(text, date, bigint, numeric) (
  SFUNC = segplan._rfm_step, STYPE = internal, FINALFUNC = segplan._rfm_serialize,
  COMBINEFUNC = segplan._rfm_combine, SERIALFUNC = segplan._rfm_serialize,
  DESERIALFUNC = segplan._rfm_deserialize, PARALLEL = SAFE);
COMMENT ON AGGREGATE segplan._rfm_agg(bigint, date, bigint, numeric) IS
  'Internal: purchases (contact, day, occasions, amount) folded per contact for RFM: last day, occasions, exact amount total.';
COMMENT ON AGGREGATE segplan._rfm_agg(text, date, bigint, numeric) IS
  'Internal: _rfm_agg for contact keys that are not integers.';
COMMENT ON FUNCTION segplan._rfm_step(internal, bigint, date, bigint, numeric) IS 'Support function of _rfm_agg.';
COMMENT ON FUNCTION segplan._rfm_step(internal, text, date, bigint, numeric) IS 'Support function of _rfm_agg.';
COMMENT ON FUNCTION segplan._rfm_combine(internal, internal) IS 'Support function of _rfm_agg (parallel combine).';
COMMENT ON FUNCTION segplan._rfm_serialize(internal) IS 'Support function of _rfm_agg (parallel state out, and the result).';
COMMENT ON FUNCTION segplan._rfm_deserialize(bytea, internal) IS 'Support function of _rfm_agg (parallel state in).';
COMMENT ON FUNCTION segplan._rfm_scores(bytea, date) IS
  'Internal: the RFM scores as of a day of the contacts in an _rfm_agg result (key in k for integer keys, else in k_text).';

-- RFM: the scores query is generated from the model (segplan._rfm_query) and run here as the
-- caller, so the caller's grants and row-level security apply to the purchases read.
CREATE FUNCTION segplan.rfm_scores(as_of timestamptz DEFAULT NULL)
RETURNS TABLE (contact_key bigint, recency_days integer, frequency bigint, monetary numeric, r integer, f integer, m integer, cluster text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE q record;
BEGIN
  SELECT * INTO q FROM segplan._rfm_query('bigint');
  RETURN QUERY EXECUTE q.sql USING segplan._rfm_as_of(coalesce(as_of, date_trunc('minute', now()))), q.params[1], q.params[2];
END
$$;
CREATE FUNCTION segplan.rfm_scores_text(as_of timestamptz DEFAULT NULL)
RETURNS TABLE (contact_key text, recency_days integer, frequency bigint, monetary numeric, r integer, f integer, m integer, cluster text)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE q record;
BEGIN
  SELECT * INTO q FROM segplan._rfm_query('text');
  RETURN QUERY EXECUTE q.sql USING segplan._rfm_as_of(coalesce(as_of, date_trunc('minute', now()))), q.params[1], q.params[2];
END
$$;
CREATE FUNCTION segplan.rfm_summary(as_of timestamptz DEFAULT NULL)
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
COMMENT ON FUNCTION segplan.configure_rfm(text, text, text, interval, timestamptz) IS
  'Sets where RFM reads purchases: an event source, its amount property, what makes one occasion, the look-back window, an optional fixed as_of.';
COMMENT ON FUNCTION segplan._rfm_query(text) IS 'Internal: the RFM scores query for the current configuration and its parameters.';
COMMENT ON FUNCTION segplan._rfm_as_of(timestamptz) IS 'Internal: rfm_scores'' and rfm_summary''s as_of, checked to be in years 1 to 9999 (22023).';
COMMENT ON FUNCTION segplan.rfm_clusters() IS 'The RFM cluster grid: ranges of R and of fm (the average of F and M) for each of the 11 clusters.';
COMMENT ON FUNCTION segplan.rfm_scores(timestamptz) IS
  'Recency (days), frequency, monetary, their 1-5 scores and the cluster of every contact with a purchase in the RFM window.';
COMMENT ON FUNCTION segplan.rfm_scores_text(timestamptz) IS 'rfm_scores with the contact keys as text (any key type).';
COMMENT ON FUNCTION segplan.rfm_summary(timestamptz) IS
  'Per RFM cluster: contacts, share of the scored contacts, average recency, frequency and monetary value.';

-- roaring bitmaps: a value is the portable bytes (src/pg/datum.rs), so ::bytea is a binary cast
-- and bytea is validated on the way in, as pg_roaringbitmap's casts. Stored uncompressed and out
-- of line (as pg_roaringbitmap's types): a bitmap is compressed already, and an operation reads it
-- without decompressing it first.
CREATE CAST (bytea AS segplan.roaringbitmap) WITH FUNCTION segplan.roaringbitmap(bytea);
CREATE CAST (segplan.roaringbitmap AS bytea) WITHOUT FUNCTION;
ALTER TYPE segplan.roaringbitmap SET (STORAGE = external);
COMMENT ON TYPE segplan.roaringbitmap IS 'A set of int4 values as a roaring bitmap; text form {1,2,3}, ::bytea is the portable roaring format.';
COMMENT ON FUNCTION segplan.roaringbitmap_in(cstring) IS 'Text input of roaringbitmap: {1,2,3}.';
COMMENT ON FUNCTION segplan.roaringbitmap_out(segplan.roaringbitmap) IS 'Text output of roaringbitmap: {1,2,3}.';
COMMENT ON FUNCTION segplan.roaringbitmap(bytea) IS 'Reads the portable roaring format (as written by pg_roaringbitmap or CRoaring).';
COMMENT ON FUNCTION segplan.rb_build(integer[]) IS 'A bitmap of the array''s values (NULLs ignored).';
COMMENT ON FUNCTION segplan.rb_to_array(segplan.roaringbitmap) IS 'The values of a bitmap as an array, in bitmap order.';
COMMENT ON FUNCTION segplan.rb_iterate(segplan.roaringbitmap) IS 'The values of a bitmap as rows, in bitmap order.';
COMMENT ON FUNCTION segplan.rb_cardinality(segplan.roaringbitmap) IS 'Number of values in a bitmap.';
COMMENT ON FUNCTION segplan.rb_is_empty(segplan.roaringbitmap) IS 'True if the bitmap has no values.';
COMMENT ON FUNCTION segplan.rb_min(segplan.roaringbitmap) IS 'Smallest value (unsigned order), NULL if empty.';
COMMENT ON FUNCTION segplan.rb_max(segplan.roaringbitmap) IS 'Largest value (unsigned order), NULL if empty.';
COMMENT ON FUNCTION segplan.rb_rank(segplan.roaringbitmap, integer) IS 'Number of values less than or equal to the given one.';
COMMENT ON FUNCTION segplan.rb_index(segplan.roaringbitmap, integer) IS '0-based position of a value, or -1 if absent.';
COMMENT ON FUNCTION segplan.rb_select(segplan.roaringbitmap, bigint, bigint, boolean, bigint, bigint) IS
  'Up to bitset_limit values of [range_start, range_end) after skipping bitset_offset, from the low end (or high end when reverse).';
COMMENT ON FUNCTION segplan.rb_runoptimize(segplan.roaringbitmap) IS
  'The same bitmap: run-length containers are not written by segplan''s roaring library, so there is nothing to convert.';
COMMENT ON FUNCTION segplan.rb_jaccard_dist(segplan.roaringbitmap, segplan.roaringbitmap) IS 'Jaccard distance 1 - |a and b| / |a or b|.';
COMMENT ON FUNCTION segplan.rb_and(segplan.roaringbitmap, segplan.roaringbitmap) IS 'Intersection (operator &).';
COMMENT ON FUNCTION segplan.rb_or(segplan.roaringbitmap, segplan.roaringbitmap) IS 'Union (operator |).';
COMMENT ON FUNCTION segplan.rb_xor(segplan.roaringbitmap, segplan.roaringbitmap) IS 'Symmetric difference (operator #).';
COMMENT ON FUNCTION segplan.rb_andnot(segplan.roaringbitmap, segplan.roaringbitmap) IS 'Difference (operator -).';
COMMENT ON FUNCTION segplan.rb_and_cardinality(segplan.roaringbitmap, segplan.roaringbitmap) IS 'Size of the intersection, without building it.';
COMMENT ON FUNCTION segplan.rb_or_cardinality(segplan.roaringbitmap, segplan.roaringbitmap) IS 'Size of the union, without building it.';
COMMENT ON FUNCTION segplan.rb_xor_cardinality(segplan.roaringbitmap, segplan.roaringbitmap) IS 'Size of the symmetric difference, without building it.';
COMMENT ON FUNCTION segplan.rb_andnot_cardinality(segplan.roaringbitmap, segplan.roaringbitmap) IS 'Size of the difference, without building it.';
COMMENT ON FUNCTION segplan.rb_add(segplan.roaringbitmap, integer) IS 'The bitmap with a value added (operator |).';
COMMENT ON FUNCTION segplan.rb_add_left(integer, segplan.roaringbitmap) IS 'The bitmap with a value added (operator int | roaringbitmap).';
COMMENT ON FUNCTION segplan.rb_remove(segplan.roaringbitmap, integer) IS 'The bitmap with a value removed (operator -).';
COMMENT ON FUNCTION segplan.rb_contains(segplan.roaringbitmap, segplan.roaringbitmap) IS 'True if the first bitmap contains the second (operator @>).';
COMMENT ON FUNCTION segplan.rb_contains(segplan.roaringbitmap, integer) IS 'True if the bitmap contains the value (operator @>).';
COMMENT ON FUNCTION segplan.rb_containedby(segplan.roaringbitmap, segplan.roaringbitmap) IS 'True if the first bitmap is contained in the second (operator <@).';
COMMENT ON FUNCTION segplan.rb_value_containedby(integer, segplan.roaringbitmap) IS 'True if the value is in the bitmap (operator <@).';
COMMENT ON FUNCTION segplan.rb_intersect(segplan.roaringbitmap, segplan.roaringbitmap) IS 'True if the bitmaps share a value (operator &&).';
COMMENT ON FUNCTION segplan.rb_equals(segplan.roaringbitmap, segplan.roaringbitmap) IS 'True if the bitmaps hold the same values (operator =).';
COMMENT ON FUNCTION segplan.rb_not_equals(segplan.roaringbitmap, segplan.roaringbitmap) IS 'True if the bitmaps differ (operator <>).';
COMMENT ON FUNCTION segplan.rb_range(segplan.roaringbitmap, bigint, bigint) IS 'The values in [range_start, range_end) (unsigned order).';
COMMENT ON FUNCTION segplan.rb_range_cardinality(segplan.roaringbitmap, bigint, bigint) IS 'Number of values in [range_start, range_end).';
COMMENT ON FUNCTION segplan.rb_fill(segplan.roaringbitmap, bigint, bigint) IS 'The bitmap with every value of [range_start, range_end) added.';
COMMENT ON FUNCTION segplan.rb_clear(segplan.roaringbitmap, bigint, bigint) IS 'The bitmap with every value of [range_start, range_end) removed.';
COMMENT ON FUNCTION segplan.rb_flip(segplan.roaringbitmap, bigint, bigint) IS 'The bitmap with every value of [range_start, range_end) flipped.';

-- bitmap aggregates: internal state, parallel (combine + serialize/deserialize)
-- the per-row step is a C-ABI function (src/pg/agg.rs, raw_step)
CREATE FUNCTION segplan.rb_build_trans(internal, integer) RETURNS internal
  LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segplan_rb_build_trans';
CREATE AGGREGATE segplan.rb_build_agg(integer) (
  SFUNC = segplan.rb_build_trans, STYPE = internal, FINALFUNC = segplan.rb_agg_final,
  COMBINEFUNC = segplan.rb_or_combine, SERIALFUNC = segplan.rb_agg_serialize,
  DESERIALFUNC = segplan.rb_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE segplan.rb_or_agg(segplan.roaringbitmap) (
  SFUNC = segplan.rb_or_trans, STYPE = internal, FINALFUNC = segplan.rb_agg_final,
  COMBINEFUNC = segplan.rb_or_combine, SERIALFUNC = segplan.rb_agg_serialize,
  DESERIALFUNC = segplan.rb_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE segplan.rb_and_agg(segplan.roaringbitmap) (
  SFUNC = segplan.rb_and_trans, STYPE = internal, FINALFUNC = segplan.rb_agg_final,
  COMBINEFUNC = segplan.rb_and_combine, SERIALFUNC = segplan.rb_agg_serialize,
  DESERIALFUNC = segplan.rb_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE segplan.rb_xor_agg(segplan.roaringbitmap) (
  SFUNC = segplan.rb_xor_trans, STYPE = internal, FINALFUNC = segplan.rb_agg_final,
  COMBINEFUNC = segplan.rb_xor_combine, SERIALFUNC = segplan.rb_agg_serialize,
  DESERIALFUNC = segplan.rb_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE segplan.rb_or_cardinality_agg(segplan.roaringbitmap) (
  SFUNC = segplan.rb_or_trans, STYPE = internal, FINALFUNC = segplan.rb_agg_cardinality_final,
  COMBINEFUNC = segplan.rb_or_combine, SERIALFUNC = segplan.rb_agg_serialize,
  DESERIALFUNC = segplan.rb_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE segplan.rb_and_cardinality_agg(segplan.roaringbitmap) (
  SFUNC = segplan.rb_and_trans, STYPE = internal, FINALFUNC = segplan.rb_agg_cardinality_final,
  COMBINEFUNC = segplan.rb_and_combine, SERIALFUNC = segplan.rb_agg_serialize,
  DESERIALFUNC = segplan.rb_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE segplan.rb_xor_cardinality_agg(segplan.roaringbitmap) (
  SFUNC = segplan.rb_xor_trans, STYPE = internal, FINALFUNC = segplan.rb_agg_cardinality_final,
  COMBINEFUNC = segplan.rb_xor_combine, SERIALFUNC = segplan.rb_agg_serialize,
  DESERIALFUNC = segplan.rb_agg_deserialize, PARALLEL = SAFE);
COMMENT ON AGGREGATE segplan.rb_build_agg(integer) IS 'A bitmap of the aggregated int4 values (NULLs ignored); parallel.';
COMMENT ON AGGREGATE segplan.rb_or_agg(segplan.roaringbitmap) IS 'Union of the aggregated bitmaps; parallel.';
COMMENT ON AGGREGATE segplan.rb_and_agg(segplan.roaringbitmap) IS 'Intersection of the aggregated bitmaps; parallel.';
COMMENT ON AGGREGATE segplan.rb_xor_agg(segplan.roaringbitmap) IS 'Symmetric difference of the aggregated bitmaps; parallel.';
COMMENT ON AGGREGATE segplan.rb_or_cardinality_agg(segplan.roaringbitmap) IS 'Size of the union of the aggregated bitmaps.';
COMMENT ON AGGREGATE segplan.rb_and_cardinality_agg(segplan.roaringbitmap) IS 'Size of the intersection of the aggregated bitmaps.';
COMMENT ON AGGREGATE segplan.rb_xor_cardinality_agg(segplan.roaringbitmap) IS 'Size of the symmetric difference of the aggregated bitmaps.';
COMMENT ON FUNCTION segplan.rb_build_trans(internal, integer) IS 'Support function of rb_build_agg.';
COMMENT ON FUNCTION segplan.rb_or_trans(internal, segplan.roaringbitmap) IS 'Support function of rb_or_agg.';
COMMENT ON FUNCTION segplan.rb_and_trans(internal, segplan.roaringbitmap) IS 'Support function of rb_and_agg.';
COMMENT ON FUNCTION segplan.rb_xor_trans(internal, segplan.roaringbitmap) IS 'Support function of rb_xor_agg.';
COMMENT ON FUNCTION segplan.rb_or_combine(internal, internal) IS 'Support function of the bitmap aggregates (parallel combine).';
COMMENT ON FUNCTION segplan.rb_and_combine(internal, internal) IS 'Support function of rb_and_agg (parallel combine).';
COMMENT ON FUNCTION segplan.rb_xor_combine(internal, internal) IS 'Support function of rb_xor_agg (parallel combine).';
COMMENT ON FUNCTION segplan.rb_agg_serialize(internal) IS 'Support function of the bitmap aggregates (parallel state out).';
COMMENT ON FUNCTION segplan.rb_agg_deserialize(bytea, internal) IS 'Support function of the bitmap aggregates (parallel state in).';
COMMENT ON FUNCTION segplan.rb_agg_final(internal) IS 'Support function of the bitmap aggregates (result).';
COMMENT ON FUNCTION segplan.rb_agg_cardinality_final(internal) IS 'Support function of the cardinality aggregates (result).';

-- how leaf statements over uuid/text contact keys return them (src/pg/dense_ids.rs,
-- src/pg/id_share.rs)
CREATE FUNCTION segplan._ids_trans(internal, uuid) RETURNS internal
  LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segplan_ids_trans';
CREATE AGGREGATE segplan._ids_agg(uuid) (
  SFUNC = segplan._ids_trans, STYPE = internal, FINALFUNC = segplan._ids_final,
  COMBINEFUNC = segplan._ids_combine, SERIALFUNC = segplan._ids_serialize,
  DESERIALFUNC = segplan._ids_deserialize, PARALLEL = SAFE);
CREATE FUNCTION segplan._map_trans(internal, text, bigint) RETURNS internal
  LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segplan_map_trans';
CREATE AGGREGATE segplan._map_agg(text, bigint) (
  SFUNC = segplan._map_trans, STYPE = internal, FINALFUNC = segplan._map_final);
CREATE FUNCTION segplan._prints_trans(internal, text, bigint) RETURNS internal
  LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segplan_prints_trans';
CREATE AGGREGATE segplan._prints_agg(text, bigint) (
  SFUNC = segplan._prints_trans, STYPE = internal, FINALFUNC = segplan._map_final);
CREATE FUNCTION segplan._keys_trans_text(internal, text) RETURNS internal
  LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segplan_keys_trans';
CREATE AGGREGATE segplan._keys_agg(text) (
  SFUNC = segplan._keys_trans_text, STYPE = internal, FINALFUNC = segplan._keys_final,
  COMBINEFUNC = segplan._keys_combine, SERIALFUNC = segplan._keys_serialize,
  DESERIALFUNC = segplan._keys_deserialize, PARALLEL = SAFE);
COMMENT ON AGGREGATE segplan._ids_agg(uuid) IS 'Internal: for segplan''s leaf statements, the ids of the uuid keys found in the session''s shared copy of segplan.contact_ids and the keys not found, as one bytea; parallel.';
COMMENT ON AGGREGATE segplan._keys_agg(text) IS 'Internal: for segplan''s leaf statements, the ids of the text keys found (by fingerprint) in the session''s shared copy of segplan.contact_ids and the keys not found (length-prefixed), as one bytea; parallel.';
COMMENT ON AGGREGATE segplan._map_agg(text, bigint) IS 'Internal: rows of segplan.contact_ids whose keys are uuids as one bytea (16 key bytes and an 8-byte id each), for reading the ids into a session.';
COMMENT ON FUNCTION segplan._map_trans(internal, text, bigint) IS 'Support function of _map_agg.';
COMMENT ON FUNCTION segplan._map_final(internal) IS 'Support function of _map_agg and _prints_agg (result).';
COMMENT ON AGGREGATE segplan._prints_agg(text, bigint) IS 'Internal: rows of segplan.contact_ids as one bytea (the first 16 bytes of the key''s SHA-256 and an 8-byte id each), for reading the ids of text keys into a session.';
COMMENT ON FUNCTION segplan._prints_trans(internal, text, bigint) IS 'Support function of _prints_agg.';
COMMENT ON FUNCTION segplan._ids_trans(internal, uuid) IS 'Support function of _ids_agg.';
COMMENT ON FUNCTION segplan._ids_combine(internal, internal) IS 'Support function of _ids_agg (parallel combine).';
COMMENT ON FUNCTION segplan._ids_serialize(internal) IS 'Support function of _ids_agg (parallel serialize).';
COMMENT ON FUNCTION segplan._ids_deserialize(bytea, internal) IS 'Support function of _ids_agg (parallel deserialize).';
COMMENT ON FUNCTION segplan._ids_final(internal) IS 'Support function of _ids_agg.';
COMMENT ON FUNCTION segplan._keys_trans_text(internal, text) IS 'Support function of _keys_agg(text).';
COMMENT ON FUNCTION segplan._keys_combine(internal, internal) IS 'Support function of _keys_agg (parallel combine).';
COMMENT ON FUNCTION segplan._keys_serialize(internal) IS 'Support function of _keys_agg (parallel serialize).';
COMMENT ON FUNCTION segplan._keys_deserialize(bytea, internal) IS 'Support function of _keys_agg (parallel deserialize).';
COMMENT ON FUNCTION segplan._keys_final(internal) IS 'Support function of _keys_agg.';

-- 64-bit bitmaps
CREATE CAST (bytea AS segplan.roaringbitmap64) WITH FUNCTION segplan.roaringbitmap64(bytea);
CREATE CAST (segplan.roaringbitmap64 AS bytea) WITHOUT FUNCTION;
ALTER TYPE segplan.roaringbitmap64 SET (STORAGE = external);
-- the per-row steps of the aggregates a leaf's scan runs are C-ABI functions (src/pg/agg.rs, raw_step)
CREATE FUNCTION segplan.rb64_build_trans(internal, bigint) RETURNS internal
  LANGUAGE c IMMUTABLE PARALLEL SAFE AS 'MODULE_PATHNAME', 'segplan_rb64_build_trans';
CREATE AGGREGATE segplan.rb64_build_agg(bigint) (
  SFUNC = segplan.rb64_build_trans, STYPE = internal, FINALFUNC = segplan.rb64_agg_final,
  COMBINEFUNC = segplan.rb64_or_combine, SERIALFUNC = segplan.rb64_agg_serialize,
  DESERIALFUNC = segplan.rb64_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE segplan.rb64_or_agg(segplan.roaringbitmap64) (
  SFUNC = segplan.rb64_or_trans, STYPE = internal, FINALFUNC = segplan.rb64_agg_final,
  COMBINEFUNC = segplan.rb64_or_combine, SERIALFUNC = segplan.rb64_agg_serialize,
  DESERIALFUNC = segplan.rb64_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE segplan.rb64_or_cardinality_agg(segplan.roaringbitmap64) (
  SFUNC = segplan.rb64_or_trans, STYPE = internal, FINALFUNC = segplan.rb64_agg_cardinality_final,
  COMBINEFUNC = segplan.rb64_or_combine, SERIALFUNC = segplan.rb64_agg_serialize,
  DESERIALFUNC = segplan.rb64_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE segplan.rb64_and_agg(segplan.roaringbitmap64) (
  SFUNC = segplan.rb64_and_trans, STYPE = internal, FINALFUNC = segplan.rb64_agg_final,
  COMBINEFUNC = segplan.rb64_and_combine, SERIALFUNC = segplan.rb64_agg_serialize,
  DESERIALFUNC = segplan.rb64_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE segplan.rb64_and_cardinality_agg(segplan.roaringbitmap64) (
  SFUNC = segplan.rb64_and_trans, STYPE = internal, FINALFUNC = segplan.rb64_agg_cardinality_final,
  COMBINEFUNC = segplan.rb64_and_combine, SERIALFUNC = segplan.rb64_agg_serialize,
  DESERIALFUNC = segplan.rb64_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE segplan.rb64_xor_agg(segplan.roaringbitmap64) (
  SFUNC = segplan.rb64_xor_trans, STYPE = internal, FINALFUNC = segplan.rb64_agg_final,
  COMBINEFUNC = segplan.rb64_xor_combine, SERIALFUNC = segplan.rb64_agg_serialize,
  DESERIALFUNC = segplan.rb64_agg_deserialize, PARALLEL = SAFE);
CREATE AGGREGATE segplan.rb64_xor_cardinality_agg(segplan.roaringbitmap64) (
  SFUNC = segplan.rb64_xor_trans, STYPE = internal, FINALFUNC = segplan.rb64_agg_cardinality_final,
  COMBINEFUNC = segplan.rb64_xor_combine, SERIALFUNC = segplan.rb64_agg_serialize,
  DESERIALFUNC = segplan.rb64_agg_deserialize, PARALLEL = SAFE);
COMMENT ON TYPE segplan.roaringbitmap64 IS 'A set of int8 values as a 64-bit roaring bitmap; text form {1,2,3}, ::bytea is the portable 64-bit roaring format.';
COMMENT ON FUNCTION segplan.roaringbitmap64_in(cstring) IS 'Text input of roaringbitmap64: {1,2,3}.';
COMMENT ON FUNCTION segplan.roaringbitmap64_out(segplan.roaringbitmap64) IS 'Text output of roaringbitmap64: {1,2,3}.';
COMMENT ON FUNCTION segplan.roaringbitmap64(bytea) IS 'Reads the portable 64-bit roaring format (as written by pg_roaringbitmap or CRoaring).';
COMMENT ON FUNCTION segplan.rb64_build(bigint[]) IS 'A 64-bit bitmap of the array''s values (NULLs ignored).';
COMMENT ON FUNCTION segplan.rb64_to_array(segplan.roaringbitmap64) IS 'The values of a 64-bit bitmap as an array, in bitmap order.';
COMMENT ON FUNCTION segplan.rb64_iterate(segplan.roaringbitmap64) IS 'The values of a 64-bit bitmap as rows, in bitmap order.';
COMMENT ON FUNCTION segplan.rb64_cardinality(segplan.roaringbitmap64) IS 'Number of values in a 64-bit bitmap.';
COMMENT ON FUNCTION segplan.rb64_is_empty(segplan.roaringbitmap64) IS 'True if the 64-bit bitmap has no values.';
COMMENT ON FUNCTION segplan.rb64_min(segplan.roaringbitmap64) IS 'Smallest value (unsigned order), NULL if empty.';
COMMENT ON FUNCTION segplan.rb64_max(segplan.roaringbitmap64) IS 'Largest value (unsigned order), NULL if empty.';
COMMENT ON FUNCTION segplan.rb64_rank(segplan.roaringbitmap64, bigint) IS 'Number of values less than or equal to the given one.';
COMMENT ON FUNCTION segplan.rb64_index(segplan.roaringbitmap64, bigint) IS '0-based position of a value, or -1 if absent.';
COMMENT ON FUNCTION segplan.rb64_jaccard_dist(segplan.roaringbitmap64, segplan.roaringbitmap64) IS 'Jaccard distance 1 - |a and b| / |a or b|.';
COMMENT ON FUNCTION segplan.rb64_and(segplan.roaringbitmap64, segplan.roaringbitmap64) IS 'Intersection (operator &).';
COMMENT ON FUNCTION segplan.rb64_or(segplan.roaringbitmap64, segplan.roaringbitmap64) IS 'Union (operator |).';
COMMENT ON FUNCTION segplan.rb64_xor(segplan.roaringbitmap64, segplan.roaringbitmap64) IS 'Symmetric difference (operator #).';
COMMENT ON FUNCTION segplan.rb64_andnot(segplan.roaringbitmap64, segplan.roaringbitmap64) IS 'Difference (operator -).';
COMMENT ON FUNCTION segplan.rb64_and_cardinality(segplan.roaringbitmap64, segplan.roaringbitmap64) IS 'Size of the intersection, without building it.';
COMMENT ON FUNCTION segplan.rb64_or_cardinality(segplan.roaringbitmap64, segplan.roaringbitmap64) IS 'Size of the union, without building it.';
COMMENT ON FUNCTION segplan.rb64_xor_cardinality(segplan.roaringbitmap64, segplan.roaringbitmap64) IS 'Size of the symmetric difference, without building it.';
COMMENT ON FUNCTION segplan.rb64_andnot_cardinality(segplan.roaringbitmap64, segplan.roaringbitmap64) IS 'Size of the difference, without building it.';
COMMENT ON FUNCTION segplan.rb64_add(segplan.roaringbitmap64, bigint) IS 'The bitmap with a value added (operator |).';
COMMENT ON FUNCTION segplan.rb64_remove(segplan.roaringbitmap64, bigint) IS 'The bitmap with a value removed (operator -).';
COMMENT ON FUNCTION segplan.rb64_contains(segplan.roaringbitmap64, segplan.roaringbitmap64) IS 'True if the first bitmap contains the second (operator @>).';
COMMENT ON FUNCTION segplan.rb64_contains(segplan.roaringbitmap64, bigint) IS 'True if the bitmap contains the value (operator @>).';
COMMENT ON FUNCTION segplan.rb64_containedby(segplan.roaringbitmap64, segplan.roaringbitmap64) IS 'True if the first bitmap is contained in the second (operator <@).';
COMMENT ON FUNCTION segplan.rb64_value_containedby(bigint, segplan.roaringbitmap64) IS 'True if the value is in the bitmap (operator <@).';
COMMENT ON FUNCTION segplan.rb64_intersect(segplan.roaringbitmap64, segplan.roaringbitmap64) IS 'True if the bitmaps share a value (operator &&).';
COMMENT ON FUNCTION segplan.rb64_equals(segplan.roaringbitmap64, segplan.roaringbitmap64) IS 'True if the bitmaps hold the same values (operator =).';
COMMENT ON FUNCTION segplan.rb64_not_equals(segplan.roaringbitmap64, segplan.roaringbitmap64) IS 'True if the bitmaps differ (operator <>).';
COMMENT ON FUNCTION segplan.rb64_range(segplan.roaringbitmap64, bigint, bigint) IS 'The values in [range_start, range_end) (bounds and values read as unsigned).';
COMMENT ON FUNCTION segplan.rb64_range_cardinality(segplan.roaringbitmap64, bigint, bigint) IS 'Number of values in [range_start, range_end).';
COMMENT ON FUNCTION segplan.rb64_fill(segplan.roaringbitmap64, bigint, bigint) IS 'The bitmap with every value of [range_start, range_end) added.';
COMMENT ON FUNCTION segplan.rb64_clear(segplan.roaringbitmap64, bigint, bigint) IS 'The bitmap with every value of [range_start, range_end) removed.';
COMMENT ON FUNCTION segplan.rb64_flip(segplan.roaringbitmap64, bigint, bigint) IS 'The bitmap with every value of [range_start, range_end) flipped.';
COMMENT ON FUNCTION segplan.rb64_select(segplan.roaringbitmap64, bigint, bigint, boolean, bigint, bigint) IS 'Up to bitset_limit values of [range_start, range_end) after skipping bitset_offset, from the low end (or high end when reverse).';
COMMENT ON FUNCTION segplan.rb64_runoptimize(segplan.roaringbitmap64) IS 'The same bitmap (no run-length containers to convert, see rb_runoptimize).';
COMMENT ON AGGREGATE segplan.rb64_build_agg(bigint) IS 'A 64-bit bitmap of the aggregated int8 values (NULLs ignored); parallel.';
COMMENT ON AGGREGATE segplan.rb64_or_agg(segplan.roaringbitmap64) IS 'Union of the aggregated 64-bit bitmaps; parallel.';
COMMENT ON AGGREGATE segplan.rb64_and_agg(segplan.roaringbitmap64) IS 'Intersection of the aggregated 64-bit bitmaps; parallel.';
COMMENT ON AGGREGATE segplan.rb64_xor_agg(segplan.roaringbitmap64) IS 'Symmetric difference of the aggregated 64-bit bitmaps; parallel.';
COMMENT ON AGGREGATE segplan.rb64_or_cardinality_agg(segplan.roaringbitmap64) IS 'Size of the union of the aggregated 64-bit bitmaps.';
COMMENT ON AGGREGATE segplan.rb64_and_cardinality_agg(segplan.roaringbitmap64) IS 'Size of the intersection of the aggregated 64-bit bitmaps.';
COMMENT ON AGGREGATE segplan.rb64_xor_cardinality_agg(segplan.roaringbitmap64) IS 'Size of the symmetric difference of the aggregated 64-bit bitmaps.';
COMMENT ON FUNCTION segplan.rb64_build_trans(internal, bigint) IS 'Support function of rb64_build_agg.';
COMMENT ON FUNCTION segplan.rb64_or_trans(internal, segplan.roaringbitmap64) IS 'Support function of rb64_or_agg.';
COMMENT ON FUNCTION segplan.rb64_and_trans(internal, segplan.roaringbitmap64) IS 'Support function of rb64_and_agg.';
COMMENT ON FUNCTION segplan.rb64_xor_trans(internal, segplan.roaringbitmap64) IS 'Support function of rb64_xor_agg.';
COMMENT ON FUNCTION segplan.rb64_or_combine(internal, internal) IS 'Support function of the 64-bit bitmap aggregates (parallel combine).';
COMMENT ON FUNCTION segplan.rb64_and_combine(internal, internal) IS 'Support function of rb64_and_agg (parallel combine).';
COMMENT ON FUNCTION segplan.rb64_xor_combine(internal, internal) IS 'Support function of rb64_xor_agg (parallel combine).';
COMMENT ON FUNCTION segplan.rb64_agg_serialize(internal) IS 'Support function of the 64-bit bitmap aggregates (parallel state out).';
COMMENT ON FUNCTION segplan.rb64_agg_deserialize(bytea, internal) IS 'Support function of the 64-bit bitmap aggregates (parallel state in).';
COMMENT ON FUNCTION segplan.rb64_agg_final(internal) IS 'Support function of the 64-bit bitmap aggregates (result).';
COMMENT ON FUNCTION segplan.rb64_agg_cardinality_final(internal) IS 'Support function of the 64-bit cardinality aggregates (result).';

-- ---------------------------------------------------------------------------------------------
-- Stored segments (save_segment and reference expansion are in src/pg/segments_api.rs). Every
-- function runs as the caller; counts go through segplan.bitmap / members, so the caller's grants
-- and row-level security on the customer's tables apply.
CREATE FUNCTION segplan.save_segment(name text, rule jsonb, description text DEFAULT NULL, brand text DEFAULT NULL) RETURNS bigint
LANGUAGE sql VOLATILE
BEGIN ATOMIC SELECT segplan.save_segment($1, $2::text, $3, $4); END;

-- security_invoker: read as the caller, so brand scoping (row-level security) applies
CREATE VIEW segplan.segments WITH (security_invoker = true) AS
SELECT s.name, s.brand, s.description, v.rule, v.rule_text, s.size, s.refreshed_at, s.version, s.owner,
       s.created_at, v.saved_at AS changed_at, v.saved_by AS changed_by, v.refs AS references_segments,
       CASE WHEN p.segment_id IS NOT NULL THEN pg_catalog.format('%I.%I', p.view_schema, p.view_name) END AS published_as
FROM segplan.segment s
JOIN segplan.segment_versions v ON v.segment_id OPERATOR(pg_catalog.=) s.id AND v.version OPERATOR(pg_catalog.=) s.version
LEFT JOIN segplan.published_views p ON p.segment_id OPERATOR(pg_catalog.=) s.id;
GRANT SELECT ON segplan.segments TO segplan_analyst;

-- the segment row (locked when it is to be changed), or a clear error
CREATE FUNCTION segplan._segment(segment_name text, lock boolean DEFAULT true) RETURNS segplan.segment
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE s segplan.segment;
BEGIN
  IF lock THEN
    SELECT * INTO s FROM segplan.segment WHERE name = segment_name FOR UPDATE;
  ELSE
    SELECT * INTO s FROM segplan.segment WHERE name = segment_name;
  END IF;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'segplan: unknown segment "%"', segment_name USING ERRCODE = '22023', DETAIL = 'at name',
      HINT = 'the segplan.segments view lists the saved segments';
  END IF;
  RETURN s;
END
$$;

CREATE FUNCTION segplan.drop_segment(name text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE s segplan.segment := segplan._segment(name); users text;
BEGIN
  SELECT string_agg(x.name, ', ' ORDER BY x.name) INTO users FROM segplan.segment x
  JOIN segplan.segment_versions v ON v.segment_id = x.id AND v.version = x.version WHERE s.name = ANY (v.refs);
  IF users IS NOT NULL THEN
    RAISE EXCEPTION 'segplan: segment "%" is referenced by other segments', s.name USING ERRCODE = '2BP01',
      DETAIL = 'referenced by: ' || users, HINT = 'change or drop those segments first';
  END IF;
  PERFORM segplan.unpublish_segment(s.name) FROM segplan.published_views p WHERE p.segment_id = s.id;
  DELETE FROM segplan.segment WHERE id = s.id;
END
$$;

CREATE FUNCTION segplan.refresh_segment(name text) RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE
  s segplan.segment := segplan._segment(name);
  now_ timestamptz := clock_timestamp();
  fresh segplan.roaringbitmap64 := segplan.bitmap(jsonb_build_object('segment', s.name), date_trunc('minute', now()));
  old segplan.roaringbitmap64 := coalesce(s.members::segplan.roaringbitmap64, '{}'::segplan.roaringbitmap64);
  n bigint := segplan.rb64_cardinality(fresh);
BEGIN
  UPDATE segplan.segment SET members = fresh::bytea, size = n, refreshed_at = now_ WHERE id = s.id;
  INSERT INTO segplan.segment_history (segment_id, refreshed_at, version, size, entered, exited)
  VALUES (s.id, now_, s.version, n, segplan.rb64_andnot_cardinality(fresh, old), segplan.rb64_andnot_cardinality(old, fresh));
  RETURN n;
END
$$;

CREATE FUNCTION segplan.refresh_all() RETURNS integer
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE n integer := 0; x record;
BEGIN
  FOR x IN SELECT name FROM segplan.segment ORDER BY name LOOP
    PERFORM segplan.refresh_segment(x.name);
    n := n + 1;
  END LOOP;
  RETURN n;
END
$$;

CREATE FUNCTION segplan.segment_history(name text)
RETURNS TABLE (refreshed_at timestamptz, version integer, size bigint, entered bigint, exited bigint)
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE s segplan.segment := segplan._segment(name, false);
BEGIN
  RETURN QUERY SELECT h.refreshed_at, h.version, h.size, h.entered, h.exited
               FROM segplan.segment_history h WHERE h.segment_id = s.id ORDER BY h.refreshed_at;
END
$$;

-- a segment's members as of its last refresh (55000 if it never was)
CREATE FUNCTION segplan._refreshed(s segplan.segment) RETURNS segplan.roaringbitmap64
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF s.members IS NULL THEN
    RAISE EXCEPTION 'segplan: segment "%" was never refreshed', s.name USING ERRCODE = '55000',
      HINT = 'call segplan.refresh_segment(name) first, or ask for live members';
  END IF;
  RETURN s.members::segplan.roaringbitmap64;
END
$$;

CREATE FUNCTION segplan.segment_members(name text, live boolean DEFAULT true) RETURNS SETOF bigint
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE s segplan.segment := segplan._segment(name, false);
BEGIN
  IF live THEN
    RETURN QUERY SELECT segplan.members(jsonb_build_object('segment', s.name), date_trunc('minute', now()));
  ELSIF segplan.model()->'contacts'->>'key_type' NOT IN ('smallint', 'integer', 'bigint') THEN
    -- over uuid/text keys a stored bitmap holds segplan ids (see "Keys that are not integers")
    RAISE EXCEPTION 'segplan: contact keys are not integers' USING ERRCODE = '42804',
      DETAIL = 'segment_members returns bigint keys; the stored members of this segment are segplan ids',
      HINT = pg_catalog.format('SELECT segplan.segment_members_text(%L, false)', s.name);
  ELSE
    RETURN QUERY SELECT segplan.rb64_iterate(segplan._refreshed(s));
  END IF;
END
$$;

-- the same with keys of any type, as text: stored members over uuid/text keys are segplan ids,
-- turned back into keys through the contacts as the caller sees them (keys_of)
CREATE FUNCTION segplan.segment_members_text(name text, live boolean DEFAULT true) RETURNS SETOF text
LANGUAGE plpgsql STABLE SET search_path = pg_catalog, pg_temp AS $$
DECLARE s segplan.segment := segplan._segment(name, false);
BEGIN
  IF live THEN
    RETURN QUERY SELECT segplan.members_text(jsonb_build_object('segment', s.name), date_trunc('minute', now()));
  ELSIF segplan.model()->'contacts'->>'key_type' IN ('smallint', 'integer', 'bigint') THEN
    RETURN QUERY SELECT v::text FROM segplan.rb64_iterate(segplan._refreshed(s)) AS v;
  ELSE
    RETURN QUERY SELECT segplan.keys_of(segplan._refreshed(s));
  END IF;
END
$$;

CREATE FUNCTION segplan.segment_overlap(names text[])
RETURNS TABLE (segment_a text, segment_b text, size_a bigint, size_b bigint, overlap bigint, jaccard float8)
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
  WITH b AS MATERIALIZED (
    SELECT u.n, u.ord, segplan.bitmap(jsonb_build_object('segment', u.n), date_trunc('minute', now())) AS bm
    FROM unnest(names) WITH ORDINALITY AS u(n, ord))
  SELECT x.n, y.n, segplan.rb64_cardinality(x.bm), segplan.rb64_cardinality(y.bm), segplan.rb64_and_cardinality(x.bm, y.bm),
         CASE WHEN segplan.rb64_or_cardinality(x.bm, y.bm) = 0 THEN 0
              ELSE segplan.rb64_and_cardinality(x.bm, y.bm)::float8 / segplan.rb64_or_cardinality(x.bm, y.bm) END
  FROM b x JOIN b y ON x.ord < y.ord ORDER BY x.ord, y.ord
$$;

-- Published views: every column of the contact source, the segment's live members, run with the
-- reader's privileges (security_invoker), so a BI tool sees exactly what its role may see.
CREATE FUNCTION segplan.publish_segment(name text, schema name DEFAULT 'segments') RETURNS text
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

CREATE FUNCTION segplan.unpublish_segment(name text) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE s segplan.segment := segplan._segment(name); p record;
BEGIN
  SELECT * INTO p FROM segplan.published_views v WHERE v.segment_id = s.id;
  IF NOT FOUND THEN
    RAISE EXCEPTION 'segplan: segment "%" is not published', s.name USING ERRCODE = '22023', DETAIL = 'at name',
      HINT = 'the published_as column of segplan.segments shows where segments are published';
  END IF;
  EXECUTE format('DROP VIEW IF EXISTS %I.%I', p.view_schema, p.view_name);
  DELETE FROM segplan.published_views WHERE segment_id = s.id;
END
$$;

COMMENT ON FUNCTION segplan.save_segment(text, text, text, text) IS
  'Saves a segment (create or update): the rule is validated, references to other segments checked for cycles, a changed rule becomes a new version.';
COMMENT ON FUNCTION segplan.save_segment(text, jsonb, text, text) IS 'Saves a segment with a JSON rule.';
COMMENT ON FUNCTION segplan.segment_rule(text) IS 'The rule a segment stands for now, with the segments it references expanded.';
COMMENT ON VIEW segplan.segments IS 'Saved segments: rule (JSON and text), version, size and time of the last refresh, owner, where published.';
COMMENT ON FUNCTION segplan._segment(text, boolean) IS 'Internal: the segment row (locked to change it), or an error naming the unknown segment.';
COMMENT ON FUNCTION segplan._refreshed(segplan.segment) IS 'Internal: a segment''s members as of its last refresh, or an error if it never was refreshed.';
COMMENT ON FUNCTION segplan.drop_segment(text) IS 'Drops a segment, its versions, history and published view; refused while other segments reference it.';
COMMENT ON FUNCTION segplan.refresh_segment(text) IS 'Stores the segment''s current members and appends size, entered and exited to its history; returns the size.';
COMMENT ON FUNCTION segplan.refresh_all() IS 'Refreshes every segment (for a scheduled job); returns how many.';
COMMENT ON FUNCTION segplan.segment_history(text) IS 'Refreshes of a segment: when, with which version, size, contacts entered and exited since the previous one.';
COMMENT ON FUNCTION segplan.segment_members(text, boolean) IS 'Members of a segment: live (its current rule now) or as of its last refresh.';
COMMENT ON FUNCTION segplan.segment_members_text(text, boolean) IS 'Members of a segment as text keys (any key type): live, or as of its last refresh.';
COMMENT ON FUNCTION segplan.segment_overlap(text[]) IS 'Pairwise overlap of segments (live): sizes, common contacts and Jaccard index.';
COMMENT ON FUNCTION segplan.publish_segment(text, name) IS
  'Creates (or replaces) a view named after the segment with every column of the contact source, for BI tools; returns its name.';
COMMENT ON FUNCTION segplan.unpublish_segment(text) IS 'Drops the view publish_segment created.';
COMMENT ON FUNCTION segplan.configure_dashboard(jsonb) IS
  'Sets which attributes and event properties the segment dashboard uses (keys left out stay detected, null turns one off); returns the fields in use.';
COMMENT ON FUNCTION segplan.dashboard_fields() IS 'The fields the segment dashboard uses: detected from the model''s names and types, with the configured overrides.';
COMMENT ON FUNCTION segplan.segment_dashboard(text, integer, timestamptz) IS
  'Key indicators of a segment''s live members as jsonb: size and share, distributions, age bands, reachability, engagement, purchases, RFM mix.';
COMMENT ON FUNCTION segplan.segment_dashboard_rows(text, integer, timestamptz) IS 'The segment dashboard as rows (section, label, contacts, value).';

-- ---------------------------------------------------------------------------------------------
-- Contact policies (create/update/drop, policy_impact, eligible in src/pg/policy_api.rs)
CREATE FUNCTION segplan.policy_impact(rule jsonb, policies text[], channel text, brand text DEFAULT NULL,
                                      at timestamptz DEFAULT pg_catalog.now(), outlet text DEFAULT NULL)
RETURNS TABLE (step int, policy text, rule text, excluded bigint, remaining bigint)
LANGUAGE sql VOLATILE
BEGIN ATOMIC SELECT * FROM segplan.policy_impact($1::text, $2, $3, $4, $5, $6); END;

CREATE FUNCTION segplan.record_contacts(contact_keys bigint[], channel text, brand text DEFAULT NULL, outlet text DEFAULT NULL,
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

CREATE FUNCTION segplan.pause_contact(contact_key bigint, during tstzrange, reason text DEFAULT NULL,
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
-- whole days in the session's time zone
CREATE FUNCTION segplan.pause_contact(contact_key bigint, during daterange, reason text DEFAULT NULL,
                                      yearly boolean DEFAULT false, channels text[] DEFAULT NULL)
RETURNS void LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
  SELECT segplan.pause_contact(contact_key,
    CASE WHEN during IS NULL OR isempty(during) THEN 'empty'::tstzrange
         ELSE tstzrange(lower(during)::timestamptz, upper(during)::timestamptz, '[)') END,
    reason, yearly, channels)
$$;

COMMENT ON FUNCTION segplan.create_policy(text, jsonb) IS 'Creates a contact policy (scope and rules, validated against the model); returns the spec as kept.';
COMMENT ON FUNCTION segplan.update_policy(text, jsonb) IS 'Replaces a policy''s spec; its version goes up.';
COMMENT ON FUNCTION segplan.drop_policy(text) IS 'Drops a contact policy.';
COMMENT ON FUNCTION segplan.policy_impact(text, text[], text, text, timestamptz, text) IS
  'Waterfall of a segment through contact policies for one send: contacts each rule removes (under the first rule that excludes them) and what remains.';
COMMENT ON FUNCTION segplan.policy_impact(jsonb, text[], text, text, timestamptz, text) IS 'policy_impact for a JSON rule.';
COMMENT ON FUNCTION segplan.eligible(bigint, text[], text, text, timestamptz, text) IS
  'Whether one contact may be contacted now under the policies, with every reason it may not.';
COMMENT ON FUNCTION segplan.record_contacts(bigint[], text, text, text, timestamptz, text) IS
  'Records contacts made by another system (call centre, ESP) in the contact history; returns the number recorded.';
COMMENT ON FUNCTION segplan.pause_contact(bigint, tstzrange, text, boolean, text[]) IS
  'Pauses a contact for a period (every year when yearly), on the listed channels or on all.';
COMMENT ON FUNCTION segplan.pause_contact(bigint, daterange, text, boolean, text[]) IS 'Pauses a contact for whole days (session time zone).';

-- after a run hands its list over: reservations become contacts made, or are given back
CREATE FUNCTION segplan.confirm_reservations(run_id bigint) RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
  WITH moved AS (DELETE FROM segplan.contact_reservations r WHERE r.run_id = confirm_reservations.run_id
                 RETURNING r.contact_key, r.brand, r.outlet, r.channel, r.plan_id, r.run_id, r.contacted_at),
       ins AS (INSERT INTO segplan.contact_history (contact_key, brand, outlet, channel, plan_id, run_id, contacted_at, source)
               SELECT m.contact_key, m.brand, m.outlet, m.channel, m.plan_id, m.run_id, m.contacted_at, 'segplan' FROM moved m RETURNING 1)
  SELECT count(*) FROM ins
$$;
CREATE FUNCTION segplan.release_reservations(run_id bigint) RETURNS bigint
LANGUAGE sql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
  WITH gone AS (DELETE FROM segplan.contact_reservations r WHERE r.run_id = release_reservations.run_id RETURNING 1)
  SELECT count(*) FROM gone
$$;
COMMENT ON FUNCTION segplan.reserve_contacts(bigint[], text[], text, text, timestamptz, integer, bigint, bigint, text) IS
  'Plan-side hook: reserves contacts for a send atomically against the policies'' caps and gaps, by priority; returns reserved, refused (with the reason) and bumped lower-priority reservations.';
COMMENT ON FUNCTION segplan.confirm_reservations(bigint) IS 'Turns a run''s reservations into contacts made (contact history); returns how many.';
COMMENT ON FUNCTION segplan.release_reservations(bigint) IS 'Gives a run''s reservations back; returns how many.';

-- ---------------------------------------------------------------------------------------------
-- Plans (create/update/activate/…, tick, run_plan, calendar in src/pg/plan_api.rs)
CREATE FUNCTION segplan.enable_scheduler() RETURNS bigint
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE job bigint;
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
    RAISE EXCEPTION 'segplan: pg_cron is not installed in this database' USING ERRCODE = '55000',
      HINT = 'add pg_cron to shared_preload_libraries, set cron.database_name to this database, CREATE EXTENSION pg_cron; or have any scheduler call SELECT segplan.tick() every minute';
  END IF;
  -- the job runs as its owner (the caller) switched to segplan_scheduler: plans run with that
  -- role's privileges only, so it needs SELECT on the contact data plans read (see the README)
  IF NOT pg_has_role(CURRENT_USER, 'segplan_scheduler', 'MEMBER') THEN
    RAISE EXCEPTION 'segplan: the scheduler job runs as segplan_scheduler, and % is not a member of it', CURRENT_USER
      USING ERRCODE = '42501', HINT = 'GRANT segplan_scheduler TO the role that enables the scheduler (segplan_admin members are)';
  END IF;
  EXECUTE 'SELECT cron.schedule($1, $2, $3)' INTO job USING 'segplan-tick', '* * * * *', 'SET ROLE segplan_scheduler; SELECT segplan.tick()';
  RETURN job;
END
$$;
CREATE FUNCTION segplan.disable_scheduler() RETURNS boolean
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE done boolean := false;
BEGIN
  IF EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_cron') THEN
    EXECUTE 'SELECT cron.unschedule(jobid) FROM cron.job WHERE jobname = $1' INTO done USING 'segplan-tick';
  END IF;
  RETURN coalesce(done, false);
END
$$;

-- An export of a run the caller can see (row-level security decides), recorded in the audit log.
CREATE FUNCTION segplan._exported(run_id bigint) RETURNS void
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM segplan.plan_runs r WHERE r.id = _exported.run_id) THEN
    RAISE EXCEPTION 'segplan: unknown run %', run_id USING ERRCODE = '22023', DETAIL = 'at run_id', HINT = 'segplan.plan_runs lists the runs';
  END IF;
  PERFORM segplan._audit_export(run_id);
END
$$;
COMMENT ON FUNCTION segplan._exported(bigint) IS 'Internal: checks the caller can see a run and records its export in the audit log.';

-- The contacts of a run (sent and test contacts) with every column of the contact source, typed:
-- SELECT * FROM segplan.export_run(7, NULL::demo.contacts), ready for COPY (...) TO.
CREATE FUNCTION segplan.export_run(run_id bigint, contacts anyelement) RETURNS SETOF anyelement
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE src regclass; key name;
BEGIN
  SELECT c.relid, c.key_column INTO src, key FROM segplan.contact_source c;
  IF src IS NULL OR pg_typeof(contacts) <> (SELECT reltype FROM pg_class WHERE oid = src)::regtype THEN
    RAISE EXCEPTION 'segplan: export_run returns rows of the contact source' USING ERRCODE = '22023',
      DETAIL = format('got %s, the contact source is %s', pg_typeof(contacts), coalesce(src::text, 'not registered')),
      HINT = format('pass NULL::%s', coalesce(src::text, 'the_contact_table'));
  END IF;
  PERFORM segplan._exported(run_id);
  RETURN QUERY EXECUTE format('SELECT c.* FROM %s AS c WHERE c.%I IN (SELECT rc.contact_key FROM segplan.run_contacts rc WHERE rc.run_id = $1 AND rc.status IN (''sent'', ''test'')) ORDER BY c.%I', src, key, key)
    USING run_id;
END
$$;
-- the same for any client: key, status and the contact's row as jsonb, then the test addresses
CREATE FUNCTION segplan.export_run(run_id bigint) RETURNS TABLE (contact_key bigint, status text, contact jsonb)
LANGUAGE plpgsql VOLATILE SET search_path = pg_catalog, pg_temp AS $$
DECLARE src regclass; key name;
BEGIN
  SELECT c.relid, c.key_column INTO src, key FROM segplan.contact_source c;
  PERFORM segplan._exported(run_id);
  RETURN QUERY EXECUTE format('SELECT rc.contact_key, rc.status, to_jsonb(c) FROM segplan.run_contacts rc LEFT JOIN %s AS c ON c.%I = rc.contact_key WHERE rc.run_id = $1 AND rc.status IN (''sent'', ''test'') ORDER BY rc.contact_key', src, key)
    USING run_id;
  RETURN QUERY SELECT NULL::bigint, 'test_address'::text, jsonb_build_object('address', a)
               FROM segplan.plan_runs r, unnest(r.test_addresses) AS a WHERE r.id = export_run.run_id;
END
$$;

COMMENT ON FUNCTION segplan.create_plan(text, jsonb) IS 'Creates a plan (a draft) from a spec: audience, channel, brand, policies, schedule, exceptions, target, priority, test contacts, holdout, delivery.';
COMMENT ON FUNCTION segplan.update_plan(bigint, jsonb) IS 'Changes a plan''s spec: a draft in place, a plan that ran gets a new version; returns the version.';
COMMENT ON FUNCTION segplan.activate_plan(bigint) IS 'draft or paused → active: the scheduler runs its slots from now on.';
COMMENT ON FUNCTION segplan.pause_plan(bigint) IS 'active → paused.';
COMMENT ON FUNCTION segplan.cancel_plan(bigint) IS 'Ends a plan that has not ended.';
COMMENT ON FUNCTION segplan.drop_plan(bigint) IS 'Drops a plan with its versions and runs (the contact history stays).';
COMMENT ON FUNCTION segplan.run_plan(bigint, timestamptz) IS 'Runs one slot of a plan by hand, exactly once; returns the run id (of the earlier run when the slot already ran).';
COMMENT ON FUNCTION segplan.tick(timestamptz) IS 'Runs every due slot of every active plan, each exactly once; returns the number of runs. pg_cron calls it every minute.';
COMMENT ON FUNCTION segplan.calendar(timestamptz, timestamptz) IS 'Upcoming slots of all active plans (exceptions applied): a campaign calendar.';
COMMENT ON FUNCTION segplan.enable_scheduler() IS 'Installs the pg_cron job that calls segplan.tick() every minute as segplan_scheduler; returns its job id.';
COMMENT ON FUNCTION segplan.disable_scheduler() IS 'Removes segplan''s pg_cron job.';
COMMENT ON FUNCTION segplan.export_run(bigint, anyelement) IS 'The contacts of a run, as rows of the contact source (pass NULL::the_contact_table), for COPY.';
COMMENT ON FUNCTION segplan.export_run(bigint) IS 'The contacts of a run: key, status and the contact row as jsonb.';
COMMENT ON FUNCTION segplan.configure_responses(jsonb) IS
  'Sets which events mean open, click and conversion after a run, and the window they count in (default 7 days); returns the configuration.';
COMMENT ON FUNCTION segplan.plan_report(bigint) IS
  'Per run of a plan: sizes and the sent contacts'' opens, clicks and conversions within the window after the slot, rates, the holdout''s conversion rate and the lift.';
CREATE FUNCTION segplan.call_queue(assignee text, day date DEFAULT current_date)
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
COMMENT ON FUNCTION segplan.call_queue(text, date) IS 'The calls an assignee has to make on a day (session time zone), in order.';
COMMENT ON FUNCTION segplan.record_outcome(bigint, bigint, text, text) IS
  'Records a call''s outcome (completed, unavailable, busy, call_later, converted, failed); call_later re-queues it for a later call time.';

-- ---------------------------------------------------------------------------------------------
-- EXECUTE: the bitmap type's functions, operators and aggregates stay open to everyone (as in
-- pg_roaringbitmap); every other function is revoked from PUBLIC and granted to segplan's roles
-- (sql/security.sql). Functions that read customer data still run as the caller, so a role also
-- needs the customer's own grants on the tables it counts.
REVOKE EXECUTE ON ALL FUNCTIONS IN SCHEMA segplan FROM PUBLIC;
DO $$
DECLARE
  g record;
  f pg_catalog.regprocedure;
BEGIN
  FOR g IN SELECT * FROM (VALUES
    ('PUBLIC', '^(rb|rb64)_|^roaringbitmap'),
    -- what row-level security policies call, as the querying role (its own scope only)
    ('PUBLIC', '^(_scope|_in_scope)$'),
    -- read: counts, members, dashboards, reports, policy impact (and the internals they call)
    ('segplan_analyst', '^(count|count_steps|members|members_text|bitmap|keys_of|bitmap_of|number_contacts|to_sql|validate|format|parse|model|cache_stats|shared_cache_stats|cache_clear'
                        '|segment_rule|segment_history|segment_members|segment_members_text|segment_overlap|segment_dashboard|segment_dashboard_rows|dashboard_fields'
                        '|rfm_scores|rfm_scores_text|rfm_summary|rfm_clusters|policy_impact|eligible|calendar|plan_report|call_queue'
                        '|_segment|_refreshed|_closure|_rfm_query|_rfm_as_of|_rfm_agg|_rfm_scores|_prune_changes|_zone|_keys_agg|_ids_agg)$'),
    -- segments and plans of their brands, runs, exports, call outcomes, contacts made and pauses
    ('segplan_planner', '^(save_segment|drop_segment|refresh_segment|refresh_all|publish_segment|unpublish_segment'
                        '|create_plan|update_plan|activate_plan|pause_plan|cancel_plan|drop_plan|run_plan|export_run'
                        '|record_outcome|record_contacts|pause_contact|reserve_contacts|confirm_reservations|release_reservations|_exported|_audit_export)$'),
    ('segplan_scheduler', '^(tick|run_plan|reserve_contacts|confirm_reservations|release_reservations)$'),
    -- the model, policies, brands and the scheduler job
    ('segplan_admin', '^(register_contacts|register_events|unregister_events|configure_rfm|configure_dashboard|configure_responses'
                      '|create_policy|update_policy|drop_policy|grant_brand|revoke_brand|enable_scheduler|disable_scheduler|_track|_note_change|_note_keys|_invalidate)$')
  ) AS t(grantee, names) LOOP
    FOR f IN SELECT p.oid FROM pg_catalog.pg_proc p
             WHERE p.pronamespace OPERATOR(pg_catalog.=) 'segplan'::pg_catalog.regnamespace AND p.proname OPERATOR(pg_catalog.~) g.names LOOP
      EXECUTE pg_catalog.format('GRANT EXECUTE ON FUNCTION %s TO %s', f, g.grantee);
    END LOOP;
  END LOOP;
END
$$;
