# Developer commands. `make test` is what CI runs (through .ci/run) on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CLUSTER ?= local
PYTEST_ARGS ?=

.PHONY: venv test unit e2e lint fmt cluster-up cluster-down cluster-status demo bench bench-smoke clean

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,otlp]'
	touch $@

venv: $(VENV)/.installed

## test: unit tests, then e2e tests on the local control plane (built and started on demand)
test: unit e2e

unit: venv
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

## e2e: CLUSTER=local (default) | kind | existing
e2e: venv
	$(BIN)/pytest tests/e2e -q --cluster=$(CLUSTER) $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy

fmt: venv
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

cluster-up: venv
	bash hack/local-cluster.sh up

cluster-down:
	bash hack/local-cluster.sh down

cluster-status:
	bash hack/local-cluster.sh status

## demo: local control plane + operator + sample sessions, the lifecycle live
demo: venv
	bash hack/demo.sh

## bench: N sessions over M namespaces (see bench/README.md for every knob)
bench: venv
	$(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
