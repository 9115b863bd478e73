// Configuration: presets, defaults from method.md, files, overrides, and
// validation errors that name the field, the value and what is allowed.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError, learningRate, lambdaScale, loadConfigFile, lossSwitches, parseOverride, resolveConfig, toModelConfig } from '../lib/config';
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
    const row = (preset: string) => lossSwitches(resolveConfig({ loss: { preset } }));
    expect(row('xmodal')).to.deep.equal({ withinModal: false, lossV: false, lossA: false, attentionPooling: false });
    expect(row('xmodal+within')).to.deep.equal({ withinModal: true, lossV: false, lossA: false, attentionPooling: false });
    expect(row('cmac-v')).to.deep.equal({ withinModal: true, lossV: true, lossA: false, attentionPooling: true });
    expect(row('cmac-a')).to.deep.equal({ withinModal: true, lossV: false, lossA: true, attentionPooling: true });
    expect(row('cmac')).to.deep.equal({ withinModal: true, lossV: true, lossA: true, attentionPooling: true });
    expect(lossSwitches(resolveConfig({ loss: { preset: 'cmac', lossA: false } })).lossA).to.equal(false);
    expect(toModelConfig(resolveConfig({ loss: { preset: 'xmodal' } })).loss).to.include({ withinModal: false, lossV: false });
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
    ['bad enum', { loss: { preset: 'cmac2' } }, /config\.loss\.preset: got "cmac2"; allowed: "xmodal", "xmodal\+within", "cmac-v", "cmac-a", "cmac"/],
    ['wrong type', { train: { steps: 'many' } }, /config\.train\.steps: got "many"; expected number/],
    ['non-integer', { data: { batchSize: 3.5 } }, /config\.data\.batchSize: got 3\.5; expected integer/],
    ['batch of 1', { data: { batchSize: 1 } }, /config\.data\.batchSize: got 1; must be >= 2/],
    ['bad device', { device: 'gpu' }, /config\.device: got "gpu"; must be cpu, cuda, cuda:N or auto/],
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
  });
});
