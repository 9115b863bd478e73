// Native decoding (libav in process, native/core/media) against the ffmpeg-CLI
// path (the reference) on media made here: same frames, pixels within one
// level, audio within 1e-4, the same padding and the same audio stream; and
// bad media as counted DataErrors, never a crash. The C++ tests of
// native/core/media run here too (cmac_media_tests). Both paths of the audio
// stream rule (issue 17 item 12) are checked here.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { pipeline } from 'stream/promises';
import * as tar from 'tar-stream';
import { crc32 } from 'zlib';
import * as cli from '../lib/data/ffmpeg';
import {
  decodeClips,
  decoderFor,
  decodeVideos,
  nativeDecoding,
  probe,
  ProbeIndex,
  type DecoderKind,
  type MediaDecoder,
} from '../lib/data/decode';
import { native } from '../lib/native';
import {
  ClipLoader,
  DataError,
  folderSource,
  runFfmpeg,
  tarSource,
  writeTestVideos,
  type ClipJob,
  type LoaderBatch,
  type DecodedClip,
  type DecodeRequest,
  type ProbeInfo,
} from '../lib/data';
import { root, tmpDir } from './helpers';

const mediaTests = path.join(root, 'build', 'Release', 'cmac_media_tests');
const palette: [number, number, number][] = [
  [230, 20, 20],
  [20, 230, 20],
  [20, 20, 230],
  [230, 230, 20],
  [20, 230, 230],
  [230, 20, 230],
  [235, 235, 235],
  [20, 20, 20],
];

interface Diff {
  meanAbs: number;
  maxFrameMean: number;
  maxAbs: number;
  audioMax: number;
}

function diff(a: DecodedClip, b: DecodedClip, frameBytes: number): Diff {
  let sum = 0;
  let maxAbs = 0;
  let maxFrameMean = 0;
  const frames = a.video.length / frameBytes;
  for (let f = 0; f < frames; f++) {
    let fs_ = 0;
    for (let i = f * frameBytes; i < (f + 1) * frameBytes; i++) {
      const d = Math.abs(a.video[i] - b.video[i]);
      fs_ += d;
      if (d > maxAbs) maxAbs = d;
    }
    sum += fs_;
    maxFrameMean = Math.max(maxFrameMean, fs_ / frameBytes);
  }
  let audioMax = 0;
  if (a.audio && b.audio) for (let i = 0; i < a.audio.length; i++) audioMax = Math.max(audioMax, Math.abs(a.audio[i] - b.audio[i]));
  return { meanAbs: sum / a.video.length, maxFrameMean, maxAbs, audioMax };
}

const worst: Diff = { meanAbs: 0, maxFrameMean: 0, maxAbs: 0, audioMax: 0 };

/** Decodes on both paths and checks parity; returns the native clip. */
async function parity(file: string, info: ProbeInfo, req: DecodeRequest, what: string): Promise<DecodedClip> {
  const jobs: ClipJob[] = [{ file, info, req }];
  const [c] = await cli.decodeClips(jobs);
  const [n] = await decodeClips(jobs, { decoder: 'native' });
  if (c instanceof DataError) throw new Error(`${what}: the CLI failed: ${c.message}`);
  if (n instanceof DataError) throw new Error(`${what}: native failed: ${n.message}`);
  expect(n.video.length, what).to.equal(c.video.length);
  expect(n.audio === null, `${what}: audio presence`).to.equal(c.audio === null);
  expect(n.audioPad, `${what}: audio padding`).to.deep.equal(c.audioPad);
  const d = diff(n, c, req.width * req.height * 3);
  for (const k of Object.keys(worst) as (keyof Diff)[]) worst[k] = Math.max(worst[k], d[k]);
  // Every frame within one level on average: a different frame picked would be far off.
  expect(d.maxFrameMean, `${what}: per-frame mean |native - cli| (max |d| ${d.maxAbs})`).to.be.at.most(1);
  expect(d.audioMax, `${what}: audio max |native - cli|`).to.be.at.most(1e-4);
  return n;
}

function meanColour(video: Uint8Array, frame: number, size: number): number[] {
  const s = [0, 0, 0];
  for (let i = 0; i < size * size; i++) for (let c = 0; c < 3; c++) s[c] += video[(frame * size * size + i) * 3 + c];
  return s.map((v) => v / (size * size));
}

