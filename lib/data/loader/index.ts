// The clip loader: turns a Source into batches { video, audio, labels?, meta }
// with a bounded pool of ffmpeg decoders, a byte bound on decoded data waiting
// inside the loader (backpressure), a deterministic order under a seed, epoch
// shuffling, rank sharding and a resumable cursor. With `trainCache`, train
// clips are cut in JS from videos decoded once (lib/data/videocache.ts,
// lib/data/frames.ts). No native code here.
import * as fs from 'fs';
import { checkOptionKeys, keysOf } from '../options';
import { clipShapes, type SizePreset } from '../presets';
import type { Tensor } from '../tensor';
import { applyAudioAugment, planClip, type AugmentOptions, type ClipGeometry, type ClipPlan } from './augment';
import { ClipCache, cacheKey } from './cache';
import { DataError, TooFewClipsError, skipReasons, type SkipReason } from './errors';
import { decodeClips, decoderFor, probe, type DecoderKind } from './decode';
import { decodeVideos, type DecodedClip, type DecodeRequest, type ProbeInfo, type VideoJob } from './ffmpeg';
import { augmentFrames, workingSize } from './frames';
import { Prng, mixSeed } from './prng';
import type { OpenedSample, SampleRef, Source } from './sources';
import { VideoCache, entryBytes, type TrainCacheOptions, type VideoEntry } from './videocache';

/** Where a loader is in its stream of batches: the next epoch and the next position in it. */
export interface LoaderCursor {
  epoch: number;
  /** Index into this rank's clip order of the epoch: clips before it were consumed (or skipped). */
  position: number;
}

/** Options of {@link ClipLoader}. */
export interface LoaderOptions {
  source: Source;
  batchSize: number;
  /** Clip geometry: a size preset name or explicit fields (default: preset `paper`). */
  clip?: SizePreset | Partial<ClipGeometry>;
  /** 'train' (random clip, augmentation, shuffled) or 'eval' (centre / uniform clips, none) (default 'train'). */
  mode?: 'train' | 'eval';
  /** Training augmentation (default: all of method.md s1); false turns it off. Ignored in eval mode. */
  augment?: AugmentOptions | false;
  /** Eval: clips per video, spaced uniformly (default 1 = the centre clip). */
  clipsPerVideo?: number;
  /** Seed of shuffling and augmentation (default 0). */
  seed?: number;
  /** Shuffle the clip order each epoch (default: true in train mode). */
  shuffle?: boolean;
  /** Drop the last incomplete batch of an epoch (default false). */
  dropLast?: boolean;
  /** Concurrent ffmpeg decoder processes (default 2). */
  decoders?: number;
  /**
   * Clips one ffmpeg process decodes (default 4): start-up is most of a small
   * clip's cost, so grouping consecutive clips makes decoding ~2-3x cheaper.
   * Results do not depend on it.
   */
  clipsPerProcess?: number;
  /**
   * Most bytes of decoded clip data the loader holds at once: decodes in
   * flight (reserved at launch) plus decoded clips waiting for their turn.
   * The batch handed out is not counted. Default 64 MiB; must fit one clip.
   */
  prefetchBytes?: number;
  /** This process's rank and the number of ranks (defaults 0 and 1). */
  rank?: number;
  worldSize?: number;
  /** Cut every rank's slice to the same length (floor(n / worldSize)) so ranks step together (default false). */
  evenShards?: boolean;
  /** A file without an audio track: 'skip' it (counted as no_audio) or use 'silence' (default 'skip'). */
  missingAudio?: 'skip' | 'silence';
  /** Where to start (e.g. from a checkpoint); default { epoch: 0, position: 0 }. */
  cursor?: LoaderCursor;
  /** Epochs one `for await` over the loader runs (default 1). */
  epochs?: number;
  /** Receives one line per skipped sample (first time) and a summary per epoch. */
  log?: (line: string) => void;
  /** Cache decoded eval clips here (sharded binary files); only used in eval mode. */
  cacheDir?: string;
  /**
   * Train mode: decode each video once (whole file up to `maxSeconds`, at the
   * clip fps and a working size a little above the clip size, plus its audio
   * track) into sharded files in this folder, and cut every clip from there
   * in JS (crop, resize, flip, colour jitter), epoch after epoch and run
   * after run. A folder path, or options. Ignored in eval mode. docs/data.md.
   */
  trainCache?: string | TrainCacheOptions;
  /** Kill a decoder after this long (default 60000 ms). */
  timeoutMs?: number;
  /** ffmpeg decoder threads per process (default 1). */
  threads?: number;
  /** Clip decoder: 'native' (libav in process, a pool of `decoders` threads; the default) or 'ffmpeg-cli' (docs/data.md). */
  decoder?: DecoderKind;
  /** Audio stream index among a file's audio streams (default: the first with the default disposition, else the first). */
  audioStream?: number;
  /** A probe index file (lib/data/decode.ts ProbeIndex): probes keyed by path + size + mtime survive the run. */
  probeIndex?: string;
}

/** What the loader knows about each clip of a batch. */
export interface ClipMeta {
  /** The sample's id and index in the source list. */
  id: string;
  index: number;
  /** Clip number within the video (eval: 0..clipsPerVideo-1; train: 0). */
  clip: number;
  epoch: number;
  /** Position in this rank's order of the epoch. */
  position: number;
  /** First video frame time and audio window start (s). */
  start: number;
  audioStart: number;
  label?: number;
  boxes?: unknown;
  extra?: Record<string, unknown>;
  /** The augmentation drawn (train mode). */
  augment?: Pick<ClipPlan, 'crop' | 'flip' | 'jitter' | 'gain' | 'shiftSamples'>;
  /** True when the file had no audio and silence was used. */
  silent?: boolean;
  /** Zeros padded before / after the audio (window outside the file). */
  audioPad: { front: number; back: number };
  /**
   * Came from a cache: eval, the clip cache (`cacheDir`); train, cut in JS
   * from the decoded-video cache (`trainCache`, also in the epoch that
   * filled it; `start` is then on the 1 / fps grid).
   */
  cached?: boolean;
}

