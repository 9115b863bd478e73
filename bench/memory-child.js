#!/usr/bin/env node
// Memory probes, each in a fresh process so that RSS means something:
//   node --expose-gc bench/memory-child.js train --inputs F [--weights W] --steps 30 [--warmup 1] --threads 1
//   node --expose-gc bench/memory-child.js embed --calls 10000 --every 1000 --threads 2
// Prints one JSON line. Run by bench/run.js (section "memory").
'use strict';
const { procMem, nowMs } = require('./util');

/** The value after --`name`, else `dflt`. @param {string} name @param {string} [dflt] @returns {string} */
function arg(name, dflt = '') {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : dflt;
}

function gc() {
  if (global.gc) {
    global.gc();
    global.gc();
  }
}

async function main() {
  const mode = process.argv[2];
  const cmac = require('../dist');
  const threads = Number(arg('threads', '1'));
  cmac.setNumThreads(threads);
  const start = procMem();
  if (mode === 'train') {
    const steps = Number(arg('steps', '30'));
    const { tensors } = await cmac.readSafetensors(arg('inputs'));
    const batch = /** @type {import('../dist/model').Batch} */ ({ video: tensors.video, audio: tensors.audio });
    const model = await cmac.CmacModel.create({
      ...cmac.modelPreset(/** @type {import('../dist/presets').SizePreset} */ (arg('preset', 'tiny'))),
      seed: 1,
    });
    if (arg('weights')) await model.load(arg('weights'));
    const created = procMem();
    const warmup = Number(arg('warmup', '0'));
    for (let i = 0; i < warmup; i++) await model.trainStep(batch, { lr: 1e-3 });
    const t0 = nowMs();
    let finite = 0;
    const perStep = [];
    for (let i = 0; i < steps; i++) {
      const f0 = process.resourceUsage().minorPageFault;
      const c0 = process.cpuUsage();
      const t = nowMs();
      const r = await model.trainStep(batch, { lr: 1e-3 });
      const cpu = process.cpuUsage(c0);
      perStep.push({
        wallMs: nowMs() - t,
        nativeMs: r.timeMs,
        cpuMs: (cpu.user + cpu.system) / 1000,
        minorFaults: process.resourceUsage().minorPageFault - f0,
      });
      if (r.finite) finite++;
    }
    const seconds = (nowMs() - t0) / 1000;
    gc();
    const end = procMem();
    model.dispose();
    process.stdout.write(
      JSON.stringify({
        mode,
        steps,
        warmup,
        finite,
        threads,
        seconds,
        rssStart: start.rss,
        rssAfterCreate: created.rss,
        rssEnd: end.rss,
        peak: end.peak,
        perStep,
        mallocArenaMax: process.env.MALLOC_ARENA_MAX ?? null,
      }) + '\n',
    );
    return;
  }
  if (mode === 'embed') {
    const calls = Number(arg('calls', '10000'));
    const every = Number(arg('every', '1000'));
    const n = Number(arg('batch', '1'));
    // A small batch (both encoders, smallest shapes the model accepts) so that
    // 10k calls take seconds, not minutes: the per-call bookkeeping is what can leak.
    const batch = {
      video: { data: new Uint8Array(n * 1 * 16 * 16 * 3).fill(100), shape: [n, 1, 16, 16, 3] },
      audio: { data: new Float32Array(n * 1024).map((_, i) => Math.sin(i / 10)), shape: [n, 1024] },
    };
    const model = await cmac.CmacModel.create({ ...cmac.modelPreset('tiny'), seed: 1 });
    const samples = [];
    const t0 = nowMs();
    for (let i = 1; i <= calls; i++) {
      await model.embed(batch);
      if (i % every === 0) {
        gc();
        const m = procMem();
        const nm = cmac.memory();
        samples.push({
          calls: i,
          rss: m.rss,
          heapUsed: process.memoryUsage().heapUsed,
          external: process.memoryUsage().external,
          models: nm.models,
          bytes: nm.bytes,
          pendingOps: nm.pendingOps,
        });
      }
    }
    const seconds = (nowMs() - t0) / 1000;
    model.dispose();
    process.stdout.write(
      JSON.stringify({
        mode,
        calls,
        every,
        batch: n,
        threads,
        seconds,
        usPerCall: (seconds * 1e6) / calls,
        rssStart: start.rss,
        samples,
        peak: procMem().peak,
      }) + '\n',
    );
    return;
  }
  throw new Error(`unknown mode ${mode}`);
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
