// The verdict of issue 14 item 7 (docs/results.md "The verdict"): per-clip
// scores of every trained run, per-metric means with bootstrap intervals, the
// paired difference cmac - best baseline (lib/eval/bootstrap.ts), the four
// targets and the paragraph that states them. scripts/ablation.js --verdict
// trains the runs and calls this.
import type { StepMetrics } from '../train/metrics';
import { BootstrapInterval, BootstrapOptions, bootstrapMean, pairedBootstrapDiff } from './bootstrap';
import type { ModelOutputs } from './collect';
import type { LocalizationResult } from './evaluate';
import { aucThresholds, trapezoid } from './localization';
import type { LinearProbeResult } from './probe';
import { matchRanks, queryRank, queryRecall, similarity } from './retrieval';
import type { EvaluationResults } from './run';

/** Per-clip localisation scores of one evaluation set. */
export interface LocalizationClips {
  /** Clip ids with ground truth, in evaluation order (the same in every run). */
  ids: string[];
  alphaV: { pointing: number[]; ciou: number[] };
  betaV: { pointing: number[]; ciou: number[] };
  /** Chance levels: pointing = mean GT area share; cIoU@0.5 and AUC of a constant map. */
  chance: { pointing: number; ciou50: number; auc: number };
}

/** Everything the verdict resamples, for one trained run (written as perclip.json beside the run). */
export interface RunClipScores {
  version: 1;
  /** Localisation on the large-object set. */
  large: LocalizationClips;
  /** Localisation on the ordinary test split. */
  test: LocalizationClips;
  /** Frequency grounding on the ordinary test split: expected argmax hit per clip. */
  frequency: { ids: string[]; alphaA: number[]; betaA: number[]; chance: number };
  /** Retrieval over the ordinary test split: 1-based rank of each clip's match (ties: mid rank) and its expected recall@1. */
  retrieval: { ids: string[]; a2vRank: number[]; v2aRank: number[]; a2v1: number[]; v2a1: number[]; chance: number };
  /** Linear probe: 1 / 0 per test item (folds concatenated), video and audio features. */
  probe: { video: number[]; audio: number[]; chance: number };
}

function locClips(r: LocalizationResult | undefined, what: string): LocalizationClips {
  if (!r) throw new Error(`verdict: the ${what} evaluation has no localisation results; evaluate it with tasks ['localization']`);
  const a = r.perClip.alphaV,
    b = r.perClip.betaV;
  const ids = a.map((c) => c.id);
  if (b.length !== a.length || b.some((c, i) => c.id !== ids[i]))
    throw new Error(`verdict: the ${what} set's alpha_v and beta_v were scored on different clips`);
  return {
    ids,
    alphaV: { pointing: a.map((c) => c.score.pointing), ciou: a.map((c) => c.score.ciou) },
    betaV: { pointing: b.map((c) => c.score.pointing), ciou: b.map((c) => c.score.ciou) },
    chance: { pointing: r.alphaV.chance, ciou50: r.uniform.ciou50, auc: r.uniform.auc },
  };
}

/**
 * Gathers one run's per-clip scores: `test` = evaluateModel() on the ordinary
 * test split with tasks retrieval, localization, frequency (its results and
 * outputs), `large` = the large-object set's results, `probe` = linearProbe().
 */
export function runClipScores(
  test: { results: EvaluationResults; outputs: ModelOutputs },
  large: EvaluationResults,
  probe: LinearProbeResult,
): RunClipScores {
  const f = test.results.frequency;
  if (!f) throw new Error("verdict: the test-split evaluation has no frequency results; evaluate it with tasks ['frequency']");
  const o = test.outputs;
  if (!o.zA || !o.zV) throw new Error("verdict: the test-split outputs have no z_a / z_v; evaluate it with tasks ['retrieval']");
  const n = o.clips.length,
    d = o.zA.shape.reduce((x, y) => x * y, 1);
  const a2v = matchRanks(similarity(o.zA.data, o.zV.data, n, d), n);
  const v2a = matchRanks(similarity(o.zV.data, o.zA.data, n, d), n);
  const fold = (kind: 'video' | 'audio') =>
    probe.folds.flatMap((x) => {
      if (!x[kind]) throw new Error(`verdict: the linear probe has no ${kind} result in fold ${x.name}; probe both feature kinds`);
      return x[kind]!.testCorrect;
    });
  return {
    version: 1,
    large: locClips(large.localization, 'large-object'),
    test: locClips(test.results.localization, 'test-split'),
    frequency: {
      ids: f.perClip.map((c) => c.id),
      alphaA: f.perClip.map((c) => c.alphaA.pointing),
      betaA: f.perClip.map((c) => c.betaA?.pointing ?? NaN),
      chance: f.alphaA.chance,
    },
    retrieval: {
      ids: o.clips.map((c) => c.id),
      a2vRank: a2v.map(queryRank),
      v2aRank: v2a.map(queryRank),
      a2v1: a2v.map((r) => queryRecall(r, 1)),
      v2a1: v2a.map((r) => queryRecall(r, 1)),
      chance: n ? 1 / n : NaN,
    },
    probe: { video: fold('video'), audio: fold('audio'), chance: probe.chance },
  };
}

