# twostep: `make run` serves the demo, `make test` runs the suite. Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/twostep serve --config config/demo.yaml

test: install
	$(BIN)/ruff check provider tests
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check provider tests

clean:
	rm -rf $(VENV) var .pytest_cache
