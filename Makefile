# Two commands on a fresh machine: `make run` and `make test`.
# Everything runs in .venv; its bin/ is put first on PATH so `dvc repro`
# starts each stage's `python -m ...` in the project's environment.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: run python-version setup data repro test bench lock clean docs docs-build docs-outputs sweep learning-curve plots pr-report dagshub-remote data-status certs serve bench-serve bench-serve-abuse bench-real register promote rollback \
	base-image docker-refresh docker-config docker-build docker-up docker-ps docker-logs docker-down docker-down-v docker-test

run: setup data repro

# The one supported Python (pyproject.toml requires-python): the models' pickles are byte-identical
# only within one Python version (3.13's pickler frames the vocabulary differently from 3.11's).
PYTHON_VERSION := 3.11
python-version:
	@v=$$($(BIN)/python -c 'import sys; print("%d.%d" % sys.version_info[:2])'); test "$$v" = "$(PYTHON_VERSION)" || { \
		echo "$(BIN)/python is Python $$v: this project supports Python $(PYTHON_VERSION) only (dvc.lock's model" \
		"hashes hold on it alone). Install python$(PYTHON_VERSION), then: make clean; make run PYTHON=python$(PYTHON_VERSION)" >&2; \
		exit 2; }

setup: $(VENV)/.installed python-version

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(MAKE) --no-print-directory python-version
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

data: setup
	rakuten ensure-raw-data

repro: setup
	dvc repro

# What a machine checks (pyproject.toml): the layer contracts (imports only go down), lint and
# format, types; then the tests.
test: setup
	lint-imports --no-cache
	ruff check --no-cache src tests
	ruff format --no-cache --check src tests
	mypy
	pytest

# Full-size pipeline, experiment runs and memory on demo data, and on the real sample replicated to
# full size when SAMPLE holds it (skipped otherwise); then the Newton solver against liblinear on the
# same full-size features (docs/speed.md).
SAMPLE ?= ../shared/data/rakuten-sample
bench: setup
	python -m mlops_rakuten.devtools.benchmark --sample "$(abspath $(SAMPLE))"
	python -m mlops_rakuten.devtools.solver_bench --sample "$(abspath $(SAMPLE))"

# The documentation site (docs/, mkdocs.yml): served with live reload, or built into the
# git-ignored site/. --strict turns a broken link or a page missing from the nav into an error.
DOCS_ADDR ?= 127.0.0.1:8001
# Material's banner about its end of life says nothing about this site.
export NO_MKDOCS_2_WARNING := 1
docs: setup
	mkdocs serve --dev-addr $(DOCS_ADDR)

docs-build: setup
	mkdocs build --strict --site-dir site

# Command output pasted into README.md and docs/ (blocks marked <!-- output: CMD -->), rerun and
# rewritten; tests/test_docs_facts.py fails when a block differs from what its command prints.
docs-outputs: setup
	python docs/outputs.py

# Re-pin every dependency to the newest release (then commit requirements.lock).
lock:
	rm -rf /tmp/mlops-rakuten-lock && $(PYTHON) -m venv /tmp/mlops-rakuten-lock
	/tmp/mlops-rakuten-lock/bin/pip install --quiet --upgrade setuptools -e '.[serve,test,docs,plots]'
	( echo '# Exact versions of every dependency (make installs these). Regenerate: make lock'; \
	  /tmp/mlops-rakuten-lock/bin/pip freeze --all --exclude-editable | grep -v -e '^mlops' -e '^pip==' ) > requirements.lock

clean:
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

sweep: setup
	dvc exp run --queue $(SWEEP)
	dvc queue start --jobs $(JOBS)
	rakuten wait-queue $(if $(PUSH),--push $(GIT_REMOTE))
	dvc exp show $(EXP_TABLE)

learning-curve: setup
	dvc exp run --queue -S 'ingest.fraction=$(FRACTIONS)'
	dvc queue start --jobs $(JOBS)
	rakuten wait-queue
	rakuten learning-curve

# The DVC plots drawn to PNG files with no network (docs/pipeline.md "Plots offline"): the
# workspace's (`dvc plots show`), or against a revision with REV=main (`dvc plots diff main`),
# into the git-ignored dvc_plots/images/.
plots: setup
	rakuten plots $(if $(REV),--rev $(REV))

# Params, metrics (with changes) and confusion matrices of the workspace against BASE, as Markdown on stdout.
BASE ?= main
pr-report: setup
	@rakuten pr-report --base $(BASE)

# Share data and models (docs/sharing.md): DagsHub's S3 storage as the default DVC
# remote. The token comes from DAGSHUB_TOKEN or a hidden prompt and lands only in .dvc/config.local.
dagshub-remote: setup
	@test -n "$(OWNER)" -a -n "$(REPO)" || { echo "usage: make dagshub-remote OWNER=<DagsHub user or org> REPO=<DagsHub repo>" >&2; exit 2; }
	rakuten dagshub-remote --owner '$(OWNER)' --repo '$(REPO)'

