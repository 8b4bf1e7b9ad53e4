-- segplan.roaringbitmap: pg_roaringbitmap's SQL surface, edge values, the portable byte format.
SET search_path = segplan, public;
SELECT '{1,2,3}'::roaringbitmap, '{}'::roaringbitmap, ' { 3 , 1 } '::roaringbitmap;
-- int4 edges: -1 is 2^32-1 unsigned, so it sorts last, as in pg_roaringbitmap
SELECT '{0,2147483647,-1,-2147483648}'::roaringbitmap AS edges, rb_min('{5,-1}'), rb_max('{5,-1}');
-- the portable format, byte for byte (what pg_roaringbitmap and CRoaring write)
SELECT '{1,2,3}'::roaringbitmap::bytea, '{}'::roaringbitmap::bytea;
SELECT '\x3a300000010000000000020010000000010002000300'::bytea::roaringbitmap AS from_portable;
SELECT rb_build(ARRAY(SELECT generate_series(1, 100000, 3))) = rb_build(ARRAY(SELECT generate_series(1, 100000, 3)))::bytea::roaringbitmap AS bytea_round_trip;
SELECT rb_build('{1,NULL,2}'), rb_to_array('{3,1,2}'), rb_cardinality('{}'), rb_is_empty('{}'), rb_is_empty('{0}');
SELECT rb_iterate('{7,-1,3}');
-- algebra: functions, operators and fused cardinalities agree
WITH x(a, b) AS (SELECT '{1,2,3,4}'::roaringbitmap, '{3,4,5}'::roaringbitmap)
SELECT a & b AS "and", a | b AS "or", a # b AS "xor", a - b AS andnot,
       rb_and_cardinality(a, b), rb_or_cardinality(a, b), rb_xor_cardinality(a, b), rb_andnot_cardinality(a, b),
       rb_cardinality(a & b) = rb_and_cardinality(a, b) AS fused_ok
FROM x;
SELECT '{1,2}'::roaringbitmap | 5, 5 | '{1,2}'::roaringbitmap, '{1,2}'::roaringbitmap - 2, rb_add('{}', -1), rb_remove('{1}', 1);
SELECT '{1,2,3}'::roaringbitmap @> '{2,3}'::roaringbitmap AS contains, '{1,2,3}'::roaringbitmap @> 4 AS contains_4,
       '{2}'::roaringbitmap <@ '{1,2}'::roaringbitmap AS contained, 2 <@ '{1,2}'::roaringbitmap AS value_in,
       '{1,2}'::roaringbitmap && '{2,3}'::roaringbitmap AS overlap, '{1}'::roaringbitmap && '{2}'::roaringbitmap AS no_overlap,
       '{1,2}'::roaringbitmap = '{2,1}'::roaringbitmap AS eq, '{1}'::roaringbitmap <> '{}'::roaringbitmap AS ne,
       rb_contains('{1,2}', 1), rb_intersect('{}', '{}'), rb_equals('{}', '{}');
SELECT rb_rank('{1,5,9}', 5), rb_rank('{1,5,9}', 0), rb_index('{1,5,9}', 9), rb_index('{1,5,9}', 4),
       rb_jaccard_dist('{1,2}', '{2,3}'), rb_jaccard_dist('{}', '{}');
-- ranges over unsigned values [start, end), bounds clamped to [0, 2^32]
SELECT rb_range('{1,5,9,-1}', 2, 10), rb_range_cardinality('{1,5,9,-1}', 0, 4294967296),
       rb_fill('{1}', 3, 6), rb_clear('{1,3,4,5,9}', 3, 6), rb_flip('{1,3}', 0, 4), rb_range('{1}', 5, 2);
