// Finetuning (method.md section 7, "finetune mode"; docs/evaluation.md): the
// trained video encoder, global average pooling and a new linear head are
// trained end to end with cross-entropy on a fold's training clips (train-mode
// loader: random clip, augmentation), the epoch with the best validation
// accuracy is kept, and its top-1 accuracy on the test videos is reported.
// The numerics are native (lib/classifier.ts, native/core/classifier.cpp).
import * as fs from 'fs';
import * as path from 'path';
import { VideoClassifier } from '../classifier';
import { clipOf, CmacConfig, learningRate, toModelConfig } from '../config';
import { createLoader } from '../data/loader';
import { checkOptionKeys, keysOf } from '../options';
import type { LoaderBatch } from '../data/loader';
import type { AugmentOptions, ClipGeometry } from '../data/augment';
import { makeOwnedTempDir, removeStaleTempDirs } from '../files';
import { averageBySample, ClipInfo, clipInfos, evalLoader, Rows, RowsBuilder, rowSize } from './collect';
import { itemsSource, ProbeDataset, ProbeItem } from './datasets';
import { majorityAccuracy, meanStd } from './probe';

/**
 * Training augmentation of finetuning: a random resized crop of at least half
 * the frame (aspect 3/4..4/3) and horizontal flips, close to torchvision's
 * video-classification recipe; no colour jitter (the pretext task's crop of
 * a quarter of the frame and its jitter can remove or recolour what defines
 * a class). The audio is not used.
 */
export const finetuneAugment: AugmentOptions = { crop: { scale: [0.5, 1] }, flip: 0.5, jitter: false, gain: false, shift: false };

/** Name prefix of finetuning's temp folder (the default clip cache) in the OS temp folder, followed by the owner's pid. */
export const finetuneTempPrefix = 'cmac-finetune-';

/** Options of {@link finetune}. */
export interface FinetuneOptions {
  /** The checkpoint's resolved config (encoder sizes, seed, device). */
  config: CmacConfig;
  /** The checkpoint's weights (step-N.safetensors), whose visual.* start the encoder; omitted: from the random init (a from-scratch baseline). */
  weights?: string;
  /** Clip geometry (default: the config's). */
  clip?: ClipGeometry;
  /** Passes over the training clips (default 10). */
  epochs?: number;
  /** Peak learning rate, cosine-decayed to 0 over all steps (default 0.01). */
  lr?: number;
  /** Training clips per step (default 16). */
  batchSize?: number;
  /** Clips per forward pass on validation and test (default 32). */
  evalBatchSize?: number;
  /** Optimiser (default 'sgd' with momentum 0.9) and its weight decay (default 1e-4). */
  optimizer?: 'sgd' | 'adam' | 'adamw';
  momentum?: number;
  weightDecay?: number;
  /** Training augmentation {@link finetuneAugment} (default true; false: the random clip placement only). */
  augment?: boolean;
  /** Validation / test clips per video, their logits averaged (default 1: the centre clip). */
  clipsPerVideo?: number;
  decoders?: number;
  /** Keep decoded clips here: the eval clip cache and the train-mode decoded-video cache (re-runs and later epochs skip ffmpeg). Default: a temporary folder for the eval clips only, removed at the end. */
  cacheDir?: string;
  /** Device (default: the config's). */
  device?: string;
  /** Write each fold's selected weights to `<saveDir>/<fold>.safetensors`. */
  saveDir?: string;
  log?: (line: string) => void;
}

/** One epoch of one fold. */
export interface FinetuneEpoch {
  epoch: number;
  /** Mean cross-entropy and accuracy over the epoch's training clips (train-mode outputs, before each update). */
  trainLoss: number;
  trainAccuracy: number;
  /** Validation accuracy and mean cross-entropy per video (NaN without validation items). */
  valAccuracy: number;
  valLoss: number;
  /** Learning rate of the epoch's last step. */
  lr: number;
  steps: number;
  seconds: number;
}

/** Finetuning results of one fold. */
export interface FinetuneFold {
  name: string;
  epochs: FinetuneEpoch[];
  /** The epoch kept (1-based): best validation accuracy, ties to the lower validation loss; the last epoch without validation. */
  bestEpoch: number;
  valAccuracy: number;
  /** Top-1 accuracy of the kept weights on the test videos. */
  testAccuracy: number;
  /** Accuracy of always answering the most frequent training class. */
  majority: number;
  nTrain: number;
  nVal: number;
  nTest: number;
  /** Test items listed but not scored (unreadable files). */
  missing: number;
  /** Where the kept weights were written (saveDir). */
  weights?: string;
}

/** Finetuning results over a dataset's folds. */
export interface FinetuneResult {
  dataset: string;
  classes: number;
  folds: FinetuneFold[];
  /** Mean and standard deviation of test accuracy over folds. */
  test: { mean: number; std: number };
  /** 1 / classes. */
  chance: number;
  settings: {
    epochs: number;
    lr: number;
    batchSize: number;
    optimizer: 'sgd' | 'adam' | 'adamw';
    momentum: number;
    weightDecay: number;
    augment: boolean;
    clipsPerVideo: number;
    pooling: 'average';
    fromScratch: boolean;
    device: string;
  };
}

