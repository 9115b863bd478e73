// Robustness of the two decode caches (issue 17, items 1 and 11):
// - the eval clip cache (LoaderOptions.cacheDir, `--cache-dir`) shared by two
//   processes writing at once, then read warm: every clip must be the clip
//   of its key (checked byte for byte against a fresh decode);
// - flipped bytes in a clip shard, and an index line pointing at another
//   entry: detected on read, counted, logged, decoded again, never returned;
// - the decoded-video (train) cache's index fields (duration, frame size of
//   the probe, ...) edited: detected, the video decoded again, the clips
//   unchanged.
import { spawn } from 'child_process';
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import {
  ClipLoader,
  folderSource,
  writeTestVideos,
  type LoaderBatch,
  type LoaderOptions,
  type TestVideo,
  type VideoEntry,
} from '../lib/data';
import { tmpDir } from './helpers';

const geom = { frames: 4, fps: 8, size: 32, audioSeconds: 1, sampleRate: 16000 };

interface Clip {
  video: Buffer;
  audio: Buffer;
  start: number;
  audioStart: number;
  audioPad: { front: number; back: number };
  cached: boolean;
}

/** Runs a loader to its end; its clips by `id#clip`, and the loader (for its stats). */
async function clipsOf(opts: LoaderOptions): Promise<{ loader: ClipLoader; clips: Map<string, Clip>; batches: LoaderBatch[] }> {
  const loader = new ClipLoader(opts);
  const clips = new Map<string, Clip>();
  const batches: LoaderBatch[] = [];
  for await (const b of loader) {
    batches.push(b);
    const [, T, H, W, C] = b.video.shape;
    const vb = T * H * W * C;
    const ab = b.audio.shape[1];
    b.meta.forEach((m, i) => {
      clips.set(`${m.id}#${m.clip}`, {
        video: Buffer.from(b.video.data.subarray(i * vb, (i + 1) * vb)),
        audio: Buffer.from(b.audio.data.buffer, b.audio.data.byteOffset + i * ab * 4, ab * 4),
        start: m.start,
        audioStart: m.audioStart,
        audioPad: m.audioPad,
        cached: !!m.cached,
      });
    });
  }
  await loader.close();
  return { loader, clips, batches };
}

/** Every clip of `got` is byte for byte the clip of the same key in `want`; returns the keys that differ. */
function wrongClips(want: Map<string, Clip>, got: Map<string, Clip>): string[] {
  expect([...got.keys()].sort()).to.deep.equal([...want.keys()].sort());
  return [...want]
    .filter(([k, w]) => {
      const g = got.get(k)!;
      return !(
        g.video.equals(w.video) &&
        g.audio.equals(w.audio) &&
        g.start === w.start &&
        g.audioStart === w.audioStart &&
        g.audioPad.front === w.audioPad.front &&
        g.audioPad.back === w.audioPad.back
      );
    })
    .map(([k]) => k);
}

/** Index lines of the clip cache (every *.jsonl but the train cache's), with their file. */
function clipIndex(
  dir: string,
): { file: string; e: { k: string; s: string; o: number; v: number; a: number } & Record<string, unknown> }[] {
  return fs
    .readdirSync(dir)
    .filter((f) => f.endsWith('.jsonl') && !f.startsWith('videos-'))
    .sort()
    .flatMap((f) =>
      fs
        .readFileSync(path.join(dir, f), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => ({ file: f, e: JSON.parse(l) })),
    );
}

function flipByte(file: string, at: number): void {
  const fd = fs.openSync(file, 'r+');
  try {
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, at);
    b[0] ^= 0x5a;
    fs.writeSync(fd, b, 0, 1, at);
  } finally {
    fs.closeSync(fd);
  }
}