SELECT rb_fill('{}', 4294967290, 5000000000);
-- malformed input is a clear error (22P02 / 22P03), never a crash
SELECT '{1,2'::roaringbitmap;
SELECT '{2147483648}'::roaringbitmap;
SELECT '{a}'::roaringbitmap;
SELECT '\x00'::bytea::roaringbitmap;
SELECT '\x3a3000000100000000000200100000000100'::bytea::roaringbitmap;
SELECT '\x3a30000001000000000002001000000001000200030000'::bytea::roaringbitmap;
-- segplan.roaringbitmap.output_format: array (default) or bytea; input reads both forms
SHOW segplan.roaringbitmap.output_format;
SET segplan.roaringbitmap.output_format = 'bytea';
SELECT '{1,2,3}'::roaringbitmap AS bytea_output, rb_build('{}') AS empty;
RESET segplan.roaringbitmap.output_format;
SELECT '\x3a300000010000000000020010000000010002000300'::roaringbitmap AS hex_input;
SELECT '\x3a3'::roaringbitmap;
SET segplan.roaringbitmap.output_format = 'json';
-- a bitmap column: stored, read back, NULL-safe
CREATE TEMP TABLE bm (id int, b roaringbitmap);
INSERT INTO bm VALUES (1, '{1,2}'), (2, NULL), (3, rb_build(ARRAY(SELECT generate_series(1, 70000))));
SELECT id, rb_cardinality(b), rb_max(b) FROM bm ORDER BY id;
-- membership read in place: out of line, a different bitmap per row, dense (bitset) and sparse
-- containers, the unsigned end (-1, -2^31)
CREATE TABLE stored32 (id int, b roaringbitmap);
ALTER TABLE stored32 ALTER COLUMN b SET STORAGE EXTERNAL;
INSERT INTO stored32 SELECT k, rb_build(ARRAY(SELECT g * k FROM generate_series(1, 20000) g) || ARRAY[-1, -2147483648, 2147483647])
FROM generate_series(1, 4) k;
SELECT pg_relation_size(reltoastrelid) > 0 AS out_of_line FROM pg_class WHERE oid = 'stored32'::regclass;
SELECT s.id, count(*) FILTER (WHERE rb_contains(s.b, g)) = count(*) FILTER (WHERE g % s.id = 0 AND g BETWEEN s.id AND 20000 * s.id OR g = -1) AS each_row_agrees,
       count(*) FILTER (WHERE g <@ s.b) = count(*) FILTER (WHERE s.b @> g) AS operators_agree
