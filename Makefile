# riskrelay: `make demo` runs the whole system on the embedded stack; `make test` runs the tests.
# Only Python (>= 3.11) and pip are needed: setup installs uv through pip when it is missing.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_PYTHON_DOWNLOADS := never
export PYTHONDONTWRITEBYTECODE := 1
export XDG_RUNTIME_DIR ?= /tmp/riskrelay-runtime-$(shell id -u)
PYTHON ?= python3
UV := $(shell command -v uv 2>/dev/null || echo "$(PYTHON) -m uv")
RUN := $(UV) run --frozen
PYTEST_ARGS ?=

.PHONY: help setup demo test test-unit test-integration lint format schemas contracts bench faults eval clean

help:  ## Show the targets.
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-18s %s\n", $$1, $$2}'

setup:  ## Install uv (through pip) if missing, then the workspace from the lockfile.
	@mkdir -p -m 0700 "$$XDG_RUNTIME_DIR" && chmod 0700 "$$XDG_RUNTIME_DIR"  # platformdirs insists on 0700
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "riskrelay needs Python >= 3.11; found " + sys.version.split()[0])'
	@command -v uv >/dev/null 2>&1 || $(PYTHON) -m uv --version >/dev/null 2>&1 || { \
		echo "installing uv with pip…"; \
		$(PYTHON) -m pip install --quiet --disable-pip-version-check uv \
		|| $(PYTHON) -m pip install --quiet --disable-pip-version-check --user uv; }
	@$(UV) sync --frozen --python "$$($(PYTHON) -c 'import sys; print(sys.executable)')"
	@$(RUN) python -m riskrelay.intake.encoder build --threads 2
	@bash scripts/ensure-promtool.sh || echo "promtool missing: the Prometheus config test will skip (fails under CI=true)"
	@bash scripts/ensure-chromium.sh || { if [ -n "$$CI" ]; then exit 1; fi; echo "chromium unavailable: the dashboard browser test will be skipped"; }
	@$(RUN) bash scripts/ensure-kafka.sh || { if [ -n "$$CI" ]; then exit 1; fi; echo "Apache Kafka unavailable: RISKRELAY_TEST_BROKER=kafka and dev up --broker kafka will fail"; }

demo: setup  ## Start broker, database and all five services, then publish sample traffic.
	$(RUN) riskrelay dev up --sample 500

test: setup lint  ## Lint, then every test (unit, integration on the real broker and PostgreSQL, e2e).
	$(RUN) pytest $(PYTEST_ARGS)

# Tests must pass on any date: CI runs them again with the clock of the tests, the services and
# the embedded PostgreSQL moved (scripts/moved-clock.sh says how and what is not moved). Left out:
# the unit tests of code that reads no clock (intake's domain, deployment files, the offline
# evaluation); intake's one clock read, the flag-rates default window, is an integration test.
MOVED_CLOCK ?= +1 year
MOVED_CLOCK_SKIP := --ignore=tests/unit/intake --ignore=tests/unit/deploy --ignore=tests/unit/eval
.PHONY: test-moved-clock
test-moved-clock: setup  ## The tests again with the clock moved to MOVED_CLOCK (`date -d` syntax; default a year ahead).
	$(RUN) bash scripts/moved-clock.sh "$(MOVED_CLOCK)" pytest $(MOVED_CLOCK_SKIP) $(PYTEST_ARGS)

test-unit: setup  ## Pure tests only.
	$(RUN) pytest -m unit $(PYTEST_ARGS)

test-integration: setup  ## Tests against the real broker and PostgreSQL.
	$(RUN) pytest -m "integration or e2e" $(PYTEST_ARGS)

lint: setup  ## ruff (lint and format check) and mypy (--strict on the shared package).
	$(RUN) ruff check .
	$(RUN) ruff format --check .
	$(RUN) mypy shared/src
	$(RUN) mypy services/intake/src services/classifier/src services/escalator/src services/register/src services/reporting/src

format: setup  ## Apply ruff's fixes and formatting.
	$(RUN) ruff check --fix .
	$(RUN) ruff format .

contracts: setup  ## Regenerate the committed AsyncAPI and OpenAPI documents (docs/contracts).
	$(RUN) python -m riskrelay.contracts docs/contracts

schemas: setup  ## Regenerate the committed JSON Schemas of every event type.
	$(RUN) python -m riskrelay.shared.schemas shared/schemas

BENCH_EVENTS ?= 20000
BROKER ?=
# BROKER=kafka runs the ladder on tansu and then on Apache Kafka, in one run; the default, tansu.
bench: setup  ## Benchmarks: throughput ladder (raw aiokafka vs each service), timers, reports; figures in bench/results/.
	$(RUN) python bench/services.py --events $(BENCH_EVENTS) --latency-rate 200 $(if $(filter kafka,$(BROKER)),--broker tansu --broker kafka)
	@for script in bench/escalator_timers.py bench/reporting_monthly.py bench/encoder.py bench/surges.py; do \
		if [ -f "$$script" ]; then echo "== $$script"; $(RUN) python "$$script" || exit 1; fi; \
	done

# BROKER=kafka runs on Apache Kafka (adds a broker restart); the default is tansu.
faults: setup  ## Fault injection: kills, broker pause, PostgreSQL restart, scaling, rebalance storm, malformed records; checks no loss, no duplicate effects, lag recovery (bench/results/faults.json).
	$(if $(BROKER),RISKRELAY_TEST_BROKER=$(BROKER) )$(RUN) python bench/faults.py

eval: setup  ## Measure detection on data never trained on (CLINC150 validation, held-out sentences), then rules and policy on the labelled set (eval/).
	$(RUN) python -m riskrelay.detection_eval
	$(RUN) python -m riskrelay.evaluation

clean:  ## Remove the dev stack's data and caches.
	rm -rf .riskrelay .pytest_cache .mypy_cache .ruff_cache
