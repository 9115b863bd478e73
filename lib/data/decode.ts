// The decode dispatcher: `probe` and `decodeClips` with the signatures and
// results of lib/data/ffmpeg.ts, on one of two decoders:
// - 'native' (default): libav inside this process, a pool of native threads
//   owned by the addon (native/core/media); a batch comes back as ONE video
//   buffer and ONE audio buffer, and each DecodedClip is a view into them;
// - 'ffmpeg-cli': ffmpeg/ffprobe processes (lib/data/ffmpeg.ts), the reference.
// Both pick the same frames, audio samples and audio stream (docs/data.md).
// When the addon cannot be loaded or was built without libav, 'native' falls
// back to the CLI with one logged line saying why. $CMAC_DECODER
// ('native' | 'ffmpeg-cli') overrides the option for the whole process (tests
// run the suites on both paths with it; also a switch for troubleshooting).
import * as fs from 'fs';
import * as path from 'path';
import { DataError, skipReasons, type SkipReason } from './errors';
import * as cli from './ffmpeg';
import type { ClipJob, DecodedClip, ProbeInfo, ProcessOptions, VideoJob } from './ffmpeg';
import { ProbeIndex } from './probeindex';

export { ProbeIndex };

/** Which decoder runs: libav in-process, or ffmpeg processes. */
export type DecoderKind = 'native' | 'ffmpeg-cli';

/** Options of {@link probe} and {@link decodeClips} (the CLI's, plus the decoder choice). */
export interface DecodeOptions extends ProcessOptions {
  /** Default 'native' ('ffmpeg-cli' when the addon has no libav); $CMAC_DECODER overrides it. */
  decoder?: DecoderKind;
  /** Audio stream (index among the file's audio streams); default: the first with the default disposition, else the first. */
  audioStream?: number;
  /** Native decoder threads (the pool is shared per thread count; default 2). */
  threads?: number;
  /** Where the one fallback line goes (default: stderr). */
  log?: (line: string) => void;
  /**
   * A probe index file (lib/data/probeindex.ts): probes are looked up there by
   * absolute path + size + mtime (+ audio stream) before opening the file, and
   * new ones are appended, so a second run over a large folder starts at once.
   */
  probeIndex?: string;
  /**
   * The file's bytes, when it is in memory (a tar member): the native decoder
   * reads them through its custom AVIO and `file` only names it; no probe
   * index. The CLI path needs a file (an Error says so).
   */
  bytes?: Uint8Array;
}

/** A clip to decode; `bytes`: the file in memory (native decoder only), `file` then names it. */
export type MediaJob = ClipJob & { bytes?: Uint8Array };

function needsFile(what: string): Error {
  return new Error(
    `cmac: ${what} is in memory, which only the native decoder reads; open it as a file for the ffmpeg CLI (the source's open() without inMemory)`,
  );
}

const indexes = new Map<string, ProbeIndex>();
function indexFor(file: string): ProbeIndex {
  const abs = path.resolve(file);
  let ix = indexes.get(abs);
  if (!ix) {
    ix = new ProbeIndex(abs);
    indexes.set(abs, ix);
  }
  return ix;
}

/** The addon's media surface (native/addon/media_wrap.cc). */
interface NativeProbe {
  ok: boolean;
  reason?: string;
  message?: string;
  size: number;
  format?: string;
  duration?: number;
  video?: { codec: string; width: number; height: number; fps: number; rotation: number; frames?: number; duration?: number };
  audio?: { codec: string; sampleRate: number; channels: number; duration?: number; stream: number };
}
interface NativeClipMeta {
  ok: boolean;
  reason?: string;
  message?: string;
  videoOffset: number;
  audioOffset: number;
  padFront: number;
  padBack: number;
  hadAudio: boolean;
  /** Frames decoded (jobs with upTo may end early at the end of the stream; absent from older addons: all). */
  frames?: number;
}
interface NativeBatch {
  video: Uint8Array;
  audio: Float32Array;
  clips: NativeClipMeta[];
}
/** A native decoder pool (createDecoder). */
export interface MediaDecoder {
  probe(file: string | Uint8Array, opts?: { audioStream?: number; timeoutMs?: number }): Promise<NativeProbe>;
  decodeBatch(jobs: object[]): Promise<NativeBatch>;
  dispose(): void;
  readonly threads: number;
  readonly disposed: boolean;
}
interface MediaAddon {
  mediaInfo(): { libav: boolean; versions?: string; reason?: string };
  createDecoder(opts: { threads: number }): MediaDecoder;
}

let addon: MediaAddon | null | undefined;
let unavailable = '';
let warned = false;
const pools = new Map<number, MediaDecoder>();

