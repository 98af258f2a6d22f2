# The two commands a newcomer needs: `make run` and `make test`.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CODE := core api workers cli bench

.PHONY: run test lint format schema schema-baseline lock bench clean

# (Re)install when the lock or the project metadata changes: exact pins from requirements.lock.
$(STAMP): requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# make run PORT=8001 IMAP_PORT=1144 SMTP_PORT=1588: the API's and the demo servers' ports.
PORT ?= 8000
IMAP_PORT ?= 1143
SMTP_PORT ?= 1587
run: $(STAMP)
	$(BIN)/mailsync dev --port $(PORT) --imap-port $(IMAP_PORT) --smtp-port $(SMTP_PORT)

# make test SKIP_SLOW=1: leave out the tests marked slow (worker processes against hostile
# mail servers, a few minutes); pytest reports them as deselected. CI runs everything.
test: $(STAMP)
	$(BIN)/pytest $(if $(SKIP_SLOW),-m "not slow")

lint: $(STAMP)
	$(BIN)/ruff check $(CODE) tests migrations
	$(BIN)/ruff format --check $(CODE) tests migrations
	$(BIN)/mypy $(CODE)

format: $(STAMP)
	$(BIN)/ruff check --fix $(CODE) tests migrations
	$(BIN)/ruff format $(CODE) tests migrations

# Export the GraphQL SDL; tests/test_schema.py fails when schema.graphql is stale.
schema: $(STAMP)
	$(BIN)/python -c "from api.graphql.schema import schema; print(schema.as_str())" > schema.graphql

# At a release: the current schema becomes what clients are known to use (tests/test_schema.py
# then fails on any break from it that is not declared there).
schema-baseline: schema
	{ sed -n '/^# /p;/^[^#]/q' tests/schema_baseline.graphql; cat schema.graphql; } > tests/schema_baseline.graphql.new
	mv tests/schema_baseline.graphql.new tests/schema_baseline.graphql

# Re-pin every dependency after editing pyproject.toml.
lock: $(STAMP)
	$(BIN)/python -m pip install --quiet uv
	$(BIN)/uv pip compile pyproject.toml --extra embedded --extra dev --python-version 3.11 \
		-o requirements.lock

# Benchmarks (print figures and ratios; not timed tests): BENCH=sync (bench/sync_bench.py, needs
# Dovecot and mbsync, installed when missing) and BENCH=inbox (bench/inbox_bench.py: loads 1M
# messages, several minutes); BENCH=hardening (bench/hardening_check.py: the hardening attacks'
# figures against a separate `mailsync api` process). Servers: MAILSYNC_TEST_DATABASE_URL / MAILSYNC_TEST_REDIS_URL when
# set, else embedded ones. One benchmark with options: make bench BENCH=inbox BENCH_ARGS=--help
BENCH ?= sync inbox
bench: $(STAMP)
ifneq ($(filter sync,$(BENCH)),)
	@command -v mbsync >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y isync; }
	@test -x /usr/sbin/dovecot -a -x /usr/lib/dovecot/imap || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dovecot-imapd; }
	$(BIN)/python -m bench.sync_bench $(BENCH_ARGS)
endif
ifneq ($(filter inbox,$(BENCH)),)
	$(BIN)/python -m bench.inbox_bench $(BENCH_ARGS)
endif
ifneq ($(filter hardening,$(BENCH)),)
	$(BIN)/python -m bench.hardening_check
endif

clean:
	rm -rf $(VENV) .mailsync .pytest_cache .mypy_cache .ruff_cache