describe('robustness: decode caches (issue 17 items 1, 11)', function () {
  this.timeout(120000);
  const root = tmpDir('cmac-robust-cache-');
  const data = path.join(root, 'data');
  const N = 12;

  before(async () => {
    fs.mkdirSync(data);
    // Every video its own colour and tone, so a clip handed out under another key shows.
    const vids: TestVideo[] = Array.from({ length: N }, (_, i) => ({
      out: path.join(data, `v${String(i).padStart(2, '0')}.mp4`),
      seconds: 2,
      fps: 8,
      width: 32,
      height: 32,
      colour: (t: number) =>
        [(40 + 17 * i) % 256, (200 - 13 * i) % 256, Math.min(255, 20 + 9 * i + Math.round(40 * t))] as [number, number, number],
      tone: 220 + 60 * i,
    }));
    await writeTestVideos(vids);
  });

  const evalOpts = (extra: Partial<LoaderOptions> = {}): LoaderOptions => ({
    source: folderSource(data),
    batchSize: 4,
    clip: geom,
    mode: 'eval',
    clipsPerVideo: 2,
    decoders: 2,
    clipsPerProcess: 2,
    ...extra,
  });
  let fresh: Map<string, Clip>;

  before(async () => {
    fresh = (await clipsOf(evalOpts())).clips;
    expect(fresh.size).to.equal(2 * N);
  });

  it('clip cache: two processes filling one --cache-dir at once, then a warm read hands out every clip under its own key', async () => {
    const cache = path.join(root, 'shared-cache');
    const lib = path.join(__dirname, '..', 'lib', 'data');
    // Each child opens its loader (and so the cache, still empty), waits until
    // both have, then decodes every clip (in its own shuffled order) into it:
    // what two `cmac eval ... --cache-dir X` started together do.
    const child = (seed: number): Promise<{ code: number | null; out: string; err: string }> => {
      const script = `
        const fs = require('fs');
        const { ClipLoader, folderSource } = require(${JSON.stringify(lib)});
        (async () => {
          const loader = new ClipLoader({ source: folderSource(${JSON.stringify(data)}), batchSize: 4, clip: ${JSON.stringify(geom)},
            mode: 'eval', clipsPerVideo: 2, decoders: 2, clipsPerProcess: 2, shuffle: true, seed: ${seed}, cacheDir: ${JSON.stringify(cache)} });
          fs.writeFileSync(${JSON.stringify(path.join(root, 'ready-'))} + ${seed}, '');
          while (!fs.existsSync(${JSON.stringify(path.join(root, 'go'))})) await new Promise((r) => setTimeout(r, 10));
          let n = 0;
          for await (const b of loader) n += b.meta.length;
          await loader.close();
          console.log(JSON.stringify({ n, hits: loader.stats.cacheHits }));
        })().catch((e) => { console.error(e); process.exit(1); });`;
      return new Promise((resolve) => {
        const p = spawn(process.execPath, ['-e', script], { stdio: ['ignore', 'pipe', 'pipe'] });
        let out = '';
        let err = '';
        p.stdout.on('data', (d) => (out += d));
        p.stderr.on('data', (d) => (err += d));
        p.on('close', (code) => resolve({ code, out, err }));
      });
    };
    const runs = [child(1), child(2)];
    const t0 = Date.now();
    while (!(fs.existsSync(path.join(root, 'ready-1')) && fs.existsSync(path.join(root, 'ready-2')))) {
      if (Date.now() - t0 > 60000) throw new Error('children did not start');
      await new Promise((r) => setTimeout(r, 20));
    }
    fs.writeFileSync(path.join(root, 'go'), '');
    const done = await Promise.all(runs);
    for (const r of done) {
      expect(r.code, r.err).to.equal(0);
      expect(JSON.parse(r.out)).to.deep.equal({ n: 2 * N, hits: 0 });
    }
    // Both wrote every clip (each started on an empty cache): 2 x 24 lines.
    expect(clipIndex(cache)).to.have.length(4 * N);
    const warm = await clipsOf(evalOpts({ cacheDir: cache }));
    expect(warm.loader.stats.cacheHits, 'every clip from the cache').to.equal(2 * N);
    expect(warm.loader.stats.cacheDamaged).to.equal(0);
    expect(wrongClips(fresh, warm.clips), 'clips handed out under another key').to.deep.equal([]);
  });

  it('clip cache: flipped bytes in a shard and an index line pointing at another entry are detected, counted, decoded again, never returned', async () => {
    const cache = path.join(root, 'damaged-cache');
    const cold = await clipsOf(evalOpts({ cacheDir: cache }));
    expect(cold.loader.stats.cacheHits).to.equal(0);
    expect(wrongClips(fresh, cold.clips)).to.deep.equal([]);
    const idx = clipIndex(cache);
    expect(idx).to.have.length(2 * N);
    const [e0, e1, e2, e3, e4] = idx.map((x) => x.e);
    flipByte(path.join(cache, e0.s), e0.o + 100); // a video byte
    flipByte(path.join(cache, e1.s), e1.o + e1.v + 64); // an audio sample
    flipByte(path.join(cache, e2.s), e2.o + e2.v + e2.a - 13); // the stored clip start (top byte of a float32)
    // e3's index line edited to point at e4's bytes (same sizes: only a check of the bytes against the key sees it).
    const f3 = path.join(cache, idx[3].file);
    const lines = fs.readFileSync(f3, 'utf8').split('\n');
    const at = lines.findIndex((l) => l && JSON.parse(l).k === e3.k);
    lines[at] = JSON.stringify({ ...JSON.parse(lines[at]), s: e4.s, o: e4.o });
    fs.writeFileSync(f3, lines.join('\n'));

    const log: string[] = [];
    const warm = await clipsOf(evalOpts({ cacheDir: cache, log: (l) => log.push(l) }));
    expect(wrongClips(fresh, warm.clips), 'damaged clips returned').to.deep.equal([]);
    expect(warm.loader.stats.cacheDamaged, 'damaged entries counted').to.equal(4);
    expect(warm.loader.stats.cacheHits).to.equal(2 * N - 4);
    expect(warm.loader.stats.decodes, 'the damaged clips decoded again').to.be.greaterThan(0);
    expect(
      log.filter((l) => /^clip cache: .*fails its checksum; decoding the clip again$/.test(l)),
      log.join('\n'),
    ).to.have.length(4);
    // The new entries win from then on.
    const third = await clipsOf(evalOpts({ cacheDir: cache }));
    expect(third.loader.stats.cacheDamaged).to.equal(0);
    expect(third.loader.stats.cacheHits).to.equal(2 * N);
    expect(wrongClips(fresh, third.clips)).to.deep.equal([]);
  });

  it('train cache: an edited index field (probe duration, probe width) is detected and the video decoded again; the clips do not change', async () => {
    const dir = path.join(root, 'train-cache');
    const train = (extra: Partial<LoaderOptions> = {}): LoaderOptions => ({
      source: folderSource(data),
      batchSize: 4,
      clip: geom,
      seed: 3,
      mode: 'train',
      trainCache: { dir },
      ...extra,
    });
    const first = await clipsOf(train());
    expect(first.loader.stats.cacheFills).to.equal(N);
    const file = path.join(
      dir,
      fs.readdirSync(dir).find((f) => /^videos-.*\.jsonl$/.test(f))!,
    );
    const lines = fs.readFileSync(file, 'utf8').split('\n');
    const edit = (i: number, f: (e: VideoEntry) => void): void => {
      const e = JSON.parse(lines[i]) as VideoEntry;
      f(e);
      lines[i] = JSON.stringify(e);
    };
    edit(0, (e) => {
      e.info!.duration = e.info!.duration / 2;
    });
    edit(1, (e) => {
      e.info!.video!.width *= 2;
    });
    fs.writeFileSync(file, lines.join('\n'));

    const log: string[] = [];
    const again = await clipsOf(train({ log: (l) => log.push(l) }));
    expect(wrongClips(first.clips, again.clips), 'clips changed by the edited index').to.deep.equal([]);
    expect(again.loader.stats.cacheDamaged, 'edited index lines counted').to.equal(2);
    expect(again.loader.stats.cacheFills, 'the two videos decoded again').to.equal(2);
    expect(
      log.filter((l) => /^train cache: .*index line .*fails its checksum/.test(l)),
      log.join('\n'),
    ).to.have.length(2);
    const third = await clipsOf(train());
    expect(third.loader.stats.cacheDamaged).to.equal(0);
    expect(third.loader.stats.decodes).to.equal(0);
    expect(wrongClips(first.clips, third.clips)).to.deep.equal([]);
  });
});
