-- Stored segments: save with versions, references (live, cycle-free), refresh and history across
-- inserts and deletes, members live and as refreshed, overlap, published views, bad input.
SET timezone = 'UTC';
SET client_min_messages = warning;
SELECT segplan.register_contacts('demo.contacts', 'id');
SELECT segplan.register_events('purchase_lines', 'demo.purchase_lines', 'contact_id', 'ordered_at');
RESET client_min_messages;

SELECT segplan.save_segment('fr', $$country = 'FR'$$, 'contacts living in France') AS fr_id \gset
SELECT segplan.save_segment('fr_optin', '{"all": [{"segment": "fr"}, {"attr": "email_opt_in", "op": "eq", "value": true}]}'::jsonb) AS optin_id \gset
SELECT segplan.save_segment('big_buyers', $$purchase_lines(sum(line_total) > 2000)$$, brand => 'acme');
-- saving the same rule again keeps the version; a new rule is a new version, with who and when
SELECT segplan.save_segment('fr', $$country = 'FR'$$) = :fr_id AS same_id;
SELECT name, brand, description, rule_text, version, size, owner = current_user AS mine, references_segments, published_as
FROM segplan.segments ORDER BY name;
SELECT segplan.save_segment('fr', $$country = 'FR' and city <> 'Paris'$$) = :fr_id AS same_id_new_version;
SELECT v.version, v.rule_text, v.saved_by = current_user AS by_me FROM segplan.segment_versions v
JOIN segplan.segment s ON s.id = v.segment_id WHERE s.name = 'fr' ORDER BY v.version;

-- a reference means the referenced segment's current rule, live
SELECT segplan.count($$segment('fr_optin')$$) AS via_reference,
       (SELECT count(*) FROM demo.contacts WHERE country = 'FR' AND city <> 'Paris' AND email_opt_in) AS by_hand;
SELECT segplan.format(segplan.segment_rule('fr_optin'));
SELECT segplan.save_segment('fr', $$country = 'FR'$$) = :fr_id AS back_to_all_of_france;
SELECT segplan.count($$segment('fr_optin')$$) = (SELECT count(*) FROM demo.contacts WHERE country = 'FR' AND email_opt_in) AS follows_the_change;
SELECT segplan.count($$segment('fr_optin')$$) = segplan.count($$segment('fr_optin')$$) AS stable;
SET segplan.engine = sql;
SELECT segplan.count($$segment('fr') and not segment('fr_optin')$$) = (SELECT count(*) FROM demo.contacts WHERE country = 'FR' AND email_opt_in IS NOT TRUE) AS sql_engine_too;
RESET segplan.engine;
SELECT segplan.to_sql($$segment('fr')$$) ~ 'country' AS to_sql_expands;
-- the text and JSON forms keep the reference itself
SELECT segplan.parse($$segment('fr') and email_opt_in$$);

-- cycles are refused at save time, and nothing is saved
SELECT segplan.save_segment('fr', $$segment('fr_optin') or country = 'BE'$$);
SELECT segplan.save_segment('loop', $$segment('loop')$$);
SELECT count(*) AS loop_saved FROM segplan.segments WHERE name = 'loop';
SELECT segplan.validate($$segment('nope') and segment('fr')$$);

-- refresh and history across inserts and deletes
SELECT segplan.refresh_segment('fr') = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS first_size_ok;
INSERT INTO demo.contacts (id, country, created_at, email_opt_in, sms_opt_in, push_opt_in)
SELECT 950000 + i, 'FR', '2026-01-01', true, false, false FROM generate_series(1, 3) i;
DELETE FROM demo.contacts WHERE id IN (SELECT id FROM demo.contacts WHERE country = 'FR' AND id < 950000 ORDER BY id LIMIT 2);
SELECT segplan.refresh_segment('fr') = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS second_size_ok;
UPDATE demo.contacts SET country = 'DE' WHERE id = 950001;
SELECT segplan.refresh_segment('fr') = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS third_size_ok;
SELECT version, size - lag(size) OVER (ORDER BY refreshed_at) AS change, entered, exited
FROM segplan.segment_history('fr') ORDER BY refreshed_at;
SELECT refreshed_at IS NOT NULL AS refreshed, size = (SELECT count(*) FROM demo.contacts WHERE country = 'FR') AS size_ok
FROM segplan.segments WHERE name = 'fr';
-- members as refreshed stay put; live members follow the data
UPDATE demo.contacts SET country = 'DE' WHERE id = 950002;
SELECT (SELECT count(*) FROM segplan.segment_members('fr', live => false)) - (SELECT count(*) FROM segplan.segment_members('fr')) AS refreshed_minus_live;
SELECT bool_and(m IN (SELECT id FROM demo.contacts WHERE country = 'FR')) AS live_members_ok FROM segplan.segment_members('fr') m;
SELECT * FROM segplan.segment_members('big_buyers', false);
SELECT (SELECT array_agg(k::bigint ORDER BY k::bigint) FROM segplan.segment_members_text('fr', false) k)
     = (SELECT array_agg(m ORDER BY m) FROM segplan.segment_members('fr', false) m) AS stored_text_keys_ok,
       (SELECT count(*) FROM segplan.segment_members_text('fr')) = (SELECT count(*) FROM segplan.segment_members('fr')) AS live_text_keys_ok;
