#!/usr/bin/env bash
# The test command (`npm test`): runs the idempotent set-up for what is
# missing (system packages, node_modules; seconds when all is there), brings
# the native and TypeScript builds up to date, runs `npm run lint` (ESLint,
# prettier, clang-format: scripts/lint.sh; a failure counts as one failed test
# and the suites still run), runs every mocha suite (the C++ core tests run
# inside it), and ends with one line "N passed, N failed" converted from
# mocha's summary. CMAC_SKIP_LINT=1 skips the lint step.
set -uo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --quiet --no-build || { echo "set-up failed (scripts/setup.sh, output above)"; echo "0 passed, 1 failed"; exit 1; }
log=$(mktemp)
{
  npm run --silent build:native >/dev/null && npm run --silent build:ts && npm run --silent build:test
} || { echo "build failed"; echo "0 passed, 1 failed"; exit 1; }
lint_failed=0
if [ "${CMAC_SKIP_LINT:-0}" != 1 ]; then
  npm run --silent lint || { lint_failed=1; echo "lint failed (npm run lint, output above); counted as 1 failed test"; }
fi
# Default: every suite; arguments select files or pass mocha options (e.g. -g name).
if [ $# -eq 0 ]; then set -- ".test-build/test/**/*.test.js"; fi
npx mocha "$@" 2>&1 | tee "$log"
rc=${PIPESTATUS[0]}
passed=$(grep -Eo '^ *[0-9]+ passing' "$log" | grep -Eo '[0-9]+' | tail -1)
failed=$(grep -Eo '^ *[0-9]+ failing' "$log" | grep -Eo '[0-9]+' | tail -1)
rm -f "$log"
echo "${passed:-0} passed, $((${failed:-0} + lint_failed)) failed"
[ "$rc" -eq 0 ] && [ -n "$passed" ] && [ "$lint_failed" -eq 0 ] || exit 1
