// Robustness of the data path and of evaluation on manifests (issue 17, items
// 4, 5, 6 and 13): per-row skip decisions, the manifest label rule, a split
// too small for one batch, signals during a wait for data, and `cmac eval` on
// a .jsonl manifest. Real ffmpeg, real files, the real CLI in child processes.
import { expect } from 'chai';
import { spawn, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { createLoader, manifestSource, synthesize, tarSource, TooFewClipsError, type LoaderBatch } from '../lib/data';
import { train } from '../lib/train';
import { openSource } from '../lib/data';
import { root, tmpDir } from './helpers';

const cliJs = path.join(root, 'dist', 'cli', 'main.js');
const geom = { frames: 4, fps: 8, size: 32, audioSeconds: 1, sampleRate: 16000 };

interface Ran {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
  ms: number;
}

/** Runs node with `args` in `cwd`; kills it (SIGKILL) after `timeoutMs`. */
function runNode(args: string[], cwd: string, timeoutMs: number, onSpawn?: (pid: number) => void): Promise<Ran> {
  return new Promise((resolve, reject) => {
    const t0 = Date.now();
    const child = spawn(process.execPath, args, { cwd, env: { ...process.env, MALLOC_ARENA_MAX: '1' } });
    let stdout = '',
      stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, ms: Date.now() - t0 });
    });
    if (onSpawn && child.pid) onSpawn(child.pid);
  });
}

/** Runs the built CLI. */
const cmac = (args: string[], timeoutMs = 120000, onSpawn?: (pid: number) => void): Promise<Ran> =>
  runNode([cliJs, ...args], root, timeoutMs, onSpawn);

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/**
 * Waits until a reader has opened the FIFO (a non-blocking open for writing
 * succeeds only then) and returns the writer's fd: the reader then blocks in
 * read() until the fd is closed, like a stalled network share.
 */
async function waitForReader(fifo: string, timeoutMs = 60000): Promise<number> {
  const t0 = Date.now();
  for (;;) {
    try {
      return fs.openSync(fifo, fs.constants.O_WRONLY | fs.constants.O_NONBLOCK);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENXIO') throw e;
    }
    if (Date.now() - t0 > timeoutMs) throw new Error(`nothing opened ${fifo} for reading within ${timeoutMs} ms`);
    await sleep(50);
  }
}

function mkfifo(p: string): void {
  const r = spawnSync('mkfifo', [p]);
  if (r.status !== 0) throw new Error(`mkfifo ${p} failed: ${r.stderr}`);
}

