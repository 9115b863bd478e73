// The one module of lib/ that spawns ffmpeg and ffprobe (docs/architecture.md,
// Rules). Everything crosses pipes: JSON from ffprobe, raw rgb24 frames on
// stdout and f32le PCM on fd 3 from ffmpeg, raw frames and PCM into ffmpeg on
// fds 3.. for encoding. Binaries: $CMAC_FFMPEG / $CMAC_FFPROBE, else the PATH.
import { spawn, type ChildProcess } from 'child_process';
import * as fs from 'fs';
import type { Readable, Writable } from 'stream';
import { DataError } from './errors';

/** The ffmpeg binary used (env CMAC_FFMPEG, default `ffmpeg`). */
export function ffmpegBin(): string {
  return process.env.CMAC_FFMPEG || 'ffmpeg';
}

/** The ffprobe binary used (env CMAC_FFPROBE, default `ffprobe`). */
export function ffprobeBin(): string {
  return process.env.CMAC_FFPROBE || 'ffprobe';
}

/** What {@link probe} learns about a media file. Times are seconds from the file's start. */
export interface ProbeInfo {
  file: string;
  /** Size on disk in bytes. */
  size: number;
  /** Container format name(s), e.g. `mov,mp4,m4a,3gp,3g2,mj2`. */
  format: string;
  /** Usable duration: the container's, else the longest stream's. */
  duration: number;
  video?: {
    codec: string;
    /** Display size (after rotation metadata, which ffmpeg applies on decode). */
    width: number;
    height: number;
    fps: number;
    rotation: number;
    frames?: number;
    duration?: number;
  };
  audio?: {
    codec: string;
    sampleRate: number;
    channels: number;
    duration?: number;
    /**
     * Which audio stream: its index among the file's audio streams (0 = the
     * first). The rule (both decoders): `audioStream` when given, else the
     * first stream with the default disposition, else the first.
     */
    stream?: number;
  };
}

/** Options shared by every spawned process. */
export interface ProcessOptions {
  /** Kill the process after this many milliseconds (default 60000). */
  timeoutMs?: number;
  /** Kill the process when this signal aborts. */
  signal?: AbortSignal;
}

interface Spawned {
  child: ChildProcess;
  done: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; timedOut: boolean; aborted: boolean }>;
}

function run(bin: string, args: string[], extraFds: number, opts: ProcessOptions = {}): Spawned {
  const stdio: ('pipe' | 'ignore')[] = ['pipe', 'pipe', 'pipe'];
  for (let i = 0; i < extraFds; i++) stdio.push('pipe');
  const child = spawn(bin, args, { stdio });
  let stderr = '';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (d: string) => {
    stderr += d;
    if (stderr.length > 8192) stderr = stderr.slice(-4096);
  });
  let timedOut = false;
  let aborted = false;
  const timer = setTimeout(() => {
    timedOut = true;
    child.kill('SIGKILL');
  }, opts.timeoutMs ?? 60000);
  const onAbort = (): void => {
    aborted = true;
    child.kill('SIGKILL');
  };
  if (opts.signal) {
    if (opts.signal.aborted) onAbort();
    else opts.signal.addEventListener('abort', onAbort, { once: true });
  }
  // EPIPE on our writes when ffmpeg exits early is reported through the exit code.
  for (const s of child.stdio) (s as NodeJS.EventEmitter | null)?.on('error', () => undefined);
  const done = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string; timedOut: boolean; aborted: boolean }>(
    (resolve, reject) => {
      child.on('error', (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        if (err.code === 'ENOENT')
          reject(
            new Error(
              `cmac: cannot run '${bin}': not found (install ffmpeg, e.g. apt-get install ffmpeg, or set CMAC_FFMPEG/CMAC_FFPROBE)`,
            ),
          );
        else reject(err);
      });
      child.on('close', (code, signal) => {
        clearTimeout(timer);
        opts.signal?.removeEventListener('abort', onAbort);
        resolve({ code, signal, stderr: stderr.trim(), timedOut, aborted });
      });
    },
  );
  return { child, done };
}

function lastLines(s: string, n = 3): string {
  const lines = s
    .split('\n')
    .map((l) => l.trim())
    .filter(Boolean);
  return lines.slice(-n).join(' | ') || '(no message)';
}

/** Result of {@link runFfmpeg}. */
export interface FfmpegResult {
  stdout: Buffer;
  stderr: string;
}

/**
 * Runs ffmpeg with the given arguments (after `-hide_banner -nostdin
 * -loglevel error` unless `input` is given, which is written to stdin) and
 * resolves with its stdout; rejects with ffmpeg's message on a non-zero exit.
 * Meant for tools and tests that need ffmpeg for something the pipeline does
 * not wrap (e.g. making fixture videos).
 */
