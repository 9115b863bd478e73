// The synthetic sounding-objects dataset. Each class has a visual identity
// (shape, colour, texture) and a sound identity (a harmonic tone complex in
// its own frequency band with its own amplitude-modulation rhythm). A clip
// shows 1-3 moving objects on a textured, noisy background; 1 or 2 of them
// sound, and a sounding object's size (or brightness) follows its amplitude
// envelope. Frames and audio are rendered here in JS (deterministic for a
// seed), encoded by ffmpeg (lib/data/ffmpeg.ts) to H.264 + AAC .mp4, with a
// ground-truth JSON per clip and a manifest usable by manifestSource.
import * as fs from 'fs';
import * as path from 'path';
import { melBins } from '../audio/mel';
import { encodeClips, type EncodeJob } from './ffmpeg';
import { Prng, mixSeed } from './prng';

/** Object shapes, one per class (cycled with textures past 8 classes). */
export const synthShapes = ['circle', 'square', 'triangle', 'diamond', 'cross', 'ring', 'star', 'hexagon'] as const;
/** A shape name. */
export type SynthShape = (typeof synthShapes)[number];
/** Surface textures: classes 0-7 are solid, 8-15 striped, 16-23 checkered. */
export type SynthTexture = 'solid' | 'stripes' | 'checker';

const colourNames = ['red', 'orange', 'yellow', 'green', 'cyan', 'blue', 'purple', 'magenta'];

/** Lowest and highest frequency the class bands cover (Hz). */
export const synthBandRange: readonly [number, number] = [150, 7000];

/** One class of the synthetic dataset. */
export interface SynthClass {
  index: number;
  name: string;
  shape: SynthShape;
  texture: SynthTexture;
  /** RGB 0-255. */
  colour: [number, number, number];
  /** The class's frequency band in Hz (bands of different classes do not overlap). */
  band: { lo: number; hi: number };
  /** Fundamental and the harmonics of it that lie in the band (Hz). */
  f0: number;
  partials: number[];
  /** Amplitude-modulation rate (Hz) and pulse sharpness (envelope exponent). */
  amRate: number;
  sharpness: number;
  /** Mel bins [first, last] (inclusive) whose centre lies in the band, htk scale 0-8000 Hz, for 128 and 64 mels. */
  mel: { '128': [number, number]; '64': [number, number] };
}

function hsv(h: number, s: number, v: number): [number, number, number] {
  const i = Math.floor(h * 6);
  const f = h * 6 - i;
  const p = v * (1 - s);
  const q = v * (1 - f * s);
  const t = v * (1 - (1 - f) * s);
  const [r, g, b] = [
    [v, t, p],
    [q, v, p],
    [p, v, t],
    [p, q, v],
    [t, p, v],
    [v, p, q],
  ][((i % 6) + 6) % 6];
  return [Math.round(r * 255), Math.round(g * 255), Math.round(b * 255)];
}

const r4 = (x: number): number => Math.round(x * 1e4) / 1e4;

/**
 * The K class definitions (K in 1..24): shapes cycle, hues are spread
 * evenly, bands split 150-7000 Hz logarithmically into K non-overlapping
 * bands (with a small gap between neighbours), AM rates spread over 1-3.5 Hz
 * (below the Nyquist rate of 8 fps video).
 */
