#!/usr/bin/env bash
# GPU check (issues 7 and 8): on a machine with an NVIDIA GPU, a CUDA PyTorch,
# CMake and ninja, but perhaps no Node: builds native/core, its tests and the
# addon against PyTorch's libtorch, runs every C++ core test with
# --require-cuda (CPU vs CUDA agreement, AMP bf16/fp16 steps, NCCL world size
# 1), then bench/gpu.js (cmac vs the PyTorch reference on the GPU: eval-loss
# parity, step time ratio, MFU). One command, meant to finish in < 8 min.
#
# Prepare on the dev machine (every path below is gitignored):
#   scripts/gpu-check.sh --prepare
#     -> .nodebin/node.xz (this machine's node), third_party/include (nlohmann,
#        node headers, node-addon-api), third_party/node_modules (the runtime
#        modules dist/ needs), dist/ (npm run build:ts)
# Then on the GPU machine (carry .nodebin third_party dist):
#   bash scripts/gpu-check.sh            # logs and JSON under $OUT (or /tmp/gpu-out)
# CMAC_GPU_LEAN=1: only the CUDA core tests and two bench cases (for a short lease).
# A dry run on a CPU machine (checks the script, the plain-CMake addon build
# and the Node side; no CUDA): CMAC_GPU_DRYRUN=1 bash scripts/gpu-check.sh
set -uo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
  set -e
  mkdir -p .nodebin third_party/include third_party/node_modules
  [ -f .nodebin/node.xz ] || xz -T2 -6 -c "$(command -v node)" > .nodebin/node.xz
  cp -r /usr/include/nlohmann third_party/include/
  node_inc="$(dirname "$(readlink -f "$(command -v node)")")/../include/node"
  [ -d "$node_inc" ] || node_inc=/usr/include/node
  rm -rf third_party/include/node && cp -r "$node_inc" third_party/include/node && rm -rf third_party/include/node/openssl  # the addon needs no OpenSSL headers (53 MB)
  # Runtime modules of dist/model, dist/presets, dist/safetensors, dist/info (checked by the require below).
  for m in node-addon-api node-gyp-build zod yaml; do rm -rf "third_party/node_modules/$m"; cp -r "node_modules/$m" third_party/node_modules/; done
  npm run build:ts >/dev/null
  NODE_PATH="$PWD/third_party/node_modules" node -e "
    const M = require('module'); const seen = new Set(); const orig = M._load;
    M._load = function (r) { if (!/^[./]/.test(r) && !M.builtinModules.includes(r.replace(/^node:/, ''))) seen.add(r); return orig.apply(this, arguments); };
    for (const m of ['model', 'presets', 'safetensors', 'info']) require('./dist/' + m);
    const missing = [...seen].filter((x) => !require('fs').existsSync('third_party/node_modules/' + x));
    if (missing.length) { console.error('missing runtime modules: ' + missing.join(', ')); process.exit(1); }"
  du -sh .nodebin third_party dist | tr '\n' ' '; echo
  echo "prepared: carry .nodebin third_party dist"
  exit 0
fi

OUT="${OUT:-/tmp/gpu-out}"
mkdir -p "$OUT"
exec > >(tee "$OUT/gpu-check.log") 2>&1
t0=$(date +%s)
el() { echo "$(( $(date +%s) - t0 )) s"; }
dry="${CMAC_GPU_DRYRUN:-0}"
lean="${CMAC_GPU_LEAN:-0}"
status=0

if ! command -v node >/dev/null; then
  xz -dc .nodebin/node.xz > /tmp/node && chmod +x /tmp/node && export PATH=/tmp:$PATH
