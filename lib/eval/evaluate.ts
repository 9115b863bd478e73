// The evaluators over a model's outputs (lib/eval/collect.ts): localisation
// of alpha_v / beta_v, frequency grounding of alpha_a / beta_a, and
// retrieval; plus where each clip's ground truth comes from.
import * as fs from 'fs';
import * as path from 'path';
import { probe } from '../data/decode';
import type { SampleRef, Source } from '../data/sources';
import type { SynthClipTruth } from '../data/synth';
import { checkOptionKeys, keysOf } from '../options';
import { ClipInfo, ModelOutputs, row, Rows } from './collect';
import { FrequencyScore, FrequencySummary, melBinsToBands, scoreBands, summariseFrequency } from './frequency';
import {
  ClipGroundTruth,
  clipGtMap,
  evalGeometry,
  FrameGeometry,
  normalisedToGrid,
  parseFlickrXml,
  parseVggssJson,
  synthGroundTruth,
  synthGtOptionKeys,
  SynthGtOptions,
} from './groundtruth';
import { evalSize, LocalizationProtocol, LocalizationScore, LocalizationSummary, scoreMap, summariseLocalization } from './localization';
import { crossModalRetrieval, RetrievalSummary } from './retrieval';

const localizationOptionKeys = keysOf<LocalizationOptions>()(['protocol', 'tauT']);
const frameGeometriesOptionKeys = ['concurrency', 'log'] as const;

/** Finds the ground truth of a clip (undefined: the clip has none and is not scored). */
export type GroundTruthOf = (clip: ClipInfo) => ClipGroundTruth | undefined;

/** Per-clip localisation scores of one map kind. */
export interface ClipLocalization {
  /** Position in the outputs. */
  i: number;
  id: string;
  score: LocalizationScore;
}

/** Localisation of both visual maps over a test set. */
export interface LocalizationResult {
  /** The published code cIoU, cIoU@0.5 and AUC follow (docs/evaluation.md). */
  protocol?: LocalizationProtocol;
  alphaV: LocalizationSummary;
  betaV: LocalizationSummary;
  /** The same metrics for a constant map (mask = whole frame): a chance baseline for cIoU@0.5 and AUC. */
  uniform: LocalizationSummary;
  perClip: { alphaV: ClipLocalization[]; betaV: ClipLocalization[] };
  /** Clips without ground truth (not scored). */
  unscored: number;
  /** Clips with boxes but no GT pixel on the evaluated frame (every box outside the centre crop of a non-square video, or empty): not scored. */
  outsideCrop?: number;
  /**
   * Outputs without raw maps only: clips whose probabilities had underflowed
   * to 0 somewhere, so their recovered scoring map (log-probabilities) is
   * exact only up to the smallest float32: cIoU of such a clip may differ
   * from the raw map's. Always 0 with the raw maps.
   */
  underflow?: { alphaV: number; betaV: number };
}

/** Options of {@link evaluateLocalization}. */
export interface LocalizationOptions {
  /** Whose evaluation code: 'ezvsl' (default) or 'lvs'. */
  protocol?: LocalizationProtocol;
  /**
   * The model's loss.tauT: beta_v is scored on the cosine map <z_a, v_n>,
   * recovered from beta_v = softmax(<z_a, v_n> / tauT) as tauT * ln beta_v
   * (the cosine map less a per-clip constant, which min-max normalisation
   * removes). Default 1 (the log-probabilities: the same masks).
   */
  tauT?: number;
}

/** log(p) * scale per value, in float32; a probability that underflowed to 0 takes the log of the smallest float32 (counted). */
function logMap(p: ArrayLike<number>, scale: number): { map: Float32Array; underflow: boolean } {
  const out = new Float32Array(p.length);
  let underflow = false;
  const floor = Math.log(1.401298464324817e-45);
  for (let i = 0; i < p.length; i++) {
    let l = Math.log(p[i]);
    if (l === -Infinity) {
      l = floor;
      underflow = true;
    }
    out[i] = l * scale;
  }
  return { map: out, underflow };
}