export function synthClasses(k = 8): SynthClass[] {
  if (!(Number.isInteger(k) && k >= 1 && k <= 24)) throw new RangeError(`cmac: classes must be an integer in 1..24, got ${k}`);
  const [f0, f1] = synthBandRange;
  const ratio = Math.pow(f1 / f0, 1 / k);
  const guard = Math.pow(ratio, 0.08);
  const out: SynthClass[] = [];
  for (let i = 0; i < k; i++) {
    const lo = f0 * Math.pow(ratio, i) * guard;
    const hi = (f0 * Math.pow(ratio, i + 1)) / guard;
    const fund = (hi - lo) / 3.5;
    const partials: number[] = [];
    for (let n = Math.ceil(lo / fund); n * fund <= hi; n++) partials.push(r4(n * fund));
    const shape = synthShapes[i % 8];
    const texture: SynthTexture = (['solid', 'stripes', 'checker'] as const)[Math.floor(i / 8)];
    const colour = hsv(k <= 8 ? i / 8 : i / k, 0.85, 0.95);
    const cname = k <= 8 ? colourNames[i] : `c${i}`;
    out.push({
      index: i,
      name: `${cname}-${shape}${texture === 'solid' ? '' : `-${texture}`}`,
      shape,
      texture,
      colour,
      band: { lo: r4(lo), hi: r4(hi) },
      f0: r4(fund),
      partials,
      amRate: r4(k === 1 ? 2 : 1 + (2.5 * i) / (k - 1)),
      sharpness: 1 + (i % 3),
      mel: { '128': melBins(lo, hi, 128), '64': melBins(lo, hi, 64) },
    });
  }
  return out;
}

/** Options of {@link renderClip} and {@link synthesize}. */
export interface SynthOptions {
  /** Number of classes (default 8, at most 24). */
  classes?: number;
  /** Frame side in pixels (default 112). */
  size?: number;
  /** Clip length in seconds (default 4). */
  seconds?: number;
  /** Frame rate (default 16). */
  fps?: number;
  /** Audio rate (default 16000). */
  sampleRate?: number;
  /**
   * Large-object mode: the sounding object's box covers 25-50% of the frame
   * (one sounding object, at most one small silent distractor under it).
   */
  largeObjects?: boolean;
  /** Box side of ordinary objects as a share of the frame side (default [0.16, 0.3]). */
  objectSize?: [number, number];
  /** Objects per clip (default [1, 3]) and sounding objects among them (default [1, 2]). */
  objects?: [number, number];
  sounding?: [number, number];
  /** RMS of white background noise in the audio (default 0.02; 0 turns it off). */
  noise?: number;
  /** What a sounding object's envelope drives: 'size' (default), 'brightness' or 'both'. */
  pulse?: 'size' | 'brightness' | 'both';
}

/** One object of a clip's ground truth. */
export interface SynthObjectTruth {
  class: number;
  className: string;
  shape: SynthShape;
  colour: [number, number, number];
  texture: SynthTexture;
  sounding: boolean;
  /** The loudest sounding object (its class is the clip label). */
  dominant: boolean;
  /** Peak amplitude of its sound (0 for silent objects). */
  amplitude: number;
  band: { lo: number; hi: number };
  partials: number[];
  amRate: number;
  mel: { '128': [number, number]; '64': [number, number] };
  /** Per frame: [x0, y0, x1, y1] in pixels (x1, y1 exclusive) of the drawn shape (before occlusion); null when off-frame. */
  boxes: ([number, number, number, number] | null)[];
  /** The same boxes divided by the frame size. */
  boxesNorm: ([number, number, number, number] | null)[];
  /** Per frame: the amplitude envelope (0-1) at the frame's time (1 for silent objects). */
  envelope: number[];
}

/** The ground truth of one clip (written as <clip>.json). */
export interface SynthClipTruth {
  id: string;
  index: number;
  split: string;
  seed: number;
  size: number;
  fps: number;
  frames: number;
  seconds: number;
  sampleRate: number;
  /** Class of the dominant sounding object. */
  label: number;
  className: string;
  largeObjects: boolean;
  background: { kind: string; level: number; noise: number };
  audioNoise: number;
  pulse: 'size' | 'brightness' | 'both';
  /** Drawing order: silent first, dominant last (on top). */
  objects: SynthObjectTruth[];
}

/** A rendered clip: frames [T, S, S, 3] RGB, mono audio, and its ground truth. */
export interface RenderedClip {
  frames: Uint8Array;
  audio: Float32Array;
  truth: SynthClipTruth;
}

type Inside = (u: number, v: number) => boolean;

