// model.pooling through the addon and the train step's retrieval accuracy
// (issue 14 items 3 and 6; the wiring itself is pinned by the C++ tests in
// native/core/tests/test_wiring.cpp).
import { expect } from 'chai';
import { CmacModel } from '../lib/model';
import { randomBatch, rejects, tinyConfig } from './helpers';

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
    await rejects(CmacModel.create({ ...tinyConfig(), pooling: 'max' as never }), RangeError, /config\.pooling must be 'attention' or 'mean'; got 'max'/);
    await rejects(CmacModel.create({ ...tinyConfig(), loss: { attentionPooling: false } as never }), TypeError,
      /config\.loss\.attentionPooling was replaced by config\.pooling .*Fix: pass pooling: 'mean'/);
  });
});