SELECT segplan.refresh_all() AS refreshed_segments;
SELECT name, size > 0 AS nonempty FROM segplan.segments ORDER BY name;

-- overlap: pairwise intersections of the live bitmaps
SELECT segment_a, segment_b, overlap = (SELECT count(*) FROM demo.contacts c WHERE c.country = 'FR' AND c.email_opt_in) AS overlap_ok,
       round(jaccard::numeric, 6) = round(size_b::numeric / size_a, 6) AS nested_jaccard_ok
FROM segplan.segment_overlap(ARRAY['fr', 'fr_optin']);
SELECT count(*) AS pairs FROM segplan.segment_overlap(ARRAY['fr', 'fr_optin', 'big_buyers']);

-- published views: every column of the contact source, live, replaced in place, guarded
SELECT segplan.publish_segment('fr_optin');
SELECT count(*) = (SELECT count(*) FROM demo.contacts WHERE country = 'FR' AND email_opt_in) AS view_rows_ok FROM segments.fr_optin;
SELECT (SELECT array_agg(column_name::text || ':' || data_type ORDER BY ordinal_position) FROM information_schema.columns
        WHERE table_schema = 'segments' AND table_name = 'fr_optin')
     = (SELECT array_agg(column_name::text || ':' || data_type ORDER BY ordinal_position) FROM information_schema.columns
        WHERE table_schema = 'demo' AND table_name = 'contacts') AS same_columns_and_types;
SELECT obj_description('segments.fr_optin'::regclass);
SELECT segplan.publish_segment('fr_optin') AS republished;
SELECT published_as FROM segplan.segments WHERE name = 'fr_optin';
CREATE TABLE segments.fr (x int);
SELECT segplan.publish_segment('fr');
SELECT segplan.publish_segment('fr', 'bi') AS elsewhere;
SELECT segplan.unpublish_segment('big_buyers');
-- a schema is a name as it is (a dot or a quote in it was 42602 "invalid name syntax"); none is 22023
SELECT segplan.publish_segment('big_buyers', 'bi.2026 "q"') AS odd_schema;
SELECT count(*) = (SELECT count(*) FROM segplan.members($$segment('big_buyers')$$)) AS odd_schema_rows FROM "bi.2026 ""q""".big_buyers;
SELECT segplan.unpublish_segment('big_buyers');
DROP SCHEMA "bi.2026 ""q""";
SELECT segplan.publish_segment('big_buyers', '');
SELECT segplan.publish_segment('big_buyers', NULL);
-- a reader without SELECT on the contacts gets nothing through the view (it runs as the reader)
CREATE ROLE seg_bi;
GRANT USAGE ON SCHEMA segments, segplan TO seg_bi;
GRANT SELECT ON segments.fr_optin TO seg_bi;
SET ROLE seg_bi;
SELECT count(*) FROM segments.fr_optin;
RESET ROLE;

-- bad input: nothing half-created
SELECT segplan.save_segment('Bad Name', $$country = 'FR'$$);
SELECT segplan.save_segment('x"; drop table demo.contacts; --', $$country = 'FR'$$);
SELECT segplan.save_segment('big_buyers', $$country = 'FR'$$, brand => 'other');
SELECT segplan.save_segment('typo', $$countri = 'FR'$$);
SELECT segplan.refresh_segment('nope');
SELECT segplan.drop_segment('fr');
SELECT * FROM segplan.segment_history('nope');
SELECT count(*) AS segments FROM segplan.segments;

-- dropping removes versions, history and the published view
SELECT segplan.drop_segment('fr_optin');
SELECT to_regclass('segments.fr_optin') AS view_gone, (SELECT count(*) FROM segplan.segment_versions v
  WHERE NOT EXISTS (SELECT 1 FROM segplan.segment s WHERE s.id = v.segment_id)) AS orphan_versions;
SELECT segplan.drop_segment('fr');
SELECT to_regclass('bi.fr') AS bi_view_gone, name FROM segplan.segments;

DELETE FROM demo.contacts WHERE id > 950000;
DROP TABLE segments.fr;
DROP SCHEMA segments, bi;
REVOKE USAGE ON SCHEMA segplan FROM seg_bi;
DROP ROLE seg_bi;
SELECT segplan.drop_segment('big_buyers');
