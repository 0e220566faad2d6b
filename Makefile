# Conveyor: `make demo` runs the whole pipeline on the embedded default; `make test` runs
# every test against real services that it installs and starts itself.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

VERSION ?= $(shell git describe --tags --always --dirty 2>/dev/null || echo dev)
VENV := .venv
PY := $(VENV)/bin/python
GO_LDFLAGS := -s -w -X main.version=$(VERSION)

.PHONY: help
help: ## list targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(VENV)/.stamp: python/pyproject.toml python/constraints.txt example/requirements.txt e2e/requirements.txt
	python3 -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -c python/constraints.txt -e 'python[dev]' -r example/requirements.txt -r e2e/requirements.txt
	touch $@

.PHONY: venv
venv: $(VENV)/.stamp ## create the Python virtualenv with django-conveyor and the example

.PHONY: build
build: ## build bin/conveyor
	CGO_ENABLED=0 go build -trimpath -ldflags '$(GO_LDFLAGS)' -o bin/conveyor ./cmd/conveyor

.PHONY: services
services: venv ## install and start PostgreSQL, MariaDB and nats-server on loopback; build the migrated templates
	scripts/services.sh up
	scripts/services.sh templates

.PHONY: demo
demo: venv build ## run the pipeline end to end on SQLite + embedded NATS and print a report
	scripts/demo.sh

.PHONY: lint
lint: venv ## gofmt, go vet, staticcheck, ruff, mypy
	scripts/lint.sh

.PHONY: test
test: services build ## every test: lint, Go (-race) and Python, against real services
	scripts/lint.sh
	scripts/test.sh

.PHONY: test-go
test-go: services build ## Go tests only
	scripts/test.sh go

.PHONY: test-python
test-python: services ## Python tests only
	scripts/test.sh python

.PHONY: soak
soak: services build ## the long guarantees suite (50k events, 30 s broker outage, more kills)
	CONVEYOR_SOAK=1 scripts/test.sh guarantees

.PHONY: bench
bench: services build ## benchmark report in bench/results/ (BENCH_SIZE=small for a quick run)
	bench/run.sh $(BENCH_ARGS)

.PHONY: bench-quick
bench-quick: services build ## the benchmark at small sizes into build/bench: checks the harness, asserts no speed
	BENCH_SIZE=small bench/run.sh -results build/bench $(BENCH_ARGS)

.PHONY: clean
clean: ## remove build outputs (keeps services running)
	rm -rf bin build .cache/template.sqlite3
