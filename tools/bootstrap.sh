#!/usr/bin/env bash
# Installs what `make test` and `make demo` need, once: Debian packages (through
# sudo when not root) and a virtualenv with the package and its dev tools.
# Safe to run again: it installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
venv=${VENV:-.venv}
packages=(postgresql-15 postgresql-client-15 postgresql-15-cron postgresql-15-pgtap pgtap
          postgresql-server-dev-15 postgresql-15-plpgsql-check python3-venv make gcc
          chromium)
sudo=""
[ "$(id -u)" = 0 ] || sudo=sudo

missing=()
for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "==> installing Debian packages: ${missing[*]}"
    $sudo apt-get update -qq
    # the packaged cluster is not needed: tests start throwaway clusters of their own
    echo 'create_main_cluster = false' | $sudo tee /etc/postgresql-common/createcluster.d/autopilot.conf >/dev/null 2>&1 || true
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# pip's notes about this machine's unused local indexes are noise here
quiet_pip() { "$venv/bin/pip" "$@" 2> >(grep -v "^WARNING: Location" >&2); }

python=${BOOTSTRAP_PYTHON:-python3}
if [ ! -x "$venv/bin/python" ]; then
    echo "==> creating virtualenv $venv"
    "$python" -m venv "$venv"
    quiet_pip install --quiet --upgrade pip
fi
# reinstall when the sources changed (the package carries the built SQL as data)
stamp="$venv/.autopilot-installed"
digest=$(cat pyproject.toml control/autopilot.control extension/*.sql $(find installer/pg_autopilot -name "*.py" | sort) 2>/dev/null | sha256sum | cut -d' ' -f1)
if [ ! -f "$stamp" ] || [ "$(cat "$stamp")" != "$digest" ]; then
    echo "==> installing pg-autopilot into $venv"
    quiet_pip install --quiet ".[dev,embeddings]"
    echo "$digest" > "$stamp"
fi
