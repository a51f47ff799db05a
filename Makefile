# The two commands are `make demo` and `make test`; both install what they need first.
# Works on a fresh machine with only Python 3.11+, git and make.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
PYTHON ?= python3
# VENV may point at an existing environment (act and the template tests reuse one).
VENV ?= .venv
BIN := $(abspath $(VENV))/bin
STAMP := $(VENV)/.installed
export PATH := $(BIN):$(PATH)
# The engine is always this checkout's scripts/, whichever environment runs it.
export PYTHONPATH := $(CURDIR)/scripts
export MLFLOW_DISABLE_TELEMETRY := true
export DO_NOT_TRACK := 1
export DVC_NO_ANALYTICS := true
PYTEST_ARGS ?=
# The real OPA engine (Go library) for `mlops check` / `mlops policy test`. Its metadata says
# Python >=3.14 but the wheel works on 3.11+ (seen working): installed without its resolver
# checks, and part of the install stamp so existing environments pick it up.
OPA_BINDINGS := opa-golib-python-bindings==0.4.4

.PHONY: help install tools-path demo test lint typecheck unit train push sources team-registry team-registry-down policy validate ci-config plan reconcile status down register hydrate kubeconfig act-pr act-train act-reconcile act-drift drift drift-alert lock clean distclean

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

# The tool set's identity: what `install` stamps into $(VENV); CI keys its shared environment on it.
TOOLSET = $$( (cat constraints.txt; echo "$(OPA_BINDINGS) $(UV_COMPILE)") | sha256sum | cut -c1-16)
# Where CI keeps one environment per tool set and Python, reused across jobs and runs.
TOOLS_CACHE ?= $(HOME)/.cache/mlops-gitops

# The installer: uv (pinned; the same constraints.txt, pip's sources passed on by
# scripts/uv_sources.py), about 5x faster than pip on this tool set; PIP=1, or a machine where
# uv cannot be had, installs with pip.
UV := uv==0.13.9
# Bytecode is compiled at install (pip does by default; uv only when asked). Without it, where
# PYTHONDONTWRITEBYTECODE is set (CI images, containers) every process compiles mlflow, pandas and
# scikit-learn again: 10 s instead of 3.5 s to import them, in every command and model server.
UV_COMPILE := --compile-bytecode
PIP ?=

