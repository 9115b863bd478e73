// `cmac eval finetune` end to end on a tiny synthetic dataset and checkpoint,
// and the VideoClassifier addon class: results, saved weights, argument
// errors that never crash.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { VideoClassifier } from '../lib/classifier';
import { registerEval } from '../lib/cli/eval';
import { resolveCheckpoint } from '../lib/eval';
import { synthesize } from '../lib/data';
import { readSafetensors } from '../lib/safetensors';
import { train } from '../lib/train';
import { rejects, rng, runCommand, tinyConfig, tmpDir } from './helpers';

const cli = (args: string[]): Promise<string> => runCommand(registerEval, args);

/** n tiny clips [n, 4, 64, 64, 3]: label 0 reddish, label 1 bluish. */
function colourClips(
  n: number,
  seed: number,
): { video: { data: Uint8Array; shape: number[] }; labels: { data: Int32Array; shape: number[] } } {
  const r = rng(seed);
  const per = 4 * 64 * 64 * 3;
  const data = new Uint8Array(n * per);
  const labels = Int32Array.from({ length: n }, (_, i) => i % 2);
  for (let i = 0; i < n; i++) {
    for (let p = 0; p < per; p += 3) {
      for (let c = 0; c < 3; c++) data[i * per + p + c] = Math.floor(r() * 96) + (c === (labels[i] ? 2 : 0) ? 150 : 0);
    }
  }
  return { video: { data, shape: [n, 4, 64, 64, 3] }, labels: { data: labels, shape: [n] } };
}

