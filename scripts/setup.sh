#!/usr/bin/env bash
# Makes a fresh Debian/Ubuntu machine ready for cmac: installs what is missing
# among the system packages, runs `npm ci`, builds the addon and TypeScript.
# Idempotent: with everything present it only checks and rebuilds what changed.
#
# Usage: scripts/setup.sh [--python] [--jupyter] [--browser] [--no-build] [--quiet]
#   --python   also the PyTorch reference (python3-torch, -torchvision,
#              -torchaudio, -av) for parity fixtures and benchmark baselines,
#              and python3-opencv for the LVS protocol fixtures
#   --jupyter  also Jupyter (notebook, nbconvert, ipykernel) and the tslab kernel
#   --browser  also Chromium (/usr/bin/chromium) for the browser test of report.html
#   --quiet    print only what it does (npm test and npm run demo run it first)
# Builds only what is missing or older than its sources (addon, dist/).
set -euo pipefail
cd "$(dirname "$0")/.."

want=(libtorch-dev libgloo-dev ffmpeg libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev pkg-config nlohmann-json3-dev protobuf-compiler cmake g++ make python3 clang libclang-rt-14-dev clang-format)
build=1
jupyter=0
quiet=0
for arg in "$@"; do
  case "$arg" in
    --python) want+=(python3-torch python3-torchvision python3-torchaudio python3-av python3-opencv) ;;
    --jupyter) want+=(jupyter-notebook jupyter-nbconvert jupyter-client python3-ipykernel); jupyter=1 ;;
    --browser) want+=(chromium) ;;
    --no-build) build=0 ;;
    --quiet) quiet=1 ;;
    -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
    *) echo "setup: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

say() { [ "$quiet" = 1 ] || echo "$@"; }

node -e 'const [a,b]=process.versions.node.split(".").map(Number); process.exit(a>20||(a===20&&b>=19)?0:1)' || {
  echo "setup: Node.js $(node -v) is too old: cmac needs Node >= 20.19 (Debian 12's nodejs is 18)." >&2
  echo "Fix: install Node 20.19+ or 22 (https://nodejs.org/en/download, NodeSource's apt repository, or nvm), then run this again." >&2
  exit 1
}

missing=()
if ! command -v dpkg-query >/dev/null; then
  say "setup: not Debian/Ubuntu (no dpkg): install these with your package manager (names vary): cmake, g++, make, pkg-config, ffmpeg and its -dev libraries (libavformat, libavcodec, libavutil, libswscale, libswresample), nlohmann-json, protobuf; and a libtorch: pip install torch, or an unpacked libtorch with LIBTORCH=/path/to/libtorch (README: Building)"
  want=()
fi
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
elif [ ${#want[@]} -gt 0 ]; then
  say "setup: system packages present (${want[*]})"
fi

# npm ci only when the lockfile changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  say "setup: node_modules up to date"
fi

# The tslab kernel for examples/cmac.ipynb: global, because tslab's bundled
# TypeScript 5.0.4 would shadow the project's tsc in node_modules/.bin.
if [ "$jupyter" = 1 ]; then
  command -v tslab >/dev/null || npm install -g --no-audit --no-fund tslab@1.0.22
  # Debian's Jupyter lives in /usr/bin/python3 (a `python3` earlier on PATH may not have it).
  /usr/bin/python3 -m jupyter kernelspec list 2>/dev/null | grep -q "^ *tslab " || tslab install --python=/usr/bin/python3 \
    || echo "setup: warning: the tslab kernel could not be installed; the notebook test will be skipped"
fi

# Builds what is missing or older than its sources (cmake-js and tsc are incremental too, but take seconds).
newer() { [ ! -f "$1" ] || [ -n "$(find "${@:2}" -newer "$1" -print -quit 2>/dev/null)" ]; }
if [ "$build" = 1 ]; then
  if newer build/Release/cmac.node native CMakeLists.txt scripts/find-torch.js scripts/find-libav.js; then
    npm run build:native
  else
    say "setup: the addon (build/Release/cmac.node) is up to date"
  fi
  if newer dist/cli/main.js lib tsconfig.json package.json scripts/post-build-ts.js; then
    npm run build:ts
  else
    say "setup: dist/ is up to date"
  fi
fi
say "setup: done. Try: npm run demo   (tests: npm test)"
