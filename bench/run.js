#!/usr/bin/env node
// `npm run bench`: cmac against what a PyTorch user would run, on this machine.
// Sections (docs/benchmarks.md explains each):
//   check      same weights + same inputs in cmac and the PyTorch reference: losses, grad norm, one Adam step
//   step       training step time, cmac (driven from JS) vs PyTorch, tiny and paper presets, 1 and 2 threads
//   boundary   cost of crossing JS <-> native: trivial call, async round trip, per-step overhead
//   inference  embed throughput of both encoders, tiny and paper
//   flops      model FLOPs (hook counter in the reference) and torch.mm GFLOP/s of this CPU
//   data       loader clips/s vs PyAV and torchvision.io.read_video in a torch DataLoader
//   memory     peak RSS of a short tiny run; RSS after 1k vs 10k embed calls
// Usage: npm run bench [-- --quick] [-- --only step,data] [-- --threads 1,2]
// Writes bench/results.json and docs/benchmarks.md (--quick: bench/results.quick.{json,md}).
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const U = require('./util');
const { PyRef, pythonProblem, runPyJson, PYTHON, SCRIPT } = require('./pyref');
const report = require('./report');

const SECTIONS = ['check', 'step', 'boundary', 'inference', 'flops', 'data', 'memory'];
const PY_SECTIONS = new Set(['check', 'step', 'inference', 'flops', 'data']);

class UsageError extends Error {}

function parseArgs(argv) {
  /** @type {{ quick: boolean, only: string[] | null, threads: number[] | null, out: string | null, md: string | null, help: boolean, ompPassive?: boolean }} */
  const o = { quick: false, only: null, threads: null, out: null, md: null, help: false };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (a.includes('=')) return a.slice(a.indexOf('=') + 1);
      if (i + 1 >= argv.length) throw new UsageError(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--quick') o.quick = true;
    else if (a.startsWith('--only'))
      o.only = val()
        .split(',')
        .map((s) => s.trim())
        .filter(Boolean);
    else if (a.startsWith('--threads')) o.threads = val().split(',').map(Number);
    else if (a.startsWith('--out')) o.out = val();
    else if (a.startsWith('--md')) o.md = val();
    else if (a === '--omp-passive') o.ompPassive = true;
    else if (a === '-h' || a === '--help') o.help = true;
    else throw new UsageError(`unknown option ${a} (see --help)`);
  }
  if (o.only)
    for (const s of o.only)
      if (!SECTIONS.includes(s)) throw new UsageError(`--only: unknown section '${s}'; sections: ${SECTIONS.join(', ')}`);
  if (o.threads && o.threads.some((t) => !(Number.isInteger(t) && t >= 1)))
    throw new UsageError('--threads takes positive integers, e.g. 1,2');
  return o;
}

const HELP = `npm run bench [-- options]
  --quick           fast subset (tiny shapes, fewer repetitions); writes bench/results.quick.{json,md}
  --only a,b        run only these sections: ${SECTIONS.join(', ')}
                    (other sections are kept from the existing results file)
  --threads 1,2     thread counts of the step rows (default 1,2)
  --out FILE        results JSON (default bench/results.json)
  --md FILE         markdown report (default docs/benchmarks.md)
  --omp-passive     OMP_WAIT_POLICY=PASSIVE on both sides (for a machine shared with other jobs,
                    where spinning OpenMP threads distort multi-thread rows); default: unset, as users run
Needs: the addon and dist/ built and /usr/bin/python3 with torch, torchvision, torchaudio, av
(npm run setup -- --python does all of it), and ffmpeg. CMAC_BENCH_PYTHON=path picks another Python.`;

/** dist/ must exist; warn when lib/ is newer (another engineer may be editing it). */
function loadCmac() {
  const dist = path.join(U.root, 'dist', 'index.js');
  if (!fs.existsSync(dist)) {
    U.log('dist/ missing: running npm run build:ts');
    const r = spawnSync('npm', ['run', 'build:ts'], { cwd: U.root, stdio: 'inherit' });
    if (r.status !== 0) throw new Error('npm run build:ts failed; build cmac first (npm run setup, or npm run build:all)');
  } else {
    const newest = (dir) => {
      let t = 0;
      for (const e of fs.readdirSync(dir, { withFileTypes: true })) {
        const p = path.join(dir, e.name);
        t = Math.max(t, e.isDirectory() ? newest(p) : fs.statSync(p).mtimeMs);
      }
      return t;
    };
    if (newest(path.join(U.root, 'lib')) > fs.statSync(dist).mtimeMs)
      U.log('warning: lib/ is newer than dist/; results are for the built dist/ (npm run build:ts to refresh)');
  }
  process.env.OPENBLAS_NUM_THREADS = '1'; // cmac forces it too (lib/native.ts); the reference gets the same
  return require('../dist/internal');
}

/**
 * Facts about the engine's source that the analysis relies on, read at run time so
 * the report never describes code that has since changed.
 */
