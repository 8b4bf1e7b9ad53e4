-- segplan's own tables. Runs first in the install script, with search_path = segplan.
-- Everything is schema-qualified; nothing outside schema segplan is created or replaced.

-- The one contact source: a table or view of the customer's, and its key column.
CREATE TABLE segplan.contact_source (
    singleton     boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    relid         pg_catalog.regclass NOT NULL,
    key_column    pg_catalog.name NOT NULL,
    registered_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
    registered_by pg_catalog.name NOT NULL DEFAULT CURRENT_USER
);

-- Event sources: any table or view whose rows belong to a contact.
CREATE TABLE segplan.event_sources (
    name           text PRIMARY KEY CHECK (name OPERATOR(pg_catalog.~) '^[a-z_][a-z0-9_]{0,62}$'),
    relid          pg_catalog.regclass NOT NULL,
    contact_column pg_catalog.name NOT NULL,
    time_column    pg_catalog.name,
    registered_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
    registered_by  pg_catalog.name NOT NULL DEFAULT CURRENT_USER
);

-- Registrations are part of a dump of the database.
SELECT pg_catalog.pg_extension_config_dump('segplan.contact_source', '');
SELECT pg_catalog.pg_extension_config_dump('segplan.event_sources', '');

-- segplan works without pg_cron; say how scheduling works then (a WARNING: extension scripts
-- run with client_min_messages = warning, so a NOTICE would never be seen).
DO $$
BEGIN
  IF NOT EXISTS (SELECT 1 FROM pg_catalog.pg_extension WHERE extname OPERATOR(pg_catalog.=) 'pg_cron') THEN
    RAISE WARNING 'segplan: pg_cron is not installed in this database; segments and counts work, scheduled plans need a scheduler'
      USING HINT = 'To schedule with pg_cron: shared_preload_libraries = ''pg_cron'', cron.database_name = this database, then CREATE EXTENSION pg_cron. Any other scheduler can call segplan''s functions instead (see the README, "Scheduling").';
  END IF;
END
$$;
