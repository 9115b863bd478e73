/**
 * cmac: Cross-Modal Attention Consistency for audio-visual self-supervised
 * learning, on libtorch through a Node-API addon.
 *
 * The public API: what a user trains, evaluates and inspects with. The
 * building blocks under it (decoders, frame ops, metrics, image helpers, file
 * formats) are `cmac/internal`: usable, but free to change between versions.
 */
// The engine: models, tensors, the addon's state.
export { info, setNumThreads, getNumThreads, memory, setCpuCacheLimit, releaseCpuCache } from './info';
export type { CmacInfo, MemoryReport } from './info';
export type { CpuCacheReport } from './native';
export { CmacModel } from './model';
export type { Batch, StepOptions, StepResult, Embeddings, AttentionMaps, LogMelStats } from './model';
export { VideoClassifier } from './classifier';
export type { ClassifierOptions, ClassifierStepResult, LabelledBatch } from './classifier';
export { readSafetensors, writeSafetensors } from './safetensors';
export type { SafetensorsFile } from './safetensors';
export { numel, zeros } from './tensor';
export type { Tensor, AnyTensor, DType, DTypeArrays } from './tensor';

// Configuration: one zod schema, presets, files and overrides.
export {
  resolveConfig,
  loadConfigFile,
  parseOverride,
  toModelConfig,
  clipOf,
  learningRate,
  lambdaScale,
  RampStart,
  lossSwitches,
  configSchema,
  modelConfigSchema,
  lossPresetNames,
  ConfigError,
} from './config';
export type { CmacConfig, CmacConfigInput, ConfigInput, ModelConfig, LossPreset } from './config';
export { modelPreset, clipShapes } from './presets';
export type { SizePreset, ClipShape } from './presets';
export { OptionsError } from './options';
// The stable `code` of errors from the native engine (docs/errors.md).
export type { NativeErrorCode, NativeError } from './native';

// Data: sources, the clip loader, synthetic data.
export {
  folderSource,
  manifestSource,
  tarSource,
  synthSource,
  openSource,
  createLoader,
  ClipLoader,
  probe,
  DataError,
  TooFewClipsError,
  skipReasons,
  synthesize,
  renderClip,
  synthClasses,
} from './data';
export type {
  Source,
  SampleRef,
  FolderSourceOptions,
  ManifestSourceOptions,
  ManifestEntry,
  TarSourceOptions,
  SynthSourceOptions,
  LoaderOptions,
  LoaderBatch,
  LoaderCursor,
  LoaderStats,
  ClipMeta,
  EpochSummary,
  SkipReason,
  ProbeInfo,
  DecoderKind,
  SynthesizeOptions,
  SynthResult,
  RenderedClip,
  SynthClass,
} from './data';

// Training and its run folders.
export { train, NonFiniteLossError, RunFolderBusyError, readMetrics } from './train';
export type { TrainOptions, TrainSummary, StepMetrics } from './train';
export { latestCheckpoint, listCheckpoints, readCheckpointState, resolveCheckpoint, loadCheckpoint } from './checkpoint';
export type { CheckpointRef, CheckpointState, LoadedModel } from './checkpoint';

// Evaluation (docs/evaluation.md): one call for retrieval, localisation and
// frequency grounding, the linear probe, finetuning, and their datasets.
export {
  evaluateModel,
  evaluateLocalization,
  evaluateRetrieval,
  evaluateFrequency,
  evalLoader,
  collectOutputs,
  linearProbe,
  finetune,
  openProbeDataset,
  groundTruthFor,
  synthGroundTruthOf,
  manifestBoxesOf,
  flickrGroundTruthOf,
  vggssGroundTruthOf,
} from './eval';
export type {
  EvaluationResults,
  EvaluateModelOptions,
  ClipTask,
  ModelOutputs,
  CollectOptions,
  GroundTruthOf,
  LocalizationOptions,
  LocalizationResult,
  LocalizationSummary,
  RetrievalSummary,
  FrequencyResult,
  FrequencySummary,
  LinearProbeOptions,
  LinearProbeResult,
  FinetuneOptions,
  FinetuneResult,
  ProbeDataset,
  ProbeDatasetOptions,
} from './eval';

// Pictures of what a model attends to.
export {
  encodePng,
  decodePng,
  heatmap,
  overlay,
  frameImage,
  colourBar,
  localizationPanel,
  spectrogramImage,
  frequencyPicture,
  frequencyTimeline,
  scatterSvg,
  evaluationSections,
} from './viz';
export type { RgbImage, ColormapName, OverlayOptions, FrequencyPictureOptions, FrequencyTimelineOptions, EvaluationVisuals } from './viz';
