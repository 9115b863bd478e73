// The training loop. It reads top to bottom like a plain loop:
// batch -> native step -> log -> maybe checkpoint; anything clever lives in a
// named helper. Steps run off the JS thread, so the event loop stays free.
import * as fs from 'fs';
import * as path from 'path';
import {
  clipOf,
  CmacConfig,
  CmacConfigInput,
  lambdaScale,
  learningRate,
  RampStart,
  resolveConfig,
  saveConfig,
  toModelConfig,
} from '../config';
import { createLoader, LoaderBatch, LoaderCursor, LoaderStats, openSource, TooFewClipsError } from '../data';
import { setNumThreads } from '../info';
import { checkOptionKeys, keysOf } from '../options';
import { CmacModel } from '../model';
import {
  CheckpointRef,
  CheckpointState,
  latestCheckpoint,
  readCheckpointState,
  removeUncommittedCheckpoints,
  saveCheckpoint,
  upgradedKeys,
} from '../checkpoint';
import { untilAborted } from './abort';
import { fitLogmelStats } from './stats';
import { removeStaleTempFiles } from '../files';
import { ensureWritableDir, lockRunDir, RunLock } from './files';
import { MetricsLog, StepMetrics } from './metrics';
import { ProgressBar } from './progress';
import { writeTrainingReport } from './report';
import { TensorBoardWriter } from './tensorboard';

/** Options of {@link train}. */
export interface TrainOptions {
  /** Called after every step with its metrics. */
  onStep?: (m: StepMetrics) => void;
  /** Aborting stops the run after the current step (at once while it waits for data; one process only), with a checkpoint. */
  signal?: AbortSignal;
  /** Continue from the newest checkpoint in the run folder. */
  resume?: boolean;
  /** Log lines (data skips, checkpoints); default: none. */
  log?: (line: string) => void;
  /** Terminal progress bar (default: when stderr is a TTY). */
  progress?: boolean;
}

const trainOptionKeys = keysOf<TrainOptions>()(['onStep', 'signal', 'resume', 'log', 'progress']);

/** What a finished (or stopped) run reports. */
export interface TrainSummary {
  runDir: string;
  stepsDone: number;
  totalSteps: number;
  stoppedBy: 'done' | 'abort';
  last?: StepMetrics;
  checkpoint?: CheckpointRef;
  report: string;
  skippedSamples: number;
  skippedSteps: number;
  wallSeconds: number;
  /** The loader's counts (clips, batches, skips per reason). */
  dataStats: LoaderStats;
}

/** A run stopped because too many steps in a row had a non-finite loss. */
export class NonFiniteLossError extends Error {
  readonly code = 'CMAC_NON_FINITE_LOSS';
}

/**
 * Runs CMAC pretraining as the config says, writing the run folder
 * (config.json, metrics.jsonl, checkpoints/, report.html).
 * @example
 * const summary = await train({ preset: 'tiny', data: { source: 'data/synth' } }, { onStep: (m) => console.log(m.loss) });
 */
export async function train(input: CmacConfigInput, opts: TrainOptions = {}): Promise<TrainSummary> {
  checkOptionKeys(opts, trainOptionKeys, 'train()');
  const cfg = resolveConfig(input as CmacConfigInput);
  // One run per folder: rank 0, which writes it, holds the folder's lock for the whole run.
  let lock: RunLock | undefined;
  if (ranksFromEnv().rank === 0) {
    ensureWritableDir(path.resolve(cfg.train.runDir));
    lock = lockRunDir(path.resolve(cfg.train.runDir));
  }
  try {
    return await runTraining(cfg, opts);
  } finally {
    lock?.release();
  }
}

