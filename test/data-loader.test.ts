// The clip loader end to end on real files: determinism, order independence
// from decoder timing, epochs, dropLast, sharding, cursor resume, the memory
// bound, bad files, eval clips and the clip cache.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import {
  ClipLoader,
  folderSource,
  manifestSource,
  runFfmpeg,
  writeTestVideos,
  type LoaderBatch,
  type LoaderOptions,
  type TestVideo,
} from '../lib/data';
import { tmpDir, rng } from './helpers';

const geom = { frames: 4, fps: 8, size: 32, audioSeconds: 1, sampleRate: 16000 };

function goodVideo(dir: string, i: number, extra: Partial<TestVideo> = {}): TestVideo {
  const r = rng(100 + i);
  const c: [number, number, number] = [Math.floor(r() * 200) + 30, Math.floor(r() * 200) + 30, Math.floor(r() * 200) + 30];
  return {
    out: path.join(dir, `v${String(i).padStart(2, '0')}.mp4`),
    seconds: 3,
    fps: 12,
    width: 40,
    height: 32,
    colour: (t) => [c[0], c[1], Math.min(255, c[2] + Math.round(t * 10))],
    tone: 300 + 50 * i,
    ...extra,
  };
}

async function collect(opts: LoaderOptions): Promise<{ loader: ClipLoader; batches: LoaderBatch[] }> {
  const loader = new ClipLoader(opts);
  const batches: LoaderBatch[] = [];
  for await (const b of loader) batches.push(b);
  return { loader, batches };
}

function sameBatches(a: LoaderBatch[], b: LoaderBatch[]): void {
  expect(b.length).to.equal(a.length);
  a.forEach((x, i) => {
    const y = b[i];
    expect(y.meta.map((m) => [m.id, m.clip, m.epoch])).to.deep.equal(x.meta.map((m) => [m.id, m.clip, m.epoch]));
    expect(y.video.shape).to.deep.equal(x.video.shape);
    expect(Buffer.from(y.video.data.buffer).equals(Buffer.from(x.video.data.buffer)), `video of batch ${i}`).to.equal(true);
    expect(Buffer.from(y.audio.data.buffer).equals(Buffer.from(x.audio.data.buffer)), `audio of batch ${i}`).to.equal(true);
    expect(y.cursor).to.deep.equal(x.cursor);
  });
}

