"""segplan from an application's side: psycopg over the Unix socket, values as bind parameters.

Run by `make client` (part of `make test`) against the regression database, which holds the
generated demo data. Prints 'client: N passed, N failed'.
"""
import json
import os
import subprocess
import sys
import threading
import time
import traceback

import psycopg

AS_OF = "2026-11-01 00:00:00+00"
results = []


def test(fn):
    try:
        with psycopg.connect(autocommit=True) as conn:
            fn(conn)
        results.append((fn.__name__, None))
    except Exception:  # noqa: BLE001 - report every failure, keep going
        results.append((fn.__name__, traceback.format_exc()))
    return fn


def setup(conn):
    conn.execute("SET client_min_messages = error")
    conn.execute("CREATE EXTENSION IF NOT EXISTS segplan")
    conn.execute("DELETE FROM segplan.event_sources")
    conn.execute("SELECT segplan.register_contacts('demo.contacts', 'id')")
    conn.execute("SELECT segplan.register_events('purchase_lines', 'demo.purchase_lines', 'contact_id', 'ordered_at')")


@test
def count_with_a_bound_rule(conn):
    setup(conn)
    rule = "country = 'FR' and purchase_lines(within last 1 years)"
    (n,) = conn.execute("SELECT segplan.count(%s, %s)", (rule, AS_OF)).fetchone()
    (by_hand,) = conn.execute(
        "SELECT count(*) FROM demo.contacts c WHERE country = 'FR' AND EXISTS (SELECT FROM demo.purchase_lines p "
        "WHERE p.contact_id = c.id AND p.ordered_at BETWEEN %s::timestamptz - interval '1 year' AND %s)",
        (AS_OF, AS_OF),
    ).fetchone()
    assert n == by_hand and n > 0, (n, by_hand)


@test
def json_rule_as_jsonb_parameter(conn):
    setup(conn)
    from psycopg.types.json import Jsonb

    rule = {"all": [{"attr": "country", "op": "in", "value": ["IT", "ES"]}, {"attr": "email_opt_in", "op": "eq", "value": True}]}
    (n,) = conn.execute("SELECT segplan.count(%s, %s)", (Jsonb(rule), AS_OF)).fetchone()
    (by_hand,) = conn.execute("SELECT count(*) FROM demo.contacts WHERE country IN ('IT', 'ES') AND email_opt_in").fetchone()
    assert n == by_hand, (n, by_hand)


@test
def members_join_contacts_like_a_table(conn):
    setup(conn)
    rows = conn.execute(
        "SELECT c.id, c.email FROM demo.contacts c JOIN segplan.members(%s, %s) m ON c.id = m ORDER BY c.id LIMIT 5",
        ("city = 'Rome'", AS_OF),
    ).fetchall()
    assert len(rows) == 5 and all(isinstance(r[0], int) for r in rows), rows


@test
def errors_carry_sqlstate_detail_and_hint(conn):
    setup(conn)
    try:
        conn.execute("SELECT segplan.count(%s)", ('{"attr": "countri", "op": "eq", "value": "FR"}',))
    except psycopg.errors.InvalidParameterValue as e:
        assert e.sqlstate == "22023"
        assert e.diag.message_detail == "at $.attr", e.diag.message_detail
        assert "country" in (e.diag.message_hint or ""), e.diag.message_hint
    else:
        raise AssertionError("no error raised")


@test
def funnel_rows_for_a_ui(conn):
    setup(conn)
    rows = conn.execute(
        "SELECT step, path, matched, running FROM segplan.count_steps(%s, %s)",
        ("country = 'FR' and gender = 'F' and purchase_lines()", AS_OF),
    ).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3]
    assert [r[1] for r in rows] == ["$.all[0]", "$.all[1]", "$.all[2]"]
    running = [r[3] for r in rows]
    assert running == sorted(running, reverse=True) and running[0] == rows[0][2], rows


