// The trainer end to end on real files: a short run, checkpoints, bit-identical
// resume, the NaN guard, AbortSignal, SIGINT, and crash-safe checkpoints.
import { expect } from 'chai';
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { synthesize } from '../lib/data';
import { readSafetensors } from '../lib/safetensors';
import { latestCheckpoint, listCheckpoints, NonFiniteLossError, readMetrics, train } from '../lib/train';
import { isSelfContained } from '../lib/report';
import { rejects, root, tmpDir } from './helpers';
import type { CmacConfigInput } from '../lib/config';

const base = (data: string, runDir: string, extra: Record<string, unknown> = {}) =>
  ({
    preset: 'tiny',
    seed: 7,
    data: { source: data, batchSize: 4, decoders: 2 },
    train: { steps: 6, checkpointEvery: 3, keepLast: 5, runDir },
    ...extra,
  }) as CmacConfigInput;

async function weights(file: string): Promise<Record<string, number[]>> {
  const f = await readSafetensors(file);
  const out: Record<string, number[]> = {};
  for (const [k, t] of Object.entries(f.tensors)) out[k] = Array.from(t.data as ArrayLike<number>, Number);
  return out;
}

describe('trainer', function () {
  this.timeout(600000);
  const dir = tmpDir('cmac-train-');
  const data = path.join(dir, 'data');
  before(async () => {
    await synthesize({ out: data, clips: 20, seed: 3, size: 64, fps: 8, seconds: 2 });
  });

  it('a short run from files on disk writes config, metrics, checkpoints and a self-contained report', async () => {
    const runDir = path.join(dir, 'run-a');
    const seen: number[] = [];
    const s = await train(base(data, runDir), { onStep: (m) => seen.push(m.step), progress: false });
    expect(s.stoppedBy).to.equal('done');
    expect(s.stepsDone).to.equal(6);
    expect(seen).to.deep.equal([0, 1, 2, 3, 4, 5]);
    expect(fs.existsSync(path.join(runDir, 'config.json'))).to.equal(true);
    const m = readMetrics(path.join(runDir, 'metrics.jsonl'));
    expect(m.map((x) => x.step)).to.deep.equal([0, 1, 2, 3, 4, 5]);
    for (const k of ['loss', 'lossCon', 'lossV', 'lossA', 'lr', 'gradNorm', 'clipsPerSec', 'skippedSamples'] as const)
      expect(m[5][k], k).to.be.a('number');
    expect(m[0].lambdaScale).to.equal(0); // ramp starts at 0
    expect(listCheckpoints(path.join(runDir, 'checkpoints')).map((c) => c.step)).to.deep.equal([3, 6]);
    expect(isSelfContained(s.report)).to.equal(true);
    expect(fs.readFileSync(s.report, 'utf8')).to.include('class="cmac-chart"').and.include('L_con');
  });

  it('an interrupted and resumed run ends with weights bit-identical to an uninterrupted one', async () => {
    const full = path.join(dir, 'run-a'); // from the test above: 6 steps in one go
    const runDir = path.join(dir, 'run-b');
    const ac = new AbortController();
    const s1 = await train(base(data, runDir), {
      signal: ac.signal,
      onStep: (m) => {
        if (m.step === 3) ac.abort();
      },
      progress: false,
    });
    expect(s1.stoppedBy).to.equal('abort');
    expect(s1.stepsDone).to.equal(4);
    expect(latestCheckpoint(path.join(runDir, 'checkpoints'))!.step).to.equal(4);
    const s2 = await train(base(data, runDir), { resume: true, progress: false });
    expect(s2.stepsDone).to.equal(6);
    const a = await weights(latestCheckpoint(path.join(full, 'checkpoints'))!.weights);
    const b = await weights(latestCheckpoint(path.join(runDir, 'checkpoints'))!.weights);
    expect(Object.keys(b).sort()).to.deep.equal(Object.keys(a).sort());
    for (const k of Object.keys(a)) expect(b[k], k).to.deep.equal(a[k]);
    expect(readMetrics(path.join(runDir, 'metrics.jsonl')).map((x) => x.step)).to.deep.equal([0, 1, 2, 3, 4, 5]);
  });

  it('with the decoded-video cache (data.cacheDir), resume is bit-identical too', async () => {
    const withCache = (runDir: string) => ({
      ...base(data, runDir),
      data: { ...base(data, runDir).data, cacheDir: path.join(dir, 'cache') },
    });
    const full = path.join(dir, 'run-cache-full');
    await train(withCache(full), { progress: false });
    const runDir = path.join(dir, 'run-cache-b');
    const ac = new AbortController();
    await train(withCache(runDir), {
      signal: ac.signal,
      onStep: (m) => {
        if (m.step === 2) ac.abort();
      },
      progress: false,
    });
    await train(withCache(runDir), { resume: true, progress: false });
    const a = await weights(latestCheckpoint(path.join(full, 'checkpoints'))!.weights);
    const b = await weights(latestCheckpoint(path.join(runDir, 'checkpoints'))!.weights);
    for (const k of Object.keys(a)) expect(b[k], k).to.deep.equal(a[k]);
  });

  it('refuses to overwrite a run that has checkpoints, and --resume without one', async () => {
    await rejects(
      train(base(data, path.join(dir, 'run-a'))),
      Error,
      /already holds checkpoints\. Fix: pass resume: true to continue it \(CLI: --resume\)/,
    );
    await rejects(train(base(data, path.join(dir, 'empty-run')), { resume: true }), Error, /no checkpoint in .*Fix:/);
    await rejects(
      train({ ...base(data, path.join(dir, 'run-a')), loss: { preset: 'xmodal' } }, { resume: true }),
      Error,
      /config differs from the checkpoint's in loss/,
    );
  });

  it('a crash between temp write and rename leaves the previous checkpoint loadable', async () => {
    const runDir = path.join(dir, 'run-c');
    fs.cpSync(path.join(dir, 'run-b'), runDir, { recursive: true });
    const ck = path.join(runDir, 'checkpoints');
    const prev = latestCheckpoint(ck)!;
    // A torn write of the next checkpoint: temp files, and weights renamed without the JSON marker.
    fs.writeFileSync(path.join(ck, 'step-00000009.safetensors.tmp-999'), Buffer.alloc(100, 7));
    fs.writeFileSync(path.join(ck, 'step-00000009.json.tmp-999'), '{"format": "cmac-chec');
    fs.copyFileSync(prev.weights, path.join(ck, 'step-00000009.safetensors'));
    expect(latestCheckpoint(ck)!.step).to.equal(prev.step);
    const s = await train({ ...base(data, runDir), train: { ...base(data, runDir).train, steps: 7 } }, { resume: true, progress: false });
    expect(s.stepsDone).to.equal(7);
  });

  it('the NaN guard skips non-finite steps and stops with a clear message', async () => {
    const runDir = path.join(dir, 'run-nan');
    const cfg = base(data, runDir, { optim: { name: 'sgd', lr: 1e12, warmupFraction: 0, momentum: 0 } });
    const e = await rejects(
      train({ ...cfg, train: { ...cfg.train, steps: 40, maxNonFinite: 2 } }, { progress: false }),
      NonFiniteLossError,
      /2 steps in a row had a non-finite loss.*Fix: lower optim\.lr/,
    );
    expect(e).to.be.instanceOf(NonFiniteLossError);
    const m = readMetrics(path.join(runDir, 'metrics.jsonl'));
    const bad = m.filter((x) => !x.finite);
    expect(bad.length).to.equal(2);
    expect(bad.every((x) => !x.stepped)).to.equal(true);
  });

  it('SIGINT stops `cmac train` after the current step with a checkpoint, exit code 0', async () => {
    const runDir = path.join(dir, 'run-sigint');
    const child = spawn(
      process.execPath,
      [
        path.join(root, 'dist', 'cli', 'main.js'),
        'train',
        '--preset',
        'tiny',
        '--data',
        data,
        '--steps',
        '200',
        '--run-dir',
        runDir,
        '--set',
        'data.batchSize=4',
        '--set',
        'train.checkpointEvery=1000',
      ],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let out = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const metrics = path.join(runDir, 'metrics.jsonl');
    while (!fs.existsSync(metrics) || readMetrics(metrics).length < 2) await new Promise((r) => setTimeout(r, 100));
    child.kill('SIGINT');
    const code = await new Promise((r) => child.on('exit', r));
    expect(code, out).to.equal(0);
    expect(out)
      .to.match(/SIGINT received/)
      .and.match(/stopped at step \d+\/200/);
    const ck = latestCheckpoint(path.join(runDir, 'checkpoints'))!;
    expect(ck.step).to.be.greaterThan(1).and.lessThan(200);
  });
});
