#!/usr/bin/env node
// Decode benchmark (issue 13): the same clip windows of the same files decoded
// three ways, side by side in one run:
//   native      lib/data/decode.ts on the addon's libav pool (threads = cores)
//   ffmpeg-cli  lib/data/ffmpeg.ts, groups of 4 clips per ffmpeg process, cores processes at once
//   PyAV        a torch DataLoader (num_workers = cores) running bench/reference/cmac_ref.py's decode_pyav
// Media: the synthetic clips (`cmac synth`) and a realistic set made here with
// ffmpeg (640x360 H.264 25 fps + AAC 44.1 kHz stereo, 10 s, testsrc2 + sine).
// Windows: the loader's train plan (random start, crop, flip, jitter; audio
// window with shift margin) for the tiny and paper clip geometries.
//   node bench/decode.js [--synth N] [--real N] [--clips-per-file K] [--json out.json]
// It also prints the one-thread native rate and the 16-core epoch projection from it.
//   node bench/decode.js --feed [--feed-clips 96]: the tiny step (batch 32, 2 threads) vs the native loader on the same geometry
//   node bench/decode.js --ttfb 200000 [--probe-files 2000]: time to the first batch on a folder of N hard links, cold and with the probe index
// Needs `npm run build` (dist/); PyAV needs /usr/bin/python3 with torch and av (npm run setup -- --python).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.join(__dirname, '..');
const c = require('../dist/internal'); // building blocks (decoders, seeds, fixtures) are cmac/internal
const { PyRef, pythonProblem } = require('./pyref');

/** The value after flag `name`, else `dflt`. @param {string} name @param {string | number} [dflt] @returns {string} */
function arg(name, dflt = '') {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : String(dflt);
}

const cores = os.cpus().length;
const nSynth = Number(arg('--synth', 16));
const nReal = Number(arg('--real', 8));
const perFile = Number(arg('--clips-per-file', 4));
const log = (s) => process.stderr.write(`bench-decode: ${s}\n`);

async function pool(items, n, fn) {
  let next = 0;
  const out = new Array(items.length);
  await Promise.all(
    Array.from({ length: Math.min(n, items.length) }, async () => {
      while (next < items.length) {
        const i = next++;
        out[i] = await fn(items[i], i);
      }
    }),
  );
  return out;
}

function chunks(a, n) {
  const out = [];
  for (let i = 0; i < a.length; i += n) out.push(a.slice(i, i + n));
  return out;
}

/** The loader's train-mode windows for these files (same seed: same windows for every method). */
async function windows(files, preset) {
  const g = { ...c.clipShapes[preset] };
  const jobs = [];
  for (const [fi, file] of files.entries()) {
    const info = await c.probe(file, { decoder: 'ffmpeg-cli' });
    for (let k = 0; k < perFile; k++) {
      const plan = c.planClip(info, g, { mode: 'train', rng: new c.Prng(c.mixSeed(1, 0, fi, k)) });
      const m = plan.shiftMargin;
      const samples = Math.round(g.audioSeconds * g.sampleRate);
      jobs.push({
        file,
        info,
        plan,
        req: {
          start: plan.start,
          frames: g.frames,
          fps: g.fps,
          width: g.size,
          height: g.size,
          crop: plan.crop,
          flip: plan.flip,
          jitter: plan.jitter,
          audio: { start: plan.audioStart - m / g.sampleRate, samples: samples + 2 * m, sampleRate: g.sampleRate },
        },
      });
    }
  }
  return { g, jobs };
}

async function timeIt(fn) {
  const t = process.hrtime.bigint();
  const r = await fn();
  return { r, seconds: Number(process.hrtime.bigint() - t) / 1e9 };
}

async function runNative(jobs) {
  const { r, seconds } = await timeIt(() => pool(chunks(jobs, 16), 2, (b) => c.decodeClips(b, { decoder: 'native', threads: cores })));
  const bad = r.flat().filter((x) => x instanceof c.DataError);
  if (bad.length) throw new Error(`native: ${bad.length} clips failed: ${bad[0].message}`);
  return { clips: jobs.length, seconds, clipsPerSecond: jobs.length / seconds };
}

/** One native thread, one clip at a time in batches of 16: the per-core rate (wall and CPU seconds per clip). */
async function runNative1(jobs) {
  const cpu0 = process.cpuUsage();
  const { r, seconds } = await timeIt(() => pool(chunks(jobs, 16), 1, (b) => c.decodeClips(b, { decoder: 'native', threads: 1 })));
  const cpu = process.cpuUsage(cpu0);
  const bad = r.flat().filter((x) => x instanceof c.DataError);
  if (bad.length) throw new Error(`native (1 thread): ${bad.length} clips failed: ${bad[0].message}`);
  return { clips: jobs.length, seconds, clipsPerSecond: jobs.length / seconds, cpuMsPerClip: (cpu.user + cpu.system) / 1000 / jobs.length };
}

