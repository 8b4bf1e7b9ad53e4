-- segplan.roaringbitmap64: the 64-bit twin, edge values, the portable 64-bit format, rb_select.
SET search_path = segplan, public;
SELECT '{1,2,3}'::roaringbitmap64, '{}'::roaringbitmap64, ' { 3 , 1 } '::roaringbitmap64;
-- int8 edges: 2^32 is another bucket; -1 is 2^64-1 unsigned, so it sorts last
SELECT '{0,2147483647,4294967295,4294967296,9223372036854775807,-1}'::roaringbitmap64 AS edges,
       rb64_min('{5,-1}'), rb64_max('{5,-1}'), rb64_cardinality('{4294967296,1}');
-- the portable 64-bit format, byte for byte (CRoaring's roaring64 portable serialization)
SELECT '{1,4294967296}'::roaringbitmap64::bytea, '{}'::roaringbitmap64::bytea;
SELECT '\x0200000000000000000000003a3000000100000000000000100000000100010000003a3000000100000000000000100000000000'::bytea::roaringbitmap64 AS from_portable;
SELECT rb64_build(ARRAY(SELECT g::bigint * 1000003 FROM generate_series(1, 20000) g))
     = rb64_build(ARRAY(SELECT g::bigint * 1000003 FROM generate_series(1, 20000) g))::bytea::roaringbitmap64 AS bytea_round_trip;
SELECT rb64_build('{1,NULL,2}'), rb64_to_array('{3,1,2}'), rb64_cardinality('{}'), rb64_is_empty('{}'), rb64_is_empty('{0}');
SELECT rb64_iterate('{7,-1,4294967296}');
-- algebra: functions, operators and fused cardinalities agree
WITH x(a, b) AS (SELECT '{1,2,3,4,4294967296}'::roaringbitmap64, '{3,4,5,4294967296}'::roaringbitmap64)
SELECT a & b AS "and", a | b AS "or", a # b AS "xor", a - b AS andnot,
       rb64_and_cardinality(a, b), rb64_or_cardinality(a, b), rb64_xor_cardinality(a, b), rb64_andnot_cardinality(a, b),
       rb64_cardinality(a & b) = rb64_and_cardinality(a, b) AS fused_ok
FROM x;
SELECT '{1,2}'::roaringbitmap64 | 5::bigint, '{1,2}'::roaringbitmap64 - 2::bigint, rb64_add('{}', -1), rb64_remove('{1}', 1);
SELECT '{1,2,3}'::roaringbitmap64 @> '{2,3}'::roaringbitmap64 AS contains, '{1,2,3}'::roaringbitmap64 @> 4::bigint AS contains_4,
       '{2}'::roaringbitmap64 <@ '{1,2}'::roaringbitmap64 AS contained, 2::bigint <@ '{1,2}'::roaringbitmap64 AS value_in,
       '{1,2}'::roaringbitmap64 && '{2,3}'::roaringbitmap64 AS overlap, '{1}'::roaringbitmap64 && '{2}'::roaringbitmap64 AS no_overlap,
       '{1,2}'::roaringbitmap64 = '{2,1}'::roaringbitmap64 AS eq, '{1}'::roaringbitmap64 <> '{}'::roaringbitmap64 AS ne,
       rb64_contains('{1,2}', 1::bigint), rb64_intersect('{}', '{}'), rb64_equals('{}', '{}');
SELECT rb64_rank('{1,5,9}', 5), rb64_index('{1,5,9}', 9), rb64_index('{1,5,9}', 4),
       rb64_jaccard_dist('{1,2}', '{2,3}'), rb64_jaccard_dist('{}', '{}');
-- ranges over unsigned values [start, end)
SELECT rb64_range('{1,5,9,4294967296,-1}', 2, 4294967297), rb64_range_cardinality('{1,5,9,-1}', 0, 10),
       rb64_fill('{1}', 4294967295, 4294967298), rb64_clear('{1,3,4,5,9}', 3, 6), rb64_flip('{1,3}', 0, 4), rb64_range('{1}', 5, 2);
-- rb_select / rb64_select: limit, offset, from the high end, inside a range
SELECT rb_select('{1,2,3,4,5,-1}', 2), rb_select('{1,2,3,4,5,-1}', 2, 1), rb_select('{1,2,3,4,5,-1}', 2, 0, true),
       rb_select('{1,2,3,4,5,-1}', 10, 0, false, 2, 5), rb_select('{1,2,3}', 0), rb_runoptimize('{1,2,3}');
SELECT rb64_select('{1,2,3,4294967296,-1}', 3, 1), rb64_select('{1,2,3,4294967296}', 1, 0, true), rb64_runoptimize('{7}');
-- aggregates, also under a forced parallel plan
SELECT rb64_build_agg(g * 4294967296) FROM generate_series(1, 3) g;
SELECT rb64_build_agg(g) FROM generate_series(1, 0) g;
SELECT rb64_or_agg(b), rb64_and_agg(b), rb64_xor_agg(b), rb64_or_cardinality_agg(b), rb64_and_cardinality_agg(b), rb64_xor_cardinality_agg(b)
FROM (VALUES ('{1,2,3}'::roaringbitmap64), ('{2,3,4}'), (NULL)) v(b);
CREATE TABLE big64 AS SELECT g::bigint * 7 AS v FROM generate_series(1, 200000) g;
ANALYZE big64;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0; SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT rb64_build_agg(v) FROM big64;
SELECT rb64_cardinality(rb64_build_agg(v)) = (SELECT count(DISTINCT v) FROM big64) AS parallel_ok,
       rb64_to_array(rb64_build_agg(v)) = (SELECT array_agg(v ORDER BY v) FROM big64) AS parallel_members_ok FROM big64;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size; RESET max_parallel_workers_per_gather;
DROP TABLE big64;
-- malformed input is a clear error, never a crash
SELECT '{1,2'::roaringbitmap64;
SELECT '{9223372036854775808}'::roaringbitmap64;
SELECT '\x00'::bytea::roaringbitmap64;
SELECT '\x0900000000000000'::bytea::roaringbitmap64;
SELECT '\x0200000000000000010000003a30000000000000000000003a30000000000000'::bytea::roaringbitmap64;
-- sizes PostgreSQL cannot hold are 54000 errors (never a backend killed for memory): ranges
-- that would take over 1 GB, run containers that would read as over 1 GB of bitsets (three
-- buckets of 65536 full runs: 1.2 MB of bytes, 1.5 GB once read), arrays and text over 1 GB
SELECT rb64_fill('{}', 0, 9223372036854775807);
SELECT rb64_flip('{1}', -4294967296 * 3, -1);
SELECT rb64_fill('{}', 0, 4294967296 * 2 + 1);
CREATE FUNCTION pg_temp.le(v bigint, n int) RETURNS text LANGUAGE sql IMMUTABLE
AS $$ SELECT string_agg(lpad(to_hex((v >> (8 * k)) & 255), 2, '0'), '' ORDER BY k) FROM generate_series(0, n - 1) k $$;
CREATE TABLE full_runs AS
SELECT pg_temp.le((65535 << 16) | 12347, 4) || repeat('ff', 8192)
       || (SELECT string_agg(pg_temp.le(i, 2) || 'ffff', '' ORDER BY i) FROM generate_series(0, 65535) i)
       || (SELECT string_agg(pg_temp.le(4 + 8192 + 8 * 65536 + 6 * i, 4), '' ORDER BY i) FROM generate_series(0, 65535) i)
       || repeat('01000000ffff', 65536) AS bucket;
SELECT rb_cardinality(decode(bucket, 'hex')::roaringbitmap) AS one_bucket FROM full_runs;
SELECT decode(pg_temp.le(3, 8) || pg_temp.le(0, 4) || bucket || pg_temp.le(1, 4) || bucket || pg_temp.le(2, 4) || bucket, 'hex')::roaringbitmap64 FROM full_runs;
SELECT ('\x' || pg_temp.le(3, 8) || pg_temp.le(0, 4) || bucket || pg_temp.le(1, 4) || bucket || pg_temp.le(2, 4) || bucket)::roaringbitmap64 FROM full_runs;
SELECT rb64_cardinality(decode(pg_temp.le(2, 8) || pg_temp.le(0, 4) || bucket || pg_temp.le(7, 4) || bucket, 'hex')::roaringbitmap64) AS two_buckets FROM full_runs;
DROP TABLE full_runs;
-- arrays are written straight from the bitmap: empty ones have no dimensions, as PostgreSQL's own
SELECT rb_to_array('{}') = '{}'::int[] AS empty_array, rb64_to_array('{}') = '{}'::bigint[] AS empty_array64,
       array_dims(rb64_to_array('{5,-1}')), rb_to_array('{2,-1}') = ARRAY[2, -1] AS unsigned_order, rb64_to_array('{2,-1}') || 7::bigint AS appended;
SELECT cardinality(rb64_to_array(rb64_fill('{}', 0, 134217724))) AS largest_array;
SELECT rb64_to_array(rb64_fill('{}', 0, 134217725));
SELECT rb_to_array(rb_fill('{}', 0, 268435456));
SELECT rb64_fill('{}', 1000000000000000000, 1000000000054000000)::text;
SET segplan.roaringbitmap.output_format = 'bytea';
SELECT rb_fill('{}', 0, 4294967296)::text;
RESET segplan.roaringbitmap.output_format;
-- aggregates are refused as they grow past 1 GB (two inputs of 512 MB each), not when they end
SELECT rb64_or_cardinality_agg(rb64_fill('{}', g * 8589934592, g * 8589934592 + 4294967296)) FROM generate_series(0, 1) g;
SELECT rb64_cardinality(rb64_xor_agg(rb64_fill('{}', g * 8589934592, g * 8589934592 + 4294967296))) FROM generate_series(0, 1) g;
SELECT rb64_or_cardinality_agg(rb64_fill('{}', g * 8589934592, g * 8589934592 + 4259840000)) AS just_under FROM generate_series(0, 1) g;
-- ranges over the whole unsigned range read only what the bitmap holds
SELECT rb64_range('{1,-2,-1}', 0, -1), rb64_range_cardinality('{1,-2,-1}', 0, -1), rb64_clear('{1,-2,9223372036854775807}', 2, -1),
       rb64_select('{1,5,-2,-1}', 2, 1, true, 0, -1), rb64_range('{}', 0, -1), rb64_select('{1,2}', 9223372036854775807, 9223372036854775807);
SELECT rb_range('{1,-2,-1}', 0, 4294967296), rb_range_cardinality('{1,-2,-1}', 1, 4294967295), rb_select('{1,5,-2,-1}', 2, 1, true),
       rb_select('{1,2,3}', 2, 0, true, 0, 3);
-- the output format setting applies to both types
SET segplan.roaringbitmap.output_format = 'bytea';
SELECT '{1}'::roaringbitmap64;
RESET segplan.roaringbitmap.output_format;
-- membership read in place (never deserialized per row): stored out of line (TOAST), a different
-- stored bitmap on every row, in-memory values, values above 2^32 and the unsigned end
CREATE TABLE stored64 (id int, bm roaringbitmap64);
ALTER TABLE stored64 ALTER COLUMN bm SET STORAGE EXTERNAL;
INSERT INTO stored64 SELECT k, rb64_build(ARRAY(SELECT g::bigint * k FROM generate_series(1, 30000) g)
                                   || ARRAY[k::bigint << 33, -1, 9223372036854775807]) FROM generate_series(1, 5) k;
SELECT pg_relation_size(reltoastrelid) > 0 AS out_of_line FROM pg_class WHERE oid = 'stored64'::regclass;
SELECT count(*) FILTER (WHERE rb64_contains((SELECT bm FROM stored64 WHERE id = 3), g)) AS by_function,
       count(*) FILTER (WHERE (SELECT bm FROM stored64 WHERE id = 3) @> g) AS by_operator,
       count(*) FILTER (WHERE g <@ (SELECT bm FROM stored64 WHERE id = 3)) AS contained,
       count(*) FILTER (WHERE g % 3 = 0 AND g BETWEEN 3 AND 90000 OR g = -1) AS expected
FROM generate_series(-5::bigint, 100000) g;
SELECT s.id, count(*) FILTER (WHERE rb64_contains(s.bm, g)) = count(*) FILTER (WHERE g % s.id = 0 AND g BETWEEN s.id AND 30000 * s.id) AS each_row_agrees
FROM stored64 s, generate_series(1::bigint, 150000, 7) g GROUP BY s.id ORDER BY s.id;
SELECT id, bm @> (id::bigint << 33) AS high, bm @> -1::bigint AS minus_one, bm @> 9223372036854775807 AS max_int8,
       bm @> ((id::bigint << 33) + 1) AS high_next, bm @> 4294967296::bigint AS two_32 FROM stored64 ORDER BY id;
SELECT rb64_contains(rb64_build(ARRAY[1, 4294967296, -1]), v) FROM unnest(ARRAY[1, 2, 4294967296, 4294967297, -1, 0]::bigint[]) v;
SELECT '{}'::roaringbitmap64 @> 0::bigint AS empty, 0::bigint <@ '{0}'::roaringbitmap64 AS zero;
DROP TABLE stored64;
-- intersections and cardinalities read from the stored bytes, across 32-bit buckets (some in one
-- bitmap only, some whose intersection is empty), out of line; against the values as rows, and
-- byte for byte what a fresh build writes
CREATE TABLE inter64 (id int, b roaringbitmap64);
INSERT INTO inter64 SELECT k, rb64_build(ARRAY(SELECT (g % 5) * 4294967296 + g * k FROM generate_series(0, 80000) g))
FROM generate_series(1, 4) k;
INSERT INTO inter64 VALUES (10, '{}'), (11, '{-1,0,4294967296,8589934593}'), (12, '{8589934592}');
SELECT pg_relation_size(reltoastrelid) > 0 AS out_of_line FROM pg_class WHERE oid = 'inter64'::regclass;
SELECT count(*) AS pairs,
       count(*) FILTER (WHERE rb64_cardinality(x.b & y.b) = s.n AND rb64_and_cardinality(x.b, y.b) = s.n
                          AND (x.b && y.b) = (s.n > 0) AND rb64_is_empty(x.b & y.b) = (s.n = 0)) AS counts_agree,
       count(*) FILTER (WHERE (x.b & y.b)::bytea = rb64_build(s.values)::bytea) AS same_bytes
FROM inter64 x, inter64 y,
LATERAL (SELECT count(*) AS n, coalesce(array_agg(v ORDER BY v), '{}') AS values
         FROM (SELECT rb64_iterate(x.b) INTERSECT SELECT rb64_iterate(y.b)) i(v)) s;
SELECT id, rb64_cardinality(b) = (SELECT count(*) FROM rb64_iterate(b)) AS cardinality_agrees FROM inter64 ORDER BY id;
-- the other fused counts and comparisons, also read in place, against the values as rows
SELECT count(*) AS pairs,
       count(*) FILTER (WHERE rb64_or_cardinality(x.b, y.b) = s.nu AND rb64_xor_cardinality(x.b, y.b) = s.nx + s.ny
                          AND rb64_andnot_cardinality(x.b, y.b) = s.nx) AS counts_agree,
       count(*) FILTER (WHERE (x.b = y.b) = (s.nx = 0 AND s.ny = 0) AND (x.b <> y.b) = (s.nx > 0 OR s.ny > 0)
                          AND (x.b @> y.b) = (s.ny = 0) AND (x.b <@ y.b) = (s.nx = 0)) AS comparisons_agree,
       count(*) FILTER (WHERE rb64_jaccard_dist(x.b, y.b) = CASE WHEN s.nu = 0 THEN 0 ELSE 1 - s.n::float8 / s.nu END) AS jaccard_agrees,
       count(*) FILTER (WHERE x.b = y.b) AS equal_pairs
FROM inter64 x, inter64 y,
LATERAL (SELECT count(*) FILTER (WHERE p.v IS NOT NULL AND q.v IS NOT NULL) AS n, count(*) AS nu,
                count(*) FILTER (WHERE q.v IS NULL) AS nx, count(*) FILTER (WHERE p.v IS NULL) AS ny
         FROM rb64_iterate(x.b) p(v) FULL JOIN rb64_iterate(y.b) q(v) ON p.v = q.v) s;
DROP TABLE inter64;