/** One batch: video uint8 [N, T, H, W, 3], audio float32 [N, samples], labels int32 [N] (-1 = none). */
export interface LoaderBatch {
  video: Tensor<'uint8'>;
  audio: Tensor<'float32'>;
  /** Present when the source has labels. */
  labels?: Tensor<'int32'>;
  meta: ClipMeta[];
  /** The cursor after this batch (save it to resume after this batch). */
  cursor: LoaderCursor;
}

/** Counts of one epoch (or the whole run). */
export interface EpochSummary {
  epoch: number;
  clips: number;
  batches: number;
  skipped: Partial<Record<SkipReason, number>>;
  seconds: number;
}

/** Running statistics of a loader. */
export interface LoaderStats {
  /** Clips delivered and batches yielded. */
  clips: number;
  batches: number;
  /** Skips per reason (each skipped clip counts once per epoch it is met). */
  skipped: Partial<Record<SkipReason, number>>;
  /** Distinct bad samples: id -> reason (the first one met). */
  badSamples: Record<string, SkipReason>;
  /** Most bytes held at once (see prefetchBytes). */
  peakBytes: number;
  /** ffmpeg decodes run (clips, plus whole videos decoded into the train cache) and clips served from a cache. */
  decodes: number;
  cacheHits: number;
  /** Train cache: videos decoded into it; either cache: entries (or index lines) found damaged, never returned (decoded again). */
  cacheFills: number;
  cacheDamaged: number;
  /** One entry per finished epoch. */
  epochs: EpochSummary[];
}

interface Unit {
  ref: SampleRef;
  clip: number;
}

interface Decode {
  kind: 'decode';
  u: Unit;
  position: number;
  /** Undefined when prepared from a train-cache entry without opening the sample. */
  opened?: OpenedSample;
  info: ProbeInfo;
  plan: ClipPlan;
  key?: string;
  /** Train-cache key of the video. */
  vkey?: string;
}

type Prepared = { kind: 'done'; r: Produced } | Decode;

type Produced =
  | { ok: true; video: Uint8Array; audio: Float32Array; meta: ClipMeta; bytes: number }
  | { ok: false; error: DataError; bytes: number };

function countSkips(s: Partial<Record<SkipReason, number>>): string {
  const parts = skipReasons.filter((r) => s[r]).map((r) => `${r} ${s[r]}`);
  return parts.length ? parts.join(', ') : 'none';
}

function geometryOf(c: LoaderOptions['clip']): ClipGeometry {
  if (typeof c === 'string') {
    const s = clipShapes[c];
    if (!s) throw new RangeError(`cmac: clip preset must be 'tiny' or 'paper', got '${c}'`);
    return { ...s };
  }
  const g = { ...clipShapes.paper, ...(c ?? {}) };
  for (const k of ['frames', 'fps', 'size', 'audioSeconds', 'sampleRate'] as const) {
    if (!(typeof g[k] === 'number' && g[k] > 0)) throw new RangeError(`cmac: clip.${k} must be a positive number, got ${String(g[k])}`);
  }
  return g;
}

const loaderOptionKeys = keysOf<LoaderOptions>()([
  'source', 'batchSize', 'clip', 'mode', 'augment', 'clipsPerVideo', 'seed', 'shuffle', 'dropLast', 'decoders', 'clipsPerProcess', 'prefetchBytes',
  'rank', 'worldSize', 'evenShards', 'missingAudio', 'cursor', 'epochs', 'log', 'cacheDir', 'trainCache', 'timeoutMs', 'threads', 'decoder',
  'audioStream', 'probeIndex',
]);

/**
 * Batches of decoded clips from a {@link Source}.
 *
 * Order: each epoch's clip order is a permutation drawn from (seed, epoch)
 * (identity without shuffling); rank r of w takes the contiguous slice
 * [floor(r n / w), floor((r + 1) n / w)). Decoders run ahead in that order,
 * but clips are put into batches strictly in order, so batches never depend
 * on which decoder finishes first. Bad samples are skipped (counted, logged)
 * and the next good clip takes their place.
 *
 * @example
 * const loader = new ClipLoader({ source: folderSource('videos'), batchSize: 8, clip: 'tiny', seed: 1 });
 * for await (const batch of loader) await model.trainStep(batch, { lr: 0.01 });
 * const saved = loader.cursor; // resume later with { cursor: saved }
 */
export class ClipLoader implements AsyncIterable<LoaderBatch> {
  readonly geometry: ClipGeometry;
  readonly stats: LoaderStats = { clips: 0, batches: 0, skipped: {}, badSamples: {}, peakBytes: 0, decodes: 0, cacheHits: 0, cacheFills: 0, cacheDamaged: 0, epochs: [] };
  private readonly o: Required<Pick<LoaderOptions, 'batchSize' | 'mode' | 'seed' | 'shuffle' | 'dropLast' | 'decoders' | 'prefetchBytes' | 'rank' | 'worldSize' | 'missingAudio' | 'epochs' | 'timeoutMs' | 'threads' | 'clipsPerVideo' | 'clipsPerProcess'>> &
    LoaderOptions;
  private refs?: SampleRef[];
  private listing?: Promise<SampleRef[]>;
  private hasLabels = false;
  /** Per file (sample id): what ffprobe said, or why it failed. */
  private readonly probes = new Map<string, ProbeInfo | DataError>();
  /** Per row (sample index): why the clip cannot be placed (no audio, too short for its window). Rows of one file differ. */
  private readonly rowErrors = new Map<number, DataError>();
  private readonly logged = new Set<string>();
  private cur: LoaderCursor;
  private cache?: ClipCache;
  private vcache?: VideoCache;
  private tc?: { maxSeconds: number; scale: number };
  /** Train-cache keys whose whole-video decode failed (their clips use the per-clip path). */
  private readonly fillFailed = new Set<string>();
  private diskChecked = false;
  private held = 0;
  private running = false;
  private abort?: AbortController;

