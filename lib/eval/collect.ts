// Runs a frozen model over eval clips and keeps what the evaluators need:
// embeddings, pooled features, attention maps, and (for pictures) the middle
// frame and audio of each clip. The clips come from any iterable of loader
// batches: a live eval loader (streamed: only the outputs are kept) or
// batches decoded once and reused for several models (the ablation).
import { createLoader, LoaderBatch, LoaderOptions, Source } from '../data';
import { decodeAudioFile } from '../data/ffmpeg';
import type { CmacModel } from '../model';
import { checkOptionKeys, keysOf } from '../options';
import type { AnyTensor } from '../tensor';

/** What the loader said about one clip. */
export interface ClipInfo {
  id: string;
  /** Sample index in the source and clip number within it. */
  index: number;
  clip: number;
  /** Time of the first frame (s). */
  start: number;
  label: number;
  boxes?: unknown;
  extra?: Record<string, unknown>;
}

/** A [n, ...rest] float32 block, one row per clip. */
export interface Rows {
  data: Float32Array;
  /** Shape of one row, e.g. [128] or [8, 8]. */
  shape: number[];
}

/** Outputs of a model over clips, in clip order. */
export interface ModelOutputs {
  clips: ClipInfo[];
  zV?: Rows;
  zA?: Rows;
  featV?: Rows;
  featA?: Rows;
  alphaV?: Rows;
  betaV?: Rows;
  alphaA?: Rows;
  betaA?: Rows;
  /** The raw maps the protocols threshold (maps() since issue 14): alpha_v's logits and the cosine map <z_a, v_n>; the audio side alike. */
  alphaVLogits?: Rows;
  betaVCos?: Rows;
  alphaALogits?: Rows;
  betaACos?: Rows;
  /** Middle frame of each clip, [size, size, 3] RGB (keepFrames). */
  frames?: Uint8Array[];
  frameSize?: number;
  /** Audio window of each clip (keepAudio; undefined past its limit). */
  audio?: Array<Float32Array | undefined>;
  sampleRate?: number;
}

/** Options of {@link collectOutputs}. */
export interface CollectOptions {
  /** Embeddings and pooled features (default true). */
  embed?: boolean;
  /** Attention maps (default false; needs video and audio). */
  maps?: boolean;
  /** Keep the middle frame of every clip (default false). */
  keepFrames?: boolean;
  /** Keep the audio of every clip (true) or of the first N clips (default false); 128 KiB per 2 s clip. */
  keepAudio?: boolean | number;
  sampleRate?: number;
  /** Called after each batch with the clips done. */
  onProgress?: (clips: number) => void;
}

type Key =
  'zV' | 'zA' | 'featV' | 'featA' | 'alphaV' | 'betaV' | 'alphaA' | 'betaA' | 'alphaVLogits' | 'betaVCos' | 'alphaALogits' | 'betaACos';

/** Collects per-batch [n, ...] float32 tensors into one {@link Rows} block. */
export class RowsBuilder {
  private parts: Float32Array[] = [];
  shape: number[] = [];
  add(t: AnyTensor | undefined): void {
    if (!t) return;
    this.shape = t.shape.slice(1);
    this.parts.push(t.data as Float32Array);
  }
  build(): Rows | undefined {
    if (!this.parts.length) return undefined;
    const n = this.parts.reduce((a, p) => a + p.length, 0);
    const data = new Float32Array(n);
    let o = 0;
    for (const p of this.parts) {
      data.set(p, o);
      o += p.length;
    }
    return { data, shape: this.shape };
  }
}

/** What the loader said about each clip of a batch (labels from the batch's label tensor when it has one). */
export function clipInfos(batch: LoaderBatch): ClipInfo[] {
  return batch.meta.map((m, i) => ({
    id: m.id,
    index: m.index,
    clip: m.clip,
    start: m.start,
    label: batch.labels ? batch.labels.data[i] : (m.label ?? -1),
    boxes: m.boxes,
    extra: m.extra,
  }));
}

/** Row i of a Rows block. */
export function row(r: Rows, i: number): Float32Array {
  const d = r.shape.reduce((a, b) => a * b, 1);
  return r.data.subarray(i * d, (i + 1) * d);
}

/** Number of values in one row. */
export function rowSize(r: Rows): number {
  return r.shape.reduce((a, b) => a * b, 1);
}

