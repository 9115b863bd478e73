// Tests of native/core/media on small files made here with the ffmpeg CLI.
// `cmac_media_tests --list` / `--run NAME` like cmac_core_tests (run from
// test/data-native.test.ts). Parity with the ffmpeg-CLI path is checked there.
#include <sys/stat.h>
#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <future>
#include <iostream>
#include <iterator>
#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

#include "../../tests/runner.h"
#include "../media.h"
#include "../pool.h"

using namespace cmac::media;

namespace {

std::string dir() {
  static std::string d = [] {
    char tmpl[] = "/tmp/cmac-media-tests-XXXXXX";
    const char* p = mkdtemp(tmpl);
    if (!p) throw std::runtime_error("mkdtemp failed");
    return std::string(p);
  }();
  return d;
}

std::string ffmpeg() {
  const char* e = std::getenv("CMAC_FFMPEG");
  return e && *e ? e : "ffmpeg";
}

// Makes a file once with the ffmpeg CLI; returns its path.
std::string make(const std::string& name, const std::string& args) {
  std::string out = dir() + "/" + name;
  struct stat st;
  if (::stat(out.c_str(), &st) == 0) return out;
  std::string cmd = ffmpeg() + " -hide_banner -loglevel error -nostdin -y " + args + " " + out;
  if (std::system(cmd.c_str()) != 0) throw std::runtime_error("ffmpeg failed: " + cmd);
  return out;
}

// 2 s, 64x48, solid red then (from 1 s) solid blue, 10 fps, 1 s keyframes; AAC 44.1 kHz stereo 1 kHz tone.
std::string redBlue() {
  return make("redblue.mp4",
              "-f lavfi -i color=c=red:s=64x48:r=10:d=1 -f lavfi -i color=c=blue:s=64x48:r=10:d=1 "
              "-f lavfi -i sine=frequency=1000:sample_rate=44100:duration=2 "
              "-filter_complex \"[0:v][1:v]concat=n=2:v=1:a=0[v];[2:a]aformat=channel_layouts=stereo[a]\" -map \"[v]\" "
              "-map \"[a]\" "
              "-c:v libx264 -preset ultrafast -g 10 -pix_fmt yuv420p -c:a aac");
}

std::vector<uint8_t> readAll(const std::string& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

ClipRequest clip(double start, int frames) {
  ClipRequest r;
  r.start = start;
  r.frames = frames;
  r.fps = 10;
  r.width = 32;
  r.height = 32;
  return r;
}

double mean(const std::vector<uint8_t>& v, int frame, int c, int size = 32) {
  double s = 0;
  for (int i = 0; i < size * size; ++i) s += v[size_t(frame) * size * size * 3 + size_t(i) * 3 + c];
  return s / (size * size);
}

}  // namespace

TEST(media_probe_fields) {
  ProbeResult p = probe(Source{redBlue(), nullptr});
  CHECK_MSG(p.ok, p.reason << ": " << p.message);
  CHECK(p.video.codec == "h264");
  CHECK(p.video.width == 64 && p.video.height == 48);
  CHECK_CLOSE(p.video.fps, 10, 1e-6);
  CHECK_CLOSE(p.duration, 2, 0.1);
  CHECK(p.hasAudio && p.audio.codec == "aac" && p.audio.sampleRate == 44100 && p.audio.channels == 2 &&
        p.audio.stream == 0);
  CHECK(p.format.find("mp4") != std::string::npos);
}

TEST(media_decode_colours_by_time) {
  ClipRequest r = clip(0.5, 10);  // 0.5 .. 1.4 s: 5 red frames then 5 blue
  std::vector<uint8_t> v(size_t(r.frames) * 32 * 32 * 3);
  ClipResult c = decodeClip(Source{redBlue(), nullptr}, r, v.data(), nullptr);
  CHECK_MSG(c.ok, c.reason << ": " << c.message);
  for (int k = 0; k < 10; ++k) {
    const bool red = k < 5;
    CHECK_MSG(std::abs(mean(v, k, 0) - (red ? 254 : 0)) < 6 && std::abs(mean(v, k, 2) - (red ? 0 : 254)) < 6,
              "frame " << k << " rgb " << mean(v, k, 0) << "," << mean(v, k, 1) << "," << mean(v, k, 2));
  }
}

TEST(media_audio_window_and_padding) {
  ClipRequest r = clip(0, 1);
  r.audio = true;
  r.audioStart = -0.25;
  r.samples = 16000;
  std::vector<uint8_t> v(32 * 32 * 3);
  std::vector<float> a(16000, 7.0f);
  ClipResult c = decodeClip(Source{redBlue(), nullptr}, r, v.data(), a.data());
  CHECK_MSG(c.ok, c.reason << ": " << c.message);
  CHECK(c.hadAudio);
  CHECK(c.padFront == 4000 && c.padBack == 0);
  for (int i = 0; i < 4000; ++i) CHECK(a[i] == 0.0f);
  int crossings = 0;
  for (int i = 6001; i < 14000; ++i) crossings += (a[i - 1] < 0) != (a[i] < 0);
  CHECK_CLOSE(crossings / 2.0 / (8000 / 16000.0), 1000, 10);
  r.audioStart = 1.5;  // 0.5 s left of a 2 s file: about 8000 zeros at the back
  c = decodeClip(Source{redBlue(), nullptr}, r, v.data(), a.data());
  CHECK_MSG(c.ok, c.reason << ": " << c.message);
  CHECK_MSG(c.padBack > 7000 && c.padBack < 8600, "padBack " << c.padBack);
  for (int i = 16000 - c.padBack; i < 16000; ++i) CHECK(a[i] == 0.0f);
}

TEST(media_memory_source_matches_file) {
  ClipRequest r = clip(0.3, 4);
  r.audio = true;
  r.audioStart = 0.3;
  r.samples = 4000;
  std::vector<uint8_t> v1(4 * 32 * 32 * 3), v2(v1.size());
  std::vector<float> a1(4000), a2(4000);
  auto bytes = std::make_shared<const std::vector<uint8_t>>(readAll(redBlue()));
  ClipResult c1 = decodeClip(Source{redBlue(), nullptr}, r, v1.data(), a1.data());
  ClipResult c2 = decodeClip(Source{"member.mp4", bytes}, r, v2.data(), a2.data());
  CHECK_MSG(c1.ok && c2.ok, c2.reason << ": " << c2.message);
  CHECK(v1 == v2);
  CHECK(a1 == a2);
  ProbeResult p = probe(Source{"member.mp4", bytes});
  CHECK(p.ok && p.size == static_cast<int64_t>(bytes->size()));
}

TEST(media_errors_are_values) {
  std::vector<uint8_t> v(32 * 32 * 3);
  CHECK(probe(Source{dir() + "/nope.mp4", nullptr}).reason == "missing_file");
  std::string empty = dir() + "/empty.mp4";
  std::ofstream(empty).close();
  CHECK(probe(Source{empty, nullptr}).reason == "empty_file");
  std::string junk = dir() + "/junk.mp4";
  {
    std::ofstream f(junk, std::ios::binary);
    for (int i = 0; i < 5000; ++i) f.put(static_cast<char>((i * 7919) & 255));
  }
  CHECK(probe(Source{junk, nullptr}).reason == "probe_failed");
  auto all = readAll(redBlue());
  std::string cut = dir() + "/cut.mp4";
  {
    std::ofstream f(cut, std::ios::binary);
    f.write(reinterpret_cast<const char*>(all.data()), all.size() / 2);
  }
  ProbeResult p = probe(Source{cut, nullptr});
  CHECK_MSG(!p.ok && p.reason == "truncated", p.reason << ": " << p.message);
  ClipResult c = decodeClip(Source{cut, nullptr}, clip(0, 1), v.data(), nullptr);
  CHECK(!c.ok && c.reason == "truncated");
  c = decodeClip(Source{redBlue(), nullptr}, clip(1.9, 8), std::vector<uint8_t>(8 * 32 * 32 * 3).data(), nullptr);
  CHECK_MSG(!c.ok && c.reason == "truncated", c.reason << ": " << c.message);
}

TEST(media_caps_and_deadline) {
  ClipRequest r = clip(0, 1);
  r.width = 9000;
  r.height = 16;
  ClipResult c = decodeClip(Source{redBlue(), nullptr}, r, nullptr, nullptr);
  CHECK_MSG(!c.ok && c.reason == "decode_failed" && c.message.find("cap") != std::string::npos, c.message);
  r = clip(0, 1);
  r.timeoutSec = 1e-9;  // past before the first read
  std::vector<uint8_t> v(32 * 32 * 3);
  c = decodeClip(Source{redBlue(), nullptr}, r, v.data(), nullptr);
  CHECK_MSG(!c.ok && c.reason == "timeout", c.reason << ": " << c.message);
}

TEST(media_two_audio_streams_rule) {
  // Stream 0: 440 Hz, stream 1: 1500 Hz marked default (mkv keeps dispositions).
  std::string f =
      make("two.mkv",
           "-f lavfi -i color=c=gray:s=32x32:r=10:d=1 -f lavfi -i sine=frequency=440:sample_rate=16000:duration=1 "
           "-f lavfi -i sine=frequency=1500:sample_rate=16000:duration=1 -map 0:v -map 1:a -map 2:a "
           "-c:v libx264 -preset ultrafast -c:a pcm_s16le -disposition:a:0 0 -disposition:a:1 default");
  auto hz = [&](int stream) {
    ClipRequest r = clip(0, 1);
    r.audio = true;
    r.audioStart = 0.1;
    r.samples = 8000;
    r.audioStream = stream;
    std::vector<uint8_t> v(32 * 32 * 3);
    std::vector<float> a(8000);
    ClipResult c = decodeClip(Source{f, nullptr}, r, v.data(), a.data());
    CHECK_MSG(c.ok, c.reason << ": " << c.message);
    int n = 0;
    for (int i = 1; i < 8000; ++i) n += (a[i - 1] < 0) != (a[i] < 0);
    return n / 2.0 / 0.5;
  };
  CHECK_CLOSE(hz(-1), 1500, 15);
  CHECK_CLOSE(hz(0), 440, 10);
  CHECK_CLOSE(hz(1), 1500, 15);
  CHECK(probe(Source{f, nullptr}).audio.stream == 1);
  CHECK(probe(Source{f, nullptr}, 0).audio.stream == 0);
}

TEST(media_pool_batch_layout) {
  std::vector<BatchClip> clips;
  for (int i = 0; i < 5; ++i) {
    BatchClip b{Source{redBlue(), nullptr}, clip(0.2 * i, 3)};
    b.req.audio = true;
    b.req.audioStart = 0.2 * i;
    b.req.samples = 1600;
    clips.push_back(b);
  }
  clips.push_back(BatchClip{Source{dir() + "/nope.mp4", nullptr}, clip(0, 3)});
  auto want = decodeBatchNow(clips);
  DecodePool pool(3);
  std::promise<std::shared_ptr<BatchResult>> done;
  pool.submitBatch(clips, [&](std::shared_ptr<BatchResult> r) { done.set_value(r); });
  auto got = done.get_future().get();
  CHECK(got->video.size() == size_t(6) * 3 * 32 * 32 * 3);
  CHECK(got->audio.size() == size_t(5) * 1600);
  CHECK(got->video == want->video);
  CHECK(got->audio == want->audio);
  for (int i = 0; i < 5; ++i) CHECK(got->clips[i].ok && got->videoOffset[i] == size_t(i) * 3 * 32 * 32 * 3);
  CHECK(!got->clips[5].ok && got->clips[5].reason == "missing_file");
  std::promise<ProbeResult> pr;
  pool.submitProbe(Source{redBlue(), nullptr}, -1, 10, [&](ProbeResult p) { pr.set_value(p); });
  CHECK(pr.get_future().get().ok);
}

TEST(media_pool_replaces_a_stuck_decoder) {
  // A runner standing in for a libav call that does not return: the watchdog settles the
  // clip as timeout at deadline + grace, and a new thread decodes the rest of the queue.
  std::atomic<int> lateReturns{0};
  ClipRunner runner = [&](const Source& s, const ClipRequest& r, uint8_t* v, float* a) -> ClipResult {
    if (r.start == 0.7) {
      std::this_thread::sleep_for(std::chrono::milliseconds(2500));
      ++lateReturns;
      std::memset(v, 255, size_t(r.frames) * r.width * r.height * 3);  // must not reach the delivered batch
    }
    return decodeClip(s, r, v, a);
  };
  DecodePool pool(1, runner, 0.2);
  std::vector<BatchClip> clips{BatchClip{Source{redBlue(), nullptr}, clip(0.7, 2)},
                               BatchClip{Source{redBlue(), nullptr}, clip(0.2, 2)}};
  clips[0].req.timeoutSec = 0.3;
  const auto t0 = std::chrono::steady_clock::now();
  std::promise<std::shared_ptr<BatchResult>> done;
  pool.submitBatch(clips, [&](std::shared_ptr<BatchResult> r) { done.set_value(r); });
  auto got = done.get_future().get();
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  CHECK_MSG(secs < 2.0, "the batch waited for the stuck decode: " << secs << " s");
  CHECK_MSG(!got->clips[0].ok && got->clips[0].reason == "timeout",
            got->clips[0].reason << ": " << got->clips[0].message);
  CHECK(got->clips[1].ok);
  CHECK(pool.replaced() == 1);
  std::vector<uint8_t> first(got->video.begin(), got->video.begin() + 2 * 32 * 32 * 3);
  std::promise<std::shared_ptr<BatchResult>> again;
  pool.submitBatch({BatchClip{Source{redBlue(), nullptr}, clip(0.2, 2)}},
                   [&](std::shared_ptr<BatchResult> r) { again.set_value(r); });
  CHECK(again.get_future().get()->clips[0].ok);
  std::this_thread::sleep_for(std::chrono::milliseconds(2800));
  CHECK(lateReturns == 1);
  CHECK(std::equal(first.begin(), first.end(), got->video.begin()));  // the late writer stayed in its own buffer
  CHECK(std::all_of(first.begin(), first.end(), [](uint8_t x) { return x == 0; }));
}

int main(int argc, char** argv) {
  const int rc = cmactest::runTests(argc, argv);
  std::string cmd = "rm -rf " + dir();
  if (std::system(cmd.c_str()) != 0) std::cerr << "could not remove " << dir() << "\n";
  return rc;
}
