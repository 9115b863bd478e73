// Checkpoints: step-N.safetensors (weights + optimiser state, written by the
// native side atomically) and step-N.json (step, epoch, config, loader
// cursor, seeds), written after it. The JSON is the commit marker: a
// checkpoint counts only when both files are complete. Below train (which
// writes and resumes them) and eval (which loads them): the format, listing,
// reading and opening a checkpoint as a model live here once.
import * as fs from 'fs';
import * as path from 'path';
import { toModelConfig, type CmacConfig } from './config';
import type { LoaderCursor } from './data';
import { onProcessExit, writeFileAtomic } from './files';
import { CmacModel } from './model';

/** What a checkpoint's JSON holds. */
export interface CheckpointState {
  format: 'cmac-checkpoint/1';
  step: number;
  epoch: number;
  cursor: LoaderCursor;
  config: CmacConfig;
  /** Seeds that, with step and cursor, fix every random choice still to come. */
  rng: { seed: number; loaderSeed: number };
  nonFiniteInARow: number;
  skippedSteps: number;
  /** The step the lambda ramp started at (loss.rampStart 'auto': found in training; null: not yet). Older checkpoints lack it. */
  rampStart?: number | null;
  time: string;
}

/** The two files of one checkpoint. */
export interface CheckpointRef {
  step: number;
  weights: string;
  state: string;
}

const name = (step: number) => `step-${String(step).padStart(8, '0')}`;

/** Writes a checkpoint and keeps the newest `keepLast`. */
export async function saveCheckpoint(dir: string, model: CmacModel, state: CheckpointState, keepLast: number): Promise<CheckpointRef> {
  fs.mkdirSync(dir, { recursive: true });
  const ref = {
    step: state.step,
    weights: path.join(dir, `${name(state.step)}.safetensors`),
    state: path.join(dir, `${name(state.step)}.json`),
  };
  // Exiting mid-write (a second Ctrl-C / SIGTERM) must not leave ~33 MB of
  // uncommitted weights: the hook removes them (and the writer's temp file)
  // unless the JSON commit marker was written; an overwritten committed
  // checkpoint (same step) is left alone.
  const fresh = !fs.existsSync(ref.state);
  const cancel = onProcessExit(() => {
    fs.rmSync(`${ref.weights}.tmp-${process.pid}`, { force: true });
    if (fresh && !fs.existsSync(ref.state)) fs.rmSync(ref.weights, { force: true });
  });
  try {
    await model.save(ref.weights, {
      format: state.format,
      step: String(state.step),
      preset: state.config.preset,
      lossPreset: state.config.loss.preset,
    });
    try {
      writeFileAtomic(ref.state, JSON.stringify(state, null, 2) + '\n');
    } catch (e) {
      fs.rmSync(ref.weights, { force: true }); // uncommitted without its JSON: free the space
      throw new Error(
        `cannot write checkpoint ${ref.state}: ${(e as Error).message}. ` +
          `Fix: free disk space (or inodes) in ${dir} or choose another run folder (train.runDir; CLI: --run-dir); the previous checkpoint is intact.`,
      );
    }
  } finally {
    cancel();
  }
  for (const old of listCheckpoints(dir).slice(0, -keepLast)) {
    fs.rmSync(old.state, { force: true }); // uncommit first, then drop the weights
    fs.rmSync(old.weights, { force: true });
  }
  return ref;
}

/** Complete checkpoints in `dir`, oldest first (torn or temp files are ignored). */
export function listCheckpoints(dir: string): CheckpointRef[] {
  if (!fs.existsSync(dir)) return [];
  const out: CheckpointRef[] = [];
  for (const f of fs.readdirSync(dir)) {
    const m = /^step-(\d{8})\.json$/.exec(f);
    if (!m) continue;
    const ref = { step: Number(m[1]), state: path.join(dir, f), weights: path.join(dir, f.replace(/\.json$/, '.safetensors')) };
    if (fs.existsSync(ref.weights)) out.push(ref);
  }
  return out.sort((a, b) => a.step - b.step);
}

/**
 * Removes weights without their JSON commit marker (`step-N.safetensors`
 * alone): what a process killed between the two writes leaves, ~33 MB each
 * for the tiny preset, never counted as a checkpoint. Only for the run
 * folder's lock holder (nobody else can be writing). Returns how many.
 */
