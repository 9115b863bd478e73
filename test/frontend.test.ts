// The log-mel front end's dataset statistics and SpecAugment (issue 14 item 5,
// method.md s1) through the library and a real run, and resuming a run
// folder written before model.pooling (issue 14 leftovers). The native
// details (the two-pass statistics, the standardisation itself, SpecAugment
// masks, train-only) are pinned by native/core/tests/test_frontend.cpp.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { resolveConfig } from '../lib/config';
import { synthesize } from '../lib/data';
import { CmacModel } from '../lib/model';
import { readSafetensors } from '../lib/safetensors';
import { loadCheckpoint } from '../lib/checkpoint';
import { latestCheckpoint, train } from '../lib/train';
import { fitLogmelStats } from '../lib/train/stats';
import { randomBatch, rejects, root, tinyConfig, tmpDir } from './helpers';

const cli = path.join(root, 'dist', 'cli', 'main.js');

function maxAbs(a: ArrayLike<number>, b: ArrayLike<number>): number {
  let m = 0;
  for (let i = 0; i < a.length; i++) m = Math.max(m, Math.abs(a[i] - b[i]));
  return m;
}

describe('log-mel dataset statistics and SpecAugment', function () {
  this.timeout(600000);
  let dir: string, data: string;
  before(async () => {
    dir = tmpDir('cmac-frontend-');
    data = path.join(dir, 'data');
    await synthesize({ out: data, clips: 12, seed: 4, size: 64, fps: 8, seconds: 2 });
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('logmelStats equals torchaudio MelSpectrogram + log(x + 1e-6), mean/std per bin over clips and frames', async function () {
    const model = await CmacModel.create(tinyConfig({ seed: 1 }));
    const b = randomBatch(6, 9, 16000);
    for (let i = 0; i < b.audio!.data.length; i++) b.audio!.data[i] *= 1 + (i % 7); // bins with different levels
    let stats;
    try {
      stats = await model.logmelStats(b.audio!);
    } finally {
      model.dispose();
    }
    const file = path.join(dir, 'audio.f32');
    fs.writeFileSync(file, Buffer.from(b.audio!.data.buffer));
    const py = `
import sys, json, numpy as np
try:
    import torch, torchaudio
except ImportError as e:
    print(e, file=sys.stderr); sys.exit(3)
a = torch.from_numpy(np.fromfile(sys.argv[1], dtype=np.float32).reshape(6, 16000))
mel = torchaudio.transforms.MelSpectrogram(sample_rate=16000, n_fft=1024, win_length=400, hop_length=160, f_min=0.0, f_max=8000.0,
    n_mels=64, power=2.0, center=True, pad_mode='reflect', norm=None, mel_scale='htk')(a)
x = torch.log(mel + 1e-6).double().numpy()
print(json.dumps({'mean': x.mean(axis=(0, 2)).tolist(), 'std': x.std(axis=(0, 2)).tolist()}))
`;
    const r = spawnSync('/usr/bin/python3', ['-c', py, file], { encoding: 'utf8' });
    if (r.error || r.status === 3) {
      console.log(`      skipped: ${r.error ? '/usr/bin/python3 not found' : r.stderr.trim()} (scripts/setup.sh --python)`);
      this.skip();
    }
    expect(r.status, r.stderr).to.equal(0);
    const ref = JSON.parse(r.stdout) as { mean: number[]; std: number[] };
    const dm = maxAbs(stats.mean.data, ref.mean),
      ds = maxAbs(stats.std.data, ref.std);
    console.log(
      `      largest |ours - torchaudio|: mean ${dm.toExponential(2)}, std ${ds.toExponential(2)} (means ${Math.min(...ref.mean).toFixed(2)}..${Math.max(...ref.mean).toFixed(2)})`,
    );
    expect(dm).to.be.lessThan(1e-5);
    expect(ds).to.be.lessThan(1e-5);
    expect(Math.max(...ref.mean) - Math.min(...ref.mean)).to.be.greaterThan(1); // not a flat reference
  });

  it('a run computes them from logmel.statsClips training clips, keeps them in every checkpoint (through a resume), and eval uses them', async () => {
    const runDir = path.join(dir, 'run-stats');
    const input = {
      preset: 'tiny' as const,
      seed: 2,
      logmel: { statsClips: 8 },
      data: { source: data, batchSize: 4, decoders: 2 },
      train: { steps: 2, checkpointEvery: 1, keepLast: 5, runDir },
    };
    const lines: string[] = [];
    await train(input, { log: (l) => lines.push(l), progress: false });
    expect(lines.join('\n')).to.match(/log-mel statistics from 8 training clip\(s\)/);
    // The same clips through fitLogmelStats on a fresh model: the same statistics, to the bit.
    const cfg = resolveConfig(input);
    const fresh = await CmacModel.create(tinyConfig({ seed: 2 }));
    const fit = await fitLogmelStats(fresh, cfg);
    fresh.dispose();
    const first = (await readSafetensors(path.join(runDir, 'checkpoints', 'step-00000001.safetensors'))).tensors;
    expect(Array.from(first['logmel.mean'].data as Float32Array)).to.deep.equal(Array.from(fit!.stats.mean.data));
    expect(Array.from(first['logmel.std'].data as Float32Array)).to.deep.equal(Array.from(fit!.stats.std.data));
    expect(Array.from(first['logmel.mean'].data as Float32Array).some((v) => v !== 0)).to.equal(true);
    expect(Array.from(first['logmel.std'].data as Float32Array).some((v) => v !== 1)).to.equal(true);
    // Python reads them from the weights file as plain tensors (the safetensors layout, numpy only).
    const py = `
import sys, json, struct, numpy as np
b = open(sys.argv[1], 'rb').read()
n = struct.unpack('<Q', b[:8])[0]
h = json.loads(b[8:8 + n])
out = {}
for k in ('logmel.mean', 'logmel.std'):
    e = h[k]; s, t = e['data_offsets']
    assert e['dtype'] == 'F32' and e['shape'] == [64], e
    out[k] = np.frombuffer(b[8 + n + s:8 + n + t], dtype='<f4').tolist()
print(json.dumps(out))
`;
    const r = spawnSync('/usr/bin/python3', ['-c', py, path.join(runDir, 'checkpoints', 'step-00000001.safetensors')], {
      encoding: 'utf8',
    });
    if (!r.error) {
      expect(r.status, r.stderr).to.equal(0);
      const fromPy = JSON.parse(r.stdout) as Record<string, number[]>;
      expect(fromPy['logmel.mean']).to.deep.equal(Array.from(fit!.stats.mean.data));
      expect(fromPy['logmel.std']).to.deep.equal(Array.from(fit!.stats.std.data));
    }
    // A resume loads them and does not recompute: 2 more steps, the same statistics.
    lines.length = 0;
    await train({ ...input, train: { ...input.train, steps: 4 } }, { resume: true, log: (l) => lines.push(l), progress: false });
    expect(lines.join('\n')).to.not.match(/log-mel statistics/);
    const last = (await readSafetensors(latestCheckpoint(path.join(runDir, 'checkpoints'))!.weights)).tensors;
    expect(Array.from(last['logmel.mean'].data as Float32Array)).to.deep.equal(Array.from(fit!.stats.mean.data));
    // Eval (embed, maps) runs the front end with them: mean 0 / std 1 gives other embeddings.
    const opened = await loadCheckpoint(runDir);
    try {
      const b = randomBatch(2, 3, 16000);
      const withStats = await opened.model.embed(b);
      await opened.model.setLogmelStats({
        mean: { data: new Float32Array(64), shape: [64] },
        std: { data: new Float32Array(64).fill(1), shape: [64] },
      });
      const identity = await opened.model.embed(b);
      expect(maxAbs(withStats.zA!.data, identity.zA!.data)).to.be.greaterThan(1e-3);
      expect(maxAbs(withStats.zV!.data, identity.zV!.data)).to.equal(0);
      await rejects(
        opened.model.setLogmelStats({
          mean: { data: new Float32Array(3), shape: [3] },
          std: { data: new Float32Array(3).fill(1), shape: [3] },
        }),
        RangeError,
        /logmel mean must have shape \[64\]/,
      );
    } finally {
      opened.model.dispose();
    }
  });

  it('an abort during the statistics pass stops at step 0 without them; the resume computes them as a fresh start would', async () => {
    const runDir = path.join(dir, 'run-stats-abort');
    const input = {
      preset: 'tiny' as const,
      seed: 2,
      logmel: { statsClips: 8 },
      data: { source: data, batchSize: 4, decoders: 2 },
      train: { steps: 1, runDir },
    };
    const ac = new AbortController();
    ac.abort();
    const lines: string[] = [];
    const stopped = await train(input, { signal: ac.signal, log: (l) => lines.push(l), progress: false });
    expect(stopped.stoppedBy).to.equal('abort');
    expect(stopped.stepsDone).to.equal(0);
    expect(lines.join('\n')).to.match(/log-mel statistics: stopped by the abort signal/);
    const zero = (await readSafetensors(latestCheckpoint(path.join(runDir, 'checkpoints'))!.weights)).tensors;
    expect(Array.from(zero['logmel.mean'].data as Float32Array).every((v) => v === 0)).to.equal(true);
    lines.length = 0;
    await train(input, { resume: true, log: (l) => lines.push(l), progress: false });
    expect(lines.join('\n')).to.match(/log-mel statistics from 8 training clip\(s\)/);
    const fresh = await CmacModel.create(tinyConfig({ seed: 2 }));
    const fit = await fitLogmelStats(fresh, resolveConfig(input));
    fresh.dispose();
    const last = (await readSafetensors(latestCheckpoint(path.join(runDir, 'checkpoints'))!.weights)).tensors;
    expect(Array.from(last['logmel.mean'].data as Float32Array)).to.deep.equal(Array.from(fit!.stats.mean.data));
  });

  it('logmel.statsClips 0 keeps mean 0 / std 1; the SpecAugment settings reach the engine (training steps differ, evaluation does not)', async () => {
    const runDir = path.join(dir, 'run-nostats');
    await train(
      {
        preset: 'tiny',
        seed: 2,
        logmel: { statsClips: 0 },
        data: { source: data, batchSize: 4, decoders: 2 },
        train: { steps: 1, runDir },
      },
      { progress: false },
    );
    const w = (await readSafetensors(latestCheckpoint(path.join(runDir, 'checkpoints'))!.weights)).tensors;
    expect(Array.from(w['logmel.mean'].data as Float32Array).every((v) => v === 0)).to.equal(true);
    expect(Array.from(w['logmel.std'].data as Float32Array).every((v) => v === 1)).to.equal(true);
    const b = randomBatch(4, 5, 16000);
    const { toModelConfig } = await import('../lib/config');
    const plainCfg = resolveConfig({ seed: 3, data: { source: data } });
    const augCfg = resolveConfig({ seed: 3, data: { source: data }, logmel: { specAugment: { freqMasks: 2, timeMasks: 2 } } });
    expect(augCfg.logmel.specAugment).to.deep.equal({ freqMasks: 2, freqWidth: 16, timeMasks: 2, timeWidth: 20 });
    const plain = await CmacModel.create(toModelConfig(plainCfg)),
      aug = await CmacModel.create(toModelConfig(augCfg));
    try {
      expect((await aug.evaluateLoss(b)).loss).to.equal((await plain.evaluateLoss(b)).loss);
      expect(Array.from((await aug.embed(b)).zA!.data)).to.deep.equal(Array.from((await plain.embed(b)).zA!.data));
      expect((await aug.trainStep(b, { lr: 1e-3 })).loss).to.not.equal((await plain.trainStep(b, { lr: 1e-3 })).loss);
    } finally {
      plain.dispose();
      aug.dispose();
    }
  });

  it('resuming a run folder written before model.pooling (xmodal: mean) with its own config.json keeps mean pooling; a conflicting setting names the --set fix', () => {
    const runDir = path.join(dir, 'run-old');
    const base = [
      'train',
      '--preset',
      'tiny',
      '--loss',
      'xmodal',
      '--data',
      data,
      '--run-dir',
      runDir,
      '--quiet',
      '--set',
      'data.batchSize=4',
      '--set',
      'model.pooling=mean',
      '--set',
      'logmel.statsClips=0',
      '--set',
      'train.checkpointEvery=1',
    ];
    const first = spawnSync(process.execPath, [cli, ...base, '--steps', '1'], { encoding: 'utf8' });
    expect(first.status, first.stderr).to.equal(0);
    // Make it look like a run from before issue 14: no model.pooling, loss.rampStart/rampThreshold, logmel.statsClips/specAugment.
    const strip = (c: { model: Record<string, unknown>; loss: Record<string, unknown>; logmel: Record<string, unknown> }) => {
      delete c.model.pooling;
      delete c.loss.rampStart;
      delete c.loss.rampThreshold;
      delete c.logmel.statsClips;
      delete c.logmel.specAugment;
    };
    const cfgFile = path.join(runDir, 'config.json');
    const c = JSON.parse(fs.readFileSync(cfgFile, 'utf8'));
    strip(c);
    fs.writeFileSync(cfgFile, JSON.stringify(c, null, 2));
    const ref = latestCheckpoint(path.join(runDir, 'checkpoints'))!;
    const st = JSON.parse(fs.readFileSync(ref.state, 'utf8'));
    strip(st.config);
    fs.writeFileSync(ref.state, JSON.stringify(st));
    const resumed = spawnSync(process.execPath, [cli, 'train', '--resume', '--run-dir', runDir, '--steps', '2'], { encoding: 'utf8' });
    expect(resumed.status, resumed.stderr).to.equal(0);
    expect(JSON.parse(fs.readFileSync(cfgFile, 'utf8')).model.pooling).to.equal('mean');
    // A setting the run's config.json does state, changed on the command line: the error names the field, both values and the fix.
    const bad = spawnSync(
      process.execPath,
      [cli, 'train', '--resume', '--run-dir', runDir, '--steps', '3', '--set', 'model.pooling=attention'],
      { encoding: 'utf8' },
    );
    expect(bad.status).to.not.equal(0);
    expect(bad.stderr).to.match(/differs from the checkpoint's in model \(model\.pooling: this run "attention", checkpoint "mean"\)/);
    expect(bad.stderr).to.match(/--set model\.pooling=mean/);
  });
});
