# twostep: `make run` serves the demo, `make test` runs the suite. Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run test lint services clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/twostep serve --config config/demo.yaml

test: install services
	$(BIN)/ruff check provider tests
	$(BIN)/pytest

# The tests use a real Redis (their fixture starts redis-server on a free port when none answers
# on 127.0.0.1:6379), a real PostgreSQL on 127.0.0.1:5432, and Debian's oathtool and zbarimg as
# independent checks of the TOTP codes and QR images. Install or start what is missing.
DEBIAN_TOOLS := redis-server:redis-server oathtool:oathtool zbarimg:zbar-tools
services:
	@missing=$$(for pair in $(DEBIAN_TOOLS); do command -v $${pair%%:*} >/dev/null || echo $${pair#*:}; done); \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null; then \
		echo "installing $$missing"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { command -v pg_ctlcluster >/dev/null && \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start; } || true

lint: install
	$(BIN)/ruff check provider tests

clean:
	rm -rf $(VENV) var .pytest_cache