async function runCli(jobs) {
  const { r, seconds } = await timeIt(() => pool(chunks(jobs, 4), cores, (b) => c.decodeClips(b, { decoder: 'ffmpeg-cli' })));
  const bad = r.flat().filter((x) => x instanceof c.DataError);
  if (bad.length) throw new Error(`ffmpeg-cli: ${bad.length} clips failed: ${bad[0].message}`);
  return { clips: jobs.length, seconds, clipsPerSecond: jobs.length / seconds };
}

async function runPy(py, jobs, g) {
  const pj = jobs.map((j) => ({
    file: j.file,
    start: j.req.start,
    audioStart: j.req.audio.start,
    frames: g.frames,
    fps: g.fps,
    size: g.size,
    crop: j.req.crop,
    flip: j.req.flip,
    samples: j.req.audio.samples,
    sampleRate: g.sampleRate,
  }));
  const r = await py.call({ cmd: 'decode', jobs: pj, method: 'pyav', workers: cores, batch: 16 });
  return { clips: r.clips, seconds: r.seconds, clipsPerSecond: r.clipsPerSecond };
}

async function main() {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cmac-bench-decode-'));
  const out = { cores, perFile, versions: c.nativeDecoding(), sets: {} };
  try {
    if (!c.nativeDecoding().available) throw new Error(`native decoding unavailable: ${c.nativeDecoding().reason}`);
    log(`synthetic set: ${nSynth} clips (cmac synth)`);
    const sdir = path.join(work, 'synth');
    const s = spawnSync(
      process.execPath,
      [path.join(root, 'dist', 'cli', 'main.js'), 'synth', '--out', sdir, '--clips', String(nSynth), '--quiet'],
      { encoding: 'utf8' },
    );
    if (s.status !== 0) throw new Error(`cmac synth failed: ${s.stderr}`);
    const synth = [];
    const walk = (d) => {
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        const p = path.join(d, e.name);
        if (e.isDirectory()) walk(p);
        else if (p.endsWith('.mp4')) synth.push(p);
      }
    };
    walk(sdir);
    log(`realistic set: ${nReal} files of 10 s, 640x360 H.264 25 fps + AAC 44.1 kHz stereo`);
    const real = [];
    for (let i = 0; i < nReal; i++) {
      const f = path.join(work, `real-${i}.mp4`);
      await c.runFfmpeg([
        '-f',
        'lavfi',
        '-i',
        `testsrc2=s=640x360:r=25:d=10`,
        '-f',
        'lavfi',
        '-i',
        `sine=f=${300 + 50 * i}:sample_rate=44100:d=10`,
        '-ac',
        '2',
        '-c:v',
        'libx264',
        '-preset',
        'veryfast',
        '-g',
        '50',
        '-pix_fmt',
        'yuv420p',
        '-c:a',
        'aac',
        '-y',
        f,
      ]);
      real.push(f);
    }
    const problem = pythonProblem();
    const py = problem ? null : new PyRef();
    if (problem) log(`PyAV skipped: ${problem}`);
    try {
      for (const [set, files] of [
        ['synthetic', synth],
        ['realistic', real],
      ]) {
        out.sets[set] = {};
        for (const preset of ['tiny', 'paper']) {
          const { g, jobs } = await windows(files, preset);
          log(`${set} ${preset}: ${jobs.length} clips of ${g.frames}x${g.size}x${g.size}`);
          await runNative(jobs.slice(0, 4)); // warm the pool and the page cache
          const row = { clips: jobs.length };
          row.native = await runNative(jobs);
          row.native1 = await runNative1(jobs);
          row.cli = await runCli(jobs);
          if (py) row.pyav = await runPy(py, jobs, g);
          out.sets[set][preset] = row;
          const f = (x) => (x === undefined ? '-' : x.toFixed(1));
          log(
            `  native ${f(row.native.clipsPerSecond)} clips/s, ffmpeg-cli ${f(row.cli.clipsPerSecond)}, PyAV ${f(row.pyav?.clipsPerSecond)}; ` +
              `native/PyAV ${row.pyav ? (row.native.clipsPerSecond / row.pyav.clipsPerSecond).toFixed(2) : '-'}x, native/cli ${(row.native.clipsPerSecond / row.cli.clipsPerSecond).toFixed(2)}x`,
          );
        }
      }
    } finally {
      await py?.close();
    }
    out.rss = process.memoryUsage().rss;
    out.load = os.loadavg();
    // Projection (not a measurement): an epoch of 200,000 clips on 16 cores at the measured one-thread rate,
    // epoch_s = 200000 / (16 * rate1); realistic set = 10 s 640x360 files like the issue's.
    const proj = [];
    for (const [set, rows] of Object.entries(out.sets)) {
      for (const [preset, r] of Object.entries(rows)) {
        const e = 200000 / (16 * r.native1.clipsPerSecond);
        proj.push(
          `${set} ${preset}: 1 thread ${r.native1.clipsPerSecond.toFixed(1)} clips/s (${r.native1.cpuMsPerClip.toFixed(1)} ms CPU per clip) -> projected 200k-clip epoch on 16 cores ${(e / 60).toFixed(1)} min`,
        );
      }
    }
    out.projection = proj;
    log(
      `load average at the end: ${os
        .loadavg()
        .map((x) => x.toFixed(2))
        .join(' ')}`,
    );
    for (const l of proj) log(l);
    const lines = [
      '| set | clips | geometry | native clips/s | ffmpeg-cli clips/s | PyAV DataLoader clips/s | native / PyAV | native / CLI |',
      '|---|---|---|---|---|---|---|---|',
    ];
    for (const [set, rows] of Object.entries(out.sets)) {
      for (const [preset, r] of Object.entries(rows)) {
        const g = c.clipShapes[preset];
        lines.push(
          `| ${set} | ${r.clips} | ${preset} (${g.frames}x${g.size}x${g.size}) | ${r.native.clipsPerSecond.toFixed(1)} | ${r.cli.clipsPerSecond.toFixed(1)} | ${r.pyav ? r.pyav.clipsPerSecond.toFixed(1) : '-'} | ` +
            `${r.pyav ? (r.native.clipsPerSecond / r.pyav.clipsPerSecond).toFixed(2) + 'x' : '-'} | ${(r.native.clipsPerSecond / r.cli.clipsPerSecond).toFixed(2)}x |`,
        );
      }
    }
    console.log(lines.join('\n'));
    const jsonOut = arg('--json');
    if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(out, null, 2));
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