const SQ3 = Math.sqrt(3) / 2;
const shapeTests: Record<SynthShape, Inside> = {
  circle: (u, v) => u * u + v * v <= 1,
  square: (u, v) => Math.abs(u) <= 0.9 && Math.abs(v) <= 0.9,
  triangle: (u, v) => v >= -0.9 && v <= 0.9 && Math.abs(u) <= (v + 0.9) / 1.8,
  diamond: (u, v) => Math.abs(u) + Math.abs(v) <= 1,
  cross: (u, v) => (Math.abs(u) <= 0.34 && Math.abs(v) <= 0.95) || (Math.abs(v) <= 0.34 && Math.abs(u) <= 0.95),
  ring: (u, v) => {
    const d = u * u + v * v;
    return d <= 1 && d >= 0.3;
  },
  star: (u, v) => {
    const rho = Math.sqrt(u * u + v * v);
    if (rho > 1) return false;
    if (rho < 0.42) return true;
    // Angle from the top point, folded into one 72-degree sector.
    let a = Math.atan2(u, -v);
    const sector = (2 * Math.PI) / 5;
    a = ((a % sector) + sector) % sector;
    const t = Math.abs(a - sector / 2) / (sector / 2); // 1 at a point, 0 between points
    const inner = 0.42;
    // Polygon edge between an outer point (radius 1) and an inner vertex, in polar form (approximate).
    const limit = inner + (1 - inner) * t * t;
    return rho <= limit;
  },
  hexagon: (u, v) => Math.abs(v) <= SQ3 * 0.98 && Math.abs(u) * SQ3 + Math.abs(v) * 0.5 <= SQ3 * 0.98,
};

/** Half-extents [x, y] of each shape's mask in units of its radius (measured on a fine grid). */
const shapeExtent: Record<SynthShape, [number, number]> = (() => {
  const out = {} as Record<SynthShape, [number, number]>;
  const n = 400;
  for (const sh of synthShapes) {
    let ex = 0;
    let ey = 0;
    for (let j = 0; j <= n; j++)
      for (let i = 0; i <= n; i++) {
        const u = (2 * i) / n - 1;
        const v = (2 * j) / n - 1;
        if (shapeTests[sh](u, v)) {
          ex = Math.max(ex, Math.abs(u));
          ey = Math.max(ey, Math.abs(v));
        }
      }
    out[sh] = [ex, ey];
  }
  return out;
})();

interface Obj {
  cls: SynthClass;
  sounding: boolean;
  dominant: boolean;
  amp: number;
  r: number; // base half-side in px
  x: number;
  y: number;
  vx: number;
  vy: number;
  phase: number;
  pulseDepth: number;
}

function envelopeAt(c: SynthClass, phase: number, t: number): number {
  const x = 0.5 - 0.5 * Math.cos(2 * Math.PI * c.amRate * t + phase);
  return 0.1 + 0.9 * Math.pow(x, c.sharpness);
}

function resolved(o: SynthOptions): Required<SynthOptions> {
  const r: Required<SynthOptions> = {
    classes: o.classes ?? 8,
    size: o.size ?? 112,
    seconds: o.seconds ?? 4,
    fps: o.fps ?? 16,
    sampleRate: o.sampleRate ?? 16000,
    largeObjects: o.largeObjects ?? false,
    objectSize: o.objectSize ?? [0.16, 0.3],
    objects: o.objects ?? [1, 3],
    sounding: o.sounding ?? [1, 2],
    noise: o.noise ?? 0.02,
    pulse: o.pulse ?? 'size',
  };
  if (!(Number.isInteger(r.size) && r.size >= 16)) throw new RangeError(`cmac: synth size must be an integer >= 16, got ${r.size}`);
  if (!(r.seconds > 0) || !(r.fps > 0)) throw new RangeError('cmac: synth seconds and fps must be positive');
  if (!(r.objects[0] >= 1 && r.objects[1] >= r.objects[0] && r.objects[1] <= 3))
    throw new RangeError(`cmac: synth objects must lie in 1..3, got ${r.objects.join('..')}`);
  if (!(r.sounding[0] >= 1 && r.sounding[1] >= r.sounding[0] && r.sounding[1] <= 2))
    throw new RangeError(`cmac: synth sounding must lie in 1..2, got ${r.sounding.join('..')}`);
  if (!(r.objectSize[0] > 0 && r.objectSize[1] >= r.objectSize[0] && r.objectSize[1] <= 0.9))
    throw new RangeError(`cmac: synth objectSize must lie in (0, 0.9], got ${r.objectSize.join('..')}`);
  if (!['size', 'brightness', 'both'].includes(r.pulse))
    throw new RangeError(`cmac: synth pulse must be size, brightness or both, got ${r.pulse}`);
  return r;
}

