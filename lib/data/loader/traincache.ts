// The loader's side of the train cache (LoaderOptions.trainCache): serves
// the clips of a group it can cut from cached videos, decoding videos not yet
// cached into it first (one decodeVideos call for the group: one batch on the
// native pool, or one ffmpeg process on the CLI path); the rest go to
// the per-clip decode path. The cache files themselves: lib/data/videocache.ts;
// cutting in JS: lib/data/frames.ts.
import * as fs from 'fs';
import type { ClipGeometry } from '../augment';
import { DataError } from '../errors';
import { decodeVideos } from '../decode';
import type { ProbeInfo, VideoJob } from '../ffmpeg';
import { augmentFrames, workingSize } from '../frames';
import type { SampleRef } from '../sources';
import { VideoCache, entryBytes, type VideoEntry } from '../videocache';
import { baseMeta, finishClip } from './clip';
import { videoKey } from './keys';
import type { ClipSizes, ResolvedOptions, TrainCacheSettings } from './options';
import type { Decode, LoaderStats, Produced } from './types';

/** A clip of a group waiting for its result (k: its place in the group). */
export interface Pending {
  k: number;
  p: Decode;
}

export interface TrainCacheDeps {
  o: ResolvedOptions;
  geometry: ClipGeometry;
  sizes: ClipSizes;
  stats: LoaderStats;
  /** Logs a line once per process and key. */
  logOnce(key: string, line: string): void;
  /** The listed samples (for the projected size), once listed. */
  listed(): readonly SampleRef[] | undefined;
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

export class TrainCacheClips {
  readonly cache: VideoCache;
  /** Train-cache keys whose whole-video decode failed (their clips use the per-clip path). */
  private readonly fillFailed = new Set<string>();
  private diskChecked = false;

  constructor(
    private readonly tc: TrainCacheSettings,
    private readonly d: TrainCacheDeps,
  ) {
    this.cache = new VideoCache(tc.dir, {
      tag: `r${d.o.rank}`,
      shardBytes: tc.shardBytes,
      maxBytes: tc.maxBytes,
      onDamage: (detail) => {
        d.stats.cacheDamaged++;
        d.o.log?.(`train cache: ${detail}; that video is decoded again`);
      },
    });
  }

  /** A video's key and its entry when cached. */
  lookup(ref: SampleRef): { vkey: string; entry?: VideoEntry } {
    const vkey = videoKey(ref, this.d.geometry, this.tc);
    return { vkey, entry: this.cache.get(vkey) };
  }

  /**
   * Serves the clips it can (out[k]), decoding videos not yet cached into
   * it; returns the clips left for the per-clip path (video not cacheable,
   * clip outside the cached part, decode failure: that path then reports the
   * failure with its usual reason).
   */
  async serve(decodes: Pending[], out: Produced[], epoch: number, signal: AbortSignal): Promise<Pending[]> {
    const todo: Pending[] = [];
    const hits: (Pending & { e: VideoEntry })[] = [];
    const fills: Pending[] = [];
    for (const d of decodes) {
      const e = d.p.vkey ? this.cache.get(d.p.vkey) : undefined;
      if (e) hits.push({ ...d, e });
      else if (this.canFill(d.p)) fills.push(d);
      else todo.push(d);
    }
    if (fills.length > 0) {
      const entries = await this.fill(
        fills.map((f) => f.p),
        signal,
      );
      fills.forEach((f, i) => {
        const e = entries[i];
        if (e) hits.push({ ...f, e });
        else todo.push(f);
      });
    }
    hits.sort((a, b) => a.k - b.k);
    for (const h of hits) {
      let r = await this.cut(h.p, h.e, epoch, signal);
      if (r === 'damaged') r = await this.refill(h.p, epoch, signal);
      if (r) out[h.k] = r;
      else todo.push(h);
    }
    return todo.sort((a, b) => a.k - b.k);
  }

  /** After a damaged entry: decode the video again and cut the clip from the new entry. */
  private async refill(p: Decode, epoch: number, signal: AbortSignal): Promise<Produced | undefined> {
    if (!this.canFill(p)) return undefined;
    const [e] = await this.fill([p], signal);
    if (!e) return undefined;
    const r = await this.cut(p, e, epoch, signal);
    return r === 'damaged' ? undefined : r;
  }

  /** Rough bytes of a video's cache entry. */
  private estimate(info: ProbeInfo): number {
    const g = this.d.geometry;
    const v = info.video!;
    const { width, height } = workingSize(v.width, v.height, g.size, this.tc.scale);
    const secs = Math.min(info.duration, this.tc.maxSeconds);
    return entryBytes(width, height, Math.ceil(secs * g.fps) + 1, info.audio ? Math.ceil(secs * g.sampleRate) : 0);
  }

  private canFill(p: Decode): boolean {
    if (!p.vkey || !p.info.video || this.fillFailed.has(p.vkey)) return false;
    const est = this.estimate(p.info);
    if (!this.diskChecked) this.checkDisk(est);
    return this.cache.canAdd(est);
  }

