// CmacModel through the addon: training, inference, state, devices, bad input.
import { expect } from 'chai';
import * as path from 'path';
import { CmacModel } from '../lib/model';
import { memory, setNumThreads } from '../lib/info';
import { readSafetensors } from '../lib/safetensors';
import { randomBatch, rejects, tinyConfig, tmpDir } from './helpers';

describe('CmacModel (tiny preset)', function () {
  this.timeout(300000);
  let model: CmacModel;
  before(async () => {
    setNumThreads(2);
    model = await CmacModel.create(tinyConfig({ seed: 3 }));
  });
  after(() => model.dispose());

  it('trains: one call returns every loss term, the grad norm and the time', async () => {
    const r = await model.trainStep(randomBatch(4, 1), { lr: 1e-3 });
    for (const k of ['loss', 'lossCon', 'lossV', 'lossA', 'gradNorm', 'timeMs'] as const)
      expect(r[k], k).to.be.a('number').and.be.greaterThan(0);
    expect(r.stepped).to.equal(true);
    expect(r.finite).to.equal(true);
    expect(r.loss).to.be.closeTo(r.lossCon + r.lossV + r.lossA, 1e-4);
  });

  it('lambdaScale ramps the attention terms', async () => {
    const b = randomBatch(4, 2);
    const r = await model.trainStep(b, { lr: 0, lambdaScale: 0 });
    expect(r.loss).to.be.closeTo(r.lossCon, 1e-6);
  });

  it('embeds and maps a batch (video only, audio only, both)', async () => {
    const b = randomBatch(3, 4);
    const e = await model.embed(b);
    expect(e.zV!.shape).to.deep.equal([3, 128]);
    expect(e.zA!.shape).to.deep.equal([3, 128]);
    expect(e.featV!.shape).to.deep.equal([3, 128]);
    const z = e.zV!.data;
    expect(Math.hypot(...Array.from(z.subarray(0, 128)))).to.be.closeTo(1, 1e-4);
    const v = await model.embed({ video: b.video });
    expect(v.zA).to.equal(undefined);
    expect(Array.from(v.zV!.data)).to.deep.equal(Array.from(e.zV!.data)); // eval mode, deterministic
    const m = await model.maps(b);
    expect(m.alphaV!.shape).to.deep.equal([3, 8, 8]);
    expect(m.betaV!.shape).to.deep.equal([3, 8, 8]);
    expect(m.alphaA!.shape).to.deep.equal([3, 8]);
    expect(m.betaA!.shape).to.deep.equal([3, 8]);
    const sum = Array.from(m.betaV!.data.subarray(0, 64)).reduce((s, x) => s + x, 0);
    expect(sum).to.be.closeTo(1, 1e-4);
    const ma = await model.maps({ audio: b.audio });
    expect(ma.alphaA).to.not.equal(undefined);
    expect(ma.betaV).to.equal(undefined);
  });

  it('save/load round-trips weights and optimiser state; keys are torchvision names', async () => {
    const dir = tmpDir();
    const f = path.join(dir, 'm.safetensors');
    await model.save(f, { preset: 'tiny' });
    const file = await readSafetensors(f);
    expect(file.metadata.preset).to.equal('tiny');
    expect(file.tensors['visual.stem.0.weight'].shape).to.deep.equal([11, 3, 1, 7, 7]);
    expect(file.tensors['visual.layer1.0.conv1.0.0.weight']).to.not.equal(undefined);
    expect(file.tensors['audio.conv1.weight'].shape).to.deep.equal([16, 1, 7, 7]);
    expect(file.tensors['optim.step'].data[0]).to.equal(2n);
    const other = await CmacModel.create(tinyConfig({ seed: 99 }));
    await other.load(f);
    const b = randomBatch(4, 5);
    const [r1, r2] = [await model.trainStep(b, { lr: 1e-3 }), await other.trainStep(b, { lr: 1e-3 })];
    expect(r2.loss).to.equal(r1.loss);
    const [s1, s2] = [await model.stateDict(), await other.stateDict()];
    expect(Array.from(s2['heads.projV.fc2.weight'].data as Float32Array)).to.deep.equal(
      Array.from(s1['heads.projV.fc2.weight'].data as Float32Array),
    );
    other.dispose();
  });

  it('a checkpoint of another preset fails to load and leaves the model unchanged', async () => {
    const dir = tmpDir();
    const f = path.join(dir, 'other.safetensors');
    const big = await CmacModel.create(tinyConfig({ embedDim: 64 }));
    await big.save(f);
    big.dispose();
    const before = await model.stateDict();
    await rejects(model.load(f), Error, /has shape .* in the checkpoint but .* in this model\. Fix: create the model with the preset/);
    const after = await model.stateDict();
    expect(Array.from(after['heads.projA.fc2.bias'].data as Float32Array)).to.deep.equal(
      Array.from(before['heads.projA.fc2.bias'].data as Float32Array),
    );
  });

  it('loadStateDict(strict) names missing weights', async () => {
    await rejects(model.loadStateDict({}), Error, /checkpoint lacks \d+ weight\(s\)/);
  });

  it('train()/eval() switch BatchNorm mode; to("cpu") works', async () => {
    expect(model.eval().training).to.equal(false);
    expect(model.train().training).to.equal(true);
    expect(await model.to('cpu')).to.equal('cpu');
    expect(model.device).to.equal('cpu');
    await rejects(model.to('cuda:7'), RangeError, /CUDA|does not exist/);
  });

  it('calls on one model run one at a time, in order', async () => {
    const b = randomBatch(2, 6);
    const results = await Promise.all([model.trainStep(b, { lr: 0 }), model.embed(b), model.trainStep(b, { lr: 0 })]);
    expect(results).to.have.length(3);
  });

  describe('bad inputs name the parameter', () => {
    const good = randomBatch(2, 7);
    const cases: Array<[string, () => Promise<unknown>, Function, RegExp]> = [
      ['no batch', () => model.trainStep(undefined as never, { lr: 1e-3 }), TypeError, /batch must be an object/],
      ['batch of 1', () => model.trainStep(randomBatch(1, 1), { lr: 1e-3 }), RangeError, /at least 2 .*negatives/],
      ['empty batch', () => model.embed({ video: { data: new Uint8Array(0), shape: [0, 4, 64, 64, 3] } }), RangeError, /empty/],
      [
        'video float',
        () =>
          model.trainStep(
            { ...good, video: { data: new Float32Array(good.video!.data.length), shape: good.video!.shape } as never },
            { lr: 1e-3 },
          ),
        TypeError,
        /batch\.video must be uint8/,
      ],
      [
        'video rank',
        () => model.embed({ video: { data: new Uint8Array(12), shape: [1, 4, 3] } }),
        RangeError,
        /batch\.video must have shape \[N, T, H, W, 3\]/,
      ],
      [
        'video tiny frame',
        () => model.embed({ video: { data: new Uint8Array(2 * 4 * 8 * 8 * 3), shape: [2, 4, 8, 8, 3] } }),
        RangeError,
        /H, W in 16\.\.4096/,
      ],
      [
        'audio int',
        () => model.embed({ audio: { data: new Int32Array(32000), shape: [2, 16000] } as never }),
        TypeError,
        /batch\.audio must be float32/,
      ],
      [
        'audio NaN',
        () => {
          const a = new Float32Array(2 * 16000);
          a[7] = NaN;
          return model.trainStep({ ...good, audio: { data: a, shape: [2, 16000] } }, { lr: 1e-3 });
        },
        RangeError,
        /batch\.audio contains NaN/,
      ],
      [
        'audio too short',
        () => model.embed({ audio: { data: new Float32Array(200), shape: [2, 100] } }),
        RangeError,
        /batch\.audio needs between/,
      ],
      [
        'mismatched N',
        () => model.trainStep({ video: good.video, audio: randomBatch(3, 1).audio }, { lr: 1e-3 }),
        RangeError,
        /batch\.video has 2 clips but batch\.audio has 3/,
      ],
      [
        'shape/data mismatch',
        () => model.embed({ audio: { data: new Float32Array(10), shape: [2, 16000] } }),
        RangeError,
        /batch\.audio\.data has 10 elements/,
      ],
      ['lr NaN', () => model.trainStep(good, { lr: NaN }), RangeError, /options\.lr must be finite/],
      ['lr string', () => model.trainStep(good, { lr: 'x' as never }), TypeError, /options\.lr must be a number/],
      ['lambdaScale 2', () => model.trainStep(good, { lr: 1e-3, lambdaScale: 2 }), RangeError, /lambdaScale must be in \[0, 1\]/],
      ['trainStep without audio', () => model.trainStep({ video: good.video }, { lr: 1e-3 }), TypeError, /batch\.audio is required/],
      ['save to number', () => model.save(3 as never), TypeError, /path must be a string/],
      ['load missing file', () => model.load('/nonexistent/x.safetensors'), Error, /cannot open/],
      ['to(number)', () => model.to(1 as never), TypeError, /device must be a string/],
    ];
    for (const [name, fn, cls, re] of cases)
      it(name, async () => {
        await rejects(fn, cls, re);
      });
  });
});