/**
 * Renders clip `index` of the dataset with seed `seed`: frames and audio in
 * memory plus its ground truth. Pure and deterministic: the same (seed,
 * index, options) always gives identical bytes.
 */
export function renderClip(seed: number, index: number, options: SynthOptions = {}, split = ''): RenderedClip {
  const o = resolved(options);
  const classes = synthClasses(o.classes);
  const rng = new Prng(mixSeed(seed, index, 0xc11b));
  const S = o.size;
  const T = Math.max(1, Math.round(o.seconds * o.fps));
  const N = Math.round(o.seconds * o.sampleRate);

  // Which objects: distinct classes; the first nSound sound, the first is dominant.
  // Objects have distinct classes, so there are never more of them than classes (--classes 2 -> at most 2).
  const nObj = Math.min(classes.length, o.largeObjects ? 1 + rng.int(2) : o.objects[0] + rng.int(o.objects[1] - o.objects[0] + 1));
  const nSound = o.largeObjects ? 1 : Math.min(nObj, o.sounding[0] + rng.int(o.sounding[1] - o.sounding[0] + 1));
  const order = rng.shuffle(classes.map((c) => c.index));
  const objs: Obj[] = [];
  const placed: { x: number; y: number; r: number }[] = [];
  for (let i = 0; i < nObj; i++) {
    const sounding = i < nSound;
    const large = o.largeObjects && i === 0;
    let r: number;
    let pulseDepth = sounding && o.pulse !== 'brightness' ? 0.2 : 0;
    if (large) {
      pulseDepth = o.pulse !== 'brightness' ? 0.1 : 0;
      // Box area share in [0.25, 0.5] at every pulse phase (size scale 0.9-1.1).
      const area = rng.uniform(0.26 / 0.81, 0.49 / 1.21);
      const [ex, ey] = shapeExtent[classes[order[i]].shape];
      r = Math.sqrt((area * S * S) / (4 * ex * ey));
    } else if (o.largeObjects) {
      r = (rng.uniform(0.12, 0.18) * S) / 2;
    } else {
      r = (rng.uniform(o.objectSize[0], o.objectSize[1]) * S) / 2;
    }
    const rMax = r * (1 + pulseDepth);
    const lo = rMax + 1;
    const hi = S - rMax - 1;
    let x = S / 2;
    let y = S / 2;
    for (let t = 0; t < 20; t++) {
      x = hi > lo ? rng.uniform(lo, hi) : S / 2;
      y = hi > lo ? rng.uniform(lo, hi) : S / 2;
      if (placed.every((p) => Math.hypot(p.x - x, p.y - y) > (p.r + rMax) * 0.9)) break;
    }
    placed.push({ x, y, r: rMax });
    const speed = (large ? rng.uniform(0.02, 0.08) : rng.uniform(0.05, 0.25)) * S;
    const dir = rng.uniform(0, 2 * Math.PI);
    objs.push({
      cls: classes[order[i]],
      sounding,
      dominant: i === 0,
      amp: i === 0 ? 0.5 : sounding ? 0.25 : 0,
      r,
      x,
      y,
      vx: speed * Math.cos(dir),
      vy: speed * Math.sin(dir),
      phase: rng.uniform(0, 2 * Math.PI),
      pulseDepth,
    });
  }

  // Background: a grey-ish texture with a slight tint, plus per-frame noise.
  const kinds = ['blobs', 'stripes', 'checker', 'gradient'] as const;
  const kind = kinds[rng.int(kinds.length)];
  const level = rng.uniform(70, 150);
  const tint = [rng.uniform(-12, 12), rng.uniform(-12, 12), rng.uniform(-12, 12)];
  const bg = new Float32Array(S * S);
  if (kind === 'blobs') {
    const blobs = Array.from({ length: 6 }, () => ({
      x: rng.uniform(0, S),
      y: rng.uniform(0, S),
      s: rng.uniform(0.1, 0.35) * S,
      a: rng.uniform(-40, 40),
    }));
    for (let y = 0; y < S; y++)
      for (let x = 0; x < S; x++) {
        let v = 0;
        for (const b of blobs) v += b.a * Math.exp(-((x - b.x) ** 2 + (y - b.y) ** 2) / (2 * b.s * b.s));
        bg[y * S + x] = v;
      }
  } else if (kind === 'stripes') {
    const ang = rng.uniform(0, Math.PI);
    const per = rng.uniform(0.08, 0.25) * S;
    const a = rng.uniform(10, 30);
    const c = Math.cos(ang);
    const s = Math.sin(ang);
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) bg[y * S + x] = a * Math.sin((2 * Math.PI * (x * c + y * s)) / per);
  } else if (kind === 'checker') {
    const cell = Math.max(2, Math.round(rng.uniform(0.06, 0.15) * S));
    const a = rng.uniform(10, 25);
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) bg[y * S + x] = (Math.floor(x / cell) + Math.floor(y / cell)) % 2 ? a : -a;
  } else {
    const gx = rng.uniform(-50, 50);
    const gy = rng.uniform(-50, 50);
    for (let y = 0; y < S; y++) for (let x = 0; x < S; x++) bg[y * S + x] = (gx * (x - S / 2)) / S + (gy * (y - S / 2)) / S;
  }
  const base = new Uint8Array(S * S * 3);
  for (let i = 0; i < S * S; i++) {
    for (let ch = 0; ch < 3; ch++) base[i * 3 + ch] = Math.max(0, Math.min(255, Math.round(level + tint[ch] + bg[i])));
  }
  const pixNoise = rng.uniform(3, 10);
  const noiseLen = 4093;
  const frameLen = S * S * 3;
  // A noise table one frame longer than the period, read at a random offset per frame.
  const noise = new Int16Array(frameLen + noiseLen);
  for (let i = 0; i < noiseLen; i++) noise[i] = Math.round(Math.max(-3, Math.min(3, rng.normal())) * pixNoise);
  for (let i = noiseLen; i < noise.length; i++) noise[i] = noise[i - noiseLen];

  // Frames. Draw order: silent distractors, then the sounding ones, the dominant last.
  const drawOrder = [...objs].reverse();
  const frames = new Uint8Array(T * S * S * 3);
  const truthBoxes = new Map<Obj, ([number, number, number, number] | null)[]>();
  const truthEnv = new Map<Obj, number[]>();
  for (const ob of objs) {
    truthBoxes.set(ob, []);
    truthEnv.set(ob, []);
  }
  const pos = objs.map((ob) => ({ x: ob.x, y: ob.y, vx: ob.vx, vy: ob.vy }));
  const dt = 1 / o.fps;
  for (let f = 0; f < T; f++) {
    const t = f / o.fps;
    const frame = frames.subarray(f * S * S * 3, (f + 1) * S * S * 3);
    const off = rng.int(noiseLen);
    for (let i = 0; i < frameLen; i++) {
      const v = base[i] + noise[i + off];
      frame[i] = v < 0 ? 0 : v > 255 ? 255 : v;
    }
    for (const ob of drawOrder) {
      const p = pos[objs.indexOf(ob)];
      const env = ob.sounding ? envelopeAt(ob.cls, ob.phase, t) : 1;
      truthEnv.get(ob)!.push(r4(env));
      const scale = ob.sounding ? 1 - ob.pulseDepth + 2 * ob.pulseDepth * env : 1;
      const bright = ob.sounding && o.pulse !== 'size' ? 0.6 + 0.4 * env : 1;
      const r = ob.r * scale;
      const test = shapeTests[ob.cls.shape];
      const [cr, cg, cb] = ob.cls.colour;
      let x0 = S;
      let y0 = S;
      let x1 = -1;
      let y1 = -1;
      const ya = Math.max(0, Math.floor(p.y - r));
      const yb = Math.min(S - 1, Math.ceil(p.y + r));
      const xa = Math.max(0, Math.floor(p.x - r));
      const xb = Math.min(S - 1, Math.ceil(p.x + r));
      for (let y = ya; y <= yb; y++) {
        const v = (y + 0.5 - p.y) / r;
        for (let x = xa; x <= xb; x++) {
          const u = (x + 0.5 - p.x) / r;
          if (!test(u, v)) continue;
          let shade = bright;
          if (ob.cls.texture === 'stripes' && Math.floor((v + 1) * 4) % 2 === 1) shade *= 0.55;
          else if (ob.cls.texture === 'checker' && (Math.floor((u + 1) * 3) + Math.floor((v + 1) * 3)) % 2 === 1) shade *= 0.55;
          const k = (y * S + x) * 3;
          frame[k] = Math.round(cr * shade);
          frame[k + 1] = Math.round(cg * shade);
          frame[k + 2] = Math.round(cb * shade);
          if (x < x0) x0 = x;
          if (x > x1) x1 = x;
          if (y < y0) y0 = y;
          if (y > y1) y1 = y;
        }
      }
      truthBoxes.get(ob)!.push(x1 >= 0 ? [x0, y0, x1 + 1, y1 + 1] : null);
    }
    // Move and bounce inside the frame.
    objs.forEach((ob, i) => {
      const p = pos[i];
      const rMax = ob.r * (1 + ob.pulseDepth) + 1;
      p.x += p.vx * dt;
      p.y += p.vy * dt;
      if (p.x < rMax) {
        p.x = Math.min(S / 2, 2 * rMax - p.x);
        p.vx = Math.abs(p.vx);
      } else if (p.x > S - rMax) {
        p.x = Math.max(S / 2, 2 * (S - rMax) - p.x);
        p.vx = -Math.abs(p.vx);
      }
      if (p.y < rMax) {
        p.y = Math.min(S / 2, 2 * rMax - p.y);
        p.vy = Math.abs(p.vy);
      } else if (p.y > S - rMax) {
        p.y = Math.max(S / 2, 2 * (S - rMax) - p.y);
        p.vy = -Math.abs(p.vy);
      }
    });
  }

  // Audio: each sounding object's tone complex times its envelope, plus noise.
  const audio = new Float32Array(N);
  const sr = o.sampleRate;
  const scratch = new Float32Array(N);
  for (const ob of objs) {
    if (!ob.sounding) continue;
    scratch.fill(0);
    const parts = ob.cls.partials.filter((f) => f < sr / 2);
    const amps = parts.map((_, j) => 1 / (1 + 0.3 * j));
    const norm = amps.reduce((a, b) => a + b, 0);
    const prng = new Prng(mixSeed(seed, index, ob.cls.index, 0xa0d1));
    for (let j = 0; j < parts.length; j++) {
      const w = (2 * Math.PI * parts[j]) / sr;
      const a = amps[j] / norm;
      const ph = prng.uniform(0, 2 * Math.PI);
      // Sine by recurrence (s[n+1] = 2 cos(w) s[n] - s[n-1]), re-anchored every 4096 samples.
      const c2 = 2 * Math.cos(w);
      for (let i0 = 0; i0 < N; i0 += 4096) {
        let s1 = Math.sin(w * (i0 - 1) + ph);
        let s0 = Math.sin(w * i0 + ph);
        const end = Math.min(N, i0 + 4096);
        for (let i = i0; i < end; i++) {
          scratch[i] += a * s0;
          const nx = c2 * s0 - s1;
          s1 = s0;
          s0 = nx;
        }
      }
    }
    // Envelope evaluated every 16 samples (1 ms) and interpolated linearly.
    const step = 16;
    let e0 = envelopeAt(ob.cls, ob.phase, 0);
    for (let i0 = 0; i0 < N; i0 += step) {
      const e1 = envelopeAt(ob.cls, ob.phase, (i0 + step) / sr);
      const end = Math.min(N, i0 + step);
      for (let i = i0; i < end; i++) audio[i] += ob.amp * (e0 + ((e1 - e0) * (i - i0)) / step) * scratch[i];
      e0 = e1;
    }
  }
  if (o.noise > 0) {
    // White noise, uniform with the asked RMS.
    const nr = new Prng(mixSeed(seed, index, 0x401e));
    const a = o.noise * Math.sqrt(3);
    for (let i = 0; i < N; i++) audio[i] += a * (2 * nr.next() - 1);
  }
  const fade = Math.min(N >> 1, Math.round(0.01 * sr));
  for (let i = 0; i < fade; i++) {
    const g = i / fade;
    audio[i] *= g;
    audio[N - 1 - i] *= g;
  }
  let peak = 0;
  for (let i = 0; i < N; i++) peak = Math.max(peak, Math.abs(audio[i]));
  if (peak > 0.95) for (let i = 0; i < N; i++) audio[i] *= 0.95 / peak;

  const dom = objs[0];
  const truth: SynthClipTruth = {
    id: clipName(index),
    index,
    split,
    seed,
    size: S,
    fps: o.fps,
    frames: T,
    seconds: o.seconds,
    sampleRate: sr,
    label: dom.cls.index,
    className: dom.cls.name,
    largeObjects: o.largeObjects,
    background: { kind, level: r4(level), noise: r4(pixNoise) },
    audioNoise: o.noise,
    pulse: o.pulse,
    objects: drawOrder.map((ob) => ({
      class: ob.cls.index,
      className: ob.cls.name,
      shape: ob.cls.shape,
      colour: ob.cls.colour,
      texture: ob.cls.texture,
      sounding: ob.sounding,
      dominant: ob.dominant,
      amplitude: ob.amp,
      band: ob.cls.band,
      partials: ob.cls.partials,
      amRate: ob.cls.amRate,
      mel: ob.cls.mel,
      boxes: truthBoxes.get(ob)!,
      boxesNorm: truthBoxes.get(ob)!.map((b) => (b ? [r4(b[0] / S), r4(b[1] / S), r4(b[2] / S), r4(b[3] / S)] : null)),
      envelope: truthEnv.get(ob)!,
    })),
  };
  return { frames, audio, truth };
}

