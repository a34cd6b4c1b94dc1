# The two commands of the README:
#   make run    install everything, migrate, run web server (127.0.0.1:8000) + worker
#   make test   install everything (dev tools too), run ruff and the whole test suite
SHELL := /bin/bash
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
PY := $(VENV)/bin/python
PIP := $(VENV)/bin/pip
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install install-dev run test lint superuser bench clean-db

$(VENV)/bin/activate:
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

# torch first, on its own: any other route pulls a multi-GB CUDA build.
$(VENV)/.installed: requirements.lock pyproject.toml | $(VENV)/bin/activate
	$(PIP) install --quiet torch==2.13.0
	$(PIP) install --quiet -r requirements.lock
	touch $@

install: $(VENV)/.installed

install-dev: install
	@:

run: install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py collectstatic --noinput --verbosity 0
	@echo "Web server on http://$(HOST):$(PORT)/ (admin at /admin/), worker running. Ctrl-C stops both."
	@echo "Create an admin user with: $(PY) manage.py createsuperuser"
	@trap 'trap - EXIT INT TERM; kill 0' EXIT INT TERM; \
	  EMBEDDED_KEEP_RUNNING=$${EMBEDDED_KEEP_RUNNING:-false} $(PY) manage.py qcluster & \
	  $(PY) manage.py runserver $(HOST):$(PORT) --noreload & \
	  wait -n

test: install
	$(VENV)/bin/ruff check .
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .

superuser: install
	$(PY) manage.py createsuperuser
