# Khidma: `make run` starts the whole system embedded, `make test` runs every test.
# Both create the virtual environment and install the pinned project on first use.

PYTHON ?= $(shell command -v python3.11 || command -v python3.12 || command -v python3)
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp

.PHONY: install lint run test test-bench browser screenshots test-browser bench-web bench-batches bench-capacity bench-coldstart test-unit test-integration test-e2e test-postgres simulate bench bench-fsync chaos bench-audit audit audit-api schemas docs docs-check compose-check clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Khidma needs Python 3.11 or newer")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

run: $(STAMP)
	$(PY) -m khidma.run

# ruff (lint and format) and mypy over the code; `make test` runs it first.
lint: $(STAMP)
	$(VENV)/bin/ruff check shared services audit khidma
	$(VENV)/bin/ruff format --check shared services audit khidma
	$(VENV)/bin/mypy

# Two pytest sessions side by side (khidma/testsuite.py): the browser and end-to-end
# tests, and the rest. `$(PY) -m pytest` runs the same tests one after the other.
test: $(STAMP) lint browser
	$(PY) -m khidma.testsuite $(ARGS)

# Debian's chromium for the browser tests (Playwright's own download cannot work here).
browser: $(STAMP)
	$(PY) -m khidma.browser

# The screens in both languages, as the browser tests see them, into docs/screenshots.
screenshots: $(STAMP) browser
	KHIDMA_WEB_ALL_LANGUAGES=1 KHIDMA_SCREENSHOTS=docs/screenshots $(PY) -m pytest tests/browser -q

# Every browser test in Arabic and in English (make test runs half the screens' tests
# in each language, and the sign-in and the journey in both).
test-browser: $(STAMP) browser
	KHIDMA_WEB_ALL_LANGUAGES=1 $(PY) -m pytest tests/browser -q

# The benchmarks run small: that each still runs and reports (make bench for figures).
test-bench: $(STAMP)
	$(PY) -m pytest -m bench_smoke

test-unit: $(STAMP)
	$(PY) -m pytest -m unit

test-integration: $(STAMP)
	$(PY) -m pytest -m integration

test-e2e: $(STAMP) browser
	$(PY) -m pytest -m e2e

# The tests that need the PostgreSQL at 127.0.0.1:5432 (CI=true makes them fail, not skip, without it).
test-postgres: $(STAMP)
	$(PY) -m pytest -m postgres

# docker-compose.yml without Docker: the specification's schema, then its services run locally.
compose-check: $(STAMP)
	$(PY) -m pytest tests/integration/test_compose.py

# Drives cases through a running system (`make run` in another terminal).
simulate: $(STAMP)
	$(PY) -m khidma.simulate $(ARGS)

# The simulator's cases, then a short capacity run (make bench-capacity for the full one).
bench: $(STAMP)
	$(PY) -m khidma.bench $(ARGS)
	$(PY) -m khidma.bench_capacity --requests 300

# What `sync_interval: always` costs a windowed JetStream publish (make bench includes it).
bench-fsync: $(STAMP)
	$(PY) -m khidma.bench_fsync $(ARGS)

# Kills services and restarts NATS under simulated cases, then checks nothing was lost,
# doubled or left stuck: make chaos ARGS="--cases 10000 --kills 30"
chaos: $(STAMP)
	$(PY) -m khidma.chaos $(ARGS)

# The auditors' command line on the data folder (read-only):
# make audit ARGS="compliance"   (replay | timeline REF | asof --hijri 1448-06-11 | crosscheck | verify | report ...)
audit: $(STAMP)
	KHIDMA_DATA_DIR=$${KHIDMA_DATA_DIR:-data} $(PY) -m audit $(ARGS)

# The read-only HTTP API for auditors, on KHIDMA_HTTP_PORT (default 8107).
audit-api: $(STAMP)
	KHIDMA_DATA_DIR=$${KHIDMA_DATA_DIR:-data} $(PY) -m audit.api

# The audit over a long history: replay rate, report build time, peak memory.
# make bench-audit ARGS="--events 1000000"
bench-audit: $(STAMP)
	$(PY) -m audit.bench $(ARGS)

schemas: $(STAMP)
	$(PY) -m shared.schemas docs/schemas

# AsyncAPI (docs/asyncapi.json, docs/asyncapi/) and OpenAPI (docs/openapi/) documents.
docs: $(STAMP) schemas
	$(PY) -m khidma.apidocs docs

docs-check: $(STAMP)
	$(PY) -m khidma.apidocs docs --check

clean:
	rm -rf data bench-results reports report .pytest_cache

# The web application's cases list over many cases (make bench includes it).
# make bench-web ARGS="--cases 100000"
bench-web: $(STAMP)
	$(PY) -m khidma.bench_web $(ARGS)

# A branch office's batch of 10,000 rows through a real system in a temporary folder
# (ARGS="--rows 2000 --concurrency 32 --again").
bench-batches: $(STAMP)
	$(PY) -m khidma.bench_batches $(ARGS)

# Complete requests through intake (HTTP, then NATS request/reply) to the last DataVerified,
# beside the same NATS server's raw floor; CPU and peak memory of each process (issue 14).
# make bench-capacity ARGS="--requests 2000 --concurrency 64 --store postgres"
bench-capacity: $(STAMP)
	$(PY) -m khidma.bench_capacity $(ARGS)

# A service's cold start on a long store, its read models rebuilt (issue 14).
# make bench-coldstart ARGS="--events 1000000 --store-dir /tmp/coldstart"
bench-coldstart: $(STAMP)
	$(PY) -m khidma.bench_coldstart $(ARGS)