/** File stem of clip i: `clip-000042`. */
export function clipName(i: number): string {
  return `clip-${String(i).padStart(6, '0')}`;
}

/** Options of {@link synthesize}. */
export interface SynthesizeOptions extends SynthOptions {
  /** Output folder (created). */
  out: string;
  /** Number of clips. */
  clips: number;
  /** Seed (default 0). */
  seed?: number;
  /** Train / val / test shares (default [0.8, 0.1, 0.1]). */
  splits?: [number, number, number];
  /** ffmpeg encoder processes at once (default 2) and clips per process (default 8). */
  jobs?: number;
  clipsPerProcess?: number;
  /** Called after each encoded group. */
  onProgress?: (done: number, total: number) => void;
}

/** What {@link synthesize} wrote. */
export interface SynthResult {
  out: string;
  clips: number;
  manifest: string;
  counts: { train: number; val: number; test: number };
  seconds: number;
  clipsPerSecond: number;
}

/** The split of each clip: exact shares, assigned by a seeded permutation. */
export function synthSplits(n: number, seed: number, shares: [number, number, number] = [0.8, 0.1, 0.1]): string[] {
  const sum = shares[0] + shares[1] + shares[2];
  const nTrain = Math.round((n * shares[0]) / sum);
  const nVal = Math.min(n - nTrain, Math.round((n * shares[1]) / sum));
  const perm = new Prng(mixSeed(seed, 0x5b1)).shuffle(Array.from({ length: n }, (_, i) => i));
  const out = new Array<string>(n);
  perm.forEach((idx, k) => {
    out[idx] = k < nTrain ? 'train' : k < nTrain + nVal ? 'val' : 'test';
  });
  return out;
}