@test
def a_ui_builds_pickers_from_the_model(conn):
    setup(conn)
    (model,) = conn.execute("SELECT segplan.model()").fetchone()
    attrs = {a["name"]: a["kind"] for a in model["contacts"]["attributes"]}
    assert attrs["birth_date"] == "date" and attrs["country"] == "text", attrs
    assert any(e["name"] == "purchase_lines" for e in model["events"])


@test
def a_bi_tool_lists_and_reads_published_segments(conn):
    setup(conn)
    conn.execute("SELECT segplan.save_segment('vip_fr', %s, 'French buyers of the last year')",
                 ("country = 'FR' and purchase_lines(within last 1 years)",))
    conn.execute("SELECT segplan.publish_segment('vip_fr')")
    # what Metabase/Superset/SQLAlchemy's inspector do: reflect the schema, then select
    views = conn.execute("SELECT table_name FROM information_schema.views WHERE table_schema = 'segments'").fetchall()
    assert ("vip_fr",) in views, views
    cols = conn.execute("SELECT column_name, data_type FROM information_schema.columns "
                        "WHERE table_schema = 'segments' AND table_name = 'vip_fr' ORDER BY ordinal_position").fetchall()
    assert cols[0] == ("id", "bigint") and ("birth_date", "date") in cols and ("email_opt_in", "boolean") in cols, cols
    cur = conn.execute("SELECT * FROM segments.vip_fr ORDER BY id LIMIT 5")
    assert [d.name for d in cur.description] == [c[0] for c in cols]
    rows = cur.fetchall()
    assert rows and all(r[[c[0] for c in cols].index("country")] == "FR" for r in rows), rows
    (n,) = conn.execute("SELECT count(*) FROM segments.vip_fr").fetchone()
    (live,) = conn.execute("SELECT count(*) FROM segplan.segment_members('vip_fr')").fetchone()
    assert n == live > 0, (n, live)


# what must come back identical from a dump: segments, policies, plans, runs, brands, the audit log
SNAPSHOT = """SELECT jsonb_build_object(
  'segments', (SELECT jsonb_agg(to_jsonb(s) ORDER BY s.name) FROM segplan.segments s),
  'policies', (SELECT jsonb_agg(jsonb_build_array(name, spec, brands, version, created_by) ORDER BY name) FROM segplan.policies),
  'plans', (SELECT jsonb_agg(jsonb_build_array(p.id, p.name, p.status, p.brand, v.version, v.spec) ORDER BY p.id, v.version)
            FROM segplan.plans p JOIN segplan.plan_versions v ON v.plan_id = p.id),
  'runs', (SELECT jsonb_agg(jsonb_build_array(r.id, r.plan_id, r.slot, r.status, r.sent, (SELECT count(*) FROM segplan.run_contacts c WHERE c.run_id = r.id))
           ORDER BY r.id) FROM segplan.plan_runs r),
  'brands', (SELECT jsonb_agg(jsonb_build_array(role::text, brand, outlets) ORDER BY role::text, brand) FROM segplan.brand_grants),
  'audit', (SELECT jsonb_agg(jsonb_build_array(id, actor, action, object_kind, object_name, brand) ORDER BY id) FROM segplan.audit_log))"""


