// Ground-truth readers for localisation and frequency grounding: the
// synthetic dataset's per-clip JSON, Flickr-SoundNet XML annotations and the
// VGG-SS JSON, all turned into boxes on the 224 x 224 evaluation grid the
// way the LVS / EZ-VSL test code does it (docs/references.md), registered
// through the crop the eval loader applies to non-square frames.
import { squareCentreCrop } from '../data/augment';
import type { CropRect } from '../data/ffmpeg';
import { melBins } from '../audio/mel';
import { checkOptionKeys, keysOf } from '../options';
import type { SynthClipTruth } from '../data/synth';
import { Box, evalSize, gtMap } from './localization';

/** A clip's ground truth on the evaluation grid. */
export interface ClipGroundTruth {
  /** Boxes on the size x size grid (max exclusive). */
  boxes: Box[];
  /** Flickr-style annotator consensus (sum / 2, clip 1) instead of a binary union. */
  consensus: boolean;
  /** Mel bins [first, last] (inclusive) of the sounds, when known (synthetic data). */
  melBins?: Array<[number, number]>;
}

/** The GT map of a clip (see {@link gtMap}). */
export function clipGtMap(gt: ClipGroundTruth, size = evalSize): Float64Array {
  return gtMap(gt.boxes, gt.consensus, size);
}

/**
 * Where the evaluated frame lies in a video's frame: its display size and the
 * source rectangle the eval loader scales to the clip size.
 */
export interface FrameGeometry {
  width: number;
  height: number;
  crop: CropRect;
}

/** The eval loader's geometry for a width x height video: the square centre crop (lib/data/augment.ts planClip, eval mode; torchvision Resize(224) + CenterCrop(224) as LVS). */
export function evalGeometry(width: number, height: number): FrameGeometry {
  return { width, height, crop: squareCentreCrop(width, height) };
}

const wholeFrame = (g: FrameGeometry) => g.crop.x === 0 && g.crop.y === 0 && g.crop.w === g.width && g.crop.h === g.height;

/**
 * One box normalised to the whole video frame, [x0, y0, x1, y1], to the grid
 * of the evaluated frame: each coordinate through the crop ((u * W - x) / w),
 * clipped to [0, 1], times size, truncated. Without a geometry, or when the
 * crop is the whole frame (square video), this is exactly VGG-SS's
 * `(np.clip(b, 0, 1) * 224).astype(int)` (EZ-VSL; LVS's `int(224 * max(x, 0))`
 * gives the same GT map).
 */
export function registerBox(b: number[], g?: FrameGeometry, size = evalSize): Box {
  const axis = (u: number, i: number) => {
    if (!g || wholeFrame(g)) return u;
    return i % 2 === 0 ? (u * g.width - g.crop.x) / g.crop.w : (u * g.height - g.crop.y) / g.crop.h;
  };
  return b.slice(0, 4).map((v, i) => Math.trunc(Math.min(1, Math.max(0, axis(v, i))) * size)) as Box;
}

/** Normalised [x0, y0, x1, y1] boxes -> grid boxes ({@link registerBox}; VGG-SS: (clip(b, 0, 1) * 224).astype(int) on the whole frame). */
export function normalisedToGrid(boxes: number[][], size = evalSize, g?: FrameGeometry): Box[] {
  return boxes.map((b) => registerBox(b, g, size));
}

/** Options of {@link synthGroundTruth}. */
export interface SynthGtOptions {
  /** Whose boxes: every sounding object (default) or only the dominant one. */
  objects?: 'sounding' | 'dominant';
  /** Which frames of the clip: the union of the boxes over all the clip's frames (default; maps are pooled over time) or the middle frame only. */
  frames?: 'union' | 'middle';
  /** Log-mel front end of the model, to find each sound's mel bins (default: tiny/paper's n_fft 1024 front end, 0-8000 Hz). */
  nMels?: number;
  fMin?: number;
  fMax?: number;
  size?: number;
}
/** The keys of {@link SynthGtOptions} (a misspelt one from plain JS is an OptionsError). */
export const synthGtOptionKeys = keysOf<SynthGtOptions>()(['objects', 'frames', 'nMels', 'fMin', 'fMax', 'size']);

/** Clip placement: time of the first frame (s), frames and fps of the clip the model saw. */
export interface ClipTiming {
  start: number;
  frames: number;
  fps: number;
}

/** Indices of the synthetic video's frames a clip shows (frame on screen at start + k / fps). */
export function clipFrameIndices(truth: Pick<SynthClipTruth, 'fps' | 'frames'>, clip: ClipTiming): number[] {
  const out: number[] = [];
  for (let k = 0; k < clip.frames; k++) {
    const f = Math.floor((clip.start + k / clip.fps) * truth.fps + 1e-6);
    out.push(Math.max(0, Math.min(truth.frames - 1, f)));
  }
  return out;
}

/**
 * GT of one clip of the synthetic dataset: the sounding objects' boxes over
 * the clip's frames (pixel boxes scaled from the synthetic frame to the
 * grid, truncated like VGG-SS: the eval loader's square centre crop of a
 * square video is the whole frame) and their sounds' mel bins.
 */
