// See media.h for the rules. FFmpeg 4.4 to 7.x: API differences are guarded
// with LIBAVCODEC/LIBAVFORMAT/LIBAVUTIL version checks.
#include "media.h"

extern "C" {
#include <libavcodec/avcodec.h>
#include <libavformat/avformat.h>
#include <libavutil/avutil.h>
#include <libavutil/channel_layout.h>
#include <libavutil/display.h>
#include <libavutil/imgutils.h>
#include <libavutil/mathematics.h>
#include <libavutil/opt.h>
#include <libavutil/pixdesc.h>
#include <libswresample/swresample.h>
#include <libswscale/swscale.h>
}

#include <sys/stat.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <cstdlib>
#include <functional>
#include <mutex>

// ch_layout (FFmpeg 5.1, lavu 57.28) replaced channels/channel_layout (removed in 7.0).
#if LIBAVUTIL_VERSION_INT >= AV_VERSION_INT(57, 28, 100)
#define CMAC_CH_LAYOUT 1
#else
#define CMAC_CH_LAYOUT 0
#endif
// avformat 59 (FFmpeg 5.0) made AVInputFormat/AVCodec pointers const.
#if LIBAVFORMAT_VERSION_MAJOR >= 59
#define CMAC_AV_CONST const
#else
#define CMAC_AV_CONST
#endif

namespace cmac {
namespace media {

namespace {

using Clock = std::chrono::steady_clock;

std::string averr(int e) {
  char buf[AV_ERROR_MAX_STRING_SIZE] = {0};
  av_strerror(e, buf, sizeof(buf));
  return buf;
}

struct Fail {
  std::string reason, message;
};

// Bytes in memory read through a custom AVIOContext.
struct MemReader {
  std::shared_ptr<const std::vector<uint8_t>> data;
  int64_t pos = 0;
  static int read(void* opaque, uint8_t* buf, int size) {
    auto* m = static_cast<MemReader*>(opaque);
    const int64_t n = static_cast<int64_t>(m->data->size());
    if (m->pos >= n) return AVERROR_EOF;
    const int take = static_cast<int>(std::min<int64_t>(size, n - m->pos));
    std::memcpy(buf, m->data->data() + m->pos, take);
    m->pos += take;
    return take;
  }
  static int64_t seek(void* opaque, int64_t off, int whence) {
    auto* m = static_cast<MemReader*>(opaque);
    const int64_t n = static_cast<int64_t>(m->data->size());
    whence &= ~AVSEEK_FORCE;
    if (whence == AVSEEK_SIZE) return n;
    int64_t p = whence == SEEK_SET ? off : whence == SEEK_CUR ? m->pos + off : whence == SEEK_END ? n + off : -1;
    if (p < 0 || p > n) return AVERROR(EINVAL);
    m->pos = p;
    return p;
  }
};

// An opened demuxer with a deadline (AVIOInterruptCB) and RAII cleanup.
struct Input {
  AVFormatContext* fmt = nullptr;
  AVIOContext* avio = nullptr;
  MemReader mem;
  Clock::time_point deadline;
  bool timedOut = false;
  int64_t size = 0;

