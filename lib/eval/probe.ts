// Linear probe (method.md section 7): frozen pooled features of a trained
// model, standardised with training statistics, an L2-regularised
// multinomial logistic regression (native L-BFGS, lib/eval/logreg.ts) with
// the regulariser chosen on a validation split, refitted on train + val and
// scored on test.
import type { CmacModel } from '../model';
import type { ClipGeometry } from '../data/augment';
import type { LoaderBatch } from '../data/loader';
import { checkOptionKeys, keysOf } from '../options';
import { audioFileFeatures, averageBySample, collectOutputs, evalLoader, Rows, rowSize } from './collect';
import { itemKey, itemsSource, ProbeDataset, ProbeItem } from './datasets';
import { fitLogisticRegression, predict } from './logreg';

/** Default regulariser grid: 1e-5 .. 1e0, half decades. */
export const defaultL2Grid: readonly number[] = [1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1, 1];

/** A labelled feature matrix. */
export interface LabelledFeatures {
  x: Float32Array;
  y: Int32Array;
  n: number;
  d: number;
}

/** Per-dimension mean and standard deviation (a constant dimension gets std 1). */
export function featureStats(f: LabelledFeatures): { mean: Float64Array; std: Float64Array } {
  const mean = new Float64Array(f.d),
    sq = new Float64Array(f.d);
  for (let i = 0; i < f.n; i++) for (let k = 0; k < f.d; k++) mean[k] += f.x[i * f.d + k];
  for (let k = 0; k < f.d; k++) mean[k] /= Math.max(1, f.n);
  for (let i = 0; i < f.n; i++) for (let k = 0; k < f.d; k++) sq[k] += (f.x[i * f.d + k] - mean[k]) ** 2;
  const std = sq.map((s) => {
    const v = Math.sqrt(s / Math.max(1, f.n));
    return v > 1e-8 ? v : 1;
  });
  return { mean, std };
}

/** (x - mean) / std with given statistics. */
export function standardise(f: LabelledFeatures, s: { mean: Float64Array; std: Float64Array }): LabelledFeatures {
  const x = new Float32Array(f.x.length);
  for (let i = 0; i < f.n; i++) for (let k = 0; k < f.d; k++) x[i * f.d + k] = (f.x[i * f.d + k] - s.mean[k]) / s.std[k];
  return { ...f, x };
}

function concat(a: LabelledFeatures, b: LabelledFeatures): LabelledFeatures {
  const x = new Float32Array(a.x.length + b.x.length);
  x.set(a.x);
  x.set(b.x, a.x.length);
  const y = new Int32Array(a.n + b.n);
  y.set(a.y);
  y.set(b.y, a.n);
  return { x, y, n: a.n + b.n, d: a.d };
}

/** Accuracy of predictions. */
export function accuracy(pred: Int32Array, y: Int32Array): number {
  let c = 0;
  for (let i = 0; i < y.length; i++) if (pred[i] === y[i]) c++;
  return y.length ? c / y.length : NaN;
}

/** Accuracy on `test` labels of always answering the most frequent `train` label (ties: the lower label); NaN without test items. */
export function majorityAccuracy(train: ArrayLike<number>, test: ArrayLike<number>): number {
  const counts = new Map<number, number>();
  for (let i = 0; i < train.length; i++) counts.set(train[i], (counts.get(train[i]) ?? 0) + 1);
  const top = [...counts.entries()].sort((p, q) => q[1] - p[1] || p[0] - q[0])[0]?.[0] ?? 0;
  let hits = 0;
  for (let i = 0; i < test.length; i++) if (test[i] === top) hits++;
  return test.length ? hits / test.length : NaN;
}

/** The outcome of one probe (one feature kind, one fold). */
export interface ProbeFit {
  /** Chosen regulariser and validation accuracy per grid value. */
  l2: number;
  val: Array<{ l2: number; accuracy: number }>;
  trainAccuracy: number;
  testAccuracy: number;
  /** Per test item, in the order of `test`: 1 where the prediction is its label, else 0 (testAccuracy is their mean; the bootstrap of docs/results.md resamples them). */
  testCorrect: number[];
  /** Accuracy of always answering the most frequent training class. */
  majority: number;
  nTrain: number;
  nVal: number;
  nTest: number;
}

