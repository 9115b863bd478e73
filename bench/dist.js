#!/usr/bin/env node
// Data-parallel scaling on this machine: training-step throughput of
// 1 rank x T threads vs N ranks x T threads each (c10d/Gloo over loopback),
// on fixed in-memory batches (no decoding), tiny preset.
// Usage: node bench/dist.js [--ranks 2] [--threads 1] [--batch 16] [--steps 12]
'use strict';
const { spawn } = require('child_process');
const path = require('path');
const net = require('net');

const arg = (k, d) => { const i = process.argv.indexOf(`--${k}`); return i > 0 ? Number(process.argv[i + 1]) : d; };
const ranks = arg('ranks', 2), threads = arg('threads', 1), batch = arg('batch', 16), steps = arg('steps', 12);

const worker = `
const cmac = require(${JSON.stringify(path.join(__dirname, '..', 'dist'))});
const world = Number(process.env.WORLD_SIZE || 1);
(async () => {
  cmac.setNumThreads(${threads});
  const n = ${batch};
  const m = await cmac.CmacModel.create({ ...cmac.modelPreset('tiny'), seed: 1, dist: { enabled: world > 1 } });
  const video = { data: new Uint8Array(n * 4 * 64 * 64 * 3).map((_, k) => (k * 2654435761) >>> 24), shape: [n, 4, 64, 64, 3] };
  const audio = { data: new Float32Array(n * 32000).map((_, k) => Math.sin(k * 0.003) * 0.1), shape: [n, 32000] };
  for (let s = 0; s < 2; s++) await m.trainStep({ video, audio }, { lr: 1e-4 });
  const t0 = process.hrtime.bigint();
  for (let s = 0; s < ${steps}; s++) await m.trainStep({ video, audio }, { lr: 1e-4 });
  const sec = Number(process.hrtime.bigint() - t0) / 1e9;
  if ((process.env.RANK || '0') === '0') console.log(JSON.stringify({ world, sec, clipsPerSec: (world * n * ${steps}) / sec }));
  m.dispose();
})();`;

function freePort() {
  return new Promise((res) => { const s = net.createServer(); s.listen(0, '127.0.0.1', () => { const p = /** @type {net.AddressInfo} */ (s.address()).port; s.close(() => res(p)); }); });
}

async function run(world) {
  const port = await freePort();
  let out = '';
  const procs = Array.from({ length: world }, (_, r) => spawn(process.execPath, ['-e', worker], {
    env: { ...process.env, MASTER_ADDR: '127.0.0.1', MASTER_PORT: String(port), RANK: String(r), WORLD_SIZE: String(world), LOCAL_RANK: String(r) },
    stdio: ['ignore', 'pipe', 'inherit'],
  }));
  procs[0].stdout.on('data', (d) => (out += d));
  await Promise.all(procs.map((p) => new Promise((r) => p.on('exit', r))));
  return JSON.parse(out.trim());
}

(async () => {
  const one = await run(1);
  const many = await run(ranks);
  const eff = many.clipsPerSec / (ranks * one.clipsPerSec);
  console.log(`1 rank x ${threads} thread(s): ${one.clipsPerSec.toFixed(1)} clips/s`);
  console.log(`${ranks} ranks x ${threads} thread(s): ${many.clipsPerSec.toFixed(1)} clips/s (batch ${batch} per rank)`);
  console.log(`scaling efficiency: ${(100 * eff).toFixed(0)}% (speed-up ${(many.clipsPerSec / one.clipsPerSec).toFixed(2)}x on ${require('os').cpus().length} cores)`);
})();
