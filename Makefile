# Two commands on a fresh machine: `make run` (the main job on the embedded default target) and
# `make test` (lint, strict type check, all tests against real PowerDNS and moto servers).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run venv system-deps lint typecheck test bench clean

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $@

venv: $(BIN)/.installed

system-deps:
	scripts/install-system-deps
	scripts/install-gitlab-ci-local >/dev/null

# The main job: check every declaration, show the records, plan and apply them to build/dns
# (the embedded target only, approved here: make run never writes to a cloud target).
run: venv
	$(BIN)/provisioner validate
	$(BIN)/provisioner records
	$(BIN)/provisioner plan
	$(BIN)/provisioner apply --auto-approve --target local

lint: venv
	$(BIN)/ruff check provisioner tests benchmarks
	$(BIN)/check-jsonschema --schemafile schemas/institution.schema.json zones/*.yaml
	$(BIN)/check-jsonschema --schemafile schemas/platform.schema.json provisioner.yaml

typecheck: venv
	$(BIN)/mypy

test: system-deps venv lint typecheck
	$(BIN)/pytest -q -n auto $(PYTEST_ARGS)

bench: venv
	$(BIN)/python -m benchmarks.bench_core

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