  constructor(options: LoaderOptions) {
    checkOptionKeys(options, loaderOptionKeys, 'createLoader()');
    const mode = options.mode ?? 'train';
    this.o = {
      ...options,
      mode,
      seed: options.seed ?? 0,
      shuffle: options.shuffle ?? mode === 'train',
      dropLast: options.dropLast ?? false,
      decoders: options.decoders ?? 2,
      clipsPerProcess: options.clipsPerProcess ?? 4,
      prefetchBytes: options.prefetchBytes ?? 64 * 1024 * 1024,
      rank: options.rank ?? 0,
      worldSize: options.worldSize ?? 1,
      missingAudio: options.missingAudio ?? 'skip',
      epochs: options.epochs ?? 1,
      timeoutMs: options.timeoutMs ?? 60000,
      threads: options.threads ?? 1,
      clipsPerVideo: mode === 'eval' ? options.clipsPerVideo ?? 1 : 1,
    };
    if (!options.source) throw new TypeError('cmac: loader needs a source');
    if (!(Number.isInteger(this.o.batchSize) && this.o.batchSize > 0)) throw new RangeError(`cmac: batchSize must be a positive integer, got ${options.batchSize}`);
    if (!(Number.isInteger(this.o.decoders) && this.o.decoders > 0)) throw new RangeError(`cmac: decoders must be a positive integer, got ${options.decoders}`);
    if (!(Number.isInteger(this.o.clipsPerProcess) && this.o.clipsPerProcess > 0)) throw new RangeError(`cmac: clipsPerProcess must be a positive integer, got ${options.clipsPerProcess}`);
    if (!(Number.isInteger(this.o.worldSize) && this.o.worldSize > 0 && Number.isInteger(this.o.rank) && this.o.rank >= 0 && this.o.rank < this.o.worldSize)) {
      throw new RangeError(`cmac: need 0 <= rank < worldSize, got rank ${options.rank} of ${options.worldSize}`);
    }
    if (!(Number.isInteger(this.o.clipsPerVideo) && this.o.clipsPerVideo > 0)) throw new RangeError(`cmac: clipsPerVideo must be a positive integer, got ${options.clipsPerVideo}`);
    if (this.o.missingAudio !== 'skip' && this.o.missingAudio !== 'silence') throw new RangeError(`cmac: missingAudio must be 'skip' or 'silence', got '${String(options.missingAudio)}'`);
    this.geometry = geometryOf(options.clip);
    if (this.o.prefetchBytes < this.clipBytes) {
      throw new RangeError(`cmac: prefetchBytes ${this.o.prefetchBytes} is smaller than one clip (${this.clipBytes} bytes)`);
    }
    this.cur = { epoch: options.cursor?.epoch ?? 0, position: options.cursor?.position ?? 0 };
    if (options.cacheDir && mode === 'eval') this.cache = new ClipCache(options.cacheDir, { tag: `r${this.o.rank}` });
    if (options.trainCache && mode === 'train') {
      const tc: TrainCacheOptions = typeof options.trainCache === 'string' ? { dir: options.trainCache } : options.trainCache;
      if (typeof tc.dir !== 'string' || !tc.dir) throw new TypeError('cmac: trainCache needs a folder (trainCache: { dir })');
      const maxSeconds = tc.maxSeconds ?? 30;
      const scale = tc.scale ?? 1.15;
      if (!(maxSeconds > 0)) throw new RangeError(`cmac: trainCache.maxSeconds must be positive, got ${tc.maxSeconds}`);
      if (!(scale >= 1)) throw new RangeError(`cmac: trainCache.scale must be at least 1, got ${tc.scale}`);
      if (tc.maxBytes !== undefined && !(tc.maxBytes >= 0)) throw new RangeError(`cmac: trainCache.maxBytes must be >= 0, got ${tc.maxBytes}`);
      this.tc = { maxSeconds, scale };
      this.vcache = new VideoCache(tc.dir, {
        tag: `r${this.o.rank}`, shardBytes: tc.shardBytes, maxBytes: tc.maxBytes,
        onDamage: (detail) => {
          this.stats.cacheDamaged++;
          this.o.log?.(`train cache: ${detail}; that video is decoded again`);
        },
      });
    }
  }

  /** Bytes one clip holds while decoded: frames, plus the audio window widened by the largest time shift. */
  get clipBytes(): number {
    const g = this.geometry;
    return g.frames * g.size * g.size * 3 + (this.samples + 2 * this.shiftMargin) * 4;
  }

  private get samples(): number {
    return Math.round(this.geometry.audioSeconds * this.geometry.sampleRate);
  }

  private get shiftMargin(): number {
    if (this.o.mode !== 'train' || this.o.augment === false) return 0;
    const s = this.o.augment?.shift;
    return s === false ? 0 : Math.round((s ?? 0.1) * this.geometry.sampleRate);
  }

  /** The cursor to save: the next epoch and position this loader will produce. */
  get cursor(): LoaderCursor {
    return { ...this.cur };
  }

  /** Moves the loader to a saved cursor (not while iterating). */
  seek(cursor: LoaderCursor): void {
    if (this.running) throw new Error('cmac: cannot seek while the loader is iterating');
    this.cur = { epoch: cursor.epoch, position: cursor.position };
  }

  /** Lists the source (once). Throws a clear error when it lists nothing. */
  async init(): Promise<SampleRef[]> {
    if (this.refs) return this.refs;
    this.listing ??= this.o.source.list();
    const refs = await this.listing;
    for (const w of this.o.source.warnings ?? []) this.o.log?.(`warning: ${w}`);
    if (refs.length === 0) throw new Error(`cmac: ${this.o.source.description} has no samples (expected video files .mp4 .mkv .webm .avi .mov, or manifest rows)`);
    this.hasLabels = refs.some((r) => typeof r.label === 'number');
    this.refs = refs;
    return refs;
  }

  /** Class names from the source, when it has them (after init). */
  get classes(): string[] | undefined {
    return this.o.source.classes;
  }

