# twostep: `make run` serves the demo, `make test` runs the suite. Both install what they need.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: install run serve bench test lint services interop clean

install: $(STAMP)

$(STAMP): setup.cfg pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test]'
	touch $(STAMP)

run: install
	$(BIN)/twostep serve --config config/demo.yaml

# Production serving: gunicorn on the app factory with provider/gunicorn_conf.py (workers, threads,
# timeouts, graceful shutdown, forwarded_allow_ips from the settings' trusted_proxies). The settings
# file is $$TWOSTEP_CONFIG (default $(CONFIG)); TWOSTEP_BIND, TWOSTEP_WORKERS and TWOSTEP_THREADS
# override the defaults (127.0.0.1:8080, one worker per CPU, 2 threads).
CONFIG ?= config/demo.yaml
serve: install
	TWOSTEP_CONFIG=$${TWOSTEP_CONFIG:-$(CONFIG)} $(BIN)/gunicorn -c python:provider.gunicorn_conf

# The benchmark, not part of `make test`: gunicorn, a private Redis and a fresh PostgreSQL database,
# loaded over loopback only, every phase bounded in count and time. Prints the table and writes JSON
# and a PNG chart to bench/results/. BENCH_ARGS passes options, e.g. BENCH_ARGS=--profile.
BENCH_STAMP := $(VENV)/.bench-installed
$(BENCH_STAMP): $(STAMP)
	$(BIN)/pip install --quiet -e '.[bench]'
	touch $(BENCH_STAMP)

bench: install services $(BENCH_STAMP)
	$(BIN)/python -m bench $(BENCH_ARGS)

test: install services interop
	$(BIN)/ruff check provider tests bench
	$(BIN)/pytest

# The tests use a real Redis (their fixture starts redis-server on a free port when none answers
# on 127.0.0.1:6379), a real PostgreSQL on 127.0.0.1:5432, Debian's oathtool and zbarimg as
# independent checks of the TOTP codes and QR images, Debian's Chromium for the browser tests and
# Apache httpd with mod_auth_openidc as a relying party, and FreeRADIUS for the RSA channel's
# RADIUS transport (in /usr/sbin, which is not on every user's PATH). Install or start what is missing.
DEBIAN_TOOLS := redis-server:redis-server oathtool:oathtool zbarimg:zbar-tools chromium:chromium apache2:apache2
DEBIAN_FILES := /usr/lib/apache2/modules/mod_auth_openidc.so:libapache2-mod-auth-openidc \
	/usr/sbin/freeradius:freeradius
services:
	@missing=$$(for pair in $(DEBIAN_TOOLS); do command -v $${pair%%:*} >/dev/null || echo $${pair#*:}; done; \
		for pair in $(DEBIAN_FILES); do test -e $${pair%%:*} || echo $${pair#*:}; done); \
	if [ -n "$$missing" ] && command -v apt-get >/dev/null; then \
		echo "installing $$missing"; apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing >/dev/null; fi
	@pg_isready -q -h 127.0.0.1 -p 5432 2>/dev/null || { command -v pg_ctlcluster >/dev/null && \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | head -n1) main start; } || true

# openid-client (npm), the Node.js relying party of tests/test_interop_openid_client.py; again
# whenever the lock file changes. Needs Node.js 20 or newer with npm.
INTEROP := tests/interop
interop: $(INTEROP)/node_modules/.package-lock.json

$(INTEROP)/node_modules/.package-lock.json: $(INTEROP)/package-lock.json
	@command -v npm >/dev/null || { echo "npm not found: the openid-client tests skip (and fail under CI=true)"; exit 0; }; \
	echo "npm ci --prefix $(INTEROP)"; npm ci --prefix $(INTEROP) --no-audit --no-fund --loglevel=error

lint: install
	$(BIN)/ruff check provider tests bench

clean:
	rm -rf $(VENV) var .pytest_cache $(INTEROP)/node_modules
