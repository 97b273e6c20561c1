#!/usr/bin/env bash
# Fails when a file under sql/ (other than updates/) is missing from the manifest, or
# the manifest names a file that does not exist.
set -euo pipefail
cd "$(dirname "$0")/.."
listed=$(grep -v '^\s*\(#\|$\)' sql/manifest.txt | sort)
present=$(find sql -name '*.sql' -not -path 'sql/updates/*' | sort)
missing=$(comm -13 <(echo "$listed") <(echo "$present"))
absent=$(comm -23 <(echo "$listed") <(echo "$present"))
status=0
if [ -n "$missing" ]; then echo "sql/manifest.txt does not list: $missing" >&2; status=1; fi
if [ -n "$absent" ]; then echo "sql/manifest.txt lists missing files: $absent" >&2; status=1; fi
dupes=$(echo "$listed" | uniq -d)
if [ -n "$dupes" ]; then echo "sql/manifest.txt lists twice: $dupes" >&2; status=1; fi
exit $status