/** A clip's share of the AUC: the trapezoid over x = 0, 0.05, ..., 1 of [cIoU >= x]; the mean over clips is the set's AUC (the trapezoid is linear). */
export function clipAuc(ciou: number): number {
  return trapezoid(
    aucThresholds,
    aucThresholds.map((t) => (ciou >= t ? 1 : 0)),
  );
}

/** One reported metric: the mean over seeds x clips of a per-clip value. */
export interface VerdictMetric {
  key: string;
  label: string;
  /** Per-clip values and the clip ids they belong to. */
  clips: (r: RunClipScores) => { ids: string[]; values: number[] };
  chance: (r: RunClipScores) => number;
}

const locMetrics = (set: 'large' | 'test', setName: string): VerdictMetric[] =>
  (['betaV', 'alphaV'] as const).flatMap((map) => {
    const name = map === 'betaV' ? 'beta_v' : 'alpha_v';
    return [
      {
        key: `${set}.${map}.pointing`,
        label: `${name} pointing, ${setName}`,
        clips: (r: RunClipScores) => ({ ids: r[set].ids, values: r[set][map].pointing }),
        chance: (r: RunClipScores) => r[set].chance.pointing,
      },
      {
        key: `${set}.${map}.ciou50`,
        label: `${name} cIoU@0.5, ${setName}`,
        clips: (r: RunClipScores) => ({ ids: r[set].ids, values: r[set][map].ciou.map((c) => (c >= 0.5 ? 1 : 0)) }),
        chance: (r: RunClipScores) => r[set].chance.ciou50,
      },
      {
        key: `${set}.${map}.auc`,
        label: `${name} AUC, ${setName}`,
        clips: (r: RunClipScores) => ({ ids: r[set].ids, values: r[set][map].ciou.map(clipAuc) }),
        chance: (r: RunClipScores) => r[set].chance.auc,
      },
    ];
  });

/** The metrics of the verdict, in report order. */
export const verdictMetrics: readonly VerdictMetric[] = [
  ...locMetrics('large', 'large objects'),
  ...locMetrics('test', 'test split'),
  {
    key: 'frequency.alphaA.pointing',
    label: 'alpha_a frequency pointing',
    clips: (r) => ({ ids: r.frequency.ids, values: r.frequency.alphaA }),
    chance: (r) => r.frequency.chance,
  },
  {
    key: 'frequency.betaA.pointing',
    label: 'beta_a frequency pointing',
    clips: (r) => ({ ids: r.frequency.ids, values: r.frequency.betaA }),
    chance: (r) => r.frequency.chance,
  },
  {
    key: 'probe.video',
    label: 'linear probe, video',
    clips: (r) => ({ ids: r.probe.video.map((_, i) => `probe test item ${i}`), values: r.probe.video }),
    chance: (r) => r.probe.chance,
  },
  {
    key: 'probe.audio',
    label: 'linear probe, audio',
    clips: (r) => ({ ids: r.probe.audio.map((_, i) => `probe test item ${i}`), values: r.probe.audio }),
    chance: (r) => r.probe.chance,
  },
  {
    key: 'retrieval.a2v.r1',
    label: 'retrieval R@1 audio->video',
    clips: (r) => ({ ids: r.retrieval.ids, values: r.retrieval.a2v1 }),
    chance: (r) => r.retrieval.chance,
  },
  {
    key: 'retrieval.v2a.r1',
    label: 'retrieval R@1 video->audio',
    clips: (r) => ({ ids: r.retrieval.ids, values: r.retrieval.v2a1 }),
    chance: (r) => r.retrieval.chance,
  },
];

/** A configuration of the verdict (a row of its tables). */
export interface VerdictConfig {
  key: string;
  label: string;
  /** A baseline (the best of them per metric is compared with the candidate). */
  baseline: boolean;
}

