#!/usr/bin/env bash
# Makes a fresh Debian/Ubuntu machine ready for cmac: installs what is missing
# among the system packages, runs `npm ci`, builds the addon and TypeScript.
# Idempotent: with everything present it only checks and rebuilds what changed.
#
# Usage: scripts/setup.sh [--python] [--jupyter] [--no-build]
#   --python   also the PyTorch reference (python3-torch, -torchvision,
#              -torchaudio, -av) for parity fixtures and benchmark baselines,
#              and python3-opencv for the LVS protocol fixtures
#   --jupyter  also Jupyter (nbconvert, ipykernel) for the tslab notebook test
set -euo pipefail
cd "$(dirname "$0")/.."

want=(libtorch-dev libgloo-dev ffmpeg libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev pkg-config nlohmann-json3-dev protobuf-compiler cmake g++ make python3 clang libclang-rt-14-dev)
build=1
jupyter=0
for arg in "$@"; do
  case "$arg" in
    --python) want+=(python3-torch python3-torchvision python3-torchaudio python3-av python3-opencv) ;;
    --jupyter) want+=(jupyter-nbconvert python3-ipykernel); jupyter=1 ;;
    --no-build) build=0 ;;
    -h|--help) sed -n '2,12p' "$0"; exit 0 ;;
    *) echo "setup: unknown option $arg (see --help)" >&2; exit 2 ;;
  esac
done

missing=()
for p in "${want[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  sudo=""
  [ "$(id -u)" -ne 0 ] && sudo="sudo"
  $sudo apt-get update -q
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -q --no-install-recommends "${missing[@]}"
else
  echo "setup: system packages present (${want[*]})"
fi

# npm ci only when the lockfile changed since the last install.
if [ ! -f node_modules/.package-lock.json ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  npm ci --no-audit --no-fund
else
  echo "setup: node_modules up to date"
fi

# The tslab kernel for examples/cmac.ipynb: global, because tslab's bundled
# TypeScript 5.0.4 would shadow the project's tsc in node_modules/.bin.
if [ "$jupyter" = 1 ]; then
  command -v tslab >/dev/null || npm install -g --no-audit --no-fund tslab@1.0.22
  # Debian's Jupyter lives in /usr/bin/python3 (a `python3` earlier on PATH may not have it).
  /usr/bin/python3 -m jupyter kernelspec list 2>/dev/null | grep -q "^ *tslab " || tslab install --python=/usr/bin/python3 \
    || echo "setup: warning: the tslab kernel could not be installed; the notebook test will be skipped"
fi

if [ "$build" = 1 ]; then
  npm run build:all
fi
echo "setup: done. Try: npm run demo   (tests: npm test)"
