// Robustness catalogue (issue 9): bad inputs across the whole surface, in one
// place. Every case asserts either a clear error (naming the thing, and where
// the library promises it, the fix) or a counted skip, and the last test proves
// the process survived all of them. Cases that overlap test/addon, model,
// config and data-loader are listed again here on purpose (cheaply).
//
// Disks: tests run as root, so chmod cannot make anything unreadable. This
// file uses (a) paths under a regular FILE (ENOTDIR), (b) a read-only tmpfs
// (`mount -t tmpfs -o ro`), (c) a full tmpfs (`-o size=48m`: one tiny-preset
// checkpoint with Adam state is ~33 MB, so the second one cannot be written),
// (d) a tmpfs out of inodes (`-o nr_inodes=N`: the JSON sidecar cannot be
// created), and (e) a file-size limit (`ulimit -f`) in a child process, which
// works without mount privileges. Cases needing mount are skipped with a
// printed reason where mount is not permitted.
//
// Known bugs are `it.skip` with a BUG-n comment; see the report of issue 9.
//
// The catalogue continues in suites of their own (issue 17): robustness-cache
// (shared and damaged clip/train caches), robustness-run (run-folder lock,
// closed pipes, streamed overlays, signals and leftovers), robustness-data
// (per-row skips, the label rule, too few clips, waits for data, eval on
// manifests), robustness-cli (embed output, brace patterns, __proto__ and deep
// configs, localize --from, symlinked folders), and data-native (bad media and
// the audio-stream rule on both decoders).
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError, loadConfigFile, parseOverride, resolveConfig } from '../lib/config';
import {
  createLoader,
  folderSource,
  manifestSource,
  runFfmpeg,
  synthesize,
  writeTestVideos,
  type ClipLoader,
  type LoaderBatch,
} from '../lib/data';
import { memory, setNumThreads } from '../lib/info';
import { CmacModel } from '../lib/model';
import { native } from '../lib/native';
import { modelPreset } from '../lib/presets';
import { readSafetensors, writeSafetensors } from '../lib/safetensors';
import { latestCheckpoint, listCheckpoints, readCheckpointState, train } from '../lib/train';
import { randomBatch, rejects, rng, root, tinyConfig, tmpDir } from './helpers';
import type { CmacConfigInput } from '../lib/config';

const geom = { frames: 4, fps: 8, size: 32, audioSeconds: 1, sampleRate: 16000 };

/** Mounts a tmpfs with `opts` on `dir`; false (and why) when this machine does not allow it. */
function mountTmpfs(dir: string, opts: string): { ok: boolean; why?: string } {
  fs.mkdirSync(dir, { recursive: true });
  const r = spawnSync('mount', ['-t', 'tmpfs', '-o', opts, 'tmpfs', dir], { encoding: 'utf8' });
  return r.status === 0 ? { ok: true } : { ok: false, why: (r.stderr || r.error?.message || `exit ${r.status}`).trim() };
}
function umount(dir: string): void {
  spawnSync('umount', [dir]);
}

/** A safetensors file from a header (string or object), a data buffer and an optional forced header length. */
function st(header: string | object | Buffer, data: Buffer = Buffer.alloc(0), len?: bigint): Buffer {
  const h = Buffer.isBuffer(header) ? header : Buffer.from(typeof header === 'string' ? header : JSON.stringify(header));
  const n = Buffer.alloc(8);
  n.writeBigUInt64LE(len ?? BigInt(h.length));
  return Buffer.concat([n, h, data]);
}
const f32 = (shape: number[], b: number, e: number) => ({ dtype: 'F32', shape, data_offsets: [b, e] });