/** One trained run's scores. */
export interface VerdictRun {
  config: string;
  seed: number;
  clips: RunClipScores;
}

/** One metric's outcome. */
export interface MetricOutcome {
  key: string;
  label: string;
  chance: number;
  /** Per configuration: its mean with a bootstrap interval (seeds and clips resampled). */
  means: Record<string, BootstrapInterval>;
  /** The baseline with the highest mean on this metric (chosen once, on the full data). */
  best: string;
  /** candidate - best baseline, paired over the seeds both have and the same clips. */
  diff: BootstrapInterval;
}

/** The training check of the verdict: did the baseline's L_con leave chance? */
export interface ConTail {
  config: string;
  seed: number;
  /** Mean L_con over the last `steps` logged steps. */
  lossCon: number;
  retrievalAcc: number;
  steps: number;
}

/** Mean L_con and in-batch retrieval accuracy over the last `share` of a run's logged steps (at least one step). */
export function trainingTail(lines: readonly StepMetrics[], share = 0.1): { lossCon: number; retrievalAcc: number; steps: number } {
  const ok = lines.filter((m) => Number.isFinite(m.lossCon));
  if (!ok.length) throw new Error('verdict: the run logged no finite L_con (metrics.jsonl empty or missing)');
  const k = Math.max(1, Math.round(ok.length * share));
  const tail = ok.slice(-k);
  return {
    lossCon: tail.reduce((a, m) => a + m.lossCon, 0) / k,
    retrievalAcc: tail.reduce((a, m) => a + (m.retrievalAcc ?? NaN), 0) / k,
    steps: k,
  };
}

/** What the verdict needs besides the runs. */
export interface VerdictOptions extends BootstrapOptions {
  /** The configuration compared with the baselines (default 'cmac'). */
  candidate?: string;
}

/** The analysis: every metric plus the four targets. */
export interface VerdictAnalysis {
  configs: VerdictConfig[];
  candidate: string;
  seeds: number[];
  metrics: MetricOutcome[];
  targets: TargetOutcome[];
  resamples: number;
  level: number;
  bootstrapSeed: number;
}

/** One target of issue 14 and whether it is met. */
export interface TargetOutcome {
  name: string;
  met: boolean;
  /** One sentence with the numbers. */
  text: string;
}

const pct = (x: number) => (100 * x).toFixed(1);
const ci = (b: BootstrapInterval) => `[${pct(b.lo)}, ${pct(b.hi)}]`;
const signed = (x: number) => `${x >= 0 ? '+' : ''}${pct(x)}`;

function matrix(runs: VerdictRun[], metric: VerdictMetric, seeds: number[], config: string, ref: string[]): number[][] {
  return seeds.map((seed) => {
    const r = runs.find((x) => x.config === config && x.seed === seed)!;
    const { ids, values } = metric.clips(r.clips);
    if (ids.length !== ref.length || ids.some((id, i) => id !== ref[i])) {
      throw new Error(
        `verdict: ${metric.label}: run ${config} seed ${seed} was scored on other clips than the first run (${ids.length} vs ${ref.length} clips); evaluate every run on the same decoded test sets`,
      );
    }
    return values;
  });
}

/**
 * Means with bootstrap intervals per configuration and metric, the paired
 * difference candidate - best baseline (best = highest mean over every run of
 * that baseline, chosen once per metric), and the four targets of issue 14.
 */
export function analyseVerdict(configs: VerdictConfig[], runs: VerdictRun[], opts: VerdictOptions = {}): VerdictAnalysis {
  const candidate = opts.candidate ?? 'cmac';
  if (!configs.some((c) => c.key === candidate))
    throw new Error(`verdict: the candidate ${candidate} is not one of the configurations ${configs.map((c) => c.key).join(', ')}`);
  const baselines = configs.filter((c) => c.baseline);
  if (!baselines.length) throw new Error('verdict: no baseline configuration to compare with');
  const seedsOf = (key: string) =>
    runs
      .filter((r) => r.config === key)
      .map((r) => r.seed)
      .sort((a, b) => a - b);
  for (const c of configs) if (!seedsOf(c.key).length) throw new Error(`verdict: no finished run of ${c.label}; train it first`);
  const bo: BootstrapOptions = { resamples: opts.resamples, seed: opts.seed, level: opts.level };
  const first = runs.find((r) => r.config === candidate)!;
  const metrics = verdictMetrics.map((m): MetricOutcome => {
    const ref = m.clips(first.clips).ids;
    const means: Record<string, BootstrapInterval> = {};
    for (const c of configs) means[c.key] = bootstrapMean(matrix(runs, m, seedsOf(c.key), c.key, ref), bo);
    const best = baselines.reduce((x, y) => (means[y.key].estimate > means[x.key].estimate ? y : x)).key;
    const common = seedsOf(candidate).filter((s) => seedsOf(best).includes(s));
    if (!common.length) throw new Error(`verdict: ${candidate} and ${best} have no seed in common; pair them on the same seeds`);
    const diff = pairedBootstrapDiff(matrix(runs, m, common, candidate, ref), matrix(runs, m, common, best, ref), bo);
    return { key: m.key, label: m.label, chance: m.chance(first.clips), means, best, diff };
  });
  const analysis: VerdictAnalysis = {
    configs,
    candidate,
    seeds: [...new Set(runs.map((r) => r.seed))].sort((a, b) => a - b),
    metrics,
    targets: [],
    resamples: opts.resamples ?? 10000,
    level: opts.level ?? 0.95,
    bootstrapSeed: opts.seed ?? 1,
  };
  analysis.targets = verdictTargets(analysis);
  return analysis;
}

