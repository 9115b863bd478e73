#!/usr/bin/env bash
# `npm run lint`: ESLint (eslint.config.mjs; typed rules read tsconfig.test.json
# and tsconfig.scripts.json, so dist/ must be built: npm run build:ts), then
# prettier --check (.prettierrc) over lib/ test/ scripts/ bench/, then
# clang-format --dry-run -Werror (.clang-format) over native/.
# `npm run format` (--fix): prettier --write and clang-format -i over the same
# files; ESLint's findings are left to be fixed by hand.
# Exit status 0 only when every check passes; each failing check is named.
set -uo pipefail
cd "$(dirname "$0")/.."

fix=0
case "${1:-}" in
  --fix) fix=1 ;;
  '') ;;
  -h|--help) sed -n '2,8p' "$0"; exit 0 ;;
  *) echo "lint: unknown option $1 (--fix formats instead of checking)" >&2; exit 2 ;;
esac

js=("lib/**/*.ts" "test/**/*.ts" "scripts/**/*.js" "bench/**/*.js" "*.mjs")
mapfile -t cxx < <(find native \( -name '*.cpp' -o -name '*.cc' -o -name '*.h' -o -name '*.hpp' \) -type f | sort)
if ! command -v clang-format >/dev/null 2>&1; then
  echo "lint: clang-format not found. Fix: npm run setup (apt install clang-format)" >&2
  exit 3
fi

if [ "$fix" = 1 ]; then
  npx --no-install prettier --log-level warn --write "${js[@]}" || exit 1
  clang-format -i "${cxx[@]}" || exit 1
  echo "lint: formatted (prettier: lib test scripts bench; clang-format: ${#cxx[@]} files under native/)"
  exit 0
fi

failed=()
npx --no-install eslint --max-warnings 0 . || failed+=(eslint)
npx --no-install prettier --log-level warn --check "${js[@]}" || failed+=(prettier)
clang-format --dry-run -Werror "${cxx[@]}" 2>&1 | grep -E '^[^ ].*: error:' | sed 's/:[0-9]*:[0-9]*: error:.*//' | sort -u | sed 's/^/clang-format: not formatted: /' >&2
[ "${PIPESTATUS[0]}" -eq 0 ] || failed+=(clang-format)
if [ ${#failed[@]} -gt 0 ]; then
  echo "lint: failed: ${failed[*]}. Formatting fix: npm run format; ESLint findings are fixed by hand." >&2
  exit 1
fi
echo "lint: eslint, prettier and clang-format clean"