async function runTraining(cfg: CmacConfig, opts: TrainOptions): Promise<TrainSummary> {
  const { rank, worldSize } = ranksFromEnv();
  const main = rank === 0; // rank 0 alone writes logs, metrics, checkpoints and the report
  const log = main ? (opts.log ?? (() => undefined)) : () => undefined;
  const runDir = path.resolve(cfg.train.runDir);
  const ckptDir = path.join(runDir, 'checkpoints');
  if (main) {
    // under the lock: nobody else writes here, so leftovers of killed writers can go
    const stale = removeStaleTempFiles(runDir) + removeStaleTempFiles(ckptDir);
    if (stale) log(`removed ${stale} stale temp file(s) left by a killed writer in ${runDir}`);
    const orphans = removeUncommittedCheckpoints(ckptDir);
    if (orphans) log(`removed ${orphans} uncommitted checkpoint weight file(s) (no JSON: a write that was killed) in ${ckptDir}`);
  }
  const resumed = opts.resume ? resumeState(ckptDir, cfg, log) : undefined;
  if (resumed) cfg = resumed.cfg; // settings an old run folder predates come from its checkpoint
  if (!opts.resume && latestCheckpoint(ckptDir)) {
    throw new Error(
      `run folder ${runDir} already holds checkpoints. Fix: pass resume: true to continue it (CLI: --resume), or choose another run folder (train.runDir; CLI: --run-dir).`,
    );
  }
  if (main) saveConfig(cfg, path.join(runDir, 'config.json'));
  if (cfg.threads) setNumThreads(cfg.threads);

  const modelConfig = toModelConfig(cfg);
  if (worldSize > 1) modelConfig.dist = { ...modelConfig.dist, enabled: true };
  const model = await CmacModel.create(modelConfig);
  if (cfg.dist.batchNorm === 'frozen') model.eval();
  const metrics = new MetricsLog(path.join(runDir, 'metrics.jsonl'));
  let step = 0,
    epoch = 0,
    nonFinite = 0,
    skippedSteps = 0;
  let cursor: LoaderCursor = { epoch: 0, position: 0 };
  const ramp = new RampStart(cfg, resumed?.state.rampStart ?? undefined); // loss.rampStart auto: the step found, kept across a resume
  if (resumed) {
    await model.load(resumed.ref.weights);
    ({ step, epoch, cursor, nonFiniteInARow: nonFinite, skippedSteps } = resumed.state);
    if (main) metrics.truncateAfter(step - 1);
    log(`resumed from ${resumed.ref.weights} at step ${step}`);
    // A run stopped during the statistics pass has a step-0 checkpoint without them: compute them now, as a fresh start would.
    if (step === 0) await fitLogmelStats(model, cfg, log, opts.signal);
  } else {
    if (main) fs.rmSync(path.join(runDir, 'metrics.jsonl'), { force: true });
    await fitLogmelStats(model, cfg, log, opts.signal); // every rank alike (same clips, same order): the weights stay equal
  }

  const total = cfg.train.steps;
  const loader = createLoader({
    source: openSource(cfg.data.source, 'train', { allWhenUnsplit: true }),
    batchSize: cfg.data.batchSize,
    clip: clipOf(cfg),
    mode: 'train',
    augment: cfg.data.augment ? {} : false,
    seed: cfg.seed,
    dropLast: cfg.data.dropLast,
    decoders: cfg.data.decoders,
    decoder: cfg.data.decoder,
    audioStream: cfg.data.audioStream,
    probeIndex: cfg.data.probeIndex,
    prefetchBytes: cfg.data.prefetchBytes,
    missingAudio: cfg.data.missingAudio,
    cursor,
    epochs: Number.MAX_SAFE_INTEGER,
    rank,
    worldSize,
    evenShards: worldSize > 1,
    trainCache: cfg.data.cacheDir ? { dir: cfg.data.cacheDir } : undefined,
    log,
  });
  const batches = loader[Symbol.asyncIterator]();
  const tb = cfg.train.tensorboard && main ? new TensorBoardWriter(path.join(runDir, 'tensorboard')) : undefined;
  const bar = new ProgressBar(total);
  const t0 = Date.now();
  const startStep = step;
  let last: StepMetrics | undefined;
  let checkpoint: CheckpointRef | undefined;
  const snapshot = (): CheckpointState => ({
    format: 'cmac-checkpoint/1',
    step,
    epoch,
    cursor,
    config: cfg,
    rng: { seed: cfg.seed, loaderSeed: cfg.seed },
    nonFiniteInARow: nonFinite,
    skippedSteps,
    rampStart: ramp.step ?? null,
    time: new Date().toISOString(),
  });
  let stoppedBy: TrainSummary['stoppedBy'] = 'done';
  try {
    while (step < total) {
      // Every rank must stop at the same step, or the next collective would wait forever.
      const stop = worldSize > 1 ? await model.anyRank(!!opts.signal?.aborted) : !!opts.signal?.aborted;
      if (stop) {
        stoppedBy = 'abort';
        break;
      }
      const tData = Date.now();
      // One rank alone must not leave a collective, so only a single process stops inside a wait for data.
      const batch = await nextBatch(batches, cfg, worldSize === 1 ? opts.signal : undefined);
      if (!batch) {
        stoppedBy = 'abort';
        break;
      }
      const dataMs = Date.now() - tData;
      const lr = learningRate(cfg, step, total);
      const lam = lambdaScale(cfg, step, total, ramp.step);
      const r = await model.trainStep(batch, { lr, lambdaScale: lam });
      if (r.finite && ramp.observe(step, r.retrievalAcc)) {
        log(
          `lambda ramp starts at step ${ramp.step}: in-batch retrieval accuracy ${r.retrievalAcc.toFixed(3)} >= loss.rampThreshold ${cfg.loss.rampThreshold} at step ${step}`,
        );
      }
      nonFinite = r.finite ? 0 : nonFinite + 1;
      if (!r.finite) skippedSteps++;
      cursor = batch.cursor;
      epoch = batch.cursor.epoch;
      last = {
        step,
        epoch,
        loss: r.loss,
        lossCon: r.lossCon,
        lossV: r.lossV,
        lossA: r.lossA,
        retrievalAcc: r.retrievalAcc,
        lr,
        lambdaScale: lam,
        rampStart: ramp.step ?? null,
        gradNorm: r.gradNorm,
        stepMs: r.timeMs,
        dataMs,
        clipsPerSec: batch.video.shape[0] / ((r.timeMs + dataMs) / 1000),
        skippedSamples: countSkipped(loader.stats.skipped),
        finite: r.finite,
        stepped: r.stepped,
      };
      if (main) metrics.append(last);
      tb?.scalars(step, {
        loss: r.loss,
        'loss/con': r.lossCon,
        'loss/v': r.lossV,
        'loss/a': r.lossA,
        lr,
        lambda_scale: lam,
        retrieval_acc: r.retrievalAcc,
        grad_norm: r.gradNorm,
        clips_per_sec: last.clipsPerSec,
      });
      step++;
      if (main && (opts.progress ?? true)) bar.update(last, (Date.now() - t0) / 1000, step - startStep);
      opts.onStep?.(last);
      if (nonFinite >= cfg.train.maxNonFinite) {
        throw new NonFiniteLossError(
          `training stopped: ${nonFinite} steps in a row had a non-finite loss (last at step ${step - 1}, lr ${lr.toExponential(2)}). ` +
            `Fix: lower optim.lr, set optim.clipGradNorm, or check the data; the last good checkpoint is in ${ckptDir}.`,
        );
      }
      if (main && step % cfg.train.checkpointEvery === 0 && step < total) {
        checkpoint = await saveCheckpoint(ckptDir, model, snapshot(), cfg.train.keepLast);
        tb?.flush();
        log(`checkpoint ${checkpoint.weights}`);
      }
    }
    if (main) {
      bar.done();
      if (step > startStep || !checkpoint) checkpoint = await saveCheckpoint(ckptDir, model, snapshot(), cfg.train.keepLast);
      log(`checkpoint ${checkpoint.weights}`);
    }
  } finally {
    tb?.close();
    await loader.close();
    model.dispose();
  }
  const report = path.join(runDir, 'report.html');
  if (main) writeTrainingReport(report, cfg, path.join(runDir, 'metrics.jsonl'), loader.stats);
  return {
    runDir,
    stepsDone: step,
    totalSteps: total,
    stoppedBy,
    last,
    checkpoint,
    report,
    skippedSamples: countSkipped(loader.stats.skipped),
    skippedSteps,
    wallSeconds: (Date.now() - t0) / 1000,
    dataStats: loader.stats,
  };
}

