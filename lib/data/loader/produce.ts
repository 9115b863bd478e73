// Turns a group of the epoch's clips into settled clips (Produced): from the
// eval clip cache, the train cache (./traincache.ts), or one decodeClips call
// for the rest; probes once per file, remembers why a file or row cannot be
// used, applies the audio policy and the clip plan (lib/data/augment.ts).
import type { ClipGeometry, ClipPlan } from '../augment';
import { planClip } from '../augment';
import type { ClipCache } from '../cache';
import { decodeClips, decoderFor, probe } from '../decode';
import { DataError } from '../errors';
import type { DecodedClip, DecodeRequest, ProbeInfo } from '../ffmpeg';
import { Prng, mixSeed } from '../prng';
import type { OpenedSample, SampleRef } from '../sources';
import { baseMeta, finishClip, renamed, skipped } from './clip';
import { clipKey } from './keys';
import type { ClipSizes, ResolvedOptions } from './options';
import type { Pending, TrainCacheClips } from './traincache';
import type { Decode, LoaderStats, Prepared, Produced, Unit } from './types';

export interface ProducerDeps {
  o: ResolvedOptions;
  geometry: ClipGeometry;
  sizes: ClipSizes;
  stats: LoaderStats;
  clipCache?: ClipCache;
  trainCache?: TrainCacheClips;
}

export class ClipProducer {
  /** Per file (sample id): what the probe said, or why it failed. */
  private readonly probes = new Map<string, ProbeInfo | DataError>();
  /** Per row (sample index): why the clip cannot be placed (no audio, too short for its window). Rows of one file differ. */
  private readonly rowErrors = new Map<number, DataError>();

  constructor(private readonly d: ProducerDeps) {}

  /**
   * Prepares a group of clips; the train cache serves those it can; the
   * rest are decoded with one decodeClips call; each is finished.
   */
  async produceGroup(group: { u: Unit; pos: number }[], epoch: number, signal: AbortSignal): Promise<Produced[]> {
    const settled = await Promise.allSettled(group.map(({ u, pos }) => this.prepare(u, epoch, pos)));
    const failed = settled.find((s): s is PromiseRejectedResult => s.status === 'rejected');
    if (failed) {
      for (const s of settled)
        if (s.status === 'fulfilled' && s.value.kind === 'decode') await s.value.opened?.release().catch(() => undefined);
      throw failed.reason;
    }
    const out: Produced[] = new Array(group.length);
    const decodes: Pending[] = [];
    settled.forEach((s, k) => {
      const p = (s as PromiseFulfilledResult<Prepared>).value;
      if (p.kind === 'done') out[k] = p.r;
      else decodes.push({ k, p });
    });
    try {
      const rest = this.d.trainCache ? await this.d.trainCache.serve(decodes, out, epoch, signal) : decodes;
      await this.decode(rest, out, epoch, signal);
    } finally {
      for (const { p } of decodes) await p.opened?.release().catch(() => undefined);
    }
    return out;
  }

  /** Decodes the clips left (opening those prepared from a train-cache entry) with one decodeClips call. */
  private async decode(rest: Pending[], out: Produced[], epoch: number, signal: AbortSignal): Promise<void> {
    const { o, sizes, stats } = this.d;
    const todo: Pending[] = [];
    for (const t of rest) {
      if (!t.p.opened) {
        try {
          t.p.opened = await o.source.open(t.p.u.ref, { inMemory: this.inMemory() });
        } catch (e) {
          if (!(e instanceof DataError)) throw e;
          out[t.k] = skipped(e, t.p.u.ref, sizes.clipBytes);
          continue;
        }
      }
      todo.push(t);
    }
    if (todo.length === 0) return;
    stats.decodes += todo.length;
    const res = await decodeClips(
      todo.map(({ p }) => ({ file: p.opened!.path, bytes: p.opened!.bytes, info: p.info, req: this.request(p) })),
      { timeoutMs: o.timeoutMs, signal, decoder: o.decoder, audioStream: o.audioStream, threads: o.decoders, log: o.log },
    );
    for (let j = 0; j < todo.length; j++) {
      const { k, p } = todo[j];
      const r = res[j];
      out[k] = r instanceof DataError ? skipped(r, p.u.ref, sizes.clipBytes) : await this.finish(p, r, epoch);
    }
  }

  /** Samples inside containers (tar members) come as bytes when the native decoder reads them (the train cache's fill needs files). */
  private inMemory(): boolean {
    return !this.d.trainCache && decoderFor({ decoder: this.d.o.decoder, log: this.d.o.log }) === 'native';
  }

