// Options objects of VideoClassifier and the eval entry points reject an
// unknown key at run time (issue 15 item 6): from plain JavaScript a misspelt
// key is an OptionsError naming it and the known keys, never a silent
// default. Each case also passes the right keys to show they still work.
import { expect } from 'chai';
import * as path from 'path';
import { VideoClassifier } from '../lib/classifier';
import { resolveConfig } from '../lib/config';
import { folderSource } from '../lib/data';
import {
  audioFileFeatures,
  collectOutputs,
  evaluateLocalization,
  evaluateModel,
  finetune,
  frameGeometries,
  linearProbe,
  openProbeDataset,
  synthGroundTruth,
  synthGroundTruthOf,
  type ModelOutputs,
  type ProbeDataset,
} from '../lib/eval';
import type { CmacModel } from '../lib/model';
import { OptionsError } from '../lib/options';
import type { SynthClipTruth } from '../lib/data';
import { rejects, tinyConfig, tmpDir } from './helpers';

/** Asserts an OptionsError for `key` whose message names `where`, the key and one of the known keys. */
async function unknownKey(p: Promise<unknown> | (() => unknown), where: string, key: string, known: string): Promise<void> {
  const e = await rejects(
    p,
    OptionsError,
    new RegExp(`^cmac: ${where.replace(/[()]/g, '\\$&')} options: unknown key '${key}'\\. Known keys: .*\\b${known}\\b`),
  );
  expect((e as OptionsError).key).to.equal(key);
  expect((e as OptionsError).code).to.equal('CMAC_OPTIONS');
}

describe('eval and classifier options: unknown keys are errors', function () {
  this.timeout(120000);
  const config = resolveConfig({ preset: 'tiny' });
  // The key check comes before any use of the model or dataset: stand-ins are enough for the misspelt cases.
  const noModel = {} as CmacModel;
  const noData = { name: 'none', layout: 'folder', classes: [], modality: 'audio-visual', folds: [] } as ProbeDataset;
  const noOutputs: ModelOutputs = { clips: [] };
  const truth = { objects: [], frames: 0, fps: 8 } as unknown as SynthClipTruth;

  it('VideoClassifier.create (options and config groups) and trainStep', async () => {
    await unknownKey(
      VideoClassifier.create(tinyConfig(), { numClasses: 2, encodr: 'x.safetensors' } as never),
      'VideoClassifier.create()',
      'encodr',
      'encoder',
    );
    await unknownKey(
      VideoClassifier.create({ ...tinyConfig(), optim: { nmae: 'sgd' } } as never, { numClasses: 2 }),
      'VideoClassifier.create() optim',
      'nmae',
      'name',
    );
    const clf = await VideoClassifier.create({ ...tinyConfig(), optim: { name: 'sgd', momentum: 0.9 } }, { numClasses: 2 });
    try {
      const video = { data: new Uint8Array(2 * 4 * 64 * 64 * 3), shape: [2, 4, 64, 64, 3], dtype: 'uint8' as const };
      const labels = { data: new Int32Array([0, 1]), shape: [2], dtype: 'int32' as const };
      await unknownKey(
        clf.trainStep({ video, labels }, { learningRate: 0.1 } as never),
        'VideoClassifier.trainStep()',
        'learningRate',
        'lr',
      );
      const r = await clf.trainStep({ video, labels }, { lr: 0.1 });
      expect(r.loss).to.be.a('number');
    } finally {
      clf.dispose();
    }
  });

  it('finetune() and linearProbe()', async () => {
    await unknownKey(finetune(noData, { config, epoch: 3 } as never), 'finetune()', 'epoch', 'epochs');
    await unknownKey(linearProbe(noModel, noData, { clip: config.clip, batchsize: 8 } as never), 'linearProbe()', 'batchsize', 'batchSize');
    // The right keys pass the check and reach the dataset's own error.
    await rejects(
      finetune({ ...noData, modality: 'audio' }, { config, epochs: 3 }),
      Error,
      /audio-only: finetuning trains the video encoder/,
    );
  });

  it('evaluateModel(), collectOutputs(), evaluateLocalization()', async () => {
    await unknownKey(
      evaluateModel(noModel, { config, clips: [], tasks: ['retrieval'], keepframes: true } as never),
      'evaluateModel()',
      'keepframes',
      'keepFrames',
    );
    await rejects(evaluateModel(noModel, { config, clips: [], tasks: ['retrieval'], keepFrames: true }), Error, /no clips to evaluate/);
    await unknownKey(collectOutputs(noModel, [], { map: true } as never), 'collectOutputs()', 'map', 'maps');
    expect(await collectOutputs(noModel, [], { maps: true, keepAudio: 4 })).to.deep.include({ clips: [] });
    await unknownKey(
      () => evaluateLocalization(noOutputs, () => undefined, { protocol: 'lvs', tau: 0.1 } as never),
      'evaluateLocalization()',
      'tau',
      'tauT',
    );
    await rejects(
      () => evaluateLocalization(noOutputs, () => undefined, { protocol: 'lvs', tauT: 0.1 }),
      Error,
      /localisation needs attention maps/,
    );
  });

  it('openProbeDataset(), ground truth readers, frameGeometries(), audioFileFeatures()', async () => {
    const dir = tmpDir('cmac-eval-options-');
    await unknownKey(() => openProbeDataset(dir, { layuot: 'folder' } as never), 'openProbeDataset()', 'layuot', 'layout');
    await rejects(() => openProbeDataset(path.join(dir, 'nope'), { layout: 'folder' }), Error, /does not exist/);
    await unknownKey(
      () => synthGroundTruthOf(dir, { frames: 4, fps: 8 }, { object: 'dominant' } as never),
      'synthGroundTruthOf()',
      'object',
      'objects',
    );
    expect(synthGroundTruthOf(dir, { frames: 4, fps: 8 }, { objects: 'dominant', nMels: 64 })).to.be.a('function');
    await unknownKey(
      () => synthGroundTruth(truth, { start: 0, frames: 4, fps: 8 }, { frame: 'middle' } as never),
      'synthGroundTruth()',
      'frame',
      'frames',
    );
    const source = folderSource(dir);
    await unknownKey(frameGeometries(source, [], { concurency: 2 } as never), 'frameGeometries()', 'concurency', 'concurrency');
    expect((await frameGeometries(source, [], { concurrency: 2 })).size).to.equal(0);
    await unknownKey(
      audioFileFeatures(noModel, [], { sampleRate: 16000, samples: 32000, window: 3 } as never),
      'audioFileFeatures()',
      'window',
      'windows',
    );
  });

  it('library errors name the API option and the CLI flag (issue 16)', async () => {
    const dir = tmpDir('cmac-eval-options-');
    await rejects(
      () => openProbeDataset(dir, { layout: 'ucf101' }),
      Error,
      /no classInd\.txt in .*\. Fix: pass the splits option \(CLI: --splits\)/,
    );
    await rejects(() => openProbeDataset(dir, { layout: 'hmdb51' }), Error, /Fix: pass the splits option \(CLI: --splits\)/);
  });
});