  static int interrupt(void* opaque) {
    auto* in = static_cast<Input*>(opaque);
    if (Clock::now() > in->deadline) {
      in->timedOut = true;
      return 1;
    }
    return 0;
  }
  bool expired() {
    if (Clock::now() > deadline) timedOut = true;
    return timedOut;
  }
  ~Input() {
    if (fmt) avformat_close_input(&fmt);
    if (avio) {
      av_freep(&avio->buffer);
      avio_context_free(&avio);
    }
  }
};

bool ftypHeaded(const Source& src) {
  uint8_t b[8] = {0};
  if (src.data) {
    if (src.data->size() < 8) return false;
    std::memcpy(b, src.data->data(), 8);
  } else {
    FILE* f = std::fopen(src.path.c_str(), "rb");
    if (!f) return false;
    size_t n = std::fread(b, 1, 8, f);
    std::fclose(f);
    if (n < 8) return false;
  }
  return std::memcmp(b + 4, "ftyp", 4) == 0;
}

// Opens and reads stream info; on failure fills `fail` and returns false.
bool openInput(Input& in, const Source& src, double timeoutSec, Fail& fail) {
  static std::once_flag quiet;
  // libav's own log lines would interleave with cmac's; failures come back as values. CMAC_AV_LOG=1 keeps them.
  std::call_once(quiet, [] {
    const char* e = std::getenv("CMAC_AV_LOG");
    if (!(e && *e == '1')) av_log_set_level(AV_LOG_QUIET);
  });
  in.deadline = Clock::now() + std::chrono::microseconds(static_cast<int64_t>(std::max(0.0, timeoutSec) * 1e6));
  if (timeoutSec <= 0) {
    fail = {"timeout", "no time left before the deadline"};
    return false;
  }
  if (src.data) {
    in.size = static_cast<int64_t>(src.data->size());
  } else {
    struct stat st;
    if (::stat(src.path.c_str(), &st) != 0) {
      fail = {"missing_file", std::string("cannot stat: ") + std::strerror(errno)};
      return false;
    }
    if (!S_ISREG(st.st_mode)) {
      fail = {"missing_file", "not a regular file"};
      return false;
    }
    in.size = st.st_size;
  }
  if (in.size == 0) {
    fail = {"empty_file", "file has zero bytes"};
    return false;
  }
  in.fmt = avformat_alloc_context();
  if (!in.fmt) {
    fail = {"decode_failed", "out of memory (avformat_alloc_context)"};
    return false;
  }
  in.fmt->interrupt_callback.callback = &Input::interrupt;
  in.fmt->interrupt_callback.opaque = &in;
  if (src.data) {
    in.mem.data = src.data;
    const int bufSize = 64 * 1024;
    auto* buf = static_cast<uint8_t*>(av_malloc(bufSize));
    in.avio = buf ? avio_alloc_context(buf, bufSize, 0, &in.mem, &MemReader::read, nullptr, &MemReader::seek) : nullptr;
    if (!in.avio) {
      av_free(buf);
      avformat_free_context(in.fmt);
      in.fmt = nullptr;
      fail = {"decode_failed", "out of memory (avio_alloc_context)"};
      return false;
    }
    in.fmt->pb = in.avio;
    in.fmt->flags |= AVFMT_FLAG_CUSTOM_IO;
  }
  int r = avformat_open_input(&in.fmt, src.data ? nullptr : src.path.c_str(), nullptr, nullptr);
  if (r < 0) {
    in.fmt = nullptr;  // freed by avformat_open_input on failure
    if (in.timedOut)
      fail = {"timeout", "opening ran past the deadline"};
    else if (ftypHeaded(src))
      fail = {"truncated", "container cut short (" + averr(r) + ")"};
    else
      fail = {"probe_failed", averr(r)};
    return false;
  }
  r = avformat_find_stream_info(in.fmt, nullptr);
  if (r < 0) {
    if (in.timedOut)
      fail = {"timeout", "reading stream info ran past the deadline"};
    else
      fail = {"probe_failed", "cannot read stream info: " + averr(r)};
    return false;
  }
  return true;
}

int channelsOf(const AVCodecParameters* p) {
#if CMAC_CH_LAYOUT
  return p->ch_layout.nb_channels;
#else
  return p->channels;
#endif
}

int videoStreamOf(AVFormatContext* fmt) {
  for (unsigned i = 0; i < fmt->nb_streams; ++i) {
    AVStream* st = fmt->streams[i];
    if (st->codecpar->codec_type == AVMEDIA_TYPE_VIDEO && !(st->disposition & AV_DISPOSITION_ATTACHED_PIC))
      return static_cast<int>(i);
  }
  return -1;
}

// The audio stream rule (media.h): returns the stream index in fmt, and the
// ordinal among audio streams in `ordinal`; -1 when there is none.
int audioStreamOf(AVFormatContext* fmt, int want, int* ordinal) {
  std::vector<int> audio;
  for (unsigned i = 0; i < fmt->nb_streams; ++i)
    if (fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) audio.push_back(static_cast<int>(i));
  if (audio.empty()) return -1;
  int k = -1;
  if (want >= 0) {
    if (want >= static_cast<int>(audio.size())) return -1;
    k = want;
  } else {
    for (size_t j = 0; j < audio.size() && k < 0; ++j)
      if (fmt->streams[audio[j]]->disposition & AV_DISPOSITION_DEFAULT) k = static_cast<int>(j);
    if (k < 0) k = 0;
  }
  if (ordinal) *ordinal = k;
  return audio[k];
}

const int32_t* displayMatrix(const AVStream* st) {
#if LIBAVCODEC_VERSION_INT >= AV_VERSION_INT(60, 29, 100)
  const AVPacketSideData* sd = av_packet_side_data_get(st->codecpar->coded_side_data, st->codecpar->nb_coded_side_data,
                                                       AV_PKT_DATA_DISPLAYMATRIX);
  return sd && sd->size >= 9 * 4 ? reinterpret_cast<const int32_t*>(sd->data) : nullptr;
#else
#if LIBAVFORMAT_VERSION_MAJOR >= 59
  size_t size = 0;
#else
  int size = 0;
#endif
  const uint8_t* d = av_stream_get_side_data(const_cast<AVStream*>(st), AV_PKT_DATA_DISPLAYMATRIX, &size);
  return d && size >= 9 * 4 ? reinterpret_cast<const int32_t*>(d) : nullptr;
#endif
}

int norm90(double deg) {
  int r = static_cast<int>(std::lround(deg / 90.0)) * 90;
  return ((r % 360) + 360) % 360;
}

// ffprobe's `rotation` (counter-clockwise, as av_display_rotation_get), normalised like lib/data/ffmpeg.ts.
int probeRotation(const AVStream* st) {
  double r = 0;
  if (const int32_t* m = displayMatrix(st)) r = av_display_rotation_get(m);
  if (AVDictionaryEntry* t = av_dict_get(st->metadata, "rotate", nullptr, 0)) r = std::atof(t->value);
  if (!std::isfinite(r)) r = 0;
  return norm90(r);
}

// The clockwise angle ffmpeg's autorotate applies (cmdutils get_rotation: -display rotation).
int autorotateTheta(const AVStream* st) {
  double theta = 0;
  if (const int32_t* m = displayMatrix(st))
    theta = -std::round(av_display_rotation_get(m));
  else if (AVDictionaryEntry* t = av_dict_get(st->metadata, "rotate", nullptr, 0))
    theta = std::atof(t->value);
  if (!std::isfinite(theta)) return 0;
  theta -= 360 * std::floor(theta / 360 + 0.9 / 360);
  if (std::fabs(theta - 90) < 1.0) return 90;
  if (std::fabs(theta - 180) < 1.0) return 180;
  if (std::fabs(theta - 270) < 1.0) return 270;
  return 0;
}

double rate(AVRational r) { return r.num > 0 && r.den > 0 ? av_q2d(r) : 0; }

std::string capCheck(int w, int h) {
  if (w > kMaxSide || h > kMaxSide || int64_t(w) * h > kMaxPixels)
    return "frame " + std::to_string(w) + "x" + std::to_string(h) +
           " is above the cap (sides <= " + std::to_string(kMaxSide) + ", <= 64 MP per frame)";
  return "";
}

// JS Math.round (half toward +infinity).
double jsRound(double x) { return std::floor(x + 0.5); }

int64_t usOf(double sec6) { return static_cast<int64_t>(std::llround(sec6 * 1e6)); }

struct CodecCtx {
  AVCodecContext* c = nullptr;
  ~CodecCtx() {
    if (c) avcodec_free_context(&c);
  }
};
struct FramePtr {
  AVFrame* f = av_frame_alloc();
  ~FramePtr() { av_frame_free(&f); }
};
struct PacketPtr {
  AVPacket* p = av_packet_alloc();
  ~PacketPtr() { av_packet_free(&p); }
};
struct Sws {
  SwsContext* s = nullptr;
  ~Sws() { sws_freeContext(s); }
};
struct Swr {
  SwrContext* s = nullptr;
  ~Swr() { swr_free(&s); }
};

bool openDecoder(AVStream* st, CodecCtx& cc, Fail& fail) {
  CMAC_AV_CONST AVCodec* codec = avcodec_find_decoder(st->codecpar->codec_id);
  if (!codec) {
    fail = {"unsupported_codec",
            std::string("Decoder (codec ") + avcodec_get_name(st->codecpar->codec_id) + ") not found"};
    return false;
  }
  cc.c = avcodec_alloc_context3(codec);
  if (!cc.c || avcodec_parameters_to_context(cc.c, st->codecpar) < 0) {
    fail = {"decode_failed", "cannot set up the decoder"};
    return false;
  }
  cc.c->thread_count = 1;  // the pool runs many decoders instead
  cc.c->pkt_timebase = st->time_base;
  int r = avcodec_open2(cc.c, codec, nullptr);
  if (r < 0) {
    fail = {"unsupported_codec", std::string("cannot open decoder ") + codec->name + ": " + averr(r)};
    return false;
  }
  return true;
}

// Only `keep` is read after this: the demuxer skips the other streams' packets. Called after
// the seek, which must see every stream as ffmpeg does (its default stream picks the position).
void discardOthers(AVFormatContext* fmt, int keep) {
  for (unsigned i = 0; i < fmt->nb_streams; ++i)
    if (static_cast<int>(i) != keep) fmt->streams[i]->discard = AVDISCARD_ALL;
}

// ffmpeg -ss on an input: seek the whole file (stream -1) to `us` (+ start time), with the DTS heuristic.
void cliSeek(AVFormatContext* fmt, int64_t us) {
  int64_t ts = us + (fmt->start_time != AV_NOPTS_VALUE ? fmt->start_time : 0);
  if (!(fmt->iformat->flags & AVFMT_SEEK_TO_PTS)) {
    for (unsigned i = 0; i < fmt->nb_streams; ++i)
      if (fmt->streams[i]->codecpar->video_delay) {
        ts -= 3 * AV_TIME_BASE / 23;
        break;
      }
  }
  avformat_seek_file(fmt, -1, INT64_MIN, ts, ts, 0);  // ffmpeg warns and goes on when this fails
}

double durationOf(AVFormatContext* fmt, int vs, int as) {
  double vdur = -1, adur = -1;
  if (vs >= 0 && fmt->streams[vs]->duration != AV_NOPTS_VALUE)
    vdur = fmt->streams[vs]->duration * av_q2d(fmt->streams[vs]->time_base);
  if (as >= 0 && fmt->streams[as]->duration != AV_NOPTS_VALUE)
    adur = fmt->streams[as]->duration * av_q2d(fmt->streams[as]->time_base);
  double d =
      fmt->duration != AV_NOPTS_VALUE ? fmt->duration / double(AV_TIME_BASE) : std::max(std::max(vdur, adur), 0.0);
  if (!(d > 0)) d = std::max(vdur, 0.0);
  return d;
}

// ---- video planes

struct Planes {
  // An owned picture (av_image_alloc) of one pixel format.
  uint8_t* data[4] = {nullptr, nullptr, nullptr, nullptr};
  int linesize[4] = {0, 0, 0, 0};
  int w = 0, h = 0;
  AVPixelFormat fmt = AV_PIX_FMT_NONE;
  ~Planes() { av_freep(&data[0]); }
  bool alloc(int W, int H, AVPixelFormat f) {
    av_freep(&data[0]);
    w = W;
    h = H;
    fmt = f;
    return av_image_alloc(data, linesize, W, H, f, 64) >= 0;
  }
};

// Plane geometry of a pixel format: (width, height, bytes per pixel) of plane p.
void planeGeom(const AVPixFmtDescriptor* d, int W, int H, int p, int* pw, int* ph, int* step) {
  int steps[4];
  av_image_fill_max_pixsteps(steps, nullptr, d);
  const bool chroma = (p == 1 || p == 2);
  *pw = chroma ? AV_CEIL_RSHIFT(W, d->log2_chroma_w) : W;
  *ph = chroma ? AV_CEIL_RSHIFT(H, d->log2_chroma_h) : H;
  *step = steps[p];
}

int planeCount(AVPixelFormat f) {
  int n = av_pix_fmt_count_planes(f);
  return n < 0 ? 0 : n;
}

// Rotates (clockwise theta) a picture into `out` (transpose=clock / cclock, or hflip+vflip).
bool rotate(const uint8_t* const src[4], const int srcLs[4], int W, int H, AVPixelFormat f, int theta, Planes& out) {
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(f);
  const bool swap = theta == 90 || theta == 270;
  if (!out.alloc(swap ? H : W, swap ? W : H, f)) return false;
  for (int p = 0; p < planeCount(f); ++p) {
    int pw, ph, step;
    planeGeom(d, W, H, p, &pw, &ph, &step);
    int ow, oh, ostep;
    planeGeom(d, out.w, out.h, p, &ow, &oh, &ostep);
    for (int y = 0; y < oh; ++y) {
      uint8_t* row = out.data[p] + int64_t(y) * out.linesize[p];
      for (int x = 0; x < ow; ++x) {
        int sx, sy;
        if (theta == 90) {
          sx = y;
          sy = ph - 1 - x;
        } else if (theta == 270) {
          sx = pw - 1 - y;
          sy = x;
        } else {
          sx = pw - 1 - x;
          sy = ph - 1 - y;
        }
        sx = std::min(std::max(sx, 0), pw - 1);
        sy = std::min(std::max(sy, 0), ph - 1);
        std::memcpy(row + int64_t(x) * step, src[p] + int64_t(sy) * srcLs[p] + int64_t(sx) * step, step);
      }
    }
  }
  return true;
}

// vf_scale's colour set-up: the frame's matrix ("auto") and range.
void setColour(SwsContext* s, const AVFrame* props) {
  int *inv = nullptr, *tab = nullptr, inFull = 0, outFull = 0, br = 0, con = 0, sat = 0;
  if (sws_getColorspaceDetails(s, &inv, &inFull, &tab, &outFull, &br, &con, &sat) < 0) return;
  const int* in = sws_getCoefficients(props->colorspace);
  if (props->color_range != AVCOL_RANGE_UNSPECIFIED) inFull = props->color_range == AVCOL_RANGE_JPEG;
  sws_setColorspaceDetails(s, in, inFull, in, outFull, br, con, sat);
}

// vf_eq's integer path (process_c) on one plane.
void eqPlane(uint8_t* p, int ls, int w, int h, double contrastF, double brightnessF) {
  const int contrast = static_cast<int>(contrastF * 256 * 16);
  const int brightness = (static_cast<int>(100.0 * brightnessF + 100.0) * 511) / 200 - 128 - contrast / 32;
  for (int y = 0; y < h; ++y) {
    uint8_t* r = p + int64_t(y) * ls;
    for (int x = 0; x < w; ++x) {
      int pel = ((r[x] * contrast) >> 12) + brightness;
      if (pel & ~255) pel = (-pel) >> 31;
      r[x] = static_cast<uint8_t>(pel);
    }
  }
}

// vf_eq's LUT path (contrast >= 7.9 or gamma).
void eqLut(uint8_t* p, int ls, int w, int h, double contrast, double brightness) {
  uint8_t lut[256];
  for (int i = 0; i < 256; ++i) {
    double v = contrast * (i / 255.0 - 0.5) + 0.5 + brightness;
    lut[i] = v <= 0 ? 0 : v >= 1.0 ? 255 : static_cast<uint8_t>(256.0 * v);
  }
  for (int y = 0; y < h; ++y)
    for (int x = 0; x < w; ++x) p[int64_t(y) * ls + x] = lut[p[int64_t(y) * ls + x]];
}

void eqApply(uint8_t* p, int ls, int w, int h, double contrast, double brightness) {
  if (contrast == 1.0 && brightness == 0.0) return;
  if (std::fabs(contrast) < 7.9)
    eqPlane(p, ls, w, h, contrast, brightness);
  else
    eqLut(p, ls, w, h, contrast, brightness);
}

void hflipPlanes(uint8_t* const data[4], const int ls[4], int W, int H, AVPixelFormat f) {
  const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(f);
  for (int p = 0; p < planeCount(f); ++p) {
    int pw, ph, step;
    planeGeom(d, W, H, p, &pw, &ph, &step);
    uint8_t tmp[16];
    for (int y = 0; y < ph; ++y) {
      uint8_t* r = data[p] + int64_t(y) * ls[p];
      for (int a = 0, b = pw - 1; a < b; ++a, --b) {
        std::memcpy(tmp, r + int64_t(a) * step, step);
        std::memcpy(r + int64_t(a) * step, r + int64_t(b) * step, step);
        std::memcpy(r + int64_t(b) * step, tmp, step);
      }
    }
  }
}

// The pixel work of one picked source frame: rotate, crop, scale, eq, flip, RGB24 into `dst`.
struct Pixels {
  const ClipRequest& req;
  int theta;
  Sws s1, s2;
  Planes rot, mid, rgb;  // rgb: swscale's own padded output (it may write past a row's last pixel)
  explicit Pixels(const ClipRequest& r, int th) : req(r), theta(th) {}

