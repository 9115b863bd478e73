#!/usr/bin/env node
// GPU step benchmark (issues 7 and 8), run by scripts/gpu-check.sh on a
// machine with an NVIDIA GPU and a CUDA PyTorch. For each case: cmac and the
// PyTorch reference (bench/reference/cmac_ref.py gpustep, the same libtorch
// that cmac was built against there) start from the same weights and inputs;
// both report the eval loss on them (parity), then the median time of a
// training step with the inputs copied from host memory each step. Prints a
// table with the cmac/PyTorch ratio and MFU against the chip's bf16 peak and a
// measured bf16 matmul, and writes JSON to the path in argv[2] (if given).
//
//   node bench/gpu.js [out.json]      (needs dist/ and a CUDA build of the addon)
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const U = require('./util');

const { CmacModel } = require('../dist/model');
const { modelPreset, clipShapes } = require('../dist/presets');
const { writeSafetensors } = require('../dist/safetensors');
const { info } = require('../dist/info');

// Dense bf16 tensor-core peak of the chip (NVIDIA data sheets, SXM parts), for MFU.
/** @type {[RegExp, number][]} */
const PEAK_BF16 = [
  [/H200/, 989e12],
  [/H100/, 989e12],
  [/A100/, 312e12],
];
const PYTHON = process.env.CMAC_GPU_PYTHON || 'python3';

async function cmacSide(preset, n, amp, layout, cudnnBenchmark, tmp, steps, warmup) {
  const s = clipShapes[preset];
  const base = modelPreset(preset);
  // layout: the encoders' memory layout (model.visual.layout / model.audio.layout; auto = contiguous on CUDA)
  const cfg = {
    ...base,
    visual: { ...base.visual, layout },
    audio: { ...base.audio, layout },
    device: 'cuda',
    amp,
    cudnnBenchmark,
    seed: 1,
  };
  const model = await CmacModel.create(cfg);
  const weights = path.join(tmp, `w-${preset}.safetensors`);
  const inputs = path.join(tmp, `x-${preset}-${n}.safetensors`);
  const cfgFile = path.join(tmp, `cfg-${preset}.json`);
  await model.save(weights);
  const samples = Math.round(s.audioSeconds * s.sampleRate);
  const batch = U.makeBatch(n, s.frames, s.size, samples, 1234 + n);
  await writeSafetensors(inputs, { video: batch.video, audio: batch.audio });
  fs.writeFileSync(cfgFile, JSON.stringify(modelPreset(preset)));
  const evalLoss = await model.evaluateLoss(batch, 1);
  const times = [];
  const losses = [];
  for (let i = 0; i < warmup + steps; i++) {
    const t = U.nowMs();
    const r = await model.trainStep(batch, { lr: 1e-4, lambdaScale: 1 });
    if (i >= warmup) times.push(U.nowMs() - t);
    if (!r.finite) throw new Error(`${preset} amp=${amp}: non-finite loss at step ${i}`);
    losses.push(r.loss);
  }
  times.sort((a, b) => a - b);
  model.dispose();
  return {
    evalLoss,
    medianMs: U.median(times),
    minMs: times[0],
    firstLoss: losses[0],
    lastLoss: losses[losses.length - 1],
    weights,
    inputs,
    cfgFile,
  };
}

function pySide(c, amp, steps, warmup) {
  const r = spawnSync(
    PYTHON,
    [
      path.join(__dirname, 'reference', 'cmac_ref.py'),
      'gpustep',
      '--config',
      c.cfgFile,
      '--weights',
      c.weights,
      '--inputs',
      c.inputs,
      '--amp',
      amp,
      '--steps',
      String(steps),
      '--warmup',
      String(warmup),
    ],
    { encoding: 'utf8', timeout: 300000 },
  );
  if (r.status !== 0) return { error: `exit ${r.status ?? r.signal}: ${(r.stderr || '').trim().split('\n').slice(-6).join(' | ')}` };
  return JSON.parse(r.stdout.trim().split('\n').pop() ?? '');
}

