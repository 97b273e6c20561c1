# pg_autopilot. The two commands a newcomer needs: `make demo` and `make test`.
# Both set everything up themselves (apt packages, a virtualenv) and are safe to
# run twice. `make` builds the extension script; `make install` is PGXS.

EXTENSION_NAME = autopilot
EXTVERSION := $(shell sed -n "s/^default_version *= *'\(.*\)'/\1/p" control/autopilot.control)
EXTENSION_SCRIPT = extension/autopilot--$(EXTVERSION).sql
SQL_SOURCES := $(shell grep -v '^\s*\(\#\|$$\)' sql/manifest.txt)
UPDATE_SCRIPTS := $(patsubst sql/updates/%,extension/%,$(wildcard sql/updates/autopilot--*--*.sql))

VENV ?= .venv
# not PYTHON: PGXS defines that one (for PL/Python)
VENV_PYTHON = $(VENV)/bin/python
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# ---- PGXS: `make install` copies the control file, every version's scripts and
# the library with the compiled PageRank kernel and inner product (src/)
MODULEDIR = extension
MODULE_big = autopilot
OBJS = src/pagerank.o src/vector.o
PG_CFLAGS = -Werror
DATA = control/autopilot.control $(sort $(wildcard extension/autopilot--*.sql) $(EXTENSION_SCRIPT) $(UPDATE_SCRIPTS))
PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
else
all:
install:
	@echo "PGXS not found: run 'make bootstrap' first (installs postgresql-server-dev-15)" >&2; exit 1
endif

all: build

.PHONY: build check-build bootstrap venv lint test test-sql test-py demo bench clean-cluster

build: $(EXTENSION_SCRIPT) $(UPDATE_SCRIPTS)

# A released version's script is frozen: rebuilding it must not change it.
$(EXTENSION_SCRIPT): $(SQL_SOURCES) sql/manifest.txt control/autopilot.control tools/build_extension.sh
	@tools/check_manifest.sh
	@tools/build_extension.sh $(EXTVERSION) > $@.new
	@if grep -qE '^## \[$(subst .,\.,$(EXTVERSION))\]' CHANGELOG.md && [ -f $@ ] && ! cmp -s $@ $@.new; then \
	    rm -f $@.new; \
	    echo "autopilot $(EXTVERSION) is released (CHANGELOG.md): its script is frozen." >&2; \
	    echo "Ship the change as a new version with an upgrade script (see DEVELOPERS.md)." >&2; \
	    exit 1; \
	fi
	@mv $@.new $@
	@echo "built $@"

extension/%.sql: sql/updates/%.sql
	cp $< $@

check-build: build
	@tools/check_manifest.sh
	@tools/check_versions.sh
	@echo "build check: versions agree, manifest complete, released scripts unchanged"

bootstrap: build
	@tools/bootstrap.sh

venv: bootstrap

lint: bootstrap build
	$(VENV)/bin/ruff check installer tests bench tools
	$(VENV)/bin/ruff format --check installer tests bench tools
	$(VENV)/bin/sqlfluff lint sql tests/sql
	$(VENV_PYTHON) tools/dev.py plpgsql-check

# make test: set up, build, install, lint, pgTAP on both install modes, pytest.
test: bootstrap check-build
	$(SUDO) $(MAKE) --no-print-directory install
	$(MAKE) --no-print-directory lint
	$(VENV_PYTHON) tools/dev.py test

test-sql: bootstrap build
	$(VENV_PYTHON) tools/dev.py test --only sql

test-py: bootstrap build
	$(VENV_PYTHON) tools/dev.py test --only py

demo: bootstrap check-build
	$(SUDO) $(MAKE) --no-print-directory install
	$(VENV_PYTHON) tools/dev.py demo

bench: bootstrap check-build
	$(SUDO) $(MAKE) --no-print-directory install
	$(VENV_PYTHON) tools/dev.py bench

clean-cluster:
	$(VENV_PYTHON) tools/dev.py stop