/**
 * Chooses the regulariser on `val` (features standardised with train
 * statistics; ties go to the stronger regulariser), refits on train + val
 * (statistics of train + val) and scores `test`.
 */
export async function fitProbe(
  train: LabelledFeatures,
  val: LabelledFeatures,
  test: LabelledFeatures,
  numClasses: number,
  grid: readonly number[] = defaultL2Grid,
  maxIter = 500,
): Promise<ProbeFit> {
  if (train.n < 2) throw new Error(`linear probe: needs at least 2 training items, got ${train.n}`);
  const K = Math.max(2, numClasses);
  const tensor = (f: LabelledFeatures) => ({ data: f.x, shape: [f.n, f.d] });
  const labels = (f: LabelledFeatures) => ({ data: f.y, shape: [f.n] });
  const st = featureStats(train);
  const tr = standardise(train, st),
    va = standardise(val, st);
  const scores: Array<{ l2: number; accuracy: number }> = [];
  for (const l2 of grid) {
    if (!val.n) break;
    const clf = await fitLogisticRegression(tensor(tr), labels(tr), K, l2, maxIter);
    scores.push({ l2, accuracy: accuracy(predict(clf, tensor(va)), va.y) });
  }
  let best = scores.length ? scores[0] : { l2: grid[Math.floor(grid.length / 2)], accuracy: NaN };
  for (const s of scores) if (s.accuracy >= best.accuracy) best = s;
  const all = concat(train, val);
  const st2 = featureStats(all);
  const a = standardise(all, st2),
    te = standardise(test, st2);
  const clf = await fitLogisticRegression(tensor(a), labels(a), K, best.l2, maxIter);
  const testPred = predict(clf, tensor(te));
  return {
    l2: best.l2,
    val: scores,
    trainAccuracy: accuracy(predict(clf, tensor(a)), a.y),
    testAccuracy: accuracy(testPred, te.y),
    testCorrect: Array.from(te.y, (y, i) => (testPred[i] === y ? 1 : 0)),
    majority: majorityAccuracy(train.y, test.y),
    nTrain: train.n,
    nVal: val.n,
    nTest: test.n,
  };
}

/** Options of {@link linearProbe}. */
export interface LinearProbeOptions {
  clip: ClipGeometry;
  /** Clips per video averaged into one feature (default 1; audio files: windows per file, default 3). */
  clipsPerVideo?: number;
  batchSize?: number;
  decoders?: number;
  /** Decoded-clip cache folder for the eval loader. */
  cacheDir?: string;
  grid?: readonly number[];
  /** Which features (default: featV and featA for audio-visual data, featA for audio-only). */
  features?: Array<'video' | 'audio'>;
  /** Clips of {@link probeItems} already decoded (e.g. with decodeAll(evalLoader(itemsSource(probeItems(ds), ...)))), reused instead of decoding again. */
  batches?: LoaderBatch[];
  log?: (line: string) => void;
}

/** Every item of a dataset's folds once, in a fixed order (the order the probe's loader lists them). */
export function probeItems(ds: ProbeDataset): ProbeItem[] {
  const uniq = new Map<string, ProbeItem>();
  for (const f of ds.folds) for (const it of [...f.train, ...f.val, ...f.test]) uniq.set(itemKey(it), it);
  return [...uniq.values()];
}

/** Linear-probe results over a dataset's folds. */
export interface LinearProbeResult {
  dataset: string;
  classes: number;
  folds: Array<{ name: string; video?: ProbeFit; audio?: ProbeFit }>;
  /** Mean and standard deviation of test accuracy over folds. */
  video?: { mean: number; std: number };
  audio?: { mean: number; std: number };
  /** 1 / classes. */
  chance: number;
  /** Items whose file could not be used (skipped by the loader or undecodable). */
  missing: number;
}

/** Mean and sample standard deviation (0 for one value). */
export function meanStd(v: number[]): { mean: number; std: number } {
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  const s = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1)) : 0;
  return { mean: m, std: s };
}

const linearProbeOptionKeys = keysOf<LinearProbeOptions>()([
  'clip',
  'clipsPerVideo',
  'batchSize',
  'decoders',
  'cacheDir',
  'grid',
  'features',
  'batches',
  'log',
]);