/**
 * Scores every clip with GT. `raw` (the model's logits / cosine map, maps()
 * since issue 14) is the scoring map when given; otherwise it is recovered
 * from the probabilities as scale * ln p (outputs from before the raw maps).
 */
function scoreAll(
  maps: Rows | undefined,
  raw: Rows | undefined,
  out: ModelOutputs,
  gts: Array<Float64Array | undefined>,
  protocol: LocalizationProtocol,
  scale: number,
): { res: ClipLocalization[]; underflow: number } {
  if (!maps) return { res: [], underflow: 0 };
  const [h, w] = maps.shape;
  const res: ClipLocalization[] = [];
  let underflow = 0;
  out.clips.forEach((c, i) => {
    const g = gts[i];
    if (!g) return;
    const p = row(maps, i);
    if (raw) {
      res.push({ i, id: c.id, score: scoreMap(row(raw, i), h, w, g, { protocol, probabilities: p }) });
      return;
    }
    const m = logMap(p, scale);
    if (m.underflow) underflow++;
    res.push({ i, id: c.id, score: scoreMap(m.map, h, w, g, { protocol, probabilities: p }) });
  });
  return { res, underflow };
}

/**
 * Localisation metrics of alpha_v and beta_v by a published protocol, plus
 * pointing and mass. alpha_v is scored on its logits and beta_v on the
 * cosine map <z_a, v_n>, as maps() returns them (alphaVLogits, betaVCos);
 * outputs without them (collected before issue 14, or built by hand with
 * probabilities only) fall back to ln alpha_v and tauT * ln beta_v, exact up
 * to float32 rounding (see `underflow`). Mass in the GT uses the probabilities.
 */
export function evaluateLocalization(out: ModelOutputs, gtOf: GroundTruthOf, opts: LocalizationOptions = {}): LocalizationResult {
  checkOptionKeys(opts, localizationOptionKeys, 'evaluateLocalization()');
  if (!out.alphaV) throw new Error('localisation needs attention maps: collect the outputs with { maps: true }');
  const protocol = opts.protocol ?? 'ezvsl';
  let outsideCrop = 0;
  const gts = out.clips.map((c) => {
    const g = gtOf(c);
    if (!g || !g.boxes.length) return undefined;
    const m = clipGtMap(g, evalSize);
    if (!m.some((v) => v > 0)) {
      outsideCrop++;
      return undefined;
    }
    return m;
  });
  const alphaV = scoreAll(out.alphaV, out.alphaVLogits, out, gts, protocol, 1);
  const betaV = scoreAll(out.betaV, out.betaVCos, out, gts, protocol, opts.tauT ?? 1);
  const uniform = gts.filter((g): g is Float64Array => !!g).map((g) => scoreMap([1], 1, 1, g, { protocol }));
  return {
    protocol,
    alphaV: summariseLocalization(alphaV.res.map((s) => s.score)),
    betaV: summariseLocalization(betaV.res.map((s) => s.score)),
    uniform: summariseLocalization(uniform),
    perClip: { alphaV: alphaV.res, betaV: betaV.res },
    unscored: gts.filter((g) => !g).length - outsideCrop,
    outsideCrop,
    underflow: { alphaV: alphaV.underflow, betaV: betaV.underflow },
  };
}

/** Frequency grounding of alpha_a and beta_a. */
export interface FrequencyResult {
  alphaA: FrequencySummary;
  betaA: FrequencySummary;
  /** GT bands per clip, for pictures. */
  perClip: Array<{ i: number; id: string; bands: number[]; alphaA: FrequencyScore; betaA?: FrequencyScore }>;
  nMels: number;
  bands: number;
  unscored: number;
}

