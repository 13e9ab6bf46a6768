# The two commands: `make demo` and `make test`. Both do all set-up first (Debian packages,
# Asterisk 22 built into ~/.cache/ccserver, the virtualenv, the desk's npm packages) and are
# quick the second time.
SHELL := /bin/bash
VENV := .venv
PY := $(VENV)/bin/python
CCSERVER := $(VENV)/bin/ccserver

.PHONY: setup system asterisk venv web demo test test-unit test-integration bench bench-router bench-forecast bench-roster fuzz \
	lint stop status clean

setup: system asterisk venv web

system:
	@bash scripts/setup-system.sh

asterisk: system
	@bash deploy/asterisk/build.sh

venv: system
	@bash scripts/setup-venv.sh

# The desk page's npm packages (sip.js), from web/package-lock.json.
web:
	@bash scripts/setup-web.sh

demo: setup
	@$(CCSERVER) demo

# The whole suite: unit, property and integration tests (real Asterisk, Redis, SIPp).
# ACD_CORE_REQUIRE_EXTENSION=1: fail at once if the compiled router did not build.
test: setup
	ACD_CORE_REQUIRE_EXTENSION=1 $(PY) -m pytest -m "not slow"

test-unit: venv
	ACD_CORE_REQUIRE_EXTENSION=1 $(PY) -m pytest -m "not integration and not slow"

test-integration: setup
	$(PY) -m pytest -m "integration and not slow"

# Compiled vs pure router on seeded workloads; prints the figures, writes docs/bench/router.json
# (with `meta`: commit, date, CPU) and regenerates the table of docs/routing.md from it.
bench-router: venv
	$(PY) tests/bench/bench_router.py --json docs/bench/router.json
	$(PY) scripts/bench_docs.py

# The forecast's holdout on fpp2 `calls`, model vs seasonal naive (seconds): writes
# docs/bench/forecast.json and regenerates the table of docs/workforce.md from it.
bench-forecast: venv
	$(PY) tests/bench/bench_forecast.py --json docs/bench/forecast.json
	$(PY) scripts/bench_docs.py

# Roster solve time and quality for 60 and 200 agents over four weeks (about 4 minutes):
# writes docs/bench/roster.json and regenerates the table of docs/workforce.md from it.
bench-roster: venv
	$(PY) tests/bench/bench_roster.py --json docs/bench/roster.json
	$(PY) scripts/bench_docs.py

# ccserver vs Asterisk's app_queue under the same SIPp load, plus the capacity search
# (a private stack; about 7 minutes), then the goal step alone as a test (the `slow` ones:
# 150 concurrent at 20 CPS, 0 failed; docs/bench/capacity_goal.json). Not part of `make
# test`. Writes docs/bench/vs_app_queue.json and regenerates docs/benchmarks.md's tables from
# it, also when a call failed (the exit status stays the bench's).
bench: setup
	$(PY) tests/bench/bench_vs_app_queue.py --json docs/bench/vs_app_queue.json; status=$$?; \
	ACD_CORE_REQUIRE_EXTENSION=1 $(PY) -m pytest -m slow tests/bench; goal=$$?; \
	$(PY) scripts/bench_docs.py && [ $$status -eq 0 ] && [ $$goal -eq 0 ]

# Long random fuzz campaigns (Hypothesis's `fuzz` profile, tests/fuzzing.py): 20 times the
# examples of `make test`, a new seed each run; failing inputs are saved to
# tests/fuzz-examples/ (commit them with the fix: `make test` replays them).
fuzz: setup
	$(PY) -m pytest -o addopts="-ra --strict-markers" --hypothesis-profile=fuzz \
		tests/property tests/integration/test_api_fuzz.py

lint: venv
	$(VENV)/bin/ruff check ccserver acd_core tests scripts
	$(VENV)/bin/ruff format --check ccserver acd_core tests scripts
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports

stop:
	@$(CCSERVER) stack down

status:
	@$(CCSERVER) stack status

clean: stop
	rm -rf var
