// Sound-source localisation metrics: the two published protocols of
// method.md section 7 (EZ-VSL's and LVS's evaluation code, selectable; each
// exact to the float32 value and checked against a Python transcription by
// test/eval-protocols.test.ts), plus pointing accuracy and attention mass
// inside the ground truth with their chance levels. Pure TypeScript
// numerics, no native code.

/** Side of the evaluation grid of both protocols. */
export const evalSize = 224;

/**
 * Double-precision resize for pointing, mass and display (cIoU uses
 * {@link protocolUpsample}): bilinear, [h, w] to [outH, outW] with PyTorch's
 * `F.interpolate(mode='bilinear', align_corners=False)` semantics: source
 * coordinate (dst + 0.5) * in/out - 0.5, clamped at 0, neighbours clamped at
 * the last row/column.
 */
export function upsampleBilinear(map: ArrayLike<number>, h: number, w: number, outH = evalSize, outW = evalSize): Float64Array {
  if (map.length !== h * w) throw new RangeError(`map has ${map.length} values, expected ${h}x${w}`);
  const out = new Float64Array(outH * outW);
  const sy = h / outH,
    sx = w / outW;
  const x0s = new Int32Array(outW),
    x1s = new Int32Array(outW),
    lxs = new Float64Array(outW);
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
      const a = map[j0 * w + x0s[x]],
        b = map[j0 * w + x1s[x]],
        c = map[j1 * w + x0s[x]],
        d = map[j1 * w + x1s[x]];
      const lx = lxs[x];
      // Lerp form: exact where neighbours are equal (a constant map stays constant).
      const top = a + lx * (b - a),
        bot = c + lx * (d - c);
      out[y * outW + x] = top + ly * (bot - top);
    }
  }
  return out;
}

/** Min-max normalisation to [0, 1] in double precision; a constant map is returned unchanged (for display: lib/viz). */
export function minMaxNormalise(v: ArrayLike<number>): Float64Array {
  let lo = Infinity,
    hi = -Infinity;
  for (let i = 0; i < v.length; i++) {
    if (v[i] < lo) lo = v[i];
    if (v[i] > hi) hi = v[i];
  }
  const out = Float64Array.from(v);
  if (hi - lo !== 0) for (let i = 0; i < out.length; i++) out[i] = (out[i] - lo) / (hi - lo);
  return out;
}

/**
 * The threshold of both protocols: `np.sort(pred.flatten())[int(H * W / 2)]`
 * (the upper median, NaN sorted last as numpy does).
 */
export function medianThreshold(v: ArrayLike<number>): number {
  const s = Float64Array.from(v).sort();
  return s[Math.floor(s.length / 2)];
}

/** The published evaluation code a localisation score follows (docs/evaluation.md, "Protocols"). */
export type LocalizationProtocol = 'ezvsl' | 'lvs';
export const localizationProtocols: readonly LocalizationProtocol[] = ['ezvsl', 'lvs'];

/** Checks a protocol name (from the CLI or a config), naming the choices. */
export function checkProtocol(p: unknown, what = 'protocol'): LocalizationProtocol {
  if (p === 'ezvsl' || p === 'lvs') return p;
  throw new RangeError(`${what} must be 'ezvsl' (EZ-VSL test.py, the default) or 'lvs' (LVS test.py); got '${String(p)}'`);
}

const f32 = Math.fround;

/**
 * EZ-VSL's upsampling: `F.interpolate(map, (outH, outW), mode='bilinear',
 * align_corners=True)` on a float32 [1, 1, h, w] tensor, value for value as
 * PyTorch's CPU kernel computes it (checked bit for bit against torch 1.13 by
 * test/eval-protocols.test.ts): scale = float(in - 1) / (out - 1), source
 * position scale * d in double, lambda1 = float(position - floor), lambda0 =
 * 1 - lambda1; each output the float32 rounding of the four products
 * float(lambda_y * lambda_x) * v summed. Same size: a copy.
 */