export function synthGroundTruth(truth: SynthClipTruth, clip: ClipTiming, opts: SynthGtOptions = {}): ClipGroundTruth {
  checkOptionKeys(opts, synthGtOptionKeys, 'synthGroundTruth()');
  const size = opts.size ?? evalSize;
  const objs = truth.objects.filter((o) => (opts.objects === 'dominant' ? o.dominant : o.sounding));
  const idx = clipFrameIndices(truth, clip);
  const frames = opts.frames === 'middle' ? [idx[Math.floor(idx.length / 2)]] : [...new Set(idx)];
  const boxes: Box[] = [];
  for (const o of objs) {
    let u: number[] | undefined;
    for (const f of frames) {
      const b = o.boxes[f];
      if (!b) continue;
      u = u ? [Math.min(u[0], b[0]), Math.min(u[1], b[1]), Math.max(u[2], b[2]), Math.max(u[3], b[3])] : [...b];
    }
    if (u) boxes.push(u.map((v) => Math.trunc((Math.min(truth.size, Math.max(0, v)) * size) / truth.size)) as Box);
  }
  const nMels = opts.nMels ?? 64;
  const bins = objs.map((o) => melBins(o.band.lo, o.band.hi, nMels, opts.fMin ?? 0, opts.fMax ?? 8000));
  return { boxes, consensus: false, melBins: bins };
}

function children(xml: string, tag: string): string[] {
  const out: string[] = [];
  const re = new RegExp(`<${tag}(\\s[^>]*)?>([\\s\\S]*?)</${tag}\\s*>`, 'g');
  for (let m = re.exec(xml); m; m = re.exec(xml)) out.push(m[2]);
  return out;
}

function elements(xml: string): Array<{ tag: string; text: string }> {
  const out: Array<{ tag: string; text: string }> = [];
  const re = /<([A-Za-z_][\w.-]*)(\s[^>]*)?>([\s\S]*?)<\/\1\s*>/g;
  for (let m = re.exec(xml); m; m = re.exec(xml)) out.push({ tag: m[1], text: m[3].trim() });
  return out;
}

/**
 * Boxes of a Flickr-SoundNet annotation XML (coordinates on the 256 x 256
 * image), rescaled as `int(224 * int(v) / 256)`. Every `<bbox>` (the LVS
 * layout: the first child is skipped, then xmin, ymin, xmax, ymax) or
 * VOC-style `<bndbox>` (read by tag name) is one annotator's box; the GT map
 * is their consensus (each adds 1, / 2, clip 1). With the geometry of a
 * non-square video, v / 256 is a share of its whole frame and goes through
 * the crop ({@link registerBox}).
 */
export function parseFlickrXml(xml: string, size = evalSize, g?: FrameGeometry): ClipGroundTruth {
  const boxes: Box[] = [];
  const int = (t: string): number => {
    const v = Number.parseInt(t, 10);
    if (!Number.isFinite(v)) throw new Error(`Flickr annotation: coordinate '${t}' is not an integer`);
    return v;
  };
  const clean = xml.replace(/<\?[\s\S]*?\?>/g, '').replace(/<!--[\s\S]*?-->/g, '');
  for (const tag of ['bbox', 'bndbox']) {
    for (const body of children(clean, tag)) {
      const els = elements(body);
      const named = ['xmin', 'ymin', 'xmax', 'ymax'].map((k) => els.find((e) => e.tag.toLowerCase() === k));
      let coords: string[];
      if (named.every(Boolean)) coords = named.map((e) => e!.text);
      else if (els.length >= 5) coords = els.slice(1, 5).map((e) => e.text);
      else
        throw new Error(
          `Flickr annotation: a <${tag}> needs xmin, ymin, xmax, ymax (got ${els.map((e) => e.tag).join(', ') || 'nothing'})`,
        );
      const v = coords.map(int);
      boxes.push(
        g && !wholeFrame(g)
          ? registerBox(
              v.map((x) => x / 256),
              g,
              size,
            )
          : (v.map((x) => Math.trunc((size * x) / 256)) as Box),
      );
    }
  }
  if (!boxes.length) throw new Error('Flickr annotation: no <bbox> or <bndbox> element found');
  return { boxes, consensus: true };
}

/** One VGG-SS entry: `file` (the clip id) and its boxes normalised to the whole frame; the GT map is their binary union. */
export interface VggssEntry {
  file: string;
  class?: string;
  /** The boxes as given (normalised), to register through a clip's crop ({@link registerBox}). */
  boxes: number[][];
  /** On the whole frame (a square video's geometry). */
  gt: ClipGroundTruth;
}

/** Reads the VGG-SS JSON (a list of `{ file, bbox: [[x0, y0, x1, y1], ...], class? }`, boxes normalised). */
export function parseVggssJson(text: string, size = evalSize): Map<string, VggssEntry> {
  let v: unknown;
  try {
    v = JSON.parse(text);
  } catch (e) {
    throw new Error(`VGG-SS annotations are not JSON: ${(e as Error).message}`);
  }
  if (!Array.isArray(v)) throw new Error('VGG-SS annotations must be a JSON list of { file, bbox }');
  const out = new Map<string, VggssEntry>();
  v.forEach((a: { file?: unknown; bbox?: unknown; class?: unknown }, i) => {
    if (typeof a?.file !== 'string' || !Array.isArray(a.bbox))
      throw new Error(`VGG-SS entry ${i}: needs 'file' (string) and 'bbox' (list of [x0, y0, x1, y1])`);
    const boxes = (a.bbox as unknown[]).map((b, j) => {
      if (!Array.isArray(b) || b.length < 4 || b.some((x) => typeof x !== 'number'))
        throw new Error(`VGG-SS entry ${i} (${a.file}) box ${j}: expected 4 numbers`);
      return b as number[];
    });
    out.set(a.file, {
      file: a.file,
      class: typeof a.class === 'string' ? a.class : undefined,
      boxes,
      gt: { boxes: normalisedToGrid(boxes, size), consensus: false },
    });
  });
  return out;
}
