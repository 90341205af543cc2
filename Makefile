# TokenByte: `make run` serves console + API on 127.0.0.1:$(PORT); `make test` runs every check.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: run test lint format bench clean

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
	@# Money is Decimal: no float in billing or pricing code.
	@! grep -rnE '\bfloat\(|: float\b|-> float\b' billing/ $(wildcard proxy/pricing*.py proxy/usage*.py) \
		--include='*.py' | grep -v '/migrations/' || (echo 'float in money code'; exit 1)

format: $(VENV)/.installed-test
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

test: lint
	$(BIN)/pytest $(PYTEST_ARGS)

bench: $(VENV)/.installed-test
	bench/run.sh

clean:
	rm -rf $(VENV) staticfiles db.test.sqlite3*
