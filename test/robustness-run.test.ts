// Robustness of a run's life (issue 17 items 2, 3, 8 and 10), with real
// processes, signals and pipes:
//   item 2   one run per run folder (run.lock, stale by owner pid);
//   item 3   a closed log pipe never stops a command;
//   item 8   `cmac localize` streams overlay frames into the encoder;
//   item 10  signals end long commands cleanly (exit 128 + n) and what a
//            SIGKILL leaves (temp folders, overlay temp files, uncommitted
//            checkpoint weights) is removed at the next start.
// Every command runs with TMPDIR set to a folder of this suite, so temp
// folders can be watched without racing other processes.
//   CMAC_TEST_DIST=/path/to/dist  runs the CLI (and the library of the API
//   cases) of another build, e.g. the code before these fixes.
import { expect } from 'chai';
import { ChildProcess, spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { probe, runFfmpeg, synthesize } from '../lib/data';
import type * as trainLib from '../lib/train';
import { root, tmpDir } from './helpers';

const DIST = process.env.CMAC_TEST_DIST ?? path.join(root, 'dist');
const CLI = path.join(DIST, 'cli', 'main.js');
const lib = require(path.join(DIST, 'train')) as typeof trainLib;

/** The overlay video while `cmac localize` writes it: `.overlay-video.mp4` before these fixes, `*.tmp-<pid>` after. */
const overlayTemp = /overlay.*(\.tmp-\d+|video\.mp4)$/;

interface Proc {
  child: ChildProcess;
  out: () => string;
  exit: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

describe('robustness: run lifecycle (issue 17: run lock, closed pipes, streamed overlays, signals and leftovers)', function () {
  this.timeout(300000);
  const dir = tmpDir('cmac-robust-run-');
  const tmp = path.join(dir, 'tmp'); // TMPDIR of every command
  const data = path.join(dir, 'data');
  const base = path.join(dir, 'run-base'); // a trained tiny run: the checkpoint for eval, finetune and localize
  const video = path.join(dir, 'video-16s.mp4');
  const env = { ...process.env, TMPDIR: tmp };
  const procs: ChildProcess[] = [];

  /** Starts the CLI with `args`; stdout and stderr are collected. */
  function start(args: string[], e: NodeJS.ProcessEnv = env): Proc {
    const child = spawn(process.execPath, [CLI, ...args], { env: e, stdio: ['ignore', 'pipe', 'pipe'] });
    procs.push(child);
    let out = '';
    child.stdout!.on('data', (d) => (out += d));
    child.stderr!.on('data', (d) => (out += d));
    const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
      child.on('exit', (code, signal) => resolve({ code, signal })),
    );
    return { child, out: () => out, exit };
  }
  async function cli(args: string[], e: NodeJS.ProcessEnv = env): Promise<{ code: number | null; out: string }> {
    const p = start(args, e);
    const r = await p.exit;
    return { code: r.code, out: p.out() };
  }
  /** Polls `cond` every `every` ms; fails after `ms` naming `what`. */
  async function until(cond: () => boolean, what: string, p?: Proc, ms = 120000, every = 20): Promise<void> {
    const t0 = Date.now();
    while (!cond()) {
      if (Date.now() - t0 > ms) throw new Error(`timed out waiting for ${what}${p ? `; output: ${p.out()}` : ''}`);
      if (p && p.child.exitCode !== null) throw new Error(`the command exited (${p.child.exitCode}) before ${what}: ${p.out()}`);
      await new Promise((r) => setTimeout(r, every));
    }
  }
  const trainArgs = (runDir: string, steps: number, ...more: string[]) => [
    'train',
    '--preset',
    'tiny',
    '--data',
    data,
    '--steps',
    String(steps),
    '--run-dir',
    runDir,
    '--set',
    'data.batchSize=4',
    ...more,
  ];
  const metricSteps = (runDir: string): number[] => {
    try {
      return lib.readMetrics(path.join(runDir, 'metrics.jsonl')).map((m) => m.step);
    } catch {
      return [];
    }
  };
  const tempDirs = (prefix: string) => fs.readdirSync(tmp).filter((f) => f.startsWith(prefix));
  /** A pid that no process has any more. */
  const deadPid = (): number => {
    const r = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
    const pid = Number(r.stdout);
    expect(() => process.kill(pid, 0)).to.throw(/ESRCH/);
    return pid;
  };

  before(async () => {
    fs.mkdirSync(tmp, { recursive: true });
    await synthesize({ out: data, clips: 24, seed: 3, size: 32, fps: 8, seconds: 2 });
    const r = await cli(trainArgs(base, 3, '--quiet'));
    expect(r.code, r.out).to.equal(0);
    await runFfmpeg([
      '-f',
      'lavfi',
      '-i',
      'testsrc=size=96x96:rate=8',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440:sample_rate=16000',
      '-t',
      '16',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-pix_fmt',
      'yuv420p',
      '-c:a',
      'aac',
      video,
    ]);
  });
  after(() => {
    for (const c of procs) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  });

  describe('item 2: one run per run folder', () => {
    it('run lock: a second `cmac train` on a folder in use (fresh or --resume) fails at once naming the holder pid; the first run keeps each step once and its config', async () => {
      const runDir = path.join(dir, 'run-locked');
      const a = start(trainArgs(runDir, 400, '--set', 'optim.lr=0.0011', '--set', 'train.checkpointEvery=1000'));
      await until(() => metricSteps(runDir).length >= 1, 'the first run to log a step', a);
      const fresh = await cli(trainArgs(runDir, 5, '--set', 'optim.lr=0.0022', '--quiet'));
      const resume = await cli(trainArgs(runDir, 5, '--resume', '--quiet'));
      const stillRunning = a.child.exitCode === null;
      a.child.kill('SIGINT');
      const ra = await a.exit;
      for (const b of [fresh, resume]) {
        expect(b.code, b.out).to.equal(1);
        expect(b.out)
          .to.match(new RegExp(`run folder .*run-locked is in use by another run: pid ${a.child.pid}\\b`))
          .and.match(
            /Fix: wait for that run to finish \(or stop it: kill \d+\), or use another run folder \(train\.runDir; CLI: --run-dir\)/,
          );
      }
      expect(stillRunning, 'the first run was still running when the others were refused').to.equal(true);
      expect(ra.code, a.out()).to.equal(0);
      const steps = metricSteps(runDir);
      expect(steps, 'each step once, in order').to.deep.equal(steps.map((_, i) => i));
      expect(JSON.parse(fs.readFileSync(path.join(runDir, 'config.json'), 'utf8')).optim.lr).to.equal(0.0011);
      expect(fs.existsSync(path.join(runDir, 'run.lock')), 'the lock goes with the run').to.equal(false);
    });

    it('run lock: the lock of a SIGKILLed run is stale (its pid is gone) and --resume takes it over', async () => {
      const runDir = path.join(dir, 'run-killed');
      const a = start(trainArgs(runDir, 400, '--set', 'train.checkpointEvery=2', '--quiet'));
      await until(() => lib.listCheckpoints(path.join(runDir, 'checkpoints')).length >= 1, 'a checkpoint', a);
      a.child.kill('SIGKILL');
      await a.exit;
      const lock = path.join(runDir, 'run.lock');
      expect(fs.existsSync(lock), 'the killed run left its lock').to.equal(true);
      expect(JSON.parse(fs.readFileSync(lock, 'utf8')).pid).to.equal(a.child.pid);
      const last = lib.latestCheckpoint(path.join(runDir, 'checkpoints'))!.step;
      const r = await cli(trainArgs(runDir, last + 1, '--resume', '--quiet'));
      expect(r.code, r.out).to.equal(0);
      expect(lib.latestCheckpoint(path.join(runDir, 'checkpoints'))!.step).to.equal(last + 1);
      expect(fs.existsSync(lock)).to.equal(false);
    });

    it('run lock: the library train() refuses a folder whose lock names a live process, with the pid and a fix worded for API and CLI', async () => {
      const runDir = path.join(dir, 'run-api');
      fs.mkdirSync(runDir, { recursive: true });
      const live = process.ppid; // alive for sure: this process's parent
      fs.writeFileSync(
        path.join(runDir, 'run.lock'),
        JSON.stringify({ pid: live, host: os.hostname(), command: 'cmac train', started: new Date().toISOString() }),
      );
      let err: Error | undefined;
      try {
        await lib.train({ preset: 'tiny', data: { source: data, batchSize: 4 }, train: { steps: 1, runDir } }, { progress: false });
      } catch (e) {
        err = e as Error;
      }
      expect(err, 'train() must refuse').to.be.instanceOf(Error);
      expect(err!.message)
        .to.match(new RegExp(`is in use by another run: pid ${live}\\b`))
        .and.match(/train\.runDir/);
      expect(fs.existsSync(path.join(runDir, 'metrics.jsonl')), 'nothing written').to.equal(false);
      expect(JSON.parse(fs.readFileSync(path.join(runDir, 'run.lock'), 'utf8')).pid, "the holder's lock is kept").to.equal(live);
    });
  });

  describe('item 3: a closed pipe never stops a command', () => {
    it('`cmac train ... 2>&1 | head -1` finishes the run with its final checkpoint, exit code 0', () => {
      const runDir = path.join(dir, 'run-head');
      const cmd = `"${process.execPath}" "${CLI}" ${trainArgs(runDir, 6, '--set', 'train.checkpointEvery=2')
        .map((a) => `'${a}'`)
        .join(' ')} 2>&1 | head -1; exit \${PIPESTATUS[0]}`;
      const r = spawnSync('bash', ['-c', cmd], { env, encoding: 'utf8' });
      expect(r.status, `${r.stdout}${r.stderr}`).to.equal(0);
      expect(r.stdout.split('\n').filter(Boolean)).to.have.length(1);
      expect(lib.latestCheckpoint(path.join(runDir, 'checkpoints'))!.step).to.equal(6);
      expect(fs.existsSync(path.join(runDir, 'report.html'))).to.equal(true);
    });

    it('`cmac <cmd> --help` into a closed stdout exits 0 quietly', async () => {
      for (const args of [['train', '--help'], ['eval', 'retrieval', '--help'], ['localize', '--help'], ['--help']]) {
        const p = start(args);
        p.child.stdout!.destroy(); // the reader is gone before cmac writes
        const r = await p.exit;
        expect(r.code, `${args.join(' ')}: ${p.out()}`).to.equal(0);
        expect(p.out(), args.join(' ')).to.equal('');
      }
    });
  });

  describe('item 8: localize streams its overlay video', () => {
    it('the overlay MP4 is being encoded while frames are still being drawn, and holds every frame', async () => {
      const out = path.join(dir, 'loc-stream');
      const K = 30,
        T = 4; // 0.5 s clips of 4 frames, two batches of 16 clips; the video holds 32
      const p = start([
        'localize',
        '--checkpoint',
        base,
        '--video',
        video,
        '--out',
        out,
        '--size',
        '64',
        '--max-clips',
        String(K),
        '--quiet',
      ]);
      const seen: { pngs: number; encoding: boolean }[] = [];
      const frames = path.join(out, 'frames');
      while (p.child.exitCode === null) {
        let names: string[] = [],
          pngs: string[] = [];
        try {
          names = fs.readdirSync(out);
          pngs = fs.readdirSync(frames);
        } catch {
          /* not yet */
        }
        seen.push({ pngs: pngs.length, encoding: names.some((n) => overlayTemp.test(n)) });
        await new Promise((r) => setTimeout(r, 10));
      }
      const r = await p.exit;
      expect(r.code, p.out()).to.equal(0);
      const early = seen.filter((s) => s.encoding && s.pngs < K * T);
      expect(
        early.length,
        `the encoder must be fed while frames are drawn (samples: ${seen.length}, first encoding at ${seen.find((s) => s.encoding)?.pngs} of ${K * T} frames)`,
      ).to.be.greaterThan(0);
      const info = await probe(path.join(out, 'overlay.mp4'));
      expect(info.video!.frames ?? Math.round(info.video!.duration! * 8)).to.equal(K * T);
      expect(info.audio, 'the original audio is muxed in').to.not.equal(undefined);
      expect(
        fs.readdirSync(out).filter((n) => /tmp|^\.overlay/.test(n)),
        'no temp file left',
      ).to.deep.equal([]);
    });
  });

  describe('item 10: signals and leftovers', () => {
    /** Starts `args`, sends SIGTERM once `leftovers()` lists something (after `settleMs`), and expects exit 143 with nothing left. */
    async function termWhileWriting(
      args: string[],
      leftovers: () => string[],
      what: string,
      settleMs = 0,
      e: NodeJS.ProcessEnv = env,
    ): Promise<void> {
      const p = start(args, e);
      await until(() => leftovers().length > 0, what, p, 120000, 5);
      if (settleMs) await new Promise((r) => setTimeout(r, settleMs));
      p.child.kill('SIGTERM');
      const r = await p.exit;
      expect(r, p.out()).to.deep.equal({ code: 143, signal: null });
      expect(leftovers(), 'left behind').to.deep.equal([]);
    }

    it('SIGTERM during `cmac eval finetune` removes its cmac-finetune-* clip cache and exits 143', async () => {
      await termWhileWriting(
        ['eval', 'finetune', '--checkpoint', base, '--data', data, '--epochs', '500', '--batch', '4', '--quiet'],
        () => tempDirs('cmac-finetune-'),
        'the finetune temp folder',
        1500,
      ); // into the epochs
    });

    // Tar members go to the native decoder from memory (no temp folder); the ffmpeg-cli path still extracts them.
    it('SIGTERM during `cmac eval retrieval` on tar shards (ffmpeg-cli decoder) removes its cmac-tar-* folder and exits 143', async () => {
      const shard = path.join(dir, 'shard-000.tar');
      const members = fs.readdirSync(path.join(data, 'train')).filter((f) => f.endsWith('.mp4'));
      expect(spawnSync('tar', ['-cf', shard, '-C', path.join(data, 'train'), ...members]).status).to.equal(0);
      await termWhileWriting(
        [
          'eval',
          'retrieval',
          '--checkpoint',
          base,
          '--data',
          shard,
          '--clips-per-video',
          '8',
          '--batch-size',
          '4',
          '--decoders',
          '1',
          '--quiet',
        ],
        () => tempDirs('cmac-tar-'),
        'the tar temp folder',
        0,
        { ...env, CMAC_DECODER: 'ffmpeg-cli' },
      );
    });

    it('SIGTERM during `cmac localize` removes its partial overlay video and exits 143', async () => {
      const out = path.join(dir, 'loc-term');
      await termWhileWriting(
        ['localize', '--checkpoint', base, '--video', video, '--out', out, '--size', '64', '--max-clips', '30', '--quiet'],
        () => {
          try {
            return fs.readdirSync(out).filter((n) => overlayTemp.test(n));
          } catch {
            return [];
          }
        },
        'the overlay video being written',
      );
    });

    it('a second SIGTERM while the stop checkpoint is written exits 143 at once and leaves no uncommitted or temp weights', async () => {
      // The second signal must land inside the ~33 MB write: wait for the
      // writer's temp file (or the weights before their JSON) and signal then.
      let landed = false;
      for (let attempt = 0; attempt < 3 && !landed; attempt++) {
        const runDir = path.join(dir, `run-term2-${attempt}`);
        const ck = path.join(runDir, 'checkpoints');
        const p = start(trainArgs(runDir, 400, '--set', 'train.checkpointEvery=1000'));
        await until(() => metricSteps(runDir).length >= 2, 'two steps', p);
        p.child.kill('SIGTERM');
        const writing = () => {
          try {
            return fs.readdirSync(ck).some((n) => /\.safetensors(\.tmp-\d+)?$/.test(n));
          } catch {
            return false;
          }
        };
        while (p.child.exitCode === null && !writing()) await new Promise((r) => setImmediate(r));
        const names = (() => {
          try {
            return fs.readdirSync(ck);
          } catch {
            return [];
          }
        })();
        if (p.child.exitCode !== null || names.some((n) => n.endsWith('.json'))) {
          await p.exit;
          continue;
        } // too late: try again
        p.child.kill('SIGTERM');
        const r = await p.exit;
        landed = true;
        expect(r, p.out()).to.deep.equal({ code: 143, signal: null });
        const left = fs.readdirSync(ck);
        expect(
          left.filter((n) => /\.tmp-\d+$/.test(n)),
          'temp weights',
        ).to.deep.equal([]);
        expect(
          left.filter((n) => n.endsWith('.safetensors') && !left.includes(n.replace(/\.safetensors$/, '.json'))),
          'uncommitted weights',
        ).to.deep.equal([]);
      }
      expect(landed, 'the second signal never landed during the checkpoint write').to.equal(true);
    });

    it('leftovers of SIGKILLed commands are removed when the next command starts: temp folders by owner pid (live owners kept) and overlay temp files', async () => {
      const dead = deadPid();
      const stale = [`cmac-finetune-${dead}-aB3xYz`, `cmac-tar-${dead}-Qw12er`].map((n) => path.join(tmp, n));
      const live = path.join(tmp, `cmac-finetune-${process.pid}-keepMe`);
      for (const d of [...stale, live]) {
        fs.mkdirSync(d, { recursive: true });
        fs.writeFileSync(path.join(d, 'clips-r0-00000.bin'), Buffer.alloc(4096));
      }
      const r = await cli(['eval', 'retrieval', '--checkpoint', base, '--data', data, '--quiet']);
      expect(r.code, r.out).to.equal(0);
      for (const d of stale) expect(fs.existsSync(d), d).to.equal(false);
      expect(fs.existsSync(live), 'a live owner keeps its folder').to.equal(true);
      fs.rmSync(live, { recursive: true });

      const out = path.join(dir, 'loc-stale');
      fs.mkdirSync(out, { recursive: true });
      const leftover = [path.join(out, `.overlay-video.mp4.tmp-${dead}`), path.join(out, `overlay.mp4.tmp-${dead}`)];
      for (const f of leftover) fs.writeFileSync(f, Buffer.alloc(1 << 16));
      const l = await cli([
        'localize',
        '--checkpoint',
        base,
        '--video',
        video,
        '--out',
        out,
        '--size',
        '32',
        '--max-clips',
        '2',
        '--quiet',
      ]);
      expect(l.code, l.out).to.equal(0);
      for (const f of leftover) expect(fs.existsSync(f), f).to.equal(false);
    });

    it("uncommitted checkpoint weights (no JSON) and dead writers' temp weights are removed when the run resumes", async () => {
      const runDir = path.join(dir, 'run-orphan');
      fs.cpSync(base, runDir, { recursive: true });
      const ck = path.join(runDir, 'checkpoints');
      const ref = lib.latestCheckpoint(ck)!;
      const orphan = path.join(ck, 'step-00000009.safetensors');
      const temp = path.join(ck, `step-00000010.safetensors.tmp-${deadPid()}`);
      fs.copyFileSync(ref.weights, orphan);
      fs.copyFileSync(ref.weights, temp);
      const r = await cli(trainArgs(runDir, ref.step + 1, '--resume'));
      expect(r.code, r.out).to.equal(0);
      expect(r.out).to.match(/removed 1 uncommitted checkpoint weight file/);
      for (const f of [orphan, temp]) expect(fs.existsSync(f), f).to.equal(false);
      expect(lib.listCheckpoints(ck).map((c) => c.step)).to.include(ref.step + 1);
    });
  });
});