/** Scores the band maps against the GT mel bins (mapped to bands as floor(bin * M / nMels)). */
export function evaluateFrequency(out: ModelOutputs, gtOf: GroundTruthOf, nMels: number): FrequencyResult {
  if (!out.alphaA) throw new Error('frequency grounding needs attention maps: collect the outputs with { maps: true }');
  const M = out.alphaA.shape[0];
  const per: FrequencyResult['perClip'] = [];
  let unscored = 0;
  out.clips.forEach((c, i) => {
    const g = gtOf(c);
    if (!g?.melBins?.length) {
      unscored++;
      return;
    }
    const bands = melBinsToBands(g.melBins, nMels, M);
    per.push({
      i,
      id: c.id,
      bands: [...bands].sort((a, b) => a - b),
      alphaA: scoreBands(row(out.alphaA!, i), bands),
      betaA: out.betaA ? scoreBands(row(out.betaA, i), bands) : undefined,
    });
  });
  return {
    alphaA: summariseFrequency(per.map((p) => p.alphaA)),
    betaA: summariseFrequency(per.filter((p) => p.betaA).map((p) => p.betaA!)),
    perClip: per,
    nMels,
    bands: M,
    unscored,
  };
}

/** Retrieval both ways on the outputs' clips. */
export function evaluateRetrieval(
  out: ModelOutputs,
  ks: number[] = [1, 5, 10],
): { audioToVideo: RetrievalSummary; videoToAudio: RetrievalSummary } {
  if (!out.zA || !out.zV)
    throw new Error('retrieval needs z_a and z_v: collect the outputs with { embed: true } on clips with video and audio');
  const n = out.clips.length,
    d = out.zA.shape[0];
  return crossModalRetrieval(out.zA.data, out.zV.data, n, d, ks);
}

/**
 * Ground truth of the synthetic dataset: each clip's JSON (manifest field
 * `gt`, relative to the dataset folder), for the clip geometry the model saw.
 */
export function synthGroundTruthOf(root: string, clip: { frames: number; fps: number }, opts: SynthGtOptions = {}): GroundTruthOf {
  checkOptionKeys(opts, synthGtOptionKeys, 'synthGroundTruthOf()');
  const cache = new Map<string, SynthClipTruth>();
  return (c) => {
    const rel = c.extra?.gt;
    if (typeof rel !== 'string') return undefined;
    const file = path.resolve(root, rel);
    let t = cache.get(file);
    if (!t) {
      t = JSON.parse(fs.readFileSync(file, 'utf8')) as SynthClipTruth;
      cache.set(file, t);
    }
    return synthGroundTruth(t, { start: c.start, frames: clip.frames, fps: clip.fps }, opts);
  };
}

/** Frame geometry per clip id ({@link frameGeometries}); undefined for a video that could not be probed. */
export type FrameGeometries = Map<string, FrameGeometry | undefined>;

/**
 * Probes every listed video (`refs` from the eval loader's init()) for its
 * display size and returns the geometry the eval loader applies to it (the
 * square centre crop), so boxes normalised to the whole frame can be
 * registered on the evaluated frame. A video that cannot be probed is logged
 * and left undefined (the loader skips it too).
 */
export async function frameGeometries(
  source: Source,
  refs: SampleRef[],
  o: { concurrency?: number; log?: (line: string) => void } = {},
): Promise<FrameGeometries> {
  checkOptionKeys(o, frameGeometriesOptionKeys, 'frameGeometries()');
  const out: FrameGeometries = new Map();
  const todo = [...new Map(refs.map((r) => [r.id, r])).values()];
  let next = 0;
  const worker = async () => {
    while (next < todo.length) {
      const ref = todo[next++];
      let opened;
      try {
        opened = await source.open(ref);
        const info = await probe(opened.path);
        if (!info.video) throw new Error('no video stream');
        out.set(ref.id, evalGeometry(info.video.width, info.video.height));
      } catch (e) {
        out.set(ref.id, undefined);
        o.log?.(`localisation: ${ref.id}: cannot read its frame size (${(e as Error).message}); its boxes are not scored`);
      } finally {
        await opened?.release().catch(() => undefined);
      }
    }
  };
  await Promise.all(Array.from({ length: Math.max(1, o.concurrency ?? 4) }, worker));
  return out;
}

