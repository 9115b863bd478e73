// The `cmac` command: help, exit codes (0 ok, 1 error, 2 usage), and
// `cmac embed` on a real trained checkpoint.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { synthesize } from '../lib/data';
import { readSafetensors } from '../lib/safetensors';
import { train } from '../lib/train';
import { root, tmpDir } from './helpers';

const cli = path.join(root, 'dist', 'cli', 'main.js');
const run = (...args: string[]) => spawnSync(process.execPath, [cli, ...args], { encoding: 'utf8' });

describe('cmac CLI', function () {
  this.timeout(300000);
  const dir = tmpDir('cmac-cli-');

  it('--help lists the commands; each has examples', () => {
    const r = run('--help');
    expect(r.status).to.equal(0);
    for (const c of ['info', 'synth', 'train', 'demo', 'embed', 'eval', 'localize', 'bench']) expect(r.stdout).to.include(c);
    for (const c of ['info', 'synth', 'train', 'demo', 'embed', 'localize', 'bench'])
      expect(run(c, '--help').stdout, c).to.match(/Examples:/);
  });

  it('exit code 2 for usage errors, 1 for failures, with a one-line message and a fix', () => {
    const usage = run('train', '--steps', 'zero');
    expect(usage.status).to.equal(2);
    expect(usage.stderr).to.match(/--steps must be a positive integer/);
    expect(run('frobnicate').status).to.equal(2);
    const bad = run('train', '--set', 'optim.lr=-1', '--print-config');
    expect(bad.status).to.equal(1);
    expect(bad.stderr).to.match(/^cmac: invalid config:\s+config\.optim\.lr: got -1; must be > 0/m);
    const missing = run('embed', '--checkpoint', path.join(dir, 'nope'), '--data', dir, '--out', path.join(dir, 'e.json'));
    expect(missing.status).to.equal(1);
    expect(missing.stderr).to.match(/does not exist\. Fix:/);
  });

  it('train --print-config shows the resolved config with overrides', () => {
    const r = run('train', '--preset', 'paper', '--set', 'optim.lr=3e-4', '--print-config');
    expect(r.status, r.stderr).to.equal(0);
    const c = JSON.parse(r.stdout);
    expect(c.optim.lr).to.equal(3e-4);
    expect(c.clip.size).to.equal(112);
  });

  it('embed writes z_v, z_a and pooled features for every clip', async () => {
    const data = path.join(dir, 'data');
    await synthesize({ out: data, clips: 10, seed: 2, size: 64, fps: 8, seconds: 2 });
    const runDir = path.join(dir, 'run');
    await train({ preset: 'tiny', data: { source: data, batchSize: 4 }, train: { steps: 2, runDir } }, { progress: false });
    const out = path.join(dir, 'emb.safetensors');
    const r = run('embed', '--checkpoint', runDir, '--data', data, '--out', out, '--clips-per-video', '2');
    expect(r.status, r.stderr).to.equal(0);
    const f = await readSafetensors(out);
    const clips = JSON.parse(f.metadata.clips);
    expect(clips).to.have.length(20);
    expect(f.tensors.zV.shape).to.deep.equal([20, 128]);
    expect(f.tensors.featA.shape).to.deep.equal([20, 128]);
    expect(new Set(clips.map((c: { clip: number }) => c.clip))).to.deep.equal(new Set([0, 1]));
  });
});
