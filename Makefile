# faasbus — the two commands (make up, make test) plus lint and bench.
# Every target creates .venv when it is missing, so a fresh clone needs nothing else.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
STAMP_RUN := $(VENV)/.installed-run
STAMP_TEST := $(VENV)/.installed-test
SOURCES := pyproject.toml $(shell find bus watchdog provider gateway queue_worker connectors cli -name '*.py' 2>/dev/null)

.PHONY: up test lint bench clean venv

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

# Strict editable install: a tree of links that mypy and import-linter can read
# (ARCHITECTURE.md section 1). Redone when a module is added or pyproject changes.
$(STAMP_RUN): $(PY) $(SOURCES)
	$(PY) -m pip install --quiet -e . --config-settings editable_mode=strict
	touch $@

$(STAMP_TEST): $(PY) $(SOURCES)
	$(PY) -m pip install --quiet -e '.[test]' --config-settings editable_mode=strict
	touch $@ $(STAMP_RUN)

venv: $(STAMP_TEST)

up: $(STAMP_RUN)
	$(BIN)/faasbus up

test: $(STAMP_TEST)
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(STAMP_TEST)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy -p faasbus.bus -p faasbus.watchdog -p faasbus.provider -p faasbus.gateway -p faasbus.queue_worker -p faasbus.connectors -p faasbus.cli
	$(BIN)/lint-imports

bench: $(STAMP_TEST)
	@for script in bench/*.py; do echo "== $$script"; $(PY) $$script || exit 1; done

clean:
	rm -rf $(VENV) build *.egg-info
