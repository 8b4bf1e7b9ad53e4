-- Bitmap aggregates: results equal plain SQL, NULL and empty behave, and a parallel plan splits the work.
SET search_path = segplan, public;
CREATE TABLE agg_t AS
SELECT g AS id, g % 7 AS grp, rb_build(ARRAY[g, g + 1, g % 1000]) AS b FROM generate_series(1, 200000) g;
INSERT INTO agg_t VALUES (NULL, 99, NULL);
ANALYZE agg_t;
SELECT rb_cardinality(rb_build_agg(id)) = count(DISTINCT id) AS build_ok FROM agg_t;
SELECT rb_or_cardinality_agg(b) = (SELECT count(DISTINCT v) FROM agg_t, rb_iterate(b) v) AS or_ok FROM agg_t;
-- xor keeps the values in an odd number of bitmaps; and keeps those in all of them
SELECT rb_xor_cardinality_agg(b) = (SELECT count(*) FROM (SELECT v FROM agg_t, rb_iterate(b) v GROUP BY v HAVING count(*) % 2 = 1) x) AS xor_ok,
       rb_and_cardinality_agg(b) = (SELECT count(*) FROM (SELECT v FROM agg_t, rb_iterate(b) v GROUP BY v HAVING count(*) = (SELECT count(b) FROM agg_t)) x) AS and_ok
FROM agg_t;
SELECT grp, rb_cardinality(rb_or_agg(b)) AS or_card, rb_and_agg(b) AS "and", rb_xor_cardinality_agg(b) AS xor_card
FROM agg_t WHERE grp IN (0, 1, 99) GROUP BY grp ORDER BY grp;
SELECT rb_and_agg(b), rb_and_cardinality_agg(b), rb_xor_agg(b) FROM (VALUES ('{1,2,3}'::roaringbitmap), ('{2,3,4}'), ('{3,9}')) v(b);
-- no rows, or only NULLs: NULL, like sum()
SELECT rb_build_agg(id) IS NULL AS build_null, rb_or_agg(b) IS NULL AS or_null, rb_or_cardinality_agg(b) IS NULL AS card_null
FROM agg_t WHERE id IS NULL;
SELECT rb_or_agg(b) FROM agg_t WHERE false;
-- forced parallel: a Partial Aggregate under a Gather, and the same answers
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
EXPLAIN (COSTS OFF) SELECT rb_or_agg(b) FROM agg_t;
SELECT rb_cardinality(rb_build_agg(id)) AS build, rb_or_cardinality_agg(b) AS "or", rb_and_cardinality_agg(b) AS "and",
       rb_xor_cardinality_agg(b) AS "xor" FROM agg_t;
RESET max_parallel_workers_per_gather;
SELECT rb_cardinality(rb_build_agg(id)) AS build, rb_or_cardinality_agg(b) AS "or", rb_and_cardinality_agg(b) AS "and",
       rb_xor_cardinality_agg(b) AS "xor" FROM agg_t;
-- values met out of order (rows updated after loading), repeated, dense and sparse, negative,
-- serial and parallel, one state per group: the members are the distinct values
CREATE TABLE order_t AS
SELECT CASE WHEN g % 10 = 0 THEN (g::bigint * 7919 % 300000)::int WHEN g % 97 = 0 THEN -g WHEN g % 5 = 0 THEN g * 1000 ELSE g END AS id,
       g % 13 AS grp FROM generate_series(1, 300000) g;
ANALYZE order_t;
SELECT ARRAY(SELECT rb_iterate(rb_build_agg(id)) ORDER BY 1) = (SELECT array_agg(DISTINCT id ORDER BY id) FROM order_t) AS members_ok FROM order_t;
SELECT count(*) AS groups, count(*) FILTER (WHERE ok) AS groups_ok FROM (
  SELECT ARRAY(SELECT rb_iterate(rb_build_agg(id)) ORDER BY 1) = array_agg(DISTINCT id ORDER BY id) AS ok FROM order_t GROUP BY grp) x;
SET parallel_setup_cost = 0; SET parallel_tuple_cost = 0; SET min_parallel_table_scan_size = 0;
SET max_parallel_workers_per_gather = 2;
SELECT ARRAY(SELECT rb_iterate(rb_build_agg(id)) ORDER BY 1) = (SELECT array_agg(DISTINCT id ORDER BY id) FROM order_t) AS parallel_members_ok FROM order_t;
SELECT ARRAY(SELECT rb64_iterate(rb64_build_agg(id::bigint * 4294967296 + grp)) ORDER BY 1)
     = (SELECT array_agg(DISTINCT id::bigint * 4294967296 + grp ORDER BY id::bigint * 4294967296 + grp) FROM order_t) AS parallel_members64_ok FROM order_t;
RESET parallel_setup_cost; RESET parallel_tuple_cost; RESET min_parallel_table_scan_size; RESET max_parallel_workers_per_gather;
DROP TABLE order_t;
-- a 64Ki-block of exactly 4096 values (gathered as bits) is written as the array the portable
-- format reads it as: the checked bytea input takes it back
SELECT n, rb_cardinality(rb_build_agg(g * 15)::bytea::roaringbitmap) AS n32,
       rb64_cardinality(rb64_build_agg(g * 15)::bytea::roaringbitmap64) AS n64
FROM (VALUES (4095), (4096), (4097)) v(n), LATERAL generate_series(0, n - 1) g GROUP BY n ORDER BY n;
-- a support function called directly is an error, not a crash
SELECT rb_or_trans(NULL::internal, '{1}'::roaringbitmap);
DROP TABLE agg_t;
