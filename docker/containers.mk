# The container targets of the Makefile (included by it; docs/containers.md): the API, nginx (TLS) and
# Prometheus from docker-compose.yml, with `docker compose` when installed, else podman-compose (in
# .venv); COMPOSE=... forces one. The detection of the engine lives here, beside what uses it. It cannot
# wait for .venv: make decides here, when it reads this file, whether podman gets CONTAINERS_CONF, and in a
# fresh clone .venv's podman-compose only appears when `setup` (which every container target runs first) ends.
COMPOSE ?= $(shell if docker compose version >/dev/null 2>&1; then echo docker compose; \
	elif command -v podman >/dev/null; then echo $(BIN)/podman-compose; fi)
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
compose-check: ## say which compose tool and engine the container targets use
	@test -n "$(COMPOSE)" || { echo "no compose tool: install Docker with the compose plugin (docker compose version)," \
		"or podman (apt-get install podman runc catatonit golang-github-containernetworking-plugin-dnsname)" \
		"and run make setup for podman-compose; or set COMPOSE=..." >&2; exit 2; }
	@case "$(COMPOSE)" in */podman-compose) test -x "$(COMPOSE)" || \
		{ echo "$(COMPOSE) is not installed yet: run make setup" >&2; exit 2; };; esac
	@echo "compose: $(COMPOSE) (engine: $(ENGINE))" >&2

.podman/containers.conf: docker/podman-conf.sh
	mkdir -p .podman && docker/podman-conf.sh > $@

.PHONY: base-image
base-image: compose-check $(PODMAN_CONF) ## build or pull the image every other image starts FROM
	docker/base-image.sh $(ENGINE) $(LOCAL_BASE)

# Today's Debian packages in every image (docs/containers.md "What is pinned"): the base image again (built
# from the mirror when it is the local one, else pulled), then every layer built again.
.PHONY: docker-refresh
docker-refresh: $(CONTAINER_SETUP) ## today's Debian packages in every image: base image and every layer again
	$(if $(filter $(LOCAL_BASE),$(BASE_IMAGE)),REBUILD=1 docker/base-image.sh $(ENGINE) $(LOCAL_BASE))
	$(STACK_COMPOSE) build --no-cache $(if $(filter $(LOCAL_BASE),$(BASE_IMAGE)),,--pull)

# The compose file as the tool reads it (variables filled in): a check that it is valid.
.PHONY: docker-config
docker-config: $(CONTAINER_SETUP) ## the compose file with its variables filled in (checks it is valid)
	$(STACK_COMPOSE) config

# NO_CACHE=1 builds every layer again (what a new machine does): a vanished package version shows here.
.PHONY: docker-build
docker-build: $(CONTAINER_SETUP) ## build the images (NO_CACHE=1: every layer again, as a new machine does)
	$(STACK_COMPOSE) build $(if $(NO_CACHE),--no-cache)

# Needs RAKUTEN_JWT_SECRET, a users file (rakuten user add ...) and `make certs`; returns once all are healthy.
# REPLICAS predict replicas behind nginx (one writer whatever their number).
export REPLICAS ?= 2
.PHONY: docker-up
docker-up: docker-build ## start the stack (API, nginx, Prometheus) and wait until it is healthy
	$(STACK_COMPOSE) up -d
	@docker/wait-healthy.sh $(ENGINE) $(STACK) $${RAKUTEN_UP_TIMEOUT:-900}

# Compose fills in the whole file for every command: listing or stopping needs no real secret.
ANY_SECRET = RAKUTEN_JWT_SECRET=$${RAKUTEN_JWT_SECRET:-not-needed-to-list-or-stop}

.PHONY: docker-ps
docker-ps: $(CONTAINER_SETUP) ## list the stack's containers
	$(ANY_SECRET) $(STACK_COMPOSE) ps

.PHONY: docker-logs
docker-logs: $(CONTAINER_SETUP) ## the last TAIL (100) lines of the stack's logs
	$(ANY_SECRET) $(STACK_COMPOSE) logs --tail=$${TAIL:-100}

# Stop and remove the containers; the project and Prometheus volumes (data, models, metrics) are kept.
.PHONY: docker-down
docker-down: $(CONTAINER_SETUP) ## stop and remove the containers; volumes are kept
	$(ANY_SECRET) $(STACK_COMPOSE) down

# The same, and remove the volumes too.
.PHONY: docker-down-v
docker-down-v: $(CONTAINER_SETUP) ## stop and remove the containers and their volumes
	$(ANY_SECRET) $(STACK_COMPOSE) down -v

# The whole stack for real on loopback ports, under its own project name, always torn down.
# Skips, saying why, where no compose tool is installed or containers cannot run.
.PHONY: docker-test
docker-test: setup $(PODMAN_CONF) ## the whole stack for real on loopback ports, always torn down
	RAKUTEN_DOCKER_TEST=1 pytest tests/test_container_stack.py -v -s