describe('robustness: a catalogue of bad inputs', function () {
  this.timeout(300000);
  const dir = tmpDir('cmac-robust-');
  const mounts: string[] = [];
  let model: CmacModel;
  let checkpoint = ''; // a good tiny checkpoint (weights + Adam state)
  let probeWeight: number[] = [];
  const weightOf = async (m: CmacModel) => Array.from((await m.stateDict())['heads.projV.fc2.bias'].data as Float32Array).slice(0, 8);

  before(async () => {
    setNumThreads(2);
    model = await CmacModel.create(tinyConfig({ seed: 1 }));
    await model.trainStep(randomBatch(2, 1, 4000), { lr: 1e-3 });
    checkpoint = path.join(dir, 'good.safetensors');
    await model.save(checkpoint, { preset: 'tiny' });
    probeWeight = await weightOf(model);
  });
  after(() => {
    for (const m of mounts) umount(m);
    model?.dispose();
  });

  // ---------------------------------------------------------------- media
  describe('media through the loader: each bad file is a counted, logged skip', () => {
    const media = path.join(dir, 'media');
    const lines: string[] = [];
    let loader: ClipLoader;
    const batches: LoaderBatch[] = [];
    const reasonOf = (f: string) => loader.stats.badSamples[path.join(media, f)];

    before(async () => {
      fs.mkdirSync(media);
      const v = (name: string, extra: object = {}) => ({
        out: path.join(media, name),
        seconds: 2,
        fps: 12,
        width: 32,
        height: 32,
        tone: 440,
        ...extra,
      });
      await writeTestVideos([
        v('good0.mp4'),
        v('good1.mp4', { tone: 660 }),
        v('good2.mp4', { tone: 880 }),
        v('noaudio.mp4', { tone: null }),
        v('short.mp4', { seconds: 0.2 }),
        v('tiny-2x2.mp4', { width: 2, height: 2 }),
        v('wide-512x16.mp4', { width: 512, height: 16 }),
        v('forcut.mp4', { seconds: 3 }),
        v('forcut.mkv'),
      ]);
      await writeTestVideos([v('forcut-moovlast.mp4', { seconds: 3 })], { faststart: false });
      const cut = (src: string, dst: string, share: number) => {
        const b = fs.readFileSync(path.join(media, src));
        fs.writeFileSync(path.join(media, dst), b.subarray(0, Math.floor(b.length * share)));
        fs.rmSync(path.join(media, src));
      };
      cut('forcut.mp4', 'truncated-data.mp4', 0.25);
      cut('forcut-moovlast.mp4', 'truncated-container.mp4', 0.4);
      const mkv = fs.readFileSync(path.join(media, 'forcut.mkv'));
      mkv.write('V_ZZZZZ/ISO/QQQ', mkv.indexOf('V_MPEG4/ISO/AVC'));
      fs.writeFileSync(path.join(media, 'unsupported.mkv'), mkv);
      fs.rmSync(path.join(media, 'forcut.mkv'));
      fs.writeFileSync(path.join(media, 'empty.mp4'), '');
      const r = rng(9);
      fs.writeFileSync(path.join(media, 'garbage.mp4'), Buffer.from(Array.from({ length: 4000 }, () => Math.floor(r() * 256))));
      fs.writeFileSync(path.join(media, 'text.mp4'), 'this is not a video\n');
      await runFfmpeg([
        '-f',
        'lavfi',
        '-i',
        'sine=frequency=440:duration=2:sample_rate=16000',
        '-c:a',
        'aac',
        path.join(media, 'audioonly.mp4'),
      ]);
      fs.symlinkSync(path.join(dir, 'no-such-target.mp4'), path.join(media, 'dangling.mp4'));
      execFileSync('mkfifo', [path.join(dir, 'a-fifo')]);
      fs.symlinkSync(path.join(dir, 'a-fifo'), path.join(media, 'fifo.mp4'));
      fs.writeFileSync(path.join(media, 'notes.txt'), 'not picked up');
      loader = createLoader({ source: folderSource(media), batchSize: 2, clip: geom, mode: 'eval', log: (l) => lines.push(l) });
      for await (const b of loader) batches.push(b);
    });

    const skips: Array<[string, string]> = [
      ['zero-length file', 'empty.mp4:empty_file'],
      ['random bytes', 'garbage.mp4:probe_failed'],
      ['a text file named .mp4', 'text.mp4:probe_failed'],
      ['truncated data (moov first, cut at 25%)', 'truncated-data.mp4:truncated'],
      ['truncated container (moov last, cut at 40%)', 'truncated-container.mp4:truncated'],
      ['audio-less video (missingAudio: skip)', 'noaudio.mp4:no_audio'],
      ['video-less file (audio only)', 'audioonly.mp4:no_video'],
      ['shorter than one clip', 'short.mp4:too_short'],
      ['unknown codec', 'unsupported.mkv:unsupported_codec'],
      ['dangling symlink', 'dangling.mp4:missing_file'],
      ['a FIFO behind a .mp4 name (would block a reader)', 'fifo.mp4:missing_file'],
    ];
    for (const [what, spec] of skips) {
      const [file, reason] = spec.split(':');
      it(`media: ${what} -> skipped as ${reason}, logged once`, () => {
        expect(reasonOf(file), JSON.stringify(loader.stats.badSamples)).to.equal(reason);
        expect(lines.filter((l) => l.startsWith('skip ') && l.includes(file))).to.have.length(1);
      });
    }

    it('media: absurd frame sizes (2x2, 512x16) decode to the clip geometry instead of failing', () => {
      const ids = batches.flatMap((b) => b.meta.map((m) => path.basename(m.id)));
      expect(ids).to.include.members(['good0.mp4', 'good1.mp4', 'good2.mp4', 'tiny-2x2.mp4', 'wide-512x16.mp4']);
      for (const b of batches) expect(b.video.shape.slice(1)).to.deep.equal([4, 32, 32, 3]);
      expect(loader.stats.clips).to.equal(5);
      const total = Object.values(loader.stats.skipped).reduce((a, b) => a + (b ?? 0), 0);
      expect(total).to.equal(skips.length);
      expect(lines.find((l) => l.startsWith('epoch 0'))).to.match(new RegExp(`5 clips in 3 batches, skipped ${skips.length}`));
    });

    it("media: an audio-less video with missingAudio: 'silence' is used, silent and flagged", async () => {
      const csv = path.join(dir, 'silence.csv');
      fs.writeFileSync(csv, `path\n${path.join(media, 'noaudio.mp4')}\n${path.join(media, 'good0.mp4')}\n`);
      const l = createLoader({ source: manifestSource(csv), batchSize: 2, clip: geom, mode: 'eval', missingAudio: 'silence' });
      const got: LoaderBatch[] = [];
      for await (const b of l) got.push(b);
      expect(got[0].meta[0].silent).to.equal(true);
      expect(got[0].audio.data.subarray(0, 16000).every((x) => x === 0)).to.equal(true);
    });

    it('media: a folder of only bad files is one clear error listing the reasons', async () => {
      const only = path.join(dir, 'only-bad');
      fs.mkdirSync(only);
      for (const f of ['empty.mp4', 'garbage.mp4', 'noaudio.mp4']) fs.copyFileSync(path.join(media, f), path.join(only, f));
      const l = createLoader({ source: folderSource(only), batchSize: 2, clip: geom });
      await rejects(
        async () => {
          for await (const _ of l) {
            /* none */
          }
        },
        Error,
        /no usable clips in folder .*only-bad.*empty_file 1, probe_failed 1, .*no_audio 1/,
      );
    });

    const loaderArgs: Array<[string, () => unknown, Function, RegExp]> = [
      [
        'clip size 0',
        () => createLoader({ source: folderSource(media), batchSize: 2, clip: { ...geom, size: 0 } }),
        RangeError,
        /clip\.size must be a positive number/,
      ],
      [
        'clip of 1e6 frames (bigger than prefetchBytes)',
        () => createLoader({ source: folderSource(media), batchSize: 2, clip: { ...geom, frames: 1e6 } }),
        RangeError,
        /prefetchBytes \d+ is smaller than one clip/,
      ],
      [
        'batchSize 0',
        () => createLoader({ source: folderSource(media), batchSize: 0, clip: geom }),
        RangeError,
        /batchSize must be a positive integer/,
      ],
      [
        'decoders -1',
        () => createLoader({ source: folderSource(media), batchSize: 2, decoders: -1, clip: geom }),
        RangeError,
        /decoders must be a positive integer/,
      ],
    ];
    for (const [what, fn, cls, re] of loaderArgs)
      it(`loader: ${what} -> ${cls.name}`, async () => {
        await rejects(fn, cls, re);
      });

    it('loader: a source folder that is a regular file (ENOTDIR) or missing is a clear error', async () => {
      for (const p of [path.join(media, 'good0.mp4'), path.join(media, 'good0.mp4', 'sub'), path.join(dir, 'missing')]) {
        const l = createLoader({ source: folderSource(p), batchSize: 2, clip: geom });
        await rejects(
          async () => {
            for await (const _ of l) {
              /* none */
            }
          },
          Error,
          /folder .* does not exist or is not a folder/,
        );
      }
    });
  });

  // ---------------------------------------------------------------- native calls
  describe('native calls: wrong shapes, dtypes, devices, non-finite values', () => {
    const good = randomBatch(2, 7, 4000);
    const audio = (data: Float32Array) => ({ data, shape: [2, data.length / 2] });
    const withInf = (v: number) => {
      const a = new Float32Array(8000);
      a[123] = v;
      return a;
    };
    const detached = () => {
      const a = new Float32Array(8000);
      structuredClone(a.buffer, { transfer: [a.buffer] });
      return a;
    };
    const cases: Array<[string, () => unknown, Function, RegExp]> = [
      ['audio +Inf (embed)', () => model.embed({ audio: audio(withInf(Infinity)) }), RangeError, /batch\.audio contains NaN or Inf\. Fix:/],
      [
        'audio -Inf (evaluateLoss)',
        () => model.evaluateLoss({ video: good.video, audio: audio(withInf(-Infinity)) }),
        RangeError,
        /contains NaN or Inf/,
      ],
      ['audio NaN (maps)', () => model.maps({ audio: audio(withInf(NaN)) }), RangeError, /contains NaN or Inf/],
      [
        'video H 4097 (absurd frame size)',
        () => model.embed({ video: { data: new Uint8Array(4097 * 16 * 3), shape: [1, 1, 4097, 16, 3] } }),
        RangeError,
        /H, W in 16\.\.4096/,
      ],
      [
        'video 1025 frames',
        () => model.embed({ video: { data: new Uint8Array(1025 * 16 * 16 * 3), shape: [1, 1025, 16, 16, 3] } }),
        RangeError,
        /frames must be 1\.\.1024/,
      ],
      [
        'video with 4 channels',
        () => model.embed({ video: { data: new Uint8Array(2 * 16 * 16 * 4), shape: [2, 1, 16, 16, 4] } }),
        RangeError,
        /\[N, T, H, W, 3\]/,
      ],
      [
        'shape of 9 dimensions',
        () => model.embed({ audio: { data: new Float32Array(1), shape: [1, 1, 1, 1, 1, 1, 1, 1, 1] } }),
        RangeError,
        /more than 8 dimensions/,
      ],
      [
        'shape 2^20 x 2^20 x 2^20 (absurd)',
        () => model.embed({ audio: { data: new Float32Array(4), shape: [2 ** 20, 2 ** 20, 2 ** 20] } }),
        RangeError,
        /batch\.audio\.shape is too large/,
      ],
      [
        'shape [1.5]',
        () => model.embed({ audio: { data: new Float32Array(4), shape: [1.5, 2] } }),
        RangeError,
        /shape\[0\] must be a non-negative integer/,
      ],
      [
        'shape [NaN]',
        () => model.embed({ audio: { data: new Float32Array(4), shape: [NaN, 2] } }),
        RangeError,
        /shape\[0\] must be a non-negative integer/,
      ],
      [
        'shape a string',
        () => model.embed({ audio: { data: new Float32Array(4), shape: '2,2' as never } }),
        TypeError,
        /batch\.audio\.shape must be an array/,
      ],
      [
        'shape of strings',
        () => model.embed({ audio: { data: new Float32Array(4), shape: ['2', '2'] as never } }),
        TypeError,
        /shape\[0\] must be a number/,
      ],
      [
        'data a plain array',
        () => model.embed({ audio: { data: [1, 2] as never, shape: [1, 2] } }),
        TypeError,
        /batch\.audio\.data must be a typed array/,
      ],
      [
        'data an ArrayBuffer',
        () => model.embed({ audio: { data: new ArrayBuffer(8) as never, shape: [1, 2] } }),
        TypeError,
        /must be a typed array/,
      ],
      [
        'data a DataView',
        () => model.embed({ audio: { data: new DataView(new ArrayBuffer(8)) as never, shape: [1, 2] } }),
        TypeError,
        /must be a typed array/,
      ],
      [
        'data an Int8Array',
        () => model.embed({ audio: { data: new Int8Array(4) as never, shape: [2, 2] } }),
        TypeError,
        /unsupported typed array type/,
      ],
      [
        'video in a Uint8ClampedArray',
        () => model.embed({ video: { data: new Uint8ClampedArray(2 * 16 * 16 * 3) as never, shape: [2, 1, 16, 16, 3] } }),
        TypeError,
        /unsupported typed array type/,
      ],
      [
        'audio float64',
        () => model.embed({ audio: { data: new Float64Array(8000), shape: [2, 4000] } as never }),
        TypeError,
        /batch\.audio must be float32 \(Float32Array\), got Double/,
      ],
      [
        'audio float16',
        () => model.embed({ audio: { data: new Uint16Array(8000), shape: [2, 4000], dtype: 'float16' } as never }),
        TypeError,
        /batch\.audio must be float32 .*got Half/,
      ],
      [
        'audio int64',
        () => model.embed({ audio: { data: new BigInt64Array(8000), shape: [2, 4000] } as never }),
        TypeError,
        /must be float32 .*got Long/,
      ],
      [
        'audio in a detached (transferred) buffer',
        () => model.embed({ audio: { data: detached(), shape: [2, 4000] } }),
        RangeError,
        /batch\.audio\.data has 0 elements but shape \[2,4000\] needs 8000/,
      ],
      ['batch null', () => model.embed(null as never), TypeError, /batch must be an object/],
      ['batch an array', () => model.embed([] as never), TypeError, /batch must be an object/],
      ['batch with neither modality', () => model.embed({}), TypeError, /batch needs video and\/or audio/],
      ['options a number', () => model.trainStep(good, 5 as never), TypeError, /options must be an object/],
      ['lr Infinity', () => model.trainStep(good, { lr: Infinity }), RangeError, /options\.lr must be finite/],
      ['lr negative', () => model.trainStep(good, { lr: -1 }), RangeError, /lr must be a finite number >= 0/],
      ['lambdaScale NaN', () => model.trainStep(good, { lr: 1e-3, lambdaScale: NaN }), RangeError, /options\.lambdaScale must be finite/],
      ['lambdaScale -0.5', () => model.trainStep(good, { lr: 1e-3, lambdaScale: -0.5 }), RangeError, /lambdaScale must be in \[0, 1\]/],
      ['evaluateLoss lambdaScale a string', () => model.evaluateLoss(good, 'x' as never), TypeError, /lambdaScale must be a number/],
      ["to('')", () => model.to(''), RangeError, /device '' is not valid\. Fix:/],
      ["to('CPU')", () => model.to('CPU'), RangeError, /device 'CPU' is not valid/],
      ["to('cuda:1234')", () => model.to('cuda:1234'), RangeError, /device 'cuda:1234' is not valid/],
      ["to('cuda:0') on this build", () => model.to('cuda:0'), RangeError, /CUDA is not available|does not exist/],
      // CmacModel.create checks ranges against the engine schema (lib/config/schema.ts) before the addon sees them.
      [
        "createModel device 'cuda:-1'",
        () => CmacModel.create(tinyConfig({ device: 'cuda:-1' })),
        ConfigError,
        /^invalid CmacModel\.create\(\) config:\n {2}config\.device: got "cuda:-1"; must be cpu, cuda, cuda:N or auto$/,
      ],
      [
        'createModel embedDim 0',
        () => CmacModel.create(tinyConfig({ embedDim: 0 })),
        ConfigError,
        /config\.embedDim: got 0; must be >= 1$/,
      ],
      [
        'createModel tau Infinity',
        () => CmacModel.create(tinyConfig({ loss: { tau: Infinity } })),
        ConfigError,
        /config\.loss\.tau: got Infinity; must be a finite number$/,
      ],
      [
        'createModel widths 1e9',
        () => CmacModel.create(tinyConfig({ visual: { planes: [1e9, 8, 8, 8] } })),
        ConfigError,
        /config\.visual\.planes\.0: got 1000000000; must be <= 4096$/,
      ],
      [
        'createModel tau 0',
        () => CmacModel.create(tinyConfig({ loss: { tau: 0 } })),
        ConfigError,
        /config\.loss\.tau: got 0; must be > 0$/,
      ],
      ['train(mode) with a string', () => model.train('yes' as never), TypeError, /train\(mode\) takes a boolean/],
      ['setNumThreads(2000)', () => setNumThreads(2000), RangeError, /numThreads must be an integer in \[1, 1024\]/],
      [
        'save metadata not strings',
        () => model.save(path.join(dir, 'x.safetensors'), { k: 1 } as never),
        TypeError,
        /metadata\['k'\] must be a string/,
      ],
      ['loadStateDict(empty)', () => model.loadStateDict({}), Error, /checkpoint lacks \d+ weight\(s\).*Fix:/],
      [
        'loadStateDict with a wrong shape',
        async () => {
          const sd = await model.stateDict();
          sd['heads.projV.fc2.bias'] = { data: new Float32Array(3), shape: [3] };
          return model.loadStateDict(sd);
        },
        Error,
        /weight 'heads\.projV\.fc2\.bias' has shape \[3\] in the checkpoint but \[128\] in this model\. Fix:/,
      ],
      [
        'loadStateDict with an extra weight',
        async () => {
          const sd = await model.stateDict();
          sd['visual.extra'] = { data: new Float32Array(1), shape: [1] };
          return model.loadStateDict(sd);
        },
        Error,
        /1 unexpected weight\(s\): visual\.extra/,
      ],
      ['loadOptimizerState(empty)', () => model.loadOptimizerState({}), Error, /no 'optim\.step'\. Fix:/],
      [
        'loadOptimizerState with a wrong shape',
        async () => {
          const s = await model.optimizerState();
          const k = Object.keys(s).find((x) => x.endsWith('.exp_avg'))!;
          s[k] = { data: new Float32Array(2), shape: [2] };
          return model.loadOptimizerState(s);
        },
        Error,
        /has the wrong shape\. Fix:/,
      ],
      [
        "writeSafetensors a tensor named '__metadata__'",
        () => writeSafetensors(path.join(dir, 'y.safetensors'), { __metadata__: { data: new Float32Array(1), shape: [1] } }),
        Error,
        /duplicate or reserved tensor name '__metadata__'/,
      ],
    ];
    for (const [what, fn, cls, re] of cases)
      it(`native: ${what} -> ${cls.name}`, async () => {
        await rejects(fn, cls, re);
      });

    it('native: none of the rejected calls changed the model', async () => {
      expect(await weightOf(model)).to.deep.equal(probeWeight);
      expect(model.device).to.equal('cpu');
    });

    // BUG-7: native/addon/bridge.cc tensorFromJs rejected one dimension above 2^34
    // with "shape[0] must be a non-negative integer, got 1099511627776.000000",
    // which is wrong about the reason (it is an integer, just too large). Fixed:
    // the integer check and the size check are separate.
    it('native: one dimension of 2^40 -> "too large", not "must be a non-negative integer" (BUG-7, fixed)', async () => {
      const e = await rejects(
        model.embed({ audio: { data: new Float32Array(4), shape: [2 ** 40, 2 ** 40] } }),
        RangeError,
        /batch\.audio\.shape\[0\] is too large: 1099511627776 is above the limit of 2\^34 elements per tensor\. Fix:/,
      );
      expect(e.message).not.to.match(/non-negative integer/);
      await rejects(
        model.embed({ audio: { data: new Float32Array(4), shape: [Infinity, 2] } }),
        RangeError,
        /shape\[0\] must be a non-negative integer/,
      );
    });

    // BUG-8: native/addon/bridge.cc tensorFromJs read the data through
    // TypedArray::ArrayBuffer(), which fails for a typed array over a
    // SharedArrayBuffer (napi_get_arraybuffer_info): the call rejected with the bare
    // "Invalid argument". Fixed: it copies from napi_get_typedarray_info's data pointer.
    it('native: a SharedArrayBuffer-backed batch is copied and works (BUG-8, fixed)', async () => {
      const sab = new Float32Array(new SharedArrayBuffer(8000 * 4));
      sab.set(good.audio!.data.subarray(0, 8000));
      const e = await model.embed({ audio: { data: sab, shape: [2, 4000] } });
      expect(e.zA!.shape).to.deep.equal([2, 128]);
      // The same numbers as from an ordinary buffer, also through a view at an offset.
      const plain = await model.embed({ audio: { data: Float32Array.from(sab), shape: [2, 4000] } });
      expect(Array.from(e.zA!.data as Float32Array)).to.deep.equal(Array.from(plain.zA!.data as Float32Array));
      const big = new Float32Array(new SharedArrayBuffer((8000 + 16) * 4));
      big.set(sab, 16);
      const off = await model.embed({ audio: { data: big.subarray(16), shape: [2, 4000] } });
      expect(Array.from(off.zA!.data as Float32Array)).to.deep.equal(Array.from(plain.zA!.data as Float32Array));
    });

    it('native: non-finite weights are loaded as given, and the step reports finite: false without stepping', async () => {
      const m = await CmacModel.create(tinyConfig({ seed: 2 }));
      try {
        const sd = await m.stateDict();
        (sd['heads.projV.fc2.weight'].data as Float32Array).fill(NaN);
        await m.loadStateDict(sd);
        const r = await m.trainStep(good, { lr: 1e-3 });
        expect(r.finite).to.equal(false);
        expect(r.stepped).to.equal(false);
      } finally {
        m.dispose();
      }
    });
  });

  // ---------------------------------------------------------------- configs
  describe('configuration: invalid values fail before any work, naming the field', () => {
    const cfgCases: Array<[string, () => unknown, RegExp]> = [
      ['lr NaN', () => resolveConfig({ optim: { lr: NaN } }), /config\.optim\.lr: got NaN; (must be a finite number|expected number)/],
      ['--set data.batchSize=abc', () => resolveConfig({}, ['data.batchSize=abc']), /config\.data\.batchSize: got "abc"; expected number/],
      ['--set with an empty key', () => parseOverride('a..b=1'), /is not a dotted name/],
      ['--set without =', () => parseOverride('optim.lr'), /must look like key\.path=value/],
      ['clip.size 8', () => resolveConfig({ clip: { size: 8 } }), /config\.clip\.size: got 8; must be >= 16/],
      [
        'audio window shorter than nFft',
        () => resolveConfig({ clip: { audioSeconds: 0.01 } }),
        /config\.clip\.audioSeconds: got 0\.01; the window must hold at least nFft samples/,
      ],
      ['threads 0', () => resolveConfig({ threads: 0 }), /config\.threads: got 0; must be >= 1/],
      ['batchSize 1', () => resolveConfig({ data: { batchSize: 1 } }), /batchSize: got 1; must be >= 2/],
      [
        'a config file holding an array',
        () => {
          const f = path.join(dir, 'arr.json');
          fs.writeFileSync(f, '[1]');
          return loadConfigFile(f);
        },
        /arr\.json must hold an object at the top level/,
      ],
      [
        'a config file with broken YAML',
        () => {
          const f = path.join(dir, 'broken.yaml');
          fs.writeFileSync(f, 'optim: [1,\n');
          return loadConfigFile(f);
        },
        /broken\.yaml is not valid YAML/,
      ],
      ['a config path that is a folder', () => loadConfigFile(dir), /cannot read .*EISDIR/],
    ];
    for (const [what, fn, re] of cfgCases)
      it(`config: ${what} -> ConfigError`, async () => {
        await rejects(fn, ConfigError, re);
      });

    // BUG-1: lib/config/schema.ts uses z.number() without .finite(), so YAML `.inf`
    // (and Infinity from JS) passes validation for optim.lr, loss.tau/tauT/lambdaV/
    // lambdaA, optim.clipGradNorm, eps, weightDecay... train() then creates the run
    // folder and fails at the first step with "options.lr must be finite, got -nan"
    // (lr) or at model creation (tau). Un-skip when fixed.
    it('config: YAML `.inf` for optim.lr / loss.tau -> ConfigError naming the field (BUG-1, fixed)', () => {
      const f = path.join(dir, 'inf.yaml');
      fs.writeFileSync(f, 'optim:\n  lr: .inf\nloss:\n  tau: .inf\n');
      const e = (() => {
        try {
          resolveConfig(loadConfigFile(f));
        } catch (err) {
          return err as Error;
        }
        return undefined;
      })();
      expect(e).to.be.instanceOf(ConfigError);
      expect(e!.message)
        .to.match(/config\.optim\.lr/)
        .and.match(/config\.loss\.tau/);
    });

    // BUG-11: lib/config/index.ts resolveConfig (and the addon's configFromJs) accept
    // logmel.fMin >= logmel.fMax, e.g. { fMin: 7000, fMax: 1000 }: the mel filterbank is
    // then inverted/degenerate and training runs on meaningless audio features without
    // any error. Un-skip when fixed.
    it('config: logmel.fMin >= logmel.fMax -> ConfigError naming the fields (BUG-11, fixed)', async () => {
      await rejects(() => resolveConfig({ logmel: { fMin: 7000, fMax: 1000 } }), ConfigError, /config\.logmel\.fMin.*fMax/);
    });
  });

  // ---------------------------------------------------------------- run folders and disks
  describe('run folders: not a folder, read-only, full disk', () => {
    const data = path.join(dir, 'synth');
    const cfg = (runDir: string, extra: object = {}) =>
      ({
        preset: 'tiny',
        seed: 1,
        data: { source: data, batchSize: 2, decoders: 1 },
        train: { steps: 3, checkpointEvery: 1, keepLast: 1, runDir },
        ...extra,
      }) as CmacConfigInput;
    before(async () => {
      await synthesize({ out: data, clips: 6, seed: 2, size: 32, fps: 8, seconds: 2 });
    });

    it('run dir under a regular file (ENOTDIR) -> "cannot write to run folder ... Fix:"', async () => {
      const file = path.join(dir, 'a-file');
      fs.writeFileSync(file, 'x');
      await rejects(
        train(cfg(path.join(file, 'run')), { progress: false }),
        Error,
        /cannot write to run folder .*a-file\/run: ENOTDIR.*Fix: choose another run folder.*\(train\.runDir; CLI: --run-dir\)/,
      );
    });

    it('model.save under a regular file -> "cannot create ... Not a directory. Fix:"', async () => {
      await rejects(
        model.save(path.join(dir, 'a-file', 'm.safetensors')),
        Error,
        /cannot create '.*a-file\/m\.safetensors\.tmp-\d+': Not a directory\. Fix:/,
      );
    });

    it('data source under a regular file -> "does not exist. Fix:" before any step', async () => {
      await rejects(
        train(
          { ...cfg(path.join(dir, 'run-nodata')), data: { source: path.join(dir, 'a-file', 'data'), batchSize: 2 } },
          { progress: false },
        ),
        Error,
        /data source .* does not exist\. Fix:/,
      );
    });

    it('train() on a folder of only bad files -> one clear error', async () => {
      const bad = path.join(dir, 'bad-data');
      fs.mkdirSync(bad);
      fs.writeFileSync(path.join(bad, 'a.mp4'), '');
      fs.writeFileSync(path.join(bad, 'b.mp4'), 'junk');
      await rejects(
        train({ ...cfg(path.join(dir, 'run-bad')), data: { source: bad, batchSize: 2 } }, { progress: false }),
        Error,
        /no usable clips in folder .*bad-data/,
      );
    });

    it('--resume with a checkpoint of another preset -> "config differs ... Fix:"', async () => {
      const runDir = path.join(dir, 'run-preset');
      await train({ ...cfg(runDir), train: { steps: 1, runDir } }, { progress: false });
      await rejects(
        train({ ...cfg(runDir), preset: 'paper', clip: { size: 32, frames: 4, fps: 8 } }, { resume: true, progress: false }),
        Error,
        /resume: the config differs from the checkpoint's in preset, model.*Fix: resume with the run's own config\.json/,
      );
    });

    it('a checkpoint of another preset -> CmacModel.load names the weight and the fix, and the model is unchanged', async () => {
      const paper = await CmacModel.create({ ...modelPreset('paper'), seed: 1 });
      try {
        await rejects(
          paper.load(checkpoint),
          Error,
          /weight 'visual\.stem\.0\.weight' has shape \[11, 3, 1, 7, 7\] in the checkpoint but \[45, 3, 1, 7, 7\] in this model\. Fix: create the model with the preset/,
        );
      } finally {
        paper.dispose();
      }
    });

    it('read-only file system: train() and model.save() say so (tmpfs -o ro)', async function () {
      const ro = path.join(dir, 'ro');
      const m = mountTmpfs(ro, 'ro,size=64k');
      if (!m.ok) {
        console.log(`      (skipped: cannot mount a read-only tmpfs here: ${m.why})`);
        this.skip();
      }
      mounts.push(ro);
      // Node's recursive mkdirSync reports ENOENT on a read-only file system (see BUG-9).
      await rejects(
        train(cfg(path.join(ro, 'run')), { progress: false }),
        Error,
        /cannot write to run folder .*ro\/run: .*Fix: choose another run folder.*\(train\.runDir; CLI: --run-dir\)/,
      );
      await rejects(model.save(path.join(ro, 'm.safetensors')), Error, /cannot create .*Read-only file system\. Fix:/);
    });

    // BUG-9: lib/train/files.ts ensureWritableDir relayed fs.mkdirSync(dir, { recursive: true }),
    // which on a read-only file system says "ENOENT: no such file or directory" (a Node
    // quirk; a plain mkdir says EROFS). Fixed: the nearest existing folder is probed
    // with access(W_OK), which says EROFS.
    it('read-only file system: the run-folder error says read-only (BUG-9, fixed)', async function () {
      const ro = path.join(dir, 'ro');
      if (!mounts.includes(ro)) {
        console.log('      (skipped: the read-only tmpfs of the case above could not be mounted)');
        this.skip();
      }
      await rejects(
        train(cfg(path.join(ro, 'run2', 'deeper')), { progress: false }),
        Error,
        /cannot write to run folder .*ro\/run2\/deeper: the file system holding .*ro is read-only \(EROFS\)\. Fix: choose another run folder.*\(train\.runDir; CLI: --run-dir\)/,
      );
    });

    // BUG-10: a writer killed between creating its `*.tmp-<pid>` file and the rename
    // left the temp file in the checkpoint folder for ever. Fixed: train() (rank 0)
    // removes temp files whose process no longer exists, and logs how many.
    it('stale temp files of dead writers are removed at start, those of live processes kept (BUG-10, fixed)', async () => {
      const runDir = path.join(dir, 'run-stale');
      const ck = path.join(runDir, 'checkpoints');
      fs.mkdirSync(ck, { recursive: true });
      const dead = spawnSync(process.execPath, ['-e', 'process.stdout.write(String(process.pid))'], { encoding: 'utf8' });
      const deadPid = Number(dead.stdout);
      expect(() => process.kill(deadPid, 0)).to.throw(/ESRCH/);
      const livePid = process.ppid; // alive for sure: this process's parent
      const staleW = path.join(ck, `step-00000007.safetensors.tmp-${deadPid}`);
      const staleJ = path.join(ck, `step-00000007.json.tmp-${deadPid}`);
      const staleCfg = path.join(runDir, `config.json.tmp-${deadPid}`);
      const liveW = path.join(ck, `step-00000008.safetensors.tmp-${livePid}`);
      const other = path.join(ck, 'notes.tmp-x');
      for (const f of [staleW, staleJ, staleCfg, liveW, other]) fs.writeFileSync(f, 'partial');
      const lines: string[] = [];
      await train({ ...cfg(runDir), train: { steps: 1, runDir } }, { progress: false, log: (l) => lines.push(l) });
      for (const f of [staleW, staleJ, staleCfg]) expect(fs.existsSync(f), f).to.equal(false);
      for (const f of [liveW, other]) expect(fs.existsSync(f), f).to.equal(true);
      expect(lines.join('\n')).to.match(/removed 3 stale temp file\(s\) left by a killed writer in .*run-stale/);
      expect(listCheckpoints(ck).map((c) => c.step)).to.deep.equal([1]);
    });

    it('full disk while writing a checkpoint: a clear error, the previous checkpoint intact and loadable, no temp file left (tmpfs 48 MB)', async function () {
      const full = path.join(dir, 'full');
      const m = mountTmpfs(full, 'size=48m');
      if (!m.ok) {
        console.log(`      (skipped: cannot mount a tmpfs here: ${m.why}; the ulimit -f case below covers the native writer)`);
        this.skip();
      }
      mounts.push(full);
      const runDir = path.join(full, 'run');
      await rejects(
        train(cfg(runDir), { progress: false }),
        Error,
        /cannot write '.*step-00000002\.safetensors': No space left on device\. Fix: free disk space or choose another folder; the previous file is untouched/,
      );
      const ck = path.join(runDir, 'checkpoints');
      expect(listCheckpoints(ck).map((c) => c.step)).to.deep.equal([1]);
      expect(fs.readdirSync(ck).filter((f) => f.includes('.tmp-'))).to.deep.equal([]);
      const ref = latestCheckpoint(ck)!;
      expect(readCheckpointState(ref).step).to.equal(1);
      const other = await CmacModel.create(tinyConfig());
      try {
        await other.load(ref.weights);
      } finally {
        other.dispose();
      }
    });

    // Finding the inode count at which the sidecar (not the weights) fails: a few tries.
    async function inodeStarved(): Promise<{ runDir: string; err: Error } | undefined> {
      for (let n = 7; n <= 11; n++) {
        const mnt = path.join(dir, `inodes-${n}`);
        if (!mountTmpfs(mnt, `size=200m,nr_inodes=${n}`).ok) return undefined;
        mounts.push(mnt);
        const runDir = path.join(mnt, 'run');
        try {
          await train(cfg(runDir), { progress: false });
        } catch (e) {
          if (/step-00000002\.json/.test((e as Error).message)) return { runDir, err: e as Error };
        }
      }
      return undefined;
    }
    let starved: { runDir: string; err: Error } | undefined;

    it('out of inodes while writing the JSON sidecar: the previous checkpoint stays the latest and loads (tmpfs nr_inodes)', async function () {
      starved = await inodeStarved();
      if (!starved) {
        console.log('      (skipped: cannot mount a tmpfs with nr_inodes here)');
        this.skip();
      }
      const ck = path.join(starved.runDir, 'checkpoints');
      expect(latestCheckpoint(ck)!.step).to.equal(1);
      const other = await CmacModel.create(tinyConfig());
      try {
        await other.load(latestCheckpoint(ck)!.weights);
      } finally {
        other.dispose();
      }
    });

    // BUG-2: lib/files.ts writeFileAtomic (the checkpoint JSON sidecar) passes
    // Node's raw error through: "ENOSPC: no space left on device, open
    // '.../step-00000002.json.tmp-PID'" -- no "Fix:", and the already renamed
    // step-00000002.safetensors (33 MB here) stays behind on the full disk; a
    // failed write after open also leaves the .tmp file. Un-skip when fixed.
    it('out of inodes while writing the JSON sidecar: the error names the checkpoint and the fix (BUG-2, fixed)', () => {
      expect(starved?.err.message).to.match(/checkpoint .*Fix:/);
    });

    it('file-size limit (ulimit -f, no mount needed): model.save fails with "File too large", the previous file intact', () => {
      const out = path.join(dir, 'ulimit');
      fs.mkdirSync(out);
      const file = path.join(out, 'm.safetensors');
      fs.copyFileSync(checkpoint, file);
      const before = fs.readFileSync(file);
      const script = `
        const { CmacModel } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'model.js'))});
        const h = require(${JSON.stringify(path.join(__dirname, 'helpers.js'))});
        (async () => {
          const m = await CmacModel.create(h.tinyConfig());
          try { await m.save(${JSON.stringify(file)}); console.log('saved?!'); } catch (e) { console.log('ERR ' + e.message); }
          m.dispose();
        })();`;
      // SIGXFSZ ignored (inherited through exec), so write() returns EFBIG instead of killing the process.
      const r = spawnSync('bash', ['-c', `trap '' XFSZ; ulimit -f 4096; exec "${process.execPath}" -e "$0"`, script], {
        encoding: 'utf8',
        timeout: 60000,
      });
      expect(r.stdout, r.stderr).to.match(
        /ERR cannot write '.*m\.safetensors': File too large\. Fix: free disk space or choose another folder; the previous file is untouched/,
      );
      expect(fs.readFileSync(file).equals(before)).to.equal(true);
      expect(fs.readdirSync(out)).to.deep.equal(['m.safetensors']);
    });
  });

  // ---------------------------------------------------------------- safetensors
  describe('malformed safetensors: readSafetensors and CmacModel.load reject every rule violation', () => {
    const good4 = Buffer.alloc(4);
    const kinds: Array<[string, () => Buffer, RegExp]> = [
      ['zero-length file', () => Buffer.alloc(0), /file shorter than the 8-byte header length \(0 bytes\)/],
      ['shorter than the 8-byte length', () => Buffer.from([1, 2, 3]), /file shorter than the 8-byte header length \(3 bytes\)/],
      ['header length over 100 MB', () => st('{}', Buffer.alloc(0), 100_000_001n), /header length 100000001 exceeds the 100 MB limit/],
      ['header length 2^64-1', () => st('{}', Buffer.alloc(0), 2n ** 64n - 1n), /exceeds the 100 MB limit/],
      [
        'header length past the end of the file',
        () => st('{}', Buffer.alloc(0), 1000n),
        /header length 1000 runs past the end of the file/,
      ],
      ['empty header', () => st('', Buffer.alloc(0)), /empty header/],
      ['header not JSON', () => st('{"w": '), /header is not valid JSON/],
      ['header invalid UTF-8', () => st(Buffer.from([0x7b, 0x22, 0xff, 0xfe, 0x22, 0x3a, 0x31, 0x7d])), /header is not valid JSON/],
      ['header a JSON array', () => st('[1, 2]'), /header is not a JSON object/],
      ['header nested 100000 deep', () => st('['.repeat(100000) + ']'.repeat(100000)), /header nests deeper than 64 levels/],
      [
        'header nested 65 deep inside __metadata__',
        () => st(`{"__metadata__":{"a":${'['.repeat(65)}${']'.repeat(65)}}}`),
        /header nests deeper than 64 levels/,
      ],
      [
        'duplicate tensor names',
        () => st(`{"w":${JSON.stringify(f32([1], 0, 4))},"w":${JSON.stringify(f32([1], 0, 4))}}`, good4),
        /duplicate key 'w' in header/,
      ],
      ['entry not an object', () => st({ w: 5 }), /entry 'w' is not an object/],
      ['entry with an unknown field', () => st({ w: { ...f32([1], 0, 4), foo: 1 } }, good4), /entry 'w' has unknown field 'foo'/],
      ['entry without dtype', () => st({ w: { shape: [1], data_offsets: [0, 4] } }, good4), /entry 'w' has no dtype string/],
      ['unknown dtype F8', () => st({ w: { ...f32([1], 0, 4), dtype: 'F8' } }, good4), /entry 'w' has unknown dtype 'F8'/],
      ['shape not an array', () => st({ w: { ...f32([1], 0, 4), shape: 4 } }, good4), /entry 'w' has no shape array/],
      ['negative dimension', () => st({ w: f32([-1], 0, 4) }, good4), /tensor 'w' has a non-integer or negative offset\/dimension/],
      ['fractional dimension', () => st({ w: f32([1.5], 0, 4) }, good4), /non-integer or negative/],
      ['65 dimensions', () => st({ w: f32(Array(65).fill(1), 0, 4) }, good4), /more than 64 dimensions/],
      ['shape whose size overflows', () => st({ w: f32([2 ** 32, 2 ** 32, 2 ** 32], 0, 4) }, good4), /shape whose size overflows/],
      ['data_offsets of one number', () => st({ w: { ...f32([1], 0, 4), data_offsets: [0] } }, good4), /needs data_offsets \[begin, end\]/],
      ['negative offset', () => st({ w: f32([1], -4, 0) }, good4), /non-integer or negative/],
      ['begin > end', () => st({ w: f32([1], 4, 0) }, Buffer.alloc(8)), /entry 'w' has begin > end/],
      ['offsets past the buffer', () => st({ w: f32([4], 0, 16) }, good4), /entry 'w' ends at 16 past the data buffer of 4 bytes/],
      ['bytes do not match shape x dtype', () => st({ w: f32([2], 0, 4) }, good4), /entry 'w' has 4 bytes but shape x dtype needs 2 x 4/],
      [
        'a gap between tensors',
        () => st({ a: f32([1], 0, 4), b: f32([1], 8, 12) }, Buffer.alloc(12)),
        /starts at 8 but the previous ends at 4 \(gaps and overlaps are not allowed\)/,
      ],
      ['overlapping tensors', () => st({ a: f32([2], 0, 8), b: f32([1], 4, 8) }, Buffer.alloc(8)), /gaps and overlaps are not allowed/],
      [
        'trailing bytes after the data',
        () => st({ w: f32([1], 0, 4) }, Buffer.alloc(9)),
        /data buffer has 9 bytes but the tensors cover 4 \(trailing bytes or truncation\)/,
      ],
      ['__metadata__ not an object', () => st({ __metadata__: 'x' }), /__metadata__ is not an object/],
      ['__metadata__ value not a string', () => st({ __metadata__: { step: 3 } }), /__metadata__ value for 'step' is not a string/],
      [
        'dtype U16 (unsupported by libtorch 1.13)',
        () => st({ w: { ...f32([2], 0, 4), dtype: 'U16' } }, good4),
        /tensor 'w' has dtype U16, which this libtorch cannot hold\. Fix:/,
      ],
      ['dtype U64', () => st({ w: { ...f32([1], 0, 8), dtype: 'U64' } }, Buffer.alloc(8)), /dtype U64, which this libtorch cannot hold/],
      [
        'a real checkpoint cut at 60%',
        () => {
          const b = fs.readFileSync(checkpoint);
          return b.subarray(0, Math.floor(b.length * 0.6));
        },
        /past the data buffer|truncation/,
      ],
      [
        'a real checkpoint with 1 extra byte',
        () => Buffer.concat([fs.readFileSync(checkpoint), Buffer.from([0])]),
        /trailing bytes or truncation/,
      ],
    ];
    for (const [what, make, re] of kinds) {
      it(`safetensors: ${what}`, async () => {
        const f = path.join(dir, `bad-${what.replace(/[^a-z0-9]+/gi, '-')}.safetensors`);
        fs.writeFileSync(f, make());
        const e = await rejects(readSafetensors(f), Error, re);
        expect(e.message).to.include(f).and.match(/Fix:/);
        await rejects(model.load(f), Error, re);
      });
    }

    it('safetensors: a valid file with no weights -> load names what is missing, with the fix', async () => {
      const f = path.join(dir, 'empty-valid.safetensors');
      fs.writeFileSync(f, st('{}'));
      await rejects(model.load(f), Error, /checkpoint lacks \d+ weight\(s\): .*Fix: use a checkpoint of the same preset/);
    });

    it('safetensors: a missing file -> "cannot open ... Fix:"', async () => {
      await rejects(
        readSafetensors(path.join(dir, 'nope.safetensors')),
        Error,
        /cannot open '.*nope\.safetensors': No such file or directory\. Fix:/,
      );
    });

    it('safetensors: none of the rejected loads changed the model', async () => {
      expect(await weightOf(model)).to.deep.equal(probeWeight);
    });

    // BUG-3: native/core/safetensors.cpp readSafetensors opened a folder with
    // std::ifstream, tellg() gave a huge size and the vector allocation threw:
    // the promise rejected with the bare message "std::bad_alloc". Fixed: fstat
    // first, regular files only.
    it('safetensors: a folder as the path -> an error naming it (BUG-3, fixed)', async () => {
      const re = /cannot read '.*': it is a directory, not a regular file\. Fix: pass the path of a \.safetensors file/;
      expect((await rejects(readSafetensors(dir), Error, re)).message).to.include(`'${dir}'`);
      expect((await rejects(model.load(dir), Error, re)).message).to.include(`'${dir}'`);
      expect(await weightOf(model)).to.deep.equal(probeWeight);
    });

    // BUG-4: readSafetensors / CmacModel.load on a FIFO (or any file that blocks
    // on open/read) never settled: the libuv thread blocked in open(), and for
    // load() the model's mutex stayed held, so every later call on that model
    // hung too. Checked in a child process (it would hang this one). Fixed: open
    // with O_NONBLOCK, then fstat and refuse anything but a regular file.
    it('safetensors: a FIFO as the path -> an error, not a hang (BUG-4, fixed)', () => {
      const fifo = path.join(dir, 'st-fifo');
      execFileSync('mkfifo', [fifo]);
      const script = `
        const { readSafetensors } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'safetensors.js'))});
        const { CmacModel } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'model.js'))});
        const h = require(${JSON.stringify(path.join(__dirname, 'helpers.js'))});
        (async () => {
          await readSafetensors(${JSON.stringify(fifo)}).then(() => console.log('resolved'), (e) => console.log('ERR ' + e.message));
          const m = await CmacModel.create(h.tinyConfig());
          await m.load(${JSON.stringify(fifo)}).then(() => console.log('loaded'), (e) => console.log('ERR ' + e.message));
          const r = await m.embed({ audio: h.randomBatch(2, 1, 4000).audio });  // the model's lock was released
          console.log('embed ' + r.zA.shape.join('x'));
          m.dispose();
        })();`;
      const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 60000 });
      expect(r.signal, 'hung: killed by the 60 s timeout').to.equal(null);
      const msg = `ERR cannot read '${fifo}': it is a FIFO (named pipe), not a regular file. Fix: pass the path of a .safetensors file.`;
      expect(r.stdout.trim().split('\n'), r.stderr).to.deep.equal([msg, msg, 'embed 2x128']);
    });

    // BUG-5: native/addon/addon.cc ReadSafetensors built the result with
    // Object::Set, so a tensor (or metadata key) named "__proto__" replaced the
    // result object's prototype instead of becoming a key: the tensor silently
    // disappeared from Object.keys(). Fixed: keys are defined as own properties.
    it('safetensors: a tensor named "__proto__" is returned as a key, not as the prototype (BUG-5, fixed)', async () => {
      const f = path.join(dir, 'proto.safetensors');
      fs.writeFileSync(f, st(`{"__metadata__":{"__proto__":"m"},"__proto__":${JSON.stringify(f32([1], 0, 4))}}`, good4));
      const r = await readSafetensors(f);
      expect(Object.keys(r.tensors)).to.deep.equal(['__proto__']);
      expect(Object.getPrototypeOf(r.tensors)).to.equal(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(r.tensors, '__proto__')!.value.shape).to.deep.equal([1]);
      expect(Object.keys(r.metadata)).to.deep.equal(['__proto__']);
      expect(Object.getPrototypeOf(r.metadata)).to.equal(Object.prototype);
      expect(Object.getOwnPropertyDescriptor(r.metadata, '__proto__')!.value).to.equal('m');
    });
  });

  // ---------------------------------------------------------------- checkpoints of another kind
  describe('checkpoints of another model or optimiser', () => {
    // BUG-6: native/core/cmac_model.cpp CmacModel::load() copied the weights
    // (loadStateDict) before it validated the optimiser state; when that failed
    // (e.g. an exp_avg of the wrong shape) load() rejected but the model already
    // held the checkpoint's weights with its old optimiser state, against
    // "nothing changes on error". Fixed: everything is checked, then applied.
    const optimStep = async (m: CmacModel) => Number((await m.optimizerState())['optim.step'].data[0]);
    it('a checkpoint whose optimiser state does not fit is rejected and changes nothing (BUG-6, fixed)', async () => {
      const other = await CmacModel.create(tinyConfig({ seed: 5 }));
      const sd = await other.stateDict();
      const os = await other.optimizerState();
      other.dispose();
      os['optim.visual.stem.0.weight.exp_avg'] = { data: new Float32Array(3), shape: [3] };
      os['optim.visual.stem.0.weight.exp_avg_sq'] = { data: new Float32Array(3), shape: [3] };
      const f = path.join(dir, 'half.safetensors');
      await writeSafetensors(f, { ...sd, ...os });
      const stepBefore = await optimStep(model);
      await rejects(model.load(f), Error, /optimizer state 'optim\.visual\.stem\.0\.weight\.exp_avg' has the wrong shape\. Fix:/);
      expect(await weightOf(model)).to.deep.equal(probeWeight);
      expect(await optimStep(model)).to.equal(stepBefore);
    });

    it('an SGD checkpoint into an Adam model (and back) is rejected naming both optimisers, and changes nothing', async () => {
      const sgd = await CmacModel.create(tinyConfig({ seed: 6, optim: { name: 'sgd', momentum: 0.9 } }));
      try {
        await sgd.trainStep(randomBatch(2, 2, 4000), { lr: 1e-3 }); // momentum buffers exist now
        const f = path.join(dir, 'sgd.safetensors');
        await sgd.save(f);
        const stepBefore = await optimStep(model);
        await rejects(
          model.load(f),
          Error,
          /checkpoint's optimizer state is SGD \(momentum_buffer\) \(e\.g\. 'optim\..*\.momentum_buffer'\) but this model's optimizer is adam\. Fix: create the model with optim\.name 'sgd' as the checkpoint was trained, or load only the weights/,
        );
        expect(await weightOf(model)).to.deep.equal(probeWeight);
        expect(await optimStep(model)).to.equal(stepBefore);

        const sgdWeight = await weightOf(sgd);
        await rejects(
          sgd.load(checkpoint),
          Error,
          /checkpoint's optimizer state is Adam\/AdamW \(exp_avg, exp_avg_sq\) .* but this model's optimizer is sgd\. Fix: create the model with optim\.name 'adam' or 'adamw' as the checkpoint was trained/,
        );
        expect(await weightOf(sgd)).to.deep.equal(sgdWeight);
        expect(await optimStep(sgd)).to.equal(1);
      } finally {
        sgd.dispose();
      }
    });

    it('a checkpoint of another embedDim is rejected and changes nothing', async () => {
      const f = path.join(dir, 'embed64.safetensors');
      const m = await CmacModel.create(tinyConfig({ embedDim: 64 }));
      await m.save(f);
      m.dispose();
      await rejects(model.load(f), Error, /in the checkpoint but .* in this model\. Fix:/);
      expect(await weightOf(model)).to.deep.equal(probeWeight);
    });
  });

  // ---------------------------------------------------------------- embedding (docs/electron.md)
  // Electron >= 21 refuses external ArrayBuffers (V8 memory cage). Node 20 has no
  // switch that simulates it (it is a V8 build option, v8_enable_sandbox, not a
  // flag), so the addon binary is checked instead: it must never import the
  // Node-API calls that make external buffers, and must register as a Node-API
  // (context-aware) module. Behaviour: inputs are copied when the call is made.
  describe('embedding: context-aware module, copied buffers, no external ArrayBuffers', () => {
    const addonFile = (): string | undefined => {
      for (const p of [path.join(root, 'prebuilds', `${process.platform}-${process.arch}`), path.join(root, 'build', 'Release')]) {
        if (!fs.existsSync(p)) continue;
        const f = fs.readdirSync(p).find((x) => x.endsWith('.node'));
        if (f) return path.join(p, f);
      }
      return undefined;
    };
    const nm = (args: string[]) => spawnSync('nm', args, { encoding: 'utf8' });

    it('the addon never creates external ArrayBuffers/Buffers and registers as a Node-API module (nm -D)', function () {
      const f = addonFile();
      if (!f || nm(['--version']).status !== 0) {
        console.log('      (skipped: no built addon or no nm)');
        this.skip();
      }
      const undef = nm(['-D', '--undefined-only', f!]).stdout;
      expect(undef).to.not.match(/napi_create_external_(arraybuffer|buffer)\b/);
      expect(undef).to.not.match(/node_register_module|_ZN4node/); // no legacy, non-context-aware registration or Node C++ API
      expect(nm(['-D', '--defined-only', f!]).stdout).to.match(/\bnapi_register_module_v1\b/);
    });

    it('inputs are copied at call time: mutating them before the Promise settles changes nothing', async () => {
      const b = randomBatch(2, 11, 4000);
      const expected = await model.embed(b);
      const again = randomBatch(2, 11, 4000);
      const p = model.embed(again);
      again.video!.data.fill(0);
      again.audio!.data.fill(0);
      const got = await p;
      expect(Buffer.from(got.zV!.data.buffer).equals(Buffer.from(expected.zV!.data.buffer))).to.equal(true);
      expect(Buffer.from(got.zA!.data.buffer).equals(Buffer.from(expected.zA!.data.buffer))).to.equal(true);
    });

    it('results are ordinary, transferable ArrayBuffers owned by JS', async () => {
      const e = await model.embed({ audio: randomBatch(2, 12, 4000).audio });
      const buf = e.zA!.data.buffer as ArrayBuffer;
      expect(buf).to.be.instanceOf(ArrayBuffer);
      expect(e.zA!.data.byteOffset).to.equal(0);
      const moved = structuredClone(buf, { transfer: [buf] });
      expect(buf.byteLength).to.equal(0); // detached: the memory moved to the clone
      expect(moved.byteLength).to.equal(2 * 128 * 4);
    });

    it("a model posted to a worker arrives as an inert copy: the worker's addon refuses it, the owner keeps working", async () => {
      const { Worker } = await import('worker_threads');
      const body = `
        const { parentPort } = require('worker_threads');
        const { native } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'native.js'))});
        parentPort.once('message', async (m) => {
          const proto = native().CmacModel.prototype;
          const out = [];
          for (const target of [m, m && m.nativeModel]) {
            try { await proto.embed.call(target, { audio: { data: new Float32Array(8000), shape: [2, 4000] } }); out.push('resolved'); }
            catch (e) { out.push(e.constructor.name + ': ' + e.message); }
          }
          parentPort.postMessage(out);
        });`;
      const w = new Worker(body, { eval: true });
      try {
        const reply = new Promise<string[]>((res, rej) => {
          w.once('message', res);
          w.once('error', rej);
        });
        w.postMessage(model); // structured clone: own properties only, no native state
        const out = await reply;
        expect(out).to.have.length(2);
        for (const line of out) expect(line).to.match(/^TypeError: (Illegal invocation|receiver is not a CmacModel)/); // V8's signature check, then the type tag
      } finally {
        await w.terminate();
      }
      expect((await model.embed({ audio: randomBatch(2, 13, 4000).audio })).zA!.shape).to.deep.equal([2, 128]);
    });
  });

  // ---------------------------------------------------------------- survival
  // (a describe, so that mocha runs it after the describes above)
  describe('after every case above', () => {
    it('the process survived: a fresh model trains, nothing is pending, no model leaked', async () => {
      const before = memory().models;
      const m = await CmacModel.create(tinyConfig({ seed: 4 }));
      const r = await m.trainStep(randomBatch(2, 3, 4000), { lr: 1e-3 });
      m.dispose();
      expect(r.finite).to.equal(true);
      expect(memory().models).to.equal(before);
      expect(memory().pendingOps).to.equal(0);
      expect(native().getNumThreads()).to.be.greaterThan(0);
      expect(fs.existsSync(path.join(root, 'package.json'))).to.equal(true);
    });
  });
});