function sourceFacts() {
  const read = (rel) => {
    try {
      return fs.readFileSync(path.join(U.root, rel), 'utf8');
    } catch {
      return '';
    }
  };
  // Code only: comments may name the old formulas (e.g. "faster than view_as_real(..)...").
  const code = (rel) =>
    read(rel)
      .replace(/\/\*[\s\S]*?\*\//g, '')
      .replace(/\/\/[^\n]*/g, '');
  const logmel = code('native/core/logmel.cpp');
  const enc = code('native/core/r2plus1d.cpp') + code('native/core/audio_resnet.cpp');
  const bridge = read('native/addon/bridge.h') + read('native/addon/bridge.cc');
  return {
    logmelViewAsRealSum: /view_as_real\([^)]*\)\.pow\(2\)\.sum\(-1\)/.test(logmel),
    encodersReluOutOfPlace: /torch::relu\(/.test(enc), // the residual blocks' ReLUs
    // Model calls on libuv's pool (AsyncWorker) rather than a native thread per model (runner.h, issue 18).
    addonAsyncWorker: /Napi::AsyncWorker/.test(bridge) && !/class Runner\b/.test(read('native/addon/runner.h')),
  };
}

/** Runs bench/memory-child.js in a fresh Node process; returns its JSON line. */
function runChild(args, env = {}) {
  const r = spawnSync(process.execPath, ['--expose-gc', path.join(__dirname, 'memory-child.js'), ...args], {
    encoding: 'utf8',
    timeout: 900000,
    env: { ...process.env, OPENBLAS_NUM_THREADS: '1', ...env },
  });
  if (r.status !== 0) throw new Error(`memory-child ${args[0]} failed (${r.status ?? r.signal}): ${(r.stderr || '').slice(-2000)}`);
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
}

class Bench {
  constructor(opts) {
    this.o = opts;
    this.quick = opts.quick;
    this.threads = opts.threads ?? [1, 2];
    this.tmp = fs.mkdtempSync(path.join(fs.existsSync('/dev/shm') ? '/dev/shm' : os.tmpdir(), 'cmac-bench-'));
    this.cmac = loadCmac();
    this.py = null;
    this.pyProblem = undefined;
    this.t0 = U.nowMs();
    // Past this, rows stop at their minimum repetitions (a machine shared with other jobs
    // can make PyTorch's multi-thread steps very slow; the run must still end in time).
    this.softDeadlineS = opts.quick ? 6 * 60 : 11 * 60;
  }

  late() {
    return (U.nowMs() - this.t0) / 1000 > this.softDeadlineS;
  }

  file(name) {
    return path.join(this.tmp, name);
  }

  async reference() {
    if (this.pyProblem === undefined) this.pyProblem = pythonProblem();
    if (this.pyProblem) throw new Error(this.pyProblem);
    if (!this.py) {
      this.py = new PyRef();
      this.pyInfo = await this.py.call({ cmd: 'hello' });
    }
    return this.py;
  }

  async close() {
    if (this.py) await this.py.close();
    fs.rmSync(this.tmp, { recursive: true, force: true });
  }

  clip(preset) {
    const s = this.cmac.clipShapes[preset];
    return { frames: s.frames, size: s.size, samples: Math.round(s.audioSeconds * s.sampleRate), fps: s.fps, sampleRate: s.sampleRate };
  }

  /** A cmac model, its weights saved for the reference, and a batch written for it. */
  async pair(preset, batch, name, seed = 1) {
    const c = this.cmac;
    const cfg = c.modelPreset(preset);
    const model = await c.CmacModel.create({ ...cfg, seed });
    const weights = this.file(`${name}-w0.safetensors`);
    await model.save(weights);
    const g = this.clip(preset);
    const b = U.makeBatch(batch, g.frames, g.size, g.samples, 1234 + batch);
    const inputs = this.file(`${name}-inputs.safetensors`);
    await c.writeSafetensors(inputs, { video: b.video, audio: b.audio });
    return { cfg, model, weights, inputs, batch: b };
  }

  /** Removes a pair's files once both sides have loaded them (paper weights are ~170 MB, in /dev/shm). */
  drop(p) {
    fs.rmSync(p.weights, { force: true });
    fs.rmSync(p.inputs, { force: true });
  }

  setThreads(n) {
    this.cmac.setNumThreads(n);
    return this.py ? this.py.call({ cmd: 'threads', n }) : null;
  }

  // ------------------------------------------------------------------ check
  async check() {
    const py = await this.reference();
    const out = {
      tolerance: 1e-5,
      afterStepTolerance: 1e-4,
      threads: 1,
      cases: /** @type {any[]} */ ([]),
      torchvisionLayout: await py.call({ cmd: 'selfcheck' }),
    };
    await this.setThreads(1);
    const cases = this.quick
      ? [['tiny', 8]]
      : [
          ['tiny', 8],
          ['paper', 2],
        ];
    for (const [preset, n] of cases) {
      U.log(`check ${preset} batch ${n}`);
      const p = await this.pair(preset, n, `check-${preset}`);
      const lr = preset === 'tiny' ? 1e-3 : 2e-4;
      const ev0 = await p.model.evaluateLoss(p.batch, 1);
      const st = await p.model.trainStep(p.batch, { lr, lambdaScale: 1 });
      const w1 = this.file(`check-${preset}-w1.safetensors`);
      await p.model.save(w1);
      const ev1 = await p.model.evaluateLoss(p.batch, 1);
      p.model.dispose();
      await py.call({ cmd: 'create', name: 'check', config: p.cfg, weights: p.weights });
      await py.call({ cmd: 'load_inputs', path: p.inputs });
      const pev0 = await py.call({ cmd: 'eval_loss', name: 'check', lambdaScale: 1 });
      const pst = await py.call({ cmd: 'step', name: 'check', lr, lambdaScale: 1 });
      const state = await py.call({ cmd: 'state', name: 'check', path: w1, before: p.weights, lr });
      const pev1 = await py.call({ cmd: 'eval_loss', name: 'check', lambdaScale: 1 });
      await py.call({ cmd: 'drop', name: 'check' });
      this.drop(p);
      fs.rmSync(w1, { force: true });
      // error = |diff| / max(1, |value|): relative for values above 1, absolute below
      const cmp = (what, a, b, tol = out.tolerance) => {
        const abs = Math.abs(a - b);
        const err = abs / Math.max(1, Math.abs(a));
        return { what, cmac: a, python: b, absDiff: abs, relDiff: abs / Math.max(Math.abs(a), 1e-30), err, pass: err <= tol };
      };
      const rows = [];
      for (const k of ['loss', 'lossCon', 'lossV', 'lossA']) rows.push(cmp(`eval ${k} (initial weights, eval-mode BN)`, ev0[k], pev0[k]));
      for (const k of ['loss', 'lossCon', 'lossV', 'lossA']) rows.push(cmp(`train-step ${k} (train-mode BN)`, st[k], pst[k]));
      rows.push({ ...cmp('train-step grad norm', st.gradNorm, pst.gradNorm, 1e-4), informational: true });
      for (const k of ['loss', 'lossCon', 'lossV', 'lossA']) rows.push(cmp(`eval ${k} after one Adam step`, ev1[k], pev1[k]));
      const pre = rows.filter((r) => !r.informational && !/after one Adam step/.test(r.what));
      const post = rows.filter((r) => /after one Adam step/.test(r.what));
      // The optimiser: torch.optim.Adam on cmac's w0 and cmac's own gradient reproduces cmac's w1
      // to float rounding (at most a few ulps of each weight). Losses after the step are compared too, but Adam's
      // first step is lr * g / |g| per element, so gradient rounding differences (~1e-6) on
      // near-zero elements become whole-lr differences there: those rows get a looser bound.
      const adam = state.maxAbsDiff.adamRule;
      const adamPass = adam ? adam.maxUlps <= 8 : true; // a few roundings in the update and in recovering g from exp_avg
      out.cases.push({
        preset,
        batch: n,
        lr,
        rows,
        stateAfterStep: state.maxAbsDiff,
        pass: pre.every((r) => r.pass) && adamPass,
        adamRulePass: adamPass,
        afterStepPass: post.every((r) => r.err <= out.afterStepTolerance),
        maxErr: Math.max(...pre.map((r) => r.err)),
        maxErrAfterStep: Math.max(...post.map((r) => r.err)),
      });
      const c = out.cases[out.cases.length - 1];
      U.log(
        `check ${preset}: ${c.pass ? 'PASS' : 'FAIL'} (loss error ${c.maxErr.toExponential(2)} before the step; Adam rule ${adam ? `${adam.value.toExponential(2)} = ${adam.maxUlps.toFixed(1)} ulp` : 'n/a'}; ` +
          `losses after one Adam step ${c.maxErrAfterStep.toExponential(2)}, ${c.afterStepPass ? 'within' : 'OUTSIDE'} ${out.afterStepTolerance})`,
      );
    }
    out.pass = out.cases.every((c) => c.pass);
    return out;
  }

  // ------------------------------------------------------------------- step
  stepSpecs() {
    // budgetS: stop adding timed repetitions (beyond minReps) once a row has run this long,
    // so a machine shared with other jobs cannot stretch the run past its time budget.
    return this.quick
      ? [
          { preset: 'tiny', batch: 32, warmup: 1, reps: 3, minReps: 2, budgetS: 40 },
          { preset: 'paper', batch: 2, warmup: 1, reps: 1, minReps: 1, budgetS: 60 },
        ]
      : [
          { preset: 'tiny', batch: 32, warmup: 2, reps: 7, minReps: 3, budgetS: 90 },
          { preset: 'paper', batch: 8, warmup: 1, reps: 3, minReps: 1, budgetS: 100 },
        ];
  }

  async step() {
    const py = await this.reference();
    const rows = [];
    const profiles = [];
    let allocator = null;
    let variants = null;
    for (const spec of this.stepSpecs()) {
      const p = await this.pair(spec.preset, spec.batch, `step-${spec.preset}`);
      const lr = spec.preset === 'tiny' ? 1e-3 : 2e-4;
      await py.call({ cmd: 'create', name: 'step', config: p.cfg, weights: p.weights });
      await py.call({ cmd: 'load_inputs', path: p.inputs });
      this.drop(p);
      for (const threads of spec.threads ?? this.threads) {
        await this.setThreads(threads);
        U.log(
          `step ${spec.preset} batch ${spec.batch} threads ${threads}: ${spec.warmup} warm-up + ${spec.reps} timed steps each side, alternating`,
        );
        /** @type {{ wallMs: number[], nativeMs: number[], cpuMs: number[], minorFaults: number[], loss: number[], finite: boolean[] }} */
        const cm = { wallMs: [], nativeMs: [], cpuMs: [], minorFaults: [], loss: [], finite: [] };
        /** @type {{ ms: number[], cpuMs: number[], minorFaults: number[], loss: number[] }} */
        const pm = { ms: [], cpuMs: [], minorFaults: [], loss: [] };
        const cmacStep = async (keep) => {
          const f0 = process.resourceUsage().minorPageFault;
          const c0 = process.cpuUsage();
          const t = U.nowMs();
          const r = await p.model.trainStep(p.batch, { lr, lambdaScale: 1 });
          const wall = U.nowMs() - t;
          const cpu = process.cpuUsage(c0);
          if (keep) {
            cm.wallMs.push(wall);
            cm.nativeMs.push(r.timeMs);
            cm.cpuMs.push((cpu.user + cpu.system) / 1000);
            cm.minorFaults.push(process.resourceUsage().minorPageFault - f0);
            cm.loss.push(r.loss);
            cm.finite.push(r.finite);
          }
        };
        const pyStep = async (keep) => {
          const r = await py.call({ cmd: 'step', name: 'step', lr, lambdaScale: 1 });
          if (keep) {
            pm.ms.push(r.seconds * 1000);
            pm.cpuMs.push(r.cpuSeconds * 1000);
            pm.minorFaults.push(r.minorFaults);
            pm.loss.push(r.loss);
          }
        };
        for (let i = 0; i < spec.warmup; i++) {
          await cmacStep(false);
          await pyStep(false);
        }
        const tRows = U.nowMs();
        for (let i = 0; i < spec.reps; i++) {
          if (i >= spec.minReps && ((U.nowMs() - tRows) / 1000 > spec.budgetS || this.late())) {
            U.log(`  ${this.late() ? 'run time budget' : `row time budget of ${spec.budgetS} s`} reached after ${i} timed steps each`);
            break;
          }
          // ABBA order: neither side always runs right after the other
          if (i % 2 === 0) {
            await cmacStep(true);
            await pyStep(true);
          } else {
            await pyStep(true);
            await cmacStep(true);
          }
        }
        const row = {
          preset: spec.preset,
          batch: spec.batch,
          threads,
          warmup: spec.warmup,
          reps: cm.wallMs.length,
          repsPlanned: spec.reps,
          cmac: {
            ...cm,
            medianWallMs: U.median(cm.wallMs),
            medianNativeMs: U.median(cm.nativeMs),
            medianCpuMs: U.median(cm.cpuMs),
            medianMinorFaults: U.median(cm.minorFaults),
            spread: U.relSpread(cm.wallMs),
            allFinite: cm.finite.every(Boolean),
          },
          python: {
            ...pm,
            medianMs: U.median(pm.ms),
            medianCpuMs: U.median(pm.cpuMs),
            medianMinorFaults: U.median(pm.minorFaults),
            spread: U.relSpread(pm.ms),
          },
          loadavg: os.loadavg(),
        };
        row.ratio = row.cmac.medianWallMs / row.python.medianMs;
        row.cpuRatio = row.cmac.medianCpuMs / row.python.medianCpuMs;
        row.ratioNative = row.cmac.medianNativeMs / row.python.medianMs;
        row.overheadMs = U.median(cm.wallMs.map((w, i) => w - cm.nativeMs[i]));
        row.overheadMinMs = Math.min(...cm.wallMs.map((w, i) => w - cm.nativeMs[i]));
        rows.push(row);
        U.log(
          `  cmac ${row.cmac.medianWallMs.toFixed(1)} ms (native ${row.cmac.medianNativeMs.toFixed(1)}, cpu ${row.cmac.medianCpuMs.toFixed(0)}), ` +
            `python ${row.python.medianMs.toFixed(1)} ms (cpu ${row.python.medianCpuMs.toFixed(0)}), ratio ${row.ratio.toFixed(3)}`,
        );
      }
      // Where the reference spends a step, for the analysis (one extra step each).
      const target = report.TARGETS.step[spec.preset];
      const worst = Math.max(...rows.filter((r) => r.preset === spec.preset).map((r) => r.ratio));
      if ((!this.quick || spec.preset === 'tiny') && !this.late()) {
        const threads = 1; // the kernel mix; multi-thread profiles on a shared machine mostly show waiting
        await this.setThreads(threads);
        const split = await py.call({ cmd: 'step_split', name: 'step' });
        const prof = worst > target || spec.preset === 'tiny' ? await py.call({ cmd: 'profile', name: 'step', top: 12 }) : null;
        profiles.push({ preset: spec.preset, batch: spec.batch, threads, split, profile: prof, targetMissed: worst > target });
      }
      if (spec.preset === 'tiny') {
        // Op-sequence choices of cmac's engine, each timed both ways in the reference (1 thread).
        await this.setThreads(1);
        U.log('step: op-sequence variants in the reference (log-mel power formula, ReLU in place or not)');
        variants = await py
          .call({ cmd: 'variants', config: p.cfg, reps: this.quick ? 3 : 5 })
          .catch((e) => ({ error: String(e.message || e).slice(0, 1000) }));
        delete variants.ok;
      }
      await py.call({ cmd: 'drop', name: 'step' });
      p.model.dispose();
      // Right after the tiny rows (short, and it explains the tiny result), before the long paper rows.
      if (spec.preset === 'tiny') allocator = await this.allocatorDiagnostic().catch((e) => ({ error: String(e.message || e) }));
    }
    const cfg = this.cmac.modelPreset('tiny');
    return { rows, profiles, allocator, variants, sourceFacts: sourceFacts(), optim: cfg.optim, loss: cfg.loss };
  }

  /**
   * cmac ran each call on whichever libuv pool thread was free (before issue 18's
   * thread per model), and glibc gives every thread its own malloc arena. This times the same tiny steps (1 thread)
   * in fresh processes with the default allocator and with MALLOC_ARENA_MAX=1,
   * alternating, to show how much of a step is allocator behaviour.
   */
  async allocatorDiagnostic() {
    const steps = this.quick ? 3 : 5;
    const rounds = this.quick ? 1 : 2;
    const g = this.clip('tiny');
    const inputs = this.file('alloc-inputs.safetensors');
    const b = U.makeBatch(32, g.frames, g.size, g.samples, 1266);
    await this.cmac.writeSafetensors(inputs, { video: b.video, audio: b.audio });
    const out = { steps, warmup: 1, rounds, threads: 1, runs: { default: [], arena1: [] } };
    for (let r = 0; r < rounds; r++) {
      const order = [
        ['default', { MALLOC_ARENA_MAX: undefined }],
        ['arena1', { MALLOC_ARENA_MAX: '1' }],
      ]; // undefined: unset (npm run bench sets it)
      if (r % 2) order.reverse();
      for (const [name, env] of order) {
        U.log(`step: allocator diagnostic, ${name}, ${steps} tiny steps in a fresh process`);
        out.runs[name].push(runChild(['train', '--inputs', inputs, '--steps', String(steps), '--warmup', '1', '--threads', '1'], env));
      }
    }
    for (const name of Object.keys(out.runs)) {
      const all = out.runs[name].flatMap((x) => x.perStep);
      out[name] = {
        medianWallMs: U.median(all.map((x) => x.wallMs)),
        medianCpuMs: U.median(all.map((x) => x.cpuMs)),
        medianMinorFaults: U.median(all.map((x) => x.minorFaults)),
        peakMiB: Math.max(...out.runs[name].map((x) => x.peak)) / 2 ** 20,
      };
    }
    return out;
  }

  // --------------------------------------------------------------- boundary
  async boundary() {
    const c = this.cmac;
    const nativeAddon = require('../dist/native.js').native();
    const out = {};
    const syncCall = (name, fn, n) => {
      for (let i = 0; i < Math.min(n, 10000); i++) fn();
      const t = U.nowMs();
      for (let i = 0; i < n; i++) fn();
      out[name] = { calls: n, usPerCall: ((U.nowMs() - t) * 1000) / n };
    };
    syncCall('getNumThreads', () => c.getNumThreads(), this.quick ? 100000 : 1000000);
    syncCall('nativeMemory', () => nativeAddon.memory(), this.quick ? 20000 : 200000);
    // Async round trip: the cheapest async native call is reading a tiny safetensors file
    // (open + 24-byte read + parse on a worker thread); Node's own readFile of it is the yardstick.
    const tiny = this.file('tiny.safetensors');
    await c.writeSafetensors(tiny, { x: { data: new Float32Array([1]), shape: [1] } });
    const asyncCall = async (name, fn, n) => {
      for (let i = 0; i < 200; i++) await fn();
      const t = U.nowMs();
      for (let i = 0; i < n; i++) await fn();
      out[name] = { calls: n, usPerCall: ((U.nowMs() - t) * 1000) / n };
    };
    const n = this.quick ? 2000 : 20000;
    await asyncCall('readSafetensorsTiny', () => c.readSafetensors(tiny), n);
    await asyncCall('nodeReadFileTiny', () => fs.promises.readFile(tiny), n);
    // Moving a tiny training batch in: writeSafetensors of it to /dev/shm copies the
    // typed arrays into tensors (the same bridge code as trainStep) and writes them.
    const g = this.clip('tiny');
    const b = U.makeBatch(32, g.frames, g.size, g.samples, 7);
    const bytes = b.video.data.byteLength + b.audio.data.byteLength;
    const dst = this.file('batch.safetensors');
    await asyncCall('writeSafetensorsTinyBatch', () => c.writeSafetensors(dst, { video: b.video, audio: b.audio }), this.quick ? 20 : 100);
    await asyncCall(
      'nodeWriteFileTinyBatch',
      async () => {
        await fs.promises.writeFile(dst + '.node', b.video.data);
        await fs.promises.appendFile(dst + '.node', new Uint8Array(b.audio.data.buffer));
      },
      this.quick ? 20 : 100,
    );
    out.tinyBatchBytes = bytes;
    // The whole trainStep path without the compute: a step the engine rejects at once
    // (lr -1 is checked first, on the worker thread) still copies the batch in on the JS
    // thread, queues to the pool, takes the model lock and rejects the Promise.
    const model = await c.CmacModel.create({ ...c.modelPreset('tiny'), seed: 1 });
    const rejected = async (batch, n) => {
      const ts = [];
      for (let i = 0; i < n + 10; i++) {
        const t = U.nowMs();
        try {
          await model.trainStep(batch, { lr: -1 });
        } catch {
          /* expected: RangeError */
        }
        if (i >= 10) ts.push((U.nowMs() - t) * 1000);
      }
      return { calls: n, usPerCall: U.median(ts), usMin: Math.min(...ts) };
    };
    out.rejectedStepTinyBatch = await rejected(b, this.quick ? 50 : 300);
    const b2 = U.makeBatch(2, g.frames, g.size, g.samples, 8);
    out.rejectedStepTwoClips = await rejected(b2, this.quick ? 200 : 2000);
    model.dispose();
    return out;
  }

  // -------------------------------------------------------------- inference
  async inference() {
    const py = await this.reference();
    const specs = this.quick
      ? [
          { preset: 'tiny', batch: 32, reps: 3, budgetS: 30 },
          { preset: 'paper', batch: 2, reps: 1, budgetS: 40 },
        ]
      : [
          { preset: 'tiny', batch: 32, reps: 5, budgetS: 40 },
          { preset: 'paper', batch: 8, reps: 3, budgetS: 90 },
        ];
    // The fewest threads (steady on a shared machine) and the most.
    const threadRows = [...new Set([Math.min(...this.threads), Math.max(...this.threads)])];
    const rows = [];
    for (const spec of specs) {
      const p = await this.pair(spec.preset, spec.batch, `inf-${spec.preset}`);
      await py.call({ cmd: 'create', name: 'inf', config: p.cfg, weights: p.weights });
      await py.call({ cmd: 'load_inputs', path: p.inputs });
      this.drop(p);
      for (const threads of threadRows) {
        if (threads > 1 && spec.preset === 'paper' && this.late()) continue; // run time budget
        await this.setThreads(threads);
        for (const enc of ['video', 'audio']) rows.push(await this.inferenceRow(py, p, spec, enc, threads));
      }
      await py.call({ cmd: 'drop', name: 'inf' });
      p.model.dispose();
    }
    return { rows };
  }

  async inferenceRow(py, p, spec, enc, threads) {
    U.log(`inference ${spec.preset} ${enc} batch ${spec.batch} threads ${threads}`);
    const sub = enc === 'video' ? { video: p.batch.video } : { audio: p.batch.audio };
    const cms = [],
      pms = [],
      ccpu = [],
      pcpu = [],
      cflt = [],
      pflt = [];
    const one = async (keep, order) => {
      for (const side of order) {
        if (side === 'c') {
          const f0 = process.resourceUsage().minorPageFault;
          const c0 = process.cpuUsage();
          const t = U.nowMs();
          await p.model.embed(sub);
          const wall = U.nowMs() - t;
          const cu = process.cpuUsage(c0);
          if (keep) {
            cms.push(wall);
            ccpu.push((cu.user + cu.system) / 1000);
            cflt.push(process.resourceUsage().minorPageFault - f0);
          }
        } else {
          const r = await py.call({ cmd: 'embed', name: 'inf', video: enc === 'video', audio: enc === 'audio' });
          if (keep) {
            pms.push(r.seconds * 1000);
            pcpu.push(r.cpuSeconds * 1000);
            pflt.push(r.minorFaults);
          }
        }
      }
    };
    await one(false, 'cp');
    const t0 = U.nowMs();
    for (let i = 0; i < spec.reps; i++) {
      if (i >= 1 && ((U.nowMs() - t0) / 1000 > spec.budgetS || this.late())) break; // time budget (see stepSpecs)
      await one(true, i % 2 ? 'pc' : 'cp');
    }
    const row = {
      preset: spec.preset,
      encoder: enc,
      batch: spec.batch,
      threads,
      reps: cms.length,
      cmacMs: cms,
      pythonMs: pms,
      cmacMedianMs: U.median(cms),
      pythonMedianMs: U.median(pms),
      cmacCpuMs: U.median(ccpu),
      pythonCpuMs: U.median(pcpu),
      cmacMinorFaults: U.median(cflt),
      pythonMinorFaults: U.median(pflt),
    };
    row.cmacClipsPerSecond = spec.batch / (row.cmacMedianMs / 1000);
    row.pythonClipsPerSecond = spec.batch / (row.pythonMedianMs / 1000);
    row.ratio = row.cmacMedianMs / row.pythonMedianMs;
    U.log(`  cmac ${row.cmacClipsPerSecond.toFixed(1)} clips/s, python ${row.pythonClipsPerSecond.toFixed(1)} clips/s`);
    return row;
  }

  // ------------------------------------------------------------------ flops
  async flops() {
    const py = await this.reference();
    const out = {
      method: 'forward hooks on every Conv2d/Conv3d/Linear of the reference (2 x multiply-adds), x3 for forward + backward',
      presets: {},
      matmul: {},
    };
    await this.setThreads(1);
    for (const [preset, n] of /** @type {[string, number][]} */ ([
      ['tiny', 32],
      ['paper', this.quick ? 2 : 8],
    ])) {
      const p = await this.pair(preset, n, `flops-${preset}`);
      await py.call({ cmd: 'create', name: 'flops', config: p.cfg, weights: p.weights });
      await py.call({ cmd: 'load_inputs', path: p.inputs });
      this.drop(p);
      const f = await py.call({ cmd: 'flops', name: 'flops' });
      delete f.ok;
      out.presets[preset] = { batch: n, ...f, stepFlops: 3 * f.forward, stepFlopsPerClip: (3 * f.forward) / n };
      await py.call({ cmd: 'drop', name: 'flops' });
      p.model.dispose();
    }
    // Which kernels the two libraries pick on this CPU (each prints it when asked to be verbose).
    const v = spawnSync(
      PYTHON,
      [
        '-c',
        'import torch, torch.nn.functional as F\ntorch.mm(torch.randn(64, 64), torch.randn(64, 64))\n' +
          'with torch.inference_mode():\n    F.conv2d(torch.randn(4, 64, 16, 16), torch.randn(64, 64, 3, 3), padding=1)\n',
      ],
      {
        encoding: 'utf8',
        timeout: 60000,
        env: { ...process.env, OPENBLAS_VERBOSE: '2', ONEDNN_VERBOSE: '1', DNNL_VERBOSE: '1', OPENBLAS_NUM_THREADS: '1' },
      },
    );
    const txt = `${v.stdout || ''}\n${v.stderr || ''}`;
    out.isa = {
      openblas: /Core:\s*(\S+)/.exec(txt)?.[1] ?? null,
      onednn: /onednn_verbose,info,cpu,isa:([^\n]*)/.exec(txt)?.[1]?.trim() ?? null,
      onednnConv: /onednn_verbose,exec,cpu,convolution,([^,]+)/.exec(txt)?.[1] ?? null,
    };
    for (const t of this.threads) {
      U.log(`torch.mm 2048^2 with ${t} thread(s)`);
      const r = runPyJson(['matmul', '--threads', String(t), '--n', '2048', '--reps', this.quick ? '3' : '7'], {
        OPENBLAS_NUM_THREADS: String(t),
        GOTO_NUM_THREADS: String(t),
      });
      out.matmul[t] = r;
    }
    return out;
  }

  // ------------------------------------------------------------------- data
  async data() {
    const c = this.cmac;
    const py = await this.reference().catch((e) => {
      U.log(`data: no Python reference (${e.message.split('\n')[0]})`);
      return null;
    });
    const dir = this.file('synth');
    const reduced = !this.quick && this.late();
    const clips = this.quick ? 48 : reduced ? 64 : 160;
    if (reduced) U.log('data: behind the run time budget, using 64 clips');
    U.log(`data: synthesising ${clips} clips`);
    const s = await c.synthesize({ out: dir, clips, seed: 1 });
    const out = { clips, reduced, synthClipsPerSecond: s.clipsPerSecond, decoders: 2, batchSize: 16, presets: {} };
    try {
      const o = JSON.parse(fs.readFileSync(path.join(dir, 'synth.json'), 'utf8'));
      out.synth = { size: o.size, fps: o.fps, seconds: o.seconds, sampleRate: o.sampleRate };
    } catch {
      /* described without it */
    }
    // What one ffmpeg process costs before it decodes anything (the loader starts one per clip
    // group), from this process, which by now holds models and their memory like a trainer does;
    // the loader itself is measured in a fresh process (bench/loader-child.js), which reports its own.
    const spawnMs = [];
    for (let i = 0; i < 7; i++) {
      const t = U.nowMs();
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
      spawnMs.push(U.nowMs() - t);
    }
    out.ffmpegStartInBenchProcess = { ms: U.median(spawnMs), rss: U.procMem().rss };
    // How the built loader decodes (read from dist/, which is what ran), for the analysis.
    const readDist = (rel) => {
      try {
        return fs.readFileSync(path.join(U.root, 'dist', rel), 'utf8');
      } catch {
        return '';
      }
    };
    const loaderJs = readDist('data/loader.js');
    const ffmpegJs = readDist('data/ffmpeg.js');
    const cpp = /clipsPerProcess\s*\?\?\s*(\d+)/.exec(loaderJs);
    const decoder = typeof c.decoderFor === 'function' ? c.decoderFor() : 'ffmpeg-cli';
    out.loaderFacts = {
      decoder, // 'native' (libav pool in process) or 'ffmpeg-cli'
      clipsPerProcess: cpp ? Number(cpp[1]) : null,
      processPerGroup: decoder !== 'native' && /\bdecodeClips\b/.test(loaderJs),
      separateAudioInput: decoder !== 'native' && /inputs\.push\([^)]*'-ss'/.test(ffmpegJs),
      probesEachFile: /\bprobe\b/.test(loaderJs),
      trainCache: /\btrainCache\b/.test(loaderJs),
    };
    const refs = await c.synthSource(dir).list();
    const fileOf = new Map(refs.map((r) => [r.index, r.path]));
    const child = (o) => {
      const r = spawnSync(process.execPath, [path.join(__dirname, 'loader-child.js'), JSON.stringify(o)], {
        encoding: 'utf8',
        timeout: 900000,
        maxBuffer: 64 << 20,
      });
      if (r.status !== 0) throw new Error(`loader-child failed (${r.status ?? r.signal}): ${(r.stderr || '').slice(-2000)}`);
      return JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
    };
    for (const preset of ['tiny', 'paper']) {
      const g = this.clip(preset);
      U.log(`data: loader ${preset} (2 decoders, train mode, 2 epochs) in a fresh process`);
      const lr = child({ dir, preset, epochs: 2, keepEpoch: 1 });
      const ep = lr.epochs;
      /** @type {Record<string, any>} */
      const row = {
        ...g,
        loaderEpochs: ep,
        loaderClipsPerSecond: ep[ep.length - 1].clipsPerSecond,
        decodes: lr.decodes,
        ffmpegStartMs: lr.ffmpegStartMs,
        loaderProcessRss: lr.rss,
      };
      out.ffmpegStartMs ??= lr.ffmpegStartMs;
      if (py) {
        const jobs = lr.metas.map((m) => ({
          file: fileOf.get(m.index),
          start: m.start,
          audioStart: m.audioStart,
          frames: g.frames,
          fps: g.fps,
          size: g.size,
          crop: m.crop,
          flip: m.flip,
          samples: g.samples,
          sampleRate: g.sampleRate,
        }));
        row.python = {};
        for (const method of ['pyav', 'read_video']) {
          const runs = [];
          for (let i = 0; i < (method === 'pyav' ? 2 : 1); i++) {
            U.log(`data: ${method} ${preset} run ${i + 1} (DataLoader, 2 workers)`);
            const r = await py.call({ cmd: 'decode', jobs, method, workers: 2, batch: 16 });
            delete r.ok;
            runs.push(r);
          }
          row.python[method] = { runs, clipsPerSecond: Math.max(...runs.map((r) => r.clipsPerSecond)) };
        }
      }
      // The loader's train-mode cache (decode each video once, cut clips in JS), when the built loader has it.
      if (out.loaderFacts.trainCache) {
        const cacheDir = this.file(`trainCache-${preset}`);
        U.log(`data: loader ${preset} with trainCache (3 epochs: the first fills the cache) in a fresh process`);
        const cr = child({ dir, preset, epochs: 3, trainCache: cacheDir });
        const eps = cr.epochs;
        row.trainCache = {
          epochs: eps,
          clips: cr.clips,
          clipsPerSecond: U.median(eps.slice(1).map((e) => e.clipsPerSecond)),
          fillClipsPerSecond: eps[0].clipsPerSecond,
        };
        fs.rmSync(cacheDir, { recursive: true, force: true });
      }
      out.presets[preset] = row;
    }
    fs.rmSync(dir, { recursive: true, force: true });
    return out;
  }

  // ----------------------------------------------------------------- memory
  async memory() {
    // One thread: peak memory hardly depends on it, and the run stays short on a shared machine.
    const threads = 1;
    const p = await this.pair('tiny', 32, 'mem');
    p.model.dispose();
    const reduced = !this.quick && this.late();
    const steps = this.quick ? 8 : reduced ? 12 : 30;
    if (reduced) U.log('memory: behind the run time budget, using 12 training steps');
    U.log(`memory: ${steps} tiny training steps (batch 32) in a fresh process`);
    const train = runChild(
      ['train', '--inputs', p.inputs, '--weights', p.weights, '--steps', String(steps), '--threads', String(threads)],
      { MALLOC_ARENA_MAX: undefined },
    );
    U.log(`memory: the same with MALLOC_ARENA_MAX=1 (diagnostic: one malloc arena for all threads)`);
    const trainArena1 = runChild(
      ['train', '--inputs', p.inputs, '--weights', p.weights, '--steps', String(steps), '--threads', String(threads)],
      { MALLOC_ARENA_MAX: '1' },
    );
    const calls = this.quick ? 3000 : 10000;
    const every = this.quick ? 500 : 1000;
    U.log(`memory: ${calls} embed calls (batch 1, 16x16 frame, 1024 samples) in a fresh process`);
    const embed = runChild(['embed', '--calls', String(calls), '--every', String(every), '--threads', String(threads)]);
    let python = null;
    if (!pythonProblem()) {
      U.log(`memory: the same ${steps} steps in the PyTorch reference`);
      const env = {};
      const cfgJson = JSON.stringify(this.cmac.modelPreset('tiny'));
      python = runPyJson(
        [
          'memtrain',
          '--inputs',
          p.inputs,
          '--weights',
          p.weights,
          '--steps',
          String(steps),
          '--threads',
          String(threads),
          '--config',
          cfgJson,
        ],
        env,
      );
    }
    return { threads, reduced, train, trainArena1, embed, python };
  }
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  if (opts.help) {
    process.stdout.write(HELP + '\n');
    return;
  }
  const outFile = path.resolve(opts.out ?? path.join(__dirname, opts.quick ? 'results.quick.json' : 'results.json'));
  const mdFile = path.resolve(
    opts.md ?? (opts.quick ? path.join(__dirname, 'results.quick.md') : path.join(U.root, 'docs', 'benchmarks.md')),
  );
  const sections = opts.only ?? SECTIONS;
  let results = { sections: {} };
  if (opts.only && fs.existsSync(outFile)) {
    try {
      results = JSON.parse(fs.readFileSync(outFile, 'utf8'));
      results.sections ??= {};
    } catch {
      results = { sections: {} };
    }
  }
  const t0 = U.nowMs();
  if (opts.ompPassive) process.env.OMP_WAIT_POLICY = 'PASSIVE'; // before the addon (libgomp) loads; the reference inherits it
  const load = os.loadavg()[0];
  if (load > 0.5 * os.cpus().length && !process.env.OMP_WAIT_POLICY) {
    U.log(
      `warning: load average ${load.toFixed(1)} on ${os.cpus().length} cores: other jobs are running. Multi-thread rows will mostly measure ` +
        'OpenMP spin-waiting; consider --omp-passive (or a quiet machine).',
    );
  }
  const bench = new Bench(opts);
  let interrupted = false;
  const onSig = () => {
    if (interrupted) process.exit(130);
    interrupted = true;
    U.log('interrupted: cleaning up');
    void bench.close().finally(() => process.exit(130)); // exit even when cleaning up fails
  };
  process.on('SIGINT', onSig);
  process.on('SIGTERM', onSig);
  const c = bench.cmac;
  const info = c.info();
  results.schema = 'cmac-bench/1';
  results.mode = opts.quick ? 'quick' : 'full';
  results.startedAt = new Date().toISOString();
  results.machine = U.machine();
  results.git = U.gitState();
  results.versions = {
    node: process.version,
    cmacAddon: info.addonVersion,
    libtorch: info.torchVersion,
    libtorchSource: info.torchSource,
    parallel: info.parallelInfo,
    debian: U.debPackages(),
  };
  results.commands = {
    bench: ['npm run bench', ...(process.argv.length > 2 ? ['--', ...process.argv.slice(2)] : [])].join(' '),
    reference: `${PYTHON} ${path.relative(U.root, SCRIPT)} serve`,
    env: `OPENBLAS_NUM_THREADS=1 for both sides (cmac forces it); threads via setNumThreads(n) / torch.set_num_threads(n); OMP_WAIT_POLICY ${process.env.OMP_WAIT_POLICY ?? 'unset'}; MALLOC_ARENA_MAX ${process.env.MALLOC_ARENA_MAX ?? 'unset'} in the driver, which times cmac's steps in its own process (neither npm run bench nor the cmac command sets it) and starts the reference with the same environment`,
    threads: bench.threads,
  };
  const failures = [];
  try {
    for (const name of SECTIONS) {
      if (!sections.includes(name)) continue;
      if (PY_SECTIONS.has(name) && name !== 'data') {
        const prob = bench.pyProblem === undefined ? (bench.pyProblem = pythonProblem()) : bench.pyProblem;
        if (prob) {
          U.log(`${name}: skipped: ${prob}`);
          results.sections[name] = { skipped: prob, ranAt: new Date().toISOString() };
          continue;
        }
      }
      U.log(`== ${name}`);
      const s0 = U.nowMs();
      const load0 = os.loadavg();
      try {
        const r = await bench[name]();
        results.sections[name] = {
          ...r,
          ranAt: new Date().toISOString(),
          seconds: (U.nowMs() - s0) / 1000,
          loadavgBefore: load0,
          loadavgAfter: os.loadavg(),
          mode: results.mode,
        };
      } catch (err) {
        const e = /** @type {Error} */ (err);
        U.log(`${name} FAILED: ${e.stack || e}`);
        failures.push(name);
        results.sections[name] = { error: String(e.message || e).slice(0, 4000), ranAt: new Date().toISOString() };
      }
      U.log(`${name} done in ${((U.nowMs() - s0) / 1000).toFixed(1)} s`);
    }
    if (bench.pyInfo) {
      const { ok: _ok, ...pi } = bench.pyInfo;
      results.versions.python = pi;
    }
  } finally {
    await bench.close();
  }
  results.finishedAt = new Date().toISOString();
  results.wallSeconds = (U.nowMs() - t0) / 1000;
  results.derived = report.derive(results);
  fs.mkdirSync(path.dirname(outFile), { recursive: true });
  fs.writeFileSync(outFile, JSON.stringify(results, null, 1) + '\n');
  fs.mkdirSync(path.dirname(mdFile), { recursive: true });
  fs.writeFileSync(
    mdFile,
    report.markdown(results, { resultsPath: path.relative(path.dirname(mdFile), outFile), resultsLabel: path.relative(U.root, outFile) }),
  );
  U.log(
    `wrote ${path.relative(process.cwd(), outFile)} and ${path.relative(process.cwd(), mdFile)} in ${results.wallSeconds.toFixed(0)} s`,
  );
  process.stdout.write(report.summary(results) + '\n');
  if (failures.length) {
    U.log(`sections that failed: ${failures.join(', ')}`);
    process.exitCode = 1;
  }
}

function fail(e) {
  if (e instanceof UsageError) {
    process.stderr.write(`bench: ${e.message}\n`);
    process.exit(2);
  }
  process.stderr.write(`bench: ${e.stack || e}\n`);
  process.exit(1);
}

if (require.main === module) main().catch(fail);

module.exports = { main, parseArgs, fail };