@test
def segments_plans_and_policies_survive_dump_and_restore(conn):
    setup(conn)
    conn.execute("SELECT segplan.save_segment('dump_fr', %s, brand => 'acme')", ("country = 'FR' and email_opt_in",))
    conn.execute("SELECT segplan.refresh_segment('dump_fr')")
    conn.execute("SELECT segplan.publish_segment('dump_fr')")
    conn.execute("SELECT segplan.create_policy('dump_cap', %s::jsonb)", (json.dumps({"scope": {"brands": ["acme"]}, "rules": [{"max_contacts": 2, "per": {"days": 7}}]}),))
    (plan_id,) = conn.execute("SELECT segplan.create_plan('dump_plan', %s::jsonb)", (json.dumps(
        {"segment": "dump_fr", "channel": "email", "brand": "acme", "policies": ["dump_cap"], "schedule": {"once": "2026-05-04 09:00", "time_zone": "UTC"}}),)).fetchone()
    conn.execute("SELECT segplan.run_plan(%s, '2026-05-04 09:00+00')", (plan_id,))
    conn.execute("SELECT segplan.grant_brand('segplan_planner', 'acme', '{paris}')")
    (before,) = conn.execute(SNAPSHOT).fetchone()
    (n,) = conn.execute("SELECT count(*) FROM segments.dump_fr").fetchone()
    src = os.environ.get("PGDATABASE", "segplan_regress")
    conn.execute("DROP DATABASE IF EXISTS segplan_restore WITH (FORCE)")
    conn.execute("CREATE DATABASE segplan_restore")
    try:
        dump = subprocess.run(["pg_dump", "--extension=segplan", "--no-owner", src], check=True, capture_output=True).stdout
        subprocess.run(["psql", "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", "segplan_restore"], input=dump, check=True, capture_output=True)
        with psycopg.connect(dbname="segplan_restore", autocommit=True) as restored:
            (m,) = restored.execute("SELECT count(*) FROM segments.dump_fr").fetchone()
            seg = restored.execute("SELECT rule_text, version, size FROM segplan.segments WHERE name = 'dump_fr'").fetchone()
            hist = restored.execute("SELECT count(*) FROM segplan.segment_history('dump_fr')").fetchone()[0]
            (after,) = restored.execute(SNAPSHOT).fetchone()
        assert after == before, (before, after)
        assert m == n > 0, (m, n)
        assert seg == ("country = 'FR' and email_opt_in = true", 1, n) and hist == 1, (seg, hist)
    finally:
        conn.execute("DROP DATABASE IF EXISTS segplan_restore WITH (FORCE)")
        conn.execute("SELECT segplan.revoke_brand('segplan_planner', 'acme')")


def make_plan(conn, name, spec, checked_until=None):
    (plan_id,) = conn.execute("SELECT segplan.create_plan(%s, %s::jsonb)", (name, json.dumps(spec))).fetchone()
    conn.execute("SELECT segplan.activate_plan(%s)", (plan_id,))
    if checked_until:
        conn.execute("UPDATE segplan.plans SET checked_until = %s WHERE id = %s", (checked_until, plan_id))
    return plan_id


