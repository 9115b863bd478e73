// Bootstrap confidence intervals over seeds and test clips (issue 14 item 7,
// docs/results.md "The verdict"). A metric of a configuration is the mean of
// a per-clip value over S training seeds x N test clips (pointing hit,
// cIoU >= 0.5, a clip's share of the AUC, probe correctness, recall@1...).
// One bootstrap replicate draws S seeds and N clips with replacement (the
// same draws for every configuration compared: paired) and takes the mean
// over the drawn seed x clip grid; the interval is the percentile interval
// of the replicates (numpy.percentile's default linear interpolation).
// Deterministic: the draws come from a seeded Prng (lib/data/prng.ts).
import { Prng } from '../data/prng';

/** Per-clip values of one configuration: one row per seed, one column per test clip (the same clips, in the same order, in every row). */
export type SeedClipMatrix = ReadonlyArray<ArrayLike<number>>;

/** Options of {@link bootstrapMean} and {@link pairedBootstrapDiff}. */
export interface BootstrapOptions {
  /** Replicates (default 10000). */
  resamples?: number;
  /** Seed of the draws (default 1): the same seed gives the same interval. */
  seed?: number;
  /** Coverage of the interval (default 0.95). */
  level?: number;
}

/** A point estimate with its percentile bootstrap interval. */
export interface BootstrapInterval {
  /** Mean over every seed x clip (of the difference, for a paired comparison). */
  estimate: number;
  lo: number;
  hi: number;
  level: number;
  resamples: number;
  /** Seeds and clips resampled. */
  seeds: number;
  clips: number;
}

/**
 * The q-th percentile (0..100) of ascending values, numpy.percentile's
 * default ('linear'): index (n - 1) q / 100, interpolated between neighbours.
 */
export function percentile(sorted: ArrayLike<number>, q: number): number {
  const n = sorted.length;
  if (!n) throw new RangeError('percentile of no values');
  if (!(q >= 0 && q <= 100)) throw new RangeError(`percentile q must be in [0, 100], got ${q}`);
  const pos = ((n - 1) * q) / 100;
  const i = Math.floor(pos);
  const f = pos - i;
  if (i + 1 >= n) return sorted[n - 1];
  return sorted[i] + (sorted[i + 1] - sorted[i]) * f;
}

function checkMatrix(x: SeedClipMatrix, what: string): { s: number; n: number } {
  const s = x.length;
  if (!s) throw new RangeError(`${what}: no seeds (rows); give one row of per-clip values per trained seed`);
  const n = x[0].length;
  if (!n) throw new RangeError(`${what}: no test clips (columns)`);
  x.forEach((row, r) => {
    if (row.length !== n)
      throw new RangeError(
        `${what}: seed row ${r} has ${row.length} clips, row 0 has ${n}; every seed must be scored on the same test clips`,
      );
    for (let c = 0; c < n; c++)
      if (!Number.isFinite(row[c]))
        throw new RangeError(`${what}: value at seed row ${r}, clip ${c} is ${row[c]}; every per-clip value must be a finite number`);
  });
  return { s, n };
}

function checkOptions(o: BootstrapOptions): { resamples: number; seed: number; level: number } {
  const resamples = o.resamples ?? 10000,
    seed = o.seed ?? 1,
    level = o.level ?? 0.95;
  if (!(Number.isInteger(resamples) && resamples >= 1))
    throw new RangeError(`bootstrap resamples must be an integer >= 1, got ${resamples}`);
  if (!(level > 0 && level < 1)) throw new RangeError(`bootstrap level must be in (0, 1), e.g. 0.95; got ${level}`);
  if (!Number.isFinite(seed)) throw new RangeError(`bootstrap seed must be a number, got ${seed}`);
  return { resamples, seed, level };
}

/**
 * Percentile bootstrap interval of the mean of `x` [seeds][clips]: each
 * replicate draws S seed rows, then N clip columns, with replacement (in
 * that order from one Prng(seed)), and averages the drawn S x N grid.
 */
export function bootstrapMean(x: SeedClipMatrix, opts: BootstrapOptions = {}): BootstrapInterval {
  const { s, n } = checkMatrix(x, 'bootstrap');
  const { resamples, seed, level } = checkOptions(opts);
  let total = 0;
  for (const row of x) for (let c = 0; c < n; c++) total += row[c];
  const rng = new Prng(seed);
  const reps = new Float64Array(resamples);
  const seedCount = new Float64Array(s),
    clipCount = new Float64Array(n);
  for (let b = 0; b < resamples; b++) {
    seedCount.fill(0);
    clipCount.fill(0);
    for (let k = 0; k < s; k++) seedCount[rng.int(s)]++;
    for (let k = 0; k < n; k++) clipCount[rng.int(n)]++;
    let acc = 0;
    for (let r = 0; r < s; r++) {
      if (!seedCount[r]) continue;
      const row = x[r];
      let part = 0;
      for (let c = 0; c < n; c++) part += clipCount[c] * row[c];
      acc += seedCount[r] * part;
    }
    reps[b] = acc / (s * n);
  }
  reps.sort();
  const tail = ((1 - level) / 2) * 100;
  return { estimate: total / (s * n), lo: percentile(reps, tail), hi: percentile(reps, 100 - tail), level, resamples, seeds: s, clips: n };
}

/**
 * Paired percentile bootstrap interval of mean(a) - mean(b), both
 * [seeds][clips] with row r of each from the same seed and column c the same
 * test clip: each replicate draws seeds and clips once and applies the draws
 * to both (the mean is linear, so this is the bootstrap of the per-clip
 * difference a - b).
 */
export function pairedBootstrapDiff(a: SeedClipMatrix, b: SeedClipMatrix, opts: BootstrapOptions = {}): BootstrapInterval {
  const sa = checkMatrix(a, 'paired bootstrap (first)');
  const sb = checkMatrix(b, 'paired bootstrap (second)');
  if (sa.s !== sb.s || sa.n !== sb.n) {
    throw new RangeError(
      `paired bootstrap: the two configurations must have the same seeds x clips, got ${sa.s}x${sa.n} and ${sb.s}x${sb.n}; pair them on the seeds and test clips both have`,
    );
  }
  const d = a.map((row, r) => Float64Array.from({ length: sa.n }, (_, c) => row[c] - b[r][c]));
  return bootstrapMean(d, opts);
}
