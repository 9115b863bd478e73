// The evaluators over a model's outputs (lib/eval/collect.ts): localisation
// of alpha_v / beta_v, frequency grounding of alpha_a / beta_a, and
// retrieval; plus where each clip's ground truth comes from.
import * as fs from 'fs';
import * as path from 'path';
import type { SynthClipTruth } from '../data/synth';
import { ClipInfo, ModelOutputs, row, Rows } from './collect';
import { FrequencyScore, FrequencySummary, melBinsToBands, scoreBands, summariseFrequency } from './frequency';
import { ClipGroundTruth, clipGtMap, normalisedToGrid, parseFlickrXml, parseVggssJson, synthGroundTruth, SynthGtOptions } from './groundtruth';
import { evalSize, LocalizationScore, LocalizationSummary, scoreMap, summariseLocalization } from './localization';
import { crossModalRetrieval, RetrievalSummary } from './retrieval';

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
  alphaV: LocalizationSummary;
  betaV: LocalizationSummary;
  /** The same metrics for a constant map (mask = whole frame): a chance baseline for cIoU@0.5 and AUC. */
  uniform: LocalizationSummary;
  perClip: { alphaV: ClipLocalization[]; betaV: ClipLocalization[] };
  /** Clips without ground truth (not scored). */
  unscored: number;
}

function scoreAll(maps: Rows | undefined, out: ModelOutputs, gts: Array<Float64Array | undefined>): ClipLocalization[] {
  if (!maps) return [];
  const [h, w] = maps.shape;
  const res: ClipLocalization[] = [];
  out.clips.forEach((c, i) => {
    const g = gts[i];
    if (g) res.push({ i, id: c.id, score: scoreMap(row(maps, i), h, w, g) });
  });
  return res;
}

/** LVS / EZ-VSL localisation metrics (plus pointing and mass) of alpha_v and beta_v. */
export function evaluateLocalization(out: ModelOutputs, gtOf: GroundTruthOf): LocalizationResult {
  if (!out.alphaV) throw new Error('localisation needs attention maps: collect the outputs with { maps: true }');
  const gts = out.clips.map((c) => { const g = gtOf(c); return g && g.boxes.length ? clipGtMap(g, evalSize) : undefined; });
  const alphaV = scoreAll(out.alphaV, out, gts);
  const betaV = scoreAll(out.betaV, out, gts);
  const uniform = gts.filter((g): g is Float64Array => !!g).map((g) => scoreMap([1], 1, 1, g));
  return {
    alphaV: summariseLocalization(alphaV.map((s) => s.score)),
    betaV: summariseLocalization(betaV.map((s) => s.score)),
    uniform: summariseLocalization(uniform),
    perClip: { alphaV, betaV },
    unscored: gts.filter((g) => !g).length,
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
    if (!g?.melBins?.length) { unscored++; return; }
    const bands = melBinsToBands(g.melBins, nMels, M);
    per.push({ i, id: c.id, bands: [...bands].sort((a, b) => a - b), alphaA: scoreBands(row(out.alphaA!, i), bands), betaA: out.betaA ? scoreBands(row(out.betaA, i), bands) : undefined });
  });
  return {
    alphaA: summariseFrequency(per.map((p) => p.alphaA)),
    betaA: summariseFrequency(per.filter((p) => p.betaA).map((p) => p.betaA!)),
    perClip: per, nMels, bands: M, unscored,
  };
}

/** Retrieval both ways on the outputs' clips. */
export function evaluateRetrieval(out: ModelOutputs, ks: number[] = [1, 5, 10]): { audioToVideo: RetrievalSummary; videoToAudio: RetrievalSummary } {
  if (!out.zA || !out.zV) throw new Error('retrieval needs z_a and z_v: collect the outputs with { embed: true } on clips with video and audio');
  const n = out.clips.length, d = out.zA.shape[0];
  return crossModalRetrieval(out.zA.data, out.zV.data, n, d, ks);
}

/**
 * Ground truth of the synthetic dataset: each clip's JSON (manifest field
 * `gt`, relative to the dataset folder), for the clip geometry the model saw.
 */
export function synthGroundTruthOf(root: string, clip: { frames: number; fps: number }, opts: SynthGtOptions = {}): GroundTruthOf {
  const cache = new Map<string, SynthClipTruth>();
  return (c) => {
    const rel = c.extra?.gt;
    if (typeof rel !== 'string') return undefined;
    const file = path.resolve(root, rel);
    let t = cache.get(file);
    if (!t) { t = JSON.parse(fs.readFileSync(file, 'utf8')) as SynthClipTruth; cache.set(file, t); }
    return synthGroundTruth(t, { start: c.start, frames: clip.frames, fps: clip.fps }, opts);
  };
}

/** Ground truth from a manifest's `boxes` column: normalised [x0, y0, x1, y1] boxes (one or a list), binary union as VGG-SS. */
export const manifestBoxesOf: GroundTruthOf = (c) => {
  const b = c.boxes;
  if (!Array.isArray(b) || !b.length) return undefined;
  const list = (typeof b[0] === 'number' ? [b] : b) as number[][];
  return { boxes: normalisedToGrid(list), consensus: false };
};

const stem = (id: string) => path.basename(id).replace(/\.[^.]+$/, '');

/** Flickr-SoundNet: `<dir>/<clip stem>.xml` per clip (consensus GT). */
export function flickrGroundTruthOf(dir: string): GroundTruthOf {
  return (c) => {
    const f = path.join(dir, `${stem(c.id)}.xml`);
    return fs.existsSync(f) ? parseFlickrXml(fs.readFileSync(f, 'utf8')) : undefined;
  };
}

/** VGG-SS: the JSON's `file` matched to the clip's file stem. */
export function vggssGroundTruthOf(file: string): GroundTruthOf {
  const m = parseVggssJson(fs.readFileSync(file, 'utf8'));
  return (c) => m.get(stem(c.id))?.gt;
}

/** Picks the ground-truth reader for a data source and optional annotations (a folder of XML, a VGG-SS .json). */
export function groundTruthFor(data: string, clip: { frames: number; fps: number }, annotations?: string, synth: SynthGtOptions = {}): GroundTruthOf {
  if (annotations) {
    if (/\.json$/i.test(annotations)) return vggssGroundTruthOf(annotations);
    if (fs.existsSync(annotations) && fs.statSync(annotations).isDirectory()) return flickrGroundTruthOf(annotations);
    throw new Error(`annotations ${annotations}: expected a folder of Flickr-SoundNet .xml files or a VGG-SS .json`);
  }
  if (fs.existsSync(path.join(data, 'manifest.jsonl')) && fs.existsSync(path.join(data, 'classes.json'))) return synthGroundTruthOf(data, clip, synth);
  return manifestBoxesOf;
}