function labelOf(a: VerdictAnalysis, key: string): string {
  return a.configs.find((c) => c.key === key)?.label ?? key;
}

/**
 * The targets of issue 14: (1) candidate - best baseline >= 10 points of
 * beta_v pointing on large objects with the CI above 0; (2) no loss of
 * linear-probe accuracy: the CI of the difference not below 0 (read as: its
 * lower end >= 0), video and audio; (3) alpha_v pointing >= 60% on large
 * objects; (4) frequency pointing (alpha_a or beta_a) >= 2x chance.
 */
export function verdictTargets(a: VerdictAnalysis): TargetOutcome[] {
  const m = (key: string) => a.metrics.find((x) => x.key === key)!;
  const cand = labelOf(a, a.candidate);
  const out: TargetOutcome[] = [];
  const bp = m('large.betaV.pointing');
  out.push({
    name: 'beta_v pointing on large objects: +10 points over the best baseline, CI above 0',
    met: bp.diff.estimate >= 0.1 && bp.diff.lo > 0,
    text: `${cand} - ${labelOf(a, bp.best)} = ${signed(bp.diff.estimate)} points (95% CI ${ci(bp.diff)}; ${pct(bp.means[a.candidate].estimate)}% vs ${pct(bp.means[bp.best].estimate)}%, chance ${pct(bp.chance)}%)`,
  });
  const probes = ['probe.video', 'probe.audio'].map(m);
  const noLoss = probes.every((p) => p.diff.lo >= 0);
  const significantLoss = probes.filter((p) => p.diff.hi < 0);
  out.push({
    name: 'no loss of linear-probe accuracy (CI of the difference not below 0)',
    met: noLoss,
    text:
      probes
        .map((p) => `${p.label}: ${cand} - ${labelOf(a, p.best)} = ${signed(p.diff.estimate)} points (95% CI ${ci(p.diff)})`)
        .join('; ') +
      (noLoss
        ? ''
        : significantLoss.length
          ? `; a significant loss on ${significantLoss.map((p) => p.label).join(' and ')}`
          : '; the CI reaches below 0 but also above it: no significant loss, no demonstrated parity'),
  });
  const ap = m('large.alphaV.pointing').means[a.candidate];
  out.push({
    name: 'alpha_v pointing >= 60% on large objects',
    met: ap.estimate >= 0.6,
    text: `${cand} ${pct(ap.estimate)}% (95% CI ${ci(ap)}; chance ${pct(m('large.alphaV.pointing').chance)}%)`,
  });
  const fa = m('frequency.alphaA.pointing'),
    fb = m('frequency.betaA.pointing');
  const better = fa.means[a.candidate].estimate >= fb.means[a.candidate].estimate ? fa : fb;
  out.push({
    name: 'frequency pointing (alpha_a or beta_a) >= 2x chance',
    met: better.means[a.candidate].estimate >= 2 * better.chance,
    text: `${cand} alpha_a ${pct(fa.means[a.candidate].estimate)}% (CI ${ci(fa.means[a.candidate])}), beta_a ${pct(fb.means[a.candidate].estimate)}% (CI ${ci(fb.means[a.candidate])}) against 2x chance = ${pct(2 * better.chance)}%`,
  });
  return out;
}

