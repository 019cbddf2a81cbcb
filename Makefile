# Pattern Lab. Two commands do everything:
#   make run    install what is missing, then serve http://127.0.0.1:8000
#               (private Redis, Celery worker and daphne, restarted if they
#               crash; Ctrl-C stops all)
#   make test   install what is missing, lint, and run the whole test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-$(shell cksum < requirements.txt | cut -d' ' -f1)
APT := $(shell [ "$$(id -u)" = 0 ] && echo apt-get || echo sudo apt-get)

.PHONY: run test lint bench system-deps browser-deps install clean

$(STAMP): requirements.txt
	@test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r requirements.txt
	@rm -f $(VENV)/.installed-* && touch $(STAMP)

install: system-deps $(STAMP)

system-deps:
	@command -v redis-server >/dev/null || { $(APT) update -qq && $(APT) install -y -qq redis-server; }

browser-deps:
	@command -v chromium >/dev/null || { $(APT) update -qq && $(APT) install -y -qq chromium; }

run: install
	$(PY) manage.py serve --port $${PORT:-8000}

lint: $(STAMP)
	$(PY) -m ruff check --config .ci/ruff.toml .

test: install browser-deps lint
	$(PY) -m pytest -c tests/pytest.ini --rootdir . -p no:cacheprovider $(PYTEST_ARGS)

bench: install
	$(PY) manage.py bench

clean:
	rm -rf var test-artifacts