function middleBoxes(t: SynthClipTruth): number[][] {
  const mid = Math.floor(t.frames / 2);
  return t.objects.filter((o) => o.sounding && o.boxesNorm[mid]).map((o) => o.boxesNorm[mid]!);
}

/**
 * Writes the synthetic dataset: `<split>/clip-NNNNNN.mp4` (H.264 yuv420p +
 * AAC, 16 kHz mono) and `.json` ground truth per clip, `manifest.jsonl`
 * (path, label, className, split, gt, sounding classes, boxes of the sounding
 * objects at the middle frame, normalised), `classes.json` and `synth.json`
 * (the options). Rendering is JS on this thread; encoding runs `jobs` ffmpeg
 * processes of `clipsPerProcess` clips each in parallel. Deterministic: the
 * same seed and options give byte-identical JSON and identical frames.
 */
export async function synthesize(opts: SynthesizeOptions): Promise<SynthResult> {
  const o = resolved(opts);
  const seed = opts.seed ?? 0;
  const n = opts.clips;
  if (!(Number.isInteger(n) && n >= 1)) throw new RangeError(`cmac: clips must be a positive integer, got ${n}`);
  const out = path.resolve(opts.out);
  const jobs = Math.max(1, opts.jobs ?? 2);
  const per = Math.max(1, opts.clipsPerProcess ?? 8);
  const splits = synthSplits(n, seed, opts.splits);
  const classes = synthClasses(o.classes);
  for (const s of ['train', 'val', 'test']) fs.mkdirSync(path.join(out, s), { recursive: true });
  fs.writeFileSync(
    path.join(out, 'classes.json'),
    JSON.stringify(
      {
        classes,
        bandRange: synthBandRange,
        mel: {
          scale: 'htk',
          fMin: 0,
          fMax: 8000,
          nFft: 1024,
          sampleRate: 16000,
          note: 'mel = [first, last] filter index whose centre lies in the band',
        },
      },
      null,
      1,
    ) + '\n',
  );
  fs.writeFileSync(
    path.join(out, 'synth.json'),
    JSON.stringify({ seed, clips: n, splits: opts.splits ?? [0.8, 0.1, 0.1], ...o }, null, 1) + '\n',
  );
  const t0 = Date.now();
  const lines: string[] = new Array(n);
  const running = new Set<Promise<void>>();
  let done = 0;
  let failure: unknown;
  for (let g = 0; g < n; g += per) {
    const group: EncodeJob[] = [];
    for (let i = g; i < Math.min(n, g + per); i++) {
      const split = splits[i];
      const clip = renderClip(seed, i, o, split);
      const rel = `${split}/${clipName(i)}`;
      fs.writeFileSync(path.join(out, `${rel}.json`), JSON.stringify(clip.truth) + '\n');
      lines[i] = JSON.stringify({
        path: `${rel}.mp4`,
        label: clip.truth.label,
        className: clip.truth.className,
        split,
        gt: `${rel}.json`,
        sounding: clip.truth.objects.filter((x) => x.sounding).map((x) => x.class),
        boxes: middleBoxes(clip.truth),
      });
      group.push({
        out: path.join(out, `${rel}.mp4`),
        video: clip.frames,
        width: o.size,
        height: o.size,
        fps: o.fps,
        audio: clip.audio,
        sampleRate: o.sampleRate,
      });
      // Let finished encoders report while we render.
      await new Promise<void>((r) => setImmediate(r));
    }
    while (running.size >= jobs) await Promise.race(running);
    if (failure) throw failure;
    const p: Promise<void> = encodeClips(group).then(
      () => {
        running.delete(p);
        done += group.length;
        opts.onProgress?.(done, n);
      },
      (e) => {
        running.delete(p);
        failure ??= e;
      },
    );
    running.add(p);
  }
  await Promise.all(running);
  if (failure) throw failure;
  const manifest = path.join(out, 'manifest.jsonl');
  fs.writeFileSync(manifest, lines.join('\n') + '\n');
  const seconds = (Date.now() - t0) / 1000;
  const counts = { train: 0, val: 0, test: 0 };
  for (const s of splits) counts[s as keyof typeof counts]++;
  return { out, clips: n, manifest, counts, seconds, clipsPerSecond: n / seconds };
}
