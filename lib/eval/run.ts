// One pass of a frozen model over eval clips, then every asked evaluator on
// its outputs: what `cmac eval` and scripts/ablation.js run.
import type { CmacConfig } from '../config';
import type { LoaderBatch } from '../data/loader';
import type { CmacModel } from '../model';
import { checkOptionKeys, keysOf } from '../options';
import { collectOutputs, ModelOutputs } from './collect';
import { evaluateFrequency, evaluateLocalization, evaluateRetrieval, FrequencyResult, GroundTruthOf, LocalizationResult } from './evaluate';
import type { FinetuneResult } from './finetune';
import type { LocalizationProtocol } from './localization';
import type { LinearProbeResult } from './probe';
import type { RetrievalSummary } from './retrieval';

/** Evaluators that run on one set of clips. */
export type ClipTask = 'retrieval' | 'localization' | 'frequency';

/** What was measured (any subset); `cmac eval --json` writes this. */
export interface EvaluationResults {
  checkpoint?: string;
  step?: number;
  data?: string;
  localization?: LocalizationResult;
  frequency?: FrequencyResult;
  retrieval?: { audioToVideo: RetrievalSummary; videoToAudio: RetrievalSummary };
  linearProbe?: LinearProbeResult;
  finetune?: FinetuneResult;
  /** Tasks `cmac eval all` left out, and why (e.g. no ground-truth boxes). */
  skipped?: Partial<Record<ClipTask, string>>;
}

const evaluateModelOptionKeys = keysOf<EvaluateModelOptions>()([
  'config',
  'clips',
  'tasks',
  'gtOf',
  'protocol',
  'keepFrames',
  'keepAudio',
  'onProgress',
]);

/** Options of {@link evaluateModel}. */
export interface EvaluateModelOptions {
  /** The model's resolved config (log-mel settings for the frequency ground truth). */
  config: CmacConfig;
  /** Eval clips: a live eval loader or batches decoded once. */
  clips: AsyncIterable<LoaderBatch> | Iterable<LoaderBatch>;
  tasks: ClipTask[];
  /** Ground truth per clip (localisation, frequency). */
  gtOf?: GroundTruthOf;
  /** Localisation protocol: 'ezvsl' (default) or 'lvs' (docs/evaluation.md). */
  protocol?: LocalizationProtocol;
  /** Keep frames / audio for pictures (report). */
  keepFrames?: boolean;
  /** true, or the number of clips (from the first) whose audio is kept. */
  keepAudio?: boolean | number;
  onProgress?: (clips: number) => void;
}

/**
 * Runs the model once over the clips (embeddings when retrieval is asked,
 * maps when localisation or frequency is) and evaluates each task.
 * @example const { results } = await evaluateModel(model, { config, clips: batches, tasks: ['retrieval', 'localization'], gtOf });
 */
export async function evaluateModel(
  model: CmacModel,
  o: EvaluateModelOptions,
): Promise<{ results: EvaluationResults; outputs: ModelOutputs }> {
  checkOptionKeys(o, evaluateModelOptionKeys, 'evaluateModel()');
  const needMaps = o.tasks.includes('localization') || o.tasks.includes('frequency');
  if (needMaps && !o.gtOf) throw new Error('localisation and frequency grounding need ground truth (gtOf)');
  const outputs = await collectOutputs(model, o.clips, {
    embed: o.tasks.includes('retrieval') || !!o.keepFrames,
    maps: needMaps,
    keepFrames: o.keepFrames,
    keepAudio: o.keepAudio,
    sampleRate: o.config.logmel.sampleRate,
    onProgress: o.onProgress,
  });
  if (!outputs.clips.length) throw new Error('no clips to evaluate (the source listed none, or every clip was skipped)');
  const results: EvaluationResults = {};
  if (o.tasks.includes('retrieval')) results.retrieval = evaluateRetrieval(outputs);
  if (o.tasks.includes('localization')) {
    results.localization = evaluateLocalization(outputs, o.gtOf!, { protocol: o.protocol, tauT: o.config.loss.tauT });
    if (!results.localization.alphaV.n)
      throw new Error(
        `localisation: none of the ${outputs.clips.length} clips has ground-truth boxes (synthetic data, a manifest 'boxes' column, or annotations: groundTruthFor(data, clip, annotations), CLI --annotations)`,
      );
  }
  if (o.tasks.includes('frequency')) {
    results.frequency = evaluateFrequency(outputs, o.gtOf!, o.config.logmel.nMels);
    if (!results.frequency.alphaA.n)
      throw new Error('frequency grounding: no clip has ground-truth mel bins; only the synthetic dataset has them');
  }
  return { results, outputs };
}
