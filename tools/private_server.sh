#!/usr/bin/env bash
# A private copy of the system's PostgreSQL 15 (programs, libraries, extension directory), so that
# several checkouts can build, `make install` and test side by side without overwriting each
# other's extension files. PostgreSQL finds its share and lib directories relative to its
# programs, so the copy is self-contained. Prints the two variables to export.
#   tools/private_server.sh /tmp/pg-mine && eval "$(tools/private_server.sh /tmp/pg-mine)"
set -euo pipefail
dest=${1:?usage: tools/private_server.sh DIRECTORY}
major=${2:-15}
if [ ! -x "$dest/lib/postgresql/$major/bin/postgres" ]; then
    mkdir -p "$dest/lib/postgresql" "$dest/share/postgresql"
    cp -a "/usr/lib/postgresql/$major" "$dest/lib/postgresql/"
    cp -a "/usr/share/postgresql/$major" "$dest/share/postgresql/"
    # headers, for building src/ against the copy (pg_config reports them relative to it too)
    mkdir -p "$dest/include"
    ln -sfn /usr/include/postgresql "$dest/include/postgresql"
    rm -f "$dest/share/postgresql/$major/extension/autopilot"* "$dest/lib/postgresql/$major/lib/autopilot.so"
fi
echo "export PG_CONFIG=$dest/lib/postgresql/$major/bin/pg_config"
echo "export AUTOPILOT_TEST_PG_BINDIR=$dest/lib/postgresql/$major/bin"
