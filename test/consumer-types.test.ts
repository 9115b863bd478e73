// The package's types as a TypeScript consumer meets them (issue 15 item 6):
// a small consumer file compiled with tsc against dist/index.d.ts. Readonly
// shapes (`as const`), a bare `Tensor` where a float32 tensor is wanted, and a
// config object literal checked against the schema's input type: the good
// file compiles, a misspelt key is the exact compile error.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError, resolveConfig } from '../lib/config';
import { createLoader, DataError, folderSource, parseCsv, TooFewClipsError } from '../lib/data';
import { CmacModel } from '../lib/model';
import { RunFolderBusyError } from '../lib/train/files';
import { NonFiniteLossError, train } from '../lib/train/trainer';
import { localizeVideo } from '../lib/viz/localize';
import { randomBatch, root, tinyConfig, tmpDir } from './helpers';

const tsc = path.join(root, 'node_modules', 'typescript', 'bin', 'tsc');

function compile(source: string): { status: number | null; out: string } {
  const dir = tmpDir('cmac-consumer-');
  fs.writeFileSync(path.join(dir, 'consumer.ts'), source.replace(/CMAC/g, JSON.stringify(root)));
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        strict: true,
        noEmit: true,
        target: 'ES2022',
        module: 'commonjs',
        moduleResolution: 'node',
        esModuleInterop: true,
        skipLibCheck: false,
        types: ['node'],
        typeRoots: [path.join(root, 'node_modules', '@types')],
      },
      files: ['consumer.ts'],
    }),
  );
  const r = spawnSync(process.execPath, [tsc, '-p', dir], { encoding: 'utf8', cwd: dir });
  return { status: r.status, out: (r.stdout + r.stderr).replace(/\r/g, '') };
}