@test
def a_killed_run_leaves_nothing_and_the_next_tick_runs_it_once(conn):
    setup(conn)
    conn.execute("CREATE OR REPLACE FUNCTION public.slow_handoff(run_id bigint) RETURNS void LANGUAGE sql AS 'SELECT pg_sleep(60)'")
    plan_id = make_plan(conn, "killed", {"rule": {"attr": "country", "op": "eq", "value": "FR"}, "channel": "email",
                                         "delivery": {"handler": "public.slow_handoff"},
                                         "schedule": {"cron": "0 9 * * *", "time_zone": "UTC"}}, "2026-06-01 10:00+00")
    victim = psycopg.connect(autocommit=True)
    (pid,) = victim.execute("SELECT pg_backend_pid()").fetchone()
    outcome = {}

    def run():
        try:
            victim.execute("SELECT segplan.tick('2026-06-02 09:30+00')")
            outcome["ran"] = True
        except psycopg.Error as e:
            outcome["error"] = type(e).__name__

    t = threading.Thread(target=run)
    t.start()
    for _ in range(100):  # the run is in its hand-off: the list and history are written, not committed
        (waiting,) = conn.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s AND wait_event = 'PgSleep'", (pid,)).fetchone()
        if waiting:
            break
        time.sleep(0.1)
    conn.execute("SELECT pg_terminate_backend(%s)", (pid,))
    t.join(10)
    assert "error" in outcome, outcome
    (runs, listed, history) = conn.execute(
        "SELECT (SELECT count(*) FROM segplan.plan_runs WHERE plan_id = %s), (SELECT count(*) FROM segplan.run_contacts rc "
        "JOIN segplan.plan_runs r ON r.id = rc.run_id WHERE r.plan_id = %s), (SELECT count(*) FROM segplan.contact_history WHERE plan_id = %s)",
        (plan_id, plan_id, plan_id)).fetchone()
    assert (runs, listed, history) == (0, 0, 0), (runs, listed, history)
    conn.execute("CREATE OR REPLACE FUNCTION public.slow_handoff(run_id bigint) RETURNS void LANGUAGE sql AS 'SELECT'")
    (n,) = conn.execute("SELECT segplan.tick('2026-06-02 09:30+00')").fetchone()
    (again,) = conn.execute("SELECT segplan.tick('2026-06-02 09:30+00')").fetchone()
    (runs, sent, listed) = conn.execute(
        "SELECT count(*), sum(sent), (SELECT count(*) FROM segplan.run_contacts rc JOIN segplan.plan_runs r ON r.id = rc.run_id "
        "WHERE r.plan_id = %s) FROM segplan.plan_runs WHERE plan_id = %s AND status = 'sent'", (plan_id, plan_id)).fetchone()
    conn.execute("SELECT segplan.pause_plan(%s)", (plan_id,))
    assert (n, again, runs) == (1, 0, 1) and sent == listed > 0, (n, again, runs, sent, listed)


@test
def pg_cron_runs_a_due_plan_by_itself(conn):
    setup(conn)
    conn.execute("CREATE EXTENSION IF NOT EXISTS pg_cron")
    # the job runs as segplan_scheduler: the customer lets it read the contacts plans are made of
    conn.execute("GRANT USAGE ON SCHEMA demo TO segplan_scheduler")
    conn.execute("GRANT SELECT ON ALL TABLES IN SCHEMA demo TO segplan_scheduler")
    plan_id = make_plan(conn, "cron_live", {"rule": {"attr": "country", "op": "eq", "value": "IT"}, "channel": "push",
                                            "schedule": {"cron": "* * * * *", "time_zone": "UTC"}})
    conn.execute("SELECT segplan.enable_scheduler()")
    try:
        for _ in range(150):  # a slot every minute; pg_cron calls tick() at the start of each minute
            (runs,) = conn.execute("SELECT count(*) FROM segplan.plan_runs WHERE plan_id = %s AND status = 'sent'", (plan_id,)).fetchone()
            if runs:
                break
            time.sleep(1)
        failed = conn.execute("SELECT error FROM segplan.plan_runs WHERE plan_id = %s AND status = 'failed'", (plan_id,)).fetchall()
        assert runs >= 1, f"no run within 150 s; failed runs: {failed}"
    finally:
        conn.execute("SELECT segplan.disable_scheduler()")
        conn.execute("SELECT segplan.pause_plan(%s)", (plan_id,))