  std::string run(const AVFrame* fr, uint8_t* dst) {
    const AVPixelFormat f = static_cast<AVPixelFormat>(fr->format);
    const AVPixFmtDescriptor* d = av_pix_fmt_desc_get(f);
    if (!d || (d->flags & AV_PIX_FMT_FLAG_HWACCEL)) return "unsupported pixel format";
    std::string cap = capCheck(fr->width, fr->height);
    if (!cap.empty()) return cap;
    const uint8_t* src[4] = {fr->data[0], fr->data[1], fr->data[2], fr->data[3]};
    int ls[4] = {fr->linesize[0], fr->linesize[1], fr->linesize[2], fr->linesize[3]};
    int W = fr->width, H = fr->height;
    if (theta) {
      if ((d->flags & AV_PIX_FMT_FLAG_BITSTREAM) || (d->flags & AV_PIX_FMT_FLAG_PAL))
        return "cannot rotate this pixel format";
      if (!rotate(src, ls, W, H, f, theta, rot)) return "out of memory (rotation)";
      for (int p = 0; p < 4; ++p) {
        src[p] = rot.data[p];
        ls[p] = rot.linesize[p];
      }
      W = rot.w;
      H = rot.h;
    }
    // Crop as lib/data/ffmpeg.ts videoFilter (centre crop when none is given), exact=1.
    double cx, cy, cw, ch;
    if (req.hasCrop) {
      cx = req.cropX;
      cy = req.cropY;
      cw = req.cropW;
      ch = req.cropH;
    } else {
      const double target = double(req.width) / req.height;
      double w0 = W, h0 = jsRound(W / target);
      if (h0 > H) {
        h0 = H;
        w0 = jsRound(H * target);
      }
      cx = std::floor((W - w0) / 2);
      cy = std::floor((H - h0) / 2);
      cw = w0;
      ch = h0;
    }
    const int x = static_cast<int>(std::max(0.0, std::min(double(W - 1), jsRound(cx))));
    const int y = static_cast<int>(std::max(0.0, std::min(double(H - 1), jsRound(cy))));
    const int w = static_cast<int>(std::max(1.0, std::min(double(W - x), jsRound(cw))));
    const int h = static_cast<int>(std::max(1.0, std::min(double(H - y), jsRound(ch))));
    if (x || y || w != W || h != H) {
      int steps[4];
      av_image_fill_max_pixsteps(steps, nullptr, d);
      src[0] += int64_t(y) * ls[0] + int64_t(x) * steps[0];
      if (!(d->flags & AV_PIX_FMT_FLAG_PAL)) {
        for (int i = 1; i < 3; ++i)
          if (src[i]) src[i] += int64_t(y >> d->log2_chroma_h) * ls[i] + ((int64_t(x) * steps[i]) >> d->log2_chroma_w);
      }
      if (src[3]) src[3] += int64_t(y) * ls[3] + int64_t(x) * steps[3];
    }
    const bool eq = req.hasJitter;
    AVPixelFormat midFmt = AV_PIX_FMT_YUV420P;
    if (f == AV_PIX_FMT_YUV444P || f == AV_PIX_FMT_YUVJ444P)
      midFmt = AV_PIX_FMT_YUV444P;
    else if (f == AV_PIX_FMT_YUV422P || f == AV_PIX_FMT_YUVJ422P)
      midFmt = AV_PIX_FMT_YUV422P;
    const AVPixelFormat out1 = eq ? midFmt : AV_PIX_FMT_RGB24;
    s1.s = sws_getCachedContext(s1.s, w, h, f, req.width, req.height, out1, SWS_BILINEAR, nullptr, nullptr, nullptr);
    if (!s1.s) return "cannot scale from this pixel format";
    setColour(s1.s, fr);
    if (rgb.w != req.width || rgb.h != req.height) {
      if (!rgb.alloc(req.width, req.height, AV_PIX_FMT_RGB24)) return "out of memory (rgb)";
    }
    if (!eq) {
      sws_scale(s1.s, src, ls, 0, h, rgb.data, rgb.linesize);
      if (req.flip) hflipPlanes(rgb.data, rgb.linesize, req.width, req.height, AV_PIX_FMT_RGB24);
      copyRgb(dst);
      return "";
    }
    if (mid.w != req.width || mid.h != req.height || mid.fmt != midFmt) {
      if (!mid.alloc(req.width, req.height, midFmt)) return "out of memory (scale)";
    }
    sws_scale(s1.s, src, ls, 0, h, mid.data, mid.linesize);
    // eq as the CLI passes it: fmt6 values, clipped like vf_eq with av_clipf, i.e. in single
    // precision (-0.2 becomes -0.2000000030, and (int)(100 * b + 100) is then 79, not 80).
    const double b = static_cast<float>(std::max(-1.0, std::min(1.0, fmt6(req.brightness))));
    const double c = static_cast<float>(std::max(-1000.0, std::min(1000.0, fmt6(req.contrast))));
    const double s = static_cast<float>(std::max(0.0, std::min(3.0, fmt6(req.saturation))));
    const AVPixFmtDescriptor* md = av_pix_fmt_desc_get(midFmt);
    for (int p = 0; p < 3; ++p) {
      int pw, ph, step;
      planeGeom(md, mid.w, mid.h, p, &pw, &ph, &step);
      if (p == 0)
        eqApply(mid.data[0], mid.linesize[0], pw, ph, c, b);
      else
        eqApply(mid.data[p], mid.linesize[p], pw, ph, s, 0.0);
    }
    // The CLI's auto-inserted converter to rgb24 (ffmpeg's default sws flags: bicubic) sits
    // between eq and hflip (hflip's formats merge with format=rgb24), so the flip is on RGB.
    s2.s = sws_getCachedContext(s2.s, mid.w, mid.h, midFmt, req.width, req.height, AV_PIX_FMT_RGB24, SWS_BICUBIC,
                                nullptr, nullptr, nullptr);
    if (!s2.s) return "cannot convert to rgb24";
    setColour(s2.s, fr);
    sws_scale(s2.s, mid.data, mid.linesize, 0, mid.h, rgb.data, rgb.linesize);
    if (req.flip) hflipPlanes(rgb.data, rgb.linesize, req.width, req.height, AV_PIX_FMT_RGB24);
    copyRgb(dst);
    return "";
  }