export async function runFfmpeg(args: string[], input?: Uint8Array, opts: ProcessOptions = {}): Promise<FfmpegResult> {
  const pre = ['-hide_banner', '-loglevel', 'error'];
  if (!input) pre.push('-nostdin');
  const p = run(ffmpegBin(), [...pre, ...args], 0, { timeoutMs: 300000, ...opts });
  const chunks: Buffer[] = [];
  p.child.stdout?.on('data', (d: Buffer) => chunks.push(d));
  if (input) p.child.stdin?.end(Buffer.from(input.buffer, input.byteOffset, input.byteLength));
  else p.child.stdin?.end();
  const r = await p.done;
  if (r.code !== 0)
    throw new Error(`ffmpeg ${args.join(' ')} failed (${r.timedOut ? 'timeout' : `exit ${r.code ?? r.signal}`}): ${lastLines(r.stderr)}`);
  return { stdout: Buffer.concat(chunks), stderr: r.stderr };
}

/**
 * Decodes the audio of a whole file (ffmpeg's default stream choice) to mono
 * float32 PCM at `sampleRate`: for audio-only files (ESC-50's .wav
 * clips), which the clip loader does not take, and whole soundtracks
 * (`cmac localize`'s frequency picture). Rejects naming the file when ffmpeg
 * fails or the file has no audio.
 */
export async function decodeAudioFile(file: string, sampleRate: number, opts: ProcessOptions = {}): Promise<Float32Array> {
  if (!(Number.isInteger(sampleRate) && sampleRate > 0))
    throw new RangeError(`cmac: decodeAudioFile: sampleRate must be a positive integer, got ${sampleRate}`);
  let stdout: Buffer;
  try {
    ({ stdout } = await runFfmpeg(['-i', file, '-vn', '-ac', '1', '-ar', String(sampleRate), '-f', 'f32le', 'pipe:1'], undefined, opts));
  } catch (e) {
    throw new Error(`cmac: could not decode the audio of ${file}: ${(e as Error).message.replace(/^ffmpeg .*? failed /, '')}`);
  }
  const n = Math.floor(stdout.length / 4);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = stdout.readFloatLE(i * 4);
  return out;
}

function parseRate(s: unknown): number {
  if (typeof s !== 'string') return 0;
  const [a, b] = s.split('/').map(Number);
  if (!Number.isFinite(a) || a <= 0) return 0;
  return b ? a / b : a;
}

function num(s: unknown): number | undefined {
  const v = typeof s === 'number' ? s : typeof s === 'string' ? Number(s) : NaN;
  return Number.isFinite(v) ? v : undefined;
}

