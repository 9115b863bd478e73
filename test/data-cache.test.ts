// The train-mode cache of decoded videos (LoaderOptions.trainCache): each
// video decoded once, clips cut in JS; determinism, reuse across epochs and
// runs, damaged entries, audio/video alignment, the memory bound, and the JS
// crop / resize / flip / colour jitter against ffmpeg's filters.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import {
  ClipLoader,
  applyEq,
  augmentFrames,
  decodeClip,
  folderSource,
  manifestSource,
  probe,
  writeTestVideos,
  type LoaderBatch,
  type LoaderOptions,
  type Source,
  type TestVideo,
  type VideoEntry,
} from '../lib/data';
import { rng, tmpDir } from './helpers';

const geom = { frames: 4, fps: 8, size: 32, audioSeconds: 1, sampleRate: 16000 };

async function collect(opts: LoaderOptions): Promise<{ loader: ClipLoader; batches: LoaderBatch[] }> {
  const loader = new ClipLoader(opts);
  const batches: LoaderBatch[] = [];
  for await (const b of loader) batches.push(b);
  await loader.close();
  return { loader, batches };
}

function sameBatches(a: LoaderBatch[], b: LoaderBatch[]): void {
  expect(b.length).to.equal(a.length);
  a.forEach((x, i) => {
    const y = b[i];
    expect(y.meta.map((m) => [m.id, m.epoch, m.start, m.audioStart])).to.deep.equal(
      x.meta.map((m) => [m.id, m.epoch, m.start, m.audioStart]),
    );
    expect(Buffer.from(y.video.data.buffer).equals(Buffer.from(x.video.data.buffer)), `video of batch ${i}`).to.equal(true);
    expect(Buffer.from(y.audio.data.buffer).equals(Buffer.from(x.audio.data.buffer)), `audio of batch ${i}`).to.equal(true);
  });
}

/** A folder source that counts open() calls. */
function counting(dir: string): { source: Source; opens: () => number } {
  const inner = folderSource(dir);
  let n = 0;
  return {
    source: { description: inner.description, list: () => inner.list(), open: (r) => (n++, inner.open(r)) },
    opens: () => n,
  };
}

function readIndex(dir: string): VideoEntry[] {
  return fs
    .readdirSync(dir)
    .filter((f) => /^videos-.*\.jsonl$/.test(f))
    .flatMap((f) =>
      fs
        .readFileSync(path.join(dir, f), 'utf8')
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as VideoEntry),
    );
}

function meanAbsDiff(a: Uint8Array, b: Uint8Array): number {
  let s = 0;
  for (let i = 0; i < a.length; i++) s += Math.abs(a[i] - b[i]);
  return s / a.length;
}