  /**
   * This rank's clip order for an epoch: the sample index and clip number of
   * each position. Deterministic in (seed, epoch, rank, worldSize).
   */
  async order(epoch: number): Promise<{ index: number; clip: number }[]> {
    return (await this.units(epoch)).map((u) => ({ index: u.ref.index, clip: u.clip }));
  }

  /** Clips per epoch for this rank (before skips). */
  async length(): Promise<number> {
    return (await this.units(0)).length;
  }

  private async units(epoch: number): Promise<Unit[]> {
    const refs = await this.init();
    const all: Unit[] = [];
    for (const ref of refs) for (let c = 0; c < this.o.clipsPerVideo; c++) all.push({ ref, clip: c });
    if (this.o.shuffle) new Prng(mixSeed(this.o.seed, epoch, 0x5eed)).shuffle(all);
    const n = all.length;
    const w = this.o.worldSize;
    const r = this.o.rank;
    const a = Math.floor((r * n) / w);
    let b = Math.floor(((r + 1) * n) / w);
    if (this.o.evenShards) b = a + Math.floor(n / w);
    return all.slice(a, b);
  }

  /** Runs `epochs` epochs (default 1) from the cursor. */
  async *[Symbol.asyncIterator](): AsyncGenerator<LoaderBatch, void, undefined> {
    for (let e = 0; e < this.o.epochs; e++) yield* this.epoch();
  }

  /** The rest of the cursor's epoch; at its end the cursor moves to the next epoch. */
  async *epoch(): AsyncGenerator<LoaderBatch, void, undefined> {
    if (this.running) throw new Error('cmac: the loader is already iterating');
    this.running = true;
    const epoch = this.cur.epoch;
    this.vcache?.refresh();
    const units = await this.units(epoch).catch((e) => {
      this.running = false;
      throw e;
    });
    const g = this.geometry;
    const B = this.o.batchSize;
    const shard = this.o.worldSize > 1 ? ` on rank ${this.o.rank}/${this.o.worldSize}` : '';
    if (this.o.dropLast && this.cur.position === 0 && units.length > 0 && units.length < B) {
      // Not even every listed clip makes one batch: fail before decoding, not after endless empty epochs.
      this.running = false;
      throw new TooFewClipsError(this.o.source.description, units.length, true, B, shard);
    }
    const frameElems = g.frames * g.size * g.size * 3;
    const samples = this.samples;
    const clipBytes = this.clipBytes;
    const summary: EpochSummary = { epoch, clips: 0, batches: 0, skipped: {}, seconds: 0 };
    const t0 = Date.now();
    const ac = new AbortController();
    this.abort = ac;
    const results = new Map<number, Promise<Produced>>();
    let next = Math.min(this.cur.position, units.length);
    let inflight = 0;
    let failure: unknown;

    const pump = (): void => {
      while (!ac.signal.aborted && next < units.length && inflight < this.o.decoders && this.held + clipBytes <= this.o.prefetchBytes) {
        const room = Math.floor((this.o.prefetchBytes - this.held) / clipBytes);
        const n = Math.max(1, Math.min(this.o.clipsPerProcess, units.length - next, room));
        const first = next;
        next += n;
        inflight++;
        this.held += n * clipBytes;
        this.stats.peakBytes = Math.max(this.stats.peakBytes, this.held);
        const group = Array.from({ length: n }, (_, k) => ({ u: units[first + k], pos: first + k }));
        const gp = this.produceGroup(group, epoch, ac.signal).then(
          (rs) => {
            inflight--;
            for (const r of rs) if (!r.ok) this.held -= clipBytes;
            pump();
            return rs;
          },
          (err) => {
            inflight--;
            this.held -= n * clipBytes;
            failure ??= err;
            throw err;
          },
        );
        gp.catch(() => undefined);
        group.forEach((g, k) => {
          const p = gp.then((rs) => rs[k]);
          p.catch(() => undefined);
          results.set(g.pos, p);
        });
      }
    };

    let pos = next;
    const startPos = next;
    try {
      let batchRows: { video: Uint8Array; audio: Float32Array; meta: ClipMeta }[] = [];
      const emit = (rows: typeof batchRows): LoaderBatch => {
        const n = rows.length;
        const video = new Uint8Array(n * frameElems);
        const audio = new Float32Array(n * samples);
        rows.forEach((r, i) => {
          video.set(r.video, i * frameElems);
          audio.set(r.audio, i * samples);
        });
        const batch: LoaderBatch = {
          video: { data: video, shape: [n, g.frames, g.size, g.size, 3], dtype: 'uint8' },
          audio: { data: audio, shape: [n, samples], dtype: 'float32' },
          meta: rows.map((r) => r.meta),
          cursor: { epoch, position: pos },
        };
        if (this.hasLabels) batch.labels = { data: Int32Array.from(rows, (r) => r.meta.label ?? -1), shape: [n], dtype: 'int32' };
        return batch;
      };
      while (pos < units.length) {
        if (!results.has(pos)) pump();
        const p = results.get(pos);
        if (!p) throw new Error('cmac: loader internal error: clip not scheduled');
        const r = await p;
        results.delete(pos);
        pos++;
        if (r.ok) {
          this.held -= clipBytes;
          batchRows.push({ video: r.video, audio: r.audio, meta: r.meta });
          summary.clips++;
          pump();
        } else {
          const reason = r.error.reason;
          summary.skipped[reason] = (summary.skipped[reason] ?? 0) + 1;
          this.stats.skipped[reason] = (this.stats.skipped[reason] ?? 0) + 1;
          const { id, row } = units[pos - 1].ref;
          this.stats.badSamples[id] ??= reason;
          const logKey = `${row ?? id}\u0000${reason}`;
          if (!this.logged.has(logKey)) {
            this.logged.add(logKey);
            this.o.log?.(`skip ${id}${row ? ` (${row})` : ''}: ${r.error.message.startsWith(r.error.file) ? r.error.message.slice(r.error.file.length + 2) : r.error.message}`);
          }
        }
        if (batchRows.length === B) {
          const b = emit(batchRows);
          batchRows = [];
          this.cur = { epoch, position: pos };
          summary.batches++;
          this.stats.batches++;
          this.stats.clips += b.meta.length;
          yield b;
        }
      }
      if (batchRows.length > 0 && !this.o.dropLast) {
        const b = emit(batchRows);
        summary.batches++;
        this.stats.batches++;
        this.stats.clips += b.meta.length;
        this.cur = { epoch, position: pos };
        yield b;
      }
      if (this.o.dropLast && summary.batches === 0 && summary.clips > 0 && startPos === 0) {
        throw new TooFewClipsError(this.o.source.description, summary.clips, false, B, shard, `epoch ${epoch}: skipped ${countSkips(summary.skipped)}`);
      }
      if (summary.clips === 0 && units.length > 0 && startPos === 0) {
        throw new Error(
          `cmac: no usable clips in ${this.o.source.description}: all ${units.length} clip(s) of epoch ${epoch}` +
            `${this.o.worldSize > 1 ? ` on rank ${this.o.rank}/${this.o.worldSize}` : ''} were skipped (${countSkips(summary.skipped)}); ` +
            `first problem: ${Object.entries(this.stats.badSamples).slice(0, 1).map(([id, r]) => `${id}: ${r}`).join('') || 'none'}`,
        );
      }
      this.cur = { epoch: epoch + 1, position: 0 };
      summary.seconds = (Date.now() - t0) / 1000;
      this.stats.epochs.push(summary);
      const skipped = Object.values(summary.skipped).reduce((a, b) => a + (b ?? 0), 0);
      this.o.log?.(
        `epoch ${epoch}${this.o.worldSize > 1 ? ` rank ${this.o.rank}/${this.o.worldSize}` : ''}: ${summary.clips} clips in ${summary.batches} batches, ` +
          `skipped ${skipped} (${countSkips(summary.skipped)}), ${summary.seconds.toFixed(1)} s, ${(summary.clips / Math.max(summary.seconds, 1e-3)).toFixed(1)} clips/s`,
      );
    } finally {
      ac.abort();
      await Promise.allSettled([...results.values()]);
      for (const p of results.values()) {
        const r = await p.catch(() => undefined);
        if (r && r.ok) this.held -= clipBytes;
      }
      results.clear();
      await this.cache?.flush();
      this.running = false;
    }
    if (failure) throw failure;
  }