  void copyRgb(uint8_t* dst) {
    const size_t row = size_t(req.width) * 3;
    for (int y = 0; y < req.height; ++y) std::memcpy(dst + row * y, rgb.data[0] + int64_t(y) * rgb.linesize[0], row);
  }
};

std::string fmtS(double x) {
  char b[64];
  std::snprintf(b, sizeof(b), "%.6f", fmt6(x));
  return b;
}

ClipResult failed(const std::string& reason, const std::string& msg) {
  ClipResult r;
  r.reason = reason;
  r.message = msg;
  return r;
}

// The demux/decode loop of one stream: its packets (timestamps shifted by `offset`, as
// ffmpeg's -ss shifts them) into the decoder and each frame to `onFrame`, while `more()`;
// at the end of the input the decoder is drained. Decode errors in the data are passed
// over (ffmpeg logs them and goes on). Returns false with `fail` set on a timeout or when
// `onFrame` returns an error text.
bool decodeStream(Input& in, AVCodecContext* c, int stream, int64_t offset, bool skipBeforeSeek,
                  const std::function<bool()>& more, const std::function<std::string(AVFrame*)>& onFrame, Fail& fail) {
  PacketPtr pkt;
  FramePtr fr;
  bool eof = false;
  while (more()) {
    if (in.expired()) {
      fail = {"timeout", "decoding ran past the deadline"};
      return false;
    }
    if (!eof) {
      if (av_read_frame(in.fmt, pkt.p) < 0) {
        if (in.timedOut) {
          fail = {"timeout", "reading ran past the deadline"};
          return false;
        }
        eof = true;
        avcodec_send_packet(c, nullptr);
      } else if (pkt.p->stream_index != stream) {
        av_packet_unref(pkt.p);
        continue;
      } else {
        if (pkt.p->pts != AV_NOPTS_VALUE) pkt.p->pts += offset;
        if (pkt.p->dts != AV_NOPTS_VALUE) pkt.p->dts += offset;
        // A frame before the seek point is dropped by the accurate-seek trim whatever it holds;
        // when nothing refers to it either, its decoding can be skipped (B-frames of the pre-roll).
        if (skipBeforeSeek)
          c->skip_frame = pkt.p->pts != AV_NOPTS_VALUE && pkt.p->pts < 0 ? AVDISCARD_NONREF : AVDISCARD_DEFAULT;
        avcodec_send_packet(c, pkt.p);
        av_packet_unref(pkt.p);
      }
    }
    bool drained = false;
    while (more()) {
      int r = avcodec_receive_frame(c, fr.f);
      if (r == AVERROR(EAGAIN)) break;
      if (r < 0) {
        drained = true;
        break;
      }
      std::string e = onFrame(fr.f);
      av_frame_unref(fr.f);
      if (!e.empty()) {
        fail = {"decode_failed", e};
        return false;
      }
    }
    if (eof && drained) break;
  }
  return true;
}

// ---- video clip

ClipResult decodeVideo(const Source& src, const ClipRequest& req, uint8_t* video, double timeoutSec) {
  Input in;
  Fail fail;
  if (!openInput(in, src, timeoutSec, fail)) return failed(fail.reason, fail.message);
  const int vs = videoStreamOf(in.fmt);
  if (vs < 0) return failed("no_video", "no video stream");
  AVStream* st = in.fmt->streams[vs];
  std::string cap = capCheck(st->codecpar->width, st->codecpar->height);
  if (!cap.empty()) return failed("decode_failed", cap);
  CodecCtx cc;
  if (!openDecoder(st, cc, fail)) return failed(fail.reason, fail.message);
  const int theta = autorotateTheta(st);

  // The CLI's plan (planJob + videoFilter) with the same 6-decimal values.
  const double F = req.fps;
  const double preroll = std::min(std::max(0.0, req.start), 0.5);
  const double seek = std::max(0.0, req.start) - preroll;
  const double slot = std::ceil(preroll * F - 1e-9) / F;
  const double shift = fmt6(slot - preroll);
  const int64_t seekUs = usOf(fmt6(seek));
  const int64_t icStart = in.fmt->start_time != AV_NOPTS_VALUE ? in.fmt->start_time : 0;
  cliSeek(in.fmt, seekUs);
  discardOthers(in.fmt, vs);
  const AVRational tb = st->time_base;
  const int64_t offset = av_rescale_q(-(seekUs + icStart), AV_TIME_BASE_Q, tb);
  const AVRational outTb = av_inv_q(av_d2q(F, INT_MAX));
  const int64_t firstUs = static_cast<int64_t>(fmt6(slot) * AV_TIME_BASE);
  const auto up = static_cast<AVRounding>(AV_ROUND_UP | AV_ROUND_PASS_MINMAX);
  const int64_t inOff = av_rescale_q_rnd(firstUs, AV_TIME_BASE_Q, tb, up);
  const int64_t outOff = av_rescale_q_rnd(firstUs, AV_TIME_BASE_Q, outTb, up);
  const double shiftTb = shift / av_q2d(tb);

  const size_t frameBytes = size_t(req.width) * req.height * 3;
  Pixels px(req, theta);
  FramePtr held;  // the fps filter's frames[0]
  bool haveHeld = false, heldDone = false;
  int64_t heldQ = 0, lastQ = 0;
  int64_t next = outOff;
  int produced = 0;
  std::string pixErr;

  auto emitHeld = [&]() -> bool {
    uint8_t* dst = video + frameBytes * produced;
    if (!heldDone) {
      pixErr = px.run(held.f, dst);
      if (!pixErr.empty()) return false;
      heldDone = true;
    } else {
      std::memcpy(dst, video + frameBytes * (produced - 1), frameBytes);
    }
    ++produced;
    ++next;
    return true;
  };
  // One decoded frame into the fps emulation (vf_fps write_frame).
  auto take = [&](AVFrame* fr) -> bool {
    int64_t pts = fr->best_effort_timestamp;
    if (pts == AV_NOPTS_VALUE) pts = fr->pts;
    if (pts == AV_NOPTS_VALUE) return true;
    if (pts < 0) return true;                                        // accurate seek (trim start=0)
    const int64_t p2 = static_cast<int64_t>(double(pts) + shiftTb);  // setpts D2TS truncates
    const int64_t q = outOff + av_rescale_q_rnd(p2 - inOff, tb, outTb, up);
    lastQ = q;
    if (!haveHeld) {
      av_frame_unref(held.f);
      av_frame_move_ref(held.f, fr);
      haveHeld = true;
      heldDone = false;
      heldQ = q;
      return true;
    }
    while (produced < req.frames) {
      if (q <= next) {
        av_frame_unref(held.f);
        av_frame_move_ref(held.f, fr);
        heldDone = false;
        heldQ = q;
        return true;
      }
      if (!emitHeld()) return false;
    }
    return true;
  };

  // The end of the input as ffmpeg's CLI tells its filters (fftools 5.1 send_filter_eof:
  // ist->pts after the last frame = that frame's timestamp + its duration, both in
  // microseconds; a frame without a duration counts 1/framerate of the decoder).
  int64_t endUs = AV_NOPTS_VALUE;
  const int64_t rateUs = cc.c->framerate.num > 0 && cc.c->framerate.den > 0
                             ? int64_t(AV_TIME_BASE) * cc.c->framerate.den / cc.c->framerate.num
                             : 0;
  auto track = [&](const AVFrame* fr) {
    const int64_t be = fr->best_effort_timestamp;
    if (be != AV_NOPTS_VALUE) endUs = av_rescale_q(be, tb, AV_TIME_BASE_Q);
    if (endUs == AV_NOPTS_VALUE) return;
#if LIBAVUTIL_VERSION_MAJOR >= 58
    const int64_t d = fr->duration;
#else
    const int64_t d = fr->pkt_duration;
#endif
    endUs += d > 0 ? av_rescale_q(d, tb, AV_TIME_BASE_Q) : rateUs;
  };

  auto more = [&] { return produced < req.frames; };
  auto onFrame = [&](AVFrame* fr) -> std::string {
    std::string c2 = capCheck(fr->width, fr->height);
    if (!c2.empty()) return c2;
    track(fr);
    return take(fr) ? "" : pixErr;
  };
  if (!decodeStream(in, cc.c, vs, offset, true, more, onFrame, fail)) return failed(fail.reason, fail.message);
  // End of stream: the held frame fills the slots before the EOF timestamp. That timestamp
  // goes through the graph as the frames do (stream time base, rounded to nearest; setpts
  // adds the shift and truncates) and the fps filter rescales it rounding up, without the
  // start_time offsets it applies to frames (vf_fps update_eof_pts, eof_action=round).
  int64_t statusQ = std::max(lastQ, heldQ);
  if (endUs != AV_NOPTS_VALUE) {
    const int64_t endTb =
        av_rescale_q_rnd(endUs, AV_TIME_BASE_Q, tb, static_cast<AVRounding>(AV_ROUND_NEAR_INF | AV_ROUND_PASS_MINMAX));
    const int64_t end2 = static_cast<int64_t>(double(endTb) + shiftTb);
    statusQ = av_rescale_q_rnd(end2, tb, outTb, up);
  }
  while (produced < req.frames && haveHeld && next < statusQ)
    if (!emitHeld()) return failed("decode_failed", pixErr);
  if (produced < req.frames && !(req.upTo && produced > 0)) {
    const double dur = durationOf(in.fmt, vs, -1);
    return failed("truncated", "decoded " + std::to_string(produced) + " of " + std::to_string(req.frames) +
                                   " frames at " + fmtS(req.start) + " s (duration " + fmtS(dur) + " s)");
  }
  ClipResult ok;
  ok.ok = true;
  ok.frames = produced;
  return ok;
}

// ---- audio window

void setLayout(SwrContext* s, AVCodecContext* c) {
#if CMAC_CH_LAYOUT
  AVChannelLayout inL;
  if (c->ch_layout.order == AV_CHANNEL_ORDER_UNSPEC || c->ch_layout.nb_channels == 0)
    av_channel_layout_default(&inL, std::max(1, c->ch_layout.nb_channels));
  else
    av_channel_layout_copy(&inL, &c->ch_layout);
  AVChannelLayout mono = AV_CHANNEL_LAYOUT_MONO;
  av_opt_set_chlayout(s, "in_chlayout", &inL, 0);
  av_opt_set_chlayout(s, "out_chlayout", &mono, 0);
  av_channel_layout_uninit(&inL);
#else
  int64_t inL =
      c->channel_layout ? int64_t(c->channel_layout) : av_get_default_channel_layout(std::max(1, c->channels));
  av_opt_set_int(s, "in_channel_layout", inL, 0);
  av_opt_set_int(s, "out_channel_layout", AV_CH_LAYOUT_MONO, 0);
#endif
}

// Decodes the window [from, from + n) of the chosen audio stream into out (mono float at sr); returns samples written.
ClipResult decodeAudio(const Source& src, const ClipRequest& req, float* out, double timeoutSec) {
  ClipResult res;
  const int S = req.samples, SR = req.sampleRate;
  std::fill(out, out + S, 0.0f);
  Input in;
  Fail fail;
  if (!openInput(in, src, timeoutSec, fail)) return failed(fail.reason, fail.message);
  int ordinal = 0;
  const int as = audioStreamOf(in.fmt, req.audioStream, &ordinal);
  if (as < 0) {
    res.ok = true;  // no audio: the caller reports hadAudio = false
    return res;
  }
  res.hadAudio = true;
  const int64_t first = static_cast<int64_t>(jsRound(req.audioStart * SR));
  const int front = static_cast<int>(std::min<int64_t>(S, std::max<int64_t>(0, -first)));
  const int readSamples = S - front;
  const double from = double(std::max<int64_t>(0, first)) / SR;
  const double duration = durationOf(in.fmt, videoStreamOf(in.fmt), as);
  int got = 0;
  if (readSamples > 0 && from < duration + 0.05) {
    AVStream* st = in.fmt->streams[as];
    CodecCtx cc;
    if (!openDecoder(st, cc, fail)) return failed(fail.reason, fail.message);
    const int64_t fromUs = usOf(fmt6(from));
    const int64_t icStart = in.fmt->start_time != AV_NOPTS_VALUE ? in.fmt->start_time : 0;
    cliSeek(in.fmt, fromUs);
    discardOthers(in.fmt, as);
    const int64_t offset = av_rescale_q(-(fromUs + icStart), AV_TIME_BASE_Q, st->time_base);
    Swr swr;
    swr.s = swr_alloc();
    if (!swr.s) return failed("decode_failed", "out of memory (swr_alloc)");
    const int inRate = cc.c->sample_rate > 0 ? cc.c->sample_rate : st->codecpar->sample_rate;
    if (inRate <= 0) return failed("decode_failed", "audio stream has no sample rate");
    setLayout(swr.s, cc.c);
    av_opt_set_int(swr.s, "in_sample_rate", inRate, 0);
    av_opt_set_int(swr.s, "out_sample_rate", SR, 0);
    av_opt_set_sample_fmt(swr.s, "in_sample_fmt", cc.c->sample_fmt, 0);
    av_opt_set_sample_fmt(swr.s, "out_sample_fmt", AV_SAMPLE_FMT_FLT, 0);
    av_opt_set_double(swr.s, "async", 1, 0);
    av_opt_set_int(swr.s, "first_pts", 0, 0);
    bool swrReady = false;
    const int64_t durTb =
        av_rescale(usOf(fmt6(readSamples / double(SR) + 0.05)), inRate, AV_TIME_BASE);  // atrim duration (-t)
    int64_t firstPts = AV_NOPTS_VALUE, lastDelta = AV_NOPTS_VALUE;
    AVSampleFormat inFmt = cc.c->sample_fmt;
    std::vector<float> buf;
    bool trimEof = false;
    auto push = [&](AVFrame* fr) -> std::string {
      if (!swrReady) {
        // The decoder's real format and layout (known once it has output a frame).
        if (fr->format != inFmt)
          av_opt_set_sample_fmt(swr.s, "in_sample_fmt", static_cast<AVSampleFormat>(fr->format), 0);
        if (swr_init(swr.s) < 0) return "cannot set up the resampler";
        swrReady = true;
      }
      int64_t pts = fr->pts;
      AVRational ftb = st->time_base;
      if (pts == AV_NOPTS_VALUE) pts = fr->best_effort_timestamp;
      if (pts != AV_NOPTS_VALUE)
        pts = av_rescale_delta(ftb, pts, AVRational{1, inRate}, fr->nb_samples, &lastDelta, AVRational{1, inRate});
      int start = 0, end = fr->nb_samples;
      if (pts != AV_NOPTS_VALUE) {
        if (pts + fr->nb_samples <= 0) return "";  // atrim start=0
        start = static_cast<int>(std::max<int64_t>(0, std::min<int64_t>(fr->nb_samples, -pts)));
        if (firstPts == AV_NOPTS_VALUE) firstPts = pts + start;
        if (pts - firstPts >= durTb) {
          trimEof = true;
          return "";
        }
        end = static_cast<int>(std::min<int64_t>(fr->nb_samples, firstPts + durTb - pts));
      }
      if (start >= end) return "";
      const uint8_t* planes[AV_NUM_DATA_POINTERS];
      const int bps = av_get_bytes_per_sample(static_cast<AVSampleFormat>(fr->format));
      const bool planar = av_sample_fmt_is_planar(static_cast<AVSampleFormat>(fr->format));
#if CMAC_CH_LAYOUT
      const int ch = fr->ch_layout.nb_channels;
#else
      const int ch = fr->channels;
#endif
      const int np = planar ? ch : 1;
      for (int p = 0; p < np && p < AV_NUM_DATA_POINTERS; ++p)
        planes[p] = fr->extended_data[p] + int64_t(start) * bps * (planar ? 1 : ch);
      if (pts != AV_NOPTS_VALUE) swr_next_pts(swr.s, (pts + start) * SR);
      const int n = end - start;
      const int cap = static_cast<int>(int64_t(n) * SR / inRate * 2 + 256);
      const size_t at = buf.size();
      buf.resize(at + cap);
      uint8_t* o = reinterpret_cast<uint8_t*>(buf.data() + at);
      int k = swr_convert(swr.s, &o, cap, planes, n);
      buf.resize(at + std::max(0, k));
      return "";
    };
    auto more = [&] { return static_cast<int>(buf.size()) < readSamples && !trimEof; };
    if (!decodeStream(in, cc.c, as, offset, false, more, push, fail)) return failed(fail.reason, fail.message);
    if (swrReady && static_cast<int>(buf.size()) < readSamples) {
      // Flush the resampler's delay line (aresample at EOF).
      for (;;) {
        const size_t at = buf.size();
        buf.resize(at + 4096);
        uint8_t* o = reinterpret_cast<uint8_t*>(buf.data() + at);
        int k = swr_convert(swr.s, &o, 4096, nullptr, 0);
        buf.resize(at + std::max(0, k));
        if (k <= 0) break;
      }
    }
    got = static_cast<int>(std::min<size_t>(buf.size(), readSamples));
    std::memcpy(out + front, buf.data(), sizeof(float) * got);
  }
  res.ok = true;
  res.padFront = front;
  res.padBack = S - front - got;
  return res;
}

}  // namespace

double fmt6(double x) {
  double r = std::floor(x * 1e6 + 0.5) / 1e6;
  char b[64];
  std::snprintf(b, sizeof(b), "%.6f", r);
  return std::strtod(b, nullptr);
}

std::string versions() {
  auto v = [](unsigned x) {
    return std::to_string(x >> 16) + "." + std::to_string((x >> 8) & 255) + "." + std::to_string(x & 255);
  };
  return "avformat " + v(avformat_version()) + ", avcodec " + v(avcodec_version()) + ", avutil " + v(avutil_version()) +
         ", swscale " + v(swscale_version()) + ", swresample " + v(swresample_version());
}

ProbeResult probe(const Source& src, int audioStream, double timeoutSec) {
  ProbeResult p;
  Input in;
  Fail fail;
  if (!openInput(in, src, timeoutSec, fail)) {
    p.reason = fail.reason;
    p.message = fail.message;
    p.size = in.size;
    return p;
  }
  p.size = in.size;
  p.format = in.fmt->iformat->name ? in.fmt->iformat->name : "";
  for (unsigned i = 0; i < in.fmt->nb_streams; ++i)
    if (in.fmt->streams[i]->codecpar->codec_type == AVMEDIA_TYPE_AUDIO) ++p.audioStreams;
  const int vs = videoStreamOf(in.fmt);
  if (vs < 0) {
    std::string kinds;
    for (unsigned i = 0; i < in.fmt->nb_streams; ++i) {
      const char* t = av_get_media_type_string(in.fmt->streams[i]->codecpar->codec_type);
      kinds += (i ? ", " : "") + std::string(t ? t : "unknown");
    }
    p.reason = "no_video";
    p.message = "no video stream (streams: " + (kinds.empty() ? std::string("none") : kinds) + ")";
    return p;
  }
  AVStream* v = in.fmt->streams[vs];
  if (v->codecpar->codec_id == AV_CODEC_ID_NONE) {
    p.reason = "unsupported_codec";
    p.message = "video stream has a codec ffmpeg does not know";
    return p;
  }
  p.hasVideo = true;
  p.video.codec = avcodec_get_name(v->codecpar->codec_id);
  p.video.rotation = probeRotation(v);
  int w = v->codecpar->width, h = v->codecpar->height;
  if (p.video.rotation == 90 || p.video.rotation == 270) std::swap(w, h);
  if (!w || !h) {
    p.hasVideo = false;
    p.reason = "probe_failed";
    p.message = "video stream has no size";
    return p;
  }
  p.video.width = w;
  p.video.height = h;
  p.video.fps = rate(v->avg_frame_rate) ? rate(v->avg_frame_rate) : rate(v->r_frame_rate);
  p.video.frames = v->nb_frames > 0 ? v->nb_frames : -1;
  p.video.duration = v->duration != AV_NOPTS_VALUE ? v->duration * av_q2d(v->time_base) : -1;
  int ordinal = -1;
  const int as = audioStreamOf(in.fmt, audioStream, &ordinal);
  if (as >= 0 && in.fmt->streams[as]->codecpar->codec_id != AV_CODEC_ID_NONE) {
    AVStream* a = in.fmt->streams[as];
    p.hasAudio = true;
    p.audio.codec = avcodec_get_name(a->codecpar->codec_id);
    p.audio.sampleRate = a->codecpar->sample_rate;
    p.audio.channels = channelsOf(a->codecpar);
    p.audio.duration = a->duration != AV_NOPTS_VALUE ? a->duration * av_q2d(a->time_base) : -1;
    p.audio.stream = ordinal;
  }
  p.duration = durationOf(in.fmt, vs, p.hasAudio ? as : -1);
  p.ok = true;
  return p;
}

ClipResult decodeClip(const Source& src, const ClipRequest& req, uint8_t* video, float* audio) {
  const auto t0 = Clock::now();
  if (req.frames <= 0 || req.width <= 0 || req.height <= 0 || !(req.fps > 0))
    return failed("decode_failed", "bad request: frames, width, height and fps must be positive");
  std::string cap = capCheck(req.width, req.height);
  if (!cap.empty()) return failed("decode_failed", "output " + cap);
  ClipResult v = decodeVideo(src, req, video, req.timeoutSec);
  if (!v.ok) return v;
  if (!req.audio || !audio) return v;
  const double left = req.timeoutSec - std::chrono::duration<double>(Clock::now() - t0).count();
  if (left <= 0) return failed("timeout", "decoding ran past the deadline");
  ClipResult a = decodeAudio(src, req, audio, left);
  a.frames = v.frames;
  return a;
}

}  // namespace media
}  // namespace cmac