export function resizeAlignCorners(map: ArrayLike<number>, h: number, w: number, outH = evalSize, outW = evalSize): Float32Array {
  if (map.length !== h * w) throw new RangeError(`map has ${map.length} values, expected ${h}x${w}`);
  const axis = (nIn: number, nOut: number) => {
    const i0 = new Int32Array(nOut),
      i1 = new Int32Array(nOut),
      l0 = new Float64Array(nOut),
      l1 = new Float64Array(nOut);
    const scale = nOut > 1 ? f32((nIn - 1) / (nOut - 1)) : 0;
    for (let d = 0; d < nOut; d++) {
      if (nIn === nOut) {
        i0[d] = i1[d] = d;
        l0[d] = 1;
        l1[d] = 0;
        continue;
      }
      const real = scale * d;
      const j = Math.trunc(real);
      i0[d] = j;
      i1[d] = j < nIn - 1 ? j + 1 : j;
      l1[d] = f32(real - j);
      l0[d] = f32(1 - l1[d]);
    }
    return { i0, i1, l0, l1 };
  };
  const ax = axis(w, outW),
    ay = axis(h, outH);
  const src = Float32Array.from(map);
  const out = new Float32Array(outH * outW);
  for (let y = 0; y < outH; y++) {
    const r0 = ay.i0[y] * w,
      r1 = ay.i1[y] * w,
      hy0 = ay.l0[y],
      hy1 = ay.l1[y];
    for (let x = 0; x < outW; x++) {
      const c0 = ax.i0[x],
        c1 = ax.i1[x],
        wx0 = ax.l0[x],
        wx1 = ax.l1[x];
      out[y * outW + x] = f32(
        f32(hy0 * wx0) * src[r0 + c0] + f32(hy0 * wx1) * src[r0 + c1] + f32(hy1 * wx0) * src[r1 + c0] + f32(hy1 * wx1) * src[r1 + c1],
      );
    }
  }
  return out;
}

/**
 * LVS's upsampling: `cv2.resize(map, (outW, outH), interpolation=INTER_LINEAR)`
 * on a float32 map, value for value as OpenCV's generic float path computes it
 * (checked bit for bit against OpenCV 4.6): source position
 * float((d + 0.5) * in / out - 0.5); horizontally a position left of 0 or right of the last
 * pixel takes that pixel, vertically the rows are clamped; each pass is
 * float(float(a * w0) + float(b * w1)), rows first.
 */
export function resizeOpenCvLinear(map: ArrayLike<number>, h: number, w: number, outH = evalSize, outW = evalSize): Float32Array {
  if (map.length !== h * w) throw new RangeError(`map has ${map.length} values, expected ${h}x${w}`);
  const src = Float32Array.from(map);
  if (h === outH && w === outW) return src;
  const coeffs = (nIn: number, nOut: number, horizontal: boolean) => {
    const s = new Int32Array(nOut),
      a0 = new Float64Array(nOut),
      a1 = new Float64Array(nOut);
    const scale = 1 / (nOut / nIn);
    let xmax = nOut;
    for (let d = 0; d < nOut; d++) {
      let fx = f32((d + 0.5) * scale - 0.5);
      let sx = Math.floor(fx);
      fx = f32(fx - sx);
      if (horizontal) {
        if (sx < 0) {
          fx = 0;
          sx = 0;
        }
        if (sx + 1 >= nIn) {
          xmax = Math.min(xmax, d);
          if (sx >= nIn - 1) {
            fx = 0;
            sx = nIn - 1;
          }
        }
      }
      s[d] = sx;
      a0[d] = f32(1 - fx);
      a1[d] = fx;
    }
    return { s, a0, a1, xmax };
  };
  const cx = coeffs(w, outW, true),
    cy = coeffs(h, outH, false);
  const rows = new Map<number, Float32Array>();
  const row = (r: number): Float32Array => {
    const k = Math.min(Math.max(r, 0), h - 1);
    let o = rows.get(k);
    if (o) return o;
    o = new Float32Array(outW);
    const base = k * w;
    for (let x = 0; x < outW; x++) {
      const sx = cx.s[x];
      o[x] = x < cx.xmax ? f32(f32(src[base + sx] * cx.a0[x]) + f32(src[base + sx + 1] * cx.a1[x])) : src[base + sx];
    }
    rows.set(k, o);
    return o;
  };
  const out = new Float32Array(outH * outW);
  for (let y = 0; y < outH; y++) {
    const t0 = row(cy.s[y]),
      t1 = row(cy.s[y] + 1),
      b0 = cy.a0[y],
      b1 = cy.a1[y];
    for (let x = 0; x < outW; x++) out[y * outW + x] = f32(f32(t0[x] * b0) + f32(t1[x] * b1));
  }
  return out;
}

