// Each CmacModel / VideoClassifier runs its calls on one persistent native
// thread of its own (native/addon/runner.h, issue 18), not on libuv's pool:
// one glibc arena and one OpenMP team that persist from step to step. Seen
// from outside through the process's threads (/proc/self/task): creating a
// model adds its thread, calls add none, dispose() ends it (and its OpenMP
// team), also when dispose() comes while a step is in flight.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { CmacModel } from '../lib/model';
import { VideoClassifier } from '../lib/classifier';
import { getNumThreads, memory, setNumThreads } from '../lib/info';
import { readSafetensors, writeSafetensors } from '../lib/safetensors';
import { randomBatch, tmpDir } from './helpers';

const micro = {
  visual: {
    planes: [4, 4, 4, 4] as [number, number, number, number],
    blocks: [1, 1, 1, 1] as [number, number, number, number],
    stemMid: 4,
  },
  audio: {
    planes: [4, 4, 4, 4] as [number, number, number, number],
    blocks: [1, 1, 1, 1] as [number, number, number, number],
  },
  seed: 1,
};

const tasks = (): number => fs.readdirSync('/proc/self/task').length;

// The count once it has held still for a moment (exiting threads take a few ms to be reaped).
async function settledTasks(want?: number): Promise<number> {
  let n = tasks();
  for (let i = 0; i < 100; i++) {
    await new Promise((r) => setTimeout(r, 10));
    const m = tasks();
    if (m === n && (want === undefined || m === want)) return m;
    n = m;
  }
  return n;
}

describe('addon: one native thread per model', function () {
  this.timeout(120000);
  if (!fs.existsSync('/proc/self/task')) return;
  const dir = tmpDir();
  let threads0 = 1;

  before(async () => {
    threads0 = getNumThreads();
    setNumThreads(1);
    // Start libuv's pool first (a module-level async call uses it), so that only our threads move the count.
    const f = path.join(dir, 'w.safetensors');
    await writeSafetensors(f, { x: { data: new Float32Array([1]), shape: [1] } });
    await readSafetensors(f);
  });
  after(() => setNumThreads(threads0));

  it('create adds one thread, steps and other calls add none, dispose() ends it', async () => {
    const base = await settledTasks();
    const m = await CmacModel.create(micro);
    expect(await settledTasks(base + 1)).to.equal(base + 1);
    for (let i = 0; i < 3; i++) expect((await m.trainStep(randomBatch(2, i + 1), { lr: 1e-3 })).finite).to.equal(true);
    await m.embed(randomBatch(2, 7));
    await m.stateDict();
    expect(await settledTasks(base + 1)).to.equal(base + 1);
    m.dispose();
    expect(memory().models).to.equal(0);
    expect(await settledTasks(base)).to.equal(base);
  });

  it('two models have two threads; a classifier has its own', async () => {
    const base = await settledTasks();
    const a = await CmacModel.create(micro);
    const b = await CmacModel.create({ ...micro, seed: 2 });
    const c = await VideoClassifier.create(micro, { numClasses: 2 });
    await Promise.all([
      a.trainStep(randomBatch(2, 1), { lr: 1e-3 }),
      b.trainStep(randomBatch(2, 2), { lr: 1e-3 }),
      c.predict({ video: randomBatch(2, 3).video! }),
    ]);
    expect(await settledTasks(base + 3)).to.equal(base + 3);
    a.dispose();
    b.dispose();
    c.dispose();
    expect(await settledTasks(base)).to.equal(base);
  });

  it('at 2 threads the OpenMP team persists on the model thread and ends with it', async () => {
    setNumThreads(2);
    try {
      // libtorch's process-wide pthreadpool gets its worker at the first call at 2 threads: let a first model start it.
      // (embed calls: a step at 2 threads takes seconds when other jobs load the 2 cores.)
      const warm = await CmacModel.create(micro);
      await warm.embed(randomBatch(2, 1));
      warm.dispose();
      const base = await settledTasks();
      const m = await CmacModel.create(micro);
      await m.embed(randomBatch(2, 1));
      // The model thread plus one OpenMP worker, the same ones every call.
      expect(await settledTasks(base + 2)).to.equal(base + 2);
      for (let i = 0; i < 3; i++) await m.embed(randomBatch(2, i + 2));
      expect(await settledTasks()).to.equal(base + 2);
      m.dispose();
      expect(await settledTasks(base)).to.equal(base);
    } finally {
      setNumThreads(1);
    }
  });

  it('dispose() while calls are in flight: they still settle, in order, then the model and its thread go', async () => {
    const base = await settledTasks();
    const m = await CmacModel.create(micro);
    const order: number[] = [];
    const calls = [1, 2, 3].map((i) =>
      m.trainStep(randomBatch(2, i), { lr: 1e-3 }).then((r) => {
        order.push(i);
        return r;
      }),
    );
    m.dispose();
    expect(m.disposed).to.equal(true);
    expect(memory().pendingOps).to.be.at.least(1);
    const rs = await Promise.all(calls);
    expect(rs.every((r) => r.finite)).to.equal(true);
    expect(order).to.deep.equal([1, 2, 3]);
    expect(await settledTasks(base)).to.equal(base);
    expect(memory().models).to.equal(0);
    expect(memory().pendingOps).to.equal(0);
  });

  it('a model that is never disposed does not keep the process alive, and one with a call in flight does until it settles', async () => {
    const { spawnSync } = await import('child_process');
    const lib = JSON.stringify(path.join(__dirname, '..', 'lib', 'index.js'));
    const helpers = JSON.stringify(path.join(__dirname, 'helpers.js'));
    const script = `const { CmacModel } = require(${lib}); const h = require(${helpers});
      (async () => { const m = await CmacModel.create(${JSON.stringify(micro)});
        m.trainStep(h.randomBatch(2, 1), { lr: 1e-3 }).then((r) => console.log('settled', r.finite)); })();`;
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000 });
    expect(r.status, r.stderr).to.equal(0);
    expect(r.stdout.trim()).to.equal('settled true');
  });
});
