// Evaluation sections of report.html: metric tables, localisation overlays
// (best and worst clips), frequency maps over the log-mel spectrogram, and a
// PCA scatter of the embeddings coloured by class. Everything inline.
import type { ReportSection } from '../report';
import { esc, image, table } from '../report';
import { ModelOutputs, row } from '../eval/collect';
import type { GroundTruthOf } from '../eval/evaluate';
import type { EvaluationResults } from '../eval/run';
import type { RetrievalSummary } from '../eval/retrieval';
import type { LocalizationSummary } from '../eval/localization';
import type { FrequencySummary } from '../eval/frequency';
import { blank, colourBar, drawBox, frameImage, hstack, overlay, resize, titled, vstack } from './image';
import { encodePng, RgbImage } from './png';
import { pca, scatterSvg } from './scatter';
import { frequencyPicture, LogMelOptions } from './spectrogram';

/** Pictures need the outputs (with keepFrames / keepAudio) and the ground truth. */
export interface EvaluationVisuals {
  outputs?: ModelOutputs;
  gtOf?: GroundTruthOf;
  classes?: string[];
  /** The model's log-mel settings (nMels etc.) for the spectrograms. */
  logmel?: LogMelOptions;
  /** Good and bad examples each (default 4). */
  examples?: number;
}

const pct = (v: number | undefined) => (v === undefined || !Number.isFinite(v) ? '-' : `${(100 * v).toFixed(1)}%`);
const num = (v: number | undefined, d = 3) => (v === undefined || !Number.isFinite(v) ? '-' : v.toFixed(d));

function locRow(name: string, s: LocalizationSummary): Record<string, unknown> {
  return {
    map: name,
    clips: s.n,
    'cIoU@0.5': pct(s.ciou50),
    AUC: num(s.auc),
    'mean cIoU': num(s.meanCiou),
    pointing: pct(s.pointing),
    'mass in box': pct(s.mass),
    'chance (GT area)': pct(s.chance),
  };
}

function freqRow(name: string, s: FrequencySummary): Record<string, unknown> {
  return { map: name, clips: s.n, pointing: pct(s.pointing), 'mass in GT bands': pct(s.mass), 'chance (GT bands / M)': pct(s.chance) };
}

/** The metric tables (HTML) of whatever was measured. */
export function metricsHtml(r: EvaluationResults): string {
  const parts: string[] = [];
  if (r.checkpoint)
    parts.push(
      table([
        ['checkpoint', r.checkpoint],
        ...(r.step !== undefined ? [['step', r.step] as [string, unknown]] : []),
        ...(r.data ? [['data', r.data] as [string, unknown]] : []),
      ]),
    );
  if (r.localization) {
    const l = r.localization;
    parts.push(
      '<h3>Sound-source localisation (LVS / EZ-VSL protocol)</h3>',
      table([
        locRow('alpha_v (no audio)', l.alphaV),
        locRow('beta_v (audio-guided)', l.betaV),
        locRow('uniform map (baseline)', l.uniform),
      ]),
      `<p>cIoU@0.5 and AUC follow the published protocol (224x224, median threshold); the median threshold marks half the frame, so objects under a quarter of the frame cannot reach cIoU 0.5. Pointing and mass are the fair comparison; chance = mean GT area share.${l.unscored ? ` ${l.unscored} clip(s) without ground truth were not scored.` : ''}</p>`,
    );
  }
  if (r.frequency) {
    const f = r.frequency;
    parts.push(
      '<h3>Frequency grounding</h3>',
      table([freqRow('alpha_a (no video)', f.alphaA), freqRow('beta_a (vision-guided)', f.betaA)]),
      `<p>${f.bands} bands of the audio encoder over ${f.nMels} mel bins; GT bins map to band floor(bin * ${f.bands} / ${f.nMels}).</p>`,
    );
  }
  if (r.retrieval) {
    const rr = (name: string, s: RetrievalSummary) => ({
      direction: name,
      clips: s.n,
      'R@1': pct(s.recall[1]),
      'R@5': pct(s.recall[5]),
      'R@10': pct(s.recall[10]),
      'median rank': num(s.medianRank, 1),
      'chance R@1 / R@10': `${pct(s.chance[1])} / ${pct(s.chance[10])}`,
    });
    parts.push(
      '<h3>Cross-modal retrieval</h3>',
      table([rr('audio -> video', r.retrieval.audioToVideo), rr('video -> audio', r.retrieval.videoToAudio)]),
    );
  }
  if (r.linearProbe) {
    const p = r.linearProbe;
    const rows = p.folds.map((f) => ({
      fold: f.name,
      'video acc': pct(f.video?.testAccuracy),
      'video l2': f.video?.l2 ?? '-',
      'audio acc': pct(f.audio?.testAccuracy),
      'audio l2': f.audio?.l2 ?? '-',
      'train / val / test': `${(f.video ?? f.audio)!.nTrain} / ${(f.video ?? f.audio)!.nVal} / ${(f.video ?? f.audio)!.nTest}`,
    }));
    const ms = (m?: { mean: number; std: number }) => (m ? `${pct(m.mean)} +- ${pct(m.std)}` : '-');
    parts.push(
      `<h3>Linear probe: ${esc(p.dataset)}</h3>`,
      table(rows),
      table([
        ['video (featV) mean +- std', ms(p.video)],
        ['audio (featA) mean +- std', ms(p.audio)],
        ['chance (1 / classes)', pct(p.chance)],
        ['classes', p.classes],
        ['items not usable', p.missing],
      ]),
    );
  }
  if (r.finetune) {
    const ft = r.finetune;
    const rows = ft.folds.map((f) => ({
      fold: f.name,
      'test acc': pct(f.testAccuracy),
      'val acc': pct(f.valAccuracy),
      'epoch kept': f.bestEpoch,
      'train loss first -> last': `${num(f.epochs[0]?.trainLoss)} -> ${num(f.epochs[f.epochs.length - 1]?.trainLoss)}`,
      majority: pct(f.majority),
      'train / val / test': `${f.nTrain} / ${f.nVal} / ${f.nTest}`,
    }));
    const st = ft.settings;
    parts.push(
      `<h3>Finetuning (video encoder + linear head): ${esc(ft.dataset)}</h3>`,
      table(rows),
      table([
        ['test accuracy mean +- std', `${pct(ft.test.mean)} +- ${pct(ft.test.std)}`],
        ['chance (1 / classes)', pct(ft.chance)],
        ['classes', ft.classes],
        [
          'settings',
          `${st.epochs} epochs, ${st.optimizer} lr ${st.lr} (cosine), momentum ${st.momentum}, weight decay ${st.weightDecay}, batch ${st.batchSize}, augment ${st.augment}, ${st.clipsPerVideo} clip(s) per test video, ${st.fromScratch ? 'encoder from scratch' : 'encoder from the checkpoint'}, ${st.device}`,
        ],
      ]),
    );
  }
  return parts.join('\n') || '<p>(nothing measured)</p>';
}

