#!/usr/bin/env bash
# Fuzzes native/core/media (probe + clip decode over bytes in memory, the
# custom AVIOContext path) with native/fuzz/media_fuzz.cpp under
# AddressSanitizer (+LeakSanitizer), as scripts/fuzz-safetensors.sh does the
# safetensors parser.
#
#   scripts/fuzz-media.sh              short run: 10000 cases or 120 s
#   scripts/fuzz-media.sh --long       long run: 200000 cases or 1800 s (also CMAC_LONG=1)
#   scripts/fuzz-media.sh --runs N --time S
#   scripts/fuzz-media.sh --standalone use the seeded-mutation main even if libFuzzer exists
#
# Builds into build-fuzz/ (never touches build/); libav comes from pkg-config
# (the system's FFmpeg, not instrumented: findings are in cmac's code or its
# use of libav). Seeds: tiny mp4/mkv/webm/avi files made with the ffmpeg CLI
# (build-fuzz/media-corpus). The last line is machine-readable:
#   fuzz-media: mode M, cases N, crashes C, leaks L, seconds S
# Exit status 0 only when crashes and leaks are both 0.
set -uo pipefail
cd "$(dirname "$0")/.."

runs=10000
secs=120
mode=auto
if [ "${CMAC_LONG:-0}" = 1 ]; then runs=200000; secs=1800; fi
while [ $# -gt 0 ]; do
  case "$1" in
    --long) runs=200000; secs=1800 ;;
    --runs) runs="$2"; shift ;;
    --time) secs="$2"; shift ;;
    --standalone) mode=standalone ;;
    -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
    *) echo "fuzz-media: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
if ! pkg-config --exists libavformat libavcodec libavutil libswscale libswresample; then
  echo "fuzz-media: libav -dev packages not found (apt install libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev pkg-config)" >&2
  exit 4
fi

out=build-fuzz
mkdir -p "$out"
read -r -a avflags <<<"$(pkg-config --cflags libavformat libavcodec libavutil libswscale libswresample)"
read -r -a avlibs <<<"$(pkg-config --libs libavformat libavcodec libavutil libswscale libswresample)"
flags=(-std=c++17 -O1 -g -fno-omit-frame-pointer -Inative/core/media "${avflags[@]}")
. scripts/fuzz-common.sh
fz_name=fuzz-media
fz_bin=media_fuzz
fuzz_pick_mode
tag="media.$mode.$(basename "$cxx")"
objs=()
for src in native/core/media/media.cpp native/fuzz/media_fuzz.cpp; do
  obj="$out/$(basename "$src" .cpp).$tag.o"
  if [ ! -f "$obj" ] || [ "$src" -nt "$obj" ] || [ native/core/media/media.h -nt "$obj" ] || [ "$0" -nt "$obj" ]; then
    echo "fuzz-media: compiling $src ($cxx, $mode)" >&2
    nice -n 19 "$cxx" "${flags[@]}" "${objsan[@]}" "${extra[@]}" -c "$src" -o "$obj" || exit 3
  fi
  objs+=("$obj")
done
if [ ! -x "$bin" ] || [ "${objs[0]}" -nt "$bin" ] || [ "${objs[1]}" -nt "$bin" ]; then
  echo "fuzz-media: linking $bin" >&2
  nice -n 19 "$cxx" "${san[@]}" "${objs[@]}" "${avlibs[@]}" -pthread -o "$bin" || exit 3
fi

corpus="$out/media-corpus"
mkdir -p "$corpus"
ff="${CMAC_FFMPEG:-ffmpeg}"
seed() {  # name, then ffmpeg output options
  local f="$corpus/seed-$1"; shift
  [ -s "$f" ] && return 0
  "$ff" -hide_banner -loglevel error -nostdin -y -f lavfi -i testsrc2=s=32x24:r=10:d=0.5 -f lavfi -i sine=f=440:sample_rate=8000:d=0.5 "$@" "$f" \
    || echo "fuzz-media: could not make seed $f" >&2
}
seed a.mp4 -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a aac -b:a 16k
seed b.mkv -c:v libx264 -preset ultrafast -pix_fmt yuv420p -c:a pcm_s16le
seed c.webm -c:v libvpx -b:v 50k -c:a libopus -b:a 16k -ar 48000
seed d.avi -c:v mpeg4 -q:v 10 -c:a pcm_u8
seed e.mov -c:v mjpeg -q:v 10 -an
export ASAN_OPTIONS="${ASAN_OPTIONS:-detect_leaks=1:abort_on_error=0}"
fz_corpus="$corpus"
fz_findings="$out/media-findings"
fz_log="$out/media-last-run.log"
fz_max_len=16384
fz_timeout=20
fz_cases_re='cmac-fuzz: cases [0-9]+'
fz_env=()
fuzz_run
