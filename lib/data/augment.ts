// Where a clip is taken from a video and how it is augmented (method.md s1).
// Visual augmentation becomes ffmpeg filter arguments (crop+scale, hflip, eq);
// audio gain and time shift are applied here on the decoded PCM. All choices
// come from a Prng seeded by (seed, epoch, sample index, clip index).
import { DataError } from './errors';
import type { CropRect, Jitter, ProbeInfo } from './ffmpeg';
import type { Prng } from './prng';

/** Clip geometry (the fields of presets' ClipShape). */
export interface ClipGeometry {
  /** Video frames per clip. */
  frames: number;
  /** Frame rate the clip is sampled at. */
  fps: number;
  /** Output frames are size x size. */
  size: number;
  /** Length of the audio window, centred on the video clip. */
  audioSeconds: number;
  /** Audio rate (mono). */
  sampleRate: number;
}

/** Training augmentation; every field may be `false` to turn that part off. */
export interface AugmentOptions {
  /** Random resized crop: area share and aspect range (default scale [0.25, 1], ratio [3/4, 4/3]). */
  crop?: false | { scale?: [number, number]; ratio?: [number, number] };
  /** Probability of a horizontal flip (default 0.5). */
  flip?: false | number;
  /**
   * Colour jitter strengths (defaults 0.2 / 0.4 / 0.4): brightness is added
   * to luma, U(-b, b); contrast and saturation are multiplied by U(1-c, 1+c).
   */
  jitter?: false | { brightness?: number; contrast?: number; saturation?: number };
  /** Audio gain range (default [0.8, 1.2]). */
  gain?: false | [number, number];
  /** Largest audio time shift in seconds, U(-s, s) (default 0.1). */
  shift?: false | number;
}

/** Everything needed to decode and post-process one clip. */
export interface ClipPlan {
  /** Time of the first video frame (s). */
  start: number;
  /** Start of the (unshifted) audio window (s); may be < 0 or run past the end. */
  audioStart: number;
  /** Source crop in pixels. */
  crop: CropRect;
  flip: boolean;
  jitter?: Jitter;
  /** Audio gain factor. */
  gain: number;
  /** Audio shift in samples (positive: the window moves later in the file). */
  shiftSamples: number;
  /** Largest |shift| in samples: the decoded window is this much wider on each side. */
  shiftMargin: number;
}

/** How clips are placed in a video. */
export interface PlanOptions {
  /** 'train': random clip position + augmentation; 'eval': deterministic, no augmentation. */
  mode: 'train' | 'eval';
  /** Required in train mode. */
  rng?: Prng;
  /** Eval: which of `clipsPerVideo` uniformly spaced clips (default 0 of 1 = centre clip). */
  clipIndex?: number;
  clipsPerVideo?: number;
  /** Restrict clips to this part of the file (a manifest's start/end), seconds. */
  window?: { start?: number; end?: number };
  augment?: AugmentOptions | false;
}

/** torchvision's RandomResizedCrop box for a w x h frame. */
export function randomResizedCrop(
  w: number,
  h: number,
  rng: Prng,
  scale: [number, number] = [0.25, 1],
  ratio: [number, number] = [3 / 4, 4 / 3],
): CropRect {
  const area = w * h;
  const lr0 = Math.log(ratio[0]);
  const lr1 = Math.log(ratio[1]);
  for (let i = 0; i < 10; i++) {
    const target = area * rng.uniform(scale[0], scale[1]);
    const aspect = Math.exp(rng.uniform(lr0, lr1));
    const cw = Math.round(Math.sqrt(target * aspect));
    const ch = Math.round(Math.sqrt(target / aspect));
    if (cw > 0 && ch > 0 && cw <= w && ch <= h) {
      return { x: rng.int(w - cw + 1), y: rng.int(h - ch + 1), w: cw, h: ch };
    }
  }
  const r = w / h;
  let cw = w;
  let ch = h;
  if (r < ratio[0]) ch = Math.round(w / ratio[0]);
  else if (r > ratio[1]) cw = Math.round(h * ratio[1]);
  return { x: Math.floor((w - cw) / 2), y: Math.floor((h - ch) / 2), w: cw, h: ch };
}

/** The square centre crop (shorter side), as eval uses: resize-shorter-side then centre crop. */
export function squareCentreCrop(w: number, h: number): CropRect {
  const s = Math.min(w, h);
  return { x: Math.floor((w - s) / 2), y: Math.floor((h - s) / 2), w: s, h: s };
}

