# Shared by scripts/fuzz-safetensors.sh and scripts/fuzz-media.sh (sourced,
# not run): choosing the compiler and the fuzzing mode, and running a built
# harness, parsing its log and printing the machine-readable summary line
#   <name>: mode M, cases N, crashes C, leaks L, seconds S
# Each function reads the caller's variables named in its comment.

# In: mode (auto|standalone), out (the build folder), fz_name (for messages),
#     fz_bin (the binary's base name, e.g. media_fuzz).
# Out: cxx, mode (libfuzzer|standalone), san/objsan/extra (compile and link
#     flags), bin (the binary's path: one per mode and compiler).
fuzz_pick_mode() {
  cxx="${CMAC_FUZZ_CXX:-}"   # e.g. CMAC_FUZZ_CXX=g++ to try the fallback with GCC
  if [ -z "$cxx" ] && command -v clang++ >/dev/null 2>&1; then cxx=clang++; fi
  if [ "$mode" = auto ]; then
    mode=standalone
    if [ -n "$cxx" ] && [ "$cxx" != g++ ] && echo 'extern "C" int LLVMFuzzerTestOneInput(const unsigned char*, unsigned long){return 0;}' \
        | $cxx -x c++ -fsanitize=address,fuzzer -o "$out/.probe-$fz_bin" - >/dev/null 2>&1; then
      mode=libfuzzer
    fi
    rm -f "$out/.probe-$fz_bin"
  fi
  if [ -z "$cxx" ]; then
    cxx=g++
    echo "$fz_name: clang++ not found; building the seeded-mutation fallback with g++ (install clang libclang-rt-14-dev for libFuzzer)" >&2
  fi
  if [ "$mode" = libfuzzer ]; then
    san=(-fsanitize=address,fuzzer)
    objsan=(-fsanitize=address,fuzzer-no-link)
    extra=()
    bin="$out/$fz_bin"
  else
    san=(-fsanitize=address)
    objsan=(-fsanitize=address)
    extra=(-DCMAC_FUZZ_STANDALONE)
    bin="$out/${fz_bin}_standalone.$(basename "$cxx")"
  fi
}

# In: mode, bin, runs, secs, out, fz_name, fz_corpus, fz_findings (folder
#     for reproducers), fz_log, fz_max_len, fz_timeout (seconds per input,
#     empty: libFuzzer's default), fz_cases_re (the standalone main's line
#     that counts cases), fz_env (array of VAR=value for the harness).
# Prints the harness's summary lines to stderr and the summary line to
# stdout; returns 0 only when the harness exited 0 (no crash, no leak).
fuzz_run() {
  local rc cases leaks crashes t0 t1
  local opts=(-runs="$runs" -max_total_time="$secs")
  mkdir -p "$fz_corpus" "$fz_findings"
  t0=$(date +%s)
  if [ "$mode" = libfuzzer ]; then
    # -runs counts every input executed (seeds included); a crash/leak stops the run.
    opts+=(-max_len="$fz_max_len" -rss_limit_mb=4096 -artifact_prefix="$fz_findings/" -print_final_stats=1)
    [ -n "$fz_timeout" ] && opts+=(-timeout="$fz_timeout")
    env "${fz_env[@]}" nice -n 10 "$bin" "$fz_corpus" "${opts[@]}" >"$fz_log" 2>&1
    rc=$?
    cases=$(grep -Eo 'Done [0-9]+ runs' "$fz_log" | grep -Eo '[0-9]+' | tail -1)
    [ -z "$cases" ] && cases=$(grep -Eo 'stat::number_of_executed_units: *[0-9]+' "$fz_log" | grep -Eo '[0-9]+$' | tail -1)
  else
    env "${fz_env[@]}" nice -n 10 "$bin" "$fz_corpus" "${opts[@]}" >"$fz_log" 2>&1
    rc=$?
    cases=$(grep -Eo "$fz_cases_re" "$fz_log" | grep -Eo '[0-9]+' | tail -1)
  fi
  t1=$(date +%s)
  leaks=$(grep -c 'ERROR: LeakSanitizer' "$fz_log")
  crashes=0
  if [ "$rc" -ne 0 ] && [ "$leaks" -eq 0 ]; then crashes=1; fi
  grep -E "^(cmac-fuzz|Done|stat::|==[0-9]+==ERROR|SUMMARY|\\*\\*\\*)" "$fz_log" | tail -12 >&2
  if [ "$rc" -ne 0 ]; then
    echo "$fz_name: FAILED (exit $rc); log $fz_log; reproducer(s) in $fz_findings/:" >&2
    ls -1 "$fz_findings" >&2
  fi
  echo "$fz_name: mode $mode, cases ${cases:-0}, crashes $crashes, leaks $leaks, seconds $((t1 - t0))"
  [ "$rc" -eq 0 ]
}