/** This process's rank and the world size, from the variables torchrun and `cmac train --nproc` set. */
export function ranksFromEnv(): { rank: number; worldSize: number } {
  const worldSize = Number(process.env.WORLD_SIZE ?? '1');
  const rank = Number(process.env.RANK ?? '0');
  if (!Number.isInteger(worldSize) || worldSize < 1 || !Number.isInteger(rank) || rank < 0 || rank >= worldSize) {
    throw new Error(
      `RANK=${process.env.RANK} / WORLD_SIZE=${process.env.WORLD_SIZE} are not a valid rank and world size. Fix: let cmac train --nproc N or torchrun set them.`,
    );
  }
  return { rank, worldSize };
}

/** The next batch; undefined when `signal` aborts first (the wait for data is abandoned, the loader's close stops it). */
async function nextBatch(it: AsyncIterator<LoaderBatch>, cfg: CmacConfig, signal?: AbortSignal): Promise<LoaderBatch | undefined> {
  let n: IteratorResult<LoaderBatch, void> | undefined;
  try {
    n = await untilAborted(it.next(), signal);
  } catch (e) {
    if (e instanceof TooFewClipsError) {
      throw new Error(
        `the training data, ${e.source}${e.where}, has ${e.listed ? `${e.clips} clip(s), so at most ${e.clips}` : e.clips} usable clip(s)${e.detail ? ` (${e.detail})` : ''}, ` +
          `fewer than data.batchSize ${e.batchSize}, and data.dropLast=true drops the incomplete batch, so no step can run. ` +
          `Fix: lower data.batchSize (e.g. ${Math.max(2, 2 ** Math.floor(Math.log2(Math.max(2, e.clips))))}; CLI: --set data.batchSize=${Math.max(2, 2 ** Math.floor(Math.log2(Math.max(2, e.clips))))}) or set data.dropLast to false (CLI: --set data.dropLast=false).`,
      );
    }
    throw e;
  }
  if (n === undefined) {
    // Ends the loader's iteration once the pending read settles (a queued return), so nothing decodes on after the run.
    Promise.resolve(it.return?.()).catch(() => undefined);
    return undefined;
  }
  if (n.done)
    throw new Error(
      `the data source ${cfg.data.source} ran out of batches. Fix: check that it holds at least data.batchSize (${cfg.data.batchSize}) usable clips.`,
    );
  return n.value;
}

