// The data pipeline's public surface (docs/data.md). Importing it loads no
// native addon (lib/data/decode.ts loads it on the first native decode);
// lib/data/ffmpeg.ts is the only module that spawns ffmpeg.
export { probe, decodeClip, decodeClips, decodeVideos, decoderFor, nativeDecoding, nativeDecoder, ProbeIndex } from './decode';
export type { DecoderKind, DecodeOptions, MediaDecoder } from './decode';
export { encodeClips, decodeAudioFile, muxSoundtrack, runFfmpeg, centreCrop, videoFilter, ffmpegBin, ffprobeBin } from './ffmpeg';
export type {
  ProbeInfo,
  DecodeRequest,
  DecodedClip,
  ClipJob,
  VideoJob,
  CropRect,
  Jitter,
  EncodeJob,
  EncodeOptions,
  ProcessOptions,
  FfmpegResult,
  MuxJob,
} from './ffmpeg';
export { DataError, TooFewClipsError, skipReasons } from './errors';
export type { SkipReason } from './errors';
export { planClip, randomResizedCrop, squareCentreCrop, applyAudioAugment } from './augment';
export type { ClipGeometry, AugmentOptions, ClipPlan, PlanOptions } from './augment';
export {
  folderSource,
  manifestSource,
  readManifest,
  parseManifest,
  resolveLabels,
  tarSource,
  synthSource,
  parseCsv,
  expandBraces,
  videoExtensions,
} from './sources';
export type {
  Source,
  SampleRef,
  OpenedSample,
  FolderSourceOptions,
  ManifestSourceOptions,
  Manifest,
  ManifestEntry,
  LabelCell,
  TarSourceOptions,
  SynthSourceOptions,
} from './sources';
export { openSource } from './open';
export { ClipLoader, createLoader } from './loader';
export type { LoaderOptions, LoaderBatch, LoaderCursor, LoaderStats, ClipMeta, EpochSummary } from './loader';
export { ClipCache, cacheKey } from './cache';
export type { ClipCacheOptions } from './cache';
export { VideoCache, VideoFill, CacheDamage, entryBytes } from './videocache';
export type { TrainCacheOptions, VideoEntry } from './videocache';
export { augmentFrames, cropResize, cropResizeFrame, axisTaps, applyEq, workingSize } from './frames';
export type { AxisTaps, CropResize } from './frames';
export { Prng, mixSeed, hashString } from './prng';
export { synthesize, renderClip, synthClasses, synthSplits, synthShapes, synthBandRange, clipName } from './synth';
export { hzToMel, melToHz, melCentres, melBins } from '../audio/mel';
export type {
  SynthOptions,
  SynthesizeOptions,
  SynthResult,
  SynthClass,
  SynthClipTruth,
  SynthObjectTruth,
  RenderedClip,
  SynthShape,
  SynthTexture,
} from './synth';
export { writeTestVideos, renderTestVideo } from './fixtures';
export type { TestVideo } from './fixtures';