function isFtypHeaded(file: string): boolean {
  try {
    const fd = fs.openSync(file, 'r');
    try {
      const b = Buffer.alloc(8);
      fs.readSync(fd, b, 0, 8, 0);
      return b.toString('latin1', 4, 8) === 'ftyp';
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    return false;
  }
}

/**
 * Reads streams, duration, frame rate and audio rate of a media file with
 * ffprobe (JSON output). Rejects with a {@link DataError} whose `reason` says
 * what is wrong (missing_file, empty_file, probe_failed, truncated,
 * unsupported_codec, no_video); a missing audio track is not an error here
 * (`audio` is undefined), the caller decides.
 */
export async function probe(file: string, opts: ProcessOptions & { audioStream?: number } = {}): Promise<ProbeInfo> {
  let size: number;
  try {
    const st = await fs.promises.stat(file);
    if (!st.isFile()) throw new DataError('missing_file', file, 'not a regular file');
    size = st.size;
  } catch (e) {
    if (e instanceof DataError) throw e;
    throw new DataError('missing_file', file, (e as Error).message);
  }
  if (size === 0) throw new DataError('empty_file', file, 'file has zero bytes');
  const p = run(ffprobeBin(), ['-v', 'error', '-print_format', 'json', '-show_format', '-show_streams', file], 0, {
    timeoutMs: 30000,
    ...opts,
  });
  p.child.stdin?.end();
  const chunks: Buffer[] = [];
  p.child.stdout?.on('data', (d: Buffer) => chunks.push(d));
  const r = await p.done;
  if (r.timedOut) throw new DataError('timeout', file, 'ffprobe timed out');
  if (r.code !== 0) {
    const msg = lastLines(r.stderr);
    if (/moov atom not found/i.test(r.stderr) && isFtypHeaded(file)) throw new DataError('truncated', file, `container cut short (${msg})`);
    throw new DataError('probe_failed', file, msg);
  }
  let j: { format?: Record<string, unknown>; streams?: Record<string, unknown>[] };
  try {
    j = JSON.parse(Buffer.concat(chunks).toString('utf8'));
  } catch {
    throw new DataError('probe_failed', file, 'ffprobe printed no JSON');
  }
  const streams = j.streams ?? [];
  const vs = streams.find((s) => s.codec_type === 'video' && !(s.disposition as Record<string, number> | undefined)?.attached_pic);
  const audioStreams = streams.filter((s) => s.codec_type === 'audio');
  const isDefault = (s: Record<string, unknown>): boolean => (s.disposition as Record<string, number> | undefined)?.default === 1;
  const want = opts.audioStream;
  const audioIndex = want !== undefined ? want : Math.max(0, audioStreams.findIndex(isDefault));
  const as = audioStreams[audioIndex] as Record<string, unknown> | undefined;
  if (!vs) throw new DataError('no_video', file, `no video stream (streams: ${streams.map((s) => s.codec_type).join(', ') || 'none'})`);
  if (!vs.codec_name || vs.codec_name === 'none')
    throw new DataError('unsupported_codec', file, 'video stream has a codec ffmpeg does not know');
  let rotation = 0;
  const sd = (vs.side_data_list as Record<string, unknown>[] | undefined) ?? [];
  for (const d of sd) if (typeof d.rotation === 'number') rotation = d.rotation;
  const tagRot = num((vs.tags as Record<string, unknown> | undefined)?.rotate);
  if (tagRot !== undefined) rotation = tagRot;
  rotation = (((Math.round(rotation / 90) * 90) % 360) + 360) % 360;
  let width = num(vs.width) ?? 0;
  let height = num(vs.height) ?? 0;
  if (rotation === 90 || rotation === 270) [width, height] = [height, width];
  if (!width || !height) throw new DataError('probe_failed', file, 'video stream has no size');
  const fps = parseRate(vs.avg_frame_rate) || parseRate(vs.r_frame_rate);
  const vdur = num(vs.duration);
  const adur = as ? num(as.duration) : undefined;
  const fdur = num(j.format?.duration);
  const duration = fdur ?? Math.max(vdur ?? 0, adur ?? 0);
  const info: ProbeInfo = {
    file,
    size,
    format: String(j.format?.format_name ?? ''),
    duration: duration > 0 ? duration : (vdur ?? 0),
    video: { codec: String(vs.codec_name), width, height, fps, rotation, frames: num(vs.nb_frames), duration: vdur },
  };
  if (as && as.codec_name && as.codec_name !== 'none') {
    info.audio = {
      codec: String(as.codec_name),
      sampleRate: num(as.sample_rate) ?? 0,
      channels: num(as.channels) ?? 0,
      duration: adur,
      stream: audioIndex,
    };
  }
  return info;
}

/** A crop rectangle in source pixels (display orientation). */
export interface CropRect {
  x: number;
  y: number;
  w: number;
  h: number;
}

/** Colour jitter applied with ffmpeg's `eq` filter (1 / 0 / 1 = no change). */
export interface Jitter {
  /** Added to luma, in [-1, 1]. */
  brightness: number;
  /** Multiplies contrast. */
  contrast: number;
  /** Multiplies saturation. */
  saturation: number;
}

/** What {@link decodeClip} decodes. */
export interface DecodeRequest {
  /** Time of the first frame, seconds from the file's start (>= 0). */
  start: number;
  frames: number;
  fps: number;
  /** Output frame size in pixels. */
  width: number;
  height: number;
  /** Source rectangle to scale to width x height (default: the centred largest rectangle of the output's aspect). */
  crop?: CropRect;
  /** Mirror left-right. */
  flip?: boolean;
  /** Colour jitter (eq filter); omitted = none. */
  jitter?: Jitter;
  /**
   * Audio window: `start` (seconds, may be negative or run past the end:
   * the part outside the file is zeros), `samples` at `sampleRate`, mono.
   * Omit to decode no audio.
   */
  audio?: { start: number; samples: number; sampleRate: number };
  /** Decoder threads per stream (default 1: the loader runs several decoders instead). */
  threads?: number;
}

/** A decoded clip. */
export interface DecodedClip {
  /** frames x height x width x 3, RGB. */
  video: Uint8Array;
  /** Exactly `audio.samples` mono samples, or null when no audio was asked or the file has none. */
  audio: Float32Array | null;
  /** Zeros put before / after the decoded samples (window outside the file or audio shorter than the window). */
  audioPad: { front: number; back: number };
}

function fmt(x: number): string {
  return (Math.round(x * 1e6) / 1e6).toFixed(6);
}

/** The centred crop of a w x h source with the aspect of outW x outH (resize-then-centre-crop). */
export function centreCrop(w: number, h: number, outW: number, outH: number): CropRect {
  const target = outW / outH;
  let cw = w;
  let ch = Math.round(w / target);
  if (ch > h) {
    ch = h;
    cw = Math.round(h * target);
  }
  return { x: Math.floor((w - cw) / 2), y: Math.floor((h - ch) / 2), w: cw, h: ch };
}

/**
 * The video filter graph of a clip: re-time so that output frame k is the
 * source frame on screen at `start + k / fps` (pts shift + fps with
 * start_time and round=up, then rebased to 0), then crop, scale, colour jitter (eq), hflip, and
 * conversion to rgb24. `preroll` is how far before `start` the input was seeked.
 */
export function videoFilter(req: DecodeRequest, info: ProbeInfo, preroll: number): string {
  const F = req.fps;
  const slot = Math.ceil(preroll * F - 1e-9) / F;
  const shift = slot - preroll;
  const v = info.video!;
  const c = req.crop ?? centreCrop(v.width, v.height, req.width, req.height);
  const x = Math.max(0, Math.min(v.width - 1, Math.round(c.x)));
  const y = Math.max(0, Math.min(v.height - 1, Math.round(c.y)));
  const w = Math.max(1, Math.min(v.width - x, Math.round(c.w)));
  const h = Math.max(1, Math.min(v.height - y, Math.round(c.h)));
  const parts = [
    `setpts=PTS+${fmt(shift)}/TB`,
    `fps=${F}:start_time=${fmt(slot)}:round=up`,
    // Rebase to 0, 1/F, ... so the output side never pads or drops frames to match the input's start.
    `setpts=N/${F}/TB`,
  ];
  if (!(x === 0 && y === 0 && w === v.width && h === v.height)) parts.push(`crop=${w}:${h}:${x}:${y}:exact=1`);
  parts.push(`scale=${req.width}:${req.height}:flags=bilinear`);
  if (req.jitter) {
    const j = req.jitter;
    parts.push(`eq=brightness=${fmt(j.brightness)}:contrast=${fmt(j.contrast)}:saturation=${fmt(j.saturation)}`);
  }
  if (req.flip) parts.push('hflip');
  parts.push('format=rgb24');
  return parts.join(',');
}

function collect(stream: Readable | null | undefined, target: Uint8Array): { bytes: () => number } {
  let n = 0;
  stream?.on('data', (d: Buffer) => {
    const take = Math.min(d.length, target.length - n);
    if (take > 0) target.set(take === d.length ? d : d.subarray(0, take), n);
    n += take;
  });
  return { bytes: () => n };
}

/** One clip for {@link decodeClips}. */
export interface ClipJob {
  file: string;
  info: ProbeInfo;
  req: DecodeRequest;
}

interface Planned {
  inputs: string[];
  outputs: string[];
  video: Uint8Array;
  videoFd: number;
  audio?: { out: Float32Array; bytes: Uint8Array; fd: number; front: number };
  audioOut: Float32Array | null;
  front: number;
}

function planJob(j: ClipJob, inputBase: number, fdBase: number): Planned {
  const { file, info, req } = j;
  const threads = String(req.threads ?? 1);
  const preroll = Math.min(Math.max(0, req.start), 0.5);
  const seek = Math.max(0, req.start) - preroll;
  const clipSeconds = req.frames / req.fps;
  const inputs = ['-threads', threads, '-ss', fmt(seek), '-t', fmt(preroll + clipSeconds + 0.5), '-i', file];
  const outputs = [
    '-map',
    `${inputBase}:v:0`,
    '-vf',
    videoFilter(req, info, preroll),
    '-frames:v',
    String(req.frames),
    '-an',
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    `pipe:${fdBase}`,
  ];
  const p: Planned = {
    inputs,
    outputs,
    video: new Uint8Array(req.width * req.height * 3 * req.frames),
    videoFd: fdBase,
    audioOut: null,
    front: 0,
  };
  const a = req.audio;
  if (a && info.audio) {
    const out = new Float32Array(a.samples);
    p.audioOut = out;
    const first = Math.round(a.start * a.sampleRate);
    const front = Math.min(a.samples, Math.max(0, -first));
    p.front = front;
    const readSamples = a.samples - front;
    const from = Math.max(0, first) / a.sampleRate;
    if (readSamples > 0 && from < info.duration + 0.05) {
      inputs.push('-threads', threads, '-ss', fmt(from), '-t', fmt(readSamples / a.sampleRate + 0.05), '-i', file);
      outputs.push(
        '-map',
        `${inputBase + 1}:a:${info.audio.stream ?? 0}`,
        '-vn',
        '-ac',
        '1',
        '-af',
        `aresample=${a.sampleRate}:async=1:first_pts=0`,
        '-f',
        'f32le',
        `pipe:${fdBase + 1}`,
      );
      p.audio = { out, bytes: new Uint8Array(readSamples * 4), fd: fdBase + 1, front };
    }
  }
  return p;
}

/**
 * Decodes several clips with ONE ffmpeg process (two inputs per clip: the
 * video seek and the audio seek; one output pipe each), which amortises
 * ffmpeg's start-up over the group. Results are per clip: a DecodedClip, or a
 * DataError for that clip. When the process as a whole fails, every clip is
 * decoded again on its own so that the error lands on the right clip: the
 * result never depends on how clips were grouped. Rejects only on abort or
 * when ffmpeg cannot be run.
 */
export async function decodeClips(jobs: ClipJob[], opts: ProcessOptions = {}): Promise<(DecodedClip | DataError)[]> {
  const out: (DecodedClip | DataError | undefined)[] = new Array(jobs.length);
  const live: { i: number; p: Planned }[] = [];
  let input = 0;
  let fd = 3;
  jobs.forEach((j, i) => {
    if (!j.info.video) {
      out[i] = new DataError('no_video', j.file, 'no video stream');
      return;
    }
    const p = planJob(j, input, fd);
    input += p.audio ? 2 : 1;
    fd += p.audio ? 2 : 1;
    live.push({ i, p });
  });
  if (live.length === 0) return out as (DecodedClip | DataError)[];
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error'];
  for (const { p } of live) args.push(...p.inputs);
  for (const { p } of live) args.push(...p.outputs);
  const timeoutMs = (opts.timeoutMs ?? 60000) * (live.length > 1 ? 2 : 1);
  const proc = run(ffmpegBin(), args, fd - 3, { ...opts, timeoutMs });
  proc.child.stdin?.end();
  const counters = live.map(({ p }) => ({
    v: collect(proc.child.stdio[p.videoFd] as Readable, p.video),
    a: p.audio ? collect(proc.child.stdio[p.audio.fd] as Readable, p.audio.bytes) : undefined,
  }));
  const r = await proc.done;
  if (r.aborted) throw new Error('cmac: decode aborted');
  if (r.code !== 0) {
    if (live.length > 1) {
      // Attribute the failure: decode each clip alone (sequentially, to keep the process count bounded).
      for (const { i } of live) {
        const [one] = await decodeClips([jobs[i]], opts);
        out[i] = one;
      }
      return out as (DecodedClip | DataError)[];
    }
    const file = jobs[live[0].i].file;
    if (r.timedOut) out[live[0].i] = new DataError('timeout', file, `ffmpeg ran past ${opts.timeoutMs ?? 60000} ms`);
    else if (/Decoder \(codec [^)]*\) not found/i.test(r.stderr))
      out[live[0].i] = new DataError('unsupported_codec', file, lastLines(r.stderr));
    else out[live[0].i] = new DataError('decode_failed', file, lastLines(r.stderr));
    return out as (DecodedClip | DataError)[];
  }
  live.forEach(({ i, p }, k) => {
    const { file, info, req } = jobs[i];
    const frameBytes = req.width * req.height * 3;
    const got = Math.floor(counters[k].v.bytes() / frameBytes);
    if (got < req.frames) {
      out[i] = new DataError(
        'truncated',
        file,
        `decoded ${got} of ${req.frames} frames at ${fmt(req.start)} s (duration ${fmt(info.duration)} s)`,
      );
      return;
    }
    let back = 0;
    if (p.audioOut && req.audio) {
      const n = counters[k].a ? Math.floor(counters[k].a!.bytes() / 4) : 0;
      if (n > 0 && p.audio) p.audioOut.set(new Float32Array(p.audio.bytes.buffer, p.audio.bytes.byteOffset, n), p.front);
      back = req.audio.samples - p.front - n;
    }
    out[i] = { video: p.video, audio: p.audioOut, audioPad: { front: p.front, back } };
  });
  return out as (DecodedClip | DataError)[];
}

