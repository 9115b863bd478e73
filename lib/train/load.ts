// Opening a trained model from a checkpoint file or a run folder.
import * as fs from 'fs';
import * as path from 'path';
import { CmacConfig, toModelConfig } from '../config';
import { CmacModel } from '../model';
import { CheckpointRef, CheckpointState, latestCheckpoint, readCheckpointState } from './checkpoint';

/** A model restored from a checkpoint, with the config it was trained with. */
export interface OpenedCheckpoint {
  model: CmacModel;
  config: CmacConfig;
  state: CheckpointState;
  ref: CheckpointRef;
}

/** Resolves a run folder, its checkpoints/ folder, or a step-N.safetensors/.json file to a checkpoint. */
export function findCheckpoint(p: string): CheckpointRef {
  if (!fs.existsSync(p)) throw new Error(`checkpoint ${p} does not exist. Fix: pass a run folder (runs/x), its checkpoints/ folder or a step-N.safetensors file.`);
  if (fs.statSync(p).isDirectory()) {
    const ref = latestCheckpoint(path.join(p, 'checkpoints')) ?? latestCheckpoint(p);
    if (!ref) throw new Error(`no checkpoint in ${p}. Fix: train first (cmac train --run-dir ${p}) or pass a step-N.safetensors file.`);
    return ref;
  }
  const base = p.replace(/\.(safetensors|json)$/, '');
  const ref = { step: Number((/step-(\d+)$/.exec(base) ?? [])[1] ?? NaN), weights: `${base}.safetensors`, state: `${base}.json` };
  if (!fs.existsSync(ref.weights) || !fs.existsSync(ref.state)) {
    throw new Error(`checkpoint ${p} is incomplete: it needs both ${path.basename(ref.weights)} and ${path.basename(ref.state)}. Fix: use a checkpoint written by cmac train.`);
  }
  return ref;
}

/**
 * Loads a checkpoint into a new model (in eval mode).
 * @example const { model, config } = await openCheckpoint('runs/demo/run');
 */
export async function openCheckpoint(p: string, device?: string): Promise<OpenedCheckpoint> {
  const ref = findCheckpoint(p);
  const state = readCheckpointState(ref);
  const config = device ? { ...state.config, device } : state.config;
  const model = await CmacModel.create(toModelConfig(config));
  try {
    await model.load(ref.weights);
  } catch (e) {
    model.dispose();
    throw e;
  }
  model.eval();
  return { model, config, state, ref };
}