/** The map a protocol thresholds, on the size x size grid: EZ-VSL's F.interpolate(align_corners=True) or LVS's cv2.resize, in float32. */
export function protocolUpsample(
  map: ArrayLike<number>,
  h: number,
  w: number,
  protocol: LocalizationProtocol = 'ezvsl',
  size = evalSize,
): Float32Array {
  return protocol === 'lvs' ? resizeOpenCvLinear(map, h, w, size, size) : resizeAlignCorners(map, h, w, size, size);
}

/** numpy's float32 min-max normalisation (`normalize_img` of both repositories): unchanged when max - min is 0; NaN anywhere gives NaN everywhere. */
function normaliseF32(v: Float32Array): Float32Array {
  let lo = Infinity,
    hi = -Infinity,
    nan = false;
  for (let i = 0; i < v.length; i++) {
    const x = v[i];
    if (x !== x) nan = true;
    if (x < lo) lo = x;
    if (x > hi) hi = x;
  }
  if (nan) return new Float32Array(v.length).fill(NaN);
  const out = Float32Array.from(v);
  const range = f32(hi - lo);
  if (range !== 0) for (let i = 0; i < out.length; i++) out[i] = f32(f32(out[i] - lo) / range);
  return out;
}

/**
 * The binary mask of a protocol from its upsampled map (1 = predicted sounding region).
 * - ezvsl (test.py `validate`, utils.py `Evaluator.cal_CIOU`): pred = min-max
 *   normalised map; thr = sorted(pred)[int(n * 0.5)]; mask = pred >= thr.
 * - lvs (test.py `main`): pred = 1 - normalize_img(-map); thr =
 *   sorted(pred)[int(n / 2)]; pred[pred > thr] = 1; pred[pred < 1] = 0;
 *   mask = pred >= 0.5, i.e. pred > thr or pred >= 1 (a constant map is not
 *   normalised: every pixel when it is >= 0, none when negative).
 */