fi
export PATH="$PATH:/usr/local/cuda/bin"
export NODE_PATH="$PWD/third_party/node_modules"
PY="${CMAC_GPU_PYTHON:-python3}"
echo "== node $(node --version); $(nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi'); $(nproc) cores"
echo "== $(g++ --version | head -1); cmake $(cmake --version | head -1 | awk '{print $3}'); nvcc $(nvcc --version 2>/dev/null | grep -o 'release [0-9.]*' || echo none)"
$PY -c "import torch; print('== torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())" || echo "== python torch: not importable"
if [ -z "${CMAKE_PREFIX_PATH:-}" ]; then export CMAKE_PREFIX_PATH=$($PY -c "import torch; print(torch.utils.cmake_prefix_path)"); fi
nccl_inc=$($PY -c "import nvidia.nccl as n, os; print(os.path.join(list(n.__path__)[0], 'include'))" 2>/dev/null || true)
echo "== libtorch cmake prefix $CMAKE_PREFIX_PATH; nccl.h from ${nccl_inc:-(none found in python)}"
# The parity fixtures need the same torchvision/torchaudio as the libtorch; make them when possible.
fix=""
if [ "$dry" != 1 ] && [ "$lean" != 1 ] && $PY scripts/make-parity-fixtures.py /tmp/cmac-fixtures >"$OUT/fixtures.log" 2>&1; then fix="--fixtures /tmp/cmac-fixtures"; else echo "   (parity fixtures not made: see fixtures.log)"; fi

echo "== configure + build (native/core, tests, addon) with $(nproc) jobs"
gen=(); command -v ninja >/dev/null && gen=(-G Ninja)
cmake -S . -B build-gpu "${gen[@]}" -DCMAKE_BUILD_TYPE=Release -DCMAC_NODE_INCLUDE="$PWD/third_party/include/node" \
  -DCMAC_NCCL_INCLUDE="${nccl_inc}" >"$OUT/cmake.log" 2>&1 || { echo "   configure FAILED:"; tail -40 "$OUT/cmake.log"; exit 1; }
grep -E "cmac:|CMake Warning" "$OUT/cmake.log" | head -12
if [ ${#gen[@]} -gt 0 ]; then build=(cmake --build build-gpu -- -k 0 -j "$(nproc)"); else build=(cmake --build build-gpu -j "$(nproc)" -- -k); fi
if ! "${build[@]}" >"$OUT/build.log" 2>&1; then
  status=1
  echo "   build FAILED (all errors in build.log); the first ones:"
  grep -E "error|Error" "$OUT/build.log" | grep -v "^ninja: build stopped" | head -30
fi
echo "   build done at $(el)"

tests=build-gpu/Release/cmac_core_tests
req="--require-cuda"; [ "$dry" = 1 ] && req=""
if [ -x $tests ]; then
  echo "== C++ core tests $req $fix"
  if [ "$lean" = 1 ]; then
    rc=0
    for t in cuda_outputs_match_cpu cuda_layout_channels_last_matches_contiguous cuda_to_device_is_pinned_and_equal cuda_amp_bf16_and_fp16_steps_are_finite_and_learn nccl_process_group_world_size_1 cuda_classifier_matches_cpu adam_foreach_path_matches_the_single_tensor_rule; do
      $tests $req --run $t >>"$OUT/core-tests.log" 2>&1 || rc=1
    done
  else
    $tests $req $fix >"$OUT/core-tests.log" 2>&1; rc=$?
  fi
  grep -E "^(FAIL|skip)" "$OUT/core-tests.log" | head -20
  grep -E "cuda|nccl" "$OUT/core-tests.log" | head -8
  tail -2 "$OUT/core-tests.log"
  [ $rc -eq 0 ] || status=1
  echo "   core tests exit $rc at $(el)"
else
  echo "== C++ core tests: not built"
fi

if [ -f build-gpu/Release/cmac.node ]; then
  mkdir -p build/Release && cp build-gpu/Release/cmac.node build/Release/cmac.node
  echo "== Node: load the addon"
  node -e "const i = require('./dist/info').info(); console.log('   cmac info:', JSON.stringify({ torch: i.torchVersion, source: i.torchSource, cudaCompiled: i.cudaCompiled, cuda: i.cudaAvailable, devices: i.cudaDevices }))" || status=1
  if [ "$dry" != 1 ]; then
    echo "== bench/gpu.js: cmac vs PyTorch on the GPU (same libtorch), median of 20 steps after 5"
    [ "$lean" = 1 ] && export CMAC_GPU_CASES="${CMAC_GPU_CASES:-tiny:32:off,paper:32:bf16,paper:32:bf16:channels-last,paper:32:bf16:auto:bench}" CMAC_GPU_STEPS="${CMAC_GPU_STEPS:-10}"
    CMAC_GPU_PYTHON="$PY" timeout 300 node bench/gpu.js "$OUT/gpu-bench.json" || status=1
  fi
else
  echo "== Node: addon not built"
fi
echo "== done in $(el), status $status"
exit $status
