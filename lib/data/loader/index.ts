// The clip loader: turns a Source into batches { video, audio, labels?, meta }
// with decodes run ahead within a byte bound (backpressure), a deterministic
// order under a seed, epoch shuffling, rank sharding and a resumable cursor.
// Its parts, one job each:
//   options.ts     options, defaults, checks, clip sizes
//   order.ts       the clip order of an epoch (shuffle, rank slice)
//   epoch.ts       prefetching ahead in order, batch rows, the epoch tally
//   produce.ts     a group of clips -> settled clips (probe, plan, decode)
//   traincache.ts  clips cut from the decoded-video cache (trainCache)
//   clip.ts        clip meta, audio shift/gain and the augmentation record
//   keys.ts        cache keys of clips and videos
// No native code here (lib/data/decode.ts loads the decoder).
import { ClipCache } from '../cache';
import type { ClipGeometry } from '../augment';
import { TooFewClipsError } from '../errors';
import type { SampleRef } from '../sources';
import { BatchRows, EpochTally, Prefetcher, shardNote } from './epoch';
import {
  clipSizes,
  geometryOf,
  resolveOptions,
  trainCacheSettings,
  type ClipSizes,
  type LoaderCursor,
  type LoaderOptions,
  type ResolvedOptions,
} from './options';
import { epochOrder } from './order';
import { ClipProducer } from './produce';
import { TrainCacheClips } from './traincache';
import { newStats, type LoaderBatch, type LoaderStats, type Unit } from './types';

export type { LoaderCursor, LoaderOptions } from './options';
export type { ClipMeta, EpochSummary, LoaderBatch, LoaderStats } from './types';

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
  readonly stats: LoaderStats = newStats();
  private readonly o: ResolvedOptions;
  private readonly sizes: ClipSizes;
  private readonly clipCache?: ClipCache;
  private readonly trainCache?: TrainCacheClips;
  private readonly producer: ClipProducer;
  private refs?: SampleRef[];
  private listing?: Promise<SampleRef[]>;
  private hasLabels = false;
  private readonly logged = new Set<string>();
  private cur: LoaderCursor;
  private running = false;
  private ahead?: Prefetcher;

  constructor(options: LoaderOptions) {
    const o = resolveOptions(options);
    this.o = o;
    this.geometry = geometryOf(options.clip);
    this.sizes = clipSizes(this.geometry, o);
    this.cur = { epoch: options.cursor?.epoch ?? 0, position: options.cursor?.position ?? 0 };
    if (options.cacheDir && o.mode === 'eval') this.clipCache = new ClipCache(options.cacheDir, { tag: `r${o.rank}` });
    const tc = trainCacheSettings(o);
    const shared = { o, geometry: this.geometry, sizes: this.sizes, stats: this.stats };
    if (tc) this.trainCache = new TrainCacheClips(tc, { ...shared, logOnce: (k, l) => this.logOnce(k, l), listed: () => this.refs });
    this.producer = new ClipProducer({ ...shared, clipCache: this.clipCache, trainCache: this.trainCache });
  }

  /** Bytes one clip holds while decoded: frames, plus the audio window widened by the largest time shift. */
  get clipBytes(): number {
    return this.sizes.clipBytes;
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
    if (refs.length === 0)
      throw new Error(
        `cmac: ${this.o.source.description} has no samples (expected video files .mp4 .mkv .webm .avi .mov, or manifest rows)`,
      );
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
    return epochOrder(await this.init(), this.o, epoch);
  }

  private logOnce(key: string, line: string): void {
    if (this.logged.has(key)) return;
    this.logged.add(key);
    this.o.log?.(line);
  }

  /** Runs `epochs` epochs (default 1) from the cursor. */
  async *[Symbol.asyncIterator](): AsyncGenerator<LoaderBatch, void, undefined> {
    for (let e = 0; e < this.o.epochs; e++) yield* this.epoch();
  }

  /** The rest of the cursor's epoch; at its end the cursor moves to the next epoch. */
  async *epoch(): AsyncGenerator<LoaderBatch, void, undefined> {
    if (this.running) throw new Error('cmac: the loader is already iterating');
    this.running = true;
    try {
      yield* this.runEpoch();
    } finally {
      this.running = false;
    }
  }

  private async *runEpoch(): AsyncGenerator<LoaderBatch, void, undefined> {
    const o = this.o;
    const epoch = this.cur.epoch;
    this.trainCache?.refresh();
    const units = await this.units(epoch);
    const ranks = o.worldSize > 1 ? `${o.rank}/${o.worldSize}` : '';
    if (o.dropLast && this.cur.position === 0 && units.length > 0 && units.length < o.batchSize) {
      // Not even every listed clip makes one batch: fail before decoding, not after endless empty epochs.
      throw new TooFewClipsError(o.source.description, units.length, true, o.batchSize, shardNote(ranks));
    }
    const start = Math.min(this.cur.position, units.length);
    const tally = new EpochTally(epoch, {
      stats: this.stats,
      description: o.source.description,
      batchSize: o.batchSize,
      dropLast: o.dropLast,
      ranks,
      log: o.log,
      logOnce: (k, l) => this.logOnce(k, l),
    });
    const ahead = new Prefetcher(
      units,
      start,
      (group, signal) => this.producer.produceGroup(group, epoch, signal),
      { ...o, clipBytes: this.sizes.clipBytes },
      this.stats,
    );
    this.ahead = ahead;
    const rows = new BatchRows(this.geometry, this.sizes, this.hasLabels);
    const deliver = (position: number): LoaderBatch => {
      const b = rows.take({ epoch, position });
      this.cur = { epoch, position };
      tally.batch(b);
      return b;
    };
    try {
      for (let pos = start; pos < units.length;) {
        const r = await ahead.take(pos);
        pos++;
        if (r.ok) {
          rows.add(r);
          tally.clip();
        } else tally.skip(units[pos - 1].ref, r.error);
        if (rows.length === o.batchSize) yield deliver(pos);
      }
      if (rows.length > 0 && !o.dropLast) yield deliver(units.length);
      tally.check(units.length, start === 0);
      this.cur = { epoch: epoch + 1, position: 0 };
      tally.close();
    } finally {
      await ahead.stop();
      await this.clipCache?.flush();
    }
    if (ahead.failure) throw ahead.failure;
  }

  /**
   * Stops decoders still running for an iteration that was left without
   * finishing (e.g. a training loop that stopped at its step count), waits for
   * cache writes and frees the source's temporary files.
   */
  async close(): Promise<void> {
    this.ahead?.abort();
    await this.clipCache?.flush();
    await this.trainCache?.close();
    await this.o.source.close?.();
  }
}

/** Shorthand for `new ClipLoader(options)`. */
export function createLoader(options: LoaderOptions): ClipLoader {
  return new ClipLoader(options);
}
