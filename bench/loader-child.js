#!/usr/bin/env node
// One loader measurement in a fresh Node process (run by bench/run.js, section "data"):
//   node bench/loader-child.js '{"dir":"...","preset":"tiny","epochs":2,"trainCache":null}'
// A fresh process, because spawning ffmpeg costs more from a process that already holds
// a model and its memory (fork copies the page tables): the bench driver measures that
// separately. Prints one JSON line: per-epoch clips/s and the clips of the second epoch.
'use strict';
const { spawnSync } = require('child_process');
const { median, nowMs, procMem } = require('./util');

async function main() {
  const o = JSON.parse(process.argv[2]);
  const c = require('../dist/internal');
  const spawnMs = [];
  for (let i = 0; i < 5; i++) {
    const t = nowMs();
    spawnSync(c.ffmpegBin(), [
      '-hide_banner',
      '-loglevel',
      'error',
      '-f',
      'lavfi',
      '-i',
      'nullsrc=s=16x16:d=0.04',
      '-frames:v',
      '1',
      '-f',
      'null',
      '-',
    ]);
    spawnMs.push(nowMs() - t);
  }
  /** @type {import('../dist/data').LoaderOptions} */
  const opts = {
    source: c.synthSource(o.dir),
    batchSize: o.batchSize ?? 16,
    clip: o.preset,
    seed: 1,
    decoders: o.decoders ?? 2,
    epochs: o.epochs,
    mode: 'train',
  };
  if (o.trainCache) opts.trainCache = { dir: o.trainCache };
  const loader = c.createLoader(opts);
  const metas = [];
  let clips = 0;
  for await (const b of loader) {
    clips += b.meta.length;
    if (o.keepEpoch !== undefined) {
      for (const m of b.meta) {
        if (m.epoch === o.keepEpoch)
          metas.push({
            index: m.index,
            start: m.start,
            audioStart: m.audioStart,
            crop: m.augment?.crop ?? null,
            flip: m.augment?.flip ?? false,
          });
      }
    }
  }
  await loader.close();
  const epochs = loader.stats.epochs.map((e) => ({
    epoch: e.epoch,
    clips: e.clips,
    seconds: e.seconds,
    clipsPerSecond: e.clips / e.seconds,
  }));
  process.stdout.write(
    JSON.stringify({ clips, epochs, decodes: loader.stats.decodes, metas, ffmpegStartMs: median(spawnMs), rss: procMem().rss }) + '\n',
  );
}

main().catch((e) => {
  process.stderr.write(`${e.stack || e}\n`);
  process.exit(1);
});