@test
def a_standby_counts_without_the_tables_it_cannot_read(conn):
    """A standby cannot read unlogged tables: the shared leaf cache and the notes of the shared
    copy of contact ids. Counts there go without them (they failed with "cannot access temporary
    or unlogged relations during recovery")."""
    setup(conn)
    conn.execute("CREATE SCHEMA IF NOT EXISTS standby_u")
    conn.execute("CREATE OR REPLACE VIEW standby_u.contacts WITH (security_invoker = true) AS SELECT md5('s' || id)::uuid AS uid, * FROM demo.contacts")
    conn.execute("SELECT segplan.register_contacts('standby_u.contacts', 'uid')")
    conn.execute("SELECT segplan.number_contacts()")
    rule = "country = 'FR' and email_opt_in"
    (primary,) = conn.execute("SELECT segplan.count(%s, %s)", (rule, AS_OF)).fetchone()
    (noted,) = conn.execute("SELECT count(*) FROM segplan.id_copies").fetchone()
    (shared,) = conn.execute("SELECT count(*) FROM segplan.leaf_cache").fetchone()
    assert noted == 1 and shared > 0, (noted, shared)
    as_pg = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    bindir = "/usr/lib/postgresql/15/bin"
    data = os.path.join(os.environ["PGHOST"], "standby")
    subprocess.run(as_pg + ["rm", "-rf", data], check=True)
    # the test cluster writes minimal WAL (pg_test_config): a standby needs replica, for this test
    conn.execute("ALTER SYSTEM SET wal_level = replica")
    conn.execute("ALTER SYSTEM SET max_wal_senders = 2")
    subprocess.run(["tests/tools/pgcluster.sh", "restart", "test"], check=True)
    conn = psycopg.connect(autocommit=True)
    subprocess.run(as_pg + [f"{bindir}/pg_basebackup", "-h", os.environ["PGHOST"], "-p", os.environ["PGPORT"], "-U", "postgres", "-D", data, "-R", "-X", "stream"], check=True, capture_output=True)
    port = "54329"
    subprocess.run(as_pg + [f"{bindir}/pg_ctl", "-D", data, "-l", data + ".log", "-w", "-t", "60", "-o", f"-p {port} -c unix_socket_directories={os.environ['PGHOST']}", "start"], check=True, capture_output=True)
    try:
        with psycopg.connect(port=port, autocommit=True) as standby:
            assert standby.execute("SELECT pg_is_in_recovery()").fetchone()[0]
            for _ in range(2):  # a new session, then the same one (its own cache)
                (count,) = standby.execute("SELECT segplan.count(%s, %s)", (rule, AS_OF)).fetchone()
                assert count == primary, (count, primary)
            steps = standby.execute("SELECT count(*) FROM segplan.count_steps(%s, %s)", (rule, AS_OF)).fetchone()[0]
            assert steps == 2, steps
            assert standby.execute("SELECT count(*) FROM segplan.shared_cache_stats()").fetchone()[0] == 0
            assert standby.execute("SELECT (segplan.cache_clear()) >= 0").fetchone()[0]
    finally:
        subprocess.run(as_pg + [f"{bindir}/pg_ctl", "-D", data, "-m", "immediate", "-w", "stop"], capture_output=True)
        subprocess.run(as_pg + ["rm", "-rf", data, data + ".log"], capture_output=True)
        conn.execute("SELECT segplan.register_contacts('demo.contacts', 'id')")
        conn.execute("ALTER SYSTEM RESET wal_level")
        conn.execute("ALTER SYSTEM RESET max_wal_senders")
        conn.close()
        subprocess.run(["tests/tools/pgcluster.sh", "restart", "test"], check=True)