describe('CmacModel with child processes', function () {
  this.timeout(120000);
  // Regression: OpenBLAS's fork handler deadlocked fork() (child_process.spawn,
  // e.g. ffmpeg) while a step ran on a worker thread.
  it('spawning processes while steps run never deadlocks', async () => {
    // In a child process: a deadlock blocks the JS thread, so only a kill from outside can end it.
    const script = `
      const { CmacModel } = require(${JSON.stringify(path.join(__dirname, '..', 'lib', 'model.js'))});
      const h = require(${JSON.stringify(path.join(__dirname, 'helpers.js'))});
      const { execFile } = require('child_process');
      (async () => {
        const m = await CmacModel.create(h.tinyConfig());
        const spawns = (async () => { for (let i = 0; i < 30; i++) await new Promise((res, rej) => execFile('true', (e) => (e ? rej(e) : res()))); })();
        for (let i = 0; i < 3; i++) await m.trainStep(h.randomBatch(8, i), { lr: 1e-3 });
        await spawns;
        m.dispose();
        console.log('done');
      })();`;
    const { spawnSync } = await import('child_process');
    const r = spawnSync(process.execPath, ['-e', script], { encoding: 'utf8', timeout: 90000 });
    expect(r.signal, 'the child hung (killed by the timeout)').to.equal(null);
    expect(r.stdout.trim(), r.stderr).to.equal('done');
  });
});

