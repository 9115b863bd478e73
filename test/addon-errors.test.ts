// Errors from the native addon carry a stable `code` (issue 15 item 6): the
// list is CMAC_ERROR_CODES in native/addon/bridge.h, exported as
// errorCodes, typed as NativeErrorCode in lib/native.ts, documented in
// docs/errors.md. Callers branch on `code`, not on the message.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { CmacModel } from '../lib/model';
import { VideoClassifier } from '../lib/classifier';
import { native, NativeErrorCode } from '../lib/native';
import { readSafetensors, writeSafetensors } from '../lib/safetensors';
import { randomBatch, rejects, root, tmpDir } from './helpers';

// A Record over the type: adding a code to the type without adding it here
// (or the reverse) is a compile error, and the test below compares it with
// the addon's own list.
const typed: Record<NativeErrorCode, true> = {
  CMAC_BAD_ARGUMENT: true,
  CMAC_OUT_OF_RANGE: true,
  CMAC_SHAPE_MISMATCH: true,
  CMAC_INVALID_VALUE: true,
  CMAC_IO: true,
  CMAC_CHECKPOINT_INVALID: true,
  CMAC_DISPOSED: true,
  CMAC_UNAVAILABLE: true,
  CMAC_TORCH_ERROR: true,
  CMAC_NATIVE_ERROR: true,
};

const micro = {
  visual: {
    planes: [4, 4, 4, 4] as [number, number, number, number],
    blocks: [1, 1, 1, 1] as [number, number, number, number],
    stemMid: 4,
  },
  audio: {
    planes: [4, 4, 4, 4] as [number, number, number, number],
    blocks: [1, 1, 1, 1] as [number, number, number, number],
  },
  seed: 1,
};

async function codeOf(p: Promise<unknown> | (() => unknown), cls: Function, re: RegExp): Promise<unknown> {
  return ((await rejects(p, cls, re)) as Error & { code?: unknown }).code;
}

describe('addon errors: stable codes', function () {
  this.timeout(120000);
  const dir = tmpDir();
  let model: CmacModel;
  before(async () => {
    model = await CmacModel.create(micro);
  });
  after(() => model.dispose());

  it('the addon lists exactly the codes of NativeErrorCode, each with a meaning, and docs/errors.md documents each', () => {
    const listed = native().errorCodes;
    expect(Object.keys(listed).sort()).to.deep.equal(Object.keys(typed).sort());
    for (const [k, what] of Object.entries(listed)) expect(what, k).to.be.a('string').with.length.above(10);
    expect(Object.isFrozen(listed)).to.equal(true);
    const doc = fs.readFileSync(path.join(root, 'docs', 'errors.md'), 'utf8');
    for (const k of Object.keys(listed)) expect(doc, k).to.include(`\`${k}\``);
  });

  it('a tensor whose data does not fill its shape: RangeError CMAC_SHAPE_MISMATCH', async () => {
    const bad = { audio: { data: new Float32Array(3), shape: [2, 4000] } };
    expect(await codeOf(model.embed(bad), RangeError, /batch\.audio\.data has 3 elements but shape \[2,4000\] needs 8000/)).to.equal(
      'CMAC_SHAPE_MISMATCH',
    );
    expect(
      await codeOf(
        () => writeSafetensors(path.join(dir, 'x.safetensors'), { w: { data: new Float32Array(2), shape: [-1] } }),
        RangeError,
        /shape\[0\]/,
      ),
    ).to.equal('CMAC_SHAPE_MISMATCH');
  });

  it('a disposed model and a disposed classifier: CMAC_DISPOSED, naming the class and the fix', async () => {
    const m = await CmacModel.create(micro);
    m.dispose();
    expect(await codeOf(m.embed(randomBatch(2, 1)), Error, /CmacModel was disposed\. Fix:/)).to.equal('CMAC_DISPOSED');
    expect(await codeOf(m.trainStep(randomBatch(2, 1), { lr: 1e-3 }), Error, /disposed/)).to.equal('CMAC_DISPOSED');
    const c = await VideoClassifier.create(micro, { numClasses: 2 });
    c.dispose();
    expect(await codeOf(c.predict({ video: randomBatch(2, 1).video! }), Error, /VideoClassifier was disposed/)).to.equal('CMAC_DISPOSED');
  });

  it('a malformed checkpoint: CMAC_CHECKPOINT_INVALID, and the model is unchanged', async () => {
    const f = path.join(dir, 'garbage.safetensors');
    fs.writeFileSync(f, Buffer.concat([Buffer.from([16, 0, 0, 0, 0, 0, 0, 0]), Buffer.from('{"a": [1, 2, 3]}')]));
    const before = (await model.stateDict())['heads.projV.fc2.bias'].data;
    expect(await codeOf(model.load(f), Error, /malformed safetensors .*garbage\.safetensors.*Fix:/)).to.equal('CMAC_CHECKPOINT_INVALID');
    expect(await codeOf(readSafetensors(f), Error, /malformed safetensors/)).to.equal('CMAC_CHECKPOINT_INVALID');
    expect(await codeOf(VideoClassifier.create(micro, { numClasses: 2, encoder: f }), Error, /malformed safetensors/)).to.equal(
      'CMAC_CHECKPOINT_INVALID',
    );
    expect((await model.stateDict())['heads.projV.fc2.bias'].data).to.deep.equal(before);
  });

  it('wrong types, unknown names, missing files and foreign receivers have their codes', async () => {
    const a = native();
    expect(await codeOf(() => a.createModel(5 as never), TypeError, /config must be an object/)).to.equal('CMAC_BAD_ARGUMENT');
    expect(await codeOf(() => a.createModel({ loss: { preset: 'nope' } }), Error, /loss preset must be one of/)).to.equal(
      'CMAC_INVALID_VALUE',
    );
    expect(await codeOf(() => a.createModel({ seed: -1 }), RangeError, /config\.seed must be an integer/)).to.equal('CMAC_OUT_OF_RANGE');
    expect(await codeOf(model.load(path.join(dir, 'missing.safetensors')), Error, /cannot open .*missing/)).to.equal('CMAC_IO');
    // A getter called on another class's object (V8 itself rejects methods called so, with "Illegal invocation").
    const clf = await a.createClassifier(micro, { numClasses: 2 });
    try {
      const getter = Object.getOwnPropertyDescriptor(
        (a as unknown as { CmacModel: { prototype: object } }).CmacModel.prototype,
        'device',
      )!.get!;
      expect(await codeOf(() => getter.call(clf), TypeError, /receiver is not a CmacModel/)).to.equal('CMAC_BAD_ARGUMENT');
    } finally {
      clf.dispose();
    }
    expect(
      await codeOf(() => new (a as unknown as { CmacModel: new () => unknown }).CmacModel(), TypeError, /cannot be constructed directly/),
    ).to.equal('CMAC_BAD_ARGUMENT');
  });
});