/** A clip's geometry; undefined when its video could not be probed; an error when none was measured for it. */
function geometryOf(frames: FrameGeometries | undefined, c: ClipInfo, what: string): FrameGeometry | undefined {
  if (!frames || !frames.has(c.id)) {
    throw new Error(
      `localisation: clip ${c.id} has ${what} normalised to the whole video frame, but its frame geometry is unknown. ` +
        'Fix: pass frameGeometries(source, refs) over the same source to groundTruthFor / manifestBoxesOf / vggssGroundTruthOf / flickrGroundTruthOf (the eval loader scores a square centre crop).',
    );
  }
  return frames.get(c.id);
}

/**
 * Ground truth from a manifest's `boxes` column: [x0, y0, x1, y1] normalised
 * to the whole frame (one or a list), binary union as VGG-SS, registered
 * through each video's eval crop ({@link frameGeometries}).
 */
export function manifestBoxesOf(frames?: FrameGeometries): GroundTruthOf {
  return (c) => {
    const b = c.boxes;
    if (!Array.isArray(b) || !b.length) return undefined;
    const g = geometryOf(frames, c, 'manifest boxes');
    if (!g) return undefined;
    const list = (typeof b[0] === 'number' ? [b] : b) as number[][];
    return { boxes: normalisedToGrid(list, evalSize, g), consensus: false };
  };
}

const stem = (id: string) => path.basename(id).replace(/\.[^.]+$/, '');

/** Flickr-SoundNet: `<dir>/<clip stem>.xml` per clip (consensus GT), registered through each video's eval crop. */
export function flickrGroundTruthOf(dir: string, frames?: FrameGeometries): GroundTruthOf {
  return (c) => {
    const f = path.join(dir, `${stem(c.id)}.xml`);
    if (!fs.existsSync(f)) return undefined;
    const g = geometryOf(frames, c, 'Flickr-SoundNet boxes');
    if (!g) return undefined;
    return parseFlickrXml(fs.readFileSync(f, 'utf8'), evalSize, g);
  };
}

/** VGG-SS: the JSON's `file` matched to the clip's file stem, boxes registered through each video's eval crop. */
export function vggssGroundTruthOf(file: string, frames?: FrameGeometries): GroundTruthOf {
  const m = parseVggssJson(fs.readFileSync(file, 'utf8'));
  return (c) => {
    const e = m.get(stem(c.id));
    if (!e) return undefined;
    const g = geometryOf(frames, c, 'VGG-SS boxes');
    if (!g) return undefined;
    return { boxes: normalisedToGrid(e.boxes, evalSize, g), consensus: false };
  };
}

/**
 * Picks the ground-truth reader for a data source and optional annotations
 * (a folder of XML, a VGG-SS .json). Boxes normalised to the whole frame
 * (annotations, a manifest's boxes) need `frames` ({@link frameGeometries});
 * the synthetic dataset's square videos do not.
 */
export function groundTruthFor(
  data: string,
  clip: { frames: number; fps: number },
  annotations?: string,
  synth: SynthGtOptions = {},
  frames?: FrameGeometries,
): GroundTruthOf {
  if (annotations) {
    if (/\.json$/i.test(annotations)) return vggssGroundTruthOf(annotations, frames);
    if (fs.existsSync(annotations) && fs.statSync(annotations).isDirectory()) return flickrGroundTruthOf(annotations, frames);
    throw new Error(`annotations ${annotations}: expected a folder of Flickr-SoundNet .xml files or a VGG-SS .json`);
  }
  if (isSynthFolder(data)) return synthGroundTruthOf(data, clip, synth);
  return manifestBoxesOf(frames);
}

/** A cmac synthetic dataset folder (manifest.jsonl + classes.json): square videos with per-clip JSON ground truth. */
export function isSynthFolder(data: string): boolean {
  return fs.existsSync(path.join(data, 'manifest.jsonl')) && fs.existsSync(path.join(data, 'classes.json'));
}