const collectOptionKeys = keysOf<CollectOptions>()(['embed', 'maps', 'keepFrames', 'keepAudio', 'sampleRate', 'onProgress']);
const audioFileFeatureKeys = ['sampleRate', 'samples', 'windows', 'batchSize', 'onProgress'] as const;

/** Runs `model` (eval mode) over every batch and gathers the outputs. */
export async function collectOutputs(
  model: CmacModel,
  batches: AsyncIterable<LoaderBatch> | Iterable<LoaderBatch>,
  opts: CollectOptions = {},
): Promise<ModelOutputs> {
  checkOptionKeys(opts, collectOptionKeys, 'collectOutputs()');
  const wantEmbed = opts.embed ?? true;
  const b: Record<Key, RowsBuilder> = {
    zV: new RowsBuilder(),
    zA: new RowsBuilder(),
    featV: new RowsBuilder(),
    featA: new RowsBuilder(),
    alphaV: new RowsBuilder(),
    betaV: new RowsBuilder(),
    alphaA: new RowsBuilder(),
    betaA: new RowsBuilder(),
    alphaVLogits: new RowsBuilder(),
    betaVCos: new RowsBuilder(),
    alphaALogits: new RowsBuilder(),
    betaACos: new RowsBuilder(),
  };
  const out: ModelOutputs = { clips: [] };
  if (opts.keepFrames) out.frames = [];
  if (opts.keepAudio) {
    out.audio = [];
    out.sampleRate = opts.sampleRate ?? 16000;
  }
  for await (const batch of batches as AsyncIterable<LoaderBatch>) {
    const input = { video: batch.video, audio: batch.audio };
    if (wantEmbed) {
      const e = await model.embed(input);
      b.zV.add(e.zV);
      b.zA.add(e.zA);
      b.featV.add(e.featV);
      b.featA.add(e.featA);
    }
    if (opts.maps) {
      const m = await model.maps(input);
      b.alphaV.add(m.alphaV);
      b.betaV.add(m.betaV);
      b.alphaA.add(m.alphaA);
      b.betaA.add(m.betaA);
      b.alphaVLogits.add(m.alphaVLogits);
      b.betaVCos.add(m.betaVCos);
      b.alphaALogits.add(m.alphaALogits);
      b.betaACos.add(m.betaACos);
    }
    const [, T, H, W] = batch.video.shape;
    const S = batch.audio.shape[1];
    out.clips.push(...clipInfos(batch));
    batch.meta.forEach((_, i) => {
      if (out.frames) {
        const fb = H * W * 3;
        const t = Math.floor(T / 2);
        out.frames.push(batch.video.data.slice((i * T + t) * fb, (i * T + t + 1) * fb));
        out.frameSize = H;
      }
      if (out.audio)
        out.audio.push(
          opts.keepAudio === true || out.audio.length < Number(opts.keepAudio) ? batch.audio.data.slice(i * S, (i + 1) * S) : undefined,
        );
    });
    opts.onProgress?.(out.clips.length);
  }
  for (const k of Object.keys(b) as Key[]) {
    const r = b[k].build();
    if (r) out[k] = r;
  }
  return out;
}

/** An eval-mode loader over a source with a model's clip geometry. */
export function evalLoader(
  source: Source,
  clip: LoaderOptions['clip'],
  opts: Partial<LoaderOptions> = {},
): ReturnType<typeof createLoader> {
  return createLoader({ batchSize: 32, decoders: 2, missingAudio: 'silence', ...opts, source, clip, mode: 'eval' });
}

/** Decodes every batch of a loader into memory, to run several models over the same clips. */
export async function decodeAll(loader: AsyncIterable<LoaderBatch>): Promise<LoaderBatch[]> {
  const out: LoaderBatch[] = [];
  for await (const b of loader) out.push(b);
  return out;
}

/**
 * Mean of the rows of each sample (clips of one video), in order of first
 * appearance: per-video features from several clips per video.
 */