  /** Samples inside containers (tar members) come as bytes when the native decoder reads them (the train cache's fill needs files). */
  private inMemory(): boolean {
    return !this.vcache && decoderFor({ decoder: this.o.decoder, log: this.o.log }) === 'native';
  }

  private async probeCached(ref: SampleRef, file: string, bytes?: Uint8Array): Promise<ProbeInfo> {
    const hit = this.probes.get(ref.id);
    if (hit instanceof DataError) throw hit;
    if (hit) return { ...hit, file };
    try {
      const info = await probe(file, { timeoutMs: this.o.timeoutMs, decoder: this.o.decoder, audioStream: this.o.audioStream, threads: this.o.decoders, log: this.o.log, probeIndex: this.o.probeIndex, bytes });
      this.probes.set(ref.id, info);
      return info;
    } catch (e) {
      if (e instanceof DataError) {
        const err = e.file === ref.id ? e : new DataError(e.reason, ref.id, e.message.slice(e.file.length + 2));
        if (err.reason !== 'timeout') this.probes.set(ref.id, err);
        throw err;
      }
      throw e;
    }
  }

  /** What identifies a sample's bytes: size and mtime of a file, or its tar member. */
  private identOf(ref: SampleRef): unknown {
    let ident: unknown = ref.extra?.member ?? null;
    if (ref.path) {
      try {
        const st = fs.statSync(ref.path);
        ident = [st.size, st.mtimeMs];
      } catch {
        ident = null;
      }
    }
    return ident;
  }

  private cacheKeyOf(u: Unit): string {
    const ref = u.ref;
    return cacheKey(['clip-v1', ref.id, this.identOf(ref), ref.start ?? null, ref.end ?? null, u.clip, this.o.clipsPerVideo, this.geometry, this.o.missingAudio]);
  }

  /** Train-cache key of a video: its identity and what the cache holds of it (frame rate, audio rate, working size, cap). */
  private videoKeyOf(ref: SampleRef): string {
    const g = this.geometry;
    return cacheKey(['video-v1', ref.id, this.identOf(ref), g.fps, g.sampleRate, Math.ceil(g.size * this.tc!.scale), this.tc!.maxSeconds]);
  }

  private renamed(e: DataError, ref: SampleRef): DataError {
    return e.file === ref.id ? e : new DataError(e.reason, ref.id, e.message.startsWith(e.file) ? e.message.slice(e.file.length + 2) : e.message);
  }

  private baseMeta(u: Unit, epoch: number, position: number, plan: Pick<ClipPlan, 'start' | 'audioStart'>): ClipMeta {
    const ref = u.ref;
    const m: ClipMeta = { id: ref.id, index: ref.index, clip: u.clip, epoch, position, start: plan.start, audioStart: plan.audioStart, audioPad: { front: 0, back: 0 } };
    if (ref.label !== undefined) m.label = ref.label;
    if (ref.boxes !== undefined) m.boxes = ref.boxes;
    if (ref.extra !== undefined) m.extra = ref.extra;
    return m;
  }