describe('data: loader', function () {
  this.timeout(120000);
  const root = tmpDir('cmac-data-loader-');
  const good = path.join(root, 'good');
  const bad = path.join(root, 'bad');
  const N = 10;

  before(async () => {
    fs.mkdirSync(good);
    fs.mkdirSync(bad);
    const vids = Array.from({ length: N }, (_, i) => goodVideo(good, i));
    vids.push(
      { out: path.join(bad, 'noaudio.mp4'), seconds: 3, fps: 12, width: 32, height: 32, colour: () => [200, 200, 40], tone: null },
      { out: path.join(bad, 'short.mp4'), seconds: 0.25, fps: 12, width: 32, height: 32, tone: 440 },
      { out: path.join(bad, 'forcut.mp4'), seconds: 3, fps: 12, width: 32, height: 32, tone: 440 },
      { out: path.join(bad, 'forcut.mkv'), seconds: 2, fps: 12, width: 32, height: 32, tone: 440 },
    );
    await writeTestVideos(vids);
    await writeTestVideos([{ out: path.join(bad, 'forcut-moovlast.mp4'), seconds: 3, fps: 12, width: 32, height: 32, tone: 440 }], {
      faststart: false,
    });
    // Zero-length, garbage, truncated (moov first: decodes short; moov last: container cut), unknown codec, no video.
    fs.writeFileSync(path.join(bad, 'empty.mp4'), '');
    const r = rng(5);
    fs.writeFileSync(path.join(bad, 'garbage.mp4'), Buffer.from(Array.from({ length: 5000 }, () => Math.floor(r() * 256))));
    const cut = (src: string, dst: string, share: number): void => {
      const b = fs.readFileSync(path.join(bad, src));
      fs.writeFileSync(path.join(bad, dst), b.subarray(0, Math.floor(b.length * share)));
      fs.rmSync(path.join(bad, src));
    };
    cut('forcut.mp4', 'truncated-data.mp4', 0.25);
    cut('forcut-moovlast.mp4', 'truncated-container.mp4', 0.4);
    const mkv = fs.readFileSync(path.join(bad, 'forcut.mkv'));
    const at = mkv.indexOf('V_MPEG4/ISO/AVC');
    expect(at).to.be.greaterThan(0);
    mkv.write('V_ZZZZZ/ISO/QQQ', at);
    fs.writeFileSync(path.join(bad, 'unsupported.mkv'), mkv);
    fs.rmSync(path.join(bad, 'forcut.mkv'));
    await runFfmpeg([
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=440:duration=2:sample_rate=16000',
      '-c:a',
      'aac',
      path.join(bad, 'audioonly.mp4'),
    ]);
  });

  const base = (): LoaderOptions => ({ source: folderSource(good), batchSize: 4, clip: geom, seed: 11 });

  let reference: LoaderBatch[] = [];

  it('yields batches of the right shapes, and the same batches for the same seed', async () => {
    const a = await collect({ ...base(), epochs: 2 });
    reference = a.batches;
    // 10 clips, batch 4: 4 + 4 + 2 per epoch.
    expect(a.batches.map((b) => b.meta.length)).to.deep.equal([4, 4, 2, 4, 4, 2]);
    const b0 = a.batches[0];
    expect(b0.video.shape).to.deep.equal([4, 4, 32, 32, 3]);
    expect(b0.video.data).to.be.instanceOf(Uint8Array);
    expect(b0.audio.shape).to.deep.equal([4, 16000]);
    expect(b0.audio.data).to.be.instanceOf(Float32Array);
    expect(b0.labels).to.equal(undefined);
    const ids0 = a.batches.slice(0, 3).flatMap((b) => b.meta.map((m) => m.id));
    const ids1 = a.batches.slice(3).flatMap((b) => b.meta.map((m) => m.id));
    expect([...ids0].sort()).to.deep.equal([...ids1].sort());
    expect(new Set(ids0).size).to.equal(N);
    expect(ids0).to.not.deep.equal(ids1, 'epochs are shuffled differently');
    expect(a.loader.cursor).to.deep.equal({ epoch: 2, position: 0 });
    // Augmentation is drawn per (seed, epoch, index): gains in range, some flips.
    const metas = a.batches.flatMap((b) => b.meta);
    expect(metas.every((m) => m.augment && m.augment.gain >= 0.8 && m.augment.gain <= 1.2)).to.equal(true);
    const b = await collect({ ...base(), epochs: 2 });
    sameBatches(a.batches, b.batches);
  });

  it('does not depend on how many decoders run or which finishes first', async () => {
    const one = await collect({ ...base(), epochs: 2, decoders: 1, clipsPerProcess: 1 });
    sameBatches(reference, one.batches);
    const four = await collect({ ...base(), epochs: 2, decoders: 4, clipsPerProcess: 3 });
    sameBatches(reference, four.batches);
  });

  it('changes order and augmentation with the seed', async () => {
    const l1 = new ClipLoader(base());
    const l2 = new ClipLoader({ ...base(), seed: 12 });
    expect(await l1.order(0)).to.not.deep.equal(await l2.order(0));
    expect(await l1.order(0)).to.not.deep.equal(await l1.order(1));
    const plain = new ClipLoader({ ...base(), shuffle: false });
    expect((await plain.order(3)).map((u) => u.index)).to.deep.equal([...Array(N).keys()]);
  });

  it('drops the last incomplete batch with dropLast', async () => {
    const { batches } = await collect({ ...base(), dropLast: true, mode: 'eval' });
    expect(batches.map((b) => b.meta.length)).to.deep.equal([4, 4]);
  });

  it('resumes from a saved cursor with the same remaining batches', async () => {
    // Cursor after the 2nd batch of epoch 0, and after the 1st batch of epoch 1.
    for (const k of [1, 3]) {
      const saved = reference[k].cursor;
      const resumed = new ClipLoader({ ...base(), cursor: saved, epochs: 2 });
      const rest: LoaderBatch[] = [];
      for await (const b of resumed) {
        rest.push(b);
        if (rest.length === reference.length - k - 1) break;
      }
      sameBatches(reference.slice(k + 1), rest);
    }
    // seek() does the same on an existing loader.
    const l = new ClipLoader(base());
    l.seek({ epoch: 1, position: 8 });
    const tail: LoaderBatch[] = [];
    for await (const b of l) tail.push(b);
    sameBatches(reference.slice(5), tail);
  });

  it('gives each rank a disjoint slice that together cover the epoch', async () => {
    for (const evenShards of [false, true]) {
      const slices: number[][] = [];
      for (let rank = 0; rank < 3; rank++) {
        const l = new ClipLoader({ ...base(), rank, worldSize: 3, evenShards });
        slices.push((await l.order(5)).map((u) => u.index));
      }
      const all = slices.flat();
      expect(new Set(all).size).to.equal(all.length, 'disjoint');
      if (evenShards) expect(slices.map((s) => s.length)).to.deep.equal([3, 3, 3]);
      else {
        expect([...all].sort((a, b) => a - b)).to.deep.equal([...Array(N).keys()]);
        expect(slices.map((s) => s.length).sort()).to.deep.equal([3, 3, 4]);
      }
    }
    const r1 = await collect({ ...base(), rank: 1, worldSize: 3, mode: 'eval', shuffle: true });
    const l1 = new ClipLoader({ ...base(), rank: 1, worldSize: 3, mode: 'eval', shuffle: true });
    expect(r1.batches.flatMap((b) => b.meta.map((m) => m.index))).to.deep.equal((await l1.order(0)).map((u) => u.index));
    expect(() => new ClipLoader({ ...base(), rank: 3, worldSize: 3 })).to.throw(RangeError, /rank/);
  });

  it('never holds more decoded data than prefetchBytes', async () => {
    const probe = new ClipLoader({ ...base(), batchSize: 1 });
    const clip = probe.clipBytes;
    expect(clip).to.equal(4 * 32 * 32 * 3 + (16000 + 2 * 1600) * 4);
    const bound = Math.floor(2.5 * clip);
    const l = new ClipLoader({ ...base(), batchSize: 1, decoders: 4, prefetchBytes: bound });
    let consumed = 0;
    let maxAhead = 0;
    for await (const b of l) {
      consumed += b.meta.length;
      maxAhead = Math.max(maxAhead, l.stats.decodes - consumed);
      await new Promise((r) => setTimeout(r, 120));
    }
    expect(consumed).to.equal(N);
    expect(l.stats.peakBytes).to.be.at.most(bound);
    expect(l.stats.peakBytes).to.equal(2 * clip);
    expect(maxAhead).to.be.at.most(2);
    expect(() => new ClipLoader({ ...base(), prefetchBytes: clip - 1 })).to.throw(RangeError, /prefetchBytes/);
  });

  it('skips every kind of bad file with a counted, logged reason and keeps going', async () => {
    const lines: string[] = [];
    const manifest = path.join(root, 'mixed.jsonl');
    const rows = [
      ...fs
        .readdirSync(good)
        .slice(0, 3)
        .map((f) => ({ path: `good/${f}`, label: 1 })),
      ...fs
        .readdirSync(bad)
        .sort()
        .map((f) => ({ path: `bad/${f}`, label: 0 })),
      { path: 'bad/does-not-exist.mp4', label: 0 },
    ];
    fs.writeFileSync(manifest, rows.map((r) => JSON.stringify(r)).join('\n') + '\n');
    const { loader, batches } = await collect({
      source: manifestSource(manifest),
      batchSize: 2,
      clip: geom,
      mode: 'eval',
      log: (l) => lines.push(l),
      epochs: 2,
    });
    const ids = batches.flatMap((b) => b.meta.map((m) => path.basename(m.id)));
    expect(ids.filter((x) => x.startsWith('v')).length).to.equal(6);
    expect(ids.some((x) => !x.startsWith('v'))).to.equal(false);
    expect(batches[0].labels!.data).to.be.instanceOf(Int32Array);
    const once = {
      missing_file: 1,
      empty_file: 1,
      probe_failed: 1,
      truncated: 2,
      unsupported_codec: 1,
      no_video: 1,
      no_audio: 1,
      too_short: 1,
    };
    expect(loader.stats.skipped).to.deep.equal(Object.fromEntries(Object.entries(once).map(([k, v]) => [k, 2 * v])));
    expect(loader.stats.epochs[0].skipped).to.deep.equal(once);
    const reasons = loader.stats.badSamples;
    expect(reasons[path.join(root, 'bad', 'truncated-data.mp4')]).to.equal('truncated');
    expect(reasons[path.join(root, 'bad', 'truncated-container.mp4')]).to.equal('truncated');
    expect(reasons[path.join(root, 'bad', 'garbage.mp4')]).to.equal('probe_failed');
    expect(reasons[path.join(root, 'bad', 'audioonly.mp4')]).to.equal('no_video');
    // One log line per bad sample (not repeated in epoch 2) and one summary per epoch.
    expect(lines.filter((l) => l.startsWith('skip ')).length).to.equal(9);
    expect(lines.filter((l) => l.startsWith('epoch ')).length).to.equal(2);
    expect(lines.find((l) => l.startsWith('epoch 0'))).to.match(/3 clips in 2 batches, skipped 9 \(.*no_audio 1.*\)/);
    expect(lines.find((l) => l.includes('empty.mp4'))).to.match(/empty_file/);
  });

  it("uses silence for a missing audio track with missingAudio: 'silence'", async () => {
    const manifest = path.join(root, 'silence.csv');
    fs.writeFileSync(manifest, 'path,label\nbad/noaudio.mp4,0\ngood/v00.mp4,1\n');
    const { batches } = await collect({
      source: manifestSource(manifest),
      batchSize: 2,
      clip: geom,
      mode: 'eval',
      missingAudio: 'silence',
    });
    expect(batches).to.have.length(1);
    const m = batches[0].meta;
    expect(m[0].silent).to.equal(true);
    const a = batches[0].audio.data;
    expect(a.subarray(0, 16000).every((x) => x === 0)).to.equal(true);
    expect(a.subarray(16000).some((x) => x !== 0)).to.equal(true);
    expect(Array.from(batches[0].labels!.data)).to.deep.equal([0, 1]);
  });

  it('throws a clear error only when nothing usable is left', async () => {
    const onlyBad = path.join(root, 'onlybad');
    fs.mkdirSync(onlyBad);
    for (const f of ['empty.mp4', 'garbage.mp4', 'noaudio.mp4']) fs.copyFileSync(path.join(bad, f), path.join(onlyBad, f));
    let err: Error | undefined;
    try {
      await collect({ source: folderSource(onlyBad), batchSize: 2, clip: geom });
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(/no usable clips in folder .*onlybad/);
    expect(err?.message).to.match(/empty_file 1, probe_failed 1, .*no_audio 1/);
    const empty = path.join(root, 'emptydir');
    fs.mkdirSync(empty);
    fs.writeFileSync(path.join(empty, 'notes.txt'), 'not a video');
    err = undefined;
    try {
      await collect({ source: folderSource(empty), batchSize: 2, clip: geom });
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(/folder .*emptydir has no samples/);
  });

  it('takes N uniform un-augmented clips per video in eval mode, and caches them', async () => {
    const cacheDir = path.join(root, 'cache');
    const opts: LoaderOptions = { ...base(), mode: 'eval', clipsPerVideo: 3, cacheDir, batchSize: 5 };
    const first = await collect(opts);
    const metas = first.batches.flatMap((b) => b.meta);
    expect(metas).to.have.length(3 * N);
    expect(metas.every((m) => m.augment === undefined)).to.equal(true);
    const v0 = metas.filter((m) => m.index === 0);
    expect(v0.map((m) => m.clip)).to.deep.equal([0, 1, 2]);
    // 3 s file, 1 s audio window: centres spread over [0.5, 2.5] at 1/6, 3/6, 5/6.
    v0.forEach((m, i) => expect(m.start + 0.25).to.be.closeTo([0.5 + 2 / 6, 1.5, 0.5 + 10 / 6][i], 1e-6));
    expect(first.loader.stats.cacheHits).to.equal(0);
    const second = await collect(opts);
    expect(second.loader.stats.cacheHits).to.equal(3 * N);
    expect(second.loader.stats.decodes).to.equal(0);
    sameBatches(first.batches, second.batches);
    expect(fs.readdirSync(cacheDir).some((f) => /^clips-r0-\d+\.bin$/.test(f))).to.equal(true);
  });

  it('close() stops the decoders of an iteration left unfinished', async () => {
    const l = new ClipLoader({ ...base(), batchSize: 1, decoders: 2, clipsPerProcess: 2 });
    const it = l[Symbol.asyncIterator]();
    const first = await it.next();
    expect(first.done).to.equal(false);
    const t0 = Date.now();
    await l.close();
    expect(Date.now() - t0).to.be.lessThan(2000);
    // Leaving the generator normally still works after close().
    await it.return(undefined);
  });

  it('labels from sub-folders, and logs a per-epoch summary', async () => {
    const lab = path.join(root, 'labelled');
    for (const [cls, files] of [
      ['cat', ['v00.mp4', 'v01.mp4']],
      ['dog', ['v02.mp4']],
    ] as const) {
      fs.mkdirSync(path.join(lab, cls, 'deep'), { recursive: true });
      for (const f of files) fs.copyFileSync(path.join(good, f), path.join(lab, cls, 'deep', f));
    }
    const lines: string[] = [];
    const { loader, batches } = await collect({
      source: folderSource(lab, { labels: 'subdir' }),
      batchSize: 8,
      clip: geom,
      mode: 'eval',
      log: (l) => lines.push(l),
    });
    expect(loader.classes).to.deep.equal(['cat', 'dog']);
    expect(Array.from(batches[0].labels!.data)).to.deep.equal([0, 0, 1]);
    expect(lines).to.have.length(1);
    expect(lines[0]).to.match(/^epoch 0: 3 clips in 1 batches, skipped 0 \(none\)/);
  });
});