describe('data: train cache of decoded videos', function () {
  this.timeout(60000);
  const root = tmpDir('cmac-data-cache-');
  const good = path.join(root, 'good');
  const N = 6;
  const sync = path.join(root, 'sync', 'sync.mp4');
  const halves = path.join(root, 'halves.mp4');
  const palette = path.join(root, 'palette.mp4');
  const colours: [number, number, number][] = [
    [230, 20, 20],
    [20, 230, 20],
    [20, 20, 230],
    [230, 230, 20],
    [20, 230, 230],
    [235, 235, 235],
    [40, 40, 40],
    [128, 90, 60],
  ];

  before(async () => {
    fs.mkdirSync(good);
    fs.mkdirSync(path.dirname(sync));
    const vids: TestVideo[] = Array.from({ length: N }, (_, i) => {
      const r = rng(300 + i);
      const c = [30 + Math.floor(r() * 190), 30 + Math.floor(r() * 190), 30 + Math.floor(r() * 190)];
      // A horizontal ramp (crop and flip show) whose level follows time (frame timing shows).
      return {
        out: path.join(good, `v${i}.mp4`),
        seconds: 3,
        fps: 12,
        width: 40,
        height: 32,
        tone: 300 + 70 * i,
        pixel: (x: number, _y: number, t: number) =>
          [c[0], Math.min(255, 40 + x * 4), Math.min(255, c[2] + Math.round(t * 12))] as [number, number, number],
      };
    });
    vids.push(
      {
        out: sync,
        seconds: 4,
        fps: 25,
        width: 48,
        height: 48,
        colour: () => [60, 60, 60],
        flash: 2.0,
        click: 2.0,
        tone: 440,
        amplitude: 0.05,
      },
      { out: halves, seconds: 1, fps: 10, width: 64, height: 48, pixel: (x) => (x < 32 ? [220, 30, 30] : [30, 30, 220]), tone: null },
      {
        out: palette,
        seconds: 1,
        fps: 8,
        width: 64,
        height: 64,
        pixel: (x, y) => colours[(Math.floor(x / 16) + 4 * Math.floor(y / 32)) % 8],
        tone: null,
      },
    );
    await writeTestVideos(vids);
  });

  const base = (extra: Partial<LoaderOptions> = {}): LoaderOptions => ({
    source: folderSource(good),
    batchSize: 4,
    clip: geom,
    seed: 5,
    mode: 'train',
    ...extra,
  });
  let reference: LoaderBatch[] = [];
  const cacheA = path.join(root, 'cache-a');

  it('decodes each video once, cuts every clip from the cache, the same for the same seed', async () => {
    const a = await collect(base({ trainCache: { dir: cacheA }, epochs: 3 }));
    reference = a.batches;
    const s = a.loader.stats;
    expect(s.cacheFills).to.equal(N);
    expect(s.decodes).to.equal(N, 'one ffmpeg decode per video, none per clip');
    expect(s.cacheHits).to.equal(3 * N);
    expect(s.epochs.map((e) => e.clips)).to.deep.equal([N, N, N]);
    const metas = a.batches.flatMap((b) => b.meta);
    expect(metas.every((m) => m.cached === true && m.augment !== undefined)).to.equal(true);
    expect(a.batches[0].video.shape).to.deep.equal([4, 4, 32, 32, 3]);
    expect(a.batches[0].audio.shape).to.deep.equal([4, 16000]);
    // Clip starts on the cache's frame grid (1/8 s).
    for (const m of metas) expect(Math.abs(m.start * 8 - Math.round(m.start * 8))).to.be.lessThan(1e-9);
    for (const m of metas) expect(m.audioStart).to.be.closeTo(m.start + 0.25 - 0.5, 1e-9);
    // Epochs differ (new draws); a second loader with a fresh cache and other grouping gives the same batches.
    expect(Buffer.from(a.batches[0].video.data).equals(Buffer.from(a.batches[2].video.data))).to.equal(false);
    const b = await collect(base({ trainCache: { dir: path.join(root, 'cache-b') }, epochs: 3, decoders: 1, clipsPerProcess: 3 }));
    sameBatches(reference, b.batches);
    // A later run on the warm cache: no decode, no probe, not even opening the files.
    const c = counting(good);
    const warm = await collect(base({ source: c.source, trainCache: cacheA, epochs: 3 }));
    sameBatches(reference, warm.batches);
    expect(warm.loader.stats.decodes).to.equal(0);
    expect(warm.loader.stats.cacheFills).to.equal(0);
    expect(c.opens()).to.equal(0);
    // Another seed: other clips.
    const other = await collect(base({ trainCache: cacheA, seed: 6 }));
    expect(other.batches.flatMap((x) => x.meta.map((m) => m.start))).to.not.deep.equal(
      reference.slice(0, 2).flatMap((x) => x.meta.map((m) => m.start)),
    );
    expect(other.loader.stats.decodes).to.equal(0);
  });

  it('draws the same clip and augmentation as the ffmpeg path, with pixels close to it', async () => {
    const plain = await collect(base({ epochs: 3 }));
    const cm = reference.flatMap((b) => b.meta);
    const pm = plain.batches.flatMap((b) => b.meta);
    expect(cm.map((m) => [m.id, m.epoch])).to.deep.equal(pm.map((m) => [m.id, m.epoch]));
    cm.forEach((m, i) => {
      expect(m.augment).to.deep.equal(pm[i].augment);
      expect(m.start).to.equal(Math.floor(pm[i].start * 8 + 1e-6) / 8);
    });
    // Same crop/flip/jitter from a source at 1.0x (40x32 < 1.15 * 32 short side): close pixels.
    const cv = Buffer.concat(reference.map((b) => Buffer.from(b.video.data)));
    const pv = Buffer.concat(plain.batches.map((b) => Buffer.from(b.video.data)));
    const d = meanAbsDiff(cv, pv);
    expect(d, `mean |cached - ffmpeg| = ${d.toFixed(2)}`).to.be.lessThan(6);
  });

  it('detects torn and corrupted entries, decodes those videos again and never returns them', async () => {
    const dir = path.join(root, 'cache-damaged');
    const first = await collect(base({ trainCache: { dir } }));
    const entries = readIndex(dir);
    expect(entries).to.have.length(N);
    // 1. One byte changed in every frame of one entry.
    const e0 = entries[0];
    const fd = fs.openSync(path.join(dir, e0.s), 'r+');
    for (let j = 0; j < e0.n; j++) {
      const at = e0.o + j * (e0.w * e0.h * 3 + 4) + 100;
      const b = Buffer.alloc(1);
      fs.readSync(fd, b, 0, 1, at);
      b[0] ^= 0x5a;
      fs.writeSync(fd, b, 0, 1, at);
    }
    fs.closeSync(fd);
    // 2. The last entry of another shard torn (the shard cut in the middle of it).
    const torn =
      entries.filter((e) => e.s !== e0.s).sort((x, y) => y.o - x.o)[0] ?? entries.filter((e) => e !== e0).sort((x, y) => y.o - x.o)[0];
    fs.truncateSync(path.join(dir, torn.s), torn.o + Math.floor(torn.b / 2));
    // 3. A torn index line.
    const idx = fs.readdirSync(dir).find((f) => f.endsWith('.jsonl'))!;
    fs.appendFileSync(path.join(dir, idx), '{"k":"0123abcd","s":"videos-r0-00000.bin","o":0,"w":');
    const lines: string[] = [];
    const again = await collect(base({ trainCache: { dir }, log: (l) => lines.push(l) }));
    sameBatches(first.batches, again.batches);
    expect(again.loader.stats.cacheDamaged).to.equal(2);
    expect(again.loader.stats.cacheFills).to.equal(2);
    expect(lines.filter((l) => /train cache: .*(checksum|short read)/.test(l))).to.have.length(2);
    // The new entries win from then on.
    const third = await collect(base({ trainCache: { dir } }));
    expect(third.loader.stats.cacheDamaged).to.equal(0);
    expect(third.loader.stats.decodes).to.equal(0);
    sameBatches(first.batches, third.batches);
  });

  it('keeps a flash and a click at the same instant in cached clips', async () => {
    // Manifest window [1.6, 2.4] s: every 8-frame 16 fps clip holds the flash at 2.0 s.
    const manifest = path.join(root, 'sync.jsonl');
    fs.writeFileSync(manifest, JSON.stringify({ path: sync, start: 1.6, end: 2.4 }) + '\n');
    const g = { frames: 8, fps: 16, size: 32, audioSeconds: 2, sampleRate: 16000 };
    const { loader, batches } = await collect({
      source: manifestSource(manifest),
      batchSize: 1,
      clip: g,
      seed: 3,
      epochs: 6,
      trainCache: path.join(root, 'cache-sync'),
    });
    expect(loader.stats.cacheFills).to.equal(1);
    expect(batches).to.have.length(6);
    const starts = new Set<number>();
    for (const b of batches) {
      const m = b.meta[0];
      expect(m.cached).to.equal(true);
      starts.add(m.start);
      const v = b.video.data;
      const fb = 32 * 32 * 3;
      const bright = Array.from({ length: 8 }, (_, k) => v.subarray(k * fb, (k + 1) * fb).reduce((s, x) => s + x, 0) / fb);
      const k = bright.indexOf(Math.max(...bright));
      expect(bright.filter((x) => x > bright[k] - 40)).to.have.length(1);
      const a = b.audio.data;
      let onset = -1;
      for (let i = 0; i < a.length; i++)
        if (Math.abs(a[i]) > 0.5) {
          onset = i;
          break;
        }
      expect(onset).to.be.greaterThan(0);
      const shift = m.augment!.shiftSamples;
      const videoTime = m.start + k / 16;
      const audioTime = m.audioStart + (onset + shift) / 16000;
      expect(videoTime).to.be.closeTo(2.0, 1e-9);
      expect(Math.abs(videoTime - audioTime), `epoch ${m.epoch}: video ${videoTime} audio ${audioTime}`).to.be.lessThan(0.004);
    }
    expect(starts.size).to.be.greaterThan(1, 'random starts');
  });

  it('holds the prefetchBytes bound with the cache on', async () => {
    const probeLoader = new ClipLoader(base({ batchSize: 1 }));
    const clip = probeLoader.clipBytes;
    const bound = Math.floor(2.5 * clip);
    const l = new ClipLoader(base({ batchSize: 1, decoders: 4, prefetchBytes: bound, trainCache: cacheA, epochs: 2 }));
    let consumed = 0;
    let maxAhead = 0;
    for await (const b of l) {
      consumed += b.meta.length;
      maxAhead = Math.max(maxAhead, l.stats.cacheHits - consumed);
      await new Promise((r) => setTimeout(r, 30));
    }
    await l.close();
    expect(consumed).to.equal(2 * N);
    expect(l.stats.peakBytes).to.be.at.most(bound);
    expect(maxAhead).to.be.at.most(2);
  });

  it('uses the per-clip ffmpeg path past maxSeconds and maxBytes', async () => {
    // 1.5 s cached of 3 s files: clips whose frames or audio run past it are decoded the usual way.
    const part = await collect(base({ trainCache: { dir: path.join(root, 'cache-part'), maxSeconds: 1.5 }, epochs: 3 }));
    const metas = part.batches.flatMap((b) => b.meta);
    const cached = metas.filter((m) => m.cached);
    expect(part.loader.stats.cacheFills).to.equal(N);
    expect(cached.length).to.be.within(1, metas.length - 1);
    for (const m of cached) {
      expect(m.start + 0.5).to.be.at.most(1.5 + 1e-9);
      expect(m.audioStart + m.augment!.shiftSamples / 16000 + 1).to.be.at.most(1.5 + 0.01);
    }
    expect(part.loader.stats.decodes).to.equal(N + metas.length - cached.length);
    const again = await collect(base({ trainCache: { dir: path.join(root, 'cache-part'), maxSeconds: 1.5 }, epochs: 3 }));
    sameBatches(part.batches, again.batches);
    // No room: nothing is cached, every clip comes from ffmpeg.
    const none = await collect(base({ trainCache: { dir: path.join(root, 'cache-none'), maxBytes: 0 } }));
    expect(none.loader.stats.cacheFills).to.equal(0);
    expect(none.batches.flatMap((b) => b.meta).every((m) => !m.cached)).to.equal(true);
    expect(fs.readdirSync(path.join(root, 'cache-none'))).to.deep.equal([]);
  });

  it('skips bad files with the same counted reasons as without the cache', async () => {
    const bad = path.join(root, 'bad');
    fs.mkdirSync(bad);
    await writeTestVideos([
      { out: path.join(bad, 'noaudio.mp4'), seconds: 3, fps: 12, width: 32, height: 32, tone: null },
      { out: path.join(bad, 'short.mp4'), seconds: 0.25, fps: 12, width: 32, height: 32, tone: 440 },
    ]);
    fs.writeFileSync(path.join(bad, 'empty.mp4'), '');
    const r = rng(9);
    fs.writeFileSync(path.join(bad, 'garbage.mp4'), Buffer.from(Array.from({ length: 3000 }, () => Math.floor(r() * 256))));
    const manifest = path.join(root, 'mixed.jsonl');
    const rows = [
      ...fs
        .readdirSync(good)
        .slice(0, 2)
        .map((f) => path.join(good, f)),
      ...fs
        .readdirSync(bad)
        .sort()
        .map((f) => path.join(bad, f)),
      path.join(bad, 'missing.mp4'),
    ];
    fs.writeFileSync(manifest, rows.map((p) => JSON.stringify({ path: p })).join('\n') + '\n');
    const opts = { source: manifestSource(manifest), batchSize: 2, clip: geom, seed: 1, epochs: 2 };
    const cached = await collect({ ...opts, trainCache: path.join(root, 'cache-bad') });
    const plain = await collect(opts);
    expect(cached.loader.stats.skipped).to.deep.equal(plain.loader.stats.skipped);
    expect(cached.loader.stats.skipped).to.deep.equal({ missing_file: 2, empty_file: 2, probe_failed: 2, no_audio: 2, too_short: 2 });
    expect(cached.loader.stats.cacheFills).to.equal(2);
    expect(cached.batches.flatMap((b) => b.meta.map((m) => m.id))).to.deep.equal(plain.batches.flatMap((b) => b.meta.map((m) => m.id)));
  });

  it('crops, resizes and flips in JS like the ffmpeg filter graph', async () => {
    // A left-right ramp: the flip mirrors it exactly; a crop reads only its part.
    const W = 64;
    const H = 48;
    const ramp = new Uint8Array(W * H * 3);
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) ramp.set([x * 4, 255 - x * 4, 100], (y * W + x) * 3);
    const S = 32;
    const full = { x: 0, y: 0, w: W, h: H };
    const a = augmentFrames(ramp, 0, 0, 1, W, H, { crop: full, size: S });
    const f = augmentFrames(ramp, 0, 0, 1, W, H, { crop: full, size: S, flip: true });
    for (let y = 0; y < S; y++)
      for (let x = 0; x < S; x++)
        for (let c = 0; c < 3; c++) {
          expect(f[(y * S + x) * 3 + c]).to.equal(a[(y * S + (S - 1 - x)) * 3 + c]);
        }
    // Downscaling 2x averages pixel pairs: output x = mean of source 2x, 2x + 1.
    for (let x = 1; x < S - 1; x++) expect(a[x * 3]).to.be.closeTo((2 * x + 0.5) * 4, 1);
    expect(a[3]).to.be.lessThan(a[(S - 2) * 3]);
    const left = augmentFrames(ramp, 0, 0, 1, W, H, { crop: { x: 0, y: 0, w: 16, h: 48 }, size: S });
    expect(Math.max(...Array.from({ length: S }, (_, x) => left[x * 3]))).to.be.at.most(16 * 4);
    // Same size, whole frame: an exact copy.
    const same = augmentFrames(ramp.subarray(0, 32 * 32 * 3), 0, 0, 1, 32, 32, { crop: { x: 0, y: 0, w: 32, h: 32 }, size: 32 });
    expect(Buffer.from(same).equals(Buffer.from(ramp.subarray(0, 32 * 32 * 3)))).to.equal(true);
    // Against ffmpeg's crop + scale + hflip on a real file (two colour halves).
    const info = await probe(halves);
    const src = await decodeClip(halves, info, { start: 0.2, frames: 1, fps: 10, width: 64, height: 48, crop: full });
    for (const [crop, flip] of [
      [{ x: 8, y: 4, w: 40, h: 36 }, false],
      [{ x: 20, y: 0, w: 30, h: 48 }, true],
    ] as const) {
      const ff = await decodeClip(halves, info, { start: 0.2, frames: 1, fps: 10, width: 16, height: 16, crop, flip });
      const js = augmentFrames(src.video, 0, 0, 1, 64, 48, { crop, size: 16, flip });
      const d = meanAbsDiff(js, ff.video);
      expect(d, `crop ${JSON.stringify(crop)} flip ${flip}: mean diff ${d.toFixed(2)}`).to.be.lessThan(8);
    }
  });

  it("applies colour jitter like ffmpeg's eq filter", async () => {
    const info = await probe(palette);
    const req = { start: 0.25, frames: 1, fps: 8, width: 64, height: 64, crop: { x: 0, y: 0, w: 64, h: 64 } };
    const plainFrame = (await decodeClip(palette, info, req)).video;
    for (const jitter of [
      { brightness: 0.15, contrast: 1, saturation: 1 },
      { brightness: -0.18, contrast: 1.35, saturation: 0.65 },
      { brightness: 0.05, contrast: 0.62, saturation: 1.38 },
      { brightness: 0, contrast: 1, saturation: 0 },
    ]) {
      const ff = (await decodeClip(palette, info, { ...req, jitter })).video;
      const js = Uint8Array.from(plainFrame);
      applyEq(js, 0, 64 * 64, jitter);
      const d = meanAbsDiff(js, ff);
      expect(d, `${JSON.stringify(jitter)}: mean |js - ffmpeg| ${d.toFixed(2)}`).to.be.lessThan(3.5);
      expect(meanAbsDiff(js, plainFrame)).to.be.greaterThan(3 * d);
    }
  });
});
