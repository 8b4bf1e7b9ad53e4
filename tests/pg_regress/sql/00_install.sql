-- segplan installs without pg_cron (a WARNING says how scheduling works then), and with it.
CREATE EXTENSION segplan;
SELECT extname FROM pg_extension WHERE extname IN ('segplan', 'pg_cron') ORDER BY 1;
DROP EXTENSION segplan;
SET client_min_messages = warning;
CREATE EXTENSION pg_cron;
RESET client_min_messages;
CREATE EXTENSION segplan;
SELECT extname FROM pg_extension WHERE extname IN ('segplan', 'pg_cron') ORDER BY 1;
-- every public function is documented
SELECT p.oid::regprocedure AS function, d.description IS NOT NULL AS documented
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
LEFT JOIN pg_description d ON d.objoid = p.oid AND d.classoid = 'pg_proc'::regclass
WHERE n.nspname = 'segplan' ORDER BY function::text;
-- functions reading customer data run as the caller, with a pinned search_path
SELECT proname, prosecdef, proconfig FROM pg_proc WHERE pronamespace = 'segplan'::regnamespace
  AND prolang <> (SELECT oid FROM pg_language WHERE lanname = 'sql') ORDER BY 1;
