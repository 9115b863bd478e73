#!/usr/bin/env node
// Throughput of the data pipeline on this machine: synthetic clips written per
// second (`cmac synth` defaults: 112 px, 4 s, 16 fps), then loader clips per
// second for the tiny and paper clip shapes (train mode with augmentation,
// 2 decoders). Usage: node bench/loader.js [clips=200] [decoders=2]
// Needs a TypeScript build: npm run build:ts (dist/) or npm run build:test.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');

/** @returns {typeof import('../dist/data')} */
function load() {
  const missing = (/** @type {any} */ e) => e && e.code === 'MODULE_NOT_FOUND';
  try {
    return require('../dist/data/index.js');
  } catch (e) {
    if (!missing(e)) throw e;
  }
  try {
    return require(path.join(__dirname, '../.test-build/lib/data/index.js'));
  } catch (e) {
    if (!missing(e)) throw e;
  }
  throw new Error('build first: npm run build:ts (or npm run build:test)');
}

async function main() {
  const data = load();
  const clips = Number(process.argv[2] || 200);
  const decoders = Number(process.argv[3] || 2);
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cmac-bench-'));
  const result = { cpus: os.cpus().length, loadavg: os.loadavg().map((x) => +x.toFixed(2)), clips, decoders };
  try {
    const r = await data.synthesize({ out: dir, clips, seed: 1 });
    result.synthClipsPerSecond = +r.clipsPerSecond.toFixed(1);
    for (const preset of /** @type {const} */ (['tiny', 'paper'])) {
      const loader = new data.ClipLoader({ source: data.synthSource(dir), batchSize: 16, clip: preset, seed: 1, decoders, epochs: 2 });
      const t = [Date.now()];
      let n = 0;
      let epoch = 0;
      for await (const b of loader) {
        n += b.meta.length;
        if (b.meta[0].epoch !== epoch) {
          epoch = b.meta[0].epoch;
        }
      }
      const e = loader.stats.epochs;
      result[preset] = {
        firstEpochClipsPerSecond: +(e[0].clips / e[0].seconds).toFixed(1),
        secondEpochClipsPerSecond: +(e[1].clips / e[1].seconds).toFixed(1),
        clips: n,
        seconds: +((Date.now() - t[0]) / 1000).toFixed(1),
      };
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  process.stdout.write(JSON.stringify(result) + '\n');
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
