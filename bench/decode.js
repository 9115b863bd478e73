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
// Needs `npm run build` (dist/); PyAV needs /usr/bin/python3 with torch and av (npm run setup -- --python).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.join(__dirname, '..');
const c = require(path.join(root, 'dist'));
const { PyRef, pythonProblem } = require('./pyref');

function arg(name, dflt) {
  const i = process.argv.indexOf(name);
  return i > 0 ? process.argv[i + 1] : dflt;
}

const cores = os.cpus().length;
const nSynth = Number(arg('--synth', 16));
const nReal = Number(arg('--real', 8));
const perFile = Number(arg('--clips-per-file', 4));
const log = (s) => process.stderr.write(`bench-decode: ${s}\n`);

async function pool(items, n, fn) {
  let next = 0;
  const out = new Array(items.length);
  await Promise.all(Array.from({ length: Math.min(n, items.length) }, async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i], i);
    }
  }));
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
        file, info, plan,
        req: {
          start: plan.start, frames: g.frames, fps: g.fps, width: g.size, height: g.size, crop: plan.crop, flip: plan.flip, jitter: plan.jitter,
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

async function runCli(jobs) {
  const { r, seconds } = await timeIt(() => pool(chunks(jobs, 4), cores, (b) => c.decodeClips(b, { decoder: 'ffmpeg-cli' })));
  const bad = r.flat().filter((x) => x instanceof c.DataError);
  if (bad.length) throw new Error(`ffmpeg-cli: ${bad.length} clips failed: ${bad[0].message}`);
  return { clips: jobs.length, seconds, clipsPerSecond: jobs.length / seconds };
}

async function runPy(py, jobs, g) {
  const pj = jobs.map((j) => ({
    file: j.file, start: j.req.start, audioStart: j.req.audio.start, frames: g.frames, fps: g.fps, size: g.size,
    crop: j.req.crop, flip: j.req.flip, samples: j.req.audio.samples, sampleRate: g.sampleRate,
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
    const s = spawnSync(process.execPath, [path.join(root, 'dist', 'cli', 'main.js'), 'synth', '--out', sdir, '--clips', String(nSynth), '--quiet'], { encoding: 'utf8' });
    if (s.status !== 0) throw new Error(`cmac synth failed: ${s.stderr}`);
    const synth = [];
    const walk = (d) => { for (const e of fs.readdirSync(d, { withFileTypes: true })) { const p = path.join(d, e.name); if (e.isDirectory()) walk(p); else if (p.endsWith('.mp4')) synth.push(p); } };
    walk(sdir);
    log(`realistic set: ${nReal} files of 10 s, 640x360 H.264 25 fps + AAC 44.1 kHz stereo`);
    const real = [];
    for (let i = 0; i < nReal; i++) {
      const f = path.join(work, `real-${i}.mp4`);
      await c.runFfmpeg(['-f', 'lavfi', '-i', `testsrc2=s=640x360:r=25:d=10`, '-f', 'lavfi', '-i', `sine=f=${300 + 50 * i}:sample_rate=44100:d=10`, '-ac', '2',
        '-c:v', 'libx264', '-preset', 'veryfast', '-g', '50', '-pix_fmt', 'yuv420p', '-c:a', 'aac', '-y', f]);
      real.push(f);
    }
    const problem = pythonProblem();
    const py = problem ? null : new PyRef();
    if (problem) log(`PyAV skipped: ${problem}`);
    try {
      for (const [set, files] of [['synthetic', synth], ['realistic', real]]) {
        out.sets[set] = {};
        for (const preset of ['tiny', 'paper']) {
          const { g, jobs } = await windows(files, preset);
          log(`${set} ${preset}: ${jobs.length} clips of ${g.frames}x${g.size}x${g.size}`);
          await runNative(jobs.slice(0, 4));  // warm the pool and the page cache
          const row = { clips: jobs.length };
          row.native = await runNative(jobs);
          row.cli = await runCli(jobs);
          if (py) row.pyav = await runPy(py, jobs, g);
          out.sets[set][preset] = row;
          const f = (x) => (x === undefined ? '-' : x.toFixed(1));
          log(`  native ${f(row.native.clipsPerSecond)} clips/s, ffmpeg-cli ${f(row.cli.clipsPerSecond)}, PyAV ${f(row.pyav?.clipsPerSecond)}; ` +
            `native/PyAV ${row.pyav ? (row.native.clipsPerSecond / row.pyav.clipsPerSecond).toFixed(2) : '-'}x, native/cli ${(row.native.clipsPerSecond / row.cli.clipsPerSecond).toFixed(2)}x`);
        }
      }
    } finally {
      await py?.close();
    }
    out.rss = process.memoryUsage().rss;
    const lines = ['| set | clips | geometry | native clips/s | ffmpeg-cli clips/s | PyAV DataLoader clips/s | native / PyAV | native / CLI |', '|---|---|---|---|---|---|---|---|'];
    for (const [set, rows] of Object.entries(out.sets)) {
      for (const [preset, r] of Object.entries(rows)) {
        const g = c.clipShapes[preset];
        lines.push(`| ${set} | ${r.clips} | ${preset} (${g.frames}x${g.size}x${g.size}) | ${r.native.clipsPerSecond.toFixed(1)} | ${r.cli.clipsPerSecond.toFixed(1)} | ${r.pyav ? r.pyav.clipsPerSecond.toFixed(1) : '-'} | ` +
          `${r.pyav ? (r.native.clipsPerSecond / r.pyav.clipsPerSecond).toFixed(2) + 'x' : '-'} | ${(r.native.clipsPerSecond / r.cli.clipsPerSecond).toFixed(2)}x |`);
      }
    }
    console.log(lines.join('\n'));
    const jsonOut = arg('--json');
    if (jsonOut) fs.writeFileSync(jsonOut, JSON.stringify(out, null, 2));
  } finally {
    fs.rmSync(work, { recursive: true, force: true });
  }
}

main().catch((e) => {
  process.stderr.write(`bench-decode: ${e.stack || e}\n`);
  process.exit(1);
});
