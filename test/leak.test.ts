// No leaks (issue 9): many embed calls and training steps on one model keep
// memory() (live models, native bytes, pending calls) exactly flat, and the
// process RSS, V8 heap and ArrayBuffer memory within noise.
//
// Counts: by default 1000 embed calls and 80 train steps (about 20 s on 2
// cores); CMAC_LONG=1 runs the full 10000 embed calls and 1000 steps.
// CMAC_LEAK_EMBEDS / CMAC_LEAK_STEPS set them directly. Inputs are small
// (tiny preset, batch 2, 2 frames of 16x16 / 32x32, 0.25 s of audio), so the
// calls are many and cheap. RSS is sampled after a forced GC (node
// --expose-gc, set in .mocharc.json) after a warm-up. Reported: the drift
// (last sample minus first) and, because glibc's per-thread arenas keep
// growing for the first few hundred steps before they level off (measured:
// 294 -> 354 MB over 500 steps, then +3 MB over the next 1500), the drift and
// least-squares slope (bytes per call) over the second half of the samples,
// which is what the assertions use.
import { expect } from 'chai';
import { monitorEventLoopDelay } from 'perf_hooks';
import { memory, setNumThreads } from '../lib/info';
import { CmacModel, type Batch } from '../lib/model';
import { rng, tinyConfig } from './helpers';

const LONG = process.env.CMAC_LONG === '1';
const EMBEDS = Number(process.env.CMAC_LEAK_EMBEDS ?? (LONG ? 10000 : 1000));
const STEPS = Number(process.env.CMAC_LEAK_STEPS ?? (LONG ? 1000 : 80));
const MB = 1024 * 1024;

function batch(n: number, frames: number, size: number, samples: number, seed: number): Batch {
  const r = rng(seed);
  const video = new Uint8Array(n * frames * size * size * 3);
  for (let i = 0; i < video.length; i++) video[i] = (r() * 256) | 0;
  const audio = new Float32Array(n * samples);
  for (let i = 0; i < audio.length; i++) audio[i] = (r() - 0.5) * 0.2;
  return { video: { data: video, shape: [n, frames, size, size, 3] }, audio: { data: audio, shape: [n, samples] } };
}

const gc = (): void => {
  const g = (global as { gc?: () => void }).gc;
  if (g) for (let i = 0; i < 3; i++) g();
};

interface Sample {
  calls: number;
  rss: number;
  heap: number;
  arrayBuffers: number;
  models: number;
  bytes: number;
  pendingOps: number;
}

function sample(calls: number): Sample {
  gc();
  const m = memory();
  const u = process.memoryUsage();
  return { calls, rss: m.rss, heap: u.heapUsed, arrayBuffers: u.arrayBuffers, models: m.models, bytes: m.bytes, pendingOps: m.pendingOps };
}

/** Least-squares slope of y over x. */
function slope(xs: number[], ys: number[]): number {
  const n = xs.length,
    mx = xs.reduce((a, b) => a + b, 0) / n,
    my = ys.reduce((a, b) => a + b, 0) / n;
  let sxy = 0,
    sxx = 0;
  for (let i = 0; i < n; i++) {
    sxy += (xs[i] - mx) * (ys[i] - my);
    sxx += (xs[i] - mx) ** 2;
  }
  return sxx ? sxy / sxx : 0;
}

function summarise(what: string, s: Sample[], delayP99: number): { drift: number; lateDrift: number; perCall: number } {
  const first = s[0],
    last = s[s.length - 1];
  const late = s.slice(Math.floor(s.length / 2));
  const drift = last.rss - first.rss;
  const lateDrift = last.rss - late[0].rss;
  const perCall = slope(
    late.map((x) => x.calls),
    late.map((x) => x.rss),
  );
  console.log(
    `      ${what}: RSS ${(first.rss / MB).toFixed(1)} -> ${(late[0].rss / MB).toFixed(1)} -> ${(last.rss / MB).toFixed(1)} MB (drift ${(drift / MB).toFixed(2)} MB; second half ${(lateDrift / MB).toFixed(2)} MB, slope ${perCall.toFixed(0)} B/call), ` +
      `heap ${(first.heap / MB).toFixed(1)} -> ${(last.heap / MB).toFixed(1)} MB, arrayBuffers ${(first.arrayBuffers / MB).toFixed(2)} -> ${(last.arrayBuffers / MB).toFixed(2)} MB, ` +
      `native bytes ${first.bytes} -> ${last.bytes}, event-loop delay p99 ${delayP99.toFixed(1)} ms`,
  );
  return { drift, lateDrift, perCall };
}