function loadAddon(): MediaAddon | null {
  if (addon !== undefined) return addon;
  try {
    // Lazy: importing lib/data never loads the addon.
    // eslint-disable-next-line @typescript-eslint/no-require-imports
    const a = (require('../native') as { native(): unknown }).native() as Partial<MediaAddon>;
    if (typeof a.mediaInfo !== 'function' || typeof a.createDecoder !== 'function') {
      unavailable = 'the addon predates native decoding (rebuild it: npm run build:native)';
      addon = null;
    } else {
      const info = a.mediaInfo();
      addon = info.libav ? (a as MediaAddon) : null;
      if (!info.libav) unavailable = info.reason ?? 'the addon was built without libav';
    }
  } catch (e) {
    unavailable = `the native addon cannot be loaded (${(e as Error).message.split('\n')[0]})`;
    addon = null;
  }
  return addon;
}

/** Whether the native decoder can run here, and if not, why. */
export function nativeDecoding(): { available: boolean; reason?: string; versions?: string } {
  const a = loadAddon();
  return a ? { available: true, versions: a.mediaInfo().versions } : { available: false, reason: unavailable };
}

/** The decoder a call with these options uses (logs the fallback reason once). */
export function decoderFor(opts: Pick<DecodeOptions, 'decoder' | 'log'> = {}): DecoderKind {
  const env = process.env.CMAC_DECODER;
  const want = env === 'ffmpeg-cli' || env === 'native' ? env : (opts.decoder ?? 'native');
  if (want === 'ffmpeg-cli') return 'ffmpeg-cli';
  if (loadAddon()) return 'native';
  if (!warned) {
    warned = true;
    (opts.log ?? ((l: string) => process.stderr.write(`${l}\n`)))(
      `cmac: native decoding is unavailable: ${unavailable}; decoding with the ffmpeg CLI instead`,
    );
  }
  return 'ffmpeg-cli';
}

/** The shared native pool with this many threads (created on first use). */
export function nativeDecoder(threads = 2): MediaDecoder {
  const a = loadAddon();
  if (!a) throw new Error(`cmac: native decoding is unavailable: ${unavailable}`);
  let p = pools.get(threads);
  if (!p || p.disposed) {
    p = a.createDecoder({ threads });
    pools.set(threads, p);
  }
  return p;
}

function reasonOf(r: string | undefined): SkipReason {
  return (skipReasons as readonly string[]).includes(r ?? '') ? (r as SkipReason) : 'decode_failed';
}

function aborted(opts: ProcessOptions): void {
  if (opts.signal?.aborted) throw new Error('cmac: decode aborted');
}

/**
 * {@link cli.probe}'s result on the chosen decoder: streams, duration, frame
 * rate, audio rate and the chosen audio stream; rejects with a DataError
 * (missing_file, empty_file, probe_failed, truncated, unsupported_codec,
 * no_video, timeout).
 */
export async function probe(file: string, opts: DecodeOptions = {}): Promise<ProbeInfo> {
  if (!opts.probeIndex || opts.bytes) return probeFile(file, opts);
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch {
    return probeFile(file, opts); // the probe names the problem
  }
  const ix = indexFor(opts.probeIndex);
  const key = ProbeIndex.key(file, st, opts.audioStream);
  const hit = ix.get(key);
  if (hit) return { ...hit, file };
  const info = await probeFile(file, opts);
  ix.put(key, info);
  return info;
}

async function probeFile(file: string, opts: DecodeOptions): Promise<ProbeInfo> {
  if (decoderFor(opts) === 'ffmpeg-cli') {
    if (opts.bytes) throw needsFile(file);
    return cli.probe(file, opts);
  }
  aborted(opts);
  const r = await nativeDecoder(opts.threads).probe(opts.bytes ?? file, {
    audioStream: opts.audioStream,
    timeoutMs: opts.timeoutMs ?? 30000,
  });
  aborted(opts);
  if (!r.ok) throw new DataError(reasonOf(r.reason), file, r.message ?? 'cannot probe');
  const info: ProbeInfo = { file, size: r.size, format: r.format ?? '', duration: r.duration ?? 0, video: r.video };
  if (r.audio) info.audio = r.audio;
  return info;
}

/**
 * {@link cli.decodeClips}'s results on the chosen decoder. Native: one batch
 * for the whole group on the pool; each clip's `video` and `audio` are views
 * into the batch's two buffers. Per-clip failures are DataErrors; rejects only
 * on abort or when no decoder can run.
 */
