// Evaluation of trained models (method.md sections 6-7, docs/evaluation.md):
// linear probe, retrieval, sound-source localisation (LVS / EZ-VSL protocol),
// frequency grounding, finetuning, and the dataset layouts and ground-truth readers they use.
export { fitLogisticRegression, predict } from './logreg';
export type { LinearClassifier } from './logreg';
export {
  evalSize,
  upsampleBilinear,
  minMaxNormalise,
  medianThreshold,
  gtMap,
  ciou,
  pointingHit,
  massInside,
  areaShare,
  scoreMap,
  aucThresholds,
  trapezoid,
  summariseLocalization,
  localizationProtocols,
  checkProtocol,
  resizeAlignCorners,
  resizeOpenCvLinear,
  protocolUpsample,
  protocolMask,
  numpySum,
} from './localization';
export type { Box, LocalizationScore, LocalizationSummary, LocalizationProtocol, ScoreOptions } from './localization';
export { melBinsToBands, scoreBands, summariseFrequency } from './frequency';
export type { FrequencyScore, FrequencySummary } from './frequency';
export { similarity, recallAtK, crossModalRetrieval, matchRanks, queryRecall, queryRank } from './retrieval';
export type { RetrievalSummary, MatchRank } from './retrieval';
export { percentile, bootstrapMean, pairedBootstrapDiff } from './bootstrap';
export type { SeedClipMatrix, BootstrapOptions, BootstrapInterval } from './bootstrap';
export {
  runClipScores,
  clipAuc,
  verdictMetrics,
  trainingTail,
  analyseVerdict,
  verdictTargets,
  leftChance,
  verdictParagraph,
  verdictMarkdown,
} from './verdict';
export type {
  LocalizationClips,
  RunClipScores,
  VerdictMetric,
  VerdictConfig,
  VerdictRun,
  MetricOutcome,
  ConTail,
  VerdictOptions,
  VerdictAnalysis,
  TargetOutcome,
  VerdictTraining,
} from './verdict';
export {
  clipGtMap,
  normalisedToGrid,
  registerBox,
  evalGeometry,
  clipFrameIndices,
  synthGroundTruth,
  parseFlickrXml,
  parseVggssJson,
} from './groundtruth';
export type { ClipGroundTruth, SynthGtOptions, ClipTiming, VggssEntry, FrameGeometry } from './groundtruth';
export {
  parseUcfClassInd,
  parseUcfList,
  parseHmdbSplit,
  parseEsc50Csv,
  carveValidation,
  detectLayout,
  openProbeDataset,
  itemsSource,
  itemKey,
  acceptedLayouts,
} from './datasets';
export type { ProbeItem, ProbeFold, ProbeDataset, DatasetLayout, ProbeDatasetOptions, Esc50Row } from './datasets';
export { resolveCheckpoint, loadCheckpoint } from '../checkpoint';
export type { LoadedModel } from '../checkpoint';
export { clipOf } from '../config';
export {
  collectOutputs,
  evalLoader,
  decodeAll,
  averageBySample,
  clipInfos,
  RowsBuilder,
  audioWindows,
  audioFileFeatures,
  row,
  rowSize,
} from './collect';
export type { ClipInfo, Rows, ModelOutputs, CollectOptions } from './collect';
export { defaultL2Grid, featureStats, standardise, accuracy, majorityAccuracy, meanStd, fitProbe, linearProbe, probeItems } from './probe';
export type { LabelledFeatures, ProbeFit, LinearProbeOptions, LinearProbeResult } from './probe';
export { finetune, finetuneAugment, scoreLogits } from './finetune';
export type { FinetuneOptions, FinetuneEpoch, FinetuneFold, FinetuneResult } from './finetune';
export {
  evaluateLocalization,
  evaluateFrequency,
  evaluateRetrieval,
  synthGroundTruthOf,
  manifestBoxesOf,
  flickrGroundTruthOf,
  vggssGroundTruthOf,
  groundTruthFor,
  frameGeometries,
  isSynthFolder,
} from './evaluate';
export type {
  GroundTruthOf,
  ClipLocalization,
  LocalizationResult,
  LocalizationOptions,
  FrequencyResult,
  FrameGeometries,
} from './evaluate';
export { evaluateModel } from './run';
export type { ClipTask, EvaluationResults, EvaluateModelOptions } from './run';