  /** Everything before decoding: cache lookup, open, probe, audio policy, clip placement. */
  private async prepare(u: Unit, epoch: number, position: number): Promise<Prepared> {
    const bytes = this.clipBytes;
    const ref = u.ref;
    const g = this.geometry;
    const samples = this.samples;
    const known = this.probes.get(ref.id);
    if (known instanceof DataError) return { kind: 'done', r: { ok: false, error: known, bytes } };
    const rowError = this.rowErrors.get(ref.index);
    if (rowError) return { kind: 'done', r: { ok: false, error: rowError, bytes } };
    let key: string | undefined;
    if (this.cache) {
      key = this.cacheKeyOf(u);
      const hit = await this.cache.get(key, (detail, another) => {
        this.stats.cacheDamaged++;
        this.o.log?.(`clip cache: ${ref.id} clip ${u.clip}: ${detail}; ${another ? 'trying another copy' : 'decoding the clip again'}`);
      });
      if (hit && hit.video.length === g.frames * g.size * g.size * 3 && hit.audio.length === samples + 4) {
        this.stats.cacheHits++;
        const info = hit.audio.subarray(samples);
        const meta = this.baseMeta(u, epoch, position, { start: info[0], audioStart: info[1] });
        meta.audioPad = { front: info[2], back: info[3] };
        meta.cached = true;
        return { kind: 'done', r: { ok: true, video: hit.video, audio: hit.audio.slice(0, samples), meta, bytes } };
      }
    }
    let vkey: string | undefined;
    if (this.vcache) {
      // A cached video needs neither the file nor (with the probe kept in its index line) ffprobe.
      vkey = this.videoKeyOf(ref);
      const e = this.vcache.get(vkey);
      let info = known;
      if (e && !info && e.info) {
        info = { ...e.info, file: ref.path ?? ref.id };
        this.probes.set(ref.id, info);
      }
      if (e && info) {
        try {
          return { kind: 'decode', u, position, info, plan: this.planFor(u, epoch, info), vkey };
        } catch (err) {
          if (err instanceof DataError) return { kind: 'done', r: { ok: false, error: this.renamed(err, ref), bytes } };
          throw err;
        }
      }
    }
    let opened: OpenedSample | undefined;
    try {
      opened = await this.o.source.open(ref, { inMemory: this.inMemory() });
      const info = await this.probeCached(ref, opened.path, opened.bytes);
      return { kind: 'decode', u, position, opened, info, plan: this.planFor(u, epoch, info), key, vkey };
    } catch (e) {
      await opened?.release().catch(() => undefined);
      if (e instanceof DataError) return { kind: 'done', r: { ok: false, error: this.renamed(e, ref), bytes } };
      throw e;
    }
  }

  /** Audio policy and clip placement (throws DataError; probe-level errors are remembered). */
  private planFor(u: Unit, epoch: number, info: ProbeInfo): ClipPlan {
    const ref = u.ref;
    if (!info.audio && this.o.missingAudio === 'skip') {
      const err = new DataError('no_audio', ref.id, 'no audio stream (missingAudio: skip)');
      this.rowErrors.set(ref.index, err);
      throw err;
    }
    const rng = this.o.mode === 'train' ? new Prng(mixSeed(this.o.seed, epoch, ref.index, u.clip)) : undefined;
    try {
      return planClip(info, this.geometry, {
        mode: this.o.mode,
        rng,
        clipIndex: u.clip,
        clipsPerVideo: this.o.clipsPerVideo,
        window: ref.start !== undefined || ref.end !== undefined ? { start: ref.start, end: ref.end } : undefined,
        augment: this.o.augment,
      });
    } catch (e) {
      if (e instanceof DataError) this.rowErrors.set(ref.index, this.renamed(e, ref));
      throw e;
    }
  }

  private request(p: Decode): DecodeRequest {
    const g = this.geometry;
    const m = p.plan.shiftMargin;
    return {
      start: p.plan.start,
      frames: g.frames,
      fps: g.fps,
      width: g.size,
      height: g.size,
      crop: p.plan.crop,
      flip: p.plan.flip,
      jitter: p.plan.jitter,
      audio: { start: p.plan.audioStart - m / g.sampleRate, samples: this.samples + 2 * m, sampleRate: g.sampleRate },
      threads: this.o.threads,
    };
  }

  /** After decoding: audio augmentation, meta, cache. */
  private async finish(p: Decode, d: DecodedClip, epoch: number): Promise<Produced> {
    const samples = this.samples;
    const plan = p.plan;
    const m = plan.shiftMargin;
    const meta = this.baseMeta(p.u, epoch, p.position, plan);
    let audio: Float32Array;
    if (d.audio) {
      audio = applyAudioAugment(d.audio, samples, plan);
      meta.audioPad = {
        front: Math.max(0, Math.min(samples, d.audioPad.front - m - plan.shiftSamples)),
        back: Math.max(0, Math.min(samples, d.audioPad.back - m + plan.shiftSamples)),
      };
    } else {
      audio = new Float32Array(samples);
      meta.silent = true;
    }
    if (this.o.mode === 'train' && this.o.augment !== false) meta.augment = { crop: plan.crop, flip: plan.flip, jitter: plan.jitter, gain: plan.gain, shiftSamples: plan.shiftSamples };
    if (this.cache && p.key) {
      const stored = new Float32Array(samples + 4);
      stored.set(audio);
      stored.set([plan.start, plan.audioStart, meta.audioPad.front, meta.audioPad.back], samples);
      await this.cache.put(p.key, d.video, stored);
    }
    return { ok: true, video: d.video, audio, meta, bytes: this.clipBytes };
  }

