#!/usr/bin/env bash
# The test command (`npm test`): runs the idempotent set-up for what is
# missing (system packages, node_modules; seconds when all is there), brings
# the native and TypeScript builds up to date, runs every mocha suite (the C++
# core tests run inside it), and ends with one line "N passed, N failed"
# converted from mocha's summary.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --quiet --no-build || { echo "set-up failed (scripts/setup.sh, output above)"; echo "0 passed, 1 failed"; exit 1; }
log=$(mktemp)
{
  npm run --silent build:native >/dev/null && npm run --silent build:ts && npm run --silent build:test
} || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
# Default: every suite; arguments select files or pass mocha options (e.g. -g name).
if [ $# -eq 0 ]; then set -- ".test-build/test/**/*.test.js"; fi
npx mocha "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
passed=$(grep -Eo '^ *[0-9]+ passing' "$log" | grep -Eo '[0-9]+' | tail -1)
failed=$(grep -Eo '^ *[0-9]+ failing' "$log" | grep -Eo '[0-9]+' | tail -1)
rm -f "$log"
echo "${passed:-0} passed, ${failed:-0} failed"
[ "$rc" -eq 0 ] && [ -n "$passed" ] || exit 1
