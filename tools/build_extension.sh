#!/usr/bin/env bash
# Concatenates sql/ in manifest order into one extension script on stdout.
# Usage: tools/build_extension.sh VERSION
set -euo pipefail
version=$1
cd "$(dirname "$0")/.."
echo "-- autopilot ${version}: built from sql/ by tools/build_extension.sh (sql/manifest.txt order). Do not edit."
echo '\echo Use "CREATE EXTENSION autopilot" (or "autopilot install") to load this file. \quit'
grep -v '^\s*\(#\|$\)' sql/manifest.txt | while read -r file; do
    printf '\n-- %s\n' "$file"
    sed "s/@AUTOPILOT_VERSION@/${version}/g" "$file"
done