  /**
   * Once, at the first video to cache: the cache's projected size (every
   * listed video like this one, capped by maxBytes) against the free disk;
   * one log line when it does not fit.
   */
  private checkDisk(est: number): void {
    this.diskChecked = true;
    const vc = this.cache;
    const videos = new Set((this.d.listed() ?? []).map((r) => r.path ?? (r.extra?.member ? JSON.stringify(r.extra.member) : r.id))).size;
    const projected = Math.min(vc.maxBytes, videos * est);
    let free: number;
    try {
      const st = fs.statfsSync(vc.dir);
      free = Number(st.bavail) * Number(st.bsize);
    } catch {
      return; // no statfs here: nothing to compare with
    }
    if (projected - vc.diskBytes > free) {
      this.d.o.log?.(
        `train cache: projected size ${humanBytes(projected)} (${videos} videos x ~${humanBytes(est)}) exceeds the free disk at ${vc.dir} ` +
          `(${humanBytes(free)} free, ${humanBytes(vc.diskBytes)} cached); once the disk is full the remaining videos decode per clip. ` +
          'Fix: trainCache.maxBytes, a smaller trainCache.maxSeconds or scale, or a bigger disk',
      );
    }
  }

  /** Decodes whole videos into the cache (one decodeVideos call); the new entry per video, or undefined. */
  private async fill(ps: Decode[], signal: AbortSignal): Promise<(VideoEntry | undefined)[]> {
    const { o, geometry: g, stats } = this.d;
    const cap = this.tc.maxSeconds;
    const result: (VideoEntry | undefined)[] = new Array(ps.length).fill(undefined);
    const jobs: { i: number; job: VideoJob; fill: ReturnType<VideoCache['begin']> }[] = [];
    for (let i = 0; i < ps.length; i++) {
      const p = ps[i];
      if (!p.opened) {
        try {
          p.opened = await o.source.open(p.u.ref);
        } catch (e) {
          if (!(e instanceof DataError)) throw e;
          continue;
        }
      }
      const v = p.info.video!;
      const { width, height } = workingSize(v.width, v.height, g.size, this.tc.scale);
      const full = p.info.duration <= cap;
      const fill = this.cache.begin(
        p.vkey!,
        width,
        height,
        Math.ceil(cap * g.fps) + 1,
        p.info.audio ? Math.ceil((cap + 1) * g.sampleRate) : 0,
      );
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
          threads: o.threads,
          onVideo: (c) => fill.video(c),
          onAudio: (c) => fill.audioChunk(c),
          onReset: () => fill.reset(),
        },
      });
    }
    if (jobs.length === 0) return result;
    stats.decodes += jobs.length;
    stats.cacheFills += jobs.length;
    let res: (DataError | null)[];
    try {
      res = await decodeVideos(
        jobs.map((j) => j.job),
        { timeoutMs: o.timeoutMs, signal, decoder: o.decoder, audioStream: o.audioStream, threads: o.decoders, log: o.log },
      );
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
    const vc = this.cache;
    if (vc.writeError)
      this.d.logOnce('\u0000cache-write', `warning: train cache ${vc.dir} stopped adding videos: ${vc.writeError.message}`);
    return result;
  }

  /**
   * Cuts a clip from a cached video: the same plan as the decode path, with
   * the first frame snapped down to the cache's frame grid (j0 / fps, frame j
   * being the source frame on screen at j / fps) and the audio window centred
   * on the snapped clip. Undefined when the clip is not inside the cached
   * frames (or audio); 'damaged' when a record fails its check (the entry is
   * dropped).
   */
  private async cut(p: Decode, e: VideoEntry, epoch: number, signal: AbortSignal): Promise<Produced | 'damaged' | undefined> {
    const { o, geometry: g, sizes, stats } = this.d;
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
    const samples = sizes.samples;
    const m = p.plan.shiftMargin;
    const first = Math.round((audioStart - m / g.sampleRate) * g.sampleRate) + m + p.plan.shiftSamples;
    const hasAudio = e.a > 0;
    if (!hasAudio && p.info.audio) return undefined;
    if (hasAudio && !e.full && first + samples > e.a) return undefined;
    let frames: { data: Uint8Array; stride: number };
    let audio: { pcm: Float32Array; front: number; back: number } | undefined;
    try {
      if (signal.aborted) throw new Error('aborted');
      frames = await this.cache.readFrames(e, j0, T);
      if (hasAudio) audio = await this.cache.readAudio(e, first, samples);
    } catch (err) {
      if (signal.aborted) throw new Error('cmac: decode aborted');
      this.cache.reject(e);
      stats.cacheDamaged++;
      o.log?.(`train cache: ${ref.id}: ${(err as Error).message}; decoding the video again`);
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
    const meta = baseMeta(p.u, epoch, p.position, { start, audioStart });
    // The cache read the shifted window itself: no margin, no shift left to apply.
    const r = finishClip(meta, video, audio && { ...audio, margin: 0, shift: 0 }, p.plan, {
      samples,
      augmented: o.augment !== false,
      clipBytes: sizes.clipBytes,
    });
    meta.cached = true;
    stats.cacheHits++;
    return r;
  }

  /** Rereads index lines other ranks appended (each epoch). */
  refresh(): void {
    this.cache.refresh();
  }

  close(): Promise<void> {
    return this.cache.close();
  }
}
