# The entry points people and CI use. `make test` and `make demo` work on a fresh machine.
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help venv test unit lint fmt docs typecheck demo image kafka-up kafka-down kafka-status kafka-reset sandbox bench bench-side chaos clean

help:
	@echo "make demo        broker + sandbox + bridge + sample events; prints what Meisa received"
	@echo "make test        lint, types and every test (starts the broker if needed, stops it after)"
	@echo "make unit        unit tests only (no broker)"
	@echo "make lint        ruff lint + format check, mypy --strict bridge"
	@echo "make docs        regenerate docs/configuration.md from the settings models"
	@echo "make kafka-up / kafka-down / kafka-status / kafka-reset   the local broker"
	@echo "make sandbox     run the Meisa sandbox on 127.0.0.1:8080"
	@echo "make bench       run the benchmarks in bench/"
	@echo "make bench-side  the bridge vs a Go (Benthos) pipeline vs a naive loop, clean and faulty"
	@echo "make image       the container images (Docker engine and base images prepared if needed)"
	@echo "make chaos       bridges under faults, checked by an oracle (PROFILE=short|long, SEED=N)"

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	scripts/test.sh

unit: $(STAMP)
	$(BIN)/pytest tests/unit

lint: $(STAMP)
	$(BIN)/ruff check bridge tests bench scripts chaos
	$(BIN)/ruff format --check bridge tests bench scripts chaos
	$(BIN)/mypy bridge

docs: $(STAMP)
	$(BIN)/meisa-bridge config-doc --output docs/configuration.md

fmt: $(STAMP)
	$(BIN)/ruff format bridge tests bench scripts chaos
	$(BIN)/ruff check --fix bridge tests bench scripts chaos

demo: $(STAMP)
	scripts/demo.sh

kafka-up:
	scripts/kafka.sh start

kafka-down:
	scripts/kafka.sh stop

kafka-status:
	scripts/kafka.sh status

kafka-reset:
	scripts/kafka.sh reset

sandbox: $(STAMP)
	$(BIN)/meisa-bridge sandbox --port 8080

bench: $(STAMP)
	scripts/bench.sh

bench-side: $(STAMP)
	scripts/bench.sh bench/side_by_side.py

image:
	scripts/images.sh build

chaos: $(STAMP)
	scripts/chaos.sh

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