describe('CmacModel lifetime', function () {
  this.timeout(120000);
  it('dispose() frees native memory; a disposed model refuses calls; double dispose is safe', async () => {
    const before = memory();
    const m = await CmacModel.create(tinyConfig());
    const during = memory();
    expect(during.models).to.equal(before.models + 1);
    expect(during.bytes).to.be.greaterThan(before.bytes);
    m.dispose();
    m.dispose();
    expect(m.disposed).to.equal(true);
    const after = memory();
    expect(after.models).to.equal(before.models);
    expect(after.bytes).to.equal(before.bytes);
    await rejects(m.embed(randomBatch(2, 1)), Error, /disposed/);
  });

  it('dispose() during a running step frees the model once the step ends', async () => {
    const before = memory().models;
    const m = await CmacModel.create(tinyConfig());
    const p = m.trainStep(randomBatch(2, 1), { lr: 1e-3 });
    m.dispose();
    const r = await p;
    expect(r.finite).to.equal(true);
    await new Promise((res) => setTimeout(res, 50));
    expect(memory().models).to.equal(before);
  });

  it('an unreferenced model is collected by the finaliser', async function () {
    if (!(global as { gc?: () => void }).gc) this.skip();
    const before = memory().models;
    await (async () => {
      await CmacModel.create(tinyConfig());
    })();
    for (let i = 0; i < 10 && memory().models > before; i++) {
      (global as unknown as { gc: () => void }).gc();
      await new Promise((res) => setTimeout(res, 20));
    }
    expect(memory().models).to.equal(before);
  });
});