# Model registry (docs/team.md "Model registry"): GTO git tags on the model dvc.yaml declares under
# artifacts:. register refuses a workspace that is dirty, differs from dvc.lock or is not pushed.
MODEL_NAME ?= rakuten-classifier
register: setup
	@test -n "$(VERSION)" || { echo "usage: make register VERSION=v1.2.0" >&2; exit 2; }
	rakuten register '$(VERSION)' --name '$(MODEL_NAME)'

promote: setup
	@test -n "$(VERSION)" -a -n "$(STAGE)" || { echo "usage: make promote VERSION=v1.2.0 STAGE=prod" >&2; exit 2; }
	gto assign '$(MODEL_NAME)' --version '$(VERSION)' --stage '$(STAGE)' --push

# Put a version that was in STAGE before back there (a new stage tag; servers that --follow switch to it).
rollback: setup
	@test -n "$(VERSION)" -a -n "$(STAGE)" || { echo "usage: make rollback VERSION=v1.0.0 STAGE=prod" >&2; exit 2; }
	gto assign '$(MODEL_NAME)' --version '$(VERSION)' --stage '$(STAGE)' --push --force

# What differs between the workspace and the local cache (works offline), then the cache and the remote
# (or how to add one, or that it cannot be reached).
data-status: setup
	rakuten data-status

# Serve the model (docs/serving.md). `make serve` needs RAKUTEN_JWT_SECRET in the environment
# and a user: `rakuten user add NAME --role admin`. nginx terminates TLS in front (deployments/nginx).
# MODEL=rakuten-classifier#prod serves a registry version instead of the workspace model.
SERVE_HOST ?= 127.0.0.1
SERVE_PORT ?= 8000
SERVE_WORKERS ?= 1
serve: setup
	rakuten serve --host $(SERVE_HOST) --port $(SERVE_PORT) --workers $(SERVE_WORKERS) $(if $(MODEL),--model '$(MODEL)')

# A self-signed certificate for nginx, into the git-ignored deployments/certs/ (kept if already there).
CERT_NAME ?= localhost
certs: deployments/certs/server.crt

deployments/certs/server.crt:
	mkdir -p deployments/certs
	openssl req -x509 -newkey rsa:2048 -nodes -days 365 -subj "/CN=$(CERT_NAME)" \
		-addext "subjectAltName=DNS:$(CERT_NAME),IP:127.0.0.1" \
		-keyout deployments/certs/server.key -out $@
	chmod 600 deployments/certs/server.key

# In-process prediction latency and loopback HTTP /predict throughput (wrk if installed), bounded in time;
# keep-alive /health with 1 and 2 workers (a Nagle/delayed-ACK stall shows as ~40 ms); then the limit:
# in-process products/s single and batched, HTTPS through nginx with 1 and 2 workers at 8 and 32 clients.
bench-serve: data repro
	python -m mlops_rakuten.devtools.serve_bench
	python -m mlops_rakuten.devtools.serve_bench_scale

# The API under abuse (docs/serving-limits.md): server RSS while 1 GiB bodies without a token are refused,
# /predict p50 while other clients send adversarial HTML, /metrics size after junk-method requests.
bench-serve-abuse: data repro
	python -m mlops_rakuten.devtools.serve_bench_abuse

# What the prediction log costs /predict (docs/monitoring.md): p50/p99 over HTTP with the log off and on, in turns.
.PHONY: bench-prediction-log
bench-prediction-log: data repro
	python -m mlops_rakuten.devtools.prediction_log_bench

# Model quality on real challenge text and speed (docs/quality.md, docs/speed.md): cross-validated
# weighted F1 of params.yaml on DATA, the pipeline timed on DATA, then at full size on demo data.
DATA ?= ../shared/data/rakuten-sample
bench-real: setup
	@if [ -f "$(DATA)/X_train_update.csv" ] && [ -f "$(DATA)/Y_train_CVw08PX.csv" ]; then \
		python -m mlops_rakuten.devtools.crossval --data "$(DATA)" && \
		python -m mlops_rakuten.devtools.benchmark --data "$(abspath $(DATA))" && \
		python -m mlops_rakuten.devtools.benchmark --sample "$(abspath $(DATA))"; \
	else echo "bench-real: skipped, no X_train_update.csv and Y_train_CVw08PX.csv in $(DATA)"; fi

# Containers (docs/containers.md): the API, nginx (TLS) and Prometheus from docker-compose.yml, with
# `docker compose` when installed, else podman-compose (in .venv); COMPOSE=... forces one.
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo docker compose; \
	elif [ -x $(BIN)/podman-compose ] && command -v podman >/dev/null; then echo $(BIN)/podman-compose; fi)
