// Clip augmentation done in JS on decoded RGB frames, for clips cut from the
// train-mode video cache (lib/data/videocache.ts): crop + resize (separable
// triangle filter, like ffmpeg's `scale=...:flags=bilinear`), horizontal flip
// and the colour jitter of ffmpeg's `eq` filter (same integer arithmetic on
// BT.601 limited-range Y'CbCr as vf_eq.c). Everything works on typed arrays
// with tables built once per clip; no allocation per pixel.
import type { CropRect, Jitter } from './ffmpeg';

/**
 * Resampling taps of one axis: output o reads the `count[o]` source indices
 * start[o], start[o] + 1, ... with weights w[o * taps ..].
 */
export interface AxisTaps {
  taps: number;
  start: Int32Array;
  count: Int32Array;
  w: Float32Array;
  /** Smallest and largest source index read. */
  lo: number;
  hi: number;
}

/**
 * Taps that resample the source span [start, start + len) (pixel i covers
 * [i, i + 1)) onto `out` pixels: a triangle filter whose radius is one source
 * pixel when enlarging (bilinear interpolation) and `len / out` source pixels
 * when shrinking (like swscale's bilinear and PIL's BILINEAR), the weight of
 * taps past the border moved onto the edge pixel, weights normalised. `flip`
 * mirrors the output.
 */
export function axisTaps(srcLen: number, start: number, len: number, out: number, flip = false): AxisTaps {
  const scale = len / out;
  const radius = Math.max(1, scale);
  const taps = Math.min(srcLen, Math.ceil(2 * radius) + 1);
  const first = new Int32Array(out);
  const count = new Int32Array(out);
  const w = new Float32Array(out * taps);
  const tw = new Float64Array(srcLen);
  let lo = srcLen - 1;
  let hi = 0;
  for (let o = 0; o < out; o++) {
    const centre = start + (o + 0.5) * scale;
    const i0 = Math.floor(centre - radius - 0.5) + 1;
    const i1 = Math.ceil(centre + radius - 0.5) - 1;
    // Source indices come in order and clamping keeps them contiguous: [a, b].
    let a = -1;
    let b = -1;
    let sum = 0;
    for (let i = i0; i <= i1; i++) {
      const d = Math.abs(i + 0.5 - centre) / radius;
      if (d >= 1) continue;
      const ci = i < 0 ? 0 : i >= srcLen ? srcLen - 1 : i;
      if (a < 0) {
        a = b = ci;
        tw[ci] = 0;
      } else if (ci > b) {
        b = ci;
        tw[ci] = 0;
      }
      tw[ci] += 1 - d;
      sum += 1 - d;
    }
    if (a < 0) {
      // No tap (cannot happen for len > 0): the nearest pixel.
      a = b = Math.max(0, Math.min(srcLen - 1, Math.floor(centre)));
      tw[a] = 1;
      sum = 1;
    }
    const row = flip ? out - 1 - o : o;
    first[row] = a;
    count[row] = b - a + 1;
    for (let k = a; k <= b; k++) w[row * taps + k - a] = tw[k] / sum;
    if (a < lo) lo = a;
    if (b > hi) hi = b;
  }
  return { taps, start: first, count, w, lo, hi };
}

/** A crop + resize (+ flip) from a srcW x srcH RGB frame to size x size, built once per clip. */
export interface CropResize {
  size: number;
  srcW: number;
  srcH: number;
  x: AxisTaps;
  y: AxisTaps;
  /** Scratch of the horizontal pass: rows y.lo..y.hi, size x 3 each. */
  tmp: Float32Array;
  /** Scratch of the vertical pass: one output row. */
  acc: Float32Array;
}

