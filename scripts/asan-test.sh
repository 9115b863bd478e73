#!/usr/bin/env bash
# AddressSanitizer / LeakSanitizer checks of the native code, in build-asan/
# (never touches build/, which `npm run build` owns).
#
#   scripts/asan-test.sh            build (if needed), then:
#                                   1. the C++ core tests (cmac_core_tests) under ASan + LSan
#                                   2. the addon under ASan (LD_PRELOAD=libasan into node):
#                                      a driver script over the whole native surface, and the
#                                      mocha suites named in CMAC_ASAN_SUITES (default: addon, model,
#                                      robustness), all loading build-asan's cmac.node
#   scripts/asan-test.sh --core     only step 1
#   scripts/asan-test.sh --build-only
#
# How: plain CMake with the project's own -DCMAC_ASAN=ON option, in
# build-asan/, and CMAC_NODE_INCLUDE pointing at node_modules/node-api-headers
# (the addon only needs the Node-API headers), so the same CMakeLists.txt
# builds an instrumented cmac.node without cmake-js. Compiles
# under `nice -n 19` with -j1 (2 shared cores); the first build takes minutes.
#
# Node itself is not instrumented and V8 keeps memory until exit, so for the
# node runs LeakSanitizer reports are filtered: only leaks with a frame in
# cmac code (native/core, native/addon, cmac::, cmacjs::) count.
# The last line is machine-readable:
#   asan-test: core PASS|FAIL, addon PASS|FAIL|SKIPPED, asan errors N, cmac leaks N
set -uo pipefail
cd "$(dirname "$0")/.."
root=$PWD
out=build-asan
only_core=0
build_only=0
for a in "$@"; do
  case "$a" in
    --core) only_core=1 ;;
    --build-only) build_only=1 ;;
    -h|--help) sed -n '2,25p' "$0"; exit 0 ;;
    *) echo "asan-test: unknown option $a" >&2; exit 2 ;;
  esac
done

asan_lib=$(gcc -print-file-name=libasan.so)
[ -f "$asan_lib" ] || { echo "asan-test: libasan not found (apt install gcc)" >&2; exit 3; }
asan_lib=$(readlink -f "$asan_lib")

if [ ! -f "$out/CMakeCache.txt" ]; then
  nice -n 19 cmake -S . -B "$out" -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAC_ASAN=ON -DCMAC_BUILD_TESTS=ON \
    -DCMAC_NODE_INCLUDE="$root/node_modules/node-api-headers/include" >"$out.configure.log" 2>&1 || { cat "$out.configure.log"; exit 3; }
  mv "$out.configure.log" "$out/configure.log"
fi
targets=(cmac_core_tests)
[ "$only_core" = 0 ] && targets+=(cmac)
echo "asan-test: building ${targets[*]} in $out (nice -n 19, -j1)" >&2
nice -n 19 cmake --build "$out" --target "${targets[@]}" -j1 >"$out/build.log" 2>&1 || { tail -40 "$out/build.log"; exit 3; }
[ "$build_only" = 1 ] && { echo "asan-test: built"; exit 0; }

# libtorch is not instrumented: container-overflow annotations give false positives across the boundary.
common="detect_container_overflow=0:detect_odr_violation=0:abort_on_error=0:halt_on_error=1"
errors=0
cmac_leaks=0

# ---- 1. core tests: plain executable, ASan + LSan, every leak counts.
# Parity cases need fixtures made by Python's PyTorch (test/parity.test.ts makes
# them; .fixtures/ holds a copy when scripts/make-parity-fixtures.py has run):
# with fixtures every case runs in one process, without them the parity cases
# are left out (as test/core.test.ts does).
log="$out/core-tests.log"
core_bin="$out/Release/cmac_core_tests"
: >"$log"
if [ -f .fixtures/r2plus1d.safetensors ] && [ -f .fixtures/logmel.safetensors ] && [ -f .fixtures/resnet18.safetensors ]; then
  ASAN_OPTIONS="$common:detect_leaks=1" OMP_NUM_THREADS=2 "$core_bin" --fixtures .fixtures >>"$log" 2>&1
  core_rc=$?
else
  core_rc=0
  for name in $("$core_bin" --list | grep -v '^parity_'); do
    ASAN_OPTIONS="$common:detect_leaks=1" OMP_NUM_THREADS=2 "$core_bin" --run "$name" >>"$log" 2>&1
    rc=$?
    [ "$rc" -ne 0 ] && [ "$rc" -ne 3 ] && core_rc=$rc   # 3: the case skipped itself (e.g. CUDA)
  done
  echo "(parity cases left out: no .fixtures/; run scripts/make-parity-fixtures.py .fixtures)" >>"$log"
fi
core_err=$(grep -c 'ERROR: AddressSanitizer' "$log")
core_leaks=$(grep -c 'ERROR: LeakSanitizer' "$log")
errors=$((errors + core_err))
tail -n 3 "$log" >&2
core=PASS
{ [ "$core_rc" -ne 0 ] || [ "$core_leaks" -ne 0 ]; } && core=FAIL
echo "asan-test: core tests exit $core_rc, asan errors $core_err, leak reports $core_leaks (log $log)" >&2