  /**
   * Prepares a group of clips; with the train cache, cuts those it can from
   * cached videos (decoding missing videos into it first, one ffmpeg process
   * for the group); decodes the rest with one ffmpeg process; finishes each.
   */
  private async produceGroup(group: { u: Unit; pos: number }[], epoch: number, signal: AbortSignal): Promise<Produced[]> {
    const settled = await Promise.allSettled(group.map(({ u, pos }) => this.prepare(u, epoch, pos)));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      for (const s of settled) if (s.status === 'fulfilled' && s.value.kind === 'decode') await s.value.opened?.release().catch(() => undefined);
      throw failed.reason;
    }
    const preps = settled.map((s) => (s as PromiseFulfilledResult<Prepared>).value);
    const out: Produced[] = new Array(group.length);
    const decodes: { k: number; p: Decode }[] = [];
    preps.forEach((p, k) => {
      if (p.kind === 'done') out[k] = p.r;
      else decodes.push({ k, p });
    });
    try {
      const rest = this.vcache ? await this.fromVideoCache(decodes, out, epoch, signal) : decodes;
      const todo: { k: number; p: Decode }[] = [];
      for (const t of rest) {
        if (!t.p.opened) {
          try {
            t.p.opened = await this.o.source.open(t.p.u.ref, { inMemory: this.inMemory() });
          } catch (e) {
            if (!(e instanceof DataError)) throw e;
            out[t.k] = { ok: false, error: this.renamed(e, t.p.u.ref), bytes: this.clipBytes };
            continue;
          }
        }
        todo.push(t);
      }
      if (todo.length > 0) {
        this.stats.decodes += todo.length;
        const res = await decodeClips(
          todo.map(({ p }) => ({ file: p.opened!.path, bytes: p.opened!.bytes, info: p.info, req: this.request(p) })),
          { timeoutMs: this.o.timeoutMs, signal, decoder: this.o.decoder, audioStream: this.o.audioStream, threads: this.o.decoders, log: this.o.log },
        );
        for (let j = 0; j < todo.length; j++) {
          const { k, p } = todo[j];
          const r = res[j];
          out[k] = r instanceof DataError ? { ok: false, error: this.renamed(r, p.u.ref), bytes: this.clipBytes } : await this.finish(p, r, epoch);
        }
      }
    } finally {
      for (const { p } of decodes) await p.opened?.release().catch(() => undefined);
    }
    return out;
  }

  /** Rough bytes of a video's cache entry. */
  private entryEstimate(info: ProbeInfo): number {
    const g = this.geometry;
    const v = info.video!;
    const { width, height } = workingSize(v.width, v.height, g.size, this.tc!.scale);
    const secs = Math.min(info.duration, this.tc!.maxSeconds);
    return entryBytes(width, height, Math.ceil(secs * g.fps) + 1, info.audio ? Math.ceil(secs * g.sampleRate) : 0);
  }

  private canFill(p: Decode): boolean {
    if (!p.vkey || !p.info.video || this.fillFailed.has(p.vkey)) return false;
    const est = this.entryEstimate(p.info);
    if (!this.diskChecked) this.checkDisk(est);
    return this.vcache!.canAdd(est);
  }

  /**
   * Once, at the first video to cache: the cache's projected size (every
   * listed video like this one, capped by maxBytes) against the free disk;
   * one log line when it does not fit.
   */
  private checkDisk(est: number): void {
    this.diskChecked = true;
    const vc = this.vcache!;
    const videos = new Set((this.refs ?? []).map((r) => r.path ?? (r.extra?.member ? JSON.stringify(r.extra.member) : r.id))).size;
    const projected = Math.min(vc.maxBytes, videos * est);
    let free: number;
    try {
      const st = fs.statfsSync(vc.dir);
      free = Number(st.bavail) * Number(st.bsize);
    } catch {
      return;  // no statfs here: nothing to compare with
    }
    if (projected - vc.diskBytes > free) {
      this.o.log?.(`train cache: projected size ${humanBytes(projected)} (${videos} videos x ~${humanBytes(est)}) exceeds the free disk at ${vc.dir} ` +
        `(${humanBytes(free)} free, ${humanBytes(vc.diskBytes)} cached); once the disk is full the remaining videos decode per clip. ` +
        'Fix: trainCache.maxBytes, a smaller trainCache.maxSeconds or scale, or a bigger disk');
    }
  }

  /**
   * Train cache: serves the clips it can (out[k]), decoding videos not yet
   * cached into it; returns the clips left for the per-clip ffmpeg path
   * (video not cacheable, clip outside the cached part, decode failure: that
   * path then reports the failure with its usual reason).
   */
  private async fromVideoCache(decodes: { k: number; p: Decode }[], out: Produced[], epoch: number, signal: AbortSignal): Promise<{ k: number; p: Decode }[]> {
    const vc = this.vcache!;
    const todo: { k: number; p: Decode }[] = [];
    const hits: { k: number; p: Decode; e: VideoEntry }[] = [];
    const fills: { k: number; p: Decode }[] = [];
    for (const d of decodes) {
      const e = d.p.vkey ? vc.get(d.p.vkey) : undefined;
      if (e) hits.push({ ...d, e });
      else if (this.canFill(d.p)) fills.push(d);
      else todo.push(d);
    }
    if (fills.length > 0) {
      const entries = await this.fillVideos(fills.map((f) => f.p), signal);
      fills.forEach((f, i) => {
        const e = entries[i];
        if (e) hits.push({ ...f, e });
        else todo.push(f);
      });
    }
    hits.sort((a, b) => a.k - b.k);
    for (const h of hits) {
      let r = await this.cutClip(h.p, h.e, epoch, signal);
      if (r === 'damaged') {
        r = undefined;
        if (this.canFill(h.p)) {
          const [e2] = await this.fillVideos([h.p], signal);
          if (e2) {
            const r2 = await this.cutClip(h.p, e2, epoch, signal);
            if (r2 !== 'damaged') r = r2;
          }
        }
      }
      if (r) out[h.k] = r;
      else todo.push(h);
    }
    return todo.sort((a, b) => a.k - b.k);
  }

  /** Decodes whole videos into the train cache (one ffmpeg process); the new entry per video, or undefined. */
  private async fillVideos(ps: Decode[], signal: AbortSignal): Promise<(VideoEntry | undefined)[]> {
    const vc = this.vcache!;
    const g = this.geometry;
    const cap = this.tc!.maxSeconds;
    const result: (VideoEntry | undefined)[] = new Array(ps.length).fill(undefined);
    const jobs: { i: number; job: VideoJob; fill: ReturnType<VideoCache['begin']> }[] = [];
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i];
      if (!p.opened) {
        try {
          p.opened = await this.o.source.open(p.u.ref);
        } catch (e) {
          if (!(e instanceof DataError)) throw e;
          continue;
        }
      }
      const v = p.info.video!;
      const { width, height } = workingSize(v.width, v.height, g.size, this.tc!.scale);
      const full = p.info.duration <= cap;
      const fill = vc.begin(p.vkey!, width, height, Math.ceil(cap * g.fps) + 1, p.info.audio ? Math.ceil((cap + 1) * g.sampleRate) : 0);
      jobs.push({
        i,
        fill,
        job: {
          file: p.opened.path,
          info: p.info,
          fps: g.fps,
          width,
          height,
          maxSeconds: full ? undefined : cap,
          sampleRate: p.info.audio ? g.sampleRate : undefined,
          threads: this.o.threads,
          onVideo: (c) => fill.video(c),
          onAudio: (c) => fill.audioChunk(c),
          onReset: () => fill.reset(),
        },
      });
    }
    if (jobs.length === 0) return result;
    this.stats.decodes += jobs.length;
    this.stats.cacheFills += jobs.length;
    let res: (DataError | null)[];
    try {
      res = await decodeVideos(jobs.map((j) => j.job), { timeoutMs: this.o.timeoutMs, signal });
    } catch (e) {
      for (const j of jobs) j.fill.abort();
      throw e;
    }
    for (let k = 0; k < jobs.length; k++) {
      const { i, fill } = jobs[k];
      const p = ps[i];
      if (res[k]) {
        fill.abort();
        this.fillFailed.add(p.vkey!);
        continue;
      }
      const e = await fill.commit({ fps: g.fps, sampleRate: g.sampleRate, full: p.info.duration <= cap, info: p.info });
      if (!e) this.fillFailed.add(p.vkey!);
      result[i] = e;
    }
    if (vc.writeError && !this.logged.has('\u0000cache-write')) {
      this.logged.add('\u0000cache-write');
      this.o.log?.(`warning: train cache ${vc.dir} stopped adding videos: ${vc.writeError.message}`);
    }
    return result;
  }

  /**
   * Cuts a clip from a cached video: the same plan as the ffmpeg path, with
   * the first frame snapped down to the cache's frame grid (j0 / fps, frame j
   * being the source frame on screen at j / fps) and the audio window centred
   * on the snapped clip. Undefined when the clip is not inside the cached
   * frames (or audio); 'damaged' when a record fails its check (the entry is
   * dropped).
   */
  private async cutClip(p: Decode, e: VideoEntry, epoch: number, signal: AbortSignal): Promise<Produced | 'damaged' | undefined> {
    const g = this.geometry;
    const ref = p.u.ref;
    const T = g.frames;
    const F = g.fps;
    const clip = T / F;
    if (e.fps !== F) return undefined;
    const ws = Math.max(0, ref.start ?? 0);
    let j0 = Math.floor(p.plan.start * F + 1e-6);
    j0 = Math.max(j0, Math.ceil(ws * F - 1e-6));
    if (j0 + T > e.n) return undefined;
    const start = j0 / F;
    if (ref.end !== undefined && start + clip > ref.end + 1e-6) return undefined;
    const audioStart = start + clip / 2 - g.audioSeconds / 2;
    const samples = this.samples;
    const m = p.plan.shiftMargin;
    const first = Math.round((audioStart - m / g.sampleRate) * g.sampleRate) + m + p.plan.shiftSamples;
    const hasAudio = e.a > 0;
    if (!hasAudio && p.info.audio) return undefined;
    if (hasAudio && !e.full && first + samples > e.a) return undefined;
    let frames: { data: Uint8Array; stride: number };
    let audio: { pcm: Float32Array; front: number; back: number } | undefined;
    try {
      if (signal.aborted) throw new Error('aborted');
      frames = await this.vcache!.readFrames(e, j0, T);
      if (hasAudio) audio = await this.vcache!.readAudio(e, first, samples);
    } catch (err) {
      if (signal.aborted) throw new Error('cmac: decode aborted');
      this.vcache!.reject(e);
      this.stats.cacheDamaged++;
      this.o.log?.(`train cache: ${ref.id}: ${(err as Error).message}; decoding the video again`);
      return 'damaged';
    }
    const v = p.info.video!;
    const sx = e.w / v.width;
    const sy = e.h / v.height;
    const c = p.plan.crop;
    const video = augmentFrames(frames.data, 0, frames.stride, T, e.w, e.h, {
      crop: { x: c.x * sx, y: c.y * sy, w: c.w * sx, h: c.h * sy },
      size: g.size,
      flip: p.plan.flip,
      jitter: p.plan.jitter,
    });
    const meta = this.baseMeta(p.u, epoch, p.position, { start, audioStart });
    let pcm: Float32Array;
    if (audio) {
      pcm = audio.pcm;
      const gain = p.plan.gain;
      if (gain !== 1) for (let i = 0; i < pcm.length; i++) pcm[i] *= gain;
      meta.audioPad = { front: audio.front, back: audio.back };
    } else {
      pcm = new Float32Array(samples);
      meta.silent = true;
    }
    if (this.o.augment !== false) {
      const plan = p.plan;
      meta.augment = { crop: plan.crop, flip: plan.flip, jitter: plan.jitter, gain: plan.gain, shiftSamples: plan.shiftSamples };
    }
    meta.cached = true;
    this.stats.cacheHits++;
    return { ok: true, video, audio: pcm, meta, bytes: this.clipBytes };
  }

  /**
   * Stops decoders still running for an iteration that was left without
   * finishing (e.g. a training loop that stopped at its step count), waits for
   * cache writes and frees the source's temporary files.
   */
  async close(): Promise<void> {
    this.abort?.abort();
    await this.cache?.flush();
    await this.vcache?.close();
    await this.o.source.close?.();
  }
}

/** Shorthand for `new ClipLoader(options)`. */
export function createLoader(options: LoaderOptions): ClipLoader {
  return new ClipLoader(options);
}

/** Bytes as `12.3 GB` (decimal units). */
function humanBytes(n: number): string {
  const units = ['B', 'kB', 'MB', 'GB', 'TB', 'PB'];
  let u = 0;
  while (n >= 1000 && u < units.length - 1) {
    n /= 1000;
    u++;
  }
  return `${u === 0 ? n : n.toFixed(1)} ${units[u]}`;
}