  /** Everything before decoding: cache lookup, open, probe, audio policy, clip placement. */
  private async prepare(u: Unit, epoch: number, position: number): Promise<Prepared> {
    const { o, sizes } = this.d;
    const bytes = sizes.clipBytes;
    const ref = u.ref;
    const known = this.probes.get(ref.id);
    if (known instanceof DataError) return { kind: 'done', r: { ok: false, error: known, bytes } };
    const rowError = this.rowErrors.get(ref.index);
    if (rowError) return { kind: 'done', r: { ok: false, error: rowError, bytes } };
    let key: string | undefined;
    if (this.d.clipCache) {
      key = clipKey(u, this.d.geometry, o);
      const hit = await this.fromClipCache(u, key, epoch, position);
      if (hit) return { kind: 'done', r: hit };
    }
    let vkey: string | undefined;
    if (this.d.trainCache) {
      // A cached video needs neither the file nor (with the probe kept in its index line) a probe.
      const { vkey: k, entry } = this.d.trainCache.lookup(ref);
      vkey = k;
      let info = known;
      if (entry && !info && entry.info) {
        info = { ...entry.info, file: ref.path ?? ref.id };
        this.probes.set(ref.id, info);
      }
      if (entry && info) {
        try {
          return { kind: 'decode', u, position, info, plan: this.planFor(u, epoch, info), vkey };
        } catch (err) {
          if (err instanceof DataError) return { kind: 'done', r: skipped(err, ref, bytes) };
          throw err;
        }
      }
    }
    let opened: OpenedSample | undefined;
    try {
      opened = await o.source.open(ref, { inMemory: this.inMemory() });
      const info = await this.probeCached(ref, opened.path, opened.bytes);
      return { kind: 'decode', u, position, opened, info, plan: this.planFor(u, epoch, info), key, vkey };
    } catch (e) {
      await opened?.release().catch(() => undefined);
      if (e instanceof DataError) return { kind: 'done', r: skipped(e, ref, bytes) };
      throw e;
    }
  }

  /** A clip from the eval clip cache (its audio row carries start, audioStart and the padding). */
  private async fromClipCache(u: Unit, key: string, epoch: number, position: number): Promise<Produced | undefined> {
    const { geometry: g, sizes, stats, o } = this.d;
    const samples = sizes.samples;
    const hit = await this.d.clipCache!.get(key, (detail, another) => {
      stats.cacheDamaged++;
      o.log?.(`clip cache: ${u.ref.id} clip ${u.clip}: ${detail}; ${another ? 'trying another copy' : 'decoding the clip again'}`);
    });
    if (!(hit && hit.video.length === g.frames * g.size * g.size * 3 && hit.audio.length === samples + 4)) return undefined;
    stats.cacheHits++;
    const info = hit.audio.subarray(samples);
    const meta = baseMeta(u, epoch, position, { start: info[0], audioStart: info[1] });
    meta.audioPad = { front: info[2], back: info[3] };
    meta.cached = true;
    return { ok: true, video: hit.video, audio: hit.audio.slice(0, samples), meta, bytes: sizes.clipBytes };
  }

  private async probeCached(ref: SampleRef, file: string, bytes?: Uint8Array): Promise<ProbeInfo> {
    const o = this.d.o;
    const hit = this.probes.get(ref.id);
    if (hit instanceof DataError) throw hit;
    if (hit) return { ...hit, file };
    try {
      const info = await probe(file, {
        timeoutMs: o.timeoutMs,
        decoder: o.decoder,
        audioStream: o.audioStream,
        threads: o.decoders,
        log: o.log,
        probeIndex: o.probeIndex,
        bytes,
      });
      this.probes.set(ref.id, info);
      return info;
    } catch (e) {
      if (e instanceof DataError) {
        const err = renamed(e, ref);
        if (err.reason !== 'timeout') this.probes.set(ref.id, err);
        throw err;
      }
      throw e;
    }
  }

  /** Audio policy and clip placement (throws DataError; row-level errors are remembered). */
  private planFor(u: Unit, epoch: number, info: ProbeInfo): ClipPlan {
    const o = this.d.o;
    const ref = u.ref;
    if (!info.audio && o.missingAudio === 'skip') {
      const err = new DataError('no_audio', ref.id, 'no audio stream (missingAudio: skip)');
      this.rowErrors.set(ref.index, err);
      throw err;
    }
    const rng = o.mode === 'train' ? new Prng(mixSeed(o.seed, epoch, ref.index, u.clip)) : undefined;
    try {
      return planClip(info, this.d.geometry, {
        mode: o.mode,
        rng,
        clipIndex: u.clip,
        clipsPerVideo: o.clipsPerVideo,
        window: ref.start !== undefined || ref.end !== undefined ? { start: ref.start, end: ref.end } : undefined,
        augment: o.augment,
      });
    } catch (e) {
      if (e instanceof DataError) this.rowErrors.set(ref.index, renamed(e, ref));
      throw e;
    }
  }

  private request(p: Decode): DecodeRequest {
    const g = this.d.geometry;
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
      audio: { start: p.plan.audioStart - m / g.sampleRate, samples: this.d.sizes.samples + 2 * m, sampleRate: g.sampleRate },
      threads: this.d.o.threads,
    };
  }

  /** After decoding: audio shift and gain, meta, the clip cache. */
  private async finish(p: Decode, d: DecodedClip, epoch: number): Promise<Produced> {
    const { o, sizes } = this.d;
    const plan = p.plan;
    const meta = baseMeta(p.u, epoch, p.position, plan);
    const audio = d.audio
      ? { pcm: d.audio, margin: plan.shiftMargin, shift: plan.shiftSamples, front: d.audioPad.front, back: d.audioPad.back }
      : undefined;
    const r = finishClip(meta, d.video, audio, plan, {
      samples: sizes.samples,
      augmented: o.mode === 'train' && o.augment !== false,
      clipBytes: sizes.clipBytes,
    });
    if (this.d.clipCache && p.key && r.ok) {
      const stored = new Float32Array(sizes.samples + 4);
      stored.set(r.audio);
      stored.set([plan.start, plan.audioStart, meta.audioPad.front, meta.audioPad.back], sizes.samples);
      await this.d.clipCache.put(p.key, d.video, stored);
    }
    return r;
  }
}
