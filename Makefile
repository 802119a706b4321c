# One entry point for people and CI. Only `python3` and `make` need to exist:
# every target below builds .venv/ from the hashed lock file first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test test-unit test-integration test-chaos lint typecheck pytest gen lock bench screenshots clean

# The lock pins the server extra and the dev tools with hashes; the package
# itself goes in editable, with the server extra it runs as.
$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e '.[server]'
	touch $@

run: $(STAMP)
	$(BIN)/eventwire serve

# Everything CI runs: lint, types, and all three test tiers.
test: lint typecheck pytest

# The fast tier alone: pure logic, no sockets or processes, a few seconds.
test-unit: $(STAMP)
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

test-integration: $(STAMP)
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test-chaos: $(STAMP)
	$(BIN)/pytest tests/chaos $(PYTEST_ARGS)

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools deploy
	$(BIN)/ruff format --check src tests bench tools deploy

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# Regenerate src/eventwire/api from proto/ (a test fails when they drift).
gen: $(STAMP)
	$(BIN)/python tools/gen_proto.py

# docs/console/*.png: every page of the web console on a server with sample data,
# shot in Debian's chromium (~30 s; needs /usr/bin/chromium).
screenshots: $(STAMP)
	$(BIN)/python tools/screenshots.py

# Re-resolve every dependency (keeping the pins it can), with hashes. uv is
# fetched into .venv-lock/ on first use; it is never committed.
lock:
	test -x $(VENV)-lock/bin/uv || ($(PYTHON) -m venv $(VENV)-lock && $(VENV)-lock/bin/pip install --quiet uv)
	$(VENV)-lock/bin/uv pip compile --python-version 3.11 --generate-hashes --extra server --extra dev pyproject.toml -o requirements.lock

# ~10 minutes; installs h2load and wrk when missing. First issue 16's targets
# (bench/targets.py, ~5 min: U1 U2 U3 B1 T1 as ratios with min-max and server CPU
# per request; TARGETS_ARGS="--repeats 5 --profile --label after" for more), then
# the broad comparison with bare grpcio, FastAPI, Starlette and raw ASGI
# (bench/run.py, --quick by default: ~5 min; BENCH_ARGS= for its full ~35-minute
# run, BENCH_ARGS=skip to leave it out), then reads (bench/reads.py, ~3 min:
# 100 live watchers at 1,000 alerts/s with delivery p99 and server CPU, and
# QueryEvents on 1 M events on SQLite and PostgreSQL; READS_ARGS="--only
# live,query,index,retention" for all its sections, READS_ARGS=skip to leave it
# out), then tracking plans (bench/plans.py, ~1 min: 1,000-event TrackEvents with a
# 50-event plan vs none, side by side; PLANS_ARGS=skip to leave it out), then the
# console (bench/console.py, ~2 min: ingest with the console absent, closed and with
# one Live page open in headless chromium; CONSOLE_ARGS=skip to leave it out), then
# destinations (bench/relay.py, ~3 min: 100,000 events relayed to a local
# JetStream beside ingesting them, CPU per event of both; RELAY_ARGS=skip to
# leave it out). Writes bench/results/targets.*, bench.*, reads.*, plans.md and
# console.md, and the README's
# Performance section from the first two; appends every measurement to
# bench/results/history.jsonl (bench/compare.py BASE NEW compares revisions).
TARGETS_ARGS ?=
BENCH_ARGS   ?= --quick
READS_ARGS   ?= --only live,query
PLANS_ARGS   ?=
CONSOLE_ARGS ?= --repeats 3 --seconds 5
RELAY_ARGS   ?= --rounds 3
bench: $(STAMP)
	$(BIN)/python bench/targets.py $(TARGETS_ARGS)
	test "$(BENCH_ARGS)" = skip || $(BIN)/python bench/run.py $(BENCH_ARGS)
	test "$(READS_ARGS)" = skip || $(BIN)/python bench/reads.py $(READS_ARGS)
	test "$(PLANS_ARGS)" = skip || $(BIN)/python bench/plans.py $(PLANS_ARGS)
	test "$(CONSOLE_ARGS)" = skip || $(BIN)/python bench/console.py $(CONSOLE_ARGS)
	test "$(RELAY_ARGS)" = skip || $(BIN)/python bench/relay.py $(RELAY_ARGS)

clean:
	rm -rf $(VENV) $(VENV)-lock .mypy_cache .ruff_cache .pytest_cache
