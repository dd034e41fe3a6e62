# Two commands on a fresh machine: `make run` and `make test`; `make` alone lists every target.
# Everything runs in .venv; its bin/ is put first on PATH so `dvc repro`
# starts each stage's `python -m ...` in the project's environment.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)
.DEFAULT_GOAL := help

.PHONY: help
help: ## this list: every target with one line on what it does
	@awk -F ':.*## ' '/^[a-z][a-z0-9-]*:.*## / { printf "  %-22s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

.PHONY: run
run: setup data repro ## set up .venv, fetch or regenerate data/raw, dvc repro: the whole pipeline

# The Pythons on which the models' pickles, so dvc.lock, are byte-identical (pyproject.toml's
# requires-python; tests/test_python_version.py trains under each one installed and compares).
SUPPORTED_PYTHONS := 3.11 3.12 3.13
VERSION_OF := -c 'import sys; print("%d.%d" % sys.version_info[:2])'
# $(call check_python,INTERPRETER): refuse an unsupported interpreter, saying how to get a supported one.
check_python = v=$$($(1) $(VERSION_OF) 2>/dev/null) || v="not a Python"; case " $(SUPPORTED_PYTHONS) " in *" $$v "*) ;; *) \
	printf '%s\n' "$(1) is Python $$v: this project supports Python $(SUPPORTED_PYTHONS) (the models and dvc.lock" \
	"are byte-identical on these). Get one, then: make run PYTHON=<its path>" \
	"  pyenv:      pyenv install 3.13, then PYTHON=\$$(pyenv root)/versions/<that version>/bin/python" \
	"  uv:         uv python install 3.13, then PYTHON=\$$(uv python find 3.13)" \
	"  deadsnakes: (Ubuntu) add-apt-repository ppa:deadsnakes/ppa; apt install python3.13 python3.13-venv, then PYTHON=python3.13" \
	>&2; exit 2;; esac

.PHONY: python-version
python-version: ## check that .venv runs a supported Python
	@$(call check_python,$(BIN)/python)

# PYTHON= on the command line (or in the environment) names the interpreter of .venv: a .venv made by
# another Python version is rebuilt rather than refused. Decided when make reads this file, so that
# setup needs no recursive make (an outer `make -o .venv/.installed` would not reach one).
ifneq ($(origin PYTHON),file)
ifneq ($(shell $(BIN)/python $(VERSION_OF) 2>/dev/null),$(shell $(PYTHON) $(VERSION_OF) 2>/dev/null))
REBUILD_VENV := rebuild-venv
endif
endif

.PHONY: setup
setup: $(VENV)/.installed python-version ## create .venv with the pinned dependencies (PYTHON=... rebuilds it with that Python)

.PHONY: rebuild-venv
rebuild-venv:
	@if [ -e $(VENV) ]; then echo "rebuilding $(VENV): it runs Python $$($(BIN)/python $(VERSION_OF) 2>/dev/null ||" \
		"echo '(none)'), PYTHON=$(PYTHON) is Python $$($(PYTHON) $(VERSION_OF) 2>/dev/null)"; rm -rf $(VENV); fi

$(VENV)/.installed: requirements.lock pyproject.toml $(REBUILD_VENV)
	@test -x $(BIN)/python || { $(call check_python,$(PYTHON)); }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --require-hashes -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e .
	touch $@

.PHONY: data
data: setup ## data/raw: pulled from the DVC remote, else the built-in demo set regenerated
	rakuten ensure-raw-data

.PHONY: repro
repro: setup ## dvc repro: every stage whose inputs changed
	dvc repro

# The static checks (pyproject.toml says what each enforces): layer contracts (imports only go down),
# lint and format, types, the GitHub workflows. The inner loop: well under a minute.
LINTED := src tests docs notebooks
.PHONY: check
check: setup ## layers, lint, format, types, workflow security: the static checks, in under a minute
	lint-imports
	ruff check $(LINTED)
	ruff format --check $(LINTED)
	mypy
	zizmor --offline --quiet .github

