// Sound-source localisation metrics: the LVS / EZ-VSL protocol of method.md
// section 7, kept exact for comparability with published numbers, plus
// pointing accuracy and attention mass inside the ground truth with their
// chance levels. Pure TypeScript numerics, no native code.

/** Side of the evaluation grid of the LVS / EZ-VSL protocol. */
export const evalSize = 224;

/**
 * Bilinear resize of a [h, w] map to [outH, outW] with PyTorch's
 * `F.interpolate(mode='bilinear', align_corners=False)` semantics: source
 * coordinate (dst + 0.5) * in/out - 0.5, clamped at 0, neighbours clamped at
 * the last row/column.
 */
export function upsampleBilinear(map: ArrayLike<number>, h: number, w: number, outH = evalSize, outW = evalSize): Float64Array {
  if (map.length !== h * w) throw new RangeError(`map has ${map.length} values, expected ${h}x${w}`);
  const out = new Float64Array(outH * outW);
  const sy = h / outH, sx = w / outW;
  const x0s = new Int32Array(outW), x1s = new Int32Array(outW), lxs = new Float64Array(outW);
  for (let x = 0; x < outW; x++) {
    const src = Math.max(0, (x + 0.5) * sx - 0.5);
    const i0 = Math.min(Math.floor(src), w - 1);
    x0s[x] = i0;
    x1s[x] = Math.min(i0 + 1, w - 1);
    lxs[x] = src - i0;
  }
  for (let y = 0; y < outH; y++) {
    const src = Math.max(0, (y + 0.5) * sy - 0.5);
    const j0 = Math.min(Math.floor(src), h - 1);
    const j1 = Math.min(j0 + 1, h - 1);
    const ly = src - j0;
    for (let x = 0; x < outW; x++) {
      const a = map[j0 * w + x0s[x]], b = map[j0 * w + x1s[x]], c = map[j1 * w + x0s[x]], d = map[j1 * w + x1s[x]];
      const lx = lxs[x];
      // Lerp form: exact where neighbours are equal (a constant map stays constant).
      const top = a + lx * (b - a), bot = c + lx * (d - c);
      out[y * outW + x] = top + ly * (bot - top);
    }
  }
  return out;
}

/** Min-max normalisation to [0, 1]; a constant map is returned unchanged (LVS `normalize_img`). */
export function minMaxNormalise(v: ArrayLike<number>): Float64Array {
  let lo = Infinity, hi = -Infinity;
  for (let i = 0; i < v.length; i++) { if (v[i] < lo) lo = v[i]; if (v[i] > hi) hi = v[i]; }
  const out = Float64Array.from(v);
  if (hi - lo !== 0) for (let i = 0; i < out.length; i++) out[i] = (out[i] - lo) / (hi - lo);
  return out;
}

/**
 * The threshold of the protocol: `np.sort(pred.flatten())[int(H * W / 2)]`
 * (the upper median of the 224 * 224 values, as the LVS and EZ-VSL test code
 * computes it).
 */
export function medianThreshold(v: ArrayLike<number>): number {
  const s = Float64Array.from(v).sort();
  return s[Math.floor(s.length / 2)];
}

/** An axis-aligned box [xmin, ymin, xmax, ymax] in pixels of the evaluation grid (max exclusive, like numpy slices). */
export type Box = [number, number, number, number];

/**
 * Ground-truth map of the protocol on a size x size grid from integer boxes:
 * each box adds 1 over `[ymin:ymax, xmin:xmax]`; `consensus` (Flickr-SoundNet:
 * several annotators) divides by 2 and clips at 1 (values 0, 0.5, 1),
 * otherwise (VGG-SS, synthetic) the union is binary.
 */
export function gtMap(boxes: Box[], consensus: boolean, size = evalSize): Float64Array {
  const g = new Float64Array(size * size);
  for (const b of boxes) {
    const [x0, y0, x1, y1] = b.map((v) => Math.max(0, Math.min(size, Math.trunc(v))));
    for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) g[y * size + x] += 1;
  }
  for (let i = 0; i < g.length; i++) g[i] = consensus ? Math.min(1, g[i] / 2) : g[i] > 0 ? 1 : 0;
  return g;
}

/** cIoU of one image: sum(mask * gt) / (sum(gt) + sum(mask * [gt == 0])). */
export function ciou(mask: ArrayLike<number>, gt: ArrayLike<number>): number {
  let inter = 0, sgt = 0, outside = 0;
  for (let i = 0; i < gt.length; i++) {
    inter += mask[i] * gt[i];
    sgt += gt[i];
    if (gt[i] === 0) outside += mask[i];
  }
  const den = sgt + outside;
  return den > 0 ? inter / den : 0;
}