function countSkipped(s: Partial<Record<string, number>>): number {
  return Object.values(s).reduce((a: number, b) => a + (b ?? 0), 0);
}

/**
 * The checkpoint to resume from; its config must match the run's in
 * everything but train.*. A setting the checkpoint predates (model.pooling,
 * loss.rampStart, logmel.statsClips...: see upgradeConfig) that the run
 * folder's config.json lacks too is taken from the upgraded checkpoint
 * config: resuming an old run with its own config.json then keeps the
 * pooling it was trained with instead of the new default.
 */
function resumeState(
  ckptDir: string,
  cfg: CmacConfig,
  log: (line: string) => void,
): { ref: CheckpointRef; state: CheckpointState; cfg: CmacConfig } {
  const ref = latestCheckpoint(ckptDir);
  if (!ref)
    throw new Error(
      `resume: no checkpoint in ${ckptDir}. Fix: start without resume (CLI: without --resume), or point train.runDir (CLI: --run-dir) at an existing run.`,
    );
  const state = readCheckpointState(ref);
  const runConfig = readJson(path.join(path.dirname(ckptDir), 'config.json'));
  const adopted: string[] = [];
  let out = cfg;
  for (const key of upgradedKeys(readJson(ref.state)?.config)) {
    if (runConfig && getPath(runConfig, key) !== undefined) continue; // config.json says it: that value stands
    const want = getPath(state.config, key);
    if (JSON.stringify(getPath(out, key)) === JSON.stringify(want)) continue;
    out = setPath(out, key, want);
    adopted.push(`${key}=${JSON.stringify(want)}`);
  }
  if (adopted.length)
    log(`resume: the run predates ${adopted.map((a) => a.split('=')[0]).join(', ')}; resuming with the checkpoint's ${adopted.join(', ')}`);
  const differ = leafDiff(out, state.config).filter((k) => !k.startsWith('train.') && k !== 'train' && !k.startsWith('threads'));
  if (differ.length) {
    const sections = [...new Set(differ.map((k) => k.split('.')[0]))];
    const shown = differ.slice(0, 6);
    const more = differ.length > shown.length ? `; ${differ.length - shown.length} more` : '';
    const sets = shown.map((k) => `--set ${k}=${setValue(getPath(state.config, k))}`).join(' ');
    throw new Error(
      `resume: the config differs from the checkpoint's in ${sections.join(', ')} (${shown.map((k) => `${k}: this run ${JSON.stringify(getPath(out, k))}, checkpoint ${JSON.stringify(getPath(state.config, k))}`).join('; ')}${more}). ` +
        `Fix: resume with the run's own config.json (loadConfigFile(${JSON.stringify(path.join(path.dirname(ckptDir), 'config.json'))}); CLI: cmac train --resume --run-dir ${path.dirname(ckptDir)})${more ? '' : `, or set ${shown.map((k) => `${k}: ${JSON.stringify(getPath(state.config, k))}`).join(', ')} (CLI: ${sets})`}.`,
    );
  }
  return { ref, state, cfg: out };
}

function readJson(file: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(fs.readFileSync(file, 'utf8'));
  } catch {
    return undefined;
  }
}

function getPath(o: unknown, key: string): unknown {
  return key.split('.').reduce<unknown>((v, k) => (v && typeof v === 'object' ? (v as Record<string, unknown>)[k] : undefined), o);
}

function setPath<T>(o: T, key: string, value: unknown): T {
  const [k, ...rest] = key.split('.');
  const obj = o as Record<string, unknown>;
  return { ...obj, [k]: rest.length ? setPath(obj[k] ?? {}, rest.join('.'), value) : value } as T;
}

/** Dotted paths of the leaves where a and b differ (arrays compared whole). */
function leafDiff(a: unknown, b: unknown, at = ''): string[] {
  const isObj = (v: unknown) => !!v && typeof v === 'object' && !Array.isArray(v);
  if (isObj(a) && isObj(b)) {
    const keys = new Set([...Object.keys(a as object), ...Object.keys(b as object)]);
    return [...keys].flatMap((k) => leafDiff((a as Record<string, unknown>)[k], (b as Record<string, unknown>)[k], at ? `${at}.${k}` : k));
  }
  return JSON.stringify(a) === JSON.stringify(b) ? [] : [at];
}

/** A value as --set writes it (strings bare, the rest as JSON). */
function setValue(v: unknown): string {
  return typeof v === 'string' ? v : JSON.stringify(v);
}
