// Opening a trained model for evaluation: a cmac checkpoint (step-N.safetensors
// + step-N.json holding the resolved config), a run's checkpoints/ folder
// (the newest checkpoint), or the run folder itself. The work is
// lib/train/load.ts's; these are the names lib/eval uses.
import type { CmacConfig } from '../config';
import type { CheckpointRef } from '../train/checkpoint';
import { findCheckpoint, openCheckpoint, OpenedCheckpoint } from '../train/load';

/** A model loaded from a checkpoint (eval mode), with the config it was trained with. */
export type LoadedModel = OpenedCheckpoint;

/** Finds the checkpoint a path names: a step-N.json / .safetensors file, a checkpoints/ folder or a run folder. */
export function resolveCheckpoint(spec: string): CheckpointRef {
  return findCheckpoint(spec);
}

/**
 * Builds the model a checkpoint's config describes, loads its weights and
 * puts it in eval mode. `device` overrides the config's.
 * @example const { model, config } = await loadCheckpoint('runs/tiny'); ... model.dispose();
 */
export async function loadCheckpoint(spec: string, opts: { device?: string } = {}): Promise<LoadedModel> {
  return openCheckpoint(spec, opts.device);
}

/** Clip geometry of a config, as the loader takes it. */
export function clipOf(config: CmacConfig): { frames: number; fps: number; size: number; audioSeconds: number; sampleRate: number } {
  return { ...config.clip, sampleRate: config.logmel.sampleRate };
}
