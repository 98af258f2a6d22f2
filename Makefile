# The two commands a newcomer needs: `make run` and `make test`.
VENV ?= .venv
# The Pythons mailsync supports (pyproject.toml's requires-python and classifiers). Without
# PYTHON=, the newest of them on the PATH that runs (a pyenv shim of an unselected version does
# not), else python3; an unsupported interpreter stops the install with a message naming these.
SUPPORTED_PYTHONS := 3.13 3.12 3.11
ifeq ($(origin PYTHON),undefined)
PYTHON := $(firstword $(foreach v,$(SUPPORTED_PYTHONS),$(shell python$(v) -c '' >/dev/null 2>&1 \
	&& echo python$(v))) python3)
endif
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
CODE := core api workers cli bench

.PHONY: run test lint format schema schema-baseline lock bench screenshots clean

# $(call check_python,INTERPRETER,ADVICE): stop with a clear message unless it is supported.
define check_python
$(1) -c 'import sys; sys.exit("%d.%d" % sys.version_info[:2] not in "$(SUPPORTED_PYTHONS)".split())' \
	2>/dev/null || { echo "mailsync supports Python 3.11, 3.12 and 3.13 (python3.13 is tried first, \
	then 3.12, 3.11, python3); $(1) is $$($(1) --version 2>/dev/null || echo 'not a runnable interpreter'). $(2)" >&2; exit 1; }
endef

# (Re)install when the lock or the project metadata changes: exact pins from requirements.lock.
$(STAMP): requirements.lock pyproject.toml
	@test -x $(BIN)/python || $(call check_python,$(PYTHON),Install one or pass PYTHON=python3.x.)
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@$(call check_python,$(BIN)/python,Run make clean to rebuild $(VENV) with a supported one.)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements.lock
	$(BIN)/python -m pip install --quiet --no-deps -e .
	touch $(STAMP)

# make run PORT=8001 IMAP_PORT=1144 SMTP_PORT=1588: the API's and the demo servers' ports;
# DATA_DIR=...: where the embedded databases, the demo token and the keys are kept.
PORT ?= 8000
IMAP_PORT ?= 1143
SMTP_PORT ?= 1587
DATA_DIR ?= .mailsync
run: $(STAMP)
	$(BIN)/mailsync dev --port $(PORT) --imap-port $(IMAP_PORT) --smtp-port $(SMTP_PORT) \
		--data-dir $(DATA_DIR)

# make test SKIP_SLOW=1: leave out the tests marked slow (fault tests with private servers and
# worker processes, hostile mail servers; several minutes); pytest reports them as deselected.
# CI runs everything. PYTEST_ARGS: any other pytest arguments.
test: $(STAMP)
	$(BIN)/pytest $(if $(SKIP_SLOW),-m "not slow") $(PYTEST_ARGS)

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
	$(BIN)/uv pip compile pyproject.toml --extra embedded --extra dev --universal \
		-o requirements.lock

# Benchmarks (print figures and ratios; not timed tests): BENCH=sync (bench/sync_bench.py, needs
# Dovecot and mbsync, installed when missing) and BENCH=inbox (bench/inbox_bench.py: loads 1M
# messages, several minutes); BENCH=hardening (bench/hardening_check.py: the hardening attacks'
# figures against a separate `mailsync api` process); BENCH=image (bench/image_check.py: builds
# the Containerfile with podman and syncs a mailbox through its api and worker); BENCH=realtime
# (bench/realtime_bench.py: IDLE push latency against polling, SIGKILL takeover, 1,000 idle
# watchers' RSS and CPU); BENCH=scale (bench/scale_bench.py: 3 workers and 2 API processes over
# 200 accounts: interval coverage, backends per process, the scheduler's tick); BENCH=load
# (bench/load_bench.py: wrk against `mailsync api` and a bare asyncpg floor at 1-500
# connections, needs /usr/bin/wrk, installed when missing). Servers: MAILSYNC_TEST_DATABASE_URL /
# MAILSYNC_TEST_REDIS_URL when
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
ifneq ($(filter realtime,$(BENCH)),)
	@test -x /usr/sbin/dovecot -a -x /usr/lib/dovecot/imap || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dovecot-imapd; }
	$(BIN)/python -m bench.realtime_bench $(BENCH_ARGS)
endif
ifneq ($(filter load,$(BENCH)),)
	@test -x /usr/bin/wrk || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y wrk; }
	@test -x /usr/sbin/dovecot -a -x /usr/lib/dovecot/imap || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dovecot-imapd; }
	$(BIN)/python -m bench.load_bench $(BENCH_ARGS)
endif
ifneq ($(filter hardening,$(BENCH)),)
	$(BIN)/python -m bench.hardening_check
endif
ifneq ($(filter scale,$(BENCH)),)
	@test -x /usr/sbin/dovecot -a -x /usr/lib/dovecot/imap || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends dovecot-imapd; }
	$(BIN)/python -m bench.scale_bench $(BENCH_ARGS)
endif
ifneq ($(filter image,$(BENCH)),)
	@command -v podman >/dev/null && command -v runc >/dev/null && command -v mmdebstrap >/dev/null || { apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y podman runc mmdebstrap; }
	$(BIN)/python -m bench.image_check $(BENCH_ARGS)
endif

# The web app's screens as PNGs in docs/screenshots (the README shows some): the browser tests
# (tests/web) save each screen they check with axe-core there; 1280x900, about a minute.
SCREENSHOTS_DIR ?= docs/screenshots
screenshots: $(STAMP)
	MAILSYNC_SCREENSHOTS_DIR=$(abspath $(SCREENSHOTS_DIR)) $(BIN)/pytest -q -p no:cacheprovider tests/web

clean:
	rm -rf $(VENV) .mailsync .pytest_cache .mypy_cache .ruff_cache
