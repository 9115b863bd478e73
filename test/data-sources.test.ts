// Each source type on real files: a folder of mixed containers, CSV and JSONL
// manifests, WebDataset-style tar shards, and the synthetic dataset.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import * as tar from 'tar-stream';
import {
  ClipLoader,
  expandBraces,
  folderSource,
  manifestSource,
  parseCsv,
  runFfmpeg,
  synthesize,
  synthSource,
  tarSource,
  writeTestVideos,
  type LoaderBatch,
  type LoaderOptions,
} from '../lib/data';
import { tmpDir } from './helpers';

const geom = { frames: 4, fps: 8, size: 24, audioSeconds: 1, sampleRate: 16000 };

async function run(opts: LoaderOptions): Promise<{ loader: ClipLoader; batches: LoaderBatch[] }> {
  const loader = new ClipLoader(opts);
  const batches: LoaderBatch[] = [];
  for await (const b of loader) batches.push(b);
  return { loader, batches };
}

async function writeTar(file: string, members: { name: string; data: Buffer | string }[]): Promise<void> {
  const pack = tar.pack();
  const out = fs.createWriteStream(file);
  const done = new Promise<void>((resolve, reject) => {
    out.on('finish', () => resolve());
    out.on('error', reject);
  });
  pack.pipe(out);
  for (const m of members) {
    await new Promise<void>((resolve, reject) => pack.entry({ name: m.name }, m.data, (err) => (err ? reject(err) : resolve())));
  }
  pack.finalize();
  await done;
}

