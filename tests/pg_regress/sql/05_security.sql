-- segplan runs as the caller: grants and row-level security of the customer's tables apply,
-- and hostile names and values are only ever data.
SET timezone = 'UTC';
CREATE ROLE seg_reader;
CREATE ROLE seg_nobody;
GRANT USAGE ON SCHEMA demo TO seg_reader, seg_nobody;
-- segplan's functions are for its roles (sql/security.sql); the data is the customer's to grant
GRANT segplan_analyst TO seg_reader, seg_nobody;
GRANT SELECT ON segplan.contact_source, segplan.event_sources TO seg_reader, seg_nobody;
GRANT SELECT ON demo.contacts TO seg_reader;
-- RLS on the customer's contacts: seg_reader sees Italian contacts only
ALTER TABLE demo.contacts ENABLE ROW LEVEL SECURITY;
CREATE POLICY italy ON demo.contacts FOR SELECT TO seg_reader USING (country = 'IT');
SELECT segplan.count('gender = ''F''') AS as_owner;
SET ROLE seg_reader;
SELECT segplan.count('gender = ''F''') AS as_reader_italy_only;
SELECT (SELECT count(*) FROM demo.contacts WHERE gender = 'F') AS by_hand_as_reader;
RESET ROLE;
SET ROLE seg_nobody;
SELECT segplan.count('gender = ''F''');
RESET ROLE;
DROP POLICY italy ON demo.contacts;
ALTER TABLE demo.contacts DISABLE ROW LEVEL SECURITY;
-- hostile values and names
SELECT segplan.count($$first_name = 'x''; DROP TABLE demo.contacts; --'$$) AS quoted_value;
SELECT segplan.count('{"attr": "x\"; drop table demo.contacts; --", "op": "eq", "value": 1}'::jsonb);
SELECT segplan.count($$first_name = '$$ || '$$' || $$'$$) AS dollar_quotes;
SELECT segplan.count(E'first_name = \'a\\b\'') AS backslash;
SELECT count(*) > 0 AS contacts_still_there FROM demo.contacts;
-- a generated query holds no user value: only $n placeholders
SELECT segplan.to_sql($$first_name = 'Robert''); DROP TABLE x; --' and city in ('a', 'b')$$);
-- operators and functions a user creates in another schema are not used by segplan
CREATE SCHEMA evil;
CREATE FUNCTION evil.texteq(text, text) RETURNS boolean LANGUAGE sql AS 'SELECT true';
CREATE OPERATOR evil.= (LEFTARG = text, RIGHTARG = text, FUNCTION = evil.texteq);
SET search_path = evil, public;
SELECT segplan.count($$country = 'FR'$$) = (SELECT count(*) FROM demo.contacts WHERE country OPERATOR(pg_catalog.=) 'FR') AS not_captured;
RESET search_path;
DROP SCHEMA evil CASCADE;
DROP OWNED BY seg_reader, seg_nobody;
DROP ROLE seg_reader;
DROP ROLE seg_nobody;