/**
 * Decodes one clip window with a single ffmpeg process: `frames` RGB frames
 * at `fps` starting at `start` (seek with -ss before -i, re-timing, crop,
 * scale, jitter and flip in the filter graph) and, when asked, the audio
 * window as f32le mono at `sampleRate`, padded with zeros / trimmed to exactly
 * `samples`. Rejects with a {@link DataError}: `truncated` when fewer frames
 * come out than asked, `decode_failed` on an ffmpeg error, `timeout`.
 */
export async function decodeClip(file: string, info: ProbeInfo, req: DecodeRequest, opts: ProcessOptions = {}): Promise<DecodedClip> {
  const [r] = await decodeClips([{ file, info, req }], opts);
  if (r instanceof DataError) throw r;
  return r;
}

/** One file for {@link decodeVideos}: all of it (up to `maxSeconds`), streamed to callbacks. */
export interface VideoJob {
  file: string;
  info: ProbeInfo;
  /** Frame rate: frame j is the source frame on screen at j / fps (as in {@link decodeClip}). */
  fps: number;
  /** Frame size the whole frame is scaled to (bilinear). */
  width: number;
  height: number;
  /** Decode only the first this many seconds (default: all). */
  maxSeconds?: number;
  /** Audio rate (mono f32le, sample i at i / sampleRate s, a late start padded); omit for no audio. */
  sampleRate?: number;
  /** Decoder threads (default 1). */
  threads?: number;
  /** Raw rgb24 bytes, in order (width * height * 3 per frame). Must not throw. */
  onVideo(chunk: Buffer): void;
  /** f32le mono bytes, in order. Must not throw. */
  onAudio?(chunk: Buffer): void;
  /** Forget what was received: the job is decoded again on its own (after its group's process failed). */
  onReset?(): void;
}