# Test tiers (pyproject.toml's markers): `server`, `container` and `browser` tests start real
# servers, containers or Chromium; test-fast runs everything else.
# Spread over TEST_JOBS processes (pytest-xdist); `make test` runs serially, its servers on loopback ports.
TEST_JOBS ?= 2
.PHONY: test-fast
test-fast: setup ## the tests that start no server, container or browser and run nothing end to end
	pytest -n $(TEST_JOBS) -m 'not (server or container or browser or slow)'

.PHONY: test
test: check ## the static checks and every test: what CI runs
	pytest

# Full-size pipeline, experiment runs and memory on demo data, and on the real sample replicated to
# full size when SAMPLE holds it (skipped otherwise); then the Newton solver against liblinear on the
# same full-size features (docs/speed.md).
SAMPLE ?= ../shared/data/rakuten-sample
.PHONY: bench
bench: setup ## full-size pipeline, experiments and memory; the solver against liblinear
	python -m mlops_rakuten.devtools.benchmark --sample "$(abspath $(SAMPLE))"
	python -m mlops_rakuten.devtools.solver_bench --sample "$(abspath $(SAMPLE))"

# The pipeline's cost curve (docs/speed.md): every stage on 85k to 850k demo products in a scratch copy;
# writes docs/bench/scale.json and docs/img/scale.png. SIZES="85000 170000" runs fewer.
SIZES ?= 85000 170000 425000 850000
.PHONY: bench-scale
bench-scale: setup ## wall, CPU, peak memory per stage from 85k to 850k products; features, non-zeros
	python -m mlops_rakuten.devtools.scale_bench --sizes $(SIZES)

# The documentation site (docs/, mkdocs.yml): served with live reload, or built into the
# git-ignored site/. --strict turns a broken link or a page missing from the nav into an error.
DOCS_ADDR ?= 127.0.0.1:8001
# Material's banner about its end of life says nothing about this site.
export NO_MKDOCS_2_WARNING := 1
.PHONY: docs
docs: setup ## serve the documentation site with live reload (DOCS_ADDR)
	mkdocs serve --dev-addr $(DOCS_ADDR)

.PHONY: docs-build
docs-build: setup ## build the documentation site into site/, strict
	mkdocs build --strict --site-dir site

# Command output pasted into README.md and docs/ (blocks marked <!-- output: CMD -->), rerun and
# rewritten; tests/test_docs_facts.py fails when a block differs from what its command prints.
.PHONY: docs-outputs
docs-outputs: setup ## rerun the commands whose output the docs show, rewrite the blocks
	python docs/outputs.py