/**
 * Places a clip in a probed video and draws its augmentation.
 *
 * Timing: the clip's centre c is drawn uniformly (train) or spaced uniformly
 * (eval: c_i at (i + 0.5) / N of the valid range; N = 1 is the centre clip).
 * The valid range keeps the whole audio window (plus the largest time shift)
 * inside the file (or the manifest window) when the file is long enough;
 * otherwise only the video clip
 * must fit, and the audio window that runs past the file's start or end is
 * zero padded by the decoder. Throws DataError('too_short') when not even the
 * video clip fits.
 */
export function planClip(info: ProbeInfo, g: ClipGeometry, o: PlanOptions): ClipPlan {
  const v = info.video!;
  const fileEnd = Math.min(info.duration, v.duration && v.duration > 0 ? v.duration : info.duration);
  const ws = Math.max(0, o.window?.start ?? 0);
  const we = Math.min(fileEnd, o.window?.end ?? fileEnd);
  const clip = g.frames / g.fps;
  if (!(we - ws >= clip)) {
    throw new DataError(
      'too_short',
      info.file,
      `needs ${clip.toFixed(3)} s for ${g.frames} frames at ${g.fps} fps, has ${Math.max(0, we - ws).toFixed(3)} s${o.window ? ' in its manifest window' : ''}`,
    );
  }
  const train = o.mode === 'train';
  const aug0 = train && o.augment !== false ? (o.augment ?? {}) : false;
  const pad = aug0 && aug0.shift !== false ? (aug0.shift ?? 0.1) : 0;
  let lo: number;
  let hi: number;
  if (we - ws >= g.audioSeconds + 2 * pad) {
    lo = ws + g.audioSeconds / 2 + pad;
    hi = we - g.audioSeconds / 2 - pad;
  } else if (we - ws >= g.audioSeconds) {
    lo = ws + g.audioSeconds / 2;
    hi = we - g.audioSeconds / 2;
  } else {
    lo = ws + clip / 2;
    hi = we - clip / 2;
  }
  let c: number;
  if (train) {
    if (!o.rng) throw new Error('cmac: planClip in train mode needs an rng');
    c = o.rng.uniform(lo, hi);
  } else {
    const n = Math.max(1, o.clipsPerVideo ?? 1);
    const i = Math.min(n - 1, Math.max(0, o.clipIndex ?? 0));
    c = lo + ((hi - lo) * (i + 0.5)) / n;
  }
  const start = Math.max(ws, c - clip / 2);
  const audioStart = start + clip / 2 - g.audioSeconds / 2;
  const aug = aug0;
  const rng = o.rng;
  if (!aug || !rng) {
    return { start, audioStart, crop: squareCentreCrop(v.width, v.height), flip: false, gain: 1, shiftSamples: 0, shiftMargin: 0 };
  }
  const crop =
    aug.crop === false ? squareCentreCrop(v.width, v.height) : randomResizedCrop(v.width, v.height, rng, aug.crop?.scale, aug.crop?.ratio);
  const flip = aug.flip === false ? false : rng.chance(aug.flip ?? 0.5);
  let jitter: Jitter | undefined;
  if (aug.jitter !== false) {
    const j = aug.jitter ?? {};
    const b = j.brightness ?? 0.2;
    const ct = j.contrast ?? 0.4;
    const s = j.saturation ?? 0.4;
    jitter = { brightness: rng.uniform(-b, b), contrast: rng.uniform(1 - ct, 1 + ct), saturation: rng.uniform(1 - s, 1 + s) };
  }
  const gain = aug.gain === false ? 1 : rng.uniform((aug.gain ?? [0.8, 1.2])[0], (aug.gain ?? [0.8, 1.2])[1]);
  const maxShift = aug.shift === false ? 0 : (aug.shift ?? 0.1);
  const shiftMargin = Math.round(maxShift * g.sampleRate);
  const shiftSamples = shiftMargin > 0 ? rng.int(2 * shiftMargin + 1) - shiftMargin : 0;
  return { start, audioStart, crop, flip, jitter, gain, shiftSamples, shiftMargin };
}

/**
 * Audio augmentation on the PCM: `wide` is the window decoded `shiftMargin`
 * samples wider on each side; returns the `samples`-long slice moved by
 * `shiftSamples`, times `gain`.
 */
export function applyAudioAugment(
  wide: Float32Array,
  samples: number,
  plan: Pick<ClipPlan, 'gain' | 'shiftSamples' | 'shiftMargin'>,
): Float32Array {
  const off = plan.shiftMargin + plan.shiftSamples;
  const out = wide.slice(off, off + samples);
  if (plan.gain !== 1) for (let i = 0; i < out.length; i++) out[i] *= plan.gain;
  return out;
}