/** Tables for {@link cropResizeFrame}: `crop` in source pixels (fractional allowed), clamped to the frame. */
export function cropResize(srcW: number, srcH: number, crop: CropRect, size: number, flip = false): CropResize {
  const x0 = Math.max(0, Math.min(srcW - 1e-3, crop.x));
  const y0 = Math.max(0, Math.min(srcH - 1e-3, crop.y));
  const cw = Math.max(1e-3, Math.min(srcW - x0, crop.w));
  const ch = Math.max(1e-3, Math.min(srcH - y0, crop.h));
  const x = axisTaps(srcW, x0, cw, size, flip);
  const y = axisTaps(srcH, y0, ch, size, false);
  return { size, srcW, srcH, x, y, tmp: new Float32Array((y.hi - y.lo + 1) * size * 3), acc: new Float32Array(size * 3) };
}

/**
 * Resamples one RGB frame (srcW x srcH x 3 bytes at `src[srcOff..]`) into a
 * size x size x 3 frame at `dst[dstOff..]` with the tables of {@link cropResize}.
 */
export function cropResizeFrame(r: CropResize, src: Uint8Array, srcOff: number, dst: Uint8Array, dstOff: number): void {
  const S = r.size;
  const rowBytes = r.srcW * 3;
  const { taps: tx, start: sx, count: cx, w: wx } = r.x;
  const { taps: ty, start: sy, count: cy, w: wy, lo: ylo, hi: yhi } = r.y;
  const tmp = r.tmp;
  const line = S * 3;
  // Horizontal pass over the source rows the vertical taps read.
  for (let row = ylo; row <= yhi; row++) {
    const srow = srcOff + row * rowBytes;
    let t = (row - ylo) * line;
    for (let o = 0; o < S; o++) {
      let p = srow + sx[o] * 3;
      const n = cx[o];
      let k = o * tx;
      let a = 0;
      let b = 0;
      let c = 0;
      for (let j = 0; j < n; j++) {
        const wt = wx[k++];
        a += wt * src[p];
        b += wt * src[p + 1];
        c += wt * src[p + 2];
        p += 3;
      }
      tmp[t] = a;
      tmp[t + 1] = b;
      tmp[t + 2] = c;
      t += 3;
    }
  }
  // Vertical pass into the output, one weighted row at a time.
  const acc = r.acc;
  for (let oy = 0; oy < S; oy++) {
    const n = cy[oy];
    let k = oy * ty;
    let off = (sy[oy] - ylo) * line;
    let wt = wy[k++];
    for (let j = 0; j < line; j++) acc[j] = wt * tmp[off + j];
    for (let m = 1; m < n; m++) {
      off += line;
      wt = wy[k++];
      for (let j = 0; j < line; j++) acc[j] += wt * tmp[off + j];
    }
    const d = dstOff + oy * line;
    for (let j = 0; j < line; j++) {
      const v = (acc[j] + 0.5) | 0;
      dst[d + j] = v > 255 ? 255 : v < 0 ? 0 : v;
    }
  }
}

const FIX = 65536;
const HALF = 32768;
function table(f: (i: number) => number): Int32Array {
  const t = new Int32Array(256);
  for (let i = 0; i < 256; i++) t[i] = Math.round(f(i) * FIX);
  return t;
}
// BT.601 limited range (swscale's default for yuv420p without colour metadata), 16-bit fixed point.
const yR = table((i) => 16 + 0.256788 * i);
const yG = table((i) => 0.504129 * i);
const yB = table((i) => 0.097906 * i);
const uR = table((i) => 128 - 0.148223 * i);
const uG = table((i) => -0.290993 * i);
const uB = table((i) => 0.439216 * i);
const vR = table((i) => 128 + 0.439216 * i);
const vG = table((i) => -0.367788 * i);
const vB = table((i) => -0.071427 * i);
const yy = table((i) => 1.164383 * (i - 16));
const rV = table((i) => 1.596027 * (i - 128));
const gU = table((i) => -0.391762 * (i - 128));
const gV = table((i) => -0.812968 * (i - 128));
const bU = table((i) => 2.017232 * (i - 128));