describe('data: native decoding (libav) vs the ffmpeg CLI', function () {
  this.timeout(120000);
  const dir = tmpDir('cmac-data-native-');
  const colours = path.join(dir, 'colours.mp4');
  const sync = path.join(dir, 'sync.mp4');
  const halves = path.join(dir, 'halves.mkv');
  const wide = path.join(dir, 'wide.mp4');
  const rotated = path.join(dir, 'rotated.mp4');
  const real = path.join(dir, 'real.mp4');
  const two = path.join(dir, 'two-audio.mkv');

  before(async function () {
    const n = nativeDecoding();
    if (!n.available) {
      console.log(`      (skipped: ${n.reason})`);
      this.skip();
    }
    await writeTestVideos([
      {
        out: colours,
        seconds: 3,
        fps: 24,
        width: 64,
        height: 48,
        colour: (_t, f) => palette[Math.floor(f / 3) % palette.length],
        tone: 1000,
        sampleRate: 44100,
        amplitude: 0.4,
      },
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
        out: wide,
        seconds: 2,
        fps: 15,
        width: 96,
        height: 40,
        pixel: (x, y, t) => [(x * 2 + t * 40) & 255, (y * 5) & 255, (x * y) & 255],
        tone: 300,
        sampleRate: 22050,
      },
    ]);
    const lavfi = (spec: string) => ['-f', 'lavfi', '-i', spec];
    // 640x360 H.264 25 fps (keyframe every 2 s) + AAC 44.1 kHz stereo: a realistic file for mid-GOP seeks.
    await runFfmpeg([
      ...lavfi('testsrc2=s=640x360:r=25:d=6'),
      ...lavfi('sine=f=523:sample_rate=44100:d=6'),
      '-ac',
      '2',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-g',
      '50',
      '-pix_fmt',
      'yuv420p',
      '-c:a',
      'aac',
      '-y',
      real,
    ]);
    // Rotation metadata: the tkhd display matrix of a 90-degree turn, written into the file
    // (ffmpeg 5.1 has no option that writes one; 6.0 has -display_rotation).
    await runFfmpeg([
      ...lavfi('testsrc2=s=64x32:r=10:d=2'),
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-pix_fmt',
      'yuv420p',
      '-y',
      rotated,
    ]);
    const rb = fs.readFileSync(rotated);
    const tkhd = rb.indexOf('tkhd');
    expect(tkhd).to.be.greaterThan(0);
    [0, 0x10000, 0, -0x10000, 0, 0, 0, 0, 0x40000000].forEach((v, i) => rb.writeInt32BE(v, tkhd - 4 + 48 + 4 * i));
    fs.writeFileSync(rotated, rb);
    // Two audio streams; the second is the default one.
    await runFfmpeg([
      ...lavfi('color=c=gray:s=32x32:r=10:d=2'),
      ...lavfi('sine=f=440:sample_rate=16000:d=2'),
      ...lavfi('sine=f=1500:sample_rate=16000:d=2'),
      '-map',
      '0:v',
      '-map',
      '1:a',
      '-map',
      '2:a',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-c:a',
      'aac',
      '-disposition:a:0',
      '0',
      '-disposition:a:1',
      'default',
      '-y',
      two,
    ]);
  });

  after(() => {
    console.log(
      `      worst native vs CLI: pixel mean |d| ${worst.meanAbs.toFixed(3)}, worst frame mean ${worst.maxFrameMean.toFixed(3)}, max |d| ${worst.maxAbs}, audio max |d| ${worst.audioMax.toExponential(2)}`,
    );
  });

  it('runs the C++ tests of native/core/media', function () {
    if (!fs.existsSync(mediaTests)) throw new Error(`${mediaTests} is missing: run npm run build:native`);
    const r = spawnSync(mediaTests, [], { encoding: 'utf8', timeout: 120000 });
    expect(r.status, r.stdout + r.stderr).to.equal(0);
    expect(r.stdout).to.match(/ok {3}media_decode_colours_by_time/);
  });

  it('probes the same fields as ffprobe', async () => {
    for (const f of [colours, halves, wide, rotated, real, two]) {
      const a = await cli.probe(f);
      const b = await probe(f, { decoder: 'native' });
      expect(b.format, f).to.equal(a.format);
      expect(b.duration, f).to.be.closeTo(a.duration, 1e-3);
      const plain = (x: unknown) => JSON.parse(JSON.stringify(x ?? null));
      expect(plain(b.video), f).to.deep.equal(plain(a.video));
      expect(plain(b.audio), f).to.deep.equal(plain(a.audio));
      expect(b.size).to.equal(a.size);
    }
  });

  it('picks the same frames with the same colours (seeks, fps changes, centre crop)', async () => {
    const info = await cli.probe(colours);
    for (const [start, fps] of [
      [0, 8],
      [0.9, 8],
      [1.03, 16],
      [0.5, 24],
      [1.5, 10],
      [0.04, 30],
    ] as const) {
      const req = { start, frames: 8, fps, width: 32, height: 32, audio: { start: start - 0.25, samples: 16000, sampleRate: 16000 } };
      const n = await parity(colours, info, req, `colours start ${start} fps ${fps}`);
      for (let k = 0; k < 8; k++) {
        const want = palette[Math.floor(Math.floor((start + k / fps) * 24 + 1e-9) / 3) % palette.length];
        const got = meanColour(n.video, k, 32);
        expect(
          got.every((v, i) => Math.abs(v - want[i]) < 24),
          `start ${start} fps ${fps} frame ${k}: ${got.map(Math.round)} vs ${want}`,
        ).to.equal(true);
      }
    }
  });

  it('matches on a realistic file: mid-GOP seeks, resampled stereo AAC', async () => {
    const info = await cli.probe(real);
    for (const start of [0, 1.37, 2.96, 4.5]) {
      await parity(
        real,
        info,
        { start, frames: 8, fps: 8, width: 112, height: 112, audio: { start: start - 0.1, samples: 32000, sampleRate: 16000 } },
        `real start ${start}`,
      );
    }
  });

  it('matches with a crop, a flip and colour jitter on a non-square source', async () => {
    const info = await cli.probe(wide);
    const cases: Partial<DecodeRequest>[] = [
      { crop: { x: 10, y: 3, w: 51, h: 33 }, flip: true },
      { crop: { x: 0, y: 0, w: 96, h: 40 }, jitter: { brightness: 0.1, contrast: 1.2, saturation: 0.7 } },
      { crop: { x: 7, y: 1, w: 40, h: 37 }, flip: true, jitter: { brightness: -0.2, contrast: 0.8, saturation: 1.3 } },
      {},
    ];
    for (const [i, c] of cases.entries()) {
      await parity(
        wide,
        info,
        { start: 0.3 + i * 0.2, frames: 6, fps: 10, width: 24, height: 24, ...c, audio: { start: 0.1, samples: 8000, sampleRate: 16000 } },
        `wide case ${i}`,
      );
    }
  });

  it('honours rotation metadata like ffmpeg autorotate', async () => {
    const info = await cli.probe(rotated);
    expect([info.video!.width, info.video!.height]).to.deep.equal([32, 64]);
    await parity(rotated, info, { start: 0.5, frames: 4, fps: 10, width: 16, height: 32, crop: { x: 0, y: 0, w: 32, h: 64 } }, 'rotated');
    await parity(rotated, info, { start: 0.2, frames: 3, fps: 5, width: 20, height: 20, flip: true }, 'rotated centre crop');
  });

  it('keeps the flash and the click aligned, and pads audio past the end the same way', async () => {
    const info = await cli.probe(sync);
    await parity(
      sync,
      info,
      { start: 1.75, frames: 8, fps: 16, width: 32, height: 32, audio: { start: 1.0, samples: 32000, sampleRate: 16000 } },
      'sync',
    );
    const ci = await cli.probe(colours);
    const end = await parity(
      colours,
      ci,
      { start: 2, frames: 4, fps: 8, width: 16, height: 16, audio: { start: 2, samples: 32000, sampleRate: 16000 } },
      'past the end',
    );
    expect(end.audioPad.back).to.be.within(15000, 16100);
    const front = await parity(
      colours,
      ci,
      { start: 0, frames: 2, fps: 8, width: 16, height: 16, audio: { start: -0.5, samples: 32000, sampleRate: 16000 } },
      'before the start',
    );
    expect(front.audioPad.front).to.equal(8000);
    const beyond = await parity(
      colours,
      ci,
      { start: 0, frames: 2, fps: 8, width: 16, height: 16, audio: { start: 5, samples: 1600, sampleRate: 16000 } },
      'window after the file',
    );
    expect(beyond.audioPad.back).to.equal(1600);
  });

  it('a file without audio gives null audio on both paths', async () => {
    const info = await cli.probe(halves);
    expect(info.audio).to.equal(undefined);
    const n = await parity(
      halves,
      info,
      { start: 0.2, frames: 3, fps: 10, width: 16, height: 16, audio: { start: 0, samples: 1600, sampleRate: 16000 } },
      'no audio',
    );
    expect(n.audio).to.equal(null);
  });

  for (const decoder of ['ffmpeg-cli', 'native'] as DecoderKind[]) {
    it(`two audio streams: the default-disposition one, or data.audioStream (${decoder})`, async () => {
      const hz = async (audioStream?: number): Promise<number> => {
        const info = await probe(two, { decoder, audioStream });
        const [d] = await decodeClips(
          [
            {
              file: two,
              info,
              req: { start: 0, frames: 1, fps: 10, width: 16, height: 16, audio: { start: 0.5, samples: 8000, sampleRate: 16000 } },
            },
          ],
          { decoder },
        );
        if (d instanceof DataError) throw d;
        let c = 0;
        for (let i = 1; i < d.audio!.length; i++) if (d.audio![i - 1] < 0 !== d.audio![i] < 0) c++;
        return c / 2 / 0.5;
      };
      expect(await hz()).to.be.closeTo(1500, 20);
      expect(await hz(0)).to.be.closeTo(440, 10);
      expect(await hz(1)).to.be.closeTo(1500, 20);
    });
  }

  it('bad media: counted DataErrors with the CLI path reasons, never a crash', async () => {
    const bytes = fs.readFileSync(real);
    const cut = path.join(dir, 'cut.mp4');
    fs.writeFileSync(cut, bytes.subarray(0, Math.floor(bytes.length * 0.4)));
    const junk = path.join(dir, 'junk.mp4');
    fs.writeFileSync(junk, Buffer.from(Array.from({ length: 4096 }, (_, i) => (i * 7919) & 255)));
    const empty = path.join(dir, 'empty.mp4');
    fs.writeFileSync(empty, '');
    for (const [f, reason] of [
      [cut, 'truncated'],
      [junk, 'probe_failed'],
      [empty, 'empty_file'],
      [path.join(dir, 'missing.mp4'), 'missing_file'],
    ] as const) {
      const e1 = await cli.probe(f).catch((e) => e);
      const e2 = await probe(f, { decoder: 'native' }).catch((e) => e);
      expect(e2, f).to.be.instanceOf(DataError);
      expect((e2 as DataError).reason, `${f}: ${(e2 as Error).message}`).to.equal(reason);
      expect((e1 as DataError).reason, f).to.equal(reason);
    }
    // A clip decoded from a file cut after probing: truncated, on its own clip only.
    const info = await cli.probe(real);
    const cutLate = path.join(dir, 'cut-late.mp4');
    fs.writeFileSync(cutLate, bytes.subarray(0, Math.floor(bytes.length * 0.999)));
    const res = await decodeClips(
      [
        { file: missingCodec(dir, halves), info: await cli.probe(halves), req: { start: 0.2, frames: 2, fps: 10, width: 16, height: 16 } },
        { file: real, info, req: { start: 5.5, frames: 8, fps: 8, width: 16, height: 16 } },
        { file: real, info, req: { start: 1, frames: 2, fps: 8, width: 16, height: 16 } },
      ],
      { decoder: 'native' },
    );
    expect((res[0] as DataError).reason).to.equal('unsupported_codec');
    expect((res[1] as DataError).reason).to.equal('truncated');
    expect(res[2]).to.not.be.instanceOf(DataError);
  });
});