/**
 * Decodes whole files (video re-timed to `fps` and scaled, plus the audio
 * track) with ONE ffmpeg process for the group, streaming the bytes to each
 * job's callbacks, for the train-mode video cache. The video filter is the
 * clip decoder's with start 0 (frame j = the source frame on screen at
 * j / fps) and no crop. Resolves per job with null (done) or a DataError;
 * when the group's process fails, each job is reset and decoded alone so the
 * error lands on its file. Rejects only on abort or when ffmpeg cannot run.
 */
export async function decodeVideos(jobs: VideoJob[], opts: ProcessOptions = {}): Promise<(DataError | null)[]> {
  const out: (DataError | null)[] = new Array(jobs.length).fill(null);
  const live: { i: number; vfd: number; afd?: number }[] = [];
  const inputs: string[] = [];
  const outputs: string[] = [];
  let fd = 3;
  jobs.forEach((j, i) => {
    const v = j.info.video;
    if (!v) {
      out[i] = new DataError('no_video', j.file, 'no video stream');
      return;
    }
    const input = live.length;
    inputs.push('-threads', String(j.threads ?? 1));
    if (j.maxSeconds !== undefined && Number.isFinite(j.maxSeconds)) inputs.push('-t', fmt(j.maxSeconds));
    inputs.push('-i', j.file);
    const req: DecodeRequest = {
      start: 0,
      frames: 0,
      fps: j.fps,
      width: j.width,
      height: j.height,
      crop: { x: 0, y: 0, w: v.width, h: v.height },
    };
    const vfd = fd++;
    outputs.push('-map', `${input}:v:0`, '-vf', videoFilter(req, j.info, 0), '-an', '-f', 'rawvideo', '-pix_fmt', 'rgb24', `pipe:${vfd}`);
    let afd: number | undefined;
    if (j.sampleRate && j.info.audio) {
      afd = fd++;
      outputs.push(
        '-map',
        `${input}:a:${j.info.audio.stream ?? 0}`,
        '-vn',
        '-ac',
        '1',
        '-af',
        `aresample=${j.sampleRate}:async=1:first_pts=0`,
        '-f',
        'f32le',
        `pipe:${afd}`,
      );
    }
    live.push({ i, vfd, afd });
  });
  if (live.length === 0) return out;
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', ...inputs, ...outputs];
  const timeoutMs = (opts.timeoutMs ?? 60000) * (live.length > 1 ? 2 : 1);
  const proc = run(ffmpegBin(), args, fd - 3, { ...opts, timeoutMs });
  proc.child.stdin?.end();
  for (const { i, vfd, afd } of live) {
    const j = jobs[i];
    (proc.child.stdio[vfd] as Readable | null)?.on('data', (d: Buffer) => j.onVideo(d));
    if (afd !== undefined) (proc.child.stdio[afd] as Readable | null)?.on('data', (d: Buffer) => j.onAudio?.(d));
  }
  const r = await proc.done;
  if (r.aborted) throw new Error('cmac: decode aborted');
  if (r.code !== 0) {
    if (live.length > 1) {
      for (const { i } of live) {
        jobs[i].onReset?.();
        const [one] = await decodeVideos([jobs[i]], opts);
        out[i] = one;
      }
      return out;
    }
    const file = jobs[live[0].i].file;
    if (r.timedOut) out[live[0].i] = new DataError('timeout', file, `ffmpeg ran past ${opts.timeoutMs ?? 60000} ms`);
    else if (/Decoder \(codec [^)]*\) not found/i.test(r.stderr))
      out[live[0].i] = new DataError('unsupported_codec', file, lastLines(r.stderr));
    else out[live[0].i] = new DataError('decode_failed', file, lastLines(r.stderr));
  }
  return out;
}

