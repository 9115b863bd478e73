/**
 * cmac: Cross-Modal Attention Consistency for audio-visual self-supervised
 * learning, on libtorch through a Node-API addon.
 */
export { info, setNumThreads, getNumThreads, memory } from './info';
export type { CmacInfo, MemoryReport } from './info';
export { CmacModel } from './model';
export type { ModelConfig, Batch, StepOptions, StepResult, Embeddings, AttentionMaps, LossPreset } from './model';
export { VideoClassifier } from './classifier';
export type { ClassifierOptions, ClassifierStepResult, LabelledBatch } from './classifier';
export { modelPreset, clipShapes } from './presets';
export type { SizePreset, ClipShape } from './presets';
export { readSafetensors, writeSafetensors } from './safetensors';
export type { SafetensorsFile } from './safetensors';
export { numel, zeros } from './tensor';
export type { Tensor, AnyTensor, DType, DTypeArrays } from './tensor';
export * from './data';
export { resolveConfig, loadConfigFile, parseOverride, toModelConfig, learningRate, lambdaScale, RampStart, lossSwitches, ConfigError } from './config';
export { OptionsError } from './options';
export type { CmacConfig, CmacConfigInput, ConfigInput } from './config';
export { train, NonFiniteLossError, RunFolderBusyError, latestCheckpoint, listCheckpoints, readCheckpointState, readMetrics, openSource } from './train';
export type { TrainOptions, TrainSummary, CheckpointRef, CheckpointState, StepMetrics } from './train';
export * from './eval';
export * from './viz';