export function averageBySample(clips: ClipInfo[], r: Rows): { index: number[]; label: number[]; rows: Rows } {
  const d = rowSize(r);
  const order: number[] = [];
  const sums = new Map<number, { sum: Float64Array; n: number; label: number }>();
  clips.forEach((c, i) => {
    let s = sums.get(c.index);
    if (!s) {
      s = { sum: new Float64Array(d), n: 0, label: c.label };
      sums.set(c.index, s);
      order.push(c.index);
    }
    const x = row(r, i);
    for (let k = 0; k < d; k++) s.sum[k] += x[k];
    s.n++;
  });
  const data = new Float32Array(order.length * d);
  order.forEach((idx, j) => {
    const s = sums.get(idx)!;
    for (let k = 0; k < d; k++) data[j * d + k] = s.sum[k] / s.n;
  });
  return { index: order, label: order.map((i) => sums.get(i)!.label), rows: { data, shape: r.shape } };
}

/**
 * `count` windows of `samples` samples spaced uniformly over the PCM (centres
 * at (i + 0.5) / count of the valid range, as the eval loader places clips);
 * a signal shorter than a window is centred and zero padded.
 */
export function audioWindows(pcm: Float32Array, samples: number, count: number): Float32Array[] {
  const out: Float32Array[] = [];
  for (let i = 0; i < count; i++) {
    const w = new Float32Array(samples);
    if (pcm.length <= samples) {
      w.set(pcm, Math.floor((samples - pcm.length) / 2));
    } else {
      const lo = samples / 2,
        hi = pcm.length - samples / 2;
      const c = lo + ((hi - lo) * (i + 0.5)) / count;
      const a = Math.max(0, Math.min(pcm.length - samples, Math.round(c - samples / 2)));
      w.set(pcm.subarray(a, a + samples));
    }
    out.push(w);
  }
  return out;
}

/**
 * Audio-only features (the loader needs a video stream, so audio files such
 * as ESC-50's .wav clips are decoded here): `windows` windows per file, each
 * through the audio encoder, averaged per file. Files that fail to decode are
 * reported in `failed` and left out.
 */
export async function audioFileFeatures(
  model: CmacModel,
  files: string[],
  o: { sampleRate: number; samples: number; windows?: number; batchSize?: number; onProgress?: (n: number) => void },
): Promise<{ ok: number[]; featA: Rows; zA: Rows; failed: Array<{ file: string; error: string }> }> {
  checkOptionKeys(o, audioFileFeatureKeys, 'audioFileFeatures()');
  const windows = o.windows ?? 3;
  const bs = o.batchSize ?? 32;
  const failed: Array<{ file: string; error: string }> = [];
  const ok: number[] = [];
  const feat = new RowsBuilder(),
    z = new RowsBuilder();
  let pend: { idx: number; w: Float32Array[] }[] = [];
  const flush = async () => {
    if (!pend.length) return;
    const all = pend.flatMap((p) => p.w);
    const data = new Float32Array(all.length * o.samples);
    all.forEach((w, i) => data.set(w, i * o.samples));
    const e = await model.embed({ audio: { data, shape: [all.length, o.samples] } });
    for (const [src, dst] of [
      [e.featA!, feat],
      [e.zA!, z],
    ] as const) {
      const d = src.shape[1];
      const avg = new Float32Array(pend.length * d);
      pend.forEach((p, j) => {
        for (let w = 0; w < windows; w++)
          for (let k = 0; k < d; k++) avg[j * d + k] += (src.data as Float32Array)[(j * windows + w) * d + k] / windows;
      });
      dst.add({ data: avg, shape: [pend.length, d] });
    }
    ok.push(...pend.map((p) => p.idx));
    pend = [];
    o.onProgress?.(ok.length);
  };
  // Decode two files at a time while the model runs.
  const decode = (i: number) =>
    decodeAudioFile(files[i], o.sampleRate).then(
      (pcm) => ({ i, pcm }),
      (e: Error) => ({ i, error: e.message }),
    );
  let next = decode(0);
  for (let i = 0; i < files.length; i++) {
    const r = await next;
    if (i + 1 < files.length) next = decode(i + 1);
    if ('error' in r) {
      failed.push({ file: files[i], error: r.error as string });
      continue;
    }
    pend.push({ idx: i, w: audioWindows(r.pcm, o.samples, windows) });
    if (pend.length * windows >= bs) await flush();
  }
  await flush();
  return {
    ok,
    featA: feat.build() ?? { data: new Float32Array(0), shape: [0] },
    zA: z.build() ?? { data: new Float32Array(0), shape: [0] },
    failed,
  };
}
