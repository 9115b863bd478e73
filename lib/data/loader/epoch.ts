// The parts of one epoch: the prefetcher that runs decodes ahead of the
// consumer within `decoders` groups in flight and the `prefetchBytes` bound,
// the rows of the batch being filled, and the epoch's tally (skips, their
// log lines, the summary and the checks that an epoch gave clips at all).
import type { ClipGeometry } from '../augment';
import { DataError, TooFewClipsError, skipReasons, type SkipReason } from '../errors';
import type { SampleRef } from '../sources';
import type { ClipSizes, LoaderCursor } from './options';
import type { ClipMeta, EpochSummary, LoaderBatch, LoaderStats, Produced, Unit } from './types';

/** Produces a group of consecutive clips (their positions in the order). */
export type ProduceGroup = (group: { u: Unit; pos: number }[], signal: AbortSignal) => Promise<Produced[]>;

/**
 * Runs groups of up to `clipsPerProcess` consecutive clips ahead of the
 * consumer: at most `decoders` groups at once, and only while the bytes held
 * (clips in flight, reserved at launch, plus settled clips not yet taken)
 * stay within `prefetchBytes`. Clips are taken strictly in order, so batches
 * never depend on which group finishes first.
 */
export class Prefetcher {
  /** The first error of a group (a rejected produce: abort, no decoder). */
  failure: unknown;
  private readonly results = new Map<number, Promise<Produced>>();
  private readonly ac = new AbortController();
  private next: number;
  private inflight = 0;
  private held = 0;

  constructor(
    private readonly units: readonly Unit[],
    start: number,
    private readonly produce: ProduceGroup,
    private readonly o: { decoders: number; clipsPerProcess: number; prefetchBytes: number; clipBytes: number },
    private readonly stats: LoaderStats,
  ) {
    this.next = start;
  }

  /** Launches groups while there is room (decoders and bytes). */
  private pump(): void {
    const { decoders, clipsPerProcess, prefetchBytes, clipBytes } = this.o;
    const units = this.units;
    while (!this.ac.signal.aborted && this.next < units.length && this.inflight < decoders && this.held + clipBytes <= prefetchBytes) {
      const room = Math.floor((prefetchBytes - this.held) / clipBytes);
      const n = Math.max(1, Math.min(clipsPerProcess, units.length - this.next, room));
      const first = this.next;
      this.next += n;
      this.inflight++;
      this.held += n * clipBytes;
      this.stats.peakBytes = Math.max(this.stats.peakBytes, this.held);
      const group = Array.from({ length: n }, (_, k) => ({ u: units[first + k], pos: first + k }));
      const gp = this.produce(group, this.ac.signal).then(
        (rs) => {
          this.inflight--;
          for (const r of rs) if (!r.ok) this.held -= clipBytes;
          this.pump();
          return rs;
        },
        (err) => {
          this.inflight--;
          this.held -= n * clipBytes;
          this.failure ??= err;
          throw err;
        },
      );
      gp.catch(() => undefined);
      group.forEach((g, k) => {
        const p = gp.then((rs) => rs[k]);
        p.catch(() => undefined);
        this.results.set(g.pos, p);
      });
    }
  }

  /** The settled clip at `pos` (launching it when not yet launched); a delivered clip's bytes are freed. */
  async take(pos: number): Promise<Produced> {
    if (!this.results.has(pos)) this.pump();
    const p = this.results.get(pos);
    if (!p) throw new Error('cmac: loader internal error: clip not scheduled');
    const r = await p;
    this.results.delete(pos);
    if (r.ok) {
      this.held -= this.o.clipBytes;
      this.pump();
    }
    return r;
  }

  /** Aborts what runs (without waiting for it). */
  abort(): void {
    this.ac.abort();
  }

  /** Aborts what runs and waits for it to settle (clips not taken are dropped). */
  async stop(): Promise<void> {
    this.ac.abort();
    await Promise.allSettled([...this.results.values()]);
    for (const p of this.results.values()) {
      const r = await p.catch(() => undefined);
      if (r && r.ok) this.held -= this.o.clipBytes;
    }
    this.results.clear();
  }
}

/** The clips of the batch being filled, copied into one video and one audio buffer when it is handed out. */
export class BatchRows {
  private rows: { video: Uint8Array; audio: Float32Array; meta: ClipMeta }[] = [];

  constructor(
    private readonly g: ClipGeometry,
    private readonly sizes: ClipSizes,
    private readonly labels: boolean,
  ) {}

  get length(): number {
    return this.rows.length;
  }

  add(r: Produced & { ok: true }): void {
    this.rows.push({ video: r.video, audio: r.audio, meta: r.meta });
  }