/** Logits of every clip a loader yields. */
async function predictAll(clf: VideoClassifier, batches: AsyncIterable<LoaderBatch>): Promise<{ clips: ClipInfo[]; logits?: Rows }> {
  const rows = new RowsBuilder();
  const clips: ClipInfo[] = [];
  for await (const b of batches) {
    rows.add(await clf.predict({ video: b.video }));
    clips.push(...clipInfos(b));
  }
  return { clips, logits: rows.build() };
}

/** Top-1 accuracy and mean cross-entropy of per-video logits (clips of one video averaged). */
export function scoreLogits(clips: ClipInfo[], logits: Rows | undefined): { accuracy: number; loss: number; n: number } {
  if (!logits || !clips.length) return { accuracy: NaN, loss: NaN, n: 0 };
  const avg = averageBySample(clips, logits);
  const k = rowSize(logits);
  let hits = 0,
    loss = 0;
  avg.label.forEach((y, i) => {
    const z = avg.rows.data.subarray(i * k, (i + 1) * k);
    let arg = 0;
    for (let j = 1; j < k; j++) if (z[j] > z[arg]) arg = j;
    const m = z[arg];
    let s = 0;
    for (let j = 0; j < k; j++) s += Math.exp(z[j] - m);
    loss += Math.log(s) + m - z[y];
    if (arg === y) hits++;
  });
  const n = avg.label.length;
  return { accuracy: hits / n, loss: loss / n, n };
}

const finetuneOptionKeys = keysOf<FinetuneOptions>()([
  'config',
  'weights',
  'clip',
  'epochs',
  'lr',
  'batchSize',
  'evalBatchSize',
  'optimizer',
  'momentum',
  'weightDecay',
  'augment',
  'clipsPerVideo',
  'decoders',
  'cacheDir',
  'device',
  'saveDir',
  'log',
]);

/**
 * Finetunes a fresh classifier per fold from the checkpoint's encoder and
 * reports test accuracy. Audio-only datasets (ESC-50) are refused.
 * @example const r = await finetune(openProbeDataset('data/synth'), { config, weights: ref.weights, epochs: 5 });
 */
