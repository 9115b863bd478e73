#!/usr/bin/env bash
# Fuzzes cmac::parseSafetensors (native/core/safetensors.cpp) with the harness
# in native/fuzz/safetensors_fuzz.cpp, under AddressSanitizer (+LeakSanitizer).
#
#   scripts/fuzz-safetensors.sh              short run: 20000 cases or 30 s
#   scripts/fuzz-safetensors.sh --long       long run: 2000000 cases or 900 s (also CMAC_LONG=1)
#   scripts/fuzz-safetensors.sh --runs N --time S
#   scripts/fuzz-safetensors.sh --standalone use the seeded-mutation main even if libFuzzer exists
#   scripts/fuzz-safetensors.sh --build-only
#
# Builds into build-fuzz/ (never touches build/). With clang and libFuzzer
# (Debian: apt install clang libclang-rt-14-dev) it links -fsanitize=address,fuzzer;
# otherwise it builds the harness's own seeded-mutation main with
# -fsanitize=address (clang++ or g++). Seeds: valid files the harness writes
# with cmac::serializeSafetensors plus hand-made edge cases (build-fuzz/corpus).
# The last line is machine-readable:
#   fuzz-safetensors: mode M, cases N, crashes C, leaks L, seconds S
# Exit status 0 only when crashes and leaks are both 0.
set -uo pipefail
cd "$(dirname "$0")/.."

runs=20000
secs=30
mode=auto
build_only=0
if [ "${CMAC_LONG:-0}" = 1 ]; then runs=2000000; secs=900; fi
while [ $# -gt 0 ]; do
  case "$1" in
    --long) runs=2000000; secs=900 ;;
    --runs) runs="$2"; shift ;;
    --time) secs="$2"; shift ;;
    --standalone) mode=standalone ;;
    --build-only) build_only=1 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "fuzz-safetensors: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done

out=build-fuzz
mkdir -p "$out"
torch_inc=(-isystem /usr/include/torch/csrc/api/include)  # /usr/include is already on the path
torch_lib=(-L/usr/lib/x86_64-linux-gnu -ltorch -ltorch_cpu -lc10)
if [ -n "${LIBTORCH:-}" ]; then
  torch_inc=(-isystem "$LIBTORCH/include" -isystem "$LIBTORCH/include/torch/csrc/api/include")
  torch_lib=(-L"$LIBTORCH/lib" -Wl,-rpath,"$LIBTORCH/lib" -ltorch -ltorch_cpu -lc10)
fi
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -D_GLIBCXX_USE_CXX11_ABI=1 -Inative/core "${torch_inc[@]}")

. scripts/fuzz-common.sh
fz_name=fuzz-safetensors
fz_bin=safetensors_fuzz
fuzz_pick_mode

# Rebuild only what changed (objects depend on their source and the core header).
build() {
  local src="$1" obj="$2"; shift 2
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ native/core/safetensors.h -nt "$obj" ] || [ "$0" -nt "$obj" ]; then
    echo "fuzz-safetensors: compiling $src ($cxx, $mode)" >&2
    nice -n 19 "$cxx" "${flags[@]}" "$@" -c "$src" -o "$obj" || exit 3
  fi
}
tag="$mode.$(basename "$cxx")"
build native/core/safetensors.cpp "$out/safetensors.$tag.o" "${objsan[@]}"
build native/fuzz/safetensors_fuzz.cpp "$out/harness.$tag.o" "${objsan[@]}" "${extra[@]}"
if [ ! -x "$bin" ] || [ "$out/safetensors.$tag.o" -nt "$bin" ] || [ "$out/harness.$tag.o" -nt "$bin" ]; then
  echo "fuzz-safetensors: linking $bin" >&2
  nice -n 19 "$cxx" "${san[@]}" "$out/harness.$tag.o" "$out/safetensors.$tag.o" "${torch_lib[@]}" -o "$bin" || exit 3
fi
[ "$build_only" = 1 ] && { echo "fuzz-safetensors: built $bin"; exit 0; }

# libtorch is not instrumented: container-overflow annotations would give false positives.
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_container_overflow=0:detect_leaks=1:abort_on_error=0}"
export OMP_NUM_THREADS=1
fz_corpus="$out/corpus"
fz_findings="$out/findings"
fz_log="$out/last-run.log"
fz_max_len=4096
fz_timeout=
fz_cases_re='cases [0-9]+'
fz_env=(CMAC_FUZZ_SEED_DIR="$fz_corpus")  # libFuzzer mode: the harness writes its seeds there first
fuzz_run
