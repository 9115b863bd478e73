// Small media files with known content, for tests, examples and checking an
// ffmpeg install: solid-colour frames that follow a function of time, a sine
// tone, an optional click and flash at a known instant. Written with
// encodeClips (one ffmpeg process for many files).
import { encodeClips, type EncodeJob, type EncodeOptions } from './ffmpeg';

/** One file for {@link writeTestVideos}. */
export interface TestVideo {
  /** Output path; the extension picks the container (.mp4, .mkv, .mov). */
  out: string;
  seconds: number;
  fps: number;
  /** Frame size (default 64 x 48). */
  width?: number;
  height?: number;
  /** Colour of the whole frame shown at time t (default mid grey). */
  colour?: (t: number, frame: number) => [number, number, number];
  /** Per-pixel colour; overrides `colour` when given. */
  pixel?: (x: number, y: number, t: number, frame: number) => [number, number, number];
  /** Sine frequency in Hz (default 440); null writes no audio track. */
  tone?: number | null;
  /** Sine amplitude (default 0.3). */
  amplitude?: number;
  /** Audio rate of the file (default 16000). */
  sampleRate?: number;
  /** A 4 ms full-scale click at this time (s). */
  click?: number;
  /** Frames shown at this time (s) are white (the frame with t <= flash < t + 1/fps). */
  flash?: number;
}

/** Renders a {@link TestVideo}'s frames and PCM in memory. */
export function renderTestVideo(v: TestVideo): EncodeJob {
  const w = v.width ?? 64;
  const h = v.height ?? 48;
  const T = Math.round(v.seconds * v.fps);
  const video = new Uint8Array(T * w * h * 3);
  for (let f = 0; f < T; f++) {
    const t = f / v.fps;
    const flash = v.flash !== undefined && t <= v.flash + 1e-9 && v.flash < t + 1 / v.fps - 1e-9;
    const base = f * w * h * 3;
    if (flash) {
      video.fill(255, base, base + w * h * 3);
      continue;
    }
    if (v.pixel) {
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) {
          const c = v.pixel(x, y, t, f);
          const k = base + (y * w + x) * 3;
          video[k] = c[0];
          video[k + 1] = c[1];
          video[k + 2] = c[2];
        }
    } else {
      const c = v.colour ? v.colour(t, f) : [128, 128, 128];
      for (let i = 0; i < w * h; i++) {
        video[base + i * 3] = c[0];
        video[base + i * 3 + 1] = c[1];
        video[base + i * 3 + 2] = c[2];
      }
    }
  }
  const job: EncodeJob = { out: v.out, video, width: w, height: h, fps: v.fps };
  if (v.tone !== null) {
    const sr = v.sampleRate ?? 16000;
    const n = Math.round(v.seconds * sr);
    const a = new Float32Array(n);
    const amp = v.amplitude ?? 0.3;
    const f0 = v.tone ?? 440;
    for (let i = 0; i < n; i++) a[i] = amp * Math.sin((2 * Math.PI * f0 * i) / sr);
    if (v.click !== undefined) {
      const c0 = Math.round(v.click * sr);
      const len = Math.round(0.004 * sr);
      for (let i = c0; i < Math.min(n, c0 + len); i++) a[i] = (i - c0) % 2 === 0 ? 0.95 : -0.95;
    }
    job.audio = a;
    job.sampleRate = sr;
  }
  return job;
}

/** Writes test videos with one ffmpeg process (H.264 + AAC). */
export async function writeTestVideos(videos: TestVideo[], opts: EncodeOptions = {}): Promise<void> {
  await encodeClips(videos.map(renderTestVideo), opts);
}
