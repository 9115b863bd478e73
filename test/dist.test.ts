// Multi-process data parallelism over c10d/Gloo on loopback: 2 ranks equal
// 1 rank on the combined batch; gathered negatives give the single-process
// loss; `cmac train --nproc 2` runs; a killed rank ends the job, never a hang.
import { expect } from 'chai';
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { synthesize } from '../lib/data';
import { freePort } from '../lib/distributed/launch';
import { readSafetensors } from '../lib/safetensors';
import { readMetrics, listCheckpoints } from '../lib/train';
import { root, tmpDir } from './helpers';

// One rank's work: 3 SGD steps on its slice of fixed batches of 8 clips, BN frozen.
const rankScript = (out: string, gather: boolean) => `
const { CmacModel } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'model.js'))});
const h = require(${JSON.stringify(path.join(__dirname, 'helpers.js'))});
const world = Number(process.env.WORLD_SIZE || 1), rank = Number(process.env.RANK || 0);
function rows(t, lo, hi) { const per = t.shape.slice(1).reduce((a, b) => a * b, 1); return { data: t.data.slice(lo * per, hi * per), shape: [hi - lo, ...t.shape.slice(1)] }; }
(async () => {
  const m = await CmacModel.create(h.tinyConfig({ seed: 5, optim: { name: 'sgd', momentum: 0.9, weightDecay: 0 }, dist: { enabled: world > 1, gatherNegatives: ${gather} } }));
  m.eval();
  const losses = [];
  for (let s = 0; s < 3; s++) {
    const b = h.randomBatch(8, 100 + s);
    const n = 8 / world;
    const r = await m.trainStep({ video: rows(b.video, rank * n, (rank + 1) * n), audio: rows(b.audio, rank * n, (rank + 1) * n) }, { lr: 0.005 });
    losses.push([r.loss, r.lossCon, r.lossV, r.lossA]);
  }
  await m.save(${JSON.stringify(out)} + '.' + rank + '.safetensors');
  require('fs').writeFileSync(${JSON.stringify(out)} + '.' + rank + '.json', JSON.stringify({ losses, rank: m.rank, world: m.worldSize }));
  m.dispose();
})().catch((e) => { console.error(e); process.exit(1); });`;

async function runRanks(world: number, out: string, gather: boolean): Promise<void> {
  const port = await freePort();
  const procs = Array.from({ length: world }, (_, rank) =>
    spawn(process.execPath, ['-e', rankScript(out, gather)], {
      env: {
        ...process.env,
        MASTER_ADDR: '127.0.0.1',
        MASTER_PORT: String(port),
        RANK: String(rank),
        WORLD_SIZE: String(world),
        LOCAL_RANK: String(rank),
      },
      stdio: ['ignore', 'inherit', 'inherit'],
    }),
  );
  const codes = await Promise.all(procs.map((p) => new Promise((r) => p.on('exit', r))));
  expect(codes).to.deep.equal(procs.map(() => 0));
}

async function weights(file: string): Promise<Record<string, Float32Array>> {
  const f = await readSafetensors(file);
  const out: Record<string, Float32Array> = {};
  for (const [k, t] of Object.entries(f.tensors)) if (t.dtype === 'float32' && !k.startsWith('optim.')) out[k] = t.data as Float32Array;
  return out;
}

