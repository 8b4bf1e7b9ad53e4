-- jsonb overloads and documentation; runs last in the install script.

CREATE FUNCTION segplan.count(rule jsonb, as_of timestamptz DEFAULT pg_catalog.now()) RETURNS bigint
LANGUAGE sql STABLE STRICT AS 'SELECT segplan.count($1::text, $2)';
CREATE FUNCTION segplan.members(rule jsonb, as_of timestamptz DEFAULT pg_catalog.now()) RETURNS SETOF bigint
LANGUAGE sql STABLE STRICT AS 'SELECT segplan.members($1::text, $2)';
CREATE FUNCTION segplan.members_text(rule jsonb, as_of timestamptz DEFAULT pg_catalog.now()) RETURNS SETOF text
LANGUAGE sql STABLE STRICT AS 'SELECT segplan.members_text($1::text, $2)';
CREATE FUNCTION segplan.count_steps(rule jsonb, as_of timestamptz DEFAULT pg_catalog.now())
RETURNS TABLE (step int, path text, label text, matched bigint, running bigint)
LANGUAGE sql STABLE STRICT AS 'SELECT * FROM segplan.count_steps($1::text, $2)';
CREATE FUNCTION segplan.to_sql(rule jsonb) RETURNS text
LANGUAGE sql STABLE STRICT AS 'SELECT segplan.to_sql($1::text)';
CREATE FUNCTION segplan.validate(rule jsonb) RETURNS jsonb
LANGUAGE sql STABLE STRICT AS 'SELECT segplan.validate($1::text)';
CREATE FUNCTION segplan.format(rule jsonb) RETURNS text
LANGUAGE sql IMMUTABLE STRICT AS 'SELECT segplan.format($1::text)';

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
COMMENT ON FUNCTION segplan.to_sql(text) IS 'The SQL segplan runs for a rule, with $n placeholders ($1 is as_of).';
COMMENT ON FUNCTION segplan.to_sql(jsonb) IS 'The SQL segplan runs for a JSON rule.';
COMMENT ON FUNCTION segplan.validate(text) IS 'All problems of a rule with their JSON paths, without raising.';
COMMENT ON FUNCTION segplan.validate(jsonb) IS 'All problems of a JSON rule with their JSON paths, without raising.';
COMMENT ON FUNCTION segplan.parse(text) IS 'The JSON form of a rule written in the text form.';
COMMENT ON FUNCTION segplan.format(text) IS 'The text form of a rule (normalized).';
COMMENT ON FUNCTION segplan.format(jsonb) IS 'The text form of a JSON rule.';
