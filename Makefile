# Two commands on a fresh machine: `make run` (the main job on the embedded default target) and
# `make test` (lint, strict type check, all tests against real PowerDNS and moto servers).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run venv system-deps lint typecheck test bench clean

# pip's and setuptools' own chatter goes to $(VENV)/install.log, shown only if the install fails.
# domainconnectzone (Domain Connect's reference implementation, for the simulated apply) goes in
# without its declared dependencies: it asks for dnspython3, a shim pinning dnspython 1.15,
# which octoDNS and the product cannot run on; it runs on dnspython 2 (measured: its one use is
# dns.resolver), and its other dependencies are the extra "domainconnect".
$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -m venv $(VENV) || { echo "make: cannot create $(VENV): install python3-venv (apt-get install python3-venv)" >&2; exit 1; }
	@echo "installing mailauth-provisioner into $(VENV) (log: $(VENV)/install.log)"
	@{ $(BIN)/pip install -q --disable-pip-version-check --upgrade pip && \
	   $(BIN)/pip install -q --disable-pip-version-check -e '.[dev,domainconnect,dmarc]' && \
	   $(BIN)/pip install -q --disable-pip-version-check --no-deps 'domainconnectzone==4.0.0'; \
	 } >$(VENV)/install.log 2>&1 || { tail -20 $(VENV)/install.log >&2; exit 1; }
	@touch $@

venv: $(BIN)/.installed

system-deps:
	@scripts/install-system-deps
	@scripts/install-gitlab-ci-local >/dev/null

# The main job: check every declaration, then plan and apply them to build/dns, the plan shown
# once and a closing line each (the embedded target only, approved here: make run never
# writes to a cloud target, whatever default_target says).
run: venv
	@$(BIN)/provisioner validate
	@$(BIN)/provisioner apply --auto-approve --target local

lint: venv
	$(BIN)/ruff check provisioner tests benchmarks
	$(BIN)/check-jsonschema --schemafile schemas/institution.schema.json zones/*.yaml
	$(BIN)/check-jsonschema --schemafile schemas/platform.schema.json provisioner.yaml

typecheck: venv
	$(BIN)/mypy

test: system-deps venv lint typecheck
	$(BIN)/pytest -q -n auto $(PYTEST_ARGS)

bench: venv
	@scripts/install-system-deps --bench
	$(BIN)/python -m benchmarks.bench_core

clean:
	rm -rf build .pytest_cache .mypy_cache .ruff_cache