describe('data: windows at the end of a file, native vs the ffmpeg CLI', function () {
  this.timeout(300000);
  const dir = tmpDir('cmac-data-native-end-');
  const lavfi = (spec: string) => ['-f', 'lavfi', '-i', spec];
  // Source rates 8, 25, 30000/1001 and a variable-rate one (frames dropped, timestamps kept), H.264 + AAC; one in Matroska.
  const sources: { name: string; args: string[] }[] = [
    {
      name: 'r8.mp4',
      args: [...lavfi('testsrc=size=48x48:rate=8'), ...lavfi('sine=frequency=440:sample_rate=16000'), '-t', '3', '-shortest'],
    },
    {
      name: 'r25.mp4',
      args: [...lavfi('testsrc=size=48x48:rate=25'), ...lavfi('sine=frequency=440:sample_rate=16000'), '-t', '2.6', '-shortest'],
    },
    {
      name: 'ntsc.mp4',
      args: [...lavfi('testsrc=size=48x48:rate=30000/1001'), ...lavfi('sine=frequency=440:sample_rate=16000'), '-t', '2.3', '-shortest'],
    },
    {
      name: 'vfr.mp4',
      args: [
        ...lavfi('testsrc=size=48x48:rate=25'),
        '-t',
        '2.5',
        '-vf',
        "select='not(eq(mod(n\\,7)\\,3))*not(eq(mod(n\\,5)\\,1))'",
        '-vsync',
        'vfr',
      ],
    },
    { name: 'r25.mkv', args: [...lavfi('testsrc=size=48x48:rate=25'), '-t', '2.2'] },
  ];

  before(async function () {
    if (!nativeDecoding().available) this.skip();
    for (const s of sources)
      await runFfmpeg([
        ...s.args,
        '-c:v',
        'libx264',
        '-preset',
        'ultrafast',
        '-pix_fmt',
        'yuv420p',
        ...(s.args.includes('sine=frequency=440:sample_rate=16000') ? ['-c:a', 'aac'] : []),
        '-y',
        path.join(dir, s.name),
      ]);
  });

  it('the last frames of a file: the same frames and the same result kind on both paths (source rates 8, 25, 30000/1001, VFR; several fps)', async () => {
    const mismatches: string[] = [];
    let compared = 0;
    let okBoth = 0;
    for (const s of sources) {
      const file = path.join(dir, s.name);
      const info = await cli.probe(file);
      const dur = info.video?.duration && info.video.duration > 0 ? info.video.duration : info.duration;
      for (const fps of [8, 10, 16, 25]) {
        const frames = 4;
        for (const start of [
          dur - frames / fps,
          dur - (frames - 0.5) / fps,
          dur - (frames - 1) / fps,
          dur - frames / fps - 0.3 / fps,
          dur - (frames - 2.5) / fps,
        ]) {
          const st = Math.max(0, Math.round(start * 1e6) / 1e6);
          const req: DecodeRequest = { start: st, frames, fps, width: 24, height: 24 };
          const jobs: ClipJob[] = [{ file, info, req }];
          const [c] = await cli.decodeClips(jobs);
          const [n] = await decodeClips(jobs, { decoder: 'native' });
          compared++;
          const what = `${s.name} start ${st} fps ${fps}`;
          const kind = (x: DecodedClip | DataError) => (x instanceof DataError ? `error ${x.reason}` : 'ok');
          if (kind(c) !== kind(n)) {
            mismatches.push(
              `${what}: cli ${c instanceof DataError ? c.message : 'ok'} | native ${n instanceof DataError ? n.message : 'ok'}`,
            );
            continue;
          }
          if (c instanceof DataError || n instanceof DataError) continue;
          okBoth++;
          const d = diff(n, c, req.width * req.height * 3);
          if (n.video.length !== c.video.length || d.maxFrameMean > 1)
            mismatches.push(`${what}: frames differ (worst frame mean |d| ${d.maxFrameMean.toFixed(2)})`);
        }
      }
    }
    expect(mismatches, `${mismatches.length} of ${compared} windows differ:\n${mismatches.join('\n')}`).to.deep.equal([]);
    expect(okBoth, 'most windows end inside the file and decode on both paths').to.be.greaterThan(compared / 2);
    expect(okBoth, 'some windows run past the end (truncated on both paths)').to.be.lessThan(compared);
  });
});