function writeJsonl(file: string, rows: object[]): string {
  fs.writeFileSync(file, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
  return file;
}

async function rejection(p: Promise<unknown>): Promise<Error> {
  try {
    await p;
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected a rejection, but it resolved');
}

describe('robustness: data rows, labels, empty epochs, evaluation on manifests (issue 17)', function () {
  this.timeout(600000);
  const dir = tmpDir('cmac-robust-data-');
  const data = path.join(dir, 'synth');
  /** The synthetic manifest's rows (path relative to `data`). */
  let rows: Array<{ path: string; label: number; split: string }> = [];

  before(async () => {
    await synthesize({ out: data, clips: 24, seed: 1, size: 32, fps: 8, seconds: 2 });
    rows = fs
      .readFileSync(path.join(data, 'manifest.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
  });

  // ------------------------------------------------------------ item 4
  describe('item 4: a bad window skips its own row only', () => {
    it('a row with start > end is skipped alone, the same in every epoch, and a resumed loader skips the same', async () => {
      const a = rows[0].path,
        b = rows[1].path,
        c = rows[2].path;
      const mf = writeJsonl(path.join(data, 'windows.jsonl'), [
        { path: a, start: 1.5, end: 0.5 }, // bad window: too_short
        { path: a, start: 0, end: 1 },
        { path: a, start: 1, end: 2 },
        { path: a },
        { path: b },
        { path: c, start: 0.5 },
      ]);
      // One clip prepared at a time: the order of decisions is the clip order, so the old per-file cache fails this every time.
      const opts = {
        source: manifestSource(mf),
        batchSize: 1,
        clip: geom,
        seed: 1,
        epochs: 4,
        mode: 'train' as const,
        decoders: 1,
        clipsPerProcess: 1,
      };
      const l = createLoader(opts);
      const byEpoch: string[][] = [[], [], [], []];
      for await (const batch of l) for (const m of batch.meta) byEpoch[m.epoch].push(`${m.index}`);
      // Every epoch: exactly the one bad row skipped, the five good rows delivered.
      expect(l.stats.epochs.map((e) => e.skipped)).to.deep.equal([{ too_short: 1 }, { too_short: 1 }, { too_short: 1 }, { too_short: 1 }]);
      expect(byEpoch.map((ids) => ids.slice().sort())).to.deep.equal(Array(4).fill(['1', '2', '3', '4', '5']));
      // A fresh loader resumed at epoch 3 makes the same decisions (deterministic skipping, bit-identical resume).
      const r = createLoader({ ...opts, cursor: { epoch: 3, position: 0 }, epochs: 1 });
      const again: LoaderBatch[] = [];
      for await (const batch of r) again.push(batch);
      expect(again.map((x) => `${x.meta[0].index}`)).to.deep.equal(byEpoch[3]);
      expect(r.stats.epochs[0].skipped).to.deep.equal({ too_short: 1 });
    });

    it('eval mode: the rows after a bad row of the same file are still decoded', async () => {
      const a = rows[3].path;
      const mf = writeJsonl(path.join(data, 'windows-eval.jsonl'), [
        { path: a, start: 2, end: 1 },
        { path: a, start: 0, end: 1 },
        { path: a, start: 1 },
      ]);
      const l = createLoader({
        source: manifestSource(mf),
        batchSize: 4,
        clip: geom,
        mode: 'eval',
        epochs: 2,
        decoders: 1,
        clipsPerProcess: 1,
      });
      const got: number[] = [];
      for await (const batch of l) got.push(...batch.meta.map((m) => m.index));
      expect(got).to.deep.equal([1, 2, 1, 2]);
      expect(l.stats.skipped).to.deep.equal({ too_short: 2 });
    });
  });

  // ------------------------------------------------------------ item 5
  describe('item 5: manifest labels: integers are class indices, strings are names, nothing mapped silently', () => {
    const list = (rowsIn: object[], opts: Parameters<typeof manifestSource>[1] = {}, name = 'labels.jsonl') =>
      manifestSource(writeJsonl(path.join(dir, name), rowsIn), opts).list();
    const p = 'x.mp4';

    it('rejects numeric-looking text that is not a plain index, with the row', async () => {
      for (const bad of [' 2', '1.0', '-7', '2e0']) {
        const e = await rejection(
          list([
            { path: p, label: 0 },
            { path: p, label: bad },
          ]),
        );
        expect(e.message, bad)
          .to.match(/labels\.jsonl:2/)
          .and.include(JSON.stringify(bad))
          .and.match(/not a plain class index/);
      }
    });

    it('rejects out-of-range and non-integer numbers and other types, with the row', async () => {
      for (const [bad, re] of [
        [4294967297, /not a class index/],
        [-7, /not a class index/],
        [1.5, /not a class index/],
        [true, /must be an integer class index or a class name/],
        [{ a: 1 }, /must be an integer/],
      ] as const) {
        const e = await rejection(list([{ path: p, label: 1 }, { path: p, label: bad }, { path: p }]));
        expect(e.message, String(bad))
          .to.match(/labels\.jsonl:2/)
          .and.match(re);
      }
      // CSV has only text: digits are indices, '4294967297' is out of range.
      fs.writeFileSync(path.join(dir, 'labels.csv'), 'path,label\nx.mp4,3\nx.mp4,4294967297\n');
      expect((await rejection(manifestSource(path.join(dir, 'labels.csv')).list())).message).to.match(
        /labels\.csv:3: label "4294967297" is not a class index/,
      );
    });

    it('an index must name one of the given classes', async () => {
      const e = await rejection(list([{ path: p, label: 2 }], { classes: ['cat', 'dog'] }));
      expect(e.message)
        .to.match(/labels\.jsonl:1/)
        .and.match(/0\.\.1 \(2 classes\)/);
      const ok = await list(
        [
          { path: p, label: 1 },
          { path: p, label: 0 },
        ],
        { classes: ['cat', 'dog'] },
      );
      expect(ok.map((r) => r.label)).to.deep.equal([1, 0]);
    });

    it('mixing indices and names is an error naming the rows', async () => {
      const e = await rejection(
        list([
          { path: p, label: 'dog' },
          { path: p, label: 1 },
          { path: p, label: 'cat' },
        ]),
      );
      expect(e.message).to.match(
        /mix class indices \(1 row\(s\), first .*labels\.jsonl:2: 1\) and class names \(2 row\(s\), first .*labels\.jsonl:1: "dog"\)/,
      );
      const csv = path.join(dir, 'mixed.csv');
      fs.writeFileSync(csv, 'path,label\nx.mp4,0\nx.mp4,dog\n');
      expect((await rejection(manifestSource(csv).list())).message).to.match(/mixed\.csv:2: "0"\) and class names .*mixed\.csv:3: "dog"/);
    });

    it('names map to one index across splits; digit text and JSON integers are the same index', async () => {
      const named = [
        { path: p, label: 'dog', split: 'train' },
        { path: p, label: 'dog', split: 'test' },
        { path: p, label: 'cat', split: 'test' },
      ];
      const tr = await list(named, { split: 'train' }, 'named.jsonl');
      const te = await list(named, { split: 'test' }, 'named.jsonl');
      expect(tr[0].label).to.equal(1); // 'dog' is class 1 of [cat, dog] in every split
      expect(te.map((r) => r.label)).to.deep.equal([1, 0]);
      const ints = await list([
        { path: p, label: 3 },
        { path: p, label: '3' },
        { path: p, label: null },
        { path: p, label: '' },
      ]);
      expect(ints.map((r) => r.label)).to.deep.equal([3, 3, undefined, undefined]);
    });

    it('tar samples follow the same rule', async () => {
      const tarStream = await import('tar-stream');
      const shard = path.join(dir, 'labels.tar');
      const pack = tarStream.pack();
      const out = fs.createWriteStream(shard);
      pack.pipe(out);
      pack.entry({ name: 'a.mp4' }, fs.readFileSync(path.join(data, rows[0].path)));
      pack.entry({ name: 'a.json' }, JSON.stringify({ label: -7 }));
      pack.finalize();
      await new Promise<void>((r) => out.on('close', () => r()));
      expect((await rejection(tarSource(shard).list())).message).to.match(/labels\.tar#a: label -7 is not a class index/);
    });

    it('a split that the manifest does not have is named, with the splits it has', async () => {
      const e = await rejection(
        list(
          [
            { path: p, label: 0, split: 'train' },
            { path: p, label: 0, split: 'test' },
          ],
          { split: 'val' },
        ),
      );
      expect(e.message).to.match(/no rows of split 'val' \(its splits: test, train\)/);
    });

    it('training uses every row of a manifest with no split field; an explicit split there is still an error', async () => {
      const unsplit = [
        { path: p, label: 0 },
        { path: p, label: 1 },
      ];
      const e = await rejection(list(unsplit, { split: 'train' }));
      expect(e.message).to.match(/no rows of split 'train' \(its rows have no split field\)/);
      expect(await list(unsplit, { split: 'train', allWhenUnsplit: true })).to.have.length(2);
      // A manifest that has splits keeps filtering, with or without the option.
      expect(
        await list(
          [
            { path: p, label: 0, split: 'train' },
            { path: p, label: 1, split: 'test' },
          ],
          { split: 'train', allWhenUnsplit: true },
        ),
      ).to.have.length(1);
      // The trainer asks for it: openSource(spec, 'train', { allWhenUnsplit: true }).
      const mf = path.join(dir, 'unsplit.jsonl');
      fs.writeFileSync(mf, unsplit.map((r) => JSON.stringify(r)).join('\n') + '\n');
      expect(await openSource(mf, 'train', { allWhenUnsplit: true }).list()).to.have.length(2);
    });
  });

  it('the CLI prints one "cmac: " prefix on a library error that carries its own', async () => {
    const mf = path.join(dir, 'only-test.jsonl');
    fs.writeFileSync(mf, JSON.stringify({ path: 'a.mp4', label: 0, split: 'test' }) + '\n');
    const r = await cmac(
      ['train', '--preset', 'tiny', '--data', mf, '--steps', '1', '--run-dir', path.join(dir, 'run-prefix'), '--quiet'],
      120000,
    );
    expect(r.code).to.equal(1);
    expect(r.stderr)
      .to.match(/^cmac: manifest .* has no rows of split 'train' \(its splits: test\)/m)
      .and.not.include('cmac: cmac:');
  });

  // ------------------------------------------------------------ item 6
  describe('item 6: a split smaller than one batch, and signals during a wait for data', () => {
    it('cmac train fails at once naming the usable clips, data.batchSize and the fix', async () => {
      const r = await cmac(
        ['train', '--preset', 'tiny', '--data', data, '--steps', '2', '--run-dir', path.join(dir, 'run-small'), '--quiet'],
        120000,
      );
      expect(r.signal, `killed after ${r.ms} ms; stderr: ${r.stderr.slice(-500)}`).to.equal(null);
      expect(r.code).to.equal(1);
      expect(r.stderr)
        .to.match(/19 usable clip\(s\)/)
        .and.include('data.batchSize 32')
        .and.include('data.dropLast=false')
        .and.match(/split train/);
      expect(r.ms).to.be.below(60000);
    });

    it('the loader: enough clips listed but too few usable for one batch is an error after one epoch, not empty epochs', async () => {
      const a = rows[4].path,
        b = rows[5].path;
      const mf = writeJsonl(path.join(data, 'few-usable.jsonl'), [
        { path: a },
        { path: a, start: 2, end: 1 },
        { path: b },
        { path: b, start: 3, end: 0 },
      ]);
      const l = createLoader({ source: manifestSource(mf), batchSize: 3, dropLast: true, clip: geom, seed: 1, epochs: 50 });
      const e = await rejection(
        (async () => {
          for await (const _ of l) void _;
        })(),
      );
      expect(e).to.be.instanceOf(TooFewClipsError);
      expect(e.message)
        .to.match(/has 2 usable clip\(s\) \(epoch 0: skipped too_short 2\), fewer than batchSize 3/)
        .and.match(/Fix: lower batchSize, or set dropLast: false/);
      expect(l.stats.epochs.length).to.equal(0); // stopped in the first epoch
      // Fewer listed than one batch: thrown before any decoding.
      const m = createLoader({ source: manifestSource(mf), batchSize: 5, dropLast: true, clip: geom, epochs: 50 });
      const e2 = await rejection(
        (async () => {
          for await (const _ of m) void _;
        })(),
      );
      expect(e2.message).to.match(/has 4 clip\(s\), so at most 4 usable clip\(s\), fewer than batchSize 5/);
      expect(m.stats.decodes).to.equal(0);
    });

    it('train(): aborting its signal interrupts a wait for data (a stalled tar shard)', async () => {
      const fifo = path.join(dir, 'stalled.tar');
      mkfifo(fifo);
      const ac = new AbortController();
      const t0 = Date.now();
      const run = train(
        { preset: 'tiny', seed: 1, data: { source: fifo, batchSize: 4 }, train: { steps: 2, runDir: path.join(dir, 'run-stall') } },
        { signal: ac.signal, progress: false },
      );
      // A train() that fails before reading the shard (e.g. no addon) fails the test with its own error.
      const fd = await Promise.race([
        waitForReader(fifo),
        run.then(() => {
          throw new Error('train() returned before reading the shard');
        }),
      ]);
      let stopped: unknown;
      try {
        await sleep(500);
        ac.abort();
        const tAbort = Date.now();
        stopped = await Promise.race([run, sleep(20000).then(() => 'still waiting')]);
        expect(stopped, 'train() did not return within 20 s of the abort').to.not.equal('still waiting');
        expect((stopped as { stoppedBy: string }).stoppedBy).to.equal('abort');
        expect(Date.now() - tAbort).to.be.below(10000);
      } finally {
        fs.closeSync(fd); // unblocks the reader (EOF)
        await run.catch(() => undefined);
      }
      expect(Date.now() - t0).to.be.below(120000);
    });

    it('cmac train: SIGTERM during a wait for data stops the run with a checkpoint', async () => {
      const fifo = path.join(dir, 'stalled-cli.tar');
      mkfifo(fifo);
      const runDir = path.join(dir, 'run-stall-cli');
      let pid = 0;
      const ran = cmac(
        ['train', '--preset', 'tiny', '--data', fifo, '--steps', '2', '--run-dir', runDir, '--set', 'data.batchSize=4', '--quiet'],
        120000,
        (p) => (pid = p),
      );
      const fd = await waitForReader(fifo);
      let closed = false;
      try {
        await sleep(500);
        process.kill(pid, 'SIGTERM');
        // The summary is printed (train() returned) while the shard is still stalled.
        const t0 = Date.now();
        let r: Ran | string = 'still waiting';
        const done = ran.then((x) => (r = x));
        while (Date.now() - t0 < 20000 && typeof r === 'string' && !fs.existsSync(path.join(runDir, 'report.html'))) await sleep(100);
        expect(fs.existsSync(path.join(runDir, 'report.html')), 'no report.html 20 s after SIGTERM: the run did not stop').to.equal(true);
        fs.closeSync(fd);
        closed = true;
        await done;
        const res = r as unknown as Ran;
        expect(res.code, res.stderr).to.equal(0);
        expect(res.stdout).to.match(/stopped at step 0\/2/);
        expect(fs.readdirSync(path.join(runDir, 'checkpoints')).some((f) => /^step-\d+\.safetensors$/.test(f))).to.equal(true);
      } finally {
        if (!closed) fs.closeSync(fd);
        await ran;
      }
    });
  });

  // ------------------------------------------------------------ item 13
  describe('item 13: cmac eval on a manifest', () => {
    const run = path.join(dir, 'run');
    let manifest = '';
    let boxesManifest = '';
    let nTest = 0;

    before(async () => {
      const r = await cmac(
        ['train', '--preset', 'tiny', '--data', data, '--steps', '1', '--run-dir', run, '--set', 'data.batchSize=4', '--quiet'],
        300000,
      );
      if (r.code !== 0) throw new Error(`training the checkpoint failed: ${r.stderr}`);
      // The synthetic set as a plain manifest (labels and splits; no classes.json next to it).
      const m = path.join(dir, 'manifest');
      fs.mkdirSync(m, { recursive: true });
      manifest = writeJsonl(
        path.join(m, 'list.jsonl'),
        rows.map((x) => ({ path: path.join(data, x.path), label: x.label, split: x.split })),
      );
      boxesManifest = writeJsonl(
        path.join(m, 'boxes.jsonl'),
        rows.map((x) => ({ path: path.join(data, x.path), label: x.label, split: x.split, boxes: [[0.1, 0.1, 0.6, 0.6]] })),
      );
      nTest = rows.filter((x) => x.split === 'test').length;
    });

    it('eval linear-probe --data list.jsonl uses the manifest (labels, splits)', async () => {
      const r = await cmac(['eval', 'linear-probe', '--checkpoint', run, '--data', manifest, '--batch-size', '8'], 300000);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stderr).to.not.include('ENOTDIR');
      expect(r.stdout).to.match(/linear probe on manifest .*list\.jsonl/);
      expect(r.stdout).to.match(/video \(featV\): \d/);
    });

    it('eval finetune --data list.jsonl uses the manifest too', async () => {
      const r = await cmac(
        ['eval', 'finetune', '--checkpoint', run, '--data', manifest, '--epochs', '1', '--batch', '4', '--batch-size', '8'],
        300000,
      );
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout)
        .to.match(/finetune on manifest .*list\.jsonl/)
        .and.match(/\(19 \/ 2 \/ 3 videos/);
    });

    it('eval linear-probe on a file that is no dataset says which layouts are accepted', async () => {
      const txt = path.join(dir, 'notes.txt');
      fs.writeFileSync(txt, 'hello\n');
      const r = await cmac(['eval', 'linear-probe', '--checkpoint', run, '--data', txt]);
      expect(r.code).to.equal(1);
      expect(r.stderr).to.not.include('ENOTDIR');
      expect(r.stderr).to.include('.csv/.jsonl manifest').and.include('ucf101');
    });

    it('eval retrieval on a manifest with splits defaults to its test split, and says so', async () => {
      const r = await cmac(['eval', 'retrieval', '--checkpoint', run, '--data', manifest, '--batch-size', '8']);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout).to.include(`retrieval on ${nTest} clips`);
      expect(r.stderr).to.match(/split 'test'/);
      const all = await cmac(['eval', 'retrieval', '--checkpoint', run, '--data', manifest, '--split', 'train', '--batch-size', '8']);
      expect(all.stdout).to.include(`retrieval on ${rows.filter((x) => x.split === 'train').length} clips`);
    });

    it('eval all on a manifest scores its boxes, and says what it skipped', async () => {
      const r = await cmac(['eval', 'all', '--checkpoint', run, '--data', boxesManifest, '--batch-size', '8']);
      expect(r.code, r.stderr).to.equal(0);
      expect(r.stdout)
        .to.match(new RegExp(`localisation \\([^)]*protocol\\) on ${nTest} clips`))
        .and.include(`retrieval on ${nTest} clips`);
      expect(r.stdout + r.stderr).to.match(/frequency grounding skipped/);
      const plain = await cmac(['eval', 'all', '--checkpoint', run, '--data', manifest, '--batch-size', '8']);
      expect(plain.code, plain.stderr).to.equal(0);
      expect(plain.stdout).to.match(/localisation skipped: .*boxes/);
    });

    it("docs/evaluation.md's code runs as written against the package's exports", async () => {
      const doc = fs.readFileSync(path.join(root, 'docs', 'evaluation.md'), 'utf8');
      const start = doc.indexOf('## In code');
      expect(start).to.be.above(0);
      const block = /```js\n([\s\S]*?)```/.exec(doc.slice(start))![1];
      // Every require() of the docs resolves through package.json "exports".
      const app = path.join(dir, 'app');
      fs.mkdirSync(path.join(app, 'node_modules'), { recursive: true });
      fs.symlinkSync(root, path.join(app, 'node_modules', 'cmac'), 'dir');
      const specs = [...doc.matchAll(/require\('([^']+)'\)/g)].map((m) => m[1]).filter((s) => s === 'cmac' || s.startsWith('cmac/'));
      expect(specs.length).to.be.above(0);
      // Run the "In code" example on this test's checkpoint and data.
      const script = block.replace(/'runs\/tiny'/g, JSON.stringify(run)).replace(/'data\/synth'/g, JSON.stringify(data));
      fs.writeFileSync(
        path.join(app, 'example.js'),
        `for (const s of ${JSON.stringify([...new Set(specs)])}) require.resolve(s);\n${script}`,
      );
      const r = await runNode(['example.js'], app, 300000);
      expect(r.stderr).to.not.include('ERR_PACKAGE_PATH_NOT_EXPORTED');
      expect(r.code, r.stderr).to.equal(0);
      expect(fs.existsSync(path.join(app, 'eval.html'))).to.equal(true);
    });
  });
});