// ---- time to first batch on a large folder (--ttfb N): N hard links to 4 small real videos
// (1000 per subfolder), the loader (tiny clip, batch 32, native, train) from a fresh process,
// cold (new probe index) and again with the probe index the cold run wrote; then the native
// probe rate over the first --probe-files files (filling the index) and the index's load time.
async function ttfbChild() {
  const [folder, ix, probeFiles] = [arg('--folder'), arg('--index'), Number(arg('--probe-files', 0))];
  const t0 = process.hrtime.bigint();
  const ms = () => Number(process.hrtime.bigint() - t0) / 1e6;
  const src = c.folderSource(folder);
  const refs = await src.list();
  const listMs = ms();
  const loader = new c.ClipLoader({
    source: src,
    batchSize: 32,
    clip: 'tiny',
    mode: 'train',
    seed: 1,
    decoder: 'native',
    decoders: cores,
    probeIndex: ix,
  });
  let first = 0;
  for await (const b of loader.epoch()) {
    first = ms();
    if (b.meta.length !== 32) throw new Error('short first batch');
    break;
  }
  const res = { files: refs.length, listMs, firstBatchMs: first };
  if (probeFiles > 0) {
    const files = refs.slice(0, probeFiles).map((r) => r.path);
    const { seconds } = await timeIt(() => pool(files, cores, (f) => c.probe(f, { decoder: 'native', threads: cores, probeIndex: ix })));
    res.probed = files.length;
    res.probeMsPerFile = (seconds * 1000) / files.length;
    const { seconds: ls } = await timeIt(async () => new c.ProbeIndex(ix).size); // a fresh read of the file (the module keeps its own copy)
    res.indexLines = new c.ProbeIndex(ix).size;
    res.indexLoadMs = ls * 1000;
  }
  res.load = os.loadavg();
  console.log(JSON.stringify(res));
  process.exit(0);
}

