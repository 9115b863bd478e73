// model.pooling through the addon and the train step's retrieval accuracy
// (issue 14 items 3 and 6; the wiring itself is pinned by the C++ tests in
// native/core/tests/test_wiring.cpp).
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError, resolveConfig, toModelConfig } from '../lib/config';
import { CmacModel } from '../lib/model';
import { loadCheckpoint } from '../lib/checkpoint';
import { randomBatch, rejects, tinyConfig, tmpDir } from './helpers';

describe('CmacModel pooling and retrieval accuracy', function () {
  this.timeout(300000);

  it('trainStep and evaluateLoss report the in-batch retrieval accuracy (0..1 in steps of 1/(2B)) under both poolings', async () => {
    for (const pooling of ['attention', 'mean'] as const) {
      const model = await CmacModel.create({ ...tinyConfig({ seed: 2 }), pooling, loss: { preset: 'xmodal' } });
      try {
        for (const r of [await model.trainStep(randomBatch(4, 1), { lr: 1e-3 }), await model.evaluateLoss(randomBatch(4, 2))]) {
          expect(r.retrievalAcc, pooling).to.be.within(0, 1);
          expect(r.retrievalAcc * 8, pooling).to.be.closeTo(Math.round(r.retrievalAcc * 8), 1e-5);
        }
      } finally {
        model.dispose();
      }
    }
  });

  it('a bad pooling and the old loss.attentionPooling are errors that name the setting and the fix', async () => {
    await rejects(
      CmacModel.create({ ...tinyConfig(), pooling: 'max' as never }),
      ConfigError,
      /config\.pooling: got "max"; allowed: "attention", "mean"/,
    );
    await rejects(
      CmacModel.create({ ...tinyConfig(), loss: { attentionPooling: false } as never }),
      TypeError,
      /config\.loss\.attentionPooling was replaced by config\.pooling .*Fix: pass pooling: 'mean'/,
    );
  });

  it('a checkpoint written before model.pooling opens with the pooling it was trained with (baselines: mean)', async () => {
    const dir = tmpDir('cmac-oldpool-');
    const trained = resolveConfig({ loss: { preset: 'xmodal' }, model: { pooling: 'mean' }, data: { source: dir } });
    const model = await CmacModel.create(toModelConfig(trained));
    const b = randomBatch(3, 5);
    try {
      await model.trainStep(randomBatch(4, 4), { lr: 1e-3 });
      const weights = path.join(dir, 'step-00000001.safetensors');
      await model.save(weights);
      // The JSON as cmac wrote it then: no model.pooling, no loss.rampStart / rampThreshold.
      const old = JSON.parse(JSON.stringify(trained));
      delete old.model.pooling;
      delete old.loss.rampStart;
      delete old.loss.rampThreshold;
      const state = {
        format: 'cmac-checkpoint/1',
        step: 1,
        epoch: 0,
        cursor: { epoch: 0, position: 4 },
        config: old,
        rng: { seed: 0, loaderSeed: 0 },
        nonFiniteInARow: 0,
        skippedSteps: 0,
        time: '',
      };
      fs.writeFileSync(path.join(dir, 'step-00000001.json'), JSON.stringify(state));
      const opened = await loadCheckpoint(weights);
      try {
        expect(opened.config.model.pooling).to.equal('mean');
        expect(opened.config.loss).to.include({ rampStart: 0, rampThreshold: 0.2 });
        model.eval();
        const want = (await model.embed(b)).zV!.data,
          got = (await opened.model.embed(b)).zV!.data;
        expect(Array.from(got)).to.deep.equal(Array.from(want));
      } finally {
        opened.model.dispose();
      }
      // A cmac checkpoint of then pooled by attention, and loss.attentionPooling (then a setting) is honoured.
      fs.writeFileSync(
        path.join(dir, 'step-00000001.json'),
        JSON.stringify({ ...state, config: { ...old, loss: { ...old.loss, preset: 'cmac' } } }),
      );
      const cm = await loadCheckpoint(weights);
      expect(cm.config.model.pooling).to.equal('attention');
      cm.model.dispose();
      fs.writeFileSync(
        path.join(dir, 'step-00000001.json'),
        JSON.stringify({ ...state, config: { ...old, loss: { ...old.loss, preset: 'cmac', attentionPooling: false } } }),
      );
      const ap = await loadCheckpoint(weights);
      expect(ap.config.model.pooling).to.equal('mean');
      expect(ap.config.loss).to.not.have.property('attentionPooling');
      ap.model.dispose();
    } finally {
      model.dispose();
    }
  });
});
