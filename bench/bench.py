"""segplan side by side with hand-written SQL and DuckDB on the same data.

Run by `make bench SIZE=XS|S|L` against the demo database (PGHOST/PGPORT/PGDATABASE set by make).
Every query is answered by every engine and the counts must agree before any time is printed;
a disagreement stops the benchmark with exit code 1. Prints medians and ratios computed in this one
run, and writes bench/results/<size>.json.
"""
import argparse
import json
import os
import statistics
import sys
import time
from pathlib import Path

import duckdb
import psycopg

HERE = Path(__file__).resolve().parent
TABLES = ["brands", "outlets", "contacts", "products", "campaigns", "message_events", "orders", "order_lines"]
# (name, segplan rule, hand-written SQL returning the count). :asof is the evaluation time
# (a UTC timestamp), :asof_date its date. The same SQL runs on PostgreSQL and DuckDB.
QUERIES = [
    ("demographics + opt-in",
     "country = 'FR' and gender = 'F' and email_opt_in and age(birth_date) between 25 and 40",
     """SELECT count(*) FROM demo.contacts WHERE country = 'FR' AND gender = 'F' AND email_opt_in
        AND birth_date <= :asof_date - INTERVAL 25 YEAR AND birth_date > :asof_date - INTERVAL 41 YEAR"""),
    ("newsletter click, 90 days",
     "message_events(where event_type = 'click' and campaign_kind = 'newsletter', within last 90 days)",
     """SELECT count(DISTINCT m.contact_id) FROM demo.message_events m JOIN demo.campaigns c ON c.id = m.campaign_id
        WHERE m.event_type = 'click' AND c.kind = 'newsletter' AND m.occurred_at BETWEEN :asof - INTERVAL 90 DAY AND :asof"""),
    ("3+ opens, no click, 30 days",
     "message_events(where event_type = 'open', within last 30 days, count >= 3) and no message_events(where event_type = 'click', within last 30 days)",
     """SELECT count(*) FROM (SELECT contact_id FROM demo.message_events WHERE event_type = 'open'
          AND occurred_at BETWEEN :asof - INTERVAL 30 DAY AND :asof GROUP BY contact_id HAVING count(*) >= 3
        EXCEPT SELECT contact_id FROM demo.message_events WHERE event_type = 'click'
          AND occurred_at BETWEEN :asof - INTERVAL 30 DAY AND :asof) x"""),
    ("ratio: bags on 10% of 3+ occasions",
     "ratio(purchase_lines, per order_id, match category = 'bags', min_occasions 3) >= 0.1",
     """SELECT count(*) FROM (SELECT o.contact_id FROM (SELECT o.contact_id, o.id, bool_or(p.category = 'bags') AS hit
          FROM demo.orders o JOIN demo.order_lines l ON l.order_id = o.id JOIN demo.products p ON p.id = l.product_id
          GROUP BY o.contact_id, o.id) o GROUP BY o.contact_id
          HAVING count(*) >= 3 AND count(*) FILTER (WHERE hit) >= 0.1 * count(*)) x"""),
    ("sequence: order 30+ days after newsletter click",
     "sequence(message_events(where event_type = 'click' and campaign_kind = 'newsletter'), then orders(), gap > 30 days)",
     """SELECT count(*) FROM (SELECT m.contact_id, min(m.occurred_at) AS t FROM demo.message_events m
          JOIN demo.campaigns c ON c.id = m.campaign_id WHERE m.event_type = 'click' AND c.kind = 'newsletter'
          GROUP BY m.contact_id) a JOIN (SELECT contact_id, max(ordered_at) AS t FROM demo.orders GROUP BY contact_id) b
        ON b.contact_id = a.contact_id WHERE b.t > a.t + INTERVAL 30 DAY"""),
    ("children's range, airport store in Rome, 180 days",
     "purchase_lines(where product_range = 'children' and outlet_kind = 'airport' and city = 'Rome', within last 180 days)",
     """SELECT count(DISTINCT o.contact_id) FROM demo.orders o JOIN demo.order_lines l ON l.order_id = o.id
        JOIN demo.products p ON p.id = l.product_id JOIN demo.outlets ou ON ou.id = o.outlet_id
        WHERE p.product_range = 'children' AND ou.kind = 'airport' AND ou.city = 'Rome'
          AND o.ordered_at BETWEEN :asof - INTERVAL 180 DAY AND :asof"""),
    ("lapsed buyer who opened recently",
     "orders(within last 730 days) and no orders(within last 180 days) and message_events(where event_type = 'open', within last 30 days)",
     """SELECT count(*) FROM demo.contacts c WHERE
          EXISTS (SELECT 1 FROM demo.orders o WHERE o.contact_id = c.id AND o.ordered_at BETWEEN :asof - INTERVAL 730 DAY AND :asof)
          AND NOT EXISTS (SELECT 1 FROM demo.orders o WHERE o.contact_id = c.id AND o.ordered_at BETWEEN :asof - INTERVAL 180 DAY AND :asof)
          AND EXISTS (SELECT 1 FROM demo.message_events m WHERE m.contact_id = c.id AND m.event_type = 'open'
                      AND m.occurred_at BETWEEN :asof - INTERVAL 30 DAY AND :asof)"""),
    ("any/not combination",
     "(country = 'IT' or country = 'ES' or loyalty_tier = 'platinum') and not loyalty_tier = 'bronze' and not purchase_lines(where on_sale, within last 90 days)",
     """SELECT count(*) FROM demo.contacts c WHERE (country IN ('IT', 'ES') OR loyalty_tier = 'platinum')
          AND loyalty_tier IS DISTINCT FROM 'bronze'
          AND NOT EXISTS (SELECT 1 FROM demo.orders o JOIN demo.order_lines l ON l.order_id = o.id
                          WHERE o.contact_id = c.id AND l.on_sale AND o.ordered_at BETWEEN :asof - INTERVAL 90 DAY AND :asof)"""),
    ("RFM cluster: champions (2-year window)",
     "rfm(cluster in ('champions'))",
     """SELECT count(*) FROM (
          SELECT count(*) OVER () AS n, rank() OVER (ORDER BY rec DESC) - 1 AS wr,
                 rank() OVER (ORDER BY freq) - 1 AS wf, rank() OVER (ORDER BY mon) - 1 AS wm
          FROM (SELECT contact_id, :asof_date - CAST(max(ordered_at) AS DATE) AS rec, count(*) AS freq, sum(total) AS mon
                FROM demo.orders WHERE ordered_at < :day_end AND ordered_at >= :window_start GROUP BY contact_id) b) s
        WHERE 1 + floor(5 * wr / n) >= 4 AND 2 + floor(5 * wf / n) + floor(5 * wm / n) >= 8"""),
    ("tiny segment",
     "email = 'contact4242@example.com'",
     "SELECT count(*) FROM demo.contacts WHERE email = 'contact4242@example.com'"),
]

