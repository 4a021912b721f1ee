# One entry point for newcomers, developers and CI. Every target installs what it needs.
SHELL := /bin/bash
export UV_PYTHON_DOWNLOADS := never
TOOLS := .tools
UV := $(shell command -v uv 2>/dev/null || echo $(TOOLS)/bin/uv)
PACKAGES := circus-process circus-watcher circus-sockets circus-ctl circus-arbiter
CONFIG ?= examples/circus.ini
SOAK_SECONDS ?= 90
SOAK_FLOOD_MB ?= 1024
# make test-loaded: which tests (default: all), how many busy loops (default: one per core)
PYTEST_ARGS ?=
LOAD_PROCS ?= 0

.PHONY: help install test test-fast test-loaded test-layers lint typecheck format run bench bench-small bench-10k soak build version clean

help:
	@echo "make run          start circusd on $(CONFIG) (installs the daemon first, no dev tools)"
	@echo "make test         every test of every package, in one pytest -n auto run"
	@echo "make test-fast    the same without the tests marked slow"
	@echo "make test-loaded  the tests with a busy loop on every core (PYTEST_ARGS=..., LOAD_PROCS=N)"
	@echo "make test-layers  each package's tests in an env holding only what it declares"
	@echo "make lint         ruff, mypy --strict per package, the import-linter layers contract"
	@echo "make build        the six wheels and sdists into dist/"
	@echo "make version V=X.Y.Z  one version into VERSION and every distribution"
	@echo "make bench        the benchmark table (bench/README.md)"
	@echo "make bench-10k    the 10,000-process rows (bench/README.md)"
	@echo "make soak         chaos for SOAK_SECONDS (90), then a SOAK_FLOOD_MB (1024) output flood"

$(TOOLS)/bin/uv:
	python3 -m venv $(TOOLS)
	$(TOOLS)/bin/pip install -q 'uv==0.13.*'

# uv itself: from PATH, else installed once into .tools/
UV_DEP := $(if $(shell command -v uv 2>/dev/null),,$(TOOLS)/bin/uv)

install: $(UV_DEP)
	$(UV) sync --locked

test: install
	$(UV) run --locked pytest -n auto

test-fast: install
	$(UV) run --locked pytest -n auto -m "not slow"

# The suite on a machine kept busy (scripts/with_load.py): a deadline too tight fails here.
test-loaded: install  # make test-loaded PYTEST_ARGS="tests/chaos -k storm" LOAD_PROCS=2
	$(UV) run --locked python scripts/with_load.py --procs $(LOAD_PROCS) -- \
	  pytest -n auto $(PYTEST_ARGS)

test-layers: install
	@set -e; for p in $(PACKAGES); do \
	  echo "== $$p alone"; \
	  $(UV) run --locked --isolated --package $$p --group dev pytest -p no:cacheprovider -n 2 packages/$$p; \
	done
	@echo "== circus-ctl[web] alone (the dashboard extra)"
	$(UV) run --locked --isolated --package circus-ctl --extra web --group dev pytest -p no:cacheprovider -n 2 packages/circus-ctl

lint: install typecheck
	$(UV) run --locked ruff check .
	$(UV) run --locked ruff format --check .
	$(UV) run --locked lint-imports

typecheck: install
	@set -e; for p in process watcher sockets ctl arbiter; do \
	  echo "== mypy circus.$$p"; $(UV) run --locked mypy -p circus.$$p; \
	done

format: install
	$(UV) run --locked ruff format .
	$(UV) run --locked ruff check --fix .

# Only what the daemon needs (no dev group: no pytest, playwright, ruff, mypy...); uv run's
# sync is inexact, so dev tools already installed by `make install` stay.
run: $(UV_DEP)
	$(UV) run --locked --no-dev circusd $(CONFIG)

bench: install
	$(UV) run --locked python bench/run.py

bench-small: install
	$(UV) run --locked python bench/run.py --small

# 10,000 processes: start, stop and RSS at 1,000 and 10,000 (RSS's target is Circus's at
# 1,000 + 20 MiB), idle CPU, round trips and the CLI call at 10,000 (RLIMIT_NOFILE 20,000:
# a hard limit that high, or root).
bench-10k: install
	ulimit -n 20000 && $(UV) run --locked python bench/run.py --ns 1000,10000 --metrics-n 10000 \
		--only start,stop,rss,idle_cpu,rtt,cli --runs 1

soak: install  # make soak SOAK_SECONDS=600 SOAK_FLOOD_MB=1024
	$(UV) run --locked python tests/chaos/soak.py --seconds $(SOAK_SECONDS) --flood-mb $(SOAK_FLOOD_MB)

build: install
	$(UV) build --all-packages -o dist

version:
	@test -n "$(V)" || { echo "usage: make version V=X.Y.Z"; exit 2; }
	python3 scripts/set_version.py $(V)
	$(UV) lock

clean:
	rm -rf .venv $(TOOLS) dist .pytest_cache .ruff_cache