addon=SKIPPED
if [ "$only_core" = 0 ]; then
  # A package root whose build/Release holds the ASan addon: lib/native.ts loads
  # it through node-gyp-build exactly as in production. node_modules resolve
  # upward to the checkout's.
  pkg="$out/pkg"
  rm -rf "$pkg"
  mkdir -p "$pkg/build/Release" "$pkg/scripts"
  cp package.json "$pkg/"
  cp scripts/find-torch.js "$pkg/scripts/"
  ln -s "$root/$out/Release/cmac.node" "$pkg/build/Release/cmac.node"
  if [ ! -d .test-build/test ] || [ ! -d dist ]; then
    echo "asan-test: run npm run build:ts && npm run build:test first" >&2
    exit 3
  fi
  cp -r .test-build "$pkg/.test-build"
  cp -r dist "$pkg/dist"

  run_node() {  # name, then the command; LSan reports filtered to cmac frames
    local name="$1"; shift
    local lg="$out/addon-$name.log"
    rm -f "$out"/lsan-"$name".*
    LD_PRELOAD="$asan_lib" ASAN_OPTIONS="$common:detect_leaks=1:exitcode=0:allow_user_segv_handler=1:log_path=$root/$out/lsan-$name" \
      LSAN_OPTIONS="report_objects=0" OMP_NUM_THREADS=2 "$@" >"$lg" 2>&1
    local rc=$?
    cat "$out"/lsan-"$name".* >>"$lg" 2>/dev/null
    local e l
    e=$(grep -c 'ERROR: AddressSanitizer' "$lg")
    # A leak report is a block from "Direct/Indirect leak" to the blank line after
    # it. It counts as cmac's when, walking up from the allocation, a cmac frame
    # comes before any frame of node/V8 (GC pages that V8 allocates while cmac
    # happens to be on the stack, e.g. in napi_create_arraybuffer, are V8's).
    l=$(awk '
      /(Direct|Indirect) leak of/ { inb = 1; owner = ""; next }
      inb && /^$/ { if (owner == "cmac") n++; inb = 0; next }
      inb && owner == "" && / #[0-9]+ / && !/ #0 / {
        if ($0 ~ /native\/(core|addon)|cmacjs::|cmac::/) owner = "cmac";
        else if ($0 ~ /\/usr\/bin\/node|v8::|node::|uv_|libnode/) owner = "node";
      }
      END { print n + 0 }' "$lg")
    echo "asan-test: $name exit $rc, asan errors $e, cmac leaks $l (log $lg)" >&2
    errors=$((errors + e))
    cmac_leaks=$((cmac_leaks + l))
    return $rc
  }

  cat >"$pkg/driver.js" <<'EOF'
// Every native entry point once, with good and bad input, then exit.
const { CmacModel, memory, info, setNumThreads, readSafetensors, writeSafetensors, modelPreset } = require('./dist/index.js');
const fs = require('fs'); const os = require('os'); const path = require('path');
(async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cmac-asan-'));
  setNumThreads(2); info();
  const n = 2, b = { video: { data: new Uint8Array(n * 2 * 32 * 32 * 3).fill(9), shape: [n, 2, 32, 32, 3] }, audio: { data: new Float32Array(n * 4000).fill(0.01), shape: [n, 4000] } };
  const m = await CmacModel.create({ ...modelPreset('tiny'), seed: 1 });
  for (let i = 0; i < 3; i++) await m.trainStep(b, { lr: 1e-3 });
  await m.embed(b); await m.maps(b); await m.evaluateLoss(b);
  const f = path.join(dir, 'm.safetensors');
  await m.save(f, { k: 'v' }); await m.load(f);
  await m.loadStateDict(await m.stateDict()); await m.loadOptimizerState(await m.optimizerState());
  await writeSafetensors(path.join(dir, 't.safetensors'), { a: { data: new Float32Array(4), shape: [2, 2] } });
  await readSafetensors(path.join(dir, 't.safetensors'));
  const bad = [() => m.trainStep({ video: b.video }, { lr: 1 }), () => m.embed({}), () => m.load('/nonexistent'),
    () => readSafetensors(path.join(dir, 'nope')), () => m.loadStateDict({}), () => m.to('cuda:9')];
  fs.writeFileSync(path.join(dir, 'junk.safetensors'), Buffer.from([255, 0, 0, 0, 0, 0, 0, 0, 123]));
  bad.push(() => readSafetensors(path.join(dir, 'junk.safetensors')));
  for (const fn of bad) { try { await fn(); } catch { /* expected */ } }
  const p = m.trainStep(b, { lr: 1e-3 }); m.dispose(); await p;
  await (async () => { await CmacModel.create({ ...modelPreset('tiny') }); })();  // left to the finaliser
  if (global.gc) for (let i = 0; i < 5; i++) { global.gc(); await new Promise((r) => setTimeout(r, 20)); }
  fs.rmSync(dir, { recursive: true, force: true });
  console.log('driver done', JSON.stringify(memory()));
})().catch((e) => { console.error(e); process.exit(1); });
EOF
  addon=PASS
  run_node driver node --expose-gc "$pkg/driver.js" || addon=FAIL
  grep -q 'driver done' "$out/addon-driver.log" || addon=FAIL
  suites=${CMAC_ASAN_SUITES:-addon model robustness}
  files=()
  for s in $suites; do [ -f "$pkg/.test-build/test/$s.test.js" ] && files+=("$pkg/.test-build/test/$s.test.js"); done
  if [ ${#files[@]} -gt 0 ]; then
    run_node mocha node "$root/node_modules/mocha/bin/mocha.js" --expose-gc --exit --timeout 600000 "${files[@]}" || addon=FAIL
    grep -Eq '^ +[0-9]+ failing' "$out/addon-mocha.log" && addon=FAIL
    grep -E '^ +[0-9]+ (passing|failing|pending)' "$out/addon-mocha.log" >&2
  fi
fi
echo "asan-test: core $core, addon $addon, asan errors $errors, cmac leaks $cmac_leaks"
[ "$core" = PASS ] && [ "$addon" != FAIL ] && [ "$errors" -eq 0 ] && [ "$cmac_leaks" -eq 0 ]