FROM stored32 s, generate_series(-3, 90000) g GROUP BY s.id ORDER BY s.id;
SELECT id, b @> -1 AS minus_one, b @> -2147483648 AS min_int4, b @> 2147483647 AS max_int4, b @> -2 AS minus_two FROM stored32 ORDER BY id;
SELECT count(*) FILTER (WHERE rb_contains((SELECT b FROM stored32 WHERE id = 2), g)) AS shared_value FROM generate_series(1, 100000) g;
DROP TABLE stored32;
-- a value is the portable bytes: ::bytea is a binary cast; stored uncompressed and out of line
SELECT t.typname, t.typstorage FROM pg_type t
WHERE t.typnamespace = 'segplan'::regnamespace AND t.typname IN ('roaringbitmap', 'roaringbitmap64') ORDER BY 1;
SELECT c.castsource::regtype, c.casttarget::regtype, c.castmethod FROM pg_cast c
WHERE 'bytea'::regtype IN (c.castsource, c.casttarget) AND 'segplan.roaringbitmap'::regtype IN (c.castsource, c.casttarget) ORDER BY 1;
-- intersections and cardinalities read from the stored bytes: bitset and array containers, mixed,
-- a run container (pg_roaringbitmap's bytes of {1,2,3} after rb_runoptimize), empty, out of line;
-- against the intersection of the values as rows, and byte for byte what a fresh build writes
CREATE TABLE inter (id int, b roaringbitmap);
INSERT INTO inter SELECT k, rb_build(ARRAY(SELECT g FROM generate_series(0, 200000, k) g))
FROM (VALUES (1), (2), (3), (7), (64), (5000)) v(k);
INSERT INTO inter VALUES (100, '\x3b3000000100000200010001000200'::bytea::roaringbitmap), (101, '{}'), (102, '{-1,2,65536}');
-- run containers of more than 4096 values whose run lengths add up to 4096 or less (one run
-- 0..4096; runs 0..2047 and 4000..6049), which the roaring crate reads as an over-full array:
-- read back from their own bytes and equal to a build from the values
INSERT INTO inter VALUES (103, '\x3b3000000100000010010000000010'::bytea::roaringbitmap),
                         (104, '\x3b300000010000011002000000ff07a00f0108'::bytea::roaringbitmap);
SELECT id, rb_cardinality(b), b::bytea::roaringbitmap = b AS reads_back,
       b = rb_build(ARRAY(SELECT g FROM generate_series(0, 6049) g WHERE g <= 4096 AND id = 103 OR (g <= 2047 OR g >= 4000) AND id = 104)) AS same_values
FROM inter WHERE id IN (103, 104) ORDER BY id;
SELECT pg_relation_size(reltoastrelid) > 0 AS out_of_line FROM pg_class WHERE oid = 'inter'::regclass;
SELECT count(*) AS pairs,
       count(*) FILTER (WHERE rb_cardinality(x.b & y.b) = s.n AND rb_and_cardinality(x.b, y.b) = s.n
                          AND (x.b && y.b) = (s.n > 0) AND rb_is_empty(x.b & y.b) = (s.n = 0)) AS counts_agree,
       count(*) FILTER (WHERE (x.b & y.b)::bytea = rb_build(s.values)::bytea) AS same_bytes
FROM inter x, inter y,
LATERAL (SELECT count(*) AS n, coalesce(array_agg(v ORDER BY v), '{}') AS values
         FROM (SELECT rb_iterate(x.b) INTERSECT SELECT rb_iterate(y.b)) i(v)) s;
SELECT id, rb_cardinality(b) = (SELECT count(*) FROM rb_iterate(b)) AS cardinality_agrees FROM inter ORDER BY id;
-- the other fused counts and comparisons, also read in place, against the values as rows
SELECT count(*) AS pairs,
       count(*) FILTER (WHERE rb_or_cardinality(x.b, y.b) = s.nu AND rb_xor_cardinality(x.b, y.b) = s.nx + s.ny
                          AND rb_andnot_cardinality(x.b, y.b) = s.nx) AS counts_agree,
       count(*) FILTER (WHERE (x.b = y.b) = (s.nx = 0 AND s.ny = 0) AND (x.b <> y.b) = (s.nx > 0 OR s.ny > 0)
                          AND (x.b @> y.b) = (s.ny = 0) AND (x.b <@ y.b) = (s.nx = 0)) AS comparisons_agree,
       count(*) FILTER (WHERE rb_jaccard_dist(x.b, y.b) = CASE WHEN s.nu = 0 THEN 0 ELSE 1 - s.n::float8 / s.nu END) AS jaccard_agrees,
       count(*) FILTER (WHERE x.b = y.b) AS equal_pairs
FROM inter x, inter y,
LATERAL (SELECT count(*) FILTER (WHERE p.v IS NOT NULL AND q.v IS NOT NULL) AS n, count(*) AS nu,
                count(*) FILTER (WHERE q.v IS NULL) AS nx, count(*) FILTER (WHERE p.v IS NULL) AS ny
         FROM rb_iterate(x.b) p(v) FULL JOIN rb_iterate(y.b) q(v) ON p.v = q.v) s;
SELECT rb_to_array(b & '{0,1,2,3,4}') FROM inter WHERE id = 100;
-- the same set in two layouts (a run container, an array container) is equal
SELECT b = '{1,2,3}' AS run_equals_array, b <> '{1,2,3}' AS differs, b @> '{1,3}' AS contains, '{1,2,3,4}' <@ b AS contained
FROM inter WHERE id = 100;
DROP TABLE inter;