describe('data: sources', function () {
  this.timeout(120000);
  const root = tmpDir('cmac-data-sources-');
  const media = path.join(root, 'media');
  const colourOf: Record<string, [number, number, number]> = { a: [220, 40, 40], b: [40, 220, 40], c: [40, 40, 220], d: [220, 220, 40] };

  before(async () => {
    fs.mkdirSync(path.join(media, 'sub', 'deeper'), { recursive: true });
    await writeTestVideos([
      { out: path.join(media, 'a.mp4'), seconds: 3, fps: 12, width: 32, height: 32, colour: () => colourOf.a, tone: 500 },
      { out: path.join(media, 'sub', 'b.mkv'), seconds: 3, fps: 12, width: 32, height: 32, colour: () => colourOf.b, tone: 700 },
      { out: path.join(media, 'sub', 'deeper', 'c.MOV'), seconds: 3, fps: 12, width: 32, height: 32, colour: () => colourOf.c, tone: 900 },
      { out: path.join(media, 'd.mp4'), seconds: 3, fps: 12, width: 32, height: 32, colour: () => colourOf.d, tone: 1100 },
    ]);
    await runFfmpeg([
      '-i',
      path.join(media, 'a.mp4'),
      '-c:v',
      'libvpx',
      '-b:v',
      '200k',
      '-c:a',
      'libopus',
      path.join(media, 'sub', 'e.webm'),
    ]);
    await runFfmpeg(['-i', path.join(media, 'd.mp4'), '-c:v', 'mpeg4', '-c:a', 'pcm_s16le', path.join(media, 'f.avi')]);
    fs.writeFileSync(path.join(media, 'readme.txt'), 'not a video');
  });

  it('folder: finds every video container recursively, in sorted order', async () => {
    const src = folderSource(media);
    const refs = await src.list();
    expect(refs.map((r) => path.relative(media, r.path!))).to.deep.equal([
      'a.mp4',
      'd.mp4',
      'f.avi',
      path.join('sub', 'b.mkv'),
      path.join('sub', 'deeper', 'c.MOV'),
      path.join('sub', 'e.webm'),
    ]);
    expect(refs.map((r) => r.index)).to.deep.equal([0, 1, 2, 3, 4, 5]);
    const { batches, loader } = await run({ source: src, batchSize: 6, clip: geom, mode: 'eval' });
    expect(loader.stats.skipped).to.deep.equal({});
    expect(batches[0].meta).to.have.length(6);
    // Each decoded clip has its file's colour.
    const want = [colourOf.a, colourOf.d, colourOf.d, colourOf.b, colourOf.c, colourOf.a];
    const frame = 4 * 24 * 24 * 3;
    want.forEach((c, i) => {
      const k = i * frame + (12 * 24 + 12) * 3;
      const px = Array.from(batches[0].video.data.subarray(k, k + 3));
      expect(
        px.every((v, j) => Math.abs(v - c[j]) < 30),
        `${batches[0].meta[i].id}: ${px} vs ${c}`,
      ).to.equal(true);
    });
    await expectRejects(folderSource(path.join(root, 'nope')).list(), /folder .*nope does not exist/);
  });

  it('CSV manifest: quoted fields, boxes, string labels, start/end windows', async () => {
    const csv = path.join(root, 'list.csv');
    fs.writeFileSync(
      csv,
      'path,start,end,label,boxes,note\r\n' +
        'media/a.mp4,0.5,2.5,cat,"[[0.1,0.2,0.3,0.4]]","hello, ""world"""\r\n' +
        `${path.join(media, 'd.mp4')},,,dog,,\r\n` +
        'media/sub/b.mkv,1.0,1.8,cat,,"multi\nline"\r\n',
    );
    const src = manifestSource(csv);
    const refs = await src.list();
    expect(src.classes).to.deep.equal(['cat', 'dog']);
    expect(refs[0]).to.deep.include({ label: 0, start: 0.5, end: 2.5, boxes: [[0.1, 0.2, 0.3, 0.4]], extra: { note: 'hello, "world"' } });
    expect(refs[0].path).to.equal(path.join(media, 'a.mp4'));
    expect(refs[1]).to.deep.include({ label: 1, path: path.join(media, 'd.mp4') });
    expect(refs[1].start).to.equal(undefined);
    expect(refs[2].extra).to.deep.equal({ note: 'multi\nline' });
    const { batches } = await run({ source: src, batchSize: 3, clip: geom, mode: 'eval' });
    const m = batches[0].meta;
    // Window [0.5, 2.5] is 2 s >= the 1 s audio window: centre 1.5, clip from 1.25.
    expect(m[0].start).to.be.closeTo(1.25, 1e-9);
    expect(m[0].boxes).to.deep.equal([[0.1, 0.2, 0.3, 0.4]]);
    expect(m[1].start).to.be.closeTo(1.25, 1e-9);
    // Window [1.0, 1.8] is shorter than the audio window: the video clip is centred in it.
    expect(m[2].start).to.be.closeTo(1.4 - 0.25, 1e-9);
    expect(Array.from(batches[0].labels!.data)).to.deep.equal([0, 1, 0]);
    expect(parseCsv('a,b\n"x,1",2\n\n')).to.deep.equal([
      ['a', 'b'],
      ['x,1', '2'],
    ]);
    fs.writeFileSync(path.join(root, 'bad.csv'), 'file_name,label\nx.mp4,1\n');
    await expectRejects(manifestSource(path.join(root, 'bad.csv')).list(), /must name a 'path' column/);
  });

  it('JSONL manifest: numeric labels, split filter, extra fields, clear errors', async () => {
    const jl = path.join(root, 'list.jsonl');
    fs.writeFileSync(
      jl,
      [
        { path: 'media/a.mp4', label: 3, split: 'train', speaker: 'x' },
        { path: 'media/d.mp4', label: 5, split: 'val' },
        { path: 'media/sub/b.mkv', label: 4, split: 'train', start: 1, boxes: { t: 0, box: [0, 0, 1, 1] } },
      ]
        .map((r) => JSON.stringify(r))
        .join('\n') + '\n\n',
    );
    const train = manifestSource(jl, { split: 'train' });
    const refs = await train.list();
    expect(refs.map((r) => r.label)).to.deep.equal([3, 4]);
    expect(refs[0].extra).to.deep.equal({ split: 'train', speaker: 'x' });
    expect(refs[1].boxes).to.deep.equal({ t: 0, box: [0, 0, 1, 1] });
    expect(train.classes).to.equal(undefined);
    const { batches } = await run({ source: train, batchSize: 2, clip: geom, seed: 3 });
    expect(batches[0].meta.map((m) => m.label).sort()).to.deep.equal([3, 4]);
    fs.writeFileSync(path.join(root, 'broken.jsonl'), '{"path": "a.mp4"}\n{oops\n');
    await expectRejects(manifestSource(path.join(root, 'broken.jsonl')).list(), /broken\.jsonl:2: not JSON/);
    await expectRejects(manifestSource(path.join(root, 'missing.jsonl')).list(), /cannot read manifest .*missing\.jsonl/);
  });

  it('tar shards: WebDataset keys, json fields, brace patterns, temp files cleaned up', async () => {
    const shards = path.join(root, 'shards');
    fs.mkdirSync(shards);
    const rd = (f: string): Buffer => fs.readFileSync(path.join(media, f));
    await writeTar(path.join(shards, 'train-000.tar'), [
      { name: 'clips/000000.mp4', data: rd('a.mp4') },
      { name: 'clips/000000.json', data: JSON.stringify({ label: 0, boxes: [[0, 0, 0.5, 0.5]], caption: 'red' }) },
      { name: 'clips/000001.json', data: JSON.stringify({ label: 1 }) },
      { name: 'clips/000001.mkv', data: rd(path.join('sub', 'b.mkv')) },
    ]);
    await writeTar(path.join(shards, 'train-001.tar'), [
      { name: '000002.mp4', data: rd('d.mp4') },
      { name: '000002.json', data: JSON.stringify({ label: 2, start: 0.5, end: 2.5 }) },
      { name: '000003.json', data: JSON.stringify({ label: 3 }) },
      { name: '000004.txt', data: 'ignored' },
    ]);
    expect(expandBraces(path.join(shards, 'train-{000..001}.tar'))).to.deep.equal([
      path.join(shards, 'train-000.tar'),
      path.join(shards, 'train-001.tar'),
    ]);
    const tmp = path.join(root, 'tar-tmp');
    const src = tarSource(path.join(shards, 'train-{000..001}.tar'), { tmpDir: tmp });
    const refs = await src.list();
    expect(refs.map((r) => r.id.split('#')[1])).to.deep.equal(['clips/000000', 'clips/000001', '000002', '000003', '000004']);
    expect(refs[0]).to.deep.include({ label: 0, boxes: [[0, 0, 0.5, 0.5]] });
    expect(refs[0].extra).to.include({ caption: 'red' });
    expect(refs[2]).to.deep.include({ label: 2, start: 0.5, end: 2.5 });
    const lines: string[] = [];
    const { loader, batches } = await run({ source: src, batchSize: 8, clip: geom, mode: 'eval', log: (l) => lines.push(l) });
    expect(batches[0].meta.map((m) => m.label)).to.deep.equal([0, 1, 2]);
    expect(loader.stats.skipped).to.deep.equal({ no_video: 2 });
    // The clip from the tar member has the member's colour (a.mp4 is red).
    const px = Array.from(batches[0].video.data.subarray((12 * 24 + 12) * 3, (12 * 24 + 12) * 3 + 3));
    expect(px[0]).to.be.greaterThan(180);
    expect(px[1]).to.be.lessThan(80);
    expect(
      fs.existsSync(tmp) ? fs.readdirSync(tmp) : [],
      'no member left behind (the native decoder reads them from memory: no folder at all)',
    ).to.deep.equal([]);
    // A folder of shards works too; a cut-off shard keeps its complete samples and warns.
    const whole = fs.readFileSync(path.join(shards, 'train-001.tar'));
    fs.writeFileSync(path.join(shards, 'train-002.tar'), whole.subarray(0, whole.indexOf(Buffer.from('000002.json')) + 100));
    const folder = tarSource(shards);
    const refs2 = await folder.list();
    expect(refs2.length).to.be.at.least(6);
    expect(folder.warnings!.join('\n')).to.match(/train-002\.tar is damaged/);
    const r2 = await run({ source: folder, batchSize: 16, clip: geom, mode: 'eval', log: (l) => lines.push(l) });
    expect(r2.batches[0].meta.length).to.equal(4);
    expect(lines.some((l) => /warning: tar shard .*train-002\.tar is damaged/.test(l))).to.equal(true);
    await folder.close!();
    await expectRejects(tarSource(path.join(shards, 'nope.tar')).list(), /nope\.tar does not exist/);
  });

  it('synthetic dataset: synthSource reads the generated manifest and class names', async () => {
    const out = path.join(root, 'synth');
    const r = await synthesize({ out, clips: 10, seed: 4, size: 32, seconds: 2, fps: 8 });
    expect(r.counts).to.deep.equal({ train: 8, val: 1, test: 1 });
    const src = synthSource(out, { split: 'train' });
    const { loader, batches } = await run({ source: src, batchSize: 4, clip: geom, seed: 1 });
    expect(loader.classes).to.have.length(8);
    expect(loader.classes![0]).to.equal('red-circle');
    const metas = batches.flatMap((b) => b.meta);
    expect(metas).to.have.length(8);
    for (const m of metas) {
      const gt = JSON.parse(fs.readFileSync(path.join(out, String(m.extra!.gt)), 'utf8'));
      expect(m.label).to.equal(gt.label);
      expect(m.extra!.split).to.equal('train');
    }
    await expectRejects(synthSource(path.join(root, 'nothing')).list(), /has no manifest\.jsonl/);
  });
});

async function expectRejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  try {
    await p;
  } catch (e) {
    expect((e as Error).message).to.match(re);
    return;
  }
  expect.fail(`expected a rejection matching ${re}`);
}
