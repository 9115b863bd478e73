#!/usr/bin/env bash
# GPU check (issue 7): on a machine with an NVIDIA GPU, PyTorch (CUDA), CMake
# and ninja, but perhaps no Node: builds native/core and the addon against
# PyTorch's libtorch, runs every C++ core test with --require-cuda (CPU vs
# CUDA agreement, AMP bf16/fp16 steps, NCCL world size 1), then a Node-level
# CUDA smoke run and a step benchmark. One command, meant to finish in < 8 min.
#
# Prepare on the dev machine (paths are gitignored):
#   scripts/gpu-check.sh --prepare     # .nodebin/node.xz, third_party/include (nlohmann, node headers), dist/
# Then on the GPU machine (the device tool carries these paths):
#   bash scripts/gpu-check.sh
set -euo pipefail
cd "$(dirname "$0")/.."

if [ "${1:-}" = "--prepare" ]; then
  mkdir -p .nodebin third_party/include
  [ -f .nodebin/node.xz ] || xz -T2 -6 -c "$(command -v node)" > .nodebin/node.xz
  cp -r /usr/include/nlohmann third_party/include/
  cp -r "$(dirname "$(command -v node)")/../include/node" third_party/include/ 2>/dev/null || cp -r /usr/include/node third_party/include/
  npm run build:ts >/dev/null
  echo "prepared: carry .nodebin third_party dist node_modules/node-addon-api node_modules/node-gyp-build"
  exit 0
fi

t0=$(date +%s)
if ! command -v node >/dev/null; then
  xz -dc .nodebin/node.xz > /tmp/node && chmod +x /tmp/node && export PATH=/tmp:$PATH
fi
echo "== node $(node --version); $(nvidia-smi --query-gpu=name,memory.total --format=csv,noheader 2>/dev/null || echo 'no nvidia-smi')"
export CMAKE_PREFIX_PATH=$(python3 -c "import torch; print(torch.utils.cmake_prefix_path)")
python3 -c "import torch; print('== torch', torch.__version__, 'cuda', torch.version.cuda, 'available', torch.cuda.is_available())"

echo "== build (native/core, tests, addon) against PyTorch's libtorch"
cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAC_NODE_INCLUDE="$PWD/third_party/include/node" >/tmp/gpu-cmake.log 2>&1 || { tail -40 /tmp/gpu-cmake.log; exit 1; }
cmake --build build-gpu -j "$(nproc)" >/tmp/gpu-build.log 2>&1 || { grep -E "error|Error" /tmp/gpu-build.log | head -40; exit 1; }
echo "   built in $(( $(date +%s) - t0 )) s"

echo "== C++ core tests with --require-cuda"
build-gpu/Release/cmac_core_tests --require-cuda | grep -E "^(ok|FAIL|skip)|passed" | grep -v "^ok   parity" || true
build-gpu/Release/cmac_core_tests --require-cuda --run cuda_outputs_match_cpu >/dev/null && \
build-gpu/Release/cmac_core_tests --require-cuda --run cuda_amp_bf16_and_fp16_steps_are_finite_and_learn >/dev/null && \
build-gpu/Release/cmac_core_tests --require-cuda --run nccl_process_group_world_size_1 >/dev/null && echo "   CUDA core tests: pass" || echo "   CUDA core tests: FAIL"

echo "== Node-level CUDA smoke run and step benchmark"
mkdir -p build/Release && cp build-gpu/Release/cmac.node build/Release/cmac.node
node - <<'JS'
const { CmacModel } = require('./dist/model');
const { info } = require('./dist/info');
const { modelPreset } = require('./dist/presets');
(async () => {
  const i = info();
  console.log(`   cmac info: torch ${i.torchVersion} (${i.torchSource}), CUDA ${i.cudaAvailable} ${i.cudaDevices.join(', ')}`);
  for (const [preset, n, frames, size, mels] of [['tiny', 32, 4, 64, 64], ['paper', 32, 8, 112, 128]]) {
    for (const amp of ['off', 'bf16']) {
      const m = await CmacModel.create({ ...modelPreset(preset), device: 'cuda', amp, seed: 1 });
      const video = { data: new Uint8Array(n * frames * size * size * 3).map((_, k) => (k * 2654435761) >>> 24), shape: [n, frames, size, size, 3] };
      const audio = { data: new Float32Array(n * 32000).map((_, k) => Math.sin(k * 0.01) * 0.1), shape: [n, 32000] };
      const times = [];
      let first, last;
      for (let s = 0; s < 15; s++) {
        const t = Date.now();
        const r = await m.trainStep({ video, audio }, { lr: 1e-4 });
        if (s >= 5) times.push(Date.now() - t);
        if (s === 0) first = r.loss;
        last = r.loss;
        if (!r.finite) throw new Error(`${preset} ${amp}: non-finite loss at step ${s}`);
      }
      times.sort((a, b) => a - b);
      console.log(`   ${preset} amp=${amp} batch ${n}: median step ${times[times.length >> 1]} ms (incl. copy in), loss ${first.toFixed(3)} -> ${last.toFixed(3)}`);
      m.dispose();
    }
  }
})().catch((e) => { console.error('   smoke run FAILED:', e.message); process.exit(1); });
JS
echo "== done in $(( $(date +%s) - t0 )) s"
