export { train, NonFiniteLossError } from './trainer';
export type { TrainOptions, TrainSummary } from './trainer';
export { latestCheckpoint, listCheckpoints, readCheckpointState, saveCheckpoint } from '../checkpoint';
export type { CheckpointRef, CheckpointState } from '../checkpoint';
export type { StepMetrics } from './metrics';
export { read as readMetrics } from './metrics';
export { TensorBoardWriter, crc32c, maskedCrc32c, tfRecord, readTfRecords, eventSchema } from './tensorboard';
export { lockRunDir, RunFolderBusyError } from './files';
export type { LockHolder, RunLock } from './files';
