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
# What make installs into a virtualenv: the package with what the tests need.
PACKAGE := -e ".[all]" --group dev
# The unit tests run on every other Python the project supports too, each in a virtualenv of
# its own (.venv-3.12, ...) made from the interpreter scripts/find-python.sh finds. FLOORS_ON's
# installs every dependency at the lowest version pyproject.toml declares (scripts/floors.py
# pins each floor), the others constraints.txt's pins: the declared floors and the newest pins
# are both tested, each on a different Python. The integration tests run on $(PYTHON) alone.
OTHER_PYTHONS := 3.12 3.13
FLOORS_ON := 3.12
# The other Pythons' runs check compatibility: Hypothesis draws fewer examples there
# (tests/conftest.py); $(PYTHON)'s run keeps every test's full count.
OTHER_PYTEST_ARGS := -q -p no:cacheprovider --hypothesis-profile=compat

.PHONY: help lock install services stop status demo demo-keycloak test bench lint tree typecheck docs unit integration format clean other-pythons

help:
	@echo "make demo        set everything up, then run the end-to-end demo"
	@echo "make demo-keycloak  the same story with Keycloak as the identity provider"
	@echo "make test        set everything up, then lint, type-check and run the whole suite;"
	@echo "                 the unit tests on the other Pythons too (make other-pythons)"
	@echo "make services    install and start Kafka (127.0.0.1:9092), Redis (127.0.0.1:6379),"
	@echo "                 PostgreSQL (127.0.0.1:55432) and Keycloak (127.0.0.1:8180)"
	@echo "make stop        stop them"
	@echo "make bench       measure against the alternatives; writes BENCHMARKS.md"
	@echo "make unit        unit tests only (no broker needed)"
	@echo "make docs        build the documentation site into site/ (mkdocs --strict)"
	@echo "make other-pythons  the unit tests on Python $(OTHER_PYTHONS) (unit-3.12 ... one of them);"
	@echo "                 $(FLOORS_ON) with the lowest dependency versions pyproject.toml declares"
	@echo "make format      apply ruff's formatting and fixes"
	@echo "make lock        refresh constraints.txt, the pinned versions make installs"

$(INSTALLED): pyproject.toml $(CONSTRAINTS)
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -m pip install -q -c $(CONSTRAINTS) $(PACKAGE)
	@touch $@

# .venv-X.Y: Python X.Y's virtualenv, made by unit-X.Y with FOUND set to the interpreter.
# On $(FLOORS_ON) its constraints are the declared floors (.venv-X.Y/floors.txt).
.venv-%/.installed: pyproject.toml $(CONSTRAINTS) scripts/floors.py | $(INSTALLED)
	@test -n "$(FOUND)" || { echo "make unit-$* makes .venv-$*" >&2; exit 1; }
	rm -rf .venv-$*
	$(FOUND) -m venv .venv-$*
	.venv-$*/bin/python -m pip install -q --upgrade pip
	$(if $(filter $*,$(FLOORS_ON)),$(BIN)/python scripts/floors.py -o .venv-$*/floors.txt)
	.venv-$*/bin/python -m pip install -q -c $(if $(filter $*,$(FLOORS_ON)),.venv-$*/floors.txt,$(CONSTRAINTS)) $(PACKAGE)
	@touch $@

# The unit tests on Python X.Y. A Python that is missing is reported; under CI=true it is a
# failure, since the CI machine has every one of OTHER_PYTHONS.
unit-%: install
	@if found=$$(scripts/find-python.sh $*); then \
	  $(MAKE) --no-print-directory FOUND="$$found" .venv-$*/.installed && \
	  echo "== unit tests on Python $* ($$found) with $(if $(filter $*,$(FLOORS_ON)),the declared lower bounds (.venv-$*/floors.txt),$(CONSTRAINTS)'s pins)" && \
	  .venv-$*/bin/pytest tests/unit $(OTHER_PYTEST_ARGS); \
	elif [ "$${CI:-}" = true ]; then \
	  echo "!! Python $* is missing: its unit tests cannot run (CI=true: this is a failure)" >&2; exit 1; \
	else \
	  echo "!! Python $* is missing: its unit tests did NOT run (install it, e.g. pyenv install $*)" >&2; \
	fi

# One after the other: two editable installs of the same tree at once would race on its
# egg-info. All run, and the target fails if one did.
other-pythons: install
	@status=0; for version in $(OTHER_PYTHONS); do \
	  $(MAKE) --no-print-directory unit-$$version || status=1; done; exit $$status

lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/python -m pip install -q --upgrade pip
	.lock-venv/bin/python -m pip install -q $(PACKAGE)
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

# The services' start, lint, mypy, the docs and the other Pythons' unit runs go side by side
# (-k: each reports even if another failed; none of them measures time), then the whole suite
# runs alone on $(PYTHON): its integration tests measure enforcement delays, which a busy CPU
# would stretch.
test: install
	@$(MAKE) --no-print-directory -k -j4 --output-sync=target services lint typecheck docs other-pythons
	$(BIN)/pytest $(PYTEST_ARGS)

format: install
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

clean:
	rm -rf $(VENV) $(OTHER_PYTHONS:%=.venv-%) site .mypy-tree .mypy_cache .ruff_cache .pytest_cache .hypothesis
