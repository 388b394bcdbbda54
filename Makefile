# Two commands matter: `make demo` and `make test`. Each sets up .venv itself and is safe to rerun.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(PY) -m pip
STAMP := $(VENV)/.installed
export JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION := 20
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export AWS_ACCOUNT_ID_ENDPOINT_MODE := disabled

.PHONY: setup browser demo test test-fast lint typecheck synth bench clean lock

setup: $(STAMP) browser

# Headless Chromium for the browser tests (tests/browser.py): Debian's package, no driver, nothing
# downloaded at run time. Installs once, as root; a test that cannot find it fails, never skips.
browser:
	@command -v chromium >/dev/null || test -n "$$DYNEMBED_CHROMIUM" || { \
	  test "$$(id -u)" = 0 || { echo "make browser: chromium is missing; install it as root (apt-get install chromium)" >&2; exit 1; }; \
	  apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q --no-install-recommends chromium fonts-dejavu-core; }

# torch first, pinned: the CPU build this machine image carries. Unpinned, pip pulls a 5 GB CUDA build.
$(STAMP): pyproject.toml constraints.txt
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 11), "dynembed needs Python 3.11+"'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --disable-pip-version-check pip==25.3
	$(PIP) install -q --disable-pip-version-check torch==2.13.0
	$(PIP) install -q --disable-pip-version-check -c constraints.txt -e '.[local,models,infra,bench,dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/dynembed demo

# The unit tier's own coverage of the runtime package, from the same run (tests/plugins/unit_guard.py
# labels each test's lines `unit` or `other`; start-up and collection, which a `pytest -m unit` run
# goes through too, count as unit: the empty context and `unit`). The adapters are left out of this figure only: they
# need moto or osmem-server, so the integration tier covers them (see [tool.coverage] in pyproject).
UNIT_COVERAGE_OMIT := */dynembed/adapters/*,*/dynembed/index/opensearch.py,*/dynembed/embedders/local.py

test: $(STAMP) browser
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy
	$(PY) -m pytest --cov --cov-report=term:skip-covered -q
	@echo "unit tier (tests marked unit: no sockets, no moto), coverage of the runtime package dynembed:"
	$(PY) -m coverage report --contexts='^(unit)?$$' --include='*/layers/core/dynembed/*' --omit='$(UNIT_COVERAGE_OMIT)' --skip-covered --fail-under=90

test-fast: $(STAMP)
	$(PY) -m pytest -q -m "unit"

lint: $(STAMP)
	$(VENV)/bin/ruff check . && $(VENV)/bin/ruff format --check .

typecheck: $(STAMP)
	$(VENV)/bin/mypy

synth: $(STAMP)
	cd infra && { test node_modules/.package-lock.json -nt package-lock.json || npm ci --no-audit --no-fund --silent; }
	rm -rf cdk.out
	CDK_DISABLE_CLI_TELEMETRY=true PATH="$(CURDIR)/$(VENV)/bin:$$PATH" infra/node_modules/.bin/cdk synth --quiet --strict --no-notices --app "$(CURDIR)/$(PY) infra/app.py" --output cdk.out
	@test -f cdk.out/Dynembed.template.json && test -f cdk.out/policy-validation-report.json -o -f cdk.out/validation-report.json
	@echo "synth: cdk.out/Dynembed.template.json and the cdk-nag validation report, no unacknowledged findings"
	@for d in cdk.out/asset.*/; do test -d "$$d/python/dynembed" && echo "layer: $$(du -sm "$$d" | cut -f1) MB unzipped (Lambda allows 250 MB for function + layers); tooling inside: $$(ls "$$d/python" | grep -c '^dynembed_ops' || true)"; done; true

# Writes the exact versions of the whole dependency tree; commit the result.
lock:
	$(PIP) freeze --exclude-editable | grep -v '^torch==' > constraints.txt

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .mypy_cache .ruff_cache