async function ttfb(n) {
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cmac-bench-ttfb-'));
  try {
    const vids = [0, 1, 2, 3].map((i) => path.join(work, `src-${i}.mp4`));
    await c.writeTestVideos(
      vids.map((out, i) => ({ out, seconds: 3, fps: 16, width: 96, height: 96, colour: () => [60 * i, 120, 200], tone: 400 + 100 * i })),
    );
    const folder = path.join(work, 'folder');
    const t = process.hrtime.bigint();
    for (let i = 0; i < n; i++) {
      const d = path.join(folder, String(Math.floor(i / 1000)).padStart(4, '0'));
      if (i % 1000 === 0) fs.mkdirSync(d, { recursive: true });
      fs.linkSync(vids[i % vids.length], path.join(d, `${String(i).padStart(7, '0')}.mp4`));
    }
    log(`${n} hard links in ${(Number(process.hrtime.bigint() - t) / 1e9).toFixed(1)} s`);
    const ix = path.join(work, 'probe-index.jsonl');
    const child = (extra) => {
      const r = spawnSync(process.execPath, [__filename, '--ttfb-child', '--folder', folder, '--index', ix, ...extra], {
        encoding: 'utf8',
        maxBuffer: 1 << 24,
      });
      if (r.status !== 0) throw new Error(`ttfb child failed: ${r.stderr}`);
      return JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
    };
    const cold = child(['--probe-files', arg('--probe-files', '2000')]);
    log(`cold: ${JSON.stringify(cold)}`);
    const warm = child([]);
    log(`with the probe index: ${JSON.stringify(warm)}`);
    console.log(JSON.stringify({ files: n, cold, warm }, null, 2));
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

// ---- does native decoding feed the tiny step? (--feed [--feed-clips N]): the tiny step at batch 32
// on 2 threads (median of 5 after 2 warm-up steps), then the loader (native, tiny, train, batch 32,
// 2 decoders) over N synthetic clips (epoch 1: probing included; epoch 2), back to back in one process.
async function feed() {
  const U = require('./util');
  const n = Number(arg('--feed-clips', 96));
  const work = fs.mkdtempSync(path.join(os.tmpdir(), 'cmac-bench-feed-'));
  try {
    c.setNumThreads(2);
    const g = c.clipShapes.tiny;
    const model = await c.CmacModel.create({ ...c.modelPreset('tiny'), seed: 1 });
    const b = U.makeBatch(32, g.frames, g.size, Math.round(g.audioSeconds * g.sampleRate), 7);
    const times = [];
    const load0 = os.loadavg()[0];
    for (let i = 0; i < 7; i++) {
      const t = process.hrtime.bigint();
      await model.trainStep(b, { lr: 1e-3, lambdaScale: 1 });
      if (i >= 2) times.push(Number(process.hrtime.bigint() - t) / 1e6);
    }
    model.dispose();
    times.sort((x, y) => x - y);
    const stepMs = times[Math.floor(times.length / 2)];
    const consumes = 32 / (stepMs / 1000);
    log(
      `tiny step, batch 32, 2 threads: median ${stepMs.toFixed(1)} ms (${times.map((x) => x.toFixed(0)).join(' ')}) = ${consumes.toFixed(1)} clips/s; load ${load0.toFixed(2)} -> ${os.loadavg()[0].toFixed(2)}`,
    );
    const sdir = path.join(work, 'synth');
    const s = spawnSync(
      process.execPath,
      [path.join(root, 'dist', 'cli', 'main.js'), 'synth', '--out', sdir, '--clips', String(n), '--quiet'],
      { encoding: 'utf8' },
    );
    if (s.status !== 0) throw new Error(`cmac synth failed: ${s.stderr}`);
    const load1 = os.loadavg()[0];
    const loader = new c.ClipLoader({
      source: c.folderSource(sdir),
      batchSize: 32,
      clip: 'tiny',
      mode: 'train',
      seed: 1,
      decoder: 'native',
      decoders: 2,
    });
    const rates = [];
    for (let e = 0; e < 2; e++) {
      let clips = 0;
      const t = process.hrtime.bigint();
      for await (const batch of loader.epoch()) clips += batch.meta.length;
      rates.push(clips / (Number(process.hrtime.bigint() - t) / 1e9));
    }
    log(
      `loader, native, tiny, batch 32, 2 decoders, ${n} synthetic clips: epoch 1 ${rates[0].toFixed(1)} / epoch 2 ${rates[1].toFixed(1)} clips/s; load ${load1.toFixed(2)} -> ${os.loadavg()[0].toFixed(2)}`,
    );
    console.log(
      JSON.stringify({
        stepMs,
        steps: times,
        consumes,
        loader: rates,
        ratio: rates.map((r) => r / consumes),
        load: [load0, load1, os.loadavg()[0]],
      }),
    );
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

if (process.argv.includes('--feed'))
  feed().catch((e) => {
    process.stderr.write(`bench-decode: ${e.stack || e}\n`);
    process.exit(1);
  });
else if (process.argv.includes('--ttfb-child'))
  ttfbChild().catch((e) => {
    process.stderr.write(`${e.stack || e}\n`);
    process.exit(1);
  });
else if (process.argv.includes('--ttfb'))
  ttfb(Number(arg('--ttfb'))).catch((e) => {
    process.stderr.write(`bench-decode: ${e.stack || e}\n`);
    process.exit(1);
  });
else
  main().catch((e) => {
    process.stderr.write(`bench-decode: ${e.stack || e}\n`);
    process.exit(1);
  });