  /** The batch of the rows so far (emptied), with the cursor after it. */
  take(cursor: LoaderCursor): LoaderBatch {
    const { g, sizes } = this;
    const rows = this.rows;
    this.rows = [];
    const n = rows.length;
    const samples = sizes.samples;
    const video = new Uint8Array(n * sizes.frameBytes);
    const audio = new Float32Array(n * samples);
    rows.forEach((r, i) => {
      video.set(r.video, i * sizes.frameBytes);
      audio.set(r.audio, i * samples);
    });
    const batch: LoaderBatch = {
      video: { data: video, shape: [n, g.frames, g.size, g.size, 3], dtype: 'uint8' },
      audio: { data: audio, shape: [n, samples], dtype: 'float32' },
      meta: rows.map((r) => r.meta),
      cursor,
    };
    if (this.labels) batch.labels = { data: Int32Array.from(rows, (r) => r.meta.label ?? -1), shape: [n], dtype: 'int32' };
    return batch;
  }
}

export function countSkips(s: Partial<Record<SkipReason, number>>): string {
  const parts = skipReasons.filter((r) => s[r]).map((r) => `${r} ${s[r]}`);
  return parts.length ? parts.join(', ') : 'none';
}

/** ' on rank r/w' for messages (empty with one rank). */
export function shardNote(ranks: string): string {
  return ranks ? ` on rank ${ranks}` : '';
}

/** What the loader's epoch tally needs to know about it. */
export interface TallyContext {
  stats: LoaderStats;
  description: string;
  batchSize: number;
  dropLast: boolean;
  /** 'r/w' with several ranks, else ''. */
  ranks: string;
  log?: (line: string) => void;
  logOnce(key: string, line: string): void;
}

/** One epoch's counts: clips, batches and skips (each bad sample logged once per process). */
export class EpochTally {
  readonly summary: EpochSummary;
  private readonly t0 = Date.now();

  constructor(
    epoch: number,
    private readonly c: TallyContext,
  ) {
    this.summary = { epoch, clips: 0, batches: 0, skipped: {}, seconds: 0 };
  }

  /** A clip that goes into a batch. */
  clip(): void {
    this.summary.clips++;
  }

  /** A skipped clip: counted by reason, its sample remembered, one log line per sample row and reason. */
  skip(ref: SampleRef, error: DataError): void {
    const reason = error.reason;
    const { summary, c } = this;
    summary.skipped[reason] = (summary.skipped[reason] ?? 0) + 1;
    c.stats.skipped[reason] = (c.stats.skipped[reason] ?? 0) + 1;
    const { id, row } = ref;
    c.stats.badSamples[id] ??= reason;
    const detail = error.message.startsWith(error.file) ? error.message.slice(error.file.length + 2) : error.message;
    c.logOnce(`${row ?? id}\u0000${reason}`, `skip ${id}${row ? ` (${row})` : ''}: ${detail}`);
  }

  /** A batch handed out. */
  batch(b: LoaderBatch): void {
    this.summary.batches++;
    this.c.stats.batches++;
    this.c.stats.clips += b.meta.length;
  }

  /**
   * At the end of an epoch that started at its beginning: fails when the
   * epoch gave no batch (dropLast) or no clip at all, naming why.
   */
  check(units: number, fromStart: boolean): void {
    const { summary: s, c } = this;
    if (!fromStart) return;
    const shard = shardNote(c.ranks);
    if (c.dropLast && s.batches === 0 && s.clips > 0) {
      throw new TooFewClipsError(c.description, s.clips, false, c.batchSize, shard, `epoch ${s.epoch}: skipped ${countSkips(s.skipped)}`);
    }
    if (s.clips === 0 && units > 0) {
      throw new Error(
        `cmac: no usable clips in ${c.description}: all ${units} clip(s) of epoch ${s.epoch}${shard} were skipped (${countSkips(s.skipped)}); ` +
          `first problem: ${
            Object.entries(c.stats.badSamples)
              .slice(0, 1)
              .map(([id, r]) => `${id}: ${r}`)
              .join('') || 'none'
          }`,
      );
    }
  }

  /** Records the finished epoch in the stats and logs its summary line. */
  close(): void {
    const { summary: s, c } = this;
    s.seconds = (Date.now() - this.t0) / 1000;
    c.stats.epochs.push(s);
    const skipped = Object.values(s.skipped).reduce((a, b) => a + (b ?? 0), 0);
    c.log?.(
      `epoch ${s.epoch}${c.ranks ? ` rank ${c.ranks}` : ''}: ${s.clips} clips in ${s.batches} batches, ` +
        `skipped ${skipped} (${countSkips(s.skipped)}), ${s.seconds.toFixed(1)} s, ${(s.clips / Math.max(s.seconds, 1e-3)).toFixed(1)} clips/s`,
    );
  }
}