@test
def a_logical_replica_counts_the_writes_it_receives(conn):
    """On a logical replication subscriber the apply worker fires row triggers only, never statement
    triggers: segplan_replica (a row trigger enabled for replication only) logs what it applies, so
    cached counts on the subscriber follow the publisher's writes (before it, they stayed as
    first counted)."""
    setup(conn)
    publisher_db = conn.info.dbname
    conn.execute("ALTER SYSTEM SET wal_level = logical")
    conn.execute("ALTER SYSTEM SET max_wal_senders = 4")
    subprocess.run(["tests/tools/pgcluster.sh", "restart", "test"], check=True)
    conn = psycopg.connect(autocommit=True)
    admin = psycopg.connect(dbname="postgres", autocommit=True)
    fr = "country = 'FR'"
    hand = "SELECT count(*) FROM demo.contacts WHERE country = 'FR'"
    moved = []
    try:
        admin.execute("DROP DATABASE IF EXISTS segplan_subscriber WITH (FORCE)")
        admin.execute("CREATE DATABASE segplan_subscriber")
        # the table as the publisher has it (columns and key; no foreign keys, no triggers)
        (cols,) = conn.execute("SELECT string_agg(quote_ident(a.attname) || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) "
                               "FROM pg_attribute a WHERE a.attrelid = 'demo.contacts'::regclass AND a.attnum > 0 AND NOT a.attisdropped").fetchone()
        conn.execute("CREATE PUBLICATION segplan_pub FOR TABLE demo.contacts")
        conn.execute("SELECT pg_create_logical_replication_slot('segplan_sub', 'pgoutput')")
        with psycopg.connect(dbname="segplan_subscriber", autocommit=True) as sub:
            sub.execute("CREATE SCHEMA demo")
            sub.execute(f"CREATE TABLE demo.contacts ({cols}, PRIMARY KEY (id))")
            sub.execute("SET client_min_messages = error")
            sub.execute("CREATE EXTENSION segplan")
            sub.execute("SELECT segplan.register_contacts('demo.contacts', 'id')")
            sub.execute(f"CREATE SUBSCRIPTION segplan_sub CONNECTION 'host={os.environ['PGHOST']} port={os.environ['PGPORT']} user=postgres dbname={publisher_db}' "
                        "PUBLICATION segplan_pub WITH (create_slot = false, slot_name = 'segplan_sub')")

            def wait_for(expected):
                for _ in range(300):
                    if sub.execute(hand).fetchone()[0] == expected:
                        return
                    time.sleep(0.1)
                raise AssertionError(f"the subscriber never reached {expected} French contacts")

            (before,) = conn.execute(hand).fetchone()
            wait_for(before)
            for _ in range(2):  # built, then cached
                (n,) = sub.execute("SELECT segplan.count(%s)", (fr,)).fetchone()
                assert n == before, (n, before)
            moved = [r[0] for r in conn.execute("SELECT id FROM demo.contacts WHERE country = 'DE' ORDER BY id LIMIT 5").fetchall()]
            conn.execute("UPDATE demo.contacts SET country = 'FR' WHERE id = ANY(%s)", (moved,))
            wait_for(before + 5)
            (n,) = sub.execute("SELECT segplan.count(%s)", (fr,)).fetchone()
            assert n == before + 5, (n, before + 5)
    finally:
        try:  # a database with a subscription cannot be dropped
            with psycopg.connect(dbname="segplan_subscriber", autocommit=True) as sub:
                if sub.execute("SELECT count(*) FROM pg_subscription WHERE subname = 'segplan_sub'").fetchone()[0]:
                    sub.execute("ALTER SUBSCRIPTION segplan_sub DISABLE")
                    sub.execute("ALTER SUBSCRIPTION segplan_sub SET (slot_name = NONE)")
                    sub.execute("DROP SUBSCRIPTION segplan_sub")
        except psycopg.OperationalError:
            pass  # never created
        if moved:
            conn.execute("UPDATE demo.contacts SET country = 'DE' WHERE id = ANY(%s)", (moved,))
        conn.execute("DROP PUBLICATION IF EXISTS segplan_pub")
        for _ in range(50):  # the slot is free once the subscription's worker is gone
            try:
                conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots WHERE slot_name = 'segplan_sub'")
                break
            except psycopg.errors.ObjectInUse:
                time.sleep(0.1)
        admin.execute("DROP DATABASE IF EXISTS segplan_subscriber WITH (FORCE)")
        admin.close()
        conn.execute("ALTER SYSTEM RESET wal_level")
        conn.execute("ALTER SYSTEM RESET max_wal_senders")
        conn.close()
        subprocess.run(["tests/tools/pgcluster.sh", "restart", "test"], check=True)


for name, err in results:
    print(f"{'ok' if err is None else 'FAIL'}  {name}")
    if err:
        print(err)
failed = sum(1 for _, e in results if e)
print(f"client: {len(results) - failed} passed, {failed} failed")
sys.exit(1 if failed else 0)
