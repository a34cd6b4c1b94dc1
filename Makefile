# The commands of the README:
#   make run      install the runtime, migrate if needed, collect static files if they
#                 changed, run the web server (127.0.0.1:8000) + worker; Ctrl-C stops all
#   make test     install the dev tools too, run ruff, mypy and the whole test suite
#   make lint     ruff and mypy only
#   make stop-db  stop an embedded PostgreSQL left running by a crash
#   make lock     regenerate requirements.lock (runtime) and requirements-dev.lock (dev)
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000
# The exact torch of the locks. Installed first, on its own: resolved together with the
# rest, pip may pick PyPI's CUDA build and several GB of nvidia-* packages.
TORCH := torch==2.13.0

.PHONY: install install-dev run test lint superuser stop-db lock

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# Stamps: each install step reruns only when its lock changed. pip keeps what is already
# installed at the locked version, so a rerun on an existing venv only checks.
$(VENV)/.installed: requirements.lock | $(VENV)/bin/activate
	$(PIP) install --quiet $(TORCH)
	$(PIP) install --quiet -r requirements.lock
	touch $@

$(VENV)/.installed-dev: requirements-dev.lock $(VENV)/.installed
	$(PIP) install --quiet -r requirements-dev.lock
	touch $@

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# ragsite/devserver.py: migrate only when migrations are pending, collectstatic only when
# the static sources changed, and a clean stop (exit 0, nothing left running) on Ctrl-C.
run: install
	@echo "Create an admin user with: $(PY) manage.py createsuperuser (or make superuser)"
	$(PY) -m ragsite.devserver run --host $(HOST) --port $(PORT)

stop-db: install
	$(PY) -m ragsite.devserver stop-db

lint: install-dev
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(PY) -m pytest $(PYTEST_ARGS)

superuser: install
	$(PY) manage.py createsuperuser

# The locks come from pyproject.toml ([project] dependencies and the `dev` extra) through
# pip-tools, kept in a venv of its own. Pins already in the locks are kept (pip-compile
# only changes what pyproject.toml no longer allows); `make lock UPGRADE=1` upgrades.
# torch stays out of the locks (installed first, see TORCH); the check below fails if a
# CUDA build crept in through its dependencies.
LOCK_VENV := var/pip-tools
PIP_COMPILE := $(LOCK_VENV)/bin/pip-compile --quiet --strip-extras \
	--no-emit-index-url --no-emit-find-links --unsafe-package torch \
	$(if $(UPGRADE),--upgrade)

$(LOCK_VENV)/bin/pip-compile:
	$(PYTHON) -m venv $(LOCK_VENV)
	$(LOCK_VENV)/bin/pip install --quiet pip-tools==7.6.2

lock: | $(LOCK_VENV)/bin/pip-compile
	$(PIP_COMPILE) --extra dev -o requirements-dev.lock pyproject.toml
	$(PIP_COMPILE) -c requirements-dev.lock -o requirements.lock pyproject.toml
	@! grep -E -i '^(nvidia-|triton)' requirements.lock requirements-dev.lock \
	  || { echo "CUDA packages in a lock: install the CPU $(TORCH) first"; exit 1; }