export function removeUncommittedCheckpoints(dir: string): number {
  let names: string[];
  try {
    names = fs.readdirSync(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const f of names) {
    if (!/^step-\d{8}\.safetensors$/.test(f) || names.includes(f.replace(/\.safetensors$/, '.json'))) continue;
    fs.rmSync(path.join(dir, f), { force: true });
    removed++;
  }
  return removed;
}

/** Reads and checks a checkpoint's JSON; the error names the file and the fix. */
export function readCheckpointState(ref: CheckpointRef): CheckpointState {
  let s: CheckpointState;
  try {
    s = JSON.parse(fs.readFileSync(ref.state, 'utf8'));
  } catch (e) {
    throw new Error(`checkpoint ${ref.state} is unreadable: ${(e as Error).message}. Fix: delete it to resume from the previous one.`);
  }
  if (s.format !== 'cmac-checkpoint/1' || typeof s.step !== 'number' || !s.cursor || !s.config) {
    throw new Error(
      `checkpoint ${ref.state} is not a cmac checkpoint (format ${JSON.stringify(s.format)}). Fix: use a checkpoint of a run folder written by train() (CLI: cmac train).`,
    );
  }
  return { ...s, config: upgradeConfig(s.config) };
}

/**
 * A checkpoint written before model.pooling and loss.rampStart (issue 14),
 * spelled as today's config with the settings it was trained with: the
 * baseline presets then pooled by the mean (or as loss.attentionPooling said),
 * the others by attention; the ramp started at step 0; the log-mel had no
 * dataset statistics (logmel.statsClips 0) and no SpecAugment.
 */
export function upgradeConfig(c: CmacConfig): CmacConfig {
  const loss = { ...c.loss } as CmacConfig['loss'] & { attentionPooling?: boolean };
  const model = { ...c.model };
  if (model.pooling === undefined) {
    const attention = loss.attentionPooling ?? !(loss.preset === 'xmodal' || loss.preset === 'xmodal+within');
    model.pooling = attention ? 'attention' : 'mean';
  }
  delete loss.attentionPooling;
  loss.rampStart ??= 0;
  loss.rampThreshold ??= 0.2;
  // Before the dataset statistics and SpecAugment: mean 0 / std 1, no masks.
  const logmel = { ...c.logmel };
  logmel.statsClips ??= 0;
  logmel.specAugment ??= { freqMasks: 0, freqWidth: 16, timeMasks: 0, timeWidth: 20 };
  return { ...c, model, loss, logmel };
}

/** The dotted config paths that upgradeConfig fills because `raw` (a checkpoint's config as written) lacks them. */
export function upgradedKeys(raw: unknown): string[] {
  const c = (raw ?? {}) as { model?: Record<string, unknown>; loss?: Record<string, unknown>; logmel?: Record<string, unknown> };
  const keys: string[] = [];
  if (c.model?.pooling === undefined) keys.push('model.pooling');
  if (c.loss?.rampStart === undefined) keys.push('loss.rampStart');
  if (c.loss?.rampThreshold === undefined) keys.push('loss.rampThreshold');
  if (c.logmel?.statsClips === undefined) keys.push('logmel.statsClips');
  if (c.logmel?.specAugment === undefined) keys.push('logmel.specAugment');
  return keys;
}

/** The newest complete checkpoint, or undefined. */
export function latestCheckpoint(dir: string): CheckpointRef | undefined {
  const all = listCheckpoints(dir);
  return all[all.length - 1];
}

/** A model restored from a checkpoint (eval mode), with the config it was trained with. */
export interface LoadedModel {
  model: CmacModel;
  config: CmacConfig;
  state: CheckpointState;
  ref: CheckpointRef;
}

/** Finds the checkpoint a path names: a step-N.json / .safetensors file, a checkpoints/ folder or a run folder (its newest checkpoint). */
export function resolveCheckpoint(spec: string): CheckpointRef {
  if (!fs.existsSync(spec))
    throw new Error(
      `checkpoint ${spec} does not exist. Fix: pass a run folder (runs/x), its checkpoints/ folder or a step-N.safetensors file.`,
    );
  if (fs.statSync(spec).isDirectory()) {
    const ref = latestCheckpoint(path.join(spec, 'checkpoints')) ?? latestCheckpoint(spec);
    if (!ref)
      throw new Error(
        `no checkpoint in ${spec}. Fix: train into it first (train() with train.runDir ${JSON.stringify(spec)}; CLI: cmac train --run-dir ${spec}) or pass a step-N.safetensors file.`,
      );
    return ref;
  }
  const base = spec.replace(/\.(safetensors|json)$/, '');
  const ref = { step: Number((/step-(\d+)$/.exec(base) ?? [])[1] ?? NaN), weights: `${base}.safetensors`, state: `${base}.json` };
  if (!fs.existsSync(ref.weights) || !fs.existsSync(ref.state)) {
    throw new Error(
      `checkpoint ${spec} is incomplete: it needs both ${path.basename(ref.weights)} and ${path.basename(ref.state)}. Fix: use a checkpoint written by train() (CLI: cmac train).`,
    );
  }
  return ref;
}

/**
 * Builds the model a checkpoint's config describes, loads its weights and
 * puts it in eval mode. `device` overrides the config's.
 * @example const { model, config } = await loadCheckpoint('runs/tiny'); ... model.dispose();
 */
export async function loadCheckpoint(spec: string, opts: { device?: string } = {}): Promise<LoadedModel> {
  const ref = resolveCheckpoint(spec);
  const state = readCheckpointState(ref);
  const config = opts.device ? { ...state.config, device: opts.device } : state.config;
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