describe('eval finetune: cmac eval finetune and VideoClassifier', function () {
  this.timeout(120000);
  const dir = tmpDir('cmac-finetune-');
  const data = path.join(dir, 'synth');
  const run = path.join(dir, 'run');

  before(async () => {
    // One object per clip, so each clip's class is visible (4 classes).
    await synthesize({
      out: data,
      clips: 32,
      seed: 5,
      size: 64,
      fps: 8,
      seconds: 2.5,
      classes: 4,
      objects: [1, 1],
      sounding: [1, 1],
      splits: [0.5, 0.25, 0.25],
    });
    await train(
      { preset: 'tiny', seed: 1, data: { source: data, batchSize: 4 }, train: { steps: 2, checkpointEvery: 2, runDir: run } },
      { progress: false },
    );
  });

  it('cmac eval finetune: per-epoch losses, the kept epoch, test accuracy, JSON and saved weights', async () => {
    const json = path.join(dir, 'finetune.json');
    const saved = path.join(dir, 'weights');
    const text = await cli([
      'eval',
      'finetune',
      '--checkpoint',
      run,
      '--data',
      data,
      '--epochs',
      '6',
      '--batch',
      '4',
      '--no-augment',
      '--json',
      json,
      '--save-dir',
      saved,
      '--cache-dir',
      path.join(dir, 'cache'),
      '--threads',
      '2',
    ]);
    expect(text).to.include('finetune on synthetic').and.include('video (finetuned)');
    const r = JSON.parse(fs.readFileSync(json, 'utf8'));
    expect(r.checkpoint).to.equal(resolveCheckpoint(run).weights);
    const ft = r.finetune;
    expect(ft.classes).to.equal(4);
    expect(ft.chance).to.equal(0.25);
    expect(ft.settings).to.include({ epochs: 6, batchSize: 4, optimizer: 'sgd', augment: false, pooling: 'average', fromScratch: false });
    expect(ft.folds.length).to.equal(1);
    const f = ft.folds[0];
    expect([f.nTrain, f.nVal, f.nTest, f.missing]).to.deep.equal([16, 8, 8, 0]);
    expect(f.epochs.length).to.equal(6);
    for (const e of f.epochs) {
      expect(e.trainAccuracy).to.be.within(0, 1);
      expect(e.valAccuracy).to.be.within(0, 1);
      expect(e.steps).to.equal(4);
      expect(e.trainLoss).to.be.a('number').and.be.above(0);
    }
    expect(f.epochs[5].trainLoss, f.epochs.map((e: { trainLoss: number }) => e.trainLoss).join(' ')).to.be.below(f.epochs[0].trainLoss);
    expect(f.epochs[5].lr).to.be.below(f.epochs[0].lr); // cosine decay
    expect(f.bestEpoch).to.be.within(1, 6);
    expect(f.valAccuracy).to.equal(f.epochs[f.bestEpoch - 1].valAccuracy);
    expect(f.testAccuracy).to.be.within(0, 1);
    expect(ft.test.mean).to.equal(f.testAccuracy);
    const w = await readSafetensors(f.weights);
    expect(w.tensors['fc.weight'].shape).to.deep.equal([4, 128]);
    expect(w.tensors['visual.stem.0.weight']).to.not.equal(undefined);
    expect(w.metadata['cmac.kind']).to.equal('video-classifier');
  });

  it('refuses bad options with clear errors', async () => {
    let err: Error | undefined;
    try {
      await cli(['eval', 'finetune', '--checkpoint', run, '--data', data, '--epochs', '0']);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(/--epochs must be a positive integer/);
    err = undefined;
    try {
      await cli(['eval', 'finetune', '--checkpoint', run, '--data', data, '--optimizer', 'lbfgs']);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(/--optimizer must be sgd, adam or adamw/);
  });

  it('VideoClassifier: learns a separable batch from a checkpoint encoder; bad arguments reject, never crash', async () => {
    const weights = resolveCheckpoint(run).weights;
    await rejects(VideoClassifier.create(tinyConfig(), {} as never), TypeError, /options.numClasses is required/);
    await rejects(VideoClassifier.create(tinyConfig(), { numClasses: 1 }), RangeError, /numClasses must be an integer in \[2, 100000\]/);
    await rejects(
      VideoClassifier.create(tinyConfig(), { numClasses: 2, encoder: path.join(dir, 'nope.safetensors') }),
      Error,
      /nope\.safetensors/,
    );
    const clf = await VideoClassifier.create(
      { ...tinyConfig(), seed: 3, optim: { name: 'sgd', momentum: 0.9, weightDecay: 1e-4 } },
      { numClasses: 2, encoder: weights },
    );
    expect(clf.numClasses).to.equal(2);
    expect(clf.device).to.equal('cpu');
    expect(clf.numParameters).to.be.above(0);
    const b = colourClips(6, 1);
    await rejects(clf.trainStep({ video: b.video } as never, { lr: 0.01 }), TypeError, /batch.labels is required/);
    await rejects(clf.trainStep(b, {} as never), TypeError, /options.lr is required/);
    await rejects(
      clf.trainStep({ ...b, labels: { data: Int32Array.from([0, 1, 2, 0, 1, 0]), shape: [6] } }, { lr: 0.01 }),
      RangeError,
      /labels\[2\] = 2 is outside \[0, 2\)/,
    );
    await rejects(
      clf.trainStep({ ...b, labels: { data: new Int32Array(5), shape: [5] } }, { lr: 0.01 }),
      RangeError,
      /labels has 5 entries but video has 6 clips/,
    );
    await rejects(
      clf.trainStep({ ...b, labels: { data: new Float32Array(6), shape: [6] } as never }, { lr: 0.01 }),
      TypeError,
      /labels must be int32 or int64/,
    );
    await rejects(clf.predict({ video: { data: new Uint8Array(10), shape: [1, 4, 64, 64, 3] } }), RangeError, /has 10 elements/);
    await rejects(clf.restoreSnapshot(), Error, /no snapshot/);
    const losses: number[] = [];
    for (let i = 0; i < 8; i++) {
      const s = await clf.trainStep(b, { lr: 0.02 });
      expect(s.finite).to.equal(true);
      expect(s.step).to.equal(i + 1);
      losses.push(s.loss);
    }
    expect(losses[7], losses.join(' ')).to.be.below(losses[0]);
    await clf.snapshot();
    const logits = await clf.predict({ video: b.video });
    expect(logits.shape).to.deep.equal([6, 2]);
    await clf.trainStep(b, { lr: 0.05 });
    await clf.restoreSnapshot();
    expect(Array.from((await clf.predict({ video: b.video })).data)).to.deep.equal(Array.from(logits.data));
    clf.dispose();
    clf.dispose();
    expect(clf.disposed).to.equal(true);
    await rejects(clf.predict({ video: b.video }), Error, /disposed/);
  });
});
