# TokenByte: `make run` serves console + API on 127.0.0.1:$(PORT); `make test` runs every check.
PYTHON ?= python3
VENV := .venv
LEGACY_VENV := .venv-legacy-clients
LEGACY_REQUIREMENTS := tests/clients/legacy/requirements.txt
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint format bench clean browser-deps nginx-deps client-deps agent-deps htmx

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)

$(VENV)/.installed-run: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[test]'
	touch $@ $(VENV)/.installed-run

# Generated once and kept (git-ignored): restarts keep sessions and encrypted credentials.
.secret_key:
	umask 077 && $(PYTHON) -c 'import secrets; print(secrets.token_urlsafe(64))' > $@

run: $(VENV)/.installed-run .secret_key
	SECRET_KEY="$${SECRET_KEY:-$$(cat .secret_key)}" DEBUG="$${DEBUG:-on}" && \
	export SECRET_KEY DEBUG && \
	$(BIN)/python manage.py migrate --noinput && \
	$(BIN)/python manage.py collectstatic --noinput --verbosity 0 && \
	$(BIN)/python manage.py bootstrap && \
	exec $(BIN)/python manage.py serve

lint: $(VENV)/.installed-test
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy .
	$(BIN)/lint-imports --no-logo  # the house rules: [tool.importlinter] in pyproject.toml
	@# Money is Decimal: no float in billing or pricing code (the usage event's timings excepted).
	@! grep -rnE '\bfloat\(|: float\b|-> float\b' billing/ --include='*.py' | grep -v '/migrations/' \
		| grep -vE '^billing/events.py:[0-9]+: +(started_at|latency_ms|ttfb_ms|started_ms|duration_ms):' \
		|| (echo 'float in money code'; exit 1)

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The browser tests drive Debian's chromium through Playwright (never a browser download of
# Playwright's own). Installed when missing and we may (root with apt-get); otherwise the
# browser tests say why they skip, except under .ci/run, where they fail.
browser-deps:
	@command -v chromium >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium fonts-liberation >/dev/null; \
		else \
			echo "note: browser tests need Debian's chromium (apt-get install chromium)" >&2; \
		fi; }

# The reverse-proxy tests run the shipped nginx config (tokenbyte/deploy/nginx/) in front of a
# live gateway: Debian's nginx-light, installed the same way when missing.
nginx-deps:
	@command -v nginx >/dev/null 2>&1 || [ -x /usr/sbin/nginx ] || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
				nginx-light >/dev/null; \
		else \
			echo "note: the nginx tests need Debian's nginx-light (apt-get install nginx-light)" >&2; \
		fi; }

# The client-library tests (tests/clients/) also run the Vercel AI SDK under Node: npm ci installs
# the pinned tree of tests/clients/package-lock.json (Debian's nodejs and npm, installed the same
# way when missing). Without them those tests say why they skip, except under .ci/run.
CLIENTS_NPM := tests/clients/node_modules/.installed
client-deps: $(CLIENTS_NPM) $(LEGACY_VENV)/.installed

# instructor and llama-index need openai<3, so they get a venv of their own, driven as a
# subprocess (tests/clients/legacy_clients.py); rebuilt whenever the pinned tree changes.
$(LEGACY_VENV)/.installed: $(LEGACY_REQUIREMENTS)
	rm -rf $(LEGACY_VENV)
	$(PYTHON) -m venv $(LEGACY_VENV)
	$(LEGACY_VENV)/bin/pip install --quiet -r $(LEGACY_REQUIREMENTS)
	touch $@

$(CLIENTS_NPM): tests/clients/package.json tests/clients/package-lock.json
	@command -v npm >/dev/null 2>&1 || { \
		if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1; then \
			apt-get update -qq && \
			DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null; \
		fi; }
	@if command -v npm >/dev/null 2>&1; then \
		cd tests/clients && npm ci --silent --no-audit --no-fund && touch node_modules/.installed; \
	else \
		echo "note: the AI SDK tests need Node.js and npm (apt-get install nodejs npm)" >&2; \
	fi

# The coding agents the tests run as real commands through the gateway (tests/agents/): Claude
# Code from npm, pinned in package-lock.json (2.1.197: the newest that runs on Node 20).
# Without npm the agent tests say why they skip, except under .ci/run, where they fail.
AGENTS := tests/agents
agent-deps:
	@if [ -x $(AGENTS)/node_modules/.bin/claude ] && [ -x $(AGENTS)/node_modules/.bin/codex ] && [ $(AGENTS)/node_modules/.package-lock.json -nt $(AGENTS)/package-lock.json ]; then :; \
	elif command -v npm >/dev/null 2>&1; then \
		cd $(AGENTS) && npm ci --no-audit --no-fund --loglevel=error; \
	else \
		echo "note: the agent tests need node and npm (apt-get install nodejs npm)" >&2; \
	fi

test: lint browser-deps nginx-deps client-deps agent-deps
	$(BIN)/pytest $(PYTEST_ARGS)

# Vendors htmx from npm into static/vendor (we pin 2.x; 4.x changed its request headers).
HTMX_VERSION := 2.0.11
htmx:
	cd $$(mktemp -d) && npm pack --silent htmx.org@$(HTMX_VERSION) && tar xzf htmx.org-$(HTMX_VERSION).tgz && \
		cp package/dist/htmx.min.js $(CURDIR)/static/vendor/htmx-$(HTMX_VERSION).min.js && \
		cp package/LICENSE $(CURDIR)/static/vendor/htmx-LICENSE

bench: $(VENV)/.installed-test
	bench/run.sh

clean:
	rm -rf $(VENV) $(LEGACY_VENV) staticfiles db.test.sqlite3* tests/clients/node_modules tests/agents/node_modules