/**
 * One clip's localisation panel: the frame with its GT boxes, the alpha_v
 * overlay and the beta_v overlay (each size x size, titled), and a colour bar
 * of the overlays (each map min-max normalised on its own).
 */
export function localizationPanel(
  frame: RgbImage,
  maps: { alphaV?: ArrayLike<number>; betaV?: ArrayLike<number> },
  h: number,
  w: number,
  boxes: Array<[number, number, number, number]> = [],
  size = 224,
): RgbImage {
  const base = resize(frame, size, size);
  const withBox: RgbImage = { ...base, data: base.data.slice() };
  for (const b of boxes) drawBox(withBox, b.map((v) => (v * size) / 224) as [number, number, number, number], [255, 255, 255]);
  const panels = [titled(withBox, boxes.length ? 'frame + GT box' : 'frame')];
  if (maps.alphaV) panels.push(titled(overlay(frame, maps.alphaV, h, w, { size, boxes }), 'alpha_v'));
  if (maps.betaV) panels.push(titled(overlay(frame, maps.betaV, h, w, { size, boxes }), 'beta_v'));
  if (panels.length > 1) {
    const strip = panels[0].height - size;
    panels.push(vstack([blank(1, strip - 4), colourBar(size, { high: 'max', low: 'min' })], 4));
  }
  return hstack(panels, 4);
}

function examplesSection(r: EvaluationResults, v: EvaluationVisuals): ReportSection | undefined {
  const out = v.outputs;
  if (!r.localization || !out?.frames || !out.alphaV) return undefined;
  const k = v.examples ?? 4;
  const scored = [...(r.localization.perClip.betaV.length ? r.localization.perClip.betaV : r.localization.perClip.alphaV)].sort(
    (a, b) => b.score.ciou - a.score.ciou || b.score.mass - a.score.mass,
  );
  const pick = (list: typeof scored) => list.slice(0, k);
  const [h, w] = out.alphaV.shape;
  const render = (c: (typeof scored)[number]) => {
    const gt = v.gtOf?.(out.clips[c.i]);
    const panel = localizationPanel(
      frameImage(out.frames![c.i], out.frameSize!),
      { alphaV: row(out.alphaV!, c.i), betaV: out.betaV ? row(out.betaV, c.i) : undefined },
      h,
      w,
      gt?.boxes ?? [],
      160,
    );
    const a = r.localization!.perClip.alphaV.find((x) => x.i === c.i)?.score;
    return `<figure style="display:inline-block;margin:4px">${image(encodePng(panel), out.clips[c.i].id)}<figcaption style="font-size:12px">${esc(shortId(out.clips[c.i].id))}: beta_v cIoU ${num(c.score.ciou)}, mass ${pct(c.score.mass)}; alpha_v cIoU ${num(a?.ciou)}, mass ${pct(a?.mass)} (GT area ${pct(c.score.area)})</figcaption></figure>`;
  };
  return {
    title: 'Localisation examples',
    html:
      '<p>Each: the frame with its ground-truth box (white), alpha_v (from pixels alone), beta_v (audio-guided), upsampled bilinearly as the evaluation does; each map is min-max normalised on its own (colour bar: min to max, jet).</p>' +
      `<h3>Best ${Math.min(k, scored.length)} (by beta_v cIoU)</h3>${pick(scored).map(render).join('')}<h3>Worst ${Math.min(k, scored.length)}</h3>${pick(
        [...scored].reverse(),
      )
        .map(render)
        .join('')}`,
  };
}

