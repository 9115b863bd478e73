// Configuration: presets, defaults from method.md, files, overrides, and
// validation errors that name the field, the value and what is allowed.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import {
  ConfigError,
  learningRate,
  lambdaScale,
  loadConfigFile,
  lossPresetNames,
  lossSwitches,
  modelConfigSchema,
  parseOverride,
  RampStart,
  resolveConfig,
  toModelConfig,
  type ConfigInput,
} from '../lib/config';
import { rejects, tmpDir } from './helpers';

describe('config', () => {
  it('defaults are method.md constants; tiny is the default preset', () => {
    const c = resolveConfig();
    expect(c.preset).to.equal('tiny');
    expect(c.loss).to.include({ preset: 'cmac', tau: 0.07, tauT: 0.1, lambdaV: 1, lambdaA: 1, rampFraction: 0.1, queueSize: 0 });
    expect(c.logmel).to.include({ sampleRate: 16000, nFft: 1024, winLength: 400, hopLength: 160, nMels: 64 });
    expect(c.clip).to.include({ frames: 4, fps: 8, size: 64, audioSeconds: 2 });
    const p = resolveConfig({ preset: 'paper' });
    expect(p.clip).to.include({ frames: 8, fps: 16, size: 112 });
    expect(p.logmel.nMels).to.equal(128);
    expect(p.model.visual.planes).to.deep.equal([64, 128, 256, 512]);
    expect(p.model.embedDim).to.equal(128);
  });

  it('loss presets select the rows of method.md section 5; explicit fields win', () => {
    const row = (preset: (typeof lossPresetNames)[number]) => lossSwitches(resolveConfig({ loss: { preset } }));
    expect(row('xmodal')).to.deep.equal({ withinModal: false, lossV: false, lossA: false });
    expect(row('xmodal+within')).to.deep.equal({ withinModal: true, lossV: false, lossA: false });
    expect(row('cmac-v')).to.deep.equal({ withinModal: true, lossV: true, lossA: false });
    expect(row('cmac-a')).to.deep.equal({ withinModal: true, lossV: false, lossA: true });
    expect(row('cmac')).to.deep.equal({ withinModal: true, lossV: true, lossA: true });
    expect(lossSwitches(resolveConfig({ loss: { preset: 'cmac', lossA: false } })).lossA).to.equal(false);
    expect(toModelConfig(resolveConfig({ loss: { preset: 'xmodal' } })).loss).to.include({ withinModal: false, lossV: false });
  });

  it("logmel.fMax defaults to sampleRate / 2 (the native front end's rule); an explicit value stays", () => {
    expect(resolveConfig().logmel.fMax).to.equal(8000);
    expect(resolveConfig({ logmel: { sampleRate: 22050 } }).logmel.fMax).to.equal(11025);
    expect(resolveConfig({ logmel: { sampleRate: 22050, fMax: 7600 } }).logmel.fMax).to.equal(7600);
    expect(toModelConfig(resolveConfig({ logmel: { sampleRate: 32000 } })).logmel?.fMax).to.equal(16000);
  });

  it('the engine view (toModelConfig) of every preset and loss preset passes the engine schema built from the same sections', () => {
    for (const preset of ['tiny', 'paper'] as const) {
      for (const loss of lossPresetNames) {
        const m = toModelConfig(resolveConfig({ preset, loss: { preset: loss } }));
        expect(modelConfigSchema.safeParse(m).success, `${preset}/${loss}`).to.equal(true);
      }
    }
    // The sections are shared: a range the run config rejects, the engine schema rejects too.
    expect(modelConfigSchema.safeParse({ loss: { tau: 0 } }).success).to.equal(false);
    expect(modelConfigSchema.safeParse({ visual: { planes: [1e9, 8, 8, 8] } }).success).to.equal(false);
    expect(modelConfigSchema.safeParse({ loss: { rampFraction: 0.1 } }).success).to.equal(false); // a trainer setting, not the engine's
  });

  it('overrides: --set a.b=c with JSON values', () => {
    expect(parseOverride('optim.lr=1e-3')).to.deep.equal({ optim: { lr: 0.001 } });
    expect(parseOverride('data.source=./videos')).to.deep.equal({ data: { source: './videos' } });
    const c = resolveConfig({}, ['optim.lr=5e-4', 'model.visual.planes=[8,16,32,64]', 'loss.preset=xmodal', 'train.tensorboard=true']);
    expect(c.optim.lr).to.equal(5e-4);
    expect(c.model.visual.planes).to.deep.equal([8, 16, 32, 64]);
    expect(c.loss.preset).to.equal('xmodal');
    expect(c.train.tensorboard).to.equal(true);
    expect(() => parseOverride('nonsense')).to.throw(ConfigError, /key\.path=value/);
  });

  it('reads JSON and YAML files', () => {
    const d = tmpDir();
    fs.writeFileSync(path.join(d, 'a.yaml'), 'preset: tiny\noptim:\n  lr: 0.002\nloss:\n  preset: cmac-v\n');
    fs.writeFileSync(path.join(d, 'b.json'), JSON.stringify({ train: { steps: 7 } }));
    expect(resolveConfig(loadConfigFile(path.join(d, 'a.yaml'))).optim.lr).to.equal(0.002);
    expect(resolveConfig(loadConfigFile(path.join(d, 'b.json'))).train.steps).to.equal(7);
    fs.writeFileSync(path.join(d, 'c.json'), '{ broken');
    expect(() => loadConfigFile(path.join(d, 'c.json'))).to.throw(ConfigError, /c\.json is not valid JSON/);
    expect(() => loadConfigFile(path.join(d, 'none.yaml'))).to.throw(ConfigError, /cannot read/);
  });

  const bad: Array<[string, object, RegExp]> = [
    ['negative lr', { optim: { lr: -1 } }, /config\.optim\.lr: got -1; must be > 0/],
    ['unknown key', { optim: { lrr: 1 } }, /config\.optim: unknown key\(s\) 'lrr'/],
    ['unknown top-level key', { foo: 1 }, /config: unknown key\(s\) 'foo'/],
    [
      'bad enum',
      { loss: { preset: 'cmac2' } },
      /config\.loss\.preset: got "cmac2"; allowed: "xmodal", "xmodal\+within", "cmac-v", "cmac-a", "cmac"/,
    ],
    ['wrong type', { train: { steps: 'many' } }, /config\.train\.steps: got "many"; expected number/],
    ['non-integer', { data: { batchSize: 3.5 } }, /config\.data\.batchSize: got 3\.5; expected integer/],
    ['batch of 1', { data: { batchSize: 1 } }, /config\.data\.batchSize: got 1; must be >= 2/],
    ['bad device', { device: 'gpu' }, /config\.device: got "gpu"; must be cpu, cuda, cuda:N or auto/],
    ['bad cudnnBenchmark', { cudnnBenchmark: 'yes' }, /config\.cudnnBenchmark/],
    ['bad layout', { model: { visual: { layout: 'nhwc' } } }, /config\.model\.visual\.layout/],
    ['bad preset', { preset: 'huge' }, /config\.preset: got "huge"; allowed: "tiny", "paper"/],
    ['window > nFft', { logmel: { winLength: 2048 } }, /config\.logmel\.winLength: got 2048; must be <= logmel\.nFft/],
    ['fMax above Nyquist', { logmel: { fMax: 9000 } }, /config\.logmel\.fMax: got 9000/],
    ['planes wrong length', { model: { visual: { planes: [1, 2] } } }, /config\.model\.visual\.planes/],
  ];
  for (const [name, input, re] of bad) {
    it(`rejects ${name} before any work`, async () => {
      const e = await rejects(() => resolveConfig(input as never), ConfigError, re);
      expect((e as ConfigError).issues.length).to.be.greaterThan(0);
    });
  }

  it('learning-rate schedule: warmup then cosine to the floor', () => {
    const c = resolveConfig({ optim: { lr: 1, warmupFraction: 0.1, minLrFraction: 0.1 } });
    expect(learningRate(c, 0, 100)).to.be.closeTo(0.1, 1e-12);
    expect(learningRate(c, 9, 100)).to.be.closeTo(1, 1e-12);
    expect(learningRate(c, 10, 100)).to.be.closeTo(1, 1e-12);
    expect(learningRate(c, 99, 100)).to.be.closeTo(0.1, 0.01);
    const k = resolveConfig({ optim: { lr: 1, schedule: 'constant', warmupFraction: 0 } });
    expect(learningRate(k, 50, 100)).to.equal(1);
  });

  it('lambda ramp: 0 -> 1 over the first 10% of steps', () => {
    const c = resolveConfig();
    expect(lambdaScale(c, 0, 100)).to.equal(0);
    expect(lambdaScale(c, 5, 100)).to.equal(0.5);
    expect(lambdaScale(c, 10, 100)).to.equal(1);
    expect(lambdaScale(c, 90, 100)).to.equal(1);
    const later = resolveConfig({ loss: { rampStart: 20, rampFraction: 0.5 } }); // a fixed later start: 0 until step 20, then 50 steps
    expect([19, 20, 45, 70, 99].map((s) => lambdaScale(later, s, 100))).to.deep.equal([0, 0, 0.5, 1, 1]);
  });

  it('pooling is model.pooling (default attention for every preset), not part of the loss preset; loss.attentionPooling names its replacement', () => {
    for (const preset of lossPresetNames) {
      const c = resolveConfig({ loss: { preset } });
      expect(c.model.pooling, preset).to.equal('attention');
      expect(toModelConfig(c).pooling, preset).to.equal('attention');
      expect(toModelConfig(resolveConfig({ loss: { preset } }, ['model.pooling=mean'])).pooling).to.equal('mean');
    }
    expect(() => resolveConfig({ loss: { attentionPooling: false } } as ConfigInput)).to.throw(
      ConfigError,
      /config\.loss\.attentionPooling: replaced by model\.pooling/,
    );
    expect(() => resolveConfig({}, ['model.pooling=max'])).to.throw(
      ConfigError,
      /config\.model\.pooling: got "max"; allowed: "attention", "mean"/,
    );
  });

  it('loss.rampStart auto: lambda stays 0 until the retrieval accuracy reaches the threshold, then rises; a resumed RampStart keeps its step', () => {
    const c = resolveConfig({ loss: { rampStart: 'auto', rampThreshold: 0.3, rampFraction: 0.1 } });
    expect(() => resolveConfig({ loss: { rampStart: 'soon' } } as ConfigInput)).to.throw(ConfigError, /config\.loss\.rampStart/);
    expect(() => resolveConfig({ loss: { rampThreshold: 1.5 } })).to.throw(
      ConfigError,
      /config\.loss\.rampThreshold: got 1\.5; must be <= 1/,
    );
    const acc = [0.05, 0.1, 0.29, 0.3, 0.1, 0.6, 0.7, 0.8, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9, 0.9];
    const ramp = new RampStart(c);
    const lam: number[] = [];
    const started: number[] = [];
    acc.forEach((a, step) => {
      lam.push(lambdaScale(c, step, 100, ramp.step)); // what the step trains with
      if (ramp.observe(step, a)) started.push(step);
    });
    expect(started).to.deep.equal([3]); // 0.3 >= 0.3 at step 3; a later dip does not restart it
    expect(ramp.step).to.equal(4);
    expect(lam.slice(0, 5)).to.deep.equal([0, 0, 0, 0, 0]);
    expect(lam.slice(5, 15).map((x) => +x.toFixed(12))).to.deep.equal([0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1]);
    expect(new RampStart(c, 4).observe(20, 0.99)).to.equal(false); // resumed with its step: not found again
    expect(new RampStart(c, 4).step).to.equal(4);
    expect(new RampStart(resolveConfig()).step).to.equal(0); // fixed ramps start where the config says
    expect(new RampStart(c).observe(0, NaN)).to.equal(false);
  });
});
