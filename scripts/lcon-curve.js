#!/usr/bin/env node
// Issue-note measurement: a tiny-preset CMAC run of N steps (default 200) on
// a FIXED set of synthetic batches (decoded once), printing the L_con curve
// and the step time. Usage: node scripts/lcon-curve.js [steps] [threads]
'use strict';
const path = require('path');
const os = require('os');
const fs = require('fs');
const cmac = require(path.join(__dirname, '..', 'dist'));

(async () => {
  const steps = Number(process.argv[2] || 200);
  const threads = Number(process.argv[3] || os.cpus().length);
  cmac.setNumThreads(threads);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cmac-curve-'));
  await cmac.synthesize({ out: dir, clips: 128, seed: 11, size: 64, fps: 8, seconds: 2 });
  const cfg = cmac.resolveConfig({ preset: 'tiny', seed: 1, data: { source: dir } });
  const loader = cmac.createLoader({ source: cmac.openSource(dir, 'train'), batchSize: 32, clip: { ...cfg.clip, sampleRate: 16000 }, mode: 'train', seed: 1, epochs: 1, dropLast: true });
  const batches = [];
  for await (const b of loader) batches.push({ video: b.video, audio: b.audio });
  await loader.close();
  const model = await cmac.CmacModel.create(cmac.toModelConfig(cfg));
  const times = [];
  console.log(`fixed set: ${batches.length} batches of 32; ${threads} thread(s)`);
  for (let s = 0; s < steps; s++) {
    const r = await model.trainStep(batches[s % batches.length], { lr: cmac.learningRate(cfg, s, steps), lambdaScale: cmac.lambdaScale(cfg, s, steps) });
    times.push(r.timeMs);
    if (s % 20 === 0 || s === steps - 1) console.log(`step ${s}: L_con ${r.lossCon.toFixed(4)} L_v ${r.lossV.toFixed(4)} L_a ${r.lossA.toFixed(4)} total ${r.loss.toFixed(4)}`);
  }
  times.sort((a, b) => a - b);
  console.log(`step time (batch 32): median ${times[times.length >> 1].toFixed(0)} ms, min ${times[0].toFixed(0)} ms`);
  model.dispose();
  fs.rmSync(dir, { recursive: true, force: true });
})();
