// The loader's options: what each means, their defaults and checks, and the
// sizes that follow from the clip geometry (bytes per clip, audio samples).
import { checkOptionKeys, keysOf } from '../../options';
import { clipShapes, type SizePreset } from '../../presets';
import type { AugmentOptions, ClipGeometry } from '../augment';
import type { DecoderKind } from '../decode';
import type { Source } from '../sources';
import type { TrainCacheOptions } from '../videocache';

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
  /** A probe index file (lib/data/probeindex.ts): probes keyed by path + size + mtime survive the run. */
  probeIndex?: string;
}

const loaderOptionKeys = keysOf<LoaderOptions>()([
  'source',
  'batchSize',
  'clip',
  'mode',
  'augment',
  'clipsPerVideo',
  'seed',
  'shuffle',
  'dropLast',
  'decoders',
  'clipsPerProcess',
  'prefetchBytes',
  'rank',
  'worldSize',
  'evenShards',
  'missingAudio',
  'cursor',
  'epochs',
  'log',
  'cacheDir',
  'trainCache',
  'timeoutMs',
  'threads',
  'decoder',
  'audioStream',
  'probeIndex',
]);

/** The options with their defaults filled in. */
export type ResolvedOptions = Required<
  Pick<
    LoaderOptions,
    | 'batchSize'
    | 'mode'
    | 'seed'
    | 'shuffle'
    | 'dropLast'
    | 'decoders'
    | 'prefetchBytes'
    | 'rank'
    | 'worldSize'
    | 'missingAudio'
    | 'epochs'
    | 'timeoutMs'
    | 'threads'
    | 'clipsPerVideo'
    | 'clipsPerProcess'
  >
> &
  LoaderOptions;

/** What the train cache keeps of a video, and where (LoaderOptions.trainCache, checked, with defaults). */
export type TrainCacheSettings = TrainCacheOptions & { maxSeconds: number; scale: number };

/** Sizes that follow from the geometry and the audio shift. */
export interface ClipSizes {
  /** Audio samples per clip. */
  samples: number;
  /** Largest audio shift in samples: the decoded audio window is this much wider on each side. */
  shiftMargin: number;
  /** Bytes of one clip's frames. */
  frameBytes: number;
  /** Bytes one clip holds while decoded: frames, plus the audio window widened by the largest shift. */
  clipBytes: number;
}

function positiveInt(name: string, v: number, given: unknown): void {
  if (!(Number.isInteger(v) && v > 0)) throw new RangeError(`cmac: ${name} must be a positive integer, got ${String(given)}`);
}

/** Checks the options (names the bad one and its value) and fills in the defaults. */
export function resolveOptions(options: LoaderOptions): ResolvedOptions {
  checkOptionKeys(options, loaderOptionKeys, 'createLoader()');
  const mode = options.mode ?? 'train';
  const o: ResolvedOptions = {
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
    clipsPerVideo: mode === 'eval' ? (options.clipsPerVideo ?? 1) : 1,
  };
  if (!options.source) throw new TypeError('cmac: loader needs a source');
  positiveInt('batchSize', o.batchSize, options.batchSize);
  positiveInt('decoders', o.decoders, options.decoders);
  positiveInt('clipsPerProcess', o.clipsPerProcess, options.clipsPerProcess);
  if (!(Number.isInteger(o.worldSize) && o.worldSize > 0 && Number.isInteger(o.rank) && o.rank >= 0 && o.rank < o.worldSize)) {
    throw new RangeError(`cmac: need 0 <= rank < worldSize, got rank ${options.rank} of ${options.worldSize}`);
  }
  positiveInt('clipsPerVideo', o.clipsPerVideo, options.clipsPerVideo);
  if (o.missingAudio !== 'skip' && o.missingAudio !== 'silence')
    throw new RangeError(`cmac: missingAudio must be 'skip' or 'silence', got '${String(options.missingAudio)}'`);
  return o;
}

/** The clip geometry of a preset name or explicit fields (over the `paper` preset). */
export function geometryOf(c: LoaderOptions['clip']): ClipGeometry {
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

/** Sizes of one clip; checks that prefetchBytes holds one. */
export function clipSizes(g: ClipGeometry, o: ResolvedOptions): ClipSizes {
  const samples = Math.round(g.audioSeconds * g.sampleRate);
  let shiftMargin = 0;
  if (o.mode === 'train' && o.augment !== false) {
    const s = o.augment?.shift;
    shiftMargin = s === false ? 0 : Math.round((s ?? 0.1) * g.sampleRate);
  }
  const frameBytes = g.frames * g.size * g.size * 3;
  const clipBytes = frameBytes + (samples + 2 * shiftMargin) * 4;
  if (o.prefetchBytes < clipBytes)
    throw new RangeError(`cmac: prefetchBytes ${o.prefetchBytes} is smaller than one clip (${clipBytes} bytes)`);
  return { samples, shiftMargin, frameBytes, clipBytes };
}

/** The train cache's settings (train mode with `trainCache` only), checked. */
export function trainCacheSettings(o: ResolvedOptions): TrainCacheSettings | undefined {
  if (!o.trainCache || o.mode !== 'train') return undefined;
  const tc: TrainCacheOptions = typeof o.trainCache === 'string' ? { dir: o.trainCache } : o.trainCache;
  if (typeof tc.dir !== 'string' || !tc.dir) throw new TypeError('cmac: trainCache needs a folder (trainCache: { dir })');
  const maxSeconds = tc.maxSeconds ?? 30;
  const scale = tc.scale ?? 1.15;
  if (!(maxSeconds > 0)) throw new RangeError(`cmac: trainCache.maxSeconds must be positive, got ${tc.maxSeconds}`);
  if (!(scale >= 1)) throw new RangeError(`cmac: trainCache.scale must be at least 1, got ${tc.scale}`);
  if (tc.maxBytes !== undefined && !(tc.maxBytes >= 0)) throw new RangeError(`cmac: trainCache.maxBytes must be >= 0, got ${tc.maxBytes}`);
  return { ...tc, maxSeconds, scale };
}
