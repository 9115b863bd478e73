/**
 * `cmac/internal`: the building blocks under the public API (lib/index.ts),
 * module by module: decoders and ffmpeg jobs, frame and audio ops, caches,
 * seeds, metrics, dataset readers, image and report helpers, checkpoint and
 * run-folder files, TensorBoard records. Scripts, benchmarks and tests use
 * them; programs may too, but these names can change between minor versions.
 * Public names are included, so one import serves code that needs both.
 */
export * from './index';
export * from './data';
export * from './eval';
export * from './viz';
export * from './train';
export * from './checkpoint';
export { deepMerge, saveConfig, maxConfigDepth } from './config';
export { sizePresets } from './config/presets';
export { clipShape } from './presets';
export { checkOptionKeys, keysOf } from './options';
export {
  writeFileAtomic,
  fsyncDir,
  onProcessExit,
  makeOwnedTempDir,
  removeStaleTempDirs,
  removeStaleTempFiles,
  processAlive,
} from './files';
export { writeTrainingReport, trainingSections } from './train/report';
export { launchLocal, freePort } from './distributed/launch';
export type { LaunchOptions } from './distributed/launch';
