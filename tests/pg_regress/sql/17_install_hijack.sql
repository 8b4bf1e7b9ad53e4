-- Install hijack: objects prepared under segplan's names before CREATE EXTENSION are refused,
-- never adopted (PostgreSQL's "Security Considerations for Extensions"). In a database of its own.
SET client_min_messages = warning;
DROP DATABASE IF EXISTS segplan_hijack;
DROP ROLE IF EXISTS hijacker;
RESET client_min_messages;
CREATE ROLE hijacker;
CREATE DATABASE segplan_hijack;
\c segplan_hijack
SET client_min_messages = error;
-- a schema named segplan that someone else owns, with a function waiting in it
CREATE SCHEMA segplan AUTHORIZATION hijacker;
SET ROLE hijacker;
CREATE FUNCTION segplan.count(rule text) RETURNS bigint LANGUAGE sql AS 'SELECT 42::bigint';
RESET ROLE;
CREATE EXTENSION segplan;
-- the installer's own schema, still holding that function
ALTER SCHEMA segplan OWNER TO CURRENT_USER;
CREATE EXTENSION segplan;
-- empty now, but someone else may create in it
DROP FUNCTION segplan.count(text);
GRANT CREATE ON SCHEMA segplan TO hijacker;
CREATE EXTENSION segplan;
REVOKE CREATE ON SCHEMA segplan FROM hijacker;
-- roles with segplan's names that segplan would not have made: one that can log in, one that is
-- not segplan's, one that is a member of another role
SELECT shobj_description('segplan_analyst'::regrole, 'pg_authid') AS marker \gset
ALTER ROLE segplan_analyst LOGIN;
CREATE EXTENSION segplan;
ALTER ROLE segplan_analyst NOLOGIN;
COMMENT ON ROLE segplan_analyst IS 'somebody''s';
CREATE EXTENSION segplan;
COMMENT ON ROLE segplan_analyst IS :'marker';
GRANT hijacker TO segplan_planner;
CREATE EXTENSION segplan;
REVOKE hijacker FROM segplan_planner;
-- segplan's own roles from another database are adopted; the empty schema it left is reused
CREATE EXTENSION segplan;
SELECT count(*) > 100 AS installed FROM pg_proc WHERE pronamespace = 'segplan'::regnamespace;
DROP EXTENSION segplan;
SELECT count(*) AS left_behind FROM pg_proc WHERE pronamespace = 'segplan'::regnamespace;
CREATE EXTENSION segplan;
SELECT segplan.rb_cardinality('{1,2,3}') AS works;
\c segplan_regress
SET client_min_messages = warning;
DROP DATABASE segplan_hijack;
DROP ROLE hijacker;