/** One clip to encode with {@link encodeClips}. */
export interface EncodeJob {
  /** Output path (.mp4). */
  out: string;
  /** frames x height x width x 3 RGB. */
  video: Uint8Array;
  width: number;
  height: number;
  fps: number;
  /** Mono PCM in [-1, 1]; omit for a silent-track-less video. */
  audio?: Float32Array;
  sampleRate?: number;
}

/** Encoder settings of {@link encodeClips}. */
export interface EncodeOptions extends ProcessOptions {
  /** x264 preset (default `ultrafast`). */
  preset?: string;
  /** x264 CRF (default 18). */
  crf?: number;
  /** AAC bitrate (default `96k`). */
  audioBitrate?: string;
  /** Keyframe interval in frames (default: one per second). */
  gop?: number;
  /** x264 threads per clip (default 1). */
  threads?: number;
  /** Put the moov atom first in .mp4/.mov outputs (default true). */
  faststart?: boolean;
}

function writeAll(w: Writable | null | undefined, data: Uint8Array): void {
  if (!w) return;
  w.end(Buffer.from(data.buffer, data.byteOffset, data.byteLength));
}

/**
 * Encodes several clips with ONE ffmpeg process (amortising its start-up):
 * raw rgb24 frames and f32le PCM go in through pipes (fds 3, 4, ...), each
 * clip comes out as H.264 (libx264, yuv420p) + AAC in the container its
 * extension names (.mp4/.mov get the moov atom first, +faststart).
 */