describe('distributed data parallel (c10d, Gloo on loopback)', function () {
  this.timeout(600000);
  const dir = tmpDir('cmac-dist-');

  it('2 ranks with gathered negatives equal 1 rank on the combined batch (loss and weights to 1e-5)', async () => {
    await runRanks(1, path.join(dir, 'one'), true);
    await runRanks(2, path.join(dir, 'two'), true);
    const one = JSON.parse(fs.readFileSync(path.join(dir, 'one.0.json'), 'utf8'));
    const two = JSON.parse(fs.readFileSync(path.join(dir, 'two.0.json'), 'utf8'));
    expect(two.world).to.equal(2);
    console.log(`      losses (1 rank): ${JSON.stringify(one.losses.map((l: number[]) => l.map((x) => +x.toFixed(5))))}`);
    for (let s = 0; s < 3; s++)
      for (let k = 0; k < 4; k++) expect(two.losses[s][k]).to.be.closeTo(one.losses[s][k], 1e-5 * Math.max(1, Math.abs(one.losses[s][k])));
    const w1 = await weights(path.join(dir, 'one.0.safetensors'));
    const w2 = await weights(path.join(dir, 'two.0.safetensors'));
    const w2b = await weights(path.join(dir, 'two.1.safetensors'));
    let worst = 0;
    for (const k of Object.keys(w1)) {
      for (let i = 0; i < w1[k].length; i++) worst = Math.max(worst, Math.abs(w1[k][i] - w2[k][i]));
      expect(Array.from(w2b[k]), `${k}: ranks disagree`).to.deep.equal(Array.from(w2[k]));
    }
    console.log(`      max |w(2 ranks) - w(1 rank)| after 3 steps: ${worst.toExponential(2)}`);
    expect(worst).to.be.lessThan(1e-5);
  });

  it('without gathering, each rank sees only its own negatives (the loss differs)', async () => {
    await runRanks(2, path.join(dir, 'local'), false);
    const one = JSON.parse(fs.readFileSync(path.join(dir, 'one.0.json'), 'utf8'));
    const local = JSON.parse(fs.readFileSync(path.join(dir, 'local.0.json'), 'utf8'));
    expect(Math.abs(local.losses[0][1] - one.losses[0][1])).to.be.greaterThan(1e-3);
  });

  describe('cmac train --nproc 2', () => {
    const data = path.join(dir, 'data');
    before(async () => {
      await synthesize({ out: data, clips: 16, seed: 4, size: 64, fps: 8, seconds: 2 });
    });
    const cli = path.join(root, 'dist', 'cli', 'main.js');

    it('trains with 2 ranks; rank 0 alone writes metrics and checkpoints', () => {
      const runDir = path.join(dir, 'run2');
      const r = spawnSync(
        process.execPath,
        [
          cli,
          'train',
          '--nproc',
          '2',
          '--preset',
          'tiny',
          '--data',
          data,
          '--steps',
          '3',
          '--run-dir',
          runDir,
          '--set',
          'data.batchSize=4',
          '--set',
          'dist.gatherNegatives=true',
          '--quiet',
        ],
        { encoding: 'utf8', timeout: 300000 },
      );
      expect(r.status, r.stdout + r.stderr).to.equal(0);
      expect(r.stderr).to.match(/launch: rank 1 pid \d+/);
      expect(readMetrics(path.join(runDir, 'metrics.jsonl')).map((m) => m.step)).to.deep.equal([0, 1, 2]);
      expect(listCheckpoints(path.join(runDir, 'checkpoints')).map((c) => c.step)).to.deep.equal([3]);
    });

    it('runs under a torchrun-style agent store (TORCHELASTIC_USE_AGENT_STORE, PyTorch TCPStore as the agent)', async () => {
      // The agent: PyTorch's own TCPStore server, as torchrun's elastic agent hosts it.
      const port = await freePort();
      const agent = spawn(
        '/usr/bin/python3',
        [
          '-c',
          [
            'import datetime, sys, time, torch.distributed as d',
            `s = d.TCPStore("127.0.0.1", ${port}, 3, True, datetime.timedelta(seconds=120), wait_for_workers=False)`,
            'print("up", flush=True)',
            'time.sleep(300)',
          ].join('\n'),
        ],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise((r) => agent.stdout!.once('data', r));
      const runDir = path.join(dir, 'run-agent');
      try {
        const ranks = [0, 1].map((rank) =>
          spawn(
            process.execPath,
            [cli, 'train', '--preset', 'tiny', '--data', data, '--steps', '2', '--run-dir', runDir, '--set', 'data.batchSize=4', '--quiet'],
            {
              env: {
                ...process.env,
                MASTER_ADDR: '127.0.0.1',
                MASTER_PORT: String(port),
                RANK: String(rank),
                WORLD_SIZE: '2',
                LOCAL_RANK: String(rank),
                TORCHELASTIC_USE_AGENT_STORE: 'True',
                TORCHELASTIC_RESTART_COUNT: '0',
              },
              stdio: 'ignore',
            },
          ),
        );
        const codes = await Promise.all(ranks.map((p) => new Promise((r) => p.on('exit', r))));
        expect(codes).to.deep.equal([0, 0]);
        expect(listCheckpoints(path.join(runDir, 'checkpoints')).map((c) => c.step)).to.deep.equal([2]);
      } finally {
        agent.kill();
      }
    });

    it('a killed rank ends the job with a non-zero exit naming the rank, within the timeout', async () => {
      const runDir = path.join(dir, 'run-kill');
      const t0 = Date.now();
      const job = spawn(
        process.execPath,
        [
          cli,
          'train',
          '--nproc',
          '2',
          '--preset',
          'tiny',
          '--data',
          data,
          '--steps',
          '500',
          '--run-dir',
          runDir,
          '--set',
          'data.batchSize=4',
          '--quiet',
        ],
        { stdio: ['ignore', 'pipe', 'pipe'] },
      );
      let err = '';
      job.stderr.on('data', (d) => (err += d));
      const exit = new Promise<number | null>((r) => job.on('exit', (c) => r(c)));
      const metrics = path.join(runDir, 'metrics.jsonl');
      while (!/rank 1 pid (\d+)/.test(err) || !fs.existsSync(metrics) || readMetrics(metrics).length < 2) {
        if (Date.now() - t0 > 240000) throw new Error(`the job did not start: ${err}`);
        await new Promise((r) => setTimeout(r, 100));
      }
      const pid = Number(/rank 1 pid (\d+)/.exec(err)![1]);
      const killedAt = Date.now();
      process.kill(pid, 'SIGKILL');
      const code = await exit;
      expect(code).to.not.equal(0);
      expect(err).to.match(new RegExp(`rank 1 \\(pid ${pid}\\) failed: killed by SIGKILL`));
      console.log(`      job ended ${((Date.now() - killedAt) / 1000).toFixed(1)} s after rank 1 was killed`);
      expect(Date.now() - killedAt).to.be.lessThan(30000);
    });
  });
});