# Re-pin every dependency to the newest release, with the sha256 of each release's files on PyPI
# (devtools/locked_requirements.py), then commit requirements.lock.
LOCK_VENV := /tmp/mlops-rakuten-lock
.PHONY: lock
lock: ## re-pin every dependency to its newest release, hashes included (requirements.lock)
	rm -rf $(LOCK_VENV) && $(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet --upgrade setuptools -e '.[serve,test,docs,plots]'
	$(LOCK_VENV)/bin/pip freeze --all --exclude-editable | grep -v -e '^mlops' -e '^pip==' > $(LOCK_VENV)/frozen.txt
	$(LOCK_VENV)/bin/python src/mlops_rakuten/devtools/locked_requirements.py hash $(LOCK_VENV)/frozen.txt requirements.lock

.PHONY: clean
clean: ## remove .venv
	rm -rf $(VENV)

# Experiments (docs/experiments.md). Queued runs execute in temp copies of HEAD
# plus uncommitted changes, JOBS at a time; model.* changes rerun only train and
# evaluate. Override the grid: make sweep SWEEP="-S 'model.C=0.2,0.4'".
# PUSH=1 then `dvc exp push`es every finished run to GIT_REMOTE and the DVC remote
# (docs/team.md "Share experiments"); runs that fail to push stay local and are listed.
JOBS ?= 2
SWEEP ?= -S 'model.C=0.1,0.3,1,3' -S 'model.class_weight=null,balanced'
PUSH ?=
GIT_REMOTE ?= origin
FRACTIONS ?= 0.1,0.25,0.5,1.0
# One line per run: headline metrics and the params that vary, best first.
EXP_TABLE := --md --only-changed --drop '[0-9]+\.|data/|src/|models/|Executor' --sort-by f1_weighted --sort-order desc

.PHONY: sweep
sweep: setup ## a grid of experiments (SWEEP), JOBS at a time, best first
	dvc exp run --queue $(SWEEP)
	dvc queue start --jobs $(JOBS)
	rakuten wait-queue $(if $(PUSH),--push $(GIT_REMOTE))
	dvc exp show $(EXP_TABLE)

.PHONY: learning-curve
learning-curve: setup ## experiments over FRACTIONS of the data, then the curve
	dvc exp run --queue -S 'ingest.fraction=$(FRACTIONS)'
	dvc queue start --jobs $(JOBS)
	rakuten wait-queue
	rakuten learning-curve

# The DVC plots drawn to PNG files with no network (docs/pipeline.md "Plots offline"): the
# workspace's (`dvc plots show`), or against a revision with REV=main (`dvc plots diff main`),
# into the git-ignored dvc_plots/images/.
.PHONY: plots
plots: setup ## DVC's plots drawn to PNG offline (REV=main: against a revision)
	rakuten plots $(if $(REV),--rev $(REV))

# Params, metrics (with changes) and confusion matrices of the workspace against BASE, as Markdown on stdout.
BASE ?= main
.PHONY: pr-report
pr-report: setup ## params, metrics and confusion matrices against BASE, as Markdown
	@rakuten pr-report --base $(BASE)

# Share data and models (docs/sharing.md): DagsHub's S3 storage as the default DVC
# remote. The token comes from DAGSHUB_TOKEN or a hidden prompt and lands only in .dvc/config.local.
.PHONY: dagshub-remote
dagshub-remote: setup ## DagsHub's S3 storage as the default DVC remote (OWNER=, REPO=)
	@test -n "$(OWNER)" -a -n "$(REPO)" || { echo "usage: make dagshub-remote OWNER=<DagsHub user or org> REPO=<DagsHub repo>" >&2; exit 2; }
	rakuten dagshub-remote --owner '$(OWNER)' --repo '$(REPO)'

# Model registry (docs/team.md "Model registry"): GTO git tags on the model dvc.yaml declares under
# artifacts:. register refuses a workspace that is dirty, differs from dvc.lock or is not pushed.
MODEL_NAME ?= rakuten-classifier
.PHONY: register
register: setup ## register the workspace model in the GTO registry (VERSION=)
	@test -n "$(VERSION)" || { echo "usage: make register VERSION=v1.2.0" >&2; exit 2; }
	rakuten register '$(VERSION)' --name '$(MODEL_NAME)'

.PHONY: promote
promote: setup ## assign a registered version to a stage (VERSION=, STAGE=)
	@test -n "$(VERSION)" -a -n "$(STAGE)" || { echo "usage: make promote VERSION=v1.2.0 STAGE=prod" >&2; exit 2; }
	gto assign '$(MODEL_NAME)' --version '$(VERSION)' --stage '$(STAGE)' --push

# Put a version that was in STAGE before back there (a new stage tag; servers that --follow switch to it).
.PHONY: rollback
rollback: setup ## put a version back in a stage (VERSION=, STAGE=)
	@test -n "$(VERSION)" -a -n "$(STAGE)" || { echo "usage: make rollback VERSION=v1.0.0 STAGE=prod" >&2; exit 2; }
	gto assign '$(MODEL_NAME)' --version '$(VERSION)' --stage '$(STAGE)' --push --force

# What differs between the workspace and the local cache (works offline), then the cache and the remote
# (or how to add one, or that it cannot be reached).
.PHONY: data-status
data-status: setup ## what differs between workspace, cache and remote
	rakuten data-status

# Serve the model (docs/serving.md). `make serve` needs RAKUTEN_JWT_SECRET in the environment
# and a user: `rakuten user add NAME --role admin`. nginx terminates TLS in front (deployments/nginx).
# MODEL=rakuten-classifier#prod serves a registry version instead of the workspace model.
SERVE_HOST ?= 127.0.0.1
SERVE_PORT ?= 8000
SERVE_WORKERS ?= 1
.PHONY: serve
serve: setup ## the API on SERVE_HOST:SERVE_PORT (MODEL=: a registry version)
	rakuten serve --host $(SERVE_HOST) --port $(SERVE_PORT) --workers $(SERVE_WORKERS) $(if $(MODEL),--model '$(MODEL)')

# A self-signed certificate for nginx, into the git-ignored deployments/certs/ (kept if already there).
CERT_NAME ?= localhost
.PHONY: certs
certs: deployments/certs/server.crt ## a self-signed TLS certificate for nginx in deployments/certs/

deployments/certs/server.crt:
	mkdir -p deployments/certs
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=$(CERT_NAME)" \
		-addext "subjectAltName=DNS:$(CERT_NAME),IP:127.0.0.1" \
		-keyout deployments/certs/server.key -out $@
	chmod 600 deployments/certs/server.key

# In-process prediction latency and loopback HTTP /predict throughput (wrk if installed), bounded in time;
# keep-alive /health with 1 and 2 workers (a Nagle/delayed-ACK stall shows as ~40 ms); then the limit:
# in-process products/s single and batched, HTTPS through nginx with 1 and 2 workers at 8 and 32 clients.
.PHONY: bench-serve
bench-serve: data repro ## prediction latency and HTTP throughput, in process and through nginx
	python -m mlops_rakuten.devtools.serve_bench
	python -m mlops_rakuten.devtools.serve_bench_scale

# The API under abuse (docs/serving-limits.md): server RSS while 1 GiB bodies without a token are refused,
# /predict p50 while other clients send adversarial HTML, /metrics size after junk-method requests.
.PHONY: bench-serve-abuse
bench-serve-abuse: data repro ## the API under abuse: memory, latency, /metrics size
	python -m mlops_rakuten.devtools.serve_bench_abuse

# What the prediction log costs /predict (docs/monitoring.md): p50/p99 over HTTP with the log off and on, in turns.
.PHONY: bench-prediction-log
bench-prediction-log: data repro ## what the prediction log costs /predict (p50, p99)
	python -m mlops_rakuten.devtools.prediction_log_bench

# Model quality on real challenge text and speed (docs/quality.md, docs/speed.md): cross-validated
# weighted F1 of params.yaml on DATA, the pipeline timed on DATA, then at full size on demo data.
DATA ?= ../shared/data/rakuten-sample
.PHONY: bench-real
bench-real: setup ## cross-validated quality and speed on the real sample (DATA), if present
	@if [ -f "$(DATA)/X_train_update.csv" ] && [ -f "$(DATA)/Y_train_CVw08PX.csv" ]; then \
		python -m mlops_rakuten.devtools.crossval --data "$(DATA)" && \
		python -m mlops_rakuten.devtools.benchmark --data "$(abspath $(DATA))" && \
		python -m mlops_rakuten.devtools.benchmark --sample "$(abspath $(DATA))"; \
	else echo "bench-real: skipped, no X_train_update.csv and Y_train_CVw08PX.csv in $(DATA)"; fi

# The label screen and the retrain gate (docs/monitoring.md): a clean batch from a shifted source, the
# same batch with its labels shuffled and with 30 % of one class relabelled, over 20 seeds, in process.
.PHONY: bench-gate
bench-gate: setup ## screen quarantined / gate refused / accepted per scenario over 20 seeds, into docs/bench/gate.json
	python -m mlops_rakuten.devtools.gate_bench

# Drift alerts on replayed traffic (docs/monitoring.md): time to the first alert per scenario, false alerts
# in a clean week, false positives per window size, the cost of a day window; about 20 minutes on 2 busy cores.
.PHONY: bench-drift
bench-drift: data repro ## time to the first drift alert per scenario, false alerts on clean traffic
	python -m mlops_rakuten.devtools.drift_bench

# Mutation testing of the modules that decide something (docs/getting-started.md): mutmut changes
# one thing at a time in a scratch copy and runs the module's unit tests on each change; prints the
# score per module and every surviving mutant. MUTATE=serve/auth.py narrows it to listed modules.
MUTATE ?=
.PHONY: mutate
mutate: setup ## mutation score of the deciding modules against their unit tests (minutes, not in make test)
	python -m mlops_rakuten.devtools.mutate $(MUTATE)


include docker/containers.mk