INDEXES = [
    "CREATE INDEX bench_me_type_time ON demo.message_events (event_type, occurred_at) INCLUDE (contact_id, campaign_id)",
    "CREATE INDEX bench_orders_contact_time ON demo.orders (contact_id, ordered_at)",
    "CREATE INDEX bench_orders_time ON demo.orders (ordered_at) INCLUDE (contact_id, outlet_id)",
    "CREATE INDEX bench_contacts_country ON demo.contacts (country)",
    "CREATE INDEX bench_contacts_email ON demo.contacts (email)",
]


def rfm_bounds(asof):
    """The RFM day's end and the 2-year window's start, as 'YYYY-MM-DD' (segplan's method, UTC session)."""
    import datetime
    end = datetime.date.fromisoformat(asof[:10]) + datetime.timedelta(days=1)
    return end.isoformat(), end.replace(year=end.year - 2).isoformat()


def pg_sql(sql, asof):
    end, start = rfm_bounds(asof)
    sql = sql.replace(":day_end", f"timestamptz '{end} 00:00:00+00'").replace(":window_start", f"timestamptz '{start} 00:00:00+00'")
    return (sql.replace(":asof_date", f"date '{asof[:10]}'").replace(":asof", f"timestamptz '{asof}+00'")
            .replace("INTERVAL 25 YEAR", "interval '25 years'").replace("INTERVAL 41 YEAR", "interval '41 years'")
            .replace("INTERVAL 90 DAY", "interval '90 days'").replace("INTERVAL 30 DAY", "interval '30 days'")
            .replace("INTERVAL 180 DAY", "interval '180 days'").replace("INTERVAL 730 DAY", "interval '730 days'"))


def duck_sql(sql, asof):
    end, start = rfm_bounds(asof)
    sql = sql.replace(":day_end", f"timestamp '{end} 00:00:00'").replace(":window_start", f"timestamp '{start} 00:00:00'")
    return sql.replace(":asof_date", f"date '{asof[:10]}'").replace(":asof", f"timestamp '{asof}'")


def timed(fn, runs, before=None):
    out, times = None, []
    for _ in range(runs):
        if before:
            before()
        t0 = time.perf_counter()
        out = fn()
        times.append((time.perf_counter() - t0) * 1000)
    return out, statistics.median(times)