/** vf_eq.c's process_c as a table: pel = ((src * contrast) >> 12) + brightness, clamped. */
function eqTable(contrast: number, brightness: number): Uint8Array {
  const C = Math.trunc(contrast * 256 * 16);
  const B = Math.trunc((Math.trunc(100 * brightness + 100) * 511) / 200) - 128 - Math.trunc(C / 32);
  const t = new Uint8Array(256);
  for (let i = 0; i < 256; i++) {
    const v = ((i * C) >> 12) + B;
    t[i] = v < 0 ? 0 : v > 255 ? 255 : v;
  }
  return t;
}

const identity = Uint8Array.from({ length: 256 }, (_, i) => i);

/**
 * ffmpeg `eq` (brightness, contrast, saturation; gamma 1) on RGB pixels, as
 * the decode path applies it: RGB -> 8-bit BT.601 limited-range Y'CbCr,
 * vf_eq.c's integer formula per plane (luma: contrast and brightness, where
 * brightness is truncated to steps of 0.01; chroma: contrast = saturation,
 * brightness 0), clamped to 0..255, then back to RGB. A plane whose
 * parameters are neutral is left as is, like vf_eq. The difference to
 * ffmpeg: chroma is processed at full resolution here (yuv420p there) and the
 * pixels go through one more RGB <-> Y'CbCr rounding. In place on `count`
 * pixels from byte `off`.
 */
export function applyEq(px: Uint8Array, off: number, count: number, j: Jitter): void {
  const lumaOn = !(j.contrast === 1 && j.brightness === 0);
  const chromaOn = j.saturation !== 1;
  if (!lumaOn && !chromaOn) return;
  const ly = lumaOn ? eqTable(j.contrast, j.brightness) : identity;
  const lc = chromaOn ? eqTable(j.saturation, 0) : identity;
  const end = off + count * 3;
  for (let p = off; p < end; p += 3) {
    const R = px[p];
    const G = px[p + 1];
    const B = px[p + 2];
    let u = (uR[R] + uG[G] + uB[B] + HALF) >> 16;
    let v = (vR[R] + vG[G] + vB[B] + HALF) >> 16;
    const y = ly[(yR[R] + yG[G] + yB[B] + HALF) >> 16];
    u = lc[u];
    v = lc[v];
    const l = yy[y] + HALF;
    const r = (l + rV[v]) >> 16;
    const g = (l + gU[u] + gV[v]) >> 16;
    const b = (l + bU[u]) >> 16;
    px[p] = r < 0 ? 0 : r > 255 ? 255 : r;
    px[p + 1] = g < 0 ? 0 : g > 255 ? 255 : g;
    px[p + 2] = b < 0 ? 0 : b > 255 ? 255 : b;
  }
}

/**
 * A whole clip: `frames` RGB frames of srcW x srcH, the first at
 * `src[srcOff..]` and each `srcStride` bytes after the previous, cropped,
 * resized to size x size, flipped and jittered into a new
 * frames x size x size x 3 array.
 */
export function augmentFrames(
  src: Uint8Array,
  srcOff: number,
  srcStride: number,
  frames: number,
  srcW: number,
  srcH: number,
  o: { crop: CropRect; size: number; flip?: boolean; jitter?: Jitter },
): Uint8Array {
  const S = o.size;
  const out = new Uint8Array(frames * S * S * 3);
  const r = cropResize(srcW, srcH, o.crop, S, o.flip ?? false);
  for (let f = 0; f < frames; f++) cropResizeFrame(r, src, srcOff + f * srcStride, out, f * S * S * 3);
  if (o.jitter) applyEq(out, 0, frames * S * S, o.jitter);
  return out;
}

/** Working frame size for the cache: the shorter side min(itself, ceil(size * scale)), aspect kept. */
export function workingSize(srcW: number, srcH: number, size: number, scale: number): { width: number; height: number } {
  const short = Math.min(srcW, srcH);
  const target = Math.min(short, Math.ceil(size * scale));
  if (target >= short) return { width: srcW, height: srcH };
  const f = target / short;
  return srcW <= srcH
    ? { width: target, height: Math.max(1, Math.round(srcH * f)) }
    : { width: Math.max(1, Math.round(srcW * f)), height: target };
}
