# Fresh machine: `make run` (the product on SQLite) and `make test` (the test suite).
# `.venv` is rebuilt whenever pyproject.toml is newer than it.

PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install run test check migrate lint

install: $(VENV)

$(VENV): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -e '.[dev,demo]' || { touch -d @0 $(VENV); exit 1; }
	touch $(VENV)

run: $(VENV)
	$(BIN)/objectplatform demo

# The tests write bytecode even where PYTHONDONTWRITEBYTECODE is set: without it every test worker and server
# subprocess compiles the engine and rewrites the test modules again (about 8 s of CPU each).
# --dist worksteal hands each worker one half of the tests in file order, then lets an idle worker take over the
# other's last ones: a module's tests stay on one worker, so its own metadata is migrated, its module fixtures are
# built and its seeds are made once, not on both workers as the default round-robin does.
test: $(VENV)
	env -u PYTHONDONTWRITEBYTECODE $(BIN)/python -m pytest -n 2 --dist worksteal

check: $(VENV)
	$(BIN)/objectplatform check

migrate: $(VENV)
	$(BIN)/objectplatform migrate

lint: $(VENV)
	$(BIN)/ruff check .