export async function finetune(ds: ProbeDataset, o: FinetuneOptions): Promise<FinetuneResult> {
  checkOptionKeys(o, finetuneOptionKeys, 'finetune()');
  if (ds.modality === 'audio') throw new Error(`${ds.name} is audio-only: finetuning trains the video encoder and needs videos`);
  const log = o.log ?? (() => undefined);
  const clip = o.clip ?? clipOf(o.config);
  const s: FinetuneResult['settings'] = {
    epochs: o.epochs ?? 10,
    lr: o.lr ?? 0.01,
    batchSize: o.batchSize ?? 16,
    optimizer: o.optimizer ?? 'sgd',
    momentum: o.momentum ?? 0.9,
    weightDecay: o.weightDecay ?? 1e-4,
    augment: o.augment ?? true,
    clipsPerVideo: o.clipsPerVideo ?? 1,
    pooling: 'average',
    fromScratch: !o.weights,
    device: o.device ?? o.config.device,
  };
  for (const [k, v] of [
    ['epochs', s.epochs],
    ['batchSize', s.batchSize],
    ['clipsPerVideo', s.clipsPerVideo],
  ] as const) {
    if (!Number.isInteger(v) || v < 1) throw new RangeError(`finetune: ${k} must be a positive integer, got ${v}`);
  }
  if (!(s.lr > 0) || !Number.isFinite(s.lr)) throw new RangeError(`finetune: lr must be a finite number > 0, got ${s.lr}`);
  // The schedule of training runs (lib/config learningRate): cosine to 0, no warmup.
  const schedule: CmacConfig = {
    ...o.config,
    optim: { ...o.config.optim, lr: s.lr, schedule: 'cosine', warmupFraction: 0, minLrFraction: 0 },
  };
  const modelConfig = {
    ...toModelConfig(o.config),
    device: s.device,
    optim: { name: s.optimizer, momentum: s.momentum, weightDecay: s.weightDecay, nesterov: false },
  };
  // The default clip cache: a temp folder named by pid, removed at the end or
  // on any exit (signals included); those of killed runs are removed here.
  removeStaleTempDirs([finetuneTempPrefix]);
  const tmp = o.cacheDir ? undefined : makeOwnedTempDir(finetuneTempPrefix);
  const evalCache = o.cacheDir ?? tmp!.dir;
  const evaluate = async (clf: VideoClassifier, items: ProbeItem[], what: string) => {
    const loader = evalLoader(itemsSource(items, `${ds.name} ${what}`), clip, {
      batchSize: o.evalBatchSize ?? 32,
      decoders: o.decoders ?? 2,
      clipsPerVideo: s.clipsPerVideo,
      cacheDir: evalCache,
    }); // no loader log: unusable test items are counted in `missing`
    try {
      const { clips, logits } = await predictAll(clf, loader);
      return scoreLogits(clips, logits);
    } finally {
      await loader.close();
    }
  };
  const result: FinetuneResult = {
    dataset: ds.name,
    classes: ds.classes.length,
    folds: [],
    test: { mean: NaN, std: NaN },
    chance: 1 / ds.classes.length,
    settings: s,
  };
  try {
    for (const [fi, f] of ds.folds.entries()) {
      if (!f.train.length) throw new Error(`finetune: ${f.name} has no training items`);
      const clf = await VideoClassifier.create(
        { ...modelConfig, seed: o.config.seed + fi },
        { numClasses: Math.max(2, ds.classes.length), encoder: o.weights },
      );
      let loader: ReturnType<typeof createLoader>;
      try {
        loader = createLoader({
          source: itemsSource(f.train, `${ds.name} ${f.name} train`),
          batchSize: s.batchSize,
          clip,
          mode: 'train',
          seed: o.config.seed + fi,
          augment: s.augment ? finetuneAugment : false,
          decoders: o.decoders ?? 2,
          missingAudio: 'silence',
          trainCache: o.cacheDir,
          log,
        });
      } catch (e) {
        clf.dispose(); // a loader that cannot start must not leave the classifier's native memory to GC
        throw e;
      }
      const fold: FinetuneFold = {
        name: f.name,
        epochs: [],
        bestEpoch: 0,
        valAccuracy: NaN,
        testAccuracy: NaN,
        majority: majorityAccuracy(
          f.train.map((i) => i.label),
          f.test.map((i) => i.label),
        ),
        nTrain: f.train.length,
        nVal: 0,
        nTest: 0,
        missing: 0,
      };
      try {
        const total = Math.ceil((await loader.length()) / s.batchSize) * s.epochs;
        let step = 0,
          best: { acc: number; loss: number } | undefined;
        for (let e = 1; e <= s.epochs; e++) {
          const t0 = Date.now();
          let n = 0,
            loss = 0,
            acc = 0,
            lr = 0,
            steps = 0;
          for await (const b of loader.epoch()) {
            if (!b.labels) throw new Error(`finetune: ${f.name}: the training clips have no labels`);
            lr = learningRate(schedule, step++, total);
            const r = await clf.trainStep({ video: b.video, labels: b.labels }, { lr });
            if (!r.finite)
              throw new Error(
                `finetune: ${f.name} epoch ${e}: the loss or its gradients are not finite (loss ${r.loss}). Fix: lower the lr option (CLI: --lr).`,
              );
            const m = b.labels.data.length;
            n += m;
            loss += r.loss * m;
            acc += r.accuracy * m;
            steps++;
          }
          if (!n) throw new Error(`finetune: ${f.name}: no training clip could be decoded`);
          const val = f.val.length ? await evaluate(clf, f.val, `${f.name} val`) : { accuracy: NaN, loss: NaN, n: 0 };
          fold.nVal = val.n;
          const ep: FinetuneEpoch = {
            epoch: e,
            trainLoss: loss / n,
            trainAccuracy: acc / n,
            valAccuracy: val.accuracy,
            valLoss: val.loss,
            lr,
            steps,
            seconds: (Date.now() - t0) / 1000,
          };
          fold.epochs.push(ep);
          if (val.n && (!best || val.accuracy > best.acc || (val.accuracy === best.acc && val.loss < best.loss))) {
            best = { acc: val.accuracy, loss: val.loss };
            fold.bestEpoch = e;
            fold.valAccuracy = val.accuracy;
            await clf.snapshot();
          }
          log(
            `${f.name} epoch ${e}/${s.epochs}: train loss ${ep.trainLoss.toFixed(4)} acc ${(100 * ep.trainAccuracy).toFixed(1)}%` +
              `${val.n ? `, val acc ${(100 * val.accuracy).toFixed(1)}% loss ${val.loss.toFixed(4)}` : ''} (lr ${lr.toPrecision(3)}, ${ep.seconds.toFixed(1)} s)`,
          );
        }
        if (best) await clf.restoreSnapshot();
        else fold.bestEpoch = s.epochs;
        const test = await evaluate(clf, f.test, `${f.name} test`);
        fold.testAccuracy = test.accuracy;
        fold.nTest = test.n;
        fold.missing = f.test.length - test.n;
        if (o.saveDir) {
          fs.mkdirSync(o.saveDir, { recursive: true });
          fold.weights = path.join(o.saveDir, `${f.name.replace(/[^A-Za-z0-9._-]+/g, '-')}.safetensors`);
          await clf.save(fold.weights);
        }
        log(`${f.name}: test accuracy ${(100 * test.accuracy).toFixed(2)}% on ${test.n} videos (epoch ${fold.bestEpoch} kept)`);
      } finally {
        await loader.close();
        clf.dispose();
      }
      result.folds.push(fold);
    }
  } finally {
    tmp?.remove();
  }
  result.test = meanStd(result.folds.map((f) => f.testAccuracy));
  return result;
}