/**
 * Extracts features of every item of the dataset once (eval loader, frozen
 * model) and probes each fold. Audio-only datasets (ESC-50) go through the
 * audio encoder alone, decoding each file with ffmpeg.
 */
export async function linearProbe(model: CmacModel, ds: ProbeDataset, o: LinearProbeOptions): Promise<LinearProbeResult> {
  checkOptionKeys(o, linearProbeOptionKeys, 'linearProbe()');
  const log = o.log ?? (() => undefined);
  const items = probeItems(ds);
  const feats: Partial<Record<'video' | 'audio', Map<string, Float32Array>>> = {};
  const kinds = o.features ?? (ds.modality === 'audio' ? ['audio'] : ['video', 'audio']);
  if (ds.modality === 'audio' && kinds.includes('video')) throw new Error(`${ds.name} is audio-only: there is no video feature to probe`);
  const t0 = Date.now();
  if (ds.modality === 'audio') {
    const r = await audioFileFeatures(
      model,
      items.map((i) => i.path),
      {
        sampleRate: o.clip.sampleRate,
        samples: Math.round(o.clip.audioSeconds * o.clip.sampleRate),
        windows: o.clipsPerVideo ?? 3,
        batchSize: o.batchSize,
        onProgress: (n) => {
          if (n % 200 < 32) log(`features: ${n}/${items.length} files`);
        },
      },
    );
    for (const f of r.failed.slice(0, 5)) log(`skipped ${f.file}: ${f.error}`);
    const m = new Map<string, Float32Array>();
    const d = rowSize(r.featA);
    r.ok.forEach((idx, j) => m.set(itemKey(items[idx]), r.featA.data.slice(j * d, (j + 1) * d)));
    feats.audio = m;
  } else {
    const loader = o.batches
      ? undefined
      : evalLoader(itemsSource(items, ds.name), o.clip, {
          batchSize: o.batchSize ?? 32,
          decoders: o.decoders ?? 2,
          clipsPerVideo: o.clipsPerVideo ?? 1,
          cacheDir: o.cacheDir,
          log,
        });
    const out = await collectOutputs(model, o.batches ?? loader!, {
      embed: true,
      onProgress: (n) => {
        if (n % 320 < (o.batchSize ?? 32)) log(`features: ${n} clips`);
      },
    });
    await loader?.close();
    for (const [kind, rows] of [
      ['video', out.featV],
      ['audio', out.featA],
    ] as Array<['video' | 'audio', Rows | undefined]>) {
      if (!rows || !kinds.includes(kind)) continue;
      const avg = averageBySample(out.clips, rows);
      const d = rowSize(rows);
      const m = new Map<string, Float32Array>();
      avg.index.forEach((idx, j) => m.set(itemKey(items[idx]), avg.rows.data.slice(j * d, (j + 1) * d)));
      feats[kind] = m;
    }
  }
  log(`features of ${items.length} items in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const have = feats[kinds[0]]!;
  const missing = items.filter((i) => !have.has(itemKey(i))).length;
  const matrix = (list: ProbeItem[], m: Map<string, Float32Array>): LabelledFeatures => {
    const kept = list.filter((i) => m.has(itemKey(i)));
    const d = kept.length ? m.get(itemKey(kept[0]))!.length : (m.values().next().value?.length ?? 0);
    const x = new Float32Array(kept.length * d);
    kept.forEach((it, i) => x.set(m.get(itemKey(it))!, i * d));
    return { x, y: Int32Array.from(kept.map((i) => i.label)), n: kept.length, d };
  };
  const result: LinearProbeResult = { dataset: ds.name, classes: ds.classes.length, folds: [], chance: 1 / ds.classes.length, missing };
  for (const f of ds.folds) {
    const entry: LinearProbeResult['folds'][number] = { name: f.name };
    for (const kind of kinds) {
      const m = feats[kind]!;
      entry[kind] = await fitProbe(matrix(f.train, m), matrix(f.val, m), matrix(f.test, m), ds.classes.length, o.grid);
      log(`${f.name} ${kind}: test accuracy ${(entry[kind]!.testAccuracy * 100).toFixed(2)}% (l2 ${entry[kind]!.l2})`);
    }
    result.folds.push(entry);
  }
  for (const kind of kinds) result[kind] = meanStd(result.folds.map((f) => f[kind]!.testAccuracy));
  return result;
}