export async function decodeClips(jobs: MediaJob[], opts: DecodeOptions = {}): Promise<(DecodedClip | DataError)[]> {
  if (decoderFor(opts) === 'ffmpeg-cli') {
    const mem = jobs.find((j) => j.bytes);
    if (mem) throw needsFile(mem.file);
    return cli.decodeClips(jobs, opts);
  }
  aborted(opts);
  const out: (DecodedClip | DataError | undefined)[] = new Array(jobs.length);
  const live: number[] = [];
  const requests: object[] = [];
  jobs.forEach((j, i) => {
    if (!j.info.video) {
      out[i] = new DataError('no_video', j.file, 'no video stream');
      return;
    }
    const q = j.req;
    const withAudio = q.audio && j.info.audio;
    live.push(i);
    requests.push({
      file: j.bytes ?? j.file,
      start: q.start,
      frames: q.frames,
      fps: q.fps,
      width: q.width,
      height: q.height,
      crop: q.crop,
      flip: q.flip ?? false,
      jitter: q.jitter,
      audio: withAudio ? { start: q.audio!.start, samples: q.audio!.samples, sampleRate: q.audio!.sampleRate } : undefined,
      audioStream: j.info.audio?.stream ?? opts.audioStream,
      timeoutMs: opts.timeoutMs ?? 60000,
    });
  });
  if (live.length === 0) return out as (DecodedClip | DataError)[];
  const b = await nativeDecoder(opts.threads).decodeBatch(requests);
  aborted(opts);
  live.forEach((i, k) => {
    const m = b.clips[k];
    const j = jobs[i];
    if (!m.ok) {
      out[i] = new DataError(reasonOf(m.reason), j.file, m.message ?? 'decode failed');
      return;
    }
    const q = j.req;
    const vbytes = q.frames * q.width * q.height * 3;
    const withAudio = !!(q.audio && j.info.audio && m.hadAudio);
    out[i] = {
      video: b.video.subarray(m.videoOffset, m.videoOffset + vbytes),
      audio: withAudio ? b.audio.subarray(m.audioOffset, m.audioOffset + q.audio!.samples) : null,
      audioPad: withAudio ? { front: m.padFront, back: m.padBack } : { front: 0, back: 0 },
    };
  });
  return out as (DecodedClip | DataError)[];
}

/** One clip, as {@link cli.decodeClip}: rejects with the clip's DataError. */
export async function decodeClip(file: string, info: ProbeInfo, req: ClipJob['req'], opts: DecodeOptions = {}): Promise<DecodedClip> {
  const [r] = await decodeClips([{ file, info, req }], opts);
  if (r instanceof DataError) throw r;
  return r;
}

/**
 * {@link cli.decodeVideos}'s results on the chosen decoder: whole files
 * (up to `maxSeconds`) at `fps`, scaled to width x height, plus the audio
 * track, handed to each job's callbacks. Native: ONE batch on the pool, one
 * clip job per video from 0 (frame j = the source frame on screen at j / fps,
 * the clip rule) that may end early at the end of the stream (`upTo`), with
 * the audio window [0, length + 1 s) whose zeros past the track are dropped;
 * with `maxSeconds`, the frames before it and its audio (as `-t`).
 * The whole video is held in memory once (frames x width x height x 3 bytes)
 * before it goes to the callbacks. Resolves per job with null (done) or a
 * DataError; rejects only on abort or when no decoder can run.
 */
export async function decodeVideos(jobs: VideoJob[], opts: DecodeOptions = {}): Promise<(DataError | null)[]> {
  if (decoderFor(opts) === 'ffmpeg-cli') return cli.decodeVideos(jobs, opts);
  aborted(opts);
  const out: (DataError | null)[] = new Array(jobs.length).fill(null);
  const live: { i: number; frames: number; samples: number }[] = [];
  const requests: object[] = [];
  jobs.forEach((j, i) => {
    const v = j.info.video;
    if (!v) {
      out[i] = new DataError('no_video', j.file, 'no video stream');
      return;
    }
    // Capped: what `ffmpeg -t maxSeconds` keeps (frames on the grid before it, its audio); else all (the stream ends it).
    const cap = j.maxSeconds !== undefined && Number.isFinite(j.maxSeconds) ? j.maxSeconds : undefined;
    const frames = cap !== undefined ? Math.max(1, Math.ceil(cap * j.fps - 1e-9)) : Math.ceil(j.info.duration * j.fps) + 2;
    const rate = j.sampleRate && j.info.audio ? j.sampleRate : 0;
    const samples = cap !== undefined ? Math.ceil(cap * rate) : Math.ceil((j.info.duration + 1) * rate);
    live.push({ i, frames, samples });
    requests.push({
      file: j.file,
      start: 0,
      frames,
      upTo: true,
      fps: j.fps,
      width: j.width,
      height: j.height,
      crop: { x: 0, y: 0, w: v.width, h: v.height },
      audio: samples > 0 ? { start: 0, samples, sampleRate: rate } : undefined,
      audioStream: j.info.audio?.stream ?? opts.audioStream,
      timeoutMs: opts.timeoutMs ?? 60000,
    });
  });
  if (live.length === 0) return out;
  const b = await nativeDecoder(opts.threads).decodeBatch(requests);
  aborted(opts);
  live.forEach(({ i, frames, samples }, k) => {
    const m = b.clips[k];
    const j = jobs[i];
    if (!m.ok) {
      out[i] = new DataError(reasonOf(m.reason), j.file, m.message ?? 'decode failed');
      return;
    }
    const got = m.frames ?? frames;
    j.onVideo(Buffer.from(b.video.buffer, b.video.byteOffset + m.videoOffset, got * j.width * j.height * 3));
    if (samples > 0 && m.hadAudio) {
      const a = samples - m.padBack;
      if (a > 0) j.onAudio?.(Buffer.from(b.audio.buffer, b.audio.byteOffset + m.audioOffset * 4, a * 4));
    }
  });
  return out;
}
