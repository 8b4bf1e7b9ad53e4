-- segplan 0.1.0 -> 0.2.0 (ALTER EXTENSION segplan UPDATE). `make upgrade` installs 0.1.0, runs
-- this, and compares every object of the extension with a fresh install of 0.2.0.
-- Everything is schema-qualified; the search_path is segplan, pg_temp while it runs.

-- configure_rfm: the look-back parameter is `lookback` (`window` is a reserved word, so named
-- notation needed "window" => …). A parameter cannot be renamed in place: the function is made
-- again, with its comment and its grant.
DROP FUNCTION segplan.configure_rfm(text, text, text, interval, timestamptz);
CREATE FUNCTION segplan.configure_rfm(
	"event" TEXT,
	"amount_property" TEXT,
	"occasion_property" TEXT DEFAULT NULL,
	"lookback" interval DEFAULT '2 years',
	"as_of" timestamp with time zone DEFAULT NULL
) RETURNS jsonb
VOLATILE
SET search_path TO pg_catalog, pg_temp
LANGUAGE c
AS 'MODULE_PATHNAME', 'configure_rfm_wrapper';
COMMENT ON FUNCTION segplan.configure_rfm(text, text, text, interval, timestamptz) IS
  'Sets where RFM reads purchases: an event source, its amount property, what makes one occasion, the look-back window, an optional fixed as_of.';
REVOKE EXECUTE ON FUNCTION segplan.configure_rfm(text, text, text, interval, timestamptz) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION segplan.configure_rfm(text, text, text, interval, timestamptz) TO segplan_admin;