describe('data: WebDataset tar members decoded from memory (native), temp files (CLI)', function () {
  this.timeout(120000);
  const dir = tmpDir('cmac-data-native-tar-');
  const shard = path.join(dir, 'shard-000.tar');

  before(async function () {
    if (!nativeDecoding().available) this.skip();
    const colours: [number, number, number][] = [
      [220, 40, 40],
      [40, 220, 40],
      [40, 40, 220],
    ];
    const files = colours.map((_, i) => path.join(dir, `v${i}.mp4`));
    await writeTestVideos(
      files.map((out, i) => ({ out, seconds: 2, fps: 10, width: 32, height: 32, colour: () => colours[i], tone: 400 + 300 * i })),
    );
    const pack = tar.pack();
    const done = pipeline(pack, fs.createWriteStream(shard));
    for (let i = 0; i < files.length; i++) {
      pack.entry({ name: `clips/${i}.mp4` }, fs.readFileSync(files[i]));
      pack.entry({ name: `clips/${i}.json` }, JSON.stringify({ label: i }));
    }
    pack.finalize();
    await done;
  });

  it('the native path writes no temporary file and gives the same clips as the CLI path (which extracts members)', async () => {
    const saved = process.env.CMAC_DECODER;
    delete process.env.CMAC_DECODER;
    const created: string[] = [];
    const watcher = fs.watch(os.tmpdir(), (_e, name) => {
      if (name && String(name).startsWith(`cmac-tar-${process.pid}-`)) created.push(String(name));
    });
    const mine = () => fs.readdirSync(os.tmpdir()).filter((n) => n.startsWith(`cmac-tar-${process.pid}-`));
    const load = async (decoder: DecoderKind) => {
      const loader = new ClipLoader({
        source: tarSource(shard),
        batchSize: 3,
        clip: { frames: 4, fps: 8, size: 24, audioSeconds: 1, sampleRate: 16000 },
        mode: 'train',
        seed: 7,
        decoder,
      });
      const batches: LoaderBatch[] = [];
      for await (const b of loader) batches.push(b);
      return { batches, stats: loader.stats };
    };
    try {
      const before = mine();
      const n = await load('native');
      await new Promise((r) => setTimeout(r, 200)); // let fs.watch report
      expect(created, 'temporary files of the native run').to.deep.equal([]);
      expect(mine(), 'temporary folders after the native run').to.deep.equal(before);
      const c = await load('ffmpeg-cli');
      await new Promise((r) => setTimeout(r, 200));
      expect(created.length, 'the CLI path extracts members (the watch sees them)').to.be.greaterThan(0);
      expect(n.batches).to.have.length(1);
      expect(c.batches).to.have.length(1);
      expect(n.stats.skipped).to.deep.equal({});
      expect(n.batches[0].meta.map((m) => m.label)).to.deep.equal(c.batches[0].meta.map((m) => m.label));
      expect(n.batches[0].meta.map((m) => m.augment)).to.deep.equal(c.batches[0].meta.map((m) => m.augment));
      const v1 = n.batches[0].video.data;
      const v2 = c.batches[0].video.data;
      expect(v1.length).to.equal(v2.length);
      let maxAbs = 0;
      for (let i = 0; i < v1.length; i++) maxAbs = Math.max(maxAbs, Math.abs(v1[i] - v2[i]));
      expect(maxAbs, 'video max |native - cli|').to.be.at.most(1);
      const a1 = n.batches[0].audio.data;
      const a2 = c.batches[0].audio.data;
      let amax = 0;
      for (let i = 0; i < a1.length; i++) amax = Math.max(amax, Math.abs(a1[i] - a2[i]));
      expect(amax, 'audio max |native - cli|').to.be.at.most(1e-4);
    } finally {
      watcher.close();
      if (saved !== undefined) process.env.CMAC_DECODER = saved;
    }
  });

  it('in-memory bytes on the CLI path: an Error that names the sample and the fix', async () => {
    const bytes = fs.readFileSync(path.join(dir, 'v0.mp4'));
    const info = await cli.probe(path.join(dir, 'v0.mp4'));
    const job = { file: 'shard.tar#clips/0.mp4', bytes, info, req: { start: 0, frames: 2, fps: 8, width: 16, height: 16 } };
    let err: Error | undefined;
    try {
      await decodeClips([job], { decoder: 'ffmpeg-cli' });
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(/shard\.tar#clips\/0\.mp4 is in memory, which only the native decoder reads/);
    const p = await probe('shard.tar#clips/0.mp4', { decoder: 'native', bytes });
    expect(p.video?.width).to.equal(32);
  });
});

describe('data: the train cache warns when its projected size exceeds the free disk', function () {
  this.timeout(120000);
  const dir = tmpDir('cmac-data-vcache-disk-');
  const media = path.join(dir, 'media');

  before(async () => {
    fs.mkdirSync(media);
    await writeTestVideos(
      [0, 1, 2, 3].map((i) => ({
        out: path.join(media, `v${i}.mp4`),
        seconds: 2,
        fps: 10,
        width: 32,
        height: 32,
        colour: () => [40 * i, 90, 200] as [number, number, number],
        tone: 500,
      })),
    );
  });

  const epoch = async (cacheDir: string) => {
    const lines: string[] = [];
    const loader = new ClipLoader({
      source: folderSource(media),
      batchSize: 2,
      clip: 'tiny',
      mode: 'train',
      seed: 3,
      trainCache: cacheDir,
      log: (l) => lines.push(l),
    });
    for await (const b of loader.epoch()) expect(b.meta).to.have.length(2);
    await loader.close();
    return lines.filter((l) => l.startsWith('train cache: projected'));
  };

  it('one line naming the projection, the free space and the fix; none when the disk has room', async () => {
    expect(await epoch(path.join(dir, 'roomy')), 'the real disk has room for 4 tiny videos').to.deep.equal([]);
    const nodeFs = require('fs') as typeof fs; // the module object itself (the import is a read-only view of it)
    const real = nodeFs.statfsSync;
    // The free space the file system reports, made small (4 blocks of 4 KiB): the cache, the decoding and the projection are real.
    (nodeFs as { statfsSync: unknown }).statfsSync = (p: fs.PathLike) => ({ ...real(p), bavail: 4, bsize: 4096 });
    let warned: string[];
    try {
      warned = await epoch(path.join(dir, 'full'));
    } finally {
      (nodeFs as { statfsSync: unknown }).statfsSync = real;
    }
    expect(warned, 'logged once').to.have.length(1);
    expect(warned[0]).to.match(
      /^train cache: projected size [\d.]+ [kMGT]?B \(4 videos x ~[\d.]+ [kMGT]?B\) exceeds the free disk at .*full \(16\.4 kB free/,
    );
    expect(warned[0]).to.match(/Fix: trainCache\.maxBytes/);
  });
});

function meanAbs(a: Uint8Array, b: Uint8Array): number {
  let sum = 0;
  for (let i = 0; i < a.length; i++) sum += Math.abs(a[i] - b[i]);
  return sum / a.length;
}

describe('data: the train cache fills on the native pool (decodeVideos)', function () {
  this.timeout(120000);
  const dir = tmpDir('cmac-data-vcache-native-');
  const media = path.join(dir, 'media');
  const vids = [
    {
      out: path.join(media, 'a.mp4'),
      seconds: 2,
      fps: 10,
      width: 48,
      height: 32,
      pixel: (x: number, _y: number, t: number) =>
        [Math.min(255, 4 * x), 90, Math.min(255, 40 + Math.round(t * 80))] as [number, number, number],
      tone: 440,
    },
    {
      out: path.join(media, 'b.mp4'),
      seconds: 3,
      fps: 25,
      width: 40,
      height: 40,
      colour: (t: number) => [200, Math.min(255, Math.round(t * 70)), 30] as [number, number, number],
      tone: 700,
    },
    {
      out: path.join(media, 'c.mp4'),
      seconds: 1.5,
      fps: 12,
      width: 32,
      height: 48,
      colour: () => [20, 160, 220] as [number, number, number],
      tone: null,
    },
  ];

  before(async function () {
    if (!nativeDecoding().available || process.env.CMAC_DECODER === 'ffmpeg-cli') this.skip();
    fs.mkdirSync(media);
    await writeTestVideos(vids);
  });

  /** Whole-video decode into memory: frames and audio as the cache would store them. */
  async function whole(
    file: string,
    decoder: DecoderKind | 'cli-direct',
    maxSeconds?: number,
  ): Promise<{ video: Buffer; audio: Float32Array }> {
    const info = await probe(file, { decoder: 'native' });
    const v: Buffer[] = [];
    const a: Buffer[] = [];
    const job = {
      file,
      info,
      fps: 8,
      width: 24,
      height: 20,
      maxSeconds,
      sampleRate: 16000,
      onVideo: (c: Buffer) => v.push(Buffer.from(c)),
      onAudio: (c: Buffer) => a.push(Buffer.from(c)),
      onReset: () => {
        v.length = 0;
        a.length = 0;
      },
    };
    const [r] = decoder === 'cli-direct' ? await cli.decodeVideos([job]) : await decodeVideos([job], { decoder });
    if (r) throw r;
    const ab = Buffer.concat(a);
    return { video: Buffer.concat(v), audio: new Float32Array(ab.buffer, ab.byteOffset, ab.length / 4) };
  }

  it('gives the frames and audio of the ffmpeg CLI fill (same frame count, pixels and samples within the parity bounds)', async () => {
    for (const f of vids) {
      const c = await whole(f.out, 'cli-direct');
      const n = await whole(f.out, 'native');
      const fb = 24 * 20 * 3;
      expect(n.video.length / fb, `${f.out}: frames`).to.equal(c.video.length / fb);
      expect(meanAbs(n.video, c.video), `${f.out}: mean |native - CLI| pixel`).to.be.at.most(1);
      expect(n.audio.length, `${f.out}: audio samples`).to.equal(c.audio.length);
      if (n.audio.length === 0) continue;
      // The audio is the per-clip decoder's window [0, length) (the CLI fill, decoded without -ss, differs from it in its first
      // ~576 samples: the AAC priming): cached clips get the samples a per-clip decode gets.
      const info = await probe(f.out, { decoder: 'native' });
      const req = { start: 0, frames: 1, fps: 8, width: 24, height: 20, audio: { start: 0, samples: n.audio.length, sampleRate: 16000 } };
      const [clip] = await cli.decodeClips([
        { file: f.out, info, req: { ...req, crop: { x: 0, y: 0, w: info.video!.width, h: info.video!.height } } },
      ]);
      if (clip instanceof DataError) throw clip;
      let amax = 0;
      for (let i = 0; i < n.audio.length; i++) amax = Math.max(amax, Math.abs(clip.audio![i] - n.audio[i]));
      expect(amax, `${f.out}: max |native fill - CLI clip| audio`).to.be.at.most(1e-4);
    }
    // Capped at maxSeconds: the slots before it (1.5 s at 8 fps: 12; ffmpeg -t may add the slot at the cap, holding the frame
    // before it: 13 here) and its audio (-t: within an AAC frame of it).
    const capped = await whole(vids[1].out, 'native', 1.5);
    const cappedCli = await whole(vids[1].out, 'cli-direct', 1.5);
    expect(capped.video.length / (24 * 20 * 3)).to.equal(12);
    expect(cappedCli.video.length / (24 * 20 * 3)).to.be.within(12, 13);
    expect(capped.video.equals(cappedCli.video.subarray(0, capped.video.length)) || meanAbs(capped.video, cappedCli.video) <= 1).to.equal(
      true,
    );
    expect(capped.audio.length).to.equal(24000);
    expect(Math.abs(cappedCli.audio.length - 24000)).to.be.at.most(1024);
  });

  it('a train cache fill runs no ffmpeg process: every clip is cut from videos the native pool decoded', async () => {
    const saved = process.env.CMAC_FFMPEG;
    process.env.CMAC_FFMPEG = path.join(dir, 'no-such-ffmpeg'); // a CLI fill would fail: its clips would go per clip
    try {
      const loader = new ClipLoader({
        source: folderSource(media),
        batchSize: 3,
        clip: { frames: 4, fps: 8, size: 16, audioSeconds: 1, sampleRate: 16000 },
        seed: 2,
        epochs: 2,
        missingAudio: 'silence',
        trainCache: path.join(dir, 'cache'),
        decoder: 'native',
      });
      const metas = [];
      for await (const b of loader) metas.push(...b.meta);
      await loader.close();
      expect(loader.stats.cacheFills).to.equal(3);
      expect(loader.stats.decodes, 'one decode per video, none per clip').to.equal(3);
      expect(metas).to.have.length(6);
      expect(metas.every((m) => m.cached === true)).to.equal(true);
    } finally {
      if (saved === undefined) delete process.env.CMAC_FFMPEG;
      else process.env.CMAC_FFMPEG = saved;
    }
  });
});

describe('data: the native decoder object (addon createDecoder)', function () {
  this.timeout(60000);
  const dir = tmpDir('cmac-native-api-');
  const f = path.join(dir, 'a.mp4');
  let addon: { createDecoder(o?: object): MediaDecoder; mediaInfo(): { libav: boolean; versions?: string } };

  before(async function () {
    if (!nativeDecoding().available) this.skip();
    addon = native() as unknown as typeof addon;
    await writeTestVideos([{ out: f, seconds: 2, fps: 10, tone: 440, colour: (t) => [Math.round(t * 100), 50, 200] }]);
  });

  it('rejects bad arguments with TypeError / RangeError naming the field, synchronously', () => {
    expect(() => addon.createDecoder({ threads: 0 })).to.throw(RangeError, /options.threads/);
    expect(() => addon.createDecoder({ threads: 'x' })).to.throw(TypeError, /options.threads/);
    const d = addon.createDecoder({ threads: 1 });
    try {
      const job = { file: f, start: 0, frames: 2, fps: 10, width: 16, height: 16 };
      expect(() => d.decodeBatch('x' as unknown as object[])).to.throw(TypeError, /jobs must be an array/);
      expect(() => d.decodeBatch([{ ...job, frames: undefined }])).to.throw(TypeError, /jobs\[0\].frames/);
      expect(() => d.decodeBatch([{ ...job, fps: -1 }])).to.throw(RangeError, /jobs\[0\].fps/);
      expect(() => d.decodeBatch([job, { ...job, file: 7 }])).to.throw(TypeError, /jobs\[1\].file/);
      expect(() => d.decodeBatch([{ ...job, width: 9000 }])).to.throw(RangeError, /jobs\[0\].width/);
      expect(() => d.decodeBatch([{ ...job, audio: { start: 0 } }])).to.throw(TypeError, /audio.samples/);
      expect(() => d.probe(3 as unknown as string)).to.throw(TypeError, /probe\(file\)/);
      expect(() => (d.probe as unknown as (this: unknown, f: string) => unknown).call({}, f)).to.throw(TypeError); // V8: Illegal invocation
    } finally {
      d.dispose();
    }
    expect(d.disposed).to.equal(true);
    expect(() => d.probe(f)).to.throw(/disposed/);
  });

  it('decodes bytes in memory (custom AVIO) exactly as the file, into one batch buffer', async () => {
    const d = addon.createDecoder({ threads: 2 });
    try {
      const bytes = fs.readFileSync(f);
      const pf = await d.probe(f);
      const pm = await d.probe(new Uint8Array(bytes));
      expect(pm).to.deep.equal(pf);
      const job = { start: 0.5, frames: 3, fps: 10, width: 16, height: 16, audio: { start: 0.4, samples: 1600, sampleRate: 16000 } };
      const b = await d.decodeBatch([
        { ...job, file: f },
        { ...job, file: bytes },
        { ...job, file: path.join(dir, 'missing.mp4') },
      ]);
      expect(b.video.length).to.equal(3 * 3 * 16 * 16 * 3);
      expect(b.audio.length).to.equal(3 * 1600);
      expect(b.clips.map((c) => c.ok)).to.deep.equal([true, true, false]);
      expect(b.clips[2].reason).to.equal('missing_file');
      const n = 3 * 16 * 16 * 3;
      expect(Buffer.from(b.video.subarray(0, n)).equals(Buffer.from(b.video.subarray(n, 2 * n)))).to.equal(true);
      expect(Array.from(b.audio.subarray(0, 1600))).to.deep.equal(Array.from(b.audio.subarray(1600, 3200)));
    } finally {
      d.dispose();
    }
  });

  it('dispose() with batches in flight: every promise still settles', async () => {
    const d = addon.createDecoder({ threads: 1 });
    const job = { file: f, start: 0, frames: 4, fps: 10, width: 32, height: 32 };
    const pending = Array.from({ length: 6 }, () => d.decodeBatch([job, job]));
    d.dispose();
    const done = await Promise.all(pending);
    expect(done.every((b) => b.clips.every((c) => c.ok))).to.equal(true);
  });
});

describe('data: the on-disk probe index', function () {
  this.timeout(60000);
  it('a second probe of an unchanged file comes from the index; a changed file (size or mtime) is probed again', async () => {
    const dir = tmpDir('cmac-probe-index-');
    const f = path.join(dir, 'a.mp4');
    const ix = path.join(dir, 'index', 'probes.jsonl');
    await writeTestVideos([{ out: f, seconds: 1, fps: 10, tone: 440 }]);
    const first = await probe(f, { probeIndex: ix });
    expect(fs.readFileSync(ix, 'utf8').trim().split('\n')).to.have.length(1);
    // Same size and mtime, garbage content: only an index hit can still give the first answer.
    const st = fs.statSync(f);
    const good = fs.readFileSync(f);
    fs.writeFileSync(f, Buffer.alloc(good.length, 7));
    fs.utimesSync(f, st.atimeMs / 1000, st.mtimeMs / 1000);
    const again = await probe(f, { probeIndex: ix });
    expect(again).to.deep.equal(first);
    // A fresh process's view: a new index object reading the same file.
    const fresh = new ProbeIndex(ix);
    expect(fresh.size).to.equal(1);
    // Another mtime: a new key, probed again (and the garbage is found).
    fs.utimesSync(f, st.atimeMs / 1000, (st.mtimeMs + 5000) / 1000);
    const e = await probe(f, { probeIndex: ix }).catch((x) => x);
    expect(e).to.be.instanceOf(DataError);
    expect((e as DataError).reason).to.equal('probe_failed');
    // Another audio stream choice is another key.
    fs.writeFileSync(f, good);
    fs.utimesSync(f, st.atimeMs / 1000, st.mtimeMs / 1000);
    await probe(f, { probeIndex: ix, audioStream: 0 });
    expect(fs.readFileSync(ix, 'utf8').trim().split('\n')).to.have.length(2);
    // A torn line (a killed writer) is skipped.
    fs.appendFileSync(ix, '{"key": "x", "in');
    expect(new ProbeIndex(ix).size).to.equal(2);
    // The next writer starts its own line after the torn one, and a reader finds it.
    fs.writeFileSync(path.join(dir, 'b.mp4'), good);
    const other = new ProbeIndex(ix);
    const kb = ProbeIndex.key(path.join(dir, 'b.mp4'), fs.statSync(path.join(dir, 'b.mp4')), undefined);
    other.put(kb, { ...first, file: path.join(dir, 'b.mp4') });
    expect(new ProbeIndex(ix).get(kb)?.duration).to.equal(first.duration);
  });

  it('reads lines lazily and never returns a damaged, torn or colliding one', () => {
    const dir = tmpDir('cmac-probe-index-');
    const ix = path.join(dir, 'probes.idx');
    const info = (d: number): ProbeInfo => ({
      file: 'x',
      size: 10,
      format: 'mp4',
      duration: d,
      video: { codec: 'h264', width: 8, height: 8, fps: 10, rotation: 0 },
    });
    const w = new ProbeIndex(ix);
    for (let i = 0; i < 1000; i++) w.put(`k${i}`, info(i));
    const lines = fs.readFileSync(ix, 'utf8').split('\n').filter(Boolean);
    expect(lines).to.have.length(1000);
    expect(lines[0]).to.match(/^P1 [0-9a-f]{16} [0-9a-f]{8} \{"key":"k0"/);
    const r = new ProbeIndex(ix);
    expect(r.size).to.equal(1000);
    expect(r.get('k7')?.duration).to.equal(7);
    expect(r.get('k999')?.duration).to.equal(999);
    expect(r.get('nope')).to.equal(undefined);
    // Damage: one byte of line 5's JSON changed (same length): its crc fails, a miss.
    const text = fs.readFileSync(ix, 'utf8');
    const at = text.indexOf('"duration":5,');
    fs.writeFileSync(ix, text.slice(0, at) + '"duration":6,' + text.slice(at + 13));
    expect(new ProbeIndex(ix).get('k5')).to.equal(undefined);
    // A later line of the same key wins over the damaged one; a torn last line is a miss.
    const again = new ProbeIndex(ix);
    again.put('k5', info(55));
    fs.appendFileSync(ix, lines[3].slice(0, 40));
    const r2 = new ProbeIndex(ix);
    expect(r2.get('k5')?.duration).to.equal(55);
    expect(r2.get('k3')?.duration).to.equal(3);
    // Same hash, other key (a collision): the line's key is checked.
    const json = Buffer.from(JSON.stringify({ key: 'k9x', info: info(99) }));
    fs.appendFileSync(ix, `\n${lines[9].slice(0, 20)} ${(crc32(json) >>> 0).toString(16).padStart(8, '0')} ${json}\n`);
    expect(new ProbeIndex(ix).get('k9')?.duration).to.equal(9);
  });
});

describe('data: the probe index sidecar (sorted hashes + line offsets)', () => {
  it('is written by an opener that finds many new lines, used by the next, and ignored when it is damaged or stale', () => {
    const dir = tmpDir('cmac-probe-lookup-');
    const ix = path.join(dir, 'probes.idx');
    const info = (d: number): ProbeInfo => ({
      file: 'x',
      size: 10,
      format: 'mp4',
      duration: d,
      video: { codec: 'h264', width: 8, height: 8, fps: 10, rotation: 0 },
    });
    const w = new ProbeIndex(ix);
    for (let i = 0; i < 1500; i++) w.put(`k${i}`, info(i));
    expect(fs.existsSync(`${ix}.lookup`)).to.equal(false);
    const first = new ProbeIndex(ix); // 1500 lines past no sidecar: writes one
    expect(fs.existsSync(`${ix}.lookup`)).to.equal(true);
    expect(first.get('k1499')?.duration).to.equal(1499);
    // The next opener reads the sidecar plus the lines appended since.
    first.put('k5', info(55));
    first.put('new', info(-1));
    const second = new ProbeIndex(ix);
    expect(second.size).to.equal(1501);
    expect(second.get('k5')?.duration).to.equal(55);
    expect(second.get('k6')?.duration).to.equal(6);
    expect(second.get('new')?.duration).to.equal(-1);
    expect(second.get('k1500')).to.equal(undefined);
    // A damaged sidecar (one byte) is ignored: the lines are scanned.
    const lk = fs.readFileSync(`${ix}.lookup`);
    lk[lk.length - 3] ^= 0x40;
    fs.writeFileSync(`${ix}.lookup`, lk);
    expect(new ProbeIndex(ix).get('k700')?.duration).to.equal(700);
    // A sidecar of another file (the index rewritten with other lines) is ignored too.
    new ProbeIndex(ix);
    const text = fs.readFileSync(ix, 'utf8').split('\n').filter(Boolean);
    fs.writeFileSync(ix, [...text.slice(1), text[0]].join('\n') + '\n');
    const moved = new ProbeIndex(ix);
    expect(moved.get('k0')?.duration).to.equal(0);
    expect(moved.get('k1')?.duration).to.equal(1);
    expect(moved.get('k1499')?.duration).to.equal(1499);
  });
});

describe('data: decoder choice and the fallback to the ffmpeg CLI', () => {
  it('without native decoding in the addon, probe/decodeClips use the CLI and say why in one line', async () => {
    const savedEnv = process.env.CMAC_DECODER;
    delete process.env.CMAC_DECODER;
    // A fresh copy of lib/data/decode.js over an addon stub without the media calls (an addon built without libav answers mediaInfo().libav = false).
    const decodePath = require.resolve('../lib/data/decode');
    const nativePath = require.resolve('../lib/native');
    const saved = { decode: require.cache[decodePath], native: require.cache[nativePath] };
    const lines: string[] = [];
    try {
      delete require.cache[decodePath];
      require.cache[nativePath] = {
        ...saved.native!,
        exports: {
          native: () => ({
            mediaInfo: () => ({ libav: false, reason: 'built without libav (test)' }),
            createDecoder: () => {
              throw new Error('no');
            },
          }),
        },
      } as NodeModule;
      const d = require(decodePath) as typeof import('../lib/data/decode');
      expect(d.nativeDecoding()).to.deep.equal({ available: false, reason: 'built without libav (test)' });
      const dir = tmpDir('cmac-fallback-');
      const f = path.join(dir, 'a.mp4');
      await writeTestVideos([{ out: f, seconds: 1, fps: 10, tone: 440 }]);
      const info = await d.probe(f, { log: (l) => lines.push(l) });
      const [clip] = await d.decodeClips([{ file: f, info, req: { start: 0, frames: 2, fps: 10, width: 16, height: 16 } }], {
        log: (l) => lines.push(l),
      });
      expect(clip).to.not.be.instanceOf(DataError);
      expect(d.decoderFor({ log: (l) => lines.push(l) })).to.equal('ffmpeg-cli');
      expect(lines).to.deep.equal([
        'cmac: native decoding is unavailable: built without libav (test); decoding with the ffmpeg CLI instead',
      ]);
    } finally {
      require.cache[decodePath] = saved.decode;
      require.cache[nativePath] = saved.native;
      if (savedEnv !== undefined) process.env.CMAC_DECODER = savedEnv;
    }
  });

  it('$CMAC_DECODER and the decoder option pick the path', () => {
    const saved = process.env.CMAC_DECODER;
    try {
      process.env.CMAC_DECODER = 'ffmpeg-cli';
      expect(decoderFor()).to.equal('ffmpeg-cli');
      expect(decoderFor({ decoder: 'native' }), 'the variable overrides the option').to.equal('ffmpeg-cli');
      process.env.CMAC_DECODER = 'native';
      expect(decoderFor({ decoder: 'ffmpeg-cli' })).to.equal(nativeDecoding().available ? 'native' : 'ffmpeg-cli');
      delete process.env.CMAC_DECODER;
      expect(decoderFor()).to.equal(nativeDecoding().available ? 'native' : 'ffmpeg-cli');
      expect(decoderFor({ decoder: 'ffmpeg-cli' })).to.equal('ffmpeg-cli');
    } finally {
      if (saved === undefined) delete process.env.CMAC_DECODER;
      else process.env.CMAC_DECODER = saved;
    }
  });
});

/** halves.mkv with its codec id overwritten (as data-ffmpeg.test.ts does). */
function missingCodec(dir: string, halves: string): string {
  const bad = path.join(dir, 'badcodec.mkv');
  const b = fs.readFileSync(halves);
  b.write('V_ZZZZZ/ISO/QQQ', b.indexOf('V_MPEG4/ISO/AVC'));
  fs.writeFileSync(bad, b);
  return bad;
}