/** How the runs were trained, for the verdict's paragraph. */
export interface VerdictTraining {
  steps: number;
  batch: number;
  /** L_con tails of the runs of the plain baseline (xmodal: chance is ln batch). */
  baselineCon: ConTail[];
  /** A tail L_con at or below this share of ln(batch) counts as having left chance (default 0.9). */
  leftChanceShare?: number;
  /** Extra sentence (e.g. which ramp the candidate used and why). */
  note?: string;
  quick?: boolean;
}

/** Did the baseline's contrastive loss leave chance? true when every run's tail L_con <= share * ln(batch). */
export function leftChance(t: VerdictTraining): { left: boolean; chance: number; text: string } {
  const chance = Math.log(t.batch);
  const share = t.leftChanceShare ?? 0.9;
  const v = t.baselineCon.map((c) => c.lossCon);
  const left = v.length > 0 && v.every((x) => x <= share * chance);
  const range = v.length ? `${Math.min(...v).toFixed(3)}-${Math.max(...v).toFixed(3)}` : 'not logged';
  const acc = t.baselineCon.map((c) => c.retrievalAcc);
  const accText = acc.length
    ? `, in-batch retrieval accuracy ${Math.min(...acc).toFixed(3)}-${Math.max(...acc).toFixed(3)} vs chance ${(1 / t.batch).toFixed(3)}`
    : '';
  return {
    left,
    chance,
    text: `final L_con of the xmodal runs (mean of the last ${t.baselineCon[0]?.steps ?? 0} steps) ${range} vs chance ln ${t.batch} = ${chance.toFixed(3)}${accText}: ${left ? 'left chance' : 'did NOT clearly leave chance'} (rule: <= ${share} ln B in every run)`,
  };
}

/** The one-paragraph verdict: met / not met per target with the numbers, the step count and the L_con check. */
export function verdictParagraph(a: VerdictAnalysis, t: VerdictTraining): string {
  const met = a.targets.filter((x) => x.met).length;
  const lc = leftChance(t);
  const seeds = a.seeds.length;
  return (
    `**Verdict${t.quick ? ' (QUICK SMOKE RUN: not evidence)' : ''}: ${met} of ${a.targets.length} targets met** ` +
    `(${a.configs.length} configurations x ${seeds} seed${seeds > 1 ? 's' : ''}, ${t.steps} steps of batch ${t.batch}; ${lc.text}). ` +
    a.targets.map((x, i) => `(${i + 1}) ${x.name}: **${x.met ? 'met' : 'not met'}**, ${x.text}.`).join(' ') +
    ` Intervals: ${Math.round(a.level * 100)}% percentile bootstrap, ${a.resamples} replicates resampling seeds and test clips (paired for differences); the best baseline is chosen per metric by its mean.` +
    (t.note ? ` ${t.note}` : '')
  );
}

/** The verdict section: the paragraph, then one table of every metric (means with CIs per configuration, best baseline, difference with CI). */
export function verdictMarkdown(a: VerdictAnalysis, t: VerdictTraining): string {
  const row = (cells: string[]) => `| ${cells.join(' | ')} |`;
  const head = [
    'metric',
    'chance',
    ...a.configs.map((c) => c.label),
    'best baseline',
    `${labelOf(a, a.candidate)} - best [${Math.round(a.level * 100)}% CI]`,
  ];
  const cell = (b: BootstrapInterval) => `${pct(b.estimate)} ${ci(b)}`;
  const lines = [
    verdictParagraph(a, t),
    '',
    row(head),
    row(head.map(() => '---')),
    ...a.metrics.map((m) =>
      row([
        m.label,
        pct(m.chance),
        ...a.configs.map((c) => cell(m.means[c.key])),
        labelOf(a, m.best),
        `${signed(m.diff.estimate)} ${ci(m.diff)}${m.diff.lo > 0 ? ' (above 0)' : m.diff.hi < 0 ? ' (below 0)' : ''}`,
      ]),
    ),
    '',
    `Every number is a percentage (AUC x100): the mean over ${a.seeds.length} seed(s) x the test clips, with its ${Math.round(a.level * 100)}% bootstrap interval in brackets (${a.resamples} replicates, bootstrap seed ${a.bootstrapSeed}). ` +
      "Per clip: pointing = expected argmax hit; cIoU@0.5 = [cIoU >= 0.5]; AUC = the clip's trapezoid share over thresholds 0..1 (their mean is the set's AUC); probe = prediction correct; R@1 = expected recall@1 (ties shared). " +
      'The best baseline is the baseline row with the highest mean on that metric (chosen once, not per replicate); the difference is paired on the seeds both have and the same clips.',
  ];
  return lines.join('\n');
}
