# Two commands on a fresh machine: `make run` and `make test`.
# Everything runs in .venv; its bin/ is put first on PATH so `dvc repro`
# starts each stage's `python -m ...` in the project's environment.
PYTHON ?= python3
VENV := .venv
BIN := $(abspath $(VENV))/bin
export PATH := $(BIN):$(PATH)

.PHONY: run setup data repro test bench lock clean

run: setup data repro

setup: $(VENV)/.installed

$(VENV)/.installed: requirements.lock pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

data: setup
	rakuten ensure-raw-data

repro: setup
	dvc repro

test: setup
	pytest

bench: setup
	python -m mlops_rakuten.benchmark

# Re-pin every dependency to the newest release (then commit requirements.lock).
lock:
	rm -rf /tmp/mlops-rakuten-lock && $(PYTHON) -m venv /tmp/mlops-rakuten-lock
	/tmp/mlops-rakuten-lock/bin/pip install --quiet -e '.[serve,test]'
	( echo '# Exact versions of every dependency (make installs these). Regenerate: make lock'; \
	  /tmp/mlops-rakuten-lock/bin/pip freeze --exclude-editable | grep -v '^mlops' ) > requirements.lock

clean:
	rm -rf $(VENV)