/**
 * Expected pointing hit: the share of the map's maximal pixels that lie in
 * the ground truth (gt > 0). With one maximum this is 1 or 0; ties are
 * broken uniformly at random in expectation, so a uniform map scores the GT
 * area share (the chance level) instead of the top-left pixel's fate.
 */
export function pointingHit(map: ArrayLike<number>, gt: ArrayLike<number>): number {
  let hi = -Infinity;
  for (let i = 0; i < map.length; i++) if (map[i] > hi) hi = map[i];
  let n = 0, inside = 0;
  for (let i = 0; i < map.length; i++) if (map[i] === hi) { n++; if (gt[i] > 0) inside++; }
  return n ? inside / n : 0;
}

/** Share of the map's mass (negative values clipped to 0) that lies where gt > 0; a zero map gives the area share. */
export function massInside(map: ArrayLike<number>, gt: ArrayLike<number>): number {
  let tot = 0, inside = 0, area = 0;
  for (let i = 0; i < map.length; i++) {
    const v = map[i] > 0 ? map[i] : 0;
    tot += v;
    if (gt[i] > 0) { inside += v; area++; }
  }
  return tot > 0 ? inside / tot : area / map.length;
}

/** Share of the grid where gt > 0: the chance level of pointing and of mass. */
export function areaShare(gt: ArrayLike<number>): number {
  let a = 0;
  for (let i = 0; i < gt.length; i++) if (gt[i] > 0) a++;
  return a / gt.length;
}

/** Everything measured on one image. */
export interface LocalizationScore {
  ciou: number;
  pointing: number;
  mass: number;
  /** GT area share (gt > 0): chance level of pointing and mass. */
  area: number;
}

/**
 * Scores one map [h, w] against a ground-truth map on the 224 grid: bilinear
 * upsample (align_corners=False), min-max normalise, mask = pred >= median
 * threshold, cIoU; pointing and mass on the upsampled map before
 * normalisation (mass needs the map's own scale: attention maps are
 * probabilities).
 */
export function scoreMap(map: ArrayLike<number>, h: number, w: number, gt: Float64Array, size = evalSize): LocalizationScore {
  if (gt.length !== size * size) throw new RangeError(`gt has ${gt.length} values, expected ${size}x${size}`);
  const up = upsampleBilinear(map, h, w, size, size);
  const pred = minMaxNormalise(up);
  const thr = medianThreshold(pred);
  const mask = new Uint8Array(pred.length);
  for (let i = 0; i < pred.length; i++) mask[i] = pred[i] >= thr ? 1 : 0;
  return { ciou: ciou(mask, gt), pointing: pointingHit(up, gt), mass: massInside(up, gt), area: areaShare(gt) };
}

/** x = 0, 0.05, ..., 1.0 exactly as the protocol computes them (0.05 * i in double precision). */
export const aucThresholds: readonly number[] = Array.from({ length: 21 }, (_, i) => 0.05 * i);

/** Trapezoid area under y(x) (sklearn.metrics.auc for increasing x). */
export function trapezoid(x: readonly number[], y: readonly number[]): number {
  let a = 0;
  for (let i = 1; i < x.length; i++) a += ((x[i] - x[i - 1]) * (y[i] + y[i - 1])) / 2;
  return a;
}

/** Summary over a test set. */
export interface LocalizationSummary {
  n: number;
  /** Share of images with cIoU >= 0.5 (the "cIoU" of published tables). */
  ciou50: number;
  /** Area under share(cIoU >= x), x = 0, 0.05, ..., 1. */
  auc: number;
  meanCiou: number;
  pointing: number;
  mass: number;
  /** Chance level of pointing and mass: mean GT area share. */
  chance: number;
}

/** Aggregates per-image scores the way the LVS / EZ-VSL evaluator does. */
export function summariseLocalization(scores: LocalizationScore[]): LocalizationSummary {
  const n = scores.length;
  if (!n) return { n: 0, ciou50: NaN, auc: NaN, meanCiou: NaN, pointing: NaN, mass: NaN, chance: NaN };
  const c = scores.map((s) => s.ciou);
  const share = (t: number) => c.filter((v) => v >= t).length / n;
  const mean = (f: (s: LocalizationScore) => number) => scores.reduce((a, s) => a + f(s), 0) / n;
  return {
    n,
    ciou50: share(0.5),
    auc: trapezoid(aucThresholds, aucThresholds.map(share)),
    meanCiou: mean((s) => s.ciou),
    pointing: mean((s) => s.pointing),
    mass: mean((s) => s.mass),
    chance: mean((s) => s.area),
  };
}