describe('no leaks: memory() flat and RSS within noise', function () {
  this.timeout(3600000);
  let model: CmacModel;
  let baseModels = 0;

  before(async () => {
    setNumThreads(2);
    baseModels = memory().models;
    model = await CmacModel.create(tinyConfig({ seed: 1 }));
  });
  after(() => {
    model.dispose();
    expect(memory().models).to.equal(baseModels);
  });

  it(`${EMBEDS} embed calls (both modalities, video only, audio only)`, async () => {
    const inputs: Batch[] = [batch(2, 2, 16, 4000, 1), batch(2, 2, 16, 4000, 2), batch(1, 1, 32, 4000, 3)];
    const kinds = (i: number): Batch => {
      const b = inputs[i % inputs.length];
      return i % 3 === 0 ? b : i % 3 === 1 ? { video: b.video } : { audio: b.audio };
    };
    for (let i = 0; i < 200; i++) await model.embed(kinds(i)); // warm-up: allocator pools, thread pools
    const samples: Sample[] = [sample(0)];
    const h = monitorEventLoopDelay({ resolution: 10 });
    h.enable();
    const every = Math.max(1, Math.floor(EMBEDS / 20));
    for (let i = 0; i < EMBEDS; i++) {
      const e = await model.embed(kinds(i));
      if (i === 0) expect(Object.keys(e).length).to.be.greaterThan(0);
      if ((i + 1) % every === 0) samples.push(sample(i + 1));
    }
    h.disable();
    const { drift, lateDrift, perCall } = summarise(`${EMBEDS} embeds`, samples, h.percentile(99) / 1e6);
    for (const s of samples) {
      expect(s.models, 'live models').to.equal(samples[0].models);
      expect(s.bytes, 'native bytes').to.equal(samples[0].bytes);
      expect(s.pendingOps, 'pending calls').to.equal(0);
    }
    // A leak of the smallest result (2 x 128 floats = 1 KB) per call would show as >= 1000 B/call.
    // The slope is meaningful only over many calls (RSS moves by MBs at random).
    if (EMBEDS >= 4000) expect(perCall, 'RSS slope over the second half (bytes per call)').to.be.lessThan(400);
    expect(lateDrift, 'RSS drift over the second half').to.be.lessThan(8 * MB);
    expect(drift, 'RSS drift').to.be.lessThan(32 * MB);
    expect(samples[samples.length - 1].arrayBuffers - samples[0].arrayBuffers, 'ArrayBuffer memory').to.be.lessThan(2 * MB);
  });

  it(`${STEPS} training steps (batch 2)`, async () => {
    const b = [batch(2, 2, 32, 4000, 4), batch(2, 2, 32, 4000, 5)];
    for (let i = 0; i < 20; i++) await model.trainStep(b[i % 2], { lr: 1e-4 }); // warm-up: Adam state exists after the first step
    const samples: Sample[] = [sample(0)];
    const h = monitorEventLoopDelay({ resolution: 10 });
    h.enable();
    const every = Math.max(1, Math.floor(STEPS / 15));
    for (let i = 0; i < STEPS; i++) {
      const r = await model.trainStep(b[i % 2], { lr: 1e-4 });
      expect(r.finite).to.equal(true);
      if ((i + 1) % every === 0) samples.push(sample(i + 1));
    }
    h.disable();
    const { drift, lateDrift, perCall } = summarise(`${STEPS} train steps`, samples, h.percentile(99) / 1e6);
    for (const s of samples) {
      expect(s.models).to.equal(samples[0].models);
      expect(s.bytes).to.equal(samples[0].bytes);
      expect(s.pendingOps).to.equal(0);
    }
    // A leak of one batch-2 gradient set would be MBs per step; the arenas settle at a few KB/step.
    if (STEPS >= 400) expect(perCall, 'RSS slope over the second half (bytes per step)').to.be.lessThan(32 * 1024);
    expect(lateDrift, 'RSS drift over the second half').to.be.lessThan(16 * MB);
    expect(drift, 'RSS drift').to.be.lessThan(96 * MB);
  });

  it('create/dispose 30 models: counts return to the baseline', async () => {
    const before = sample(0);
    for (let i = 0; i < 30; i++) {
      const m = await CmacModel.create(tinyConfig({ seed: i }));
      await m.embed({ audio: batch(1, 1, 16, 4000, i).audio });
      m.dispose();
    }
    const after = sample(30);
    console.log(
      `      30 create/dispose: RSS ${(before.rss / MB).toFixed(1)} -> ${(after.rss / MB).toFixed(1)} MB, native bytes ${before.bytes} -> ${after.bytes}`,
    );
    expect(after.models).to.equal(before.models);
    expect(after.bytes).to.equal(before.bytes);
    expect(after.rss - before.rss).to.be.lessThan(64 * MB);
  });
});