async function main() {
  const i = info();
  if (!i.cudaAvailable) throw new Error('bench/gpu.js needs a CUDA build of the addon and a GPU (cmac info reports cudaAvailable false)');
  const dev = i.cudaDevices[0] ?? 'cuda';
  const peak = (PEAK_BF16.find(([re]) => re.test(dev)) || [null, null])[1];
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'cmac-gpu-'));
  // preset:batch:amp[:layout[:bench]], layout auto | channels-last | contiguous (default auto); bench: cmac's
  // config.cudnnBenchmark (cuDNN benchmark mode; process-wide from then on, so list such cases last)
  const cases = (
    process.env.CMAC_GPU_CASES ||
    'tiny:32:off,paper:32:off,paper:32:bf16,paper:32:bf16:channels-last,paper:64:bf16,paper:64:bf16:channels-last'
  )
    .split(',')
    .map((x) => {
      const [preset, n, amp, layout = 'auto', bench = ''] = x.split(':');
      return { preset, n: Number(n), amp, layout, cudnnBenchmark: bench === 'bench' };
    });
  const steps = Number(process.env.CMAC_GPU_STEPS || 20);
  const warmup = 5;
  const rows = [];
  for (const k of cases) {
    const c = await cmacSide(k.preset, k.n, k.amp, k.layout, k.cudnnBenchmark, tmp, steps, warmup);
    const p = pySide(c, k.amp, steps, warmup);
    const flops = p.forwardFlops ? 3 * p.forwardFlops : null; // forward + backward ~ 3x forward
    const row = {
      ...k,
      cmacMs: c.medianMs,
      pythonMs: p.medianMs ?? null,
      ratio: p.medianMs ? c.medianMs / p.medianMs : null,
      evalLossCmac: c.evalLoss.loss,
      evalLossPython: p.evalLoss?.loss ?? null,
      lossCmac: [c.firstLoss, c.lastLoss],
      lossPython: [p.firstLoss ?? null, p.lastLoss ?? null],
      stepTflops: flops ? flops / 1e12 : null,
      cmacTflops: flops ? flops / (c.medianMs / 1000) / 1e12 : null,
      mfuPeak: flops && peak ? flops / (c.medianMs / 1000) / peak : null,
      mfuMatmul: flops && p.bf16MatmulTflops ? flops / (c.medianMs / 1000) / (p.bf16MatmulTflops * 1e12) : null,
      pythonMfuPeak: flops && peak && p.medianMs ? flops / (p.medianMs / 1000) / peak : null,
      bf16MatmulTflops: p.bf16MatmulTflops ?? null,
      pythonPeakMemMiB: p.peakMemMiB ?? null,
      pythonError: p.error,
      torch: p.torch,
    };
    rows.push(row);
    const f = (x, d = 1) => (x == null ? '-' : x.toFixed(d));
    console.log(
      `   ${k.preset} batch ${k.n} amp=${k.amp} layout=${k.layout}${k.cudnnBenchmark ? ' cudnnBenchmark' : ''}: cmac ${f(row.cmacMs)} ms, PyTorch ${f(row.pythonMs)} ms, ratio ${f(row.ratio, 3)}; ` +
        `eval loss cmac ${f(row.evalLossCmac, 5)} vs PyTorch ${f(row.evalLossPython, 5)}; train loss cmac ${f(c.firstLoss, 3)}->${f(c.lastLoss, 3)}, ` +
        `PyTorch ${f(p.firstLoss, 3)}->${f(p.lastLoss, 3)}; ${f(row.stepTflops, 2)} TFLOP/step, cmac ${f(row.cmacTflops)} TFLOP/s = MFU ${f(row.mfuPeak && row.mfuPeak * 100, 2)}% of ${f(peak && peak / 1e12, 0)} (PyTorch ${f(row.pythonMfuPeak && row.pythonMfuPeak * 100, 2)}%), ` +
        `${f(row.mfuMatmul && row.mfuMatmul * 100, 2)}% of the measured bf16 matmul ${f(row.bf16MatmulTflops, 0)} TFLOP/s${p.error ? `; PyTorch side failed: ${p.error}` : ''}`,
    );
  }
  fs.rmSync(tmp, { recursive: true, force: true });
  const out = { device: dev, torch: rows[0]?.torch, cmacTorch: i.torchVersion, peakBf16Tflops: peak && peak / 1e12, steps, warmup, rows };
  if (process.argv[2]) fs.writeFileSync(process.argv[2], JSON.stringify(out, null, 2));
}

main().catch((e) => {
  console.error('   GPU bench FAILED:', e.stack || e.message);
  process.exit(1);
});