ENGINE := $(if $(findstring podman,$(COMPOSE)),podman,docker)
STACK ?= rakuten
STACK_COMPOSE = $(COMPOSE) -p $(STACK) -f docker-compose.yml
# Images build FROM $(BASE_IMAGE); without a registry, `make base-image` builds LOCAL_BASE with mmdebstrap.
LOCAL_BASE := localhost/debian:bookworm
export BASE_IMAGE ?= docker.io/library/debian:bookworm-slim
# An extra CA bundle for pip inside the build (networks that re-sign TLS); by default pip's own setting here.
export PIP_CA_BUNDLE ?= $(or $(PIP_CERT),$(shell $(PYTHON) -m pip config get global.cert 2>/dev/null))
# Podman on hosts without systemd or with low hard limits (docker/podman-conf.sh); set CONTAINERS_CONF to
# use your own.
ifeq ($(ENGINE),podman)
# Ours when unset, or when set to ours by an outer make (make test runs make docker-config in the tests).
ifneq ($(filter undefined,$(origin CONTAINERS_CONF))$(filter $(abspath .podman/containers.conf),$(CONTAINERS_CONF)),)
export CONTAINERS_CONF := $(abspath .podman/containers.conf)
PODMAN_CONF := .podman/containers.conf
endif
endif
CONTAINER_SETUP = setup compose-check $(PODMAN_CONF)

.PHONY: compose-check
compose-check:
	@test -n "$(COMPOSE)" || { echo "no compose tool: install Docker with the compose plugin (docker compose version)," \
		"or podman (apt-get install podman runc catatonit golang-github-containernetworking-plugin-dnsname)" \
		"and run make setup for podman-compose; or set COMPOSE=..." >&2; exit 2; }
	@echo "compose: $(COMPOSE) (engine: $(ENGINE))" >&2

.podman/containers.conf: docker/podman-conf.sh
	mkdir -p .podman && docker/podman-conf.sh > $@

base-image: compose-check $(PODMAN_CONF)
	docker/base-image.sh $(ENGINE) $(LOCAL_BASE)

# Today's Debian packages in every image (docs/containers.md "What is pinned"): the base image again (built
# from the mirror when it is the local one, else pulled), then every layer built again.
docker-refresh: $(CONTAINER_SETUP)
	$(if $(filter $(LOCAL_BASE),$(BASE_IMAGE)),REBUILD=1 docker/base-image.sh $(ENGINE) $(LOCAL_BASE))
	$(STACK_COMPOSE) build --no-cache $(if $(filter $(LOCAL_BASE),$(BASE_IMAGE)),,--pull)

# The compose file as the tool reads it (variables filled in): a check that it is valid.
docker-config: $(CONTAINER_SETUP)
	$(STACK_COMPOSE) config

# NO_CACHE=1 builds every layer again (what a new machine does): a vanished package version shows here.
docker-build: $(CONTAINER_SETUP)
	$(STACK_COMPOSE) build $(if $(NO_CACHE),--no-cache)

# Needs RAKUTEN_JWT_SECRET, a users file (rakuten user add ...) and `make certs`; returns once all are healthy.
# REPLICAS predict replicas behind nginx (one writer whatever their number).
export REPLICAS ?= 2
docker-up: docker-build
	$(STACK_COMPOSE) up -d
	@docker/wait-healthy.sh $(ENGINE) $(STACK) $${RAKUTEN_UP_TIMEOUT:-900}

# Compose fills in the whole file for every command: listing or stopping needs no real secret.
ANY_SECRET = RAKUTEN_JWT_SECRET=$${RAKUTEN_JWT_SECRET:-not-needed-to-list-or-stop}

docker-ps: $(CONTAINER_SETUP)
	$(ANY_SECRET) $(STACK_COMPOSE) ps

docker-logs: $(CONTAINER_SETUP)
	$(ANY_SECRET) $(STACK_COMPOSE) logs --tail=$${TAIL:-100}

# Stop and remove the containers; the project and Prometheus volumes (data, models, metrics) are kept.
docker-down: $(CONTAINER_SETUP)
	$(ANY_SECRET) $(STACK_COMPOSE) down

# The same, and remove the volumes too.
docker-down-v: $(CONTAINER_SETUP)
	$(ANY_SECRET) $(STACK_COMPOSE) down -v

# The whole stack for real on loopback ports, under its own project name, always torn down.
# Skips, saying why, where no compose tool is installed or containers cannot run.
docker-test: setup $(PODMAN_CONF)
	RAKUTEN_DOCKER_TEST=1 pytest tests/test_container_stack.py -v -s
