# One entry point for people and CI. Only `python3` and `make` need to exist:
# every target below builds .venv/ from the hashed lock file first.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest gen lock bench clean

$(STAMP): pyproject.toml requirements.lock
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes --no-deps -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

run: $(STAMP)
	$(BIN)/eventwire serve

test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check src tests bench tools
	$(BIN)/ruff format --check src tests bench tools

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest $(PYTEST_ARGS)

# Regenerate src/eventwire/api from proto/ (a test fails when they drift).
gen: $(STAMP)
	$(BIN)/python tools/gen_proto.py

# Re-resolve every dependency to the newest allowed versions, with hashes.
lock:
	test -x $(VENV)-lock/bin/uv || ($(PYTHON) -m venv $(VENV)-lock && $(VENV)-lock/bin/pip install --quiet uv)
	$(VENV)-lock/bin/uv pip compile --python-version 3.11 --generate-hashes --extra dev pyproject.toml -o requirements.lock

# eventwire vs bare grpcio, FastAPI, Starlette and raw ASGI; installs h2load and wrk
# when missing. BENCH_ARGS=--quick for ~5 minutes. Writes bench/results/bench.*
# and the README's Performance section (see bench/run.py).
bench: $(STAMP)
	$(BIN)/python bench/run.py $(BENCH_ARGS)

clean:
	rm -rf $(VENV) $(VENV)-lock .mypy_cache .ruff_cache .pytest_cache