export function protocolMask(up: Float32Array, protocol: LocalizationProtocol = 'ezvsl'): Uint8Array {
  const mask = new Uint8Array(up.length);
  if (protocol === 'lvs') {
    const neg = new Float32Array(up.length);
    for (let i = 0; i < up.length; i++) neg[i] = -up[i];
    const pred = normaliseF32(neg);
    for (let i = 0; i < pred.length; i++) pred[i] = f32(1 - pred[i]);
    const thr = medianThreshold(pred);
    for (let i = 0; i < pred.length; i++) mask[i] = pred[i] > thr || pred[i] >= 1 ? 1 : 0;
  } else {
    const pred = normaliseF32(up);
    const thr = medianThreshold(pred);
    for (let i = 0; i < pred.length; i++) mask[i] = pred[i] >= thr ? 1 : 0;
  }
  return mask;
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

/**
 * cIoU of one image: sum(mask * gt) / (sum(gt) + sum(mask * [gt == 0])), as
 * both repositories' `Evaluator.cal_CIOU` (NaN for 0 / 0: no GT and an empty
 * mask; the sums are exact, multiples of 0.5).
 */
export function ciou(mask: ArrayLike<number>, gt: ArrayLike<number>): number {
  let inter = 0,
    sgt = 0,
    outside = 0;
  for (let i = 0; i < gt.length; i++) {
    inter += mask[i] * gt[i];
    sgt += gt[i];
    if (gt[i] === 0) outside += mask[i];
  }
  return inter / (sgt + outside);
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
  let n = 0,
    inside = 0;
  for (let i = 0; i < map.length; i++)
    if (map[i] === hi) {
      n++;
      if (gt[i] > 0) inside++;
    }
  return n ? inside / n : 0;
}

/** Share of the map's mass (negative values clipped to 0) that lies where gt > 0; a zero map gives the area share. */
export function massInside(map: ArrayLike<number>, gt: ArrayLike<number>): number {
  let tot = 0,
    inside = 0,
    area = 0;
  for (let i = 0; i < map.length; i++) {
    const v = map[i] > 0 ? map[i] : 0;
    tot += v;
    if (gt[i] > 0) {
      inside += v;
      area++;
    }
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

/** Options of {@link scoreMap}. */
export interface ScoreOptions {
  /** Which published code cIoU follows (default 'ezvsl'). */
  protocol?: LocalizationProtocol;
  /** The same map as probabilities, for mass in the GT (default: `map` itself, negative values clipped). */
  probabilities?: ArrayLike<number>;
  size?: number;
}

/**
 * Scores one map [h, w] against a ground-truth map on the size x size grid:
 * cIoU by the protocol (its float32 upsampling, normalisation, threshold and
 * mask); pointing (the share of the maximal pixels in the GT) on the same map
 * and mass on the probabilities (mass needs a distribution), both upsampled
 * in double precision ({@link upsampleBilinear}), so that a uniform map stays
 * uniform and scores the chance level instead of float32 rounding noise.
 */
export function scoreMap(map: ArrayLike<number>, h: number, w: number, gt: Float64Array, opts: ScoreOptions = {}): LocalizationScore {
  const size = opts.size ?? evalSize;
  const protocol = opts.protocol ?? 'ezvsl';
  if (gt.length !== size * size) throw new RangeError(`gt has ${gt.length} values, expected ${size}x${size}`);
  const mask = protocolMask(protocolUpsample(map, h, w, protocol, size), protocol);
  const up = upsampleBilinear(map, h, w, size, size);
  const prob = opts.probabilities ? upsampleBilinear(opts.probabilities, h, w, size, size) : up;
  return { ciou: ciou(mask, gt), pointing: pointingHit(up, gt), mass: massInside(prob, gt), area: areaShare(gt) };
}

/** x = 0, 0.05, ..., 1.0 exactly as the protocol computes them (0.05 * i in double precision). */
export const aucThresholds: readonly number[] = Array.from({ length: 21 }, (_, i) => 0.05 * i);

/** numpy's pairwise summation of float64 values (np.sum / np.mean of a 1-D array: blocks of 8192, 8 accumulators), so sums match numpy to the bit. */
export function numpySum(v: ArrayLike<number>): number {
  const pairwise = (a: number, n: number): number => {
    if (n < 8) {
      let r = 0;
      for (let i = 0; i < n; i++) r += v[a + i];
      return r;
    }
    if (n <= 128) {
      const r = [v[a], v[a + 1], v[a + 2], v[a + 3], v[a + 4], v[a + 5], v[a + 6], v[a + 7]];
      let i = 8;
      for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += v[a + i + j];
      let res = r[0] + r[1] + (r[2] + r[3]) + (r[4] + r[5] + (r[6] + r[7]));
      for (; i < n; i++) res += v[a + i];
      return res;
    }
    let n2 = Math.floor(n / 2);
    n2 -= n2 % 8;
    return pairwise(a, n2) + pairwise(a + n2, n - n2);
  };
  let total = 0;
  for (let a = 0; a < v.length; a += 8192) {
    const p = pairwise(a, Math.min(8192, v.length - a));
    total = a === 0 ? p : total + p;
  }
  return total;
}

/** Trapezoid area under y(x): sklearn.metrics.auc for increasing x, i.e. np.trapz: sum of (dx * (y[i+1] + y[i])) / 2. */
export function trapezoid(x: readonly number[], y: readonly number[]): number {
  const t: number[] = [];
  for (let i = 1; i < x.length; i++) t.push(((x[i] - x[i - 1]) * (y[i] + y[i - 1])) / 2);
  return numpySum(t);
}

/** Summary over a test set. */
export interface LocalizationSummary {
  n: number;
  /** Share of images with cIoU >= 0.5 (the "cIoU" / "AP50" of published tables). */
  ciou50: number;
  /** Area under share(cIoU >= x), x = 0, 0.05, ..., 1. */
  auc: number;
  meanCiou: number;
  pointing: number;
  mass: number;
  /** Chance level of pointing and mass: mean GT area share. */
  chance: number;
}

/** Aggregates per-image scores the way both evaluators do (cIoU@0.5, AUC, mean cIoU as numpy computes them), plus pointing, mass and chance. */
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
    meanCiou: numpySum(c) / n,
    pointing: mean((s) => s.pointing),
    mass: mean((s) => s.mass),
    chance: mean((s) => s.area),
  };
}