install: ## create $(VENV) and install the pinned tool set (re-runs only when constraints.txt changes; PIP=1: with pip, not uv)
	@want=$(TOOLSET); \
	if [ "$$(cat $(STAMP) 2>/dev/null)" != "$$want" ]; then \
	  $(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "error: Python 3.11+ is needed, found " + sys.version.split()[0] + " (set PYTHON=python3.x)")'; \
	  $(PYTHON) -m venv $(VENV); \
	  if [ -z "$(PIP)" ] && $(BIN)/python -m pip install --quiet --disable-pip-version-check $(UV) 2>/dev/null; then \
	    echo "installing the pinned tool set into $(VENV) with uv (under a minute with its cache warm, a few the first time)"; \
	    eval "$$($(BIN)/python scripts/uv_sources.py $(BIN)/python)"; \
	    $(BIN)/uv pip install --quiet $(UV_COMPILE) --python $(BIN)/python -c constraints.txt -e '.[dev]' \
	      || { echo "uv could not install it: with pip instead"; \
	           $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'; }; \
	  else \
	    echo "installing the pinned tool set into $(VENV) with pip (several minutes the first time)"; \
	    $(BIN)/python -m pip install --quiet --disable-pip-version-check -c constraints.txt -e '.[dev]'; \
	  fi; \
	  $(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --ignore-requires-python $(OPA_BINDINGS); \
	  echo "$$want" > $(STAMP); \
	fi

tools-path: ## print path=/key= of the shared environment for this tool set and Python (GITHUB_OUTPUT lines)
	@py=$$($(PYTHON) -c 'import platform; print(platform.python_version())'); key="py$$py-$(TOOLSET)"; \
	echo "path=$(TOOLS_CACHE)/venv-$$key"; echo "key=mlops-tools-$$(uname -s)-$$(uname -m)-$$key"

demo: install ## generate a project from non-default answers and run a model's life through it
	$(BIN)/python -m mlops_gitops.demo

test: install lint typecheck unit ## the whole suite: lint, types, tests (template and workflow tests included)

# Named paths keep ruff out of the template directory (its pyproject.toml is a Jinja template).
PY_PATHS := $(wildcard scripts tests pipelines benchmarks hooks local_extensions.py)
# The template's own targets (benchmarks): its repository only, not copied into generated ones.
-include template.mk

lint: install ## ruff (lint + format check), actionlint and zizmor (offline) over the workflows
	$(BIN)/ruff check $(PY_PATHS)
	$(BIN)/ruff format --check $(PY_PATHS)
	$(BIN)/actionlint
	$(BIN)/zizmor --offline --quiet .github/workflows .github/actions

# mypy's cache lives with the tool set (same mypy, same stubs): every checkout and job on a host
# then reuses it, as CI's jobs reuse the environment. mypy checks each cached module against its
# source's hash, so a cache written from another checkout is only ever a head start.
typecheck: install ## mypy --strict over the engine (its cache kept in $(VENV)/mypy-cache)
	$(BIN)/mypy --cache-dir "$(VENV)/mypy-cache"

unit: install ## pytest (PYTEST_ARGS passes options)
	$(BIN)/python -m pytest $(PYTEST_ARGS)

train: install sources ## run the DVC pipeline (dvc repro): what changed is rebuilt, the rest is skipped
	$(BIN)/dvc repro pipelines/dvc.yaml

push: install ## send what the pipeline made to the DVC remote (dvc push): CI, the deploy host and drift fetch it there
	$(BIN)/dvc push

sources: install ## fetch the teams' own tables (pipelines/sources/*.dvc) that this checkout lacks, from the DVC remote
	@missing=$$(for f in pipelines/sources/*.dvc; do if [ -e "$$f" ] && [ ! -e "$${f%.dvc}" ]; then echo "$${f%.dvc}"; fi; done); \
	if [ -n "$$missing" ]; then $(BIN)/dvc pull $$missing; fi

policy: install ## the pull request's gate: policy tests (90% coverage), manifests and workflows, the promotion gate on changed manifests, a policy change's impact (RECORD=1 keeps decisions)
	$(BIN)/mlops gate $(if $(RECORD),--record)

validate: install ## check mlops.yaml, models and manifests
	$(BIN)/mlops validate

ci-config: ## print python=…, gpu_labels=…, environments=… from mlops.yaml (GITHUB_OUTPUT lines; needs only PyYAML)
	@ONLY="$(ONLY)" $(PYTHON) -m mlops_gitops.ciconfig

plan: install ## what reconcile would change (ENV=staging for one); out of sync is not an error here, 2 is
	$(BIN)/mlops plan $(if $(ENV),--env $(ENV)) || [ $$? -eq 1 ]

reconcile: install ## deploy what the manifests say, health-check, roll back on failure (ENV=… for one)
	$(BIN)/mlops reconcile $(if $(ENV),--env $(ENV))

status: install ## which version runs where, its health, since when, at which URL
	$(BIN)/mlops status $(if $(ENV),--env $(ENV))

down: install ## stop the local model servers
	$(BIN)/mlops down $(if $(ENV),--env $(ENV))

evidence: install ## evidence packs of every model deployed in ENV, verified (into `mlops paths --env ENV evidence`)
	@test -n "$(ENV)" || { echo "error: ENV=<environment> is needed (e.g. make evidence ENV=production)"; exit 2; }
	dir=$$($(BIN)/mlops paths --env $(ENV) evidence); rm -rf "$$dir"; \
	$(BIN)/mlops evidence --env $(ENV) --all -o "$$dir"; \
	for pack in "$$dir"/*.zip; do [ -e "$$pack" ] || continue; \
	  $(BIN)/mlops evidence verify "$$pack" || exit $$?; done

drift: install ## drift of ENV's logged inferences vs training data (SINCE=7d); verdict in `mlops paths --env ENV drift_status` (0 none, 1 drift, 3 too little data)
	@test -n "$(ENV)" || { echo "error: ENV=<environment> is needed (e.g. make drift ENV=production)"; exit 2; }
	@eval "$$($(BIN)/mlops paths --env $(ENV) --shell)"; mkdir -p "$$(dirname "$$drift_status")"; status=0; \
	$(BIN)/mlops drift --env $(ENV) $(if $(SINCE),--since $(SINCE)) \
	  --summary-file "$$drift_summary" --drifted-file "$$drift_models" || status=$$?; \
	echo "$$status" > "$$drift_status"; [ "$$status" = 0 ] || [ "$$status" = 1 ] || [ "$$status" = 3 ]

drift-alert: install ## open or update ENV's drift issue; dispatch train.yml for the drifted models
	@eval "$$($(BIN)/mlops paths --env $(ENV) --shell)"; \
	$(BIN)/mlops alert --name drift-$(ENV) --title "Drift in $(ENV)" --body-file "$$drift_summary" \
	  --dispatch train.yml --ref main --input "models=$$(cat "$$drift_models")"

register: install ## register trained models in MLflow with their report (PROMOTE_TO=staging opens the PR)
	$(BIN)/mlops register --report --baseline production $(if $(PROMOTE_TO),--promote-to $(PROMOTE_TO)) $(MODELS)

hydrate: install ## commit what the kserve target rendered onto rendered-manifests and push it (FROM=dir of rendered-<env>/ artifacts)
	$(BIN)/mlops hydrate --push $(if $(FROM),--from "$(FROM)")

kubeconfig: ## CI: write $$KUBECONFIG_DATA (a secret) to a private file and export KUBECONFIG to later steps
	@if [ -z "$${KUBECONFIG_DATA:-}" ]; then echo "no kubeconfig secret: kubectl is not used (Argo CD / Flux sync, or the local target)"; exit 0; fi; \
	file="$${RUNNER_TEMP:-$${TMPDIR:-/tmp}}/kubeconfig"; (umask 077; printf '%s\n' "$$KUBECONFIG_DATA" > "$$file"); \
	echo "KUBECONFIG=$$file" >> "$${GITHUB_ENV:-/dev/null}"; echo "kubeconfig written to $$file"

act-pr: install ## run .github/workflows/pr.yml locally under act (host mode); its gate reads MLFLOW_TRACKING_URI (and MLFLOW_TRACKING_USERNAME/PASSWORD), .actrc's, or this checkout's registry
	@args="$$($(BIN)/mlops registry act-args)" && \
	MLFLOW_GATE_PASSWORD="$${MLFLOW_TRACKING_PASSWORD:-}" $(BIN)/act pull_request -W .github/workflows/pr.yml -e tests/fixtures/events/pull_request.json $$args

TEAM_REGISTRY_PORT ?= 5000
team-registry: install ## a team registry to try: MLflow on PostgreSQL with a user per role (ARTIFACTS=s3://bucket/prefix; scripts/registry-host/)
	$(BIN)/python scripts/registry-host/team_registry.py up --port $(TEAM_REGISTRY_PORT) $(if $(ARTIFACTS),--artifacts $(ARTIFACTS))

team-registry-down: ## stop the team registry `make team-registry` started
	$(BIN)/python scripts/registry-host/team_registry.py down --port $(TEAM_REGISTRY_PORT)

act-train: install ## run .github/workflows/train.yml locally under act, GPU labels mapped to this host
	$(BIN)/act workflow_dispatch -W .github/workflows/train.yml -e tests/fixtures/events/workflow_dispatch.json

act-drift: install ## run .github/workflows/drift.yml locally under act (host mode)
	$(BIN)/act workflow_dispatch -W .github/workflows/drift.yml -e tests/fixtures/events/workflow_dispatch.json

act-reconcile: install ## run .github/workflows/reconcile.yml locally under act (host mode)
	$(BIN)/act workflow_dispatch -W .github/workflows/reconcile.yml -e tests/fixtures/events/workflow_dispatch.json

lock: install ## refresh constraints.txt from the environment
	{ sed -n '1,2p' constraints.txt; $(BIN)/python -m pip freeze --exclude-editable; } > constraints.txt.new
	mv constraints.txt.new constraints.txt

clean: ## remove caches (keeps $(VENV))
	rm -rf .pytest_cache .mypy_cache .ruff_cache
	find . -name __pycache__ -type d -prune -not -path './$(VENV)/*' -exec rm -rf {} +

distclean: clean ## also remove $(VENV)
	rm -rf $(VENV)
