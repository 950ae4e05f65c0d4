# Developer commands. `make test` is what CI runs (through .ci/run) on a fresh clone.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
CLUSTER ?= local
PYTEST_ARGS ?=
KUBECTL ?= kubectl
IMG ?= quay.io/ambient_code/agentic-operator:v0.1.0
CONTAINER_TOOL ?= docker

.PHONY: venv test unit compat e2e lint fmt cluster-up cluster-down cluster-status demo bench bench-smoke clean \
	install uninstall deploy undeploy docker-build tools chart-lint

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev,otlp]'
	touch $@

venv: $(VENV)/.installed

## test: unit tests (with both kubernetes client majors), then e2e tests on the local control
## plane (built and started on demand; they include the Helm chart and a real Prometheus)
test: unit compat e2e

unit: venv
	$(BIN)/pytest tests/unit -q $(PYTEST_ARGS)

## compat: the client-facing unit tests again with the other supported kubernetes client major
compat: venv
	bash hack/client-compat.sh $(BIN)/python

## tools: helm, prometheus and promtool, built once from the Go module proxy (cached)
tools:
	bash hack/build-tools.sh

chart-lint: tools
	"$$(bash hack/build-tools.sh)/helm" lint --strict charts/agentic-operator

## install / uninstall: the CRDs (uninstall deletes every AgenticSession in the cluster)
install:
	$(KUBECTL) apply --server-side -k manifests/crd

uninstall:
	$(KUBECTL) delete --ignore-not-found -k manifests/crd

## deploy / undeploy: the operator (cluster-wide); never touches the CRDs or the sessions
deploy:
	$(KUBECTL) apply -k manifests

undeploy:
	$(KUBECTL) delete --ignore-not-found -k manifests

## docker-build: the operator image; needs Docker (or CONTAINER_TOOL=podman/buildah with BuildKit
## syntax), which CI does not have: the tests run the operator from the source tree instead
docker-build:
	$(CONTAINER_TOOL) build -t $(IMG) .

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
