# ioc-monitor — `make demo` and `make test` on a fresh Debian 12 machine.
SHELL := /bin/bash
.DEFAULT_GOAL := help

VENV        ?= .venv
PY          := $(VENV)/bin/python
# Python 3.12 (pygeoapi needs it): pyenv selects it through .python-version, else python3.12 on PATH
PYTHON      ?= $(shell (pyenv which python3.12 2>/dev/null || command -v python3.12 || pyenv which python3 2>/dev/null || command -v python3) | head -n1)
# Debian packages the project needs; installed only when missing.
APT_PACKAGES ?= postgresql postgresql-15-postgis-3 postgis gdal-bin redis-server \
                chromium fonts-dejavu-core libpango-1.0-0 libpangoft2-1.0-0 libharfbuzz0b \
                poppler-utils python3-qgis qgis-providers
PYTEST_ARGS ?=
# the local STAC catalogue (stac-fastapi-pgstac + pypgstac) in a venv of its own: intake tests, operators
STAC_VENV   ?= .venv-stac

.PHONY: help install system-packages demo test lint bench serve clean stac-server

help:
	@echo "make install   system packages (when missing) + $(VENV) with the project"
	@echo "make demo      install, start the embedded PostGIS, run the pipeline on the sample data, serve the API"
	@echo "make test      install, run the test suite against a real PostGIS"
	@echo "make lint      ruff"
	@echo "make bench     run the benchmarks in benchmarks/ (long)"
	@echo "make stac-server  $(STAC_VENV) with stac-fastapi-pgstac + pypgstac (local STAC catalogue; docs/imagery-intake.md)"

system-packages:
	@missing=""; for p in $(APT_PACKAGES); do \
	  dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q "install ok installed" || missing="$$missing $$p"; \
	done; \
	if [ -n "$$missing" ]; then \
	  echo "installing Debian packages:$$missing"; \
	  SUDO=""; [ "$$(id -u)" = 0 ] || SUDO=sudo; \
	  $$SUDO apt-get update -q && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q --no-install-recommends $$missing; \
	  if command -v pg_lsclusters >/dev/null && pg_lsclusters -h 2>/dev/null | grep -q online; then \
	    echo "(Debian's default cluster is running; ioc uses its own embedded cluster on another port)"; fi; \
	fi

$(VENV)/.installed: pyproject.toml
	@$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 12), f"Python 3.12+ needed (pygeoapi), found {sys.version.split()[0]}: install it with pyenv"' 
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@touch $@

install: system-packages $(VENV)/.installed

$(STAC_VENV)/.installed: gis/intake/stac-server-requirements.txt
	$(PYTHON) -m venv $(STAC_VENV)
	$(STAC_VENV)/bin/python -m pip install -q --upgrade pip
	$(STAC_VENV)/bin/python -m pip install -q -r gis/intake/stac-server-requirements.txt
	@touch $@

stac-server: $(STAC_VENV)/.installed

demo: install
	$(VENV)/bin/ioc demo

serve: install
	$(VENV)/bin/ioc serve

test: install stac-server
	$(PY) -m pytest $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(PY) $$b || exit 1; done

clean:
	-$(VENV)/bin/ioc db down
	rm -rf $(VENV) .pytest_cache .ruff_cache