export async function encodeClips(jobs: EncodeJob[], opts: EncodeOptions = {}): Promise<void> {
  if (jobs.length === 0) return;
  const args = ['-hide_banner', '-nostdin', '-loglevel', 'error', '-y'];
  let fd = 3;
  const inputs: { fd: number; data: Uint8Array }[] = [];
  const maps: string[][] = [];
  let idx = 0;
  for (const j of jobs) {
    const vIdx = idx++;
    args.push('-f', 'rawvideo', '-pix_fmt', 'rgb24', '-s', `${j.width}x${j.height}`, '-r', String(j.fps), '-i', `pipe:${fd}`);
    inputs.push({ fd: fd++, data: j.video });
    const m = ['-map', `${vIdx}:v`];
    if (j.audio) {
      const aIdx = idx++;
      args.push('-f', 'f32le', '-ar', String(j.sampleRate ?? 16000), '-ac', '1', '-i', `pipe:${fd}`);
      inputs.push({ fd: fd++, data: new Uint8Array(j.audio.buffer, j.audio.byteOffset, j.audio.byteLength) });
      m.push('-map', `${aIdx}:a`);
    }
    maps.push(m);
  }
  jobs.forEach((j, i) => {
    args.push(...maps[i]);
    args.push(...x264Args(j.fps, opts));
    if (j.audio) args.push('-c:a', 'aac', '-b:a', opts.audioBitrate ?? '96k');
    if (/\.(mp4|m4v|mov)$/i.test(j.out) && opts.faststart !== false) args.push('-movflags', '+faststart');
    args.push('-map_metadata', '-1', '-fflags', '+bitexact', '-flags', '+bitexact', j.out);
  });
  const p = run(ffmpegBin(), args, fd - 3, { timeoutMs: 600000, ...opts });
  p.child.stdin?.end();
  for (const inp of inputs) writeAll(p.child.stdio[inp.fd] as Writable, inp.data);
  const r = await p.done;
  if (r.code !== 0)
    throw new Error(
      `cmac: ffmpeg could not encode ${jobs.map((j) => j.out).join(', ')} (${r.timedOut ? 'timeout' : `exit ${r.code ?? r.signal}`}): ${lastLines(r.stderr)}`,
    );
}

/** The H.264 settings of {@link encodeClips} and {@link openVideoEncoder}. */
function x264Args(fps: number, opts: EncodeOptions): string[] {
  return [
    '-c:v',
    'libx264',
    '-preset',
    opts.preset ?? 'ultrafast',
    '-crf',
    String(opts.crf ?? 18),
    '-pix_fmt',
    'yuv420p',
    '-g',
    String(opts.gop ?? Math.max(1, Math.round(fps))),
    '-threads',
    String(opts.threads ?? 1),
  ];
}

