-- segplan installs without pg_cron (a WARNING says how scheduling works then), and with it.
CREATE EXTENSION segplan;
SELECT extname FROM pg_extension WHERE extname IN ('segplan', 'pg_cron') ORDER BY 1;
DROP EXTENSION segplan;
SET client_min_messages = warning;
CREATE EXTENSION pg_cron;
RESET client_min_messages;
CREATE EXTENSION segplan;
SELECT extname FROM pg_extension WHERE extname IN ('segplan', 'pg_cron') ORDER BY 1;
-- every function is documented (COMMENT ON): the list of undocumented ones is empty
SELECT p.oid::regprocedure AS undocumented
FROM pg_proc p LEFT JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_proc'::regclass
WHERE p.pronamespace = 'segplan'::regnamespace AND d.description IS NULL ORDER BY 1;
SELECT count(*) AS functions FROM pg_proc WHERE pronamespace = 'segplan'::regnamespace;
-- functions reading data or the catalog run as the caller, with a pinned search_path
-- (immutable ones, such as the bitmap functions, compute from their arguments only)
SELECT proname, prosecdef, proconfig FROM pg_proc WHERE pronamespace = 'segplan'::regnamespace
  AND prolang <> (SELECT oid FROM pg_language WHERE lanname = 'sql') AND provolatile <> 'i' ORDER BY 1;
SELECT count(*) AS security_definer_functions FROM pg_proc WHERE pronamespace = 'segplan'::regnamespace AND prosecdef;
