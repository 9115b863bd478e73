// Issue 18: libtorch's CPU blocks of >= 64 KiB come from cmac's caching
// allocator (native/core/cpu_cache.h), so a training step reuses the previous
// step's memory instead of page-faulting it in again; and the encoders'
// memory layout (model.visual.layout / model.audio.layout). The allocator's
// policy itself is tested in C++ (native/core/tests/test_layout_cache.cpp).
import { expect } from 'chai';
import { CmacModel } from '../lib/model';
import { ConfigError } from '../lib/config';
import { memory, releaseCpuCache, setCpuCacheLimit, setNumThreads, getNumThreads } from '../lib/info';
import { randomBatch, rejects, tinyConfig } from './helpers';

describe('caching CPU allocator and encoder layout', function () {
  this.timeout(180000);
  let threads0 = 1;
  before(() => {
    threads0 = getNumThreads();
    setNumThreads(1);
  });
  after(() => setNumThreads(threads0));

  it('is installed; a repeated step maps no new memory; dispose() gives the free blocks back', async () => {
    expect(memory().cpuCache.installed).to.equal(true);
    const model = await CmacModel.create(tinyConfig({ seed: 1 }));
    const batch = randomBatch(4);
    await model.trainStep(batch, { lr: 1e-3 });
    await model.trainStep(batch, { lr: 1e-3 });
    const a = memory().cpuCache;
    await model.trainStep(batch, { lr: 1e-3 });
    await model.trainStep(batch, { lr: 1e-3 });
    const b = memory().cpuCache;
    expect(b.hits - a.hits, 'blocks served from the cache in two steps').to.be.greaterThan(100);
    expect(b.misses - a.misses, 'new blocks in two repeated steps').to.be.at.most(2);
    expect(b.cachedBytes).to.be.greaterThan(0);
    model.dispose();
    for (let i = 0; i < 200 && memory().cpuCache.cachedBytes > 0; i++) await new Promise((r) => setTimeout(r, 10));
    expect(memory().cpuCache.cachedBytes, 'free blocks after dispose').to.equal(0);
  });

  it('setCpuCacheLimit / releaseCpuCache: limits, validation', async () => {
    const model = await CmacModel.create(tinyConfig({ seed: 2 }));
    try {
      const batch = randomBatch(4);
      setCpuCacheLimit(0);
      const r0 = memory().cpuCache.released;
      await model.trainStep(batch, { lr: 1e-3 });
      expect(memory().cpuCache.cachedBytes).to.equal(0);
      expect(memory().cpuCache.released).to.be.greaterThan(r0);
      setCpuCacheLimit(2 ** 40);
      await model.trainStep(batch, { lr: 1e-3 });
      const cached = memory().cpuCache.cachedBytes;
      expect(cached).to.be.greaterThan(0);
      expect(releaseCpuCache()).to.equal(cached);
      expect(memory().cpuCache.cachedBytes).to.equal(0);
    } finally {
      setCpuCacheLimit(Math.floor(require('os').totalmem() / 4));
      model.dispose();
    }
    const bad = [-1, 1.5, NaN, 'x', undefined];
    for (const v of bad) {
      let err: (Error & { code?: string }) | undefined;
      try {
        (setCpuCacheLimit as (b: unknown) => void)(v);
      } catch (e) {
        err = e as Error & { code?: string };
      }
      expect(err, String(v)).to.be.instanceOf(Error);
      expect(err!.message).to.match(/setCpuCacheLimit\(bytes\)/);
      expect(err!.code).to.be.oneOf(['CMAC_BAD_ARGUMENT', 'CMAC_OUT_OF_RANGE']);
    }
  });

  // (Exact agreement, forward and every gradient in double precision: the C++ layout tests. In float the
  // first step's loss agrees to rounding; Adam then amplifies rounding in near-zero gradients, so later
  // steps drift apart as they do between thread counts.)
  it('layout: channels-last and contiguous give the same first step; a wrong value is a ConfigError naming the key', async () => {
    const batch = randomBatch(8);
    const steps: { loss: number; gradNorm: number }[] = [];
    for (const layout of ['channels-last', 'contiguous'] as const) {
      const cfg = tinyConfig({ seed: 3 });
      const m = await CmacModel.create({ ...cfg, visual: { ...cfg.visual!, layout }, audio: { ...cfg.audio!, layout } });
      try {
        steps.push(await m.trainStep(batch, { lr: 1e-3 }));
      } finally {
        m.dispose();
      }
    }
    const [cl, c] = steps;
    expect(Math.abs(cl.loss - c.loss), `losses ${cl.loss} ${c.loss}`).to.be.below(1e-4 * Math.max(1, Math.abs(c.loss)));
    expect(Math.abs(cl.gradNorm - c.gradNorm), `grad norms ${cl.gradNorm} ${c.gradNorm}`).to.be.below(1e-2 * c.gradNorm);
    const cfg = tinyConfig({ seed: 3 });
    await rejects(() => CmacModel.create({ ...cfg, visual: { ...cfg.visual!, layout: 'nhwc' as 'auto' } }), ConfigError, /visual\.layout/);
  });
});