function shortId(id: string): string {
  const p = id.split(/[\\/]/);
  return p.slice(-2).join('/');
}

function frequencySection(r: EvaluationResults, v: EvaluationVisuals): ReportSection | undefined {
  const out = v.outputs;
  if (!out?.audio || !out.alphaA) return undefined;
  const per = r.frequency?.perClip;
  const k = v.examples ?? 4;
  let chosen: Array<{ i: number; bands?: number[]; note: string }>;
  const withAudio = per?.filter((p) => out.audio![p.i]);
  if (withAudio?.length) {
    const sorted = [...withAudio].sort((a, b) => (b.betaA?.mass ?? b.alphaA.mass) - (a.betaA?.mass ?? a.alphaA.mass));
    const ends = [...sorted.slice(0, Math.ceil(k / 2)), ...sorted.slice(Math.max(Math.ceil(k / 2), sorted.length - Math.floor(k / 2)))];
    chosen = ends.map((p) => ({
      i: p.i,
      bands: p.bands,
      note: `alpha_a mass ${pct(p.alphaA.mass)}, beta_a mass ${pct(p.betaA?.mass)} (chance ${pct(p.alphaA.chance)})`,
    }));
  } else
    chosen = out.clips
      .map((_, i) => i)
      .filter((i) => out.audio![i])
      .slice(0, k)
      .map((i) => ({ i, note: '' }));
  if (!chosen.length) return undefined;
  const html = chosen
    .map((c) => {
      const maps: Record<string, ArrayLike<number>> = { alpha_a: row(out.alphaA!, c.i) };
      if (out.betaA) maps.beta_a = row(out.betaA, c.i);
      const pic = frequencyPicture(out.audio![c.i]!, { ...v.logmel, sampleRate: out.sampleRate, maps, gtBands: c.bands });
      return `<figure style="display:inline-block;margin:4px">${image(encodePng(pic), 'frequency map')}<figcaption style="font-size:12px">${esc(shortId(out.clips[c.i].id))}: ${esc(c.note)}</figcaption></figure>`;
    })
    .join('');
  return {
    title: 'Frequency maps',
    html:
      '<p>Log-mel spectrogram (low frequencies at the bottom) with alpha_a (blue) and beta_a (red) per encoder band; green marks the ground-truth bands.</p>' +
      html,
  };
}

function embeddingSection(v: EvaluationVisuals): ReportSection | undefined {
  const out = v.outputs;
  if (!out?.zV && !out?.zA) return undefined;
  const labels = Int32Array.from(out.clips.map((c) => c.label));
  const svgs: string[] = [];
  for (const [name, r] of [
    ['z_v (video)', out.zV],
    ['z_a (audio)', out.zA],
  ] as const) {
    if (!r || out.clips.length < 3) continue;
    const p = pca(r.data, out.clips.length, r.shape[0], 2);
    const share = p.variance.map((x) => (p.totalVariance > 0 ? x / p.totalVariance : 0));
    svgs.push(
      scatterSvg(p.points, labels, {
        title: `${name}: PCA`,
        classes: v.classes,
        xLabel: `PC 1 (${pct(share[0])} of variance)`,
        yLabel: `PC 2 (${pct(share[1])})`,
      }),
    );
  }
  if (!svgs.length) return undefined;
  return {
    title: 'Embeddings',
    html: `<p>${out.clips.length} held-out clips, first two principal components, coloured by class.</p>${svgs.join('')}`,
  };
}

/**
 * The evaluation sections of report.html: pass them to the training report
 * writer (writeTrainingReport's `extra`) or to writeReport.
 * @example writeReport('eval.html', 'cmac evaluation', evaluationSections(results, { outputs, gtOf, classes }));
 */
export function evaluationSections(results: EvaluationResults, visuals: EvaluationVisuals = {}): ReportSection[] {
  const out: ReportSection[] = [{ title: 'Evaluation', html: metricsHtml(results) }];
  for (const s of [examplesSection(results, visuals), frequencySection(results, visuals), embeddingSection(visuals)]) if (s) out.push(s);
  return out;
}
