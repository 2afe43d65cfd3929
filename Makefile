# Two commands do all the set-up on a fresh machine: `make demo` and `make test`.
# Both install what is missing (a virtualenv with the package, redis-server, the Kafka jars)
# and start the services before doing their work.

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INSTALLED := $(VENV)/.installed
# The exact versions `make` installs; pyproject.toml keeps compatible ranges for users.
# `make lock` refreshes it from the newest versions those ranges allow.
CONSTRAINTS := constraints.txt
PYTEST_ARGS ?=

.PHONY: help lock install services stop status demo demo-keycloak test bench lint tree typecheck docs unit integration format clean

help:
	@echo "make demo        set everything up, then run the end-to-end demo"
	@echo "make demo-keycloak  the same story with Keycloak as the identity provider"
	@echo "make test        set everything up, then lint, type-check and run the whole suite"
	@echo "make services    install and start Kafka (127.0.0.1:9092), Redis (127.0.0.1:6379),"
	@echo "                 PostgreSQL (127.0.0.1:55432) and Keycloak (127.0.0.1:8180)"
	@echo "make stop        stop them"
	@echo "make bench       measure against the alternatives; writes BENCHMARKS.md"
	@echo "make unit        unit tests only (no broker needed)"
	@echo "make docs        build the documentation site into site/ (mkdocs --strict)"
	@echo "make format      apply ruff's formatting and fixes"
	@echo "make lock        refresh constraints.txt, the pinned versions make installs"

$(INSTALLED): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) -e ".[all]" --group dev
	@touch $@

lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q -e ".[all]" --group dev
	@{ echo "# Pinned by 'make lock' from pyproject.toml's ranges; 'make install' installs exactly these."; \
	  .lock-venv/bin/python -m pip freeze --exclude-editable | sort -f; } > $(CONSTRAINTS)
	rm -rf .lock-venv

install: $(INSTALLED)

services:
	scripts/services.sh start

stop:
	scripts/services.sh stop

status:
	scripts/services.sh status

# The demo needs only the plain broker and Redis, not the test suite's secured and clustered ones.
demo: install
	scripts/services.sh start-core
	$(BIN)/jwt-revocation demo

demo-keycloak: install
	scripts/services.sh start-core
	scripts/services.sh keycloak-start
	$(BIN)/jwt-revocation demo --keycloak

bench: install services
	$(BIN)/python -m bench

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

# mypy and mkdocstrings see the folders under their installed names through links in
# .mypy-tree/: the root package's files (api/) and one link per subpackage.
tree: install
	@mkdir -p .mypy-tree/jwt_revocation
	@for f in api/*.py api/py.typed; do ln -sfn ../../$$f .mypy-tree/jwt_revocation/$${f#api/}; done
	@for d in producer consumer shared cli django_integration:django; do \
	  ln -sfn ../../$${d%%:*} .mypy-tree/jwt_revocation/$${d##*:}; done

typecheck: tree
	$(BIN)/mypy

# The documentation site, every warning an error (a broken link or anchor, a page left out of
# the navigation, an API name mkdocstrings cannot find); about 2 s.
docs: tree
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet --site-dir site

unit: install
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

integration: install services
	$(BIN)/pytest tests/integration $(PYTEST_ARGS)

test: install services lint typecheck docs
	$(BIN)/pytest $(PYTEST_ARGS)

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) site .mypy-tree .mypy_cache .ruff_cache .pytest_cache .hypothesis
