# The two commands of the README's Quickstart, and what they stand on.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Test processes side by side (pytest-xdist): the suite waits on servers, browsers and databases
# as much as it computes, so more processes than cores keeps both cores busy.
JOBS ?= 3
# The fast loop has no browser and no PostgreSQL to wait on: a process a core.
CHECK_JOBS ?= 2
# Compiled modules and pytest's rewritten tests are cached between runs, even where the environment
# says not to write bytecode: each test process would otherwise compile every module again.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: demo test check lint install

$(BIN)/mailer: pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	@touch $(BIN)/mailer

install: $(BIN)/mailer

## demo: install, then run the whole story on the embedded defaults (SQLite, a Maildir outbox)
demo: install
	$(BIN)/mailer demo demo

## test: install, then run every test, each on SQLite and on PostgreSQL
test: install
	$(BIN)/pytest -n $(JOBS) --dist worksteal

## check: the fast loop: lint, then the tests that need no browser, no PostgreSQL, no load and
## no whole scenario (`slow`); `make test` runs everything
check: lint
	$(BIN)/pytest -n $(CHECK_JOBS) --dist worksteal -m "not browser and not postgresql and not load and not slow"

## lint: ruff and mypy, both clean
lint: install
	$(BIN)/ruff check mailer tests bench
	$(BIN)/ruff format --check mailer tests bench
	$(BIN)/mypy
