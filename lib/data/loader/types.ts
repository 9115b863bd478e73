// What the loader hands out (batches, per-clip meta, statistics) and the
// records its parts pass each other.
import type { Tensor } from '../../tensor';
import type { ClipPlan } from '../augment';
import type { DataError, SkipReason } from '../errors';
import type { ProbeInfo } from '../ffmpeg';
import type { OpenedSample, SampleRef } from '../sources';
import type { LoaderCursor } from './options';

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
  /** Decodes run (clips, plus whole videos decoded into the train cache) and clips served from a cache. */
  decodes: number;
  cacheHits: number;
  /** Train cache: videos decoded into it; either cache: entries (or index lines) found damaged, never returned (decoded again). */
  cacheFills: number;
  cacheDamaged: number;
  /** One entry per finished epoch. */
  epochs: EpochSummary[];
}

/** Empty statistics. */
export function newStats(): LoaderStats {
  return {
    clips: 0,
    batches: 0,
    skipped: {},
    badSamples: {},
    peakBytes: 0,
    decodes: 0,
    cacheHits: 0,
    cacheFills: 0,
    cacheDamaged: 0,
    epochs: [],
  };
}

/** One clip of the epoch's order: a sample and its clip number. */
export interface Unit {
  ref: SampleRef;
  clip: number;
}

/** A clip ready to decode: where it is in the order, its probe and its plan. */
export interface Decode {
  kind: 'decode';
  u: Unit;
  position: number;
  /** Undefined when prepared from a train-cache entry without opening the sample. */
  opened?: OpenedSample;
  info: ProbeInfo;
  plan: ClipPlan;
  /** Clip-cache key (eval `cacheDir`). */
  key?: string;
  /** Train-cache key of the video. */
  vkey?: string;
}

/** A clip ready to decode, or already settled (a cache hit, a known bad sample). */
export type Prepared = { kind: 'done'; r: Produced } | Decode;

/** A settled clip: its data, or why it is skipped; `bytes` it counts against prefetchBytes. */
export type Produced =
  { ok: true; video: Uint8Array; audio: Float32Array; meta: ClipMeta; bytes: number } | { ok: false; error: DataError; bytes: number };