/** A video being encoded frame by frame ({@link openVideoEncoder}). */
export interface VideoEncoder {
  /**
   * Sends one rgb24 frame (height x width x 3) to ffmpeg's stdin and resolves
   * once the pipe takes more (backpressure), so at most about one frame waits
   * in memory however long the video. Do not change `frame` afterwards.
   * Rejects when ffmpeg has failed.
   */
  write(frame: Uint8Array): Promise<void>;
  /** Ends the input and waits for ffmpeg; rejects with its message on failure. */
  close(): Promise<void>;
  /** Kills ffmpeg at once; the output is incomplete and the caller's to remove. */
  abort(): void;
}

/**
 * Starts ONE ffmpeg that encodes rgb24 frames written to its stdin into
 * `out` as H.264 (the settings of {@link encodeClips}; odd sizes are padded
 * to even). `format` names the container when `out`'s extension does not
 * (e.g. a temp name). No time limit unless `opts.timeoutMs` is given.
 */
export function openVideoEncoder(
  job: { out: string; width: number; height: number; fps: number; format?: string },
  opts: EncodeOptions = {},
): VideoEncoder {
  const args = [
    '-hide_banner',
    '-loglevel',
    'error',
    '-y',
    '-f',
    'rawvideo',
    '-pix_fmt',
    'rgb24',
    '-s',
    `${job.width}x${job.height}`,
    '-r',
    String(job.fps),
    '-i',
    'pipe:0',
  ];
  if (job.width % 2 || job.height % 2) args.push('-vf', 'pad=ceil(iw/2)*2:ceil(ih/2)*2');
  args.push(...x264Args(job.fps, opts));
  if ((/\.(mp4|m4v|mov)$/i.test(job.out) || /^(mp4|mov)$/.test(job.format ?? '')) && opts.faststart !== false)
    args.push('-movflags', '+faststart');
  if (job.format) args.push('-f', job.format);
  args.push('-map_metadata', '-1', '-fflags', '+bitexact', '-flags', '+bitexact', job.out);
  const p = run(ffmpegBin(), args, 0, { ...opts, timeoutMs: opts.timeoutMs ?? 2 ** 31 - 1 });
  const stdin = p.child.stdin!;
  let failed: Error | undefined;
  const failure = (r: Awaited<Spawned['done']>) =>
    new Error(
      `cmac: ffmpeg could not encode ${job.out} (${r.timedOut ? 'timeout' : r.aborted ? 'aborted' : `exit ${r.code ?? r.signal}`}): ${lastLines(r.stderr)}`,
    );
  const exited = p.done.then(
    (r) => {
      if (r.code !== 0) failed = failure(r);
      return r;
    },
    (e: Error) => {
      failed = e;
      return undefined;
    },
  );
  return {
    async write(frame: Uint8Array): Promise<void> {
      if (failed) throw failed;
      if (stdin.write(Buffer.from(frame.buffer, frame.byteOffset, frame.byteLength))) return;
      await Promise.race([new Promise((resolve) => stdin.once('drain', resolve)), exited]);
      if (failed) throw failed;
    },
    async close(): Promise<void> {
      stdin.end();
      const r = await exited;
      if (failed) throw failed;
      if (!r) throw new Error(`cmac: ffmpeg could not encode ${job.out}`);
    },
    abort(): void {
      p.child.kill('SIGKILL');
    },
  };
}

/** What {@link muxSoundtrack} puts together. */
export interface MuxJob {
  /** A video whose picture is copied as it is (its own audio, if any, is dropped). */
  video: string;
  /** The file whose first audio stream becomes the soundtrack. */
  audio: string;
  /** Where in `audio` the soundtrack starts (seconds). */
  from: number;
  /** Soundtrack length (seconds); the output ends with the shorter of picture and sound. */
  seconds: number;
  /** Output path; written as MP4 (moov atom first) whatever its extension. */
  out: string;
}

/**
 * Writes `job.out`: the picture of `job.video` (stream copy, no re-encode)
 * with `job.audio`'s sound from `job.from` for `job.seconds`, as AAC 128k
 * (`cmac localize`'s overlay MP4 with the original soundtrack).
 */
export async function muxSoundtrack(job: MuxJob, opts: ProcessOptions = {}): Promise<void> {
  if (!(job.from >= 0) || !(job.seconds > 0))
    throw new RangeError(`cmac: muxSoundtrack: from must be >= 0 and seconds > 0, got from ${job.from}, seconds ${job.seconds}`);
  await runFfmpeg(
    [
      '-y',
      '-i',
      job.video,
      '-ss',
      String(job.from),
      '-t',
      String(job.seconds),
      '-i',
      job.audio,
      '-map',
      '0:v:0',
      '-map',
      '1:a:0',
      '-c:v',
      'copy',
      '-c:a',
      'aac',
      '-b:a',
      '128k',
      '-shortest',
      '-movflags',
      '+faststart',
      '-f',
      'mp4',
      job.out,
    ],
    undefined,
    opts,
  );
}
