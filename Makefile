# segplan — `make demo` and `make test` work on a fresh Debian 12 machine (see README).
SHELL     := /bin/bash
PG_CONFIG ?= /usr/lib/postgresql/15/bin/pg_config
PG_BIN    := /usr/lib/postgresql/15/bin
PG_LIB    := /usr/lib/postgresql/15/lib
SIZE      ?= XS
SEED      ?= 42
CLUSTER   := tests/tools/pgcluster.sh
DEMO_PORT := 54320
TEST_PORT := 54321
ROOT      := $(CURDIR)
SUDO_FLAG := $(if $(filter 0,$(shell id -u)),,--sudo)
SUDO      := $(if $(filter 0,$(shell id -u)),,sudo)
DEMO_ENV  = eval "$$($(CLUSTER) env demo $(DEMO_PORT))"
TEST_ENV  = eval "$$($(CLUSTER) env test $(TEST_PORT))"
PSQL      := psql -X -v ON_ERROR_STOP=1 -q

.PHONY: deps install demo data psql stop test unit pgrx-test regress isolation client upgrade bench

deps:
	@tests/tools/deps.sh

# Build (release) and install the extension into the system's PostgreSQL 15.
install: deps
	cargo pgrx install --release $(SUDO_FLAG) --pg-config $(PG_CONFIG)

# ---- demo -------------------------------------------------------------------------------------
demo: install
	@$(CLUSTER) start demo $(DEMO_PORT) segplan_demo
	@$(DEMO_ENV); psql -X -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = 'segplan_demo'" | grep -q 1 \
	  || createdb segplan_demo
	@$(MAKE) --no-print-directory data SIZE=$(SIZE) ONLY_IF_MISSING=1
	@$(DEMO_ENV); $(PSQL) -d segplan_demo -f sql/demo.sql
	@echo; echo "Connect with:  make psql    (or: $$($(CLUSTER) env demo $(DEMO_PORT) | sed 's/^export //') psql segplan_demo)"

# Generate the demo dataset (XS = 100k contacts, S = 1M, L = 10M) into database $(DB).
DB ?= segplan_demo
data:
	@$(CLUSTER) start demo $(DEMO_PORT) segplan_demo
	@$(DEMO_ENV); n=$$(case "$(SIZE)" in XS) echo 100000;; S) echo 1000000;; L) echo 10000000;; \
	    *) echo "SIZE must be XS, S or L" >&2; exit 2;; esac); \
	  psql -X -d postgres -tAc "SELECT 1 FROM pg_database WHERE datname = '$(DB)'" | grep -q 1 || createdb $(DB); \
	  have=$$(psql -X -d $(DB) -tAc "SELECT count(*) FROM demo.contacts" 2>/dev/null || echo 0); \
	  if [ "$(ONLY_IF_MISSING)" = 1 ] && [ "$$have" = "$$n" ]; then echo "data: $(SIZE) dataset already in $(DB) ($$n contacts)"; \
	  else echo "data: generating $(SIZE) in $(DB) ($$n contacts, seed $(SEED))"; \
	    time tests/tools/gendata.sh $(DB) $$n $(SEED); fi

psql:
	@$(DEMO_ENV); exec psql segplan_demo

stop:
	@$(CLUSTER) stop demo
	@$(CLUSTER) stop test

# ---- tests ------------------------------------------------------------------------------------
test: deps unit pgrx-test regress isolation client upgrade
	@echo "make test: all layers passed"

# pure-Rust core, no Postgres
unit:
	cargo test -p segplan-core

# #[pg_test] in a throwaway cluster pgrx starts (as the postgres OS user when run as root)
pgrx-test:
	@mkdir -p .pgdata; [ "$$(id -u)" != 0 ] || chown postgres .pgdata
	cargo pgrx test pg15 $(if $(filter 0,$(shell id -u)),--runas postgres,) --pgdata $(ROOT)/.pgdata/pgrx

# a clean regression database in the test cluster, with small generated data
regress-db: install
	@$(CLUSTER) start test $(TEST_PORT) segplan_regress
	@$(TEST_ENV); psql -X -q -d postgres -c "DROP DATABASE IF EXISTS segplan_regress WITH (FORCE)" -c "CREATE DATABASE segplan_regress"
	@$(TEST_ENV); $(PSQL) -d segplan_regress -f sql/datagen.sql \
	  -c "SET client_min_messages = warning" -c "SELECT demo.generate(3000, 7, '2026-11-01 00:00:00+00')" >/dev/null

regress: regress-db
	@$(TEST_ENV); $(PG_LIB)/pgxs/src/test/regress/pg_regress --use-existing --dbname=segplan_regress \
	  --host="$$PGHOST" --port=$(TEST_PORT) --user=postgres \
	  --inputdir=tests/pg_regress --outputdir=tests/pg_regress \
	  $$(cd tests/pg_regress/sql && ls *.sql | sed 's/\.sql$$//' | sort) \
	  || { cat tests/pg_regress/regression.diffs 2>/dev/null | head -200; exit 1; }

isolation: install
	@$(CLUSTER) start test $(TEST_PORT) segplan_regress
	@$(TEST_ENV); psql -X -q -d postgres -c "DROP DATABASE IF EXISTS segplan_isolation WITH (FORCE)" -c "CREATE DATABASE segplan_isolation"
	@$(TEST_ENV); $(PG_LIB)/pgxs/src/test/isolation/pg_isolation_regress --use-existing --dbname=segplan_isolation \
	  --host="$$PGHOST" --port=$(TEST_PORT) --user=postgres \
	  --inputdir=tests/isolation --outputdir=tests/isolation \
	  $$(cd tests/isolation/specs && ls *.spec | sed 's/\.spec$$//' | sort) \
	  || { cat tests/isolation/regression.diffs 2>/dev/null | head -200; exit 1; }

# an application-style client over the socket; pg_cron's scheduler attaches to the (recreated)
# regression database at server start, hence the restart
client: regress-db
	@$(TEST_ENV); psql -X -q -d segplan_regress -c "SET client_min_messages = warning" -c "CREATE EXTENSION IF NOT EXISTS pg_cron"
	@$(CLUSTER) restart test
	@$(TEST_ENV); PGDATABASE=segplan_regress python3 tests/client/test_client.py

# the released versions' install scripts go next to the current one, then each is updated and
# compared with a fresh install (tests/upgrade/check.sh)
upgrade: install
	@$(CLUSTER) start test $(TEST_PORT) segplan_regress
	@$(SUDO) install -m 644 tests/upgrade/segplan--0.1.0.sql "$$($(PG_CONFIG) --sharedir)/extension/"
	@$(TEST_ENV); tests/upgrade/check.sh

# ---- benchmark --------------------------------------------------------------------------------
# make bench [SIZE=XS|S|L] (default S): its own database per size, kept between runs.
BENCH_SIZE = $(if $(filter command line,$(origin SIZE)),$(SIZE),S)
bench: install
	@WITH_BENCH=1 tests/tools/deps.sh
	@$(MAKE) --no-print-directory data SIZE=$(BENCH_SIZE) DB=segplan_bench_$(shell echo $(BENCH_SIZE) | tr A-Z a-z) ONLY_IF_MISSING=1
	@$(DEMO_ENV); PGDATABASE=segplan_bench_$(shell echo $(BENCH_SIZE) | tr A-Z a-z) python3 bench/bench.py --size $(BENCH_SIZE)