describe('TypeScript consumer types', function () {
  this.timeout(120000);

  it('readonly shapes, a bare Tensor as float32 input, a typed config: compiles', () => {
    const r = compile(`
import { CmacModel, resolveConfig, train, zeros, type AnyTensor, type CmacConfigInput, type Tensor } from CMAC;
const shape = [2, 32000] as const;
const audio: Tensor = { data: new Float32Array(2 * 32000), shape };
const video: Tensor<'uint8'> = { data: new Uint8Array(2 * 4 * 64 * 64 * 3), shape: [2, 4, 64, 64, 3] as const };
export async function run(model: CmacModel): Promise<number> {
  const e = await model.embed({ video, audio });
  const z: Tensor<'float32'> = e.zV!;
  const sd: Record<string, AnyTensor> = await model.stateDict();
  const anyOne: AnyTensor = z;
  return z.shape[0] + Object.keys(sd).length + anyOne.shape.length + zeros([2, 3] as const).shape[1];
}
const cfg = resolveConfig({ preset: 'tiny', optim: { lr: 5e-4 }, data: { batchSize: 4 } }, ['train.steps=2']);
const input: CmacConfigInput = { loss: { preset: 'cmac-v' }, clip: { frames: 4 } };
export const later = () => train({ ...input, preset: 'tiny', train: { steps: cfg.train.steps } }, { progress: false });
`);
    expect(r.out).to.equal('');
    expect(r.status).to.equal(0);
  });

  it('a misspelt config key is a compile error naming it (resolveConfig and train)', () => {
    const r = compile(`
import { resolveConfig, train } from CMAC;
resolveConfig({ optim: { lrr: 5e-4 } });
export const t = () => train({ preset: 'tiny', trian: { steps: 2 } });
`);
    expect(r.status).to.not.equal(0);
    // The type tsc prints after "in type" is the whole schema section; the rest is the exact message.
    const errors = r.out
      .trim()
      .split('\n')
      .filter((l) => /error TS/.test(l))
      .map((l) => l.replace(/^consumer\.ts/, '').replace(/ in type '.*'\./, ' in type ...'));
    expect(errors).to.deep.equal([
      "(3,26): error TS2353: Object literal may only specify known properties, and 'lrr' does not exist in type ...",
      "(4,48): error TS2561: Object literal may only specify known properties, but 'trian' does not exist in type ... Did you mean to write 'train'?",
    ]);
  });

  it("ModelConfig is the engine schema's input type; helpers under the API are in cmac/internal, not in cmac", () => {
    const bad = compile(`
import { hashString, type ModelConfig } from CMAC;
export const m: ModelConfig = { visual: { planes: [8, 16, 32, 64] }, loss: { preset: 'cmac-v', tua: 0.1 } };
export const h = hashString('x');
`);
    expect(bad.status).to.not.equal(0);
    const errors = bad.out
      .trim()
      .split('\n')
      .filter((l) => /error TS/.test(l))
      .map((l) => l.replace(/^consumer\.ts/, '').replace(/ in type '.*'\./, ' in type ...'));
    expect(errors).to.deep.equal([
      `(2,10): error TS2305: Module '${JSON.stringify(root)}' has no exported member 'hashString'.`,
      "(3,96): error TS2353: Object literal may only specify known properties, and 'tua' does not exist in type ...",
    ]);
    const good = compile(`
import { modelPreset, type ModelConfig } from CMAC;
import { hashString } from ${JSON.stringify(path.join(root, 'dist', 'internal'))};
export const m: ModelConfig = { ...modelPreset('tiny'), loss: { preset: 'cmac-v', tau: 0.1 }, dist: { enabled: false } };
export const h: number = hashString('x');
`);
    expect(good.out).to.equal('');
    expect(good.status).to.equal(0);
  });

  it('errors carry a stable code', () => {
    const codeOf = (f: () => unknown) => {
      try {
        f();
      } catch (e) {
        return (e as { code?: unknown }).code;
      }
      return 'no error';
    };
    expect(codeOf(() => resolveConfig({ optim: { lrr: 1 } } as never))).to.equal('CMAC_CONFIG');
    expect(codeOf(() => parseCsv('"open,1\n2,3'))).to.equal('CMAC_CSV');
    expect(new ConfigError(['x']).code).to.equal('CMAC_CONFIG');
    expect(new DataError('too_short', 'a.mp4', 'x').code).to.equal('CMAC_DATA');
    expect(new TooFewClipsError('src', 1, false, 4).code).to.equal('CMAC_TOO_FEW_CLIPS');
    expect(new RunFolderBusyError('busy', undefined, 'run.lock').code).to.equal('CMAC_RUN_FOLDER_BUSY');
    expect(new NonFiniteLossError('nan').code).to.equal('CMAC_NON_FINITE_LOSS');
  });

  it('an options object with a key the function does not know is an error naming it, before any work (plain JS)', async () => {
    const dir = tmpDir('cmac-opts-');
    const opts = { progres: false } as Record<string, unknown>; // what a JavaScript caller can pass
    let err: (Error & { code?: string; key?: string }) | undefined;
    try {
      await train({ preset: 'tiny', train: { runDir: path.join(dir, 'run') } }, opts);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.equal("cmac: train() options: unknown key 'progres'. Known keys: onStep, signal, resume, log, progress");
    expect(err?.code).to.equal('CMAC_OPTIONS');
    expect(err?.key).to.equal('progres');
    expect(fs.existsSync(path.join(dir, 'run'))).to.equal(false); // nothing started
    err = undefined;
    try {
      await localizeVideo(undefined as never, undefined as never, path.join(dir, 'none.mp4'), dir, { max_clips: 2 } as never);
    } catch (e) {
      err = e as Error;
    }
    expect(err?.message).to.match(
      /^cmac: localizeVideo\(\) options: unknown key 'max_clips'\. Known keys: maps, size, maxClips, from, batchSize, noVideo, log$/,
    );
  });

  it('CmacModel.create (top level and each group), trainStep and createLoader reject unknown keys too', async () => {
    const bad = async (f: () => unknown): Promise<Error & { code?: string; key?: string }> => {
      try {
        await f();
      } catch (e) {
        return e as Error & { code?: string; key?: string };
      }
      throw new Error('expected an OptionsError, nothing was thrown');
    };
    let e = await bad(() => CmacModel.create({ ...tinyConfig(), lrr: 1 } as never));
    expect(e.code).to.equal('CMAC_OPTIONS');
    expect(e.message).to.match(/^cmac: CmacModel\.create\(\) options: unknown key 'lrr'\. Known keys: visual, audio, /);
    e = await bad(() => CmacModel.create({ ...tinyConfig(), loss: { preset: 'cmac', lamdaV: 2 } } as never));
    expect(e.message).to.match(/^cmac: CmacModel\.create\(\) loss options: unknown key 'lamdaV'\. Known keys: preset, .*lambdaV/);
    e = await bad(() => CmacModel.create({ ...tinyConfig(), optim: { name: 'adam', weightdecay: 0.1 } } as never));
    expect(e.key).to.equal('weightdecay');
    const model = await CmacModel.create(tinyConfig({ seed: 1 }));
    try {
      e = await bad(() => model.trainStep(randomBatch(2), { lr: 1e-3, lambdaScal: 1 } as never));
      expect(e.message).to.equal("cmac: trainStep() options: unknown key 'lambdaScal'. Known keys: lr, lambdaScale");
      expect((await model.trainStep(randomBatch(2), { lr: 1e-3, lambdaScale: 1 })).loss).to.be.a('number');
    } finally {
      model.dispose();
    }
    e = await bad(() =>
      createLoader({
        source: folderSource(tmpDir('cmac-opts-')),
        batchSize: 2,
        clip: { frames: 4, fps: 8, size: 32, audioSeconds: 1, sampleRate: 16000 },
        batchsize: 3,
      } as never),
    );
    expect(e.message).to.match(/^cmac: createLoader\(\) options: unknown key 'batchsize'\. Known keys: source, batchSize, /);
  });
});
