// The addon in worker_threads: training inside a worker, 4 workers at once,
// 10 create/terminate cycles, and the main thread's event loop meanwhile.
import { expect } from 'chai';
import { monitorEventLoopDelay } from 'perf_hooks';
import { Worker } from 'worker_threads';
import * as path from 'path';
import { CmacModel } from '../lib/model';
import { memory } from '../lib/info';
import { randomBatch, tinyConfig } from './helpers';

const here = __dirname;
// The worker body: create a tiny model, train `steps` steps, embed, report.
const body = `
const { parentPort, workerData } = require('worker_threads');
const { CmacModel, memory } = require(${JSON.stringify(path.join(here, '..', 'lib', 'index.js'))});
const h = require(${JSON.stringify(path.join(here, 'helpers.js'))});
(async () => {
  parentPort.postMessage({ type: 'ready' });
  const m = await CmacModel.create(h.tinyConfig({ seed: workerData.seed }));
  const losses = [];
  for (let i = 0; i < workerData.steps; i++) losses.push((await m.trainStep(h.randomBatch(2, i + 1), { lr: 1e-3 })).loss);
  const e = await m.embed(h.randomBatch(2, 9));
  m.dispose();
  parentPort.postMessage({ type: 'done', losses, zShape: e.zV.shape, models: memory().models });
})().catch((err) => parentPort.postMessage({ type: 'error', message: String(err && err.stack || err) }));
`;

function runWorker(seed: number, steps: number): Promise<{ losses: number[]; zShape: number[] }> {
  return new Promise((resolve, reject) => {
    const w = new Worker(body, { eval: true, workerData: { seed, steps } });
    w.on('message', (m) => {
      if (m.type === 'done') resolve(m);
      if (m.type === 'error') reject(new Error(m.message));
    });
    w.on('error', reject);
    w.on('exit', (code) => {
      if (code !== 0) reject(new Error(`worker exited with ${code}`));
    });
  });
}

describe('worker_threads', function () {
  this.timeout(300000);

  it('trains inside a worker, with results equal to the main thread for the same seed', async () => {
    const inWorker = await runWorker(5, 2);
    const m = await CmacModel.create(tinyConfig({ seed: 5 }));
    const main = [];
    for (let i = 0; i < 2; i++) main.push((await m.trainStep(randomBatch(2, i + 1), { lr: 1e-3 })).loss);
    m.dispose();
    expect(inWorker.losses).to.deep.equal(main);
    expect(inWorker.zShape).to.deep.equal([2, 128]);
  });

  it('4 workers use the addon at once while the main event loop stays responsive', async () => {
    const h = monitorEventLoopDelay({ resolution: 10 });
    h.enable();
    const results = await Promise.all([1, 2, 3, 4].map((s) => runWorker(s, 2)));
    h.disable();
    for (const r of results) expect(r.losses.every(Number.isFinite)).to.equal(true);
    const p99 = h.percentile(99) / 1e6;
    console.log(
      `      event-loop delay during 4 training workers: p50 ${(h.percentile(50) / 1e6).toFixed(1)} ms, p99 ${p99.toFixed(1)} ms, max ${(h.max / 1e6).toFixed(1)} ms`,
    );
    expect(p99).to.be.lessThan(500);
  });

  it('survives 10 create/terminate cycles, terminating mid-step', async () => {
    for (let i = 0; i < 10; i++) {
      const w = new Worker(body, { eval: true, workerData: { seed: i, steps: 50 } });
      await new Promise<void>((res, rej) => {
        w.on('message', (m) => {
          if (m.type === 'ready') setTimeout(res, 100 + 30 * i);
        });
        w.on('error', rej);
      });
      await w.terminate();
    }
    // The main thread still works and no model leaked on it.
    const before = memory().models;
    const m = await CmacModel.create(tinyConfig());
    const r = await m.trainStep(randomBatch(2, 1), { lr: 1e-3 });
    m.dispose();
    expect(r.finite).to.equal(true);
    expect(memory().models).to.be.at.most(before);
  });

  it('a training step does not block the main event loop', async () => {
    const m = await CmacModel.create(tinyConfig());
    const h = monitorEventLoopDelay({ resolution: 5 });
    h.enable();
    let ticks = 0;
    const timer = setInterval(() => ticks++, 5);
    for (let i = 0; i < 3; i++) await m.trainStep(randomBatch(8, i), { lr: 1e-3 });
    clearInterval(timer);
    h.disable();
    m.dispose();
    console.log(`      event-loop delay during 3 batch-8 steps: p99 ${(h.percentile(99) / 1e6).toFixed(1)} ms, ${ticks} timer ticks`);
    expect(ticks).to.be.greaterThan(5);
    expect(h.percentile(99) / 1e6).to.be.lessThan(200);
  });
});
