# lifecircle — two commands do everything on a fresh machine:
#   make demo   builds the (synthetic) Tancheng demonstration and writes maps/*.html
#   make test   installs the dev dependencies and runs lint, type checks and the whole test suite
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip

.PHONY: demo test test-fast install install-dev lint format typecheck pytest bench bench-scaling clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip "setuptools>=77" wheel

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install -q -e '.[dev]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

demo: $(VENV)/.installed
	$(BIN)/lifecircle demo

# ruff (style, imports, complexity), ruff format (layout), and the layer contract (import-linter):
# a module may import only modules on lower layers (see docs/architecture.md).
lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests scripts
	$(BIN)/ruff format --check src tests scripts
	$(BIN)/lint-imports

format: $(VENV)/.installed-dev
	$(BIN)/ruff format src tests scripts
	$(BIN)/ruff check --fix src tests scripts

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# pytest exits 5 when it collected no test: for this project that means something is broken,
# so it is reported as a failure, never as success.
pytest: $(VENV)/.installed-dev
	@$(BIN)/python -m pytest -q --cov=lifecircle --cov-report=term:skip-covered --cov-fail-under=80 $(PYTEST_ARGS); \
	  rc=$$?; if [ $$rc -eq 5 ]; then echo "pytest collected no tests: failing"; exit 1; fi; exit $$rc

test: lint typecheck pytest

# The quick lane: lint, types and every test not marked slow (browser, wheel, Dask cluster, fuzzing).
test-fast: lint typecheck
	@$(BIN)/python -m pytest -q -m "not slow and not browser" $(PYTEST_ARGS)

bench: $(VENV)/.installed-dev
	$(BIN)/python scripts/bench_engine.py
	$(BIN)/python scripts/bench_service_areas.py
	$(BIN)/python scripts/bench_scoring.py
	$(BIN)/python scripts/bench_population.py
	$(BIN)/python scripts/bench_inputs.py
	$(BIN)/python scripts/bench_batch.py
	$(BIN)/python scripts/bench_grids.py

# Scaling from 50k to 1M junctions, straight and bent streets (long: see the script's --help).
bench-scaling: $(VENV)/.installed-dev
	$(BIN)/python scripts/bench_scaling.py

clean:
	rm -rf .pytest_cache .mypy_cache .ruff_cache .lifecircle_cache out
