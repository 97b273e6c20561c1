#!/usr/bin/env bash
# The version lives in control/autopilot.control (default_version). Fails when
# pyproject.toml, META.json or the newest CHANGELOG.md entry says otherwise, or when a
# version listed as released in CHANGELOG.md has no frozen script in extension/.
set -euo pipefail
cd "$(dirname "$0")/.."
control=$(sed -n "s/^default_version *= *'\(.*\)'/\1/p" control/autopilot.control)
pyproject=$(sed -n 's/^version *= *"\(.*\)"/\1/p' pyproject.toml | head -n1)
# newest entry: "## [X.Y.Z] - DATE" when released, "## Unreleased (X.Y.Z)" before
changelog=$(grep -m1 -E '^## ' CHANGELOG.md | grep -oE '[0-9]+\.[0-9]+\.[0-9]+' | head -n1)
# META.json (PGXN): the distribution's version, and the extension's version and script
meta=$(python3 -c 'import json; m = json.load(open("META.json")); a = m["provides"]["autopilot"]
same = a["version"] == m["version"] and a["file"] == "extension/autopilot--" + m["version"] + ".sql"
print(m["version"] if same else "a provides.autopilot version or file that is not " + m["version"])')
status=0
for pair in "pyproject.toml:$pyproject" "CHANGELOG.md:$changelog" "META.json:$meta"; do
    if [ "${pair#*:}" != "$control" ]; then
        echo "version mismatch: control/autopilot.control says $control, ${pair%%:*} says ${pair#*:}" >&2
        status=1
    fi
done
for released in $(grep -oE '^## \[[0-9]+\.[0-9]+\.[0-9]+\]' CHANGELOG.md | grep -oE '[0-9.]+[0-9]'); do
    if [ ! -f "extension/autopilot--${released}.sql" ]; then
        echo "CHANGELOG.md releases $released but extension/autopilot--${released}.sql is missing" >&2
        status=1
    fi
done
exit $status
