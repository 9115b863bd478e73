// In-process media decoding on FFmpeg's libraries (libavformat, libavcodec,
// libavutil, libswscale, libswresample). Node-free. Every failure is a value
// (ok=false, reason, message) whose reason is one of lib/data/errors.ts's skip
// reasons; nothing here throws for bad media.
//
// The clip rule is the ffmpeg-CLI path's (lib/data/ffmpeg.ts, videoFilter and
// planJob), reproduced step by step so both paths give the same frames:
//  - video: seek to `max(0,start) - preroll` (preroll = min(start, 0.5) s),
//    timestamps shifted like ffmpeg's -ss (accurate seek drops frames before
//    it), then `setpts=PTS+shift/TB` and `fps=F:start_time=slot:round=up`:
//    output frame k is the last decoded frame whose timestamp, rounded up to
//    the 1/F grid, is <= slot k (the first frame stands for earlier slots).
//    Autorotation (90/180/270 from the display matrix), crop (display
//    orientation, exact), bilinear swscale to W x H, eq (brightness, contrast,
//    saturation: vf_eq's integer formula on YUV) then bicubic YUV->RGB24
//    (as the CLI's auto-inserted converter), hflip on RGB.
//  - audio: a second demuxer seeked like ffmpeg's -ss (whole file, stream -1),
//    sample-accurate trim at the window start, swresample with async=1 and
//    first_pts=0 (silence for a late first sample), downmix to mono, resample,
//    exactly `samples` with zero padding (front: window before 0; back: past
//    the end).
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace cmac {
namespace media {

// A file path or bytes in memory (a tar member): `data` set means memory.
struct Source {
  std::string path;                                  // also the name used in messages
  std::shared_ptr<const std::vector<uint8_t>> data;  // in-memory bytes (custom AVIOContext)
};

struct VideoInfo {
  std::string codec;
  int width = 0, height = 0;  // display size (after rotation)
  double fps = 0;
  int rotation = 0;      // 0, 90, 180, 270 (clockwise, as ffmpeg autorotates)
  int64_t frames = -1;   // -1: unknown
  double duration = -1;  // -1: unknown
};

struct AudioInfo {
  std::string codec;
  int sampleRate = 0, channels = 0;
  double duration = -1;
  int stream = -1;  // index among the file's audio streams (what the CLI maps as 0:a:N)
};

// The audio stream rule: the explicit index among audio streams when
// `audioStream >= 0` (an index past the last is `no_audio`... reported as
// probe_failed by the caller's choice: see chooseAudio), else the first stream
// with the default disposition, else the first audio stream.
struct ProbeResult {
  bool ok = false;
  std::string reason, message;
  std::string format;
  double duration = 0;
  int64_t size = 0;
  bool hasVideo = false, hasAudio = false;
  VideoInfo video;
  AudioInfo audio;
  int audioStreams = 0;
};

struct ClipRequest {
  double start = 0;
  int frames = 0;
  double fps = 0;
  int width = 0, height = 0;
  bool hasCrop = false;
  double cropX = 0, cropY = 0, cropW = 0, cropH = 0;
  bool flip = false;
  bool hasJitter = false;
  double brightness = 0, contrast = 1, saturation = 1;
  bool audio = false;
  double audioStart = 0;
  int samples = 0;
  int sampleRate = 16000;
  int audioStream = -1;    // index among audio streams; -1: the rule above
  double timeoutSec = 60;  // deadline of the whole clip (open, seek, decode)
  bool upTo = false;       // at most `frames`: fewer at the end of the stream is no error (whole-video decodes)
};

struct ClipResult {
  bool ok = false;
  std::string reason, message;
  int padFront = 0, padBack = 0;
  bool hadAudio = false;
  int frames = 0;  // frames written: req.frames, or fewer (>= 1) with req.upTo
};

// Caps on what one frame may be: sides up to kMaxSide, at most kMaxPixels.
constexpr int kMaxSide = 8192;
constexpr int64_t kMaxPixels = int64_t(64) << 20;

// Probes a file or buffer (`audioStream` as in ClipRequest).
ProbeResult probe(const Source& src, int audioStream = -1, double timeoutSec = 30);

// Decodes one clip into `video` (frames*height*width*3 bytes, RGB24) and
// `audio` (samples floats; may be null when !req.audio). On failure the
// buffers hold undefined bytes.
ClipResult decodeClip(const Source& src, const ClipRequest& req, uint8_t* video, float* audio);

// The ffmpeg-CLI path formats times with 6 decimals (JS fmt()); parity needs the same values.
double fmt6(double x);

// The libav versions this was built against ("avformat 59.27.100, ...").
std::string versions();

}  // namespace media
}  // namespace cmac