def export_to_duckdb(pg, path, key):
    stamp = path.with_suffix(".key")
    if path.exists() and stamp.exists() and stamp.read_text() == key:
        return 0.0
    path.unlink(missing_ok=True)
    t0 = time.perf_counter()
    db = duckdb.connect(str(path))
    tmp = path.parent / "export.csv"
    for t in TABLES:
        # timestamptz leaves as UTC timestamps (the session is UTC): DuckDB compares them with a UTC as_of
        cols = pg.execute("SELECT string_agg(CASE WHEN data_type = 'timestamp with time zone' THEN column_name || '::timestamp AS ' "
                          "|| column_name ELSE column_name END, ',' ORDER BY ordinal_position) FROM information_schema.columns "
                          "WHERE table_schema = 'demo' AND table_name = %s", (t,)).fetchone()[0]
        with open(tmp, "wb") as f, pg.cursor().copy(
                f"COPY (SELECT {cols} FROM demo.{t}) TO STDOUT WITH (FORMAT csv, HEADER)") as cp:
            for chunk in cp:
                f.write(chunk)
        db.execute(f"CREATE OR REPLACE TABLE {t} AS SELECT * FROM read_csv('{tmp}', header = true)")
    tmp.unlink(missing_ok=True)
    db.execute("CREATE SCHEMA IF NOT EXISTS demo")
    for t in TABLES:
        db.execute(f"CREATE OR REPLACE VIEW demo.{t} AS SELECT * FROM main.{t}")
    db.close()
    stamp.write_text(key)
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--size", default="S")
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    pg = psycopg.connect(autocommit=True)
    pg.execute("SET timezone = 'UTC'")
    pg.execute("SET client_min_messages = warning")
    pg.execute("DROP EXTENSION IF EXISTS segplan CASCADE")  # the installed build's SQL, not an older one kept in the database
    pg.execute("CREATE EXTENSION segplan")
    pg.execute("SELECT segplan.register_contacts('demo.contacts', 'id')")
    pg.execute("SELECT segplan.register_events('purchase_lines', 'demo.purchase_lines', 'contact_id', 'ordered_at')")
    pg.execute("SELECT segplan.register_events('message_events', 'demo.message_activity', 'contact_id', 'occurred_at')")
    pg.execute("SELECT segplan.register_events('orders', 'demo.orders', 'contact_id', 'ordered_at')")
    pg.execute("SELECT segplan.configure_rfm('orders', 'total', NULL, '2 years')")
    for sql in INDEXES:
        pg.execute(f"DROP INDEX IF EXISTS demo.{sql.split()[2]}")
    asof = pg.execute("SELECT to_char(date_trunc('day', max(occurred_at)) + interval '1 day', 'YYYY-MM-DD HH24:MI:SS') "
                      "FROM demo.message_events").fetchone()[0]
    counts = pg.execute("SELECT (SELECT count(*) FROM demo.contacts), (SELECT count(*) FROM demo.message_events), "
                        "(SELECT count(*) FROM demo.orders), (SELECT max(id) FROM demo.message_events)").fetchone()
    print(f"segplan bench, size {args.size}: {counts[0]} contacts, {counts[1]} message events, {counts[2]} orders; "
          f"as_of {asof} UTC; median of {args.runs} runs, ms")

    data_dir = HERE / "data"
    data_dir.mkdir(exist_ok=True)
    export_s = export_to_duckdb(pg, data_dir / f"{args.size}.duckdb", f"{counts}|{asof}")
    if export_s:
        print(f"exported to DuckDB in {export_s:.1f} s")
    duck = duckdb.connect(str(data_dir / f"{args.size}.duckdb"), read_only=True)

    def seg(rule):
        return pg.execute("SELECT segplan.count(%s, %s::timestamptz)", (rule, asof + "+00")).fetchone()[0]

    def sql(q):
        return pg.execute(pg_sql(q, asof)).fetchone()[0]

    def generated(rule):
        # the rule compiled to one SQL statement (segplan.engine = sql), nothing cached: what the
        # compiler writes, against what a DBA writes
        pg.execute("SET segplan.engine = 'sql'")
        try:
            return seg(rule)
        finally:
            pg.execute("RESET segplan.engine")

    def at_default_work_mem(f):
        # PostgreSQL's default work_mem (4 MB), as most servers run; the bench cluster has 64 MB
        pg.execute("SET work_mem = '4MB'")
        try:
            return f()
        finally:
            pg.execute("RESET work_mem")

    def dk(q, threads):
        duck.execute(f"SET threads = {threads}")
        return duck.execute(duck_sql(q, asof)).fetchone()[0]

    def clear():
        pg.execute("SELECT segplan.cache_clear()")

    def in_new_session(query, params):
        # another connection (a pooled app connection, the scheduler): its own memory is empty, the
        # shared cache holds what this one built; the backend's first statement loads the model too
        with psycopg.connect(autocommit=True) as other:
            other.execute("SET timezone = 'UTC'")
            t0 = time.perf_counter()
            out = other.execute(query, params).fetchone()[0]
            return out, (time.perf_counter() - t0) * 1000

    def new_session(rule):
        return in_new_session("SELECT segplan.count(%s, %s::timestamptz)", (rule, asof + "+00"))

    rows = []
    for name, rule, hand in QUERIES:
        n_seg, t_seg = timed(lambda: seg(rule), args.runs, before=clear)
        seg(rule)
        n_warm, t_warm = timed(lambda: seg(rule), args.runs)
        fresh = [new_session(rule) for _ in range(args.runs)]
        n_new, t_new = fresh[-1][0], statistics.median(t for _, t in fresh)
        n_sql, t_sql = timed(lambda: sql(hand), args.runs)
        n_gen, t_gen = timed(lambda: generated(rule), args.runs)
        n_sql4, t_sql4 = at_default_work_mem(lambda: timed(lambda: sql(hand), args.runs))
        n_gen4, t_gen4 = at_default_work_mem(lambda: timed(lambda: generated(rule), args.runs))
        n_d1, t_d1 = timed(lambda: dk(hand, 1), args.runs)
        n_d2, t_d2 = timed(lambda: dk(hand, 2), args.runs)
        if len({n_seg, n_warm, n_new, n_sql, n_gen, n_sql4, n_gen4, n_d1, n_d2}) != 1:
            print(f"COUNTS DISAGREE for {name!r}: segplan {n_seg} (warm {n_warm}, new session {n_new}, generated SQL {n_gen}, at 4 MB {n_gen4}), "
                  f"sql {n_sql} (at 4 MB {n_sql4}), "
                  f"duckdb {n_d1}/{n_d2}",
                  file=sys.stderr)
            sys.exit(1)
        rows.append({"query": name, "count": n_seg, "segplan_ms": t_seg, "segplan_warm_ms": t_warm, "segplan_new_session_ms": t_new, "sql_ms": t_sql,
                     "generated_sql_ms": t_gen, "sql_4mb_ms": t_sql4, "generated_sql_4mb_ms": t_gen4,
                     "duckdb_1t_ms": t_d1, "duckdb_2t_ms": t_d2})

    t0 = time.perf_counter()
    for s in INDEXES:
        pg.execute(s)
    pg.execute("ANALYZE demo.message_events, demo.orders, demo.contacts")
    index_s = time.perf_counter() - t0
    index_mb = pg.execute("SELECT sum(pg_relation_size(indexrelid)) / 1e6 FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                          "WHERE c.relname LIKE 'bench_%'").fetchone()[0]
    for r, (name, rule, hand) in zip(rows, QUERIES):
        n1, r["segplan_idx_ms"] = timed(lambda: seg(rule), args.runs, before=clear)
        n2, r["sql_idx_ms"] = timed(lambda: sql(hand), args.runs)
        if {n1, n2} != {r["count"]}:
            print(f"COUNTS DISAGREE with indexes for {name!r}: segplan {n1}, sql {n2}, before {r['count']}", file=sys.stderr)
            sys.exit(1)
    for s in INDEXES:
        pg.execute(f"DROP INDEX demo.{s.split()[2]}")

    # incremental funnel: count_steps as conditions are added one by one
    conds = ["country = 'FR'", "gender = 'F'", "email_opt_in", "age(birth_date) between 25 and 40",
             "message_events(where event_type = 'open', within last 90 days)"]
    # as a user edits: conditions 1..k-1 are cached, condition k is new
    def funnel(k):
        return pg.execute("SELECT count(*) FROM segplan.count_steps(%s, %s::timestamptz)", (" and ".join(conds[:k]), asof + "+00")).fetchall()
    # each condition new (the ones before it cached) against the hand-written count of that
    # condition alone, "a fresh leaf no slower than the hand-written SQL for it": timed in turns
    # within each run, so both meet the same state of the machine
    alone = ["SELECT count(*) FROM demo.contacts WHERE country = 'FR'",
             "SELECT count(*) FROM demo.contacts WHERE gender = 'F'",
             "SELECT count(*) FROM demo.contacts WHERE email_opt_in",
             "SELECT count(*) FROM demo.contacts WHERE birth_date <= :asof_date - INTERVAL 25 YEAR AND birth_date > :asof_date - INTERVAL 41 YEAR",
             "SELECT count(DISTINCT contact_id) FROM demo.message_events WHERE event_type = 'open' AND occurred_at BETWEEN :asof - INTERVAL 90 DAY AND :asof"]
    per_k = {k: [] for k in range(1, len(conds) + 1)}
    alone_k = {k: [] for k in per_k}
    for _ in range(args.runs):
        clear()
        for k in per_k:
            t0 = time.perf_counter()
            funnel(k)
            per_k[k].append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()
            sql(alone[k - 1])
            alone_k[k].append((time.perf_counter() - t0) * 1000)
    steps = [{"conditions": k, "ms": statistics.median(v), "condition": conds[k - 1], "sql_alone_ms": statistics.median(alone_k[k])}
             for k, v in per_k.items()]
    # the same four attribute conditions each alone (segplan.count, nothing cached) against their
    # hand-written count, both serial (no parallel workers): the leaf statement's own work against
    # count(*)'s, without the partial bitmaps parallel workers hand to the leader; in turns, the
    # first of the two alternating
    serial = []
    pg.execute("SET max_parallel_workers_per_gather = 0")
    for cond, hand in zip(conds[:4], alone[:4]):
        t_seg, t_sql = [], []
        for i in range(args.runs):
            for which in ((0, 1) if i % 2 else (1, 0)):
                if which == 0:
                    clear()
                    t0 = time.perf_counter()
                    n1 = seg(cond)
                    t_seg.append((time.perf_counter() - t0) * 1000)
                else:
                    t0 = time.perf_counter()
                    n2 = sql(hand)
                    t_sql.append((time.perf_counter() - t0) * 1000)
            if n1 != n2:
                print(f"COUNTS DISAGREE serially for {cond!r}: segplan {n1}, sql {n2}", file=sys.stderr)
                sys.exit(1)
        serial.append({"condition": cond, "ms": statistics.median(t_seg), "sql_alone_ms": statistics.median(t_sql)})
    pg.execute("RESET max_parallel_workers_per_gather")
    _, warm5 = timed(lambda: seg(" and ".join(conds)), args.runs)
    _, warm_steps5 = timed(lambda: funnel(len(conds)), args.runs)

    # a condition's members handed to the client, fresh (nothing cached), against the hand-written
    # SELECT of the same keys: timed in turns within each run
    members_rule, members_sql = "country = 'FR'", "SELECT id FROM demo.contacts WHERE country = 'FR'"
    m_seg, m_sql = [], []
    for _ in range(args.runs):
        clear()
        t0 = time.perf_counter()
        n_members = len(pg.execute("SELECT m FROM segplan.members(%s, %s::timestamptz) m", (members_rule, asof + "+00")).fetchall())
        m_seg.append((time.perf_counter() - t0) * 1000)
        t0 = time.perf_counter()
        n_hand = len(pg.execute(members_sql).fetchall())
        m_sql.append((time.perf_counter() - t0) * 1000)
    if n_members != n_hand:
        print(f"COUNTS DISAGREE for the members of {members_rule}: {n_members} vs {n_hand}", file=sys.stderr)
        sys.exit(1)
    members = {"rule": members_rule, "rows": n_members, "fresh_ms": statistics.median(m_seg), "sql_ms": statistics.median(m_sql)}

    # bitmap operations on stored values (each call reads and unpacks its arguments)
    pg.execute("CREATE TEMP TABLE bm AS SELECT "
               "(SELECT segplan.rb_build_agg(g) FROM generate_series(1, 10000000, 2) g) AS a, "
               "(SELECT segplan.rb_build_agg(g) FROM generate_series(1, 9000000, 3) g) AS b, "
               "(SELECT segplan.rb_build_agg(g) FROM generate_series(1, 4000000, 4) g) AS c, "
               "(SELECT segplan.rb_build_agg(g) FROM generate_series(1, 5000000, 5) g) AS d, "
               "(SELECT segplan.rb_build_agg(g) FROM generate_series(1, 1000000) g) AS e, "
               "(SELECT segplan.rb_build_agg(g) FROM generate_series(1, 2000000, 2) g) AS f, "
               "(SELECT segplan.rb_build_agg(g) FROM generate_series(1, 3000000, 3) g) AS g, "
               "(SELECT segplan.rb_build_agg(g) FROM generate_series(1, 4000000, 4) g) AS h")
    _, t_and = timed(lambda: pg.execute("SELECT segplan.rb_and_cardinality(a, b) FROM bm").fetchone(), args.runs)
    _, t_and4 = timed(lambda: pg.execute("SELECT segplan.rb_cardinality(segplan.rb_and(segplan.rb_and(a, b), segplan.rb_and(c, d))) FROM bm").fetchone(), args.runs)
    # the shape of pg_roaringbitmap's 4-way figure: four bitmaps of 1M ids each
    _, t_and4_1m = timed(lambda: pg.execute("SELECT segplan.rb_cardinality(segplan.rb_and(segplan.rb_and(e, f), segplan.rb_and(g, h))) FROM bm").fetchone(), args.runs)
    # a stored bitmap as a per-row filter over every contact (read in place, never unpacked per
    # row), against the plain scan with an equivalent predicate
    pg.execute("CREATE TEMP TABLE fr AS SELECT segplan.rb64_build_agg(id) FILTER (WHERE country = 'FR') AS bm FROM demo.contacts")
    pg.execute("ANALYZE fr")
    pg.execute("SET max_parallel_workers_per_gather = 0")  # temp tables are not read by parallel workers
    n_in, t_in = timed(lambda: pg.execute("SELECT count(*) FROM demo.contacts c WHERE segplan.rb64_contains((SELECT bm FROM fr), c.id)").fetchone()[0], args.runs)
    n_eq, t_eq = timed(lambda: pg.execute("SELECT count(*) FROM demo.contacts c WHERE c.country = 'FR'").fetchone()[0], args.runs)
    pg.execute("RESET max_parallel_workers_per_gather")
    if n_in != n_eq:
        print(f"COUNTS DISAGREE for the stored-bitmap filter: {n_in} vs {n_eq}", file=sys.stderr)
        sys.exit(1)
    bitmap_ops = {"and_cardinality_5Mx3M_ms": t_and, "and4_cardinality_ms": t_and4, "and4_1M_each_cardinality_ms": t_and4_1m,
                  "contains_filter_1M_rows_ms": t_in, "same_filter_by_column_ms": t_eq}

    # a plan run: a segment of most contacts through 3 policies (5 rules), then its export
    pg.execute("SELECT segplan.save_segment('bench_reachable', 'email_opt_in or sms_opt_in')")
    pg.execute("SELECT segplan.create_policy('bench_fatigue', %s)", ('{"rules": [{"max_contacts": 3, "per": {"days": 7}, "count_across": "all_brands"}, {"min_gap": {"hours": 48}}]}',))
    pg.execute("SELECT segplan.create_policy('bench_consent', %s)", ('{"rules": [{"require_attr": "email_opt_in"}, {"exclude_unsubscribed": {"event": "message_events", "where": {"prop": "event_type", "op": "eq", "value": "unsubscribe"}}}]}',))
    pg.execute("SELECT segplan.create_policy('bench_quiet', %s)", ('{"rules": [{"quiet_hours": {"from": "21:00", "to": "09:00"}}]}',))
    # the policies' live waterfall for that segment (cold: the session's bitmaps dropped first; warm:
    # cached), and the per-request check of one contact (warm), caps only and all three policies
    pols3 = ["bench_fatigue", "bench_consent", "bench_quiet"]
    at = asof[:10] + " 10:00:00+00"
    impact = lambda: pg.execute("SELECT count(*) FROM segplan.policy_impact('segment(''bench_reachable'')', %s, 'email', 'bench', %s::timestamptz)",
                                (pols3, at)).fetchone()
    _, impact_cold = timed(impact, args.runs, before=clear)
    _, impact_warm = timed(impact, args.runs)
    impact_new = statistics.median(in_new_session(
        "SELECT count(*) FROM segplan.policy_impact('segment(''bench_reachable'')', %s, 'email', 'bench', %s::timestamptz)", (pols3, at))[1]
        for _ in range(args.runs))
    check = lambda pols: lambda: pg.execute("SELECT eligible FROM segplan.eligible(7, %s, 'email', 'bench', %s::timestamptz)", (pols, at)).fetchone()
    check(pols3)()
    _, eligible_caps = timed(check(["bench_fatigue"]), args.runs * 4)
    _, eligible_all = timed(check(pols3), args.runs * 4)
    policies = {"impact_cold_ms": impact_cold, "impact_warm_ms": impact_warm, "impact_new_session_ms": impact_new, "eligible_caps_ms": eligible_caps, "eligible_3_policies_ms": eligible_all}
    (plan_id,) = pg.execute("SELECT segplan.create_plan('bench_plan', %s)", (json.dumps({
        "segment": "bench_reachable", "channel": "email", "brand": "bench", "policies": ["bench_fatigue", "bench_consent", "bench_quiet"],
        "schedule": {"once": asof[:16], "time_zone": "UTC"}}),)).fetchone()
    t0 = time.perf_counter()
    (run_id,) = pg.execute("SELECT segplan.run_plan(%s, %s::timestamptz)", (plan_id, asof[:10] + " 10:00:00+00")).fetchone()
    run_s = time.perf_counter() - t0
    (size, sent) = pg.execute("SELECT segment_size, sent FROM segplan.plan_runs WHERE id = %s", (run_id,)).fetchone()
    t0 = time.perf_counter()
    exported = 0
    with pg.cursor().copy("COPY (SELECT * FROM segplan.export_run(%s, NULL::demo.contacts)) TO STDOUT" % int(run_id)) as cp:
        for chunk in cp:
            exported += bytes(chunk).count(b"\n")
    export_s = time.perf_counter() - t0
    (pid,) = pg.execute("SELECT pg_backend_pid()").fetchone()
    try:  # the backend's memory (Linux) after everything above ran in it: peak resident (shared buffers
        # it touched included) and its private memory now (the session's bitmap cache lives there)
        status = {l.split(":")[0]: int(l.split()[1]) for l in open(f"/proc/{pid}/status") if l.startswith(("VmHWM", "RssAnon"))}
        peak_mb, private_mb = status["VmHWM"] / 1024, status["RssAnon"] / 1024
    except (OSError, KeyError):
        peak_mb = private_mb = None
    plan_run = {"segment": size, "sent": sent, "run_s": run_s, "exported": exported, "export_s": export_s,
                "export_rows_per_s": exported / export_s if export_s else None, "peak_backend_mb": peak_mb, "private_backend_mb": private_mb}

    # contacts keyed by uuid: the same contacts and orders with md5-derived uuid keys (tables kept
    # between runs); segplan numbers them (segplan.contact_ids) once, then every leaf's keys become
    # ids in memory
    kept = pg.execute("SELECT to_regclass('bench_uuid.orders') IS NOT NULL").fetchone()[0]
    if not kept or pg.execute("SELECT count(*) FROM bench_uuid.contacts").fetchone()[0] != counts[0]:
        pg.execute("DROP SCHEMA IF EXISTS bench_uuid CASCADE")
        pg.execute("CREATE SCHEMA bench_uuid")
        pg.execute("CREATE TABLE bench_uuid.contacts AS SELECT md5('c' || id)::uuid AS uid, country, gender, birth_date, email_opt_in, "
                   "sms_opt_in, created_at, loyalty_tier FROM demo.contacts")
        pg.execute("ALTER TABLE bench_uuid.contacts ADD PRIMARY KEY (uid)")
        pg.execute("CREATE TABLE bench_uuid.orders AS SELECT md5('c' || contact_id)::uuid AS uid, channel, ordered_at, total FROM demo.orders")
        pg.execute("VACUUM ANALYZE bench_uuid.contacts, bench_uuid.orders")
    pg.execute("SELECT segplan.register_contacts('bench_uuid.contacts', 'uid')")
    pg.execute("SELECT segplan.register_events('orders', 'bench_uuid.orders', 'uid', 'ordered_at')")
    t0 = time.perf_counter()
    (numbered,) = pg.execute("SELECT segplan.number_contacts()").fetchone()
    number_s = time.perf_counter() - t0
    every = "created_at is not null"  # builds the universe: what follows times one new condition each
    uuid_conds = [("country = 'FR'", "SELECT count(*) FROM bench_uuid.contacts WHERE country = 'FR'"),
                  ("gender = 'F'", "SELECT count(*) FROM bench_uuid.contacts WHERE gender = 'F'"),
                  ("orders(within last 90 days)", "SELECT count(DISTINCT uid) FROM bench_uuid.orders WHERE ordered_at BETWEEN :asof - INTERVAL 90 DAY AND :asof")]
    uuid_fresh = []
    for rule, hand in uuid_conds:
        # in turns, as the funnel's conditions
        t1s, t2s = [], []
        for _ in range(args.runs):
            clear()
            seg(every)
            n1, t = timed(lambda: seg(rule), 1)
            t1s.append(t)
            n2, t = timed(lambda: sql(hand), 1)
            t2s.append(t)
        t1, t2 = statistics.median(t1s), statistics.median(t2s)
        if n1 != n2:
            print(f"COUNTS DISAGREE over uuid keys for {rule!r}: segplan {n1}, sql {n2}", file=sys.stderr)
            sys.exit(1)
        uuid_fresh.append({"condition": rule, "count": n1, "ms": t1, "sql_alone_ms": t2})
    rule5 = " and ".join(c for c, _ in uuid_conds) + " and email_opt_in and not orders(where channel = 'store')"
    n_cold, uuid_cold5 = timed(lambda: seg(rule5), args.runs, before=clear)
    n_warm, uuid_warm5 = timed(lambda: seg(rule5), args.runs)
    n_gen, uuid_gen5 = timed(lambda: generated(rule5), args.runs)
    # a new session's first fresh condition reads the ids it has not met (the whole table)
    uuid_new = []
    for i in range(args.runs):
        clear()
        uuid_new.append(in_new_session("SELECT segplan.count(%s, %s::timestamptz)", (f"loyalty_tier = 'gold' and birth_date > '19{60 + i}-01-01'", asof + "+00"))[1])
    if len({n_cold, n_warm, n_gen}) != 1:
        print(f"COUNTS DISAGREE over uuid keys for the 5-condition rule: cold {n_cold}, warm {n_warm}, generated SQL {n_gen}", file=sys.stderr)
        sys.exit(1)
    # after a write over uuid keys: 100 orders (marked total -1, deleted again) for contacts picked by
    # hash and about 270 contacts moved between FR and DE; the cached rule patched (the touched keys'
    # ids out, the keys evaluated again through the index on orders' uid) against building it again
    pg.execute("CREATE INDEX IF NOT EXISTS orders_uid ON bench_uuid.orders (uid)")
    u_rule = "country = 'FR' and email_opt_in and orders(within last 30 days)"
    u_hand = ("SELECT count(*) FROM bench_uuid.contacts c WHERE c.country = 'FR' AND c.email_opt_in AND EXISTS (SELECT 1 FROM bench_uuid.orders o "
              "WHERE o.uid = c.uid AND o.ordered_at BETWEEN %(asof)s::timestamptz - interval '30 days' AND %(asof)s::timestamptz)")
    u_flip = ("UPDATE bench_uuid.contacts SET country = CASE country WHEN 'FR' THEN 'DE' ELSE 'FR' END "
              "WHERE country IN ('FR', 'DE') AND abs(hashtext(uid::text)) %% 2000 = 0")
    u_do = ["INSERT INTO bench_uuid.orders (uid, channel, ordered_at, total) SELECT uid, 'online', %(asof)s::timestamptz - interval '1 day', -1 "
            "FROM bench_uuid.contacts WHERE abs(hashtext(uid::text)) %% 10000 = 1 LIMIT 100", u_flip]
    u_undo = ["DELETE FROM bench_uuid.orders WHERE total = -1", u_flip]

    def u_write(statements):
        with pg.transaction():
            for st in statements:
                pg.execute(st, {"asof": asof + "+00"})

    u_patched, u_rebuilt, u_hand_ms = [], [], []
    clear()
    seg(u_rule)
    for _ in range(args.runs):
        u_write(u_do)
        n_p, t = timed(lambda: seg(u_rule), 1)
        u_patched.append(t)
        n_h, t = timed(lambda: pg.execute(u_hand, {"asof": asof + "+00"}).fetchone()[0], 1)
        u_hand_ms.append(t)
        u_write(u_undo)
        pg.execute("SET segplan.patch_limit = 0")
        n_r, t = timed(lambda: seg(u_rule), 1)
        u_rebuilt.append(t)
        pg.execute("RESET segplan.patch_limit")
        if n_p != n_h or n_r != pg.execute(u_hand, {"asof": asof + "+00"}).fetchone()[0]:
            print(f"COUNTS DISAGREE over uuid keys after writes: patched {n_p} vs {n_h}", file=sys.stderr)
            sys.exit(1)
    uuid_keys = {"numbered": numbered, "number_s": number_s, "fresh_conditions": uuid_fresh, "rule": rule5, "count": n_cold,
                 "cold_5_condition_ms": uuid_cold5, "warm_5_condition_ms": uuid_warm5, "generated_sql_5_condition_ms": uuid_gen5,
                 "new_session_fresh_condition_ms": statistics.median(uuid_new),
                 "after_writes": {"rule": u_rule, "patched_ms": statistics.median(u_patched), "rebuilt_ms": statistics.median(u_rebuilt),
                                  "sql_ms": statistics.median(u_hand_ms)}}
    pg.execute("SELECT segplan.register_contacts('demo.contacts', 'id')")
    pg.execute("SELECT segplan.register_events('orders', 'demo.orders', 'contact_id', 'ordered_at')")

    # after writes: a cached rule over the contacts and their orders, then a transaction that adds
    # 100 orders for 100 contacts picked at random (hashed: the generator gives low ranks times 7919
    # the most orders) and moves about as many other contacts between FR and DE; the next count
    # patches every leaf for the touched contacts, against building them again (patch_limit 0) and
    # against the hand-written count; each run's write is undone by a second one (so the data stay
    # as generated), which the rebuilt count follows
    w_rule = "country = 'FR' and email_opt_in and orders(within last 30 days)"
    w_hand = ("SELECT count(*) FROM demo.contacts c WHERE c.country = 'FR' AND c.email_opt_in AND EXISTS (SELECT 1 FROM demo.orders o "
              "WHERE o.contact_id = c.id AND o.ordered_at BETWEEN %(asof)s::timestamptz - interval '30 days' AND %(asof)s::timestamptz)")
    w_params = {"asof": asof + "+00"}
    (max_order,) = pg.execute("SELECT max(id) FROM demo.orders").fetchone()
    w_do = [("INSERT INTO demo.orders (id, contact_id, outlet_id, channel, ordered_at, total) "
             "SELECT %(max)s + g, (hashint4(g) & 2147483647) %% %(n)s + 1, (SELECT min(id) FROM demo.outlets), 'online', %(asof)s::timestamptz - interval '1 day', 10 "
             "FROM generate_series(1, 100) g"),
            "UPDATE demo.contacts SET country = CASE country WHEN 'FR' THEN 'DE' ELSE 'FR' END WHERE country IN ('FR', 'DE') AND id %% 9973 < 6"]
    w_undo = ["DELETE FROM demo.orders WHERE id > %(max)s", w_do[1]]
    w_args = {"max": max_order, "n": counts[0], "asof": asof + "+00"}
    (moved,) = pg.execute("SELECT count(*) FROM demo.contacts WHERE country IN ('FR', 'DE') AND id % 9973 < 6").fetchone()

    def write(statements):
        t0 = time.perf_counter()
        with pg.transaction():
            for st in statements:
                pg.execute(st, w_args)
        return (time.perf_counter() - t0) * 1000

    patched, rebuilt, hand_after, write_ms = [], [], [], []
    clear()
    seg(w_rule)
    origins = None
    for _ in range(args.runs):
        write_ms.append(write(w_do))
        n_p, t = timed(lambda: seg(w_rule), 1)
        patched.append(t)
        origins = origins or dict(pg.execute("SELECT origin, count(*) FROM segplan.cache_stats() GROUP BY 1").fetchall())
        n_h, t = timed(lambda: pg.execute(w_hand, w_params).fetchone()[0], 1)
        hand_after.append(t)
        write(w_undo)
        pg.execute("SET segplan.patch_limit = 0")
        n_r, t = timed(lambda: seg(w_rule), 1)
        rebuilt.append(t)
        pg.execute("RESET segplan.patch_limit")
        n_h2 = pg.execute(w_hand, w_params).fetchone()[0]
        if n_p != n_h or n_r != n_h2:
            print(f"COUNTS DISAGREE after writes: patched {n_p} vs {n_h}, rebuilt {n_r} vs {n_h2}", file=sys.stderr)
            sys.exit(1)
    # what tracking costs writers: the same statements with segplan's triggers on and off, in turns
    def triggers(on):
        if on:
            pg.execute("ALTER TABLE demo.orders ENABLE ALWAYS TRIGGER segplan_changes")
            for k in ("insert", "update", "delete"):
                pg.execute(f"ALTER TABLE demo.orders ENABLE ALWAYS TRIGGER segplan_keys_{k}")
        else:
            pg.execute("ALTER TABLE demo.orders DISABLE TRIGGER USER")

    def writer_cost(statement, times):
        def go():
            t0 = time.perf_counter()
            for _ in range(times):
                pg.execute(statement)
            return (time.perf_counter() - t0) * 1000
        on, off = [], []
        try:
            for i in range(args.runs):
                for enabled in ((True, False) if i % 2 else (False, True)):
                    triggers(enabled)
                    (on if enabled else off).append(go())
        finally:
            triggers(True)
        return statistics.median(on), statistics.median(off)
    one_on, one_off = writer_cost("UPDATE demo.orders SET total = total WHERE id = 4242", 200)
    bulk_on, bulk_off = writer_cost("UPDATE demo.orders SET total = total WHERE id <= 10000", 1)
    big_on, big_off = writer_cost("UPDATE demo.orders SET total = total WHERE id <= 100000", 1)
    pg.execute("VACUUM demo.orders")  # the row versions those updates left behind, before the next run
    after_writes = {"rule": w_rule, "moved": moved, "write_ms": statistics.median(write_ms), "patched_ms": statistics.median(patched), "rebuilt_ms": statistics.median(rebuilt),
                    "sql_ms": statistics.median(hand_after), "origins": origins,
                    "writer_200_single_row_updates_ms": [one_on, one_off], "writer_10k_row_update_ms": [bulk_on, bulk_off],
                    "writer_100k_row_update_ms": [big_on, big_off]}

    # a new minute: relative windows are cached per as_of minute; at the next minute a cached
    # bitmap is shifted (the condition evaluated again for the contacts with rows between the
    # windows' old and new bounds, found through an index on the time column) against building it
    # again (patch_limit 0) and the hand-written count; the time indexes exist for this section only
    m_rule = "message_events(where event_type = 'open', within last 90 days) and orders(within last 30 days)"
    m_hand = ("SELECT count(*) FROM demo.contacts c WHERE EXISTS (SELECT 1 FROM demo.message_activity e WHERE e.contact_id = c.id "
              "AND e.event_type = 'open' AND e.occurred_at BETWEEN %(t)s::timestamptz - interval '90 days' AND %(t)s::timestamptz) "
              "AND EXISTS (SELECT 1 FROM demo.orders o WHERE o.contact_id = c.id "
              "AND o.ordered_at BETWEEN %(t)s::timestamptz - interval '30 days' AND %(t)s::timestamptz)")
    time_indexes = [s for s in INDEXES if "bench_me_type_time" in s or "bench_orders_time" in s]
    for s in time_indexes:
        pg.execute(s)
    pg.execute("ANALYZE demo.message_events, demo.orders")

    def at_minute(k, seconds=0):
        return pg.execute("SELECT (%s::timestamptz + %s * interval '1 minute' + %s * interval '1 second')::text",
                          (asof + "+00", k, seconds)).fetchone()[0]

    def seg_at(t):
        return pg.execute("SELECT segplan.count(%s, %s::timestamptz)", (m_rule, t)).fetchone()[0]

    shifted, m_rebuilt, m_hand_ms = [], [], []
    clear()
    seg_at(at_minute(0))
    m_origins = None
    for k in range(1, args.runs + 1):
        t = at_minute(k)
        n_s, ms = timed(lambda: seg_at(t), 1)
        shifted.append(ms)
        m_origins = m_origins or dict(pg.execute("SELECT origin, count(*) FROM segplan.cache_stats() WHERE condition <> 'all contacts' GROUP BY 1").fetchall())
        n_h, ms = timed(lambda: pg.execute(m_hand, {"t": t}).fetchone()[0], 1)
        m_hand_ms.append(ms)
        pg.execute("SET segplan.patch_limit = 0")
        n_r, ms = timed(lambda: seg_at(at_minute(k, 30)), 1)
        m_rebuilt.append(ms)
        pg.execute("RESET segplan.patch_limit")
        n_h2 = pg.execute(m_hand, {"t": at_minute(k, 30)}).fetchone()[0]
        if n_s != n_h or n_r != n_h2:
            print(f"COUNTS DISAGREE at a new minute: shifted {n_s} vs {n_h}, rebuilt {n_r} vs {n_h2}", file=sys.stderr)
            sys.exit(1)
    # a day later (the bounds moved by a day: more rows between them)
    n_d, day_ms = timed(lambda: seg_at(at_minute(24 * 60 + args.runs)), 1)
    day_origins = dict(pg.execute("SELECT origin, count(*) FROM segplan.cache_stats() WHERE condition <> 'all contacts' GROUP BY 1").fetchall())
    if n_d != pg.execute(m_hand, {"t": at_minute(24 * 60 + args.runs)}).fetchone()[0]:
        print("COUNTS DISAGREE a day later", file=sys.stderr)
        sys.exit(1)
    for s in time_indexes:
        pg.execute(f"DROP INDEX demo.{s.split()[2]}")
    new_minute = {"rule": m_rule, "shifted_ms": statistics.median(shifted), "rebuilt_ms": statistics.median(m_rebuilt),
                  "sql_ms": statistics.median(m_hand_ms), "origins": m_origins, "a_day_later_ms": day_ms, "a_day_later_origins": day_origins}

    head = (f"{'query':<50} {'count':>9} {'seg cold':>9} {'seg warm':>9} {'seg new':>9} {'sql':>9} {'gen sql':>9} {'sql+idx':>9} {'seg+idx':>9} "
            f"{'duck 1t':>9} {'duck 2t':>9} {'sql 4MB':>9} {'gen 4MB':>9} {'cold/sql':>8} {'gen/sql':>8} {'gen/sql 4MB':>11} {'cold/duck2':>10}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['query']:<50} {r['count']:>9} {r['segplan_ms']:>9.1f} {r['segplan_warm_ms']:>9.1f} {r['segplan_new_session_ms']:>9.1f} {r['sql_ms']:>9.1f} "
              f"{r['generated_sql_ms']:>9.1f} {r['sql_idx_ms']:>9.1f} {r['segplan_idx_ms']:>9.1f} {r['duckdb_1t_ms']:>9.1f} {r['duckdb_2t_ms']:>9.1f} "
              f"{r['sql_4mb_ms']:>9.1f} {r['generated_sql_4mb_ms']:>9.1f} "
              f"{r['segplan_ms'] / r['sql_ms']:>8.2f} {r['generated_sql_ms'] / r['sql_ms']:>8.2f} {r['generated_sql_4mb_ms'] / r['sql_4mb_ms']:>11.2f} "
              f"{r['segplan_ms'] / r['duckdb_2t_ms']:>10.2f}")
    print(f"\nindex set for 'sql+idx' / 'seg+idx': built in {index_s:.1f} s, {index_mb:.0f} MB")
    print("count_steps as conditions are added (earlier ones cached): " + ", ".join(f"{s['conditions']}: {s['ms']:.1f} ms" for s in steps))
    print("a fresh condition (earlier ones cached) vs the hand-written count of that condition alone: "
          + "; ".join(f"{s['condition']}: {s['ms']:.1f} vs {s['sql_alone_ms']:.1f} ms" for s in steps))
    print("the same conditions alone, fresh, both serial (no parallel workers): "
          + "; ".join(f"{s['condition']}: {s['ms']:.1f} vs {s['sql_alone_ms']:.1f} ms" for s in serial))
    print(f"warm 5-condition count: {warm5:.1f} ms; warm 5-step count_steps: {warm_steps5:.1f} ms")
    print(f"members of {members['rule']} ({members['rows']} rows to the client), fresh: {members['fresh_ms']:.1f} ms; the hand-written SELECT of them: {members['sql_ms']:.1f} ms")
    print(f"bitmap ops on stored values: rb_and_cardinality 5M x 3M in 10M: {t_and:.1f} ms; 4-way AND count (5M, 3M, 1M, 1M ids): {t_and4:.1f} ms, "
          f"(1M ids each): {t_and4_1m:.1f} ms; a stored bitmap filtering 1M rows: {t_in:.1f} ms (the same filter on a column: {t_eq:.1f} ms)")
    print(f"policy_impact of that segment through 3 policies: cold {impact_cold:.1f} ms, warm {impact_warm:.1f} ms, "
          f"in a new session {impact_new:.1f} ms; "
          f"eligible (one contact, warm): caps only {eligible_caps:.2f} ms, 3 policies {eligible_all:.2f} ms")
    print(f"plan run: segment {size}, 3 policies, {sent} sent in {run_s:.1f} s; export of {exported} rows in {export_s:.2f} s "
          f"({plan_run['export_rows_per_s']:.0f} rows/s); backend memory: peak resident {peak_mb if peak_mb is None else round(peak_mb)} MB "
          f"(shared buffers included), private now {private_mb if private_mb is None else round(private_mb)} MB")

    print(f"uuid keys: {numbered} contacts numbered in {number_s:.1f} s; a fresh condition vs the hand-written count of it alone: "
          + "; ".join(f"{f['condition']}: {f['ms']:.1f} vs {f['sql_alone_ms']:.1f} ms" for f in uuid_fresh)
          + f"; 5 conditions cold {uuid_cold5:.1f} ms, warm {uuid_warm5:.1f} ms, generated SQL {uuid_gen5:.1f} ms; "
          f"a new session's first fresh condition {uuid_keys['new_session_fresh_condition_ms']:.1f} ms; "
          f"after a write (100 orders, contacts moved between FR and DE), {u_rule}: patched {uuid_keys['after_writes']['patched_ms']:.1f} ms, "
          f"built again {uuid_keys['after_writes']['rebuilt_ms']:.1f} ms, the hand-written count {uuid_keys['after_writes']['sql_ms']:.1f} ms")

    print(f"after a write (100 orders added, {moved} contacts moved between FR and DE, {after_writes['write_ms']:.1f} ms), {w_rule}: "
          f"patched {after_writes['patched_ms']:.1f} ms, built again {after_writes['rebuilt_ms']:.1f} ms, the hand-written count {after_writes['sql_ms']:.1f} ms "
          f"(this session's leaves: {', '.join(f'{k} {v}' for k, v in sorted(origins.items()))}); "
          f"what tracking costs writers (segplan's triggers on vs off): 200 one-row updates {one_on:.1f} vs {one_off:.1f} ms, "
          f"a 10k-row update {bulk_on:.1f} vs {bulk_off:.1f} ms, a 100k-row update (too many keys: the table as a whole) {big_on:.1f} vs {big_off:.1f} ms")

    print(f"a new minute, {m_rule}: shifted {new_minute['shifted_ms']:.1f} ms, built again {new_minute['rebuilt_ms']:.1f} ms, "
          f"the hand-written count {new_minute['sql_ms']:.1f} ms (this session's leaves: {', '.join(f'{k} {v}' for k, v in sorted(m_origins.items()))}); "
          f"a day later: {day_ms:.1f} ms (leaves so far: {', '.join(f'{k} {v}' for k, v in sorted(day_origins.items()))})")

    out = HERE / "results"
    out.mkdir(exist_ok=True)
    (out / f"{args.size}.json").write_text(json.dumps({
        "size": args.size, "contacts": counts[0], "message_events": counts[1], "orders": counts[2], "as_of": asof,
        "runs": args.runs, "queries": rows, "index_build_s": index_s, "index_mb": float(index_mb or 0),
        "count_steps": steps, "fresh_serial": serial, "warm_5_condition_count_ms": warm5, "warm_5_step_count_steps_ms": warm_steps5, "members": members,
        "bitmap_ops": bitmap_ops, "policies": policies, "plan_run": plan_run, "uuid_keys": uuid_keys, "after_writes": after_writes, "new_minute": new_minute, "machine_cores": os.cpu_count(),
    }, indent=2))
    print(f"wrote {out / (args.size + '.json')}")


if __name__ == "__main__":
    main()
