// The Node-API bridge: info, threads, memory, the tensor bridge, and bad
// arguments to every exported native function (a JS error, never a crash).
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { info, memory, setNumThreads, getNumThreads } from '../lib/info';
import { native } from '../lib/native';
import { readSafetensors, writeSafetensors } from '../lib/safetensors';
import { rejects, tmpDir } from './helpers';

describe('addon: info, threads, memory', () => {
  it('info() reports the libtorch build', () => {
    const i = info();
    expect(i.torchVersion).to.match(/^\d+\.\d+\.\d+/);
    expect(i.torchSource).to.be.oneOf(['LIBTORCH', 'Torch_DIR', 'CMAKE_PREFIX_PATH', 'python', 'system']);
    expect(i.cxx11Abi).to.be.oneOf([0, 1]);
    expect(i.addonVersion).to.equal(require('../../package.json').version);
    expect(i.cudaDevices.length).to.equal(i.cudaDeviceCount);
  });

  it('setNumThreads() sets the thread count', () => {
    setNumThreads(2);
    expect(getNumThreads()).to.equal(2);
    expect(info().numThreads).to.equal(2);
    setNumThreads(1);
    expect(getNumThreads()).to.equal(1);
  });

  it('memory() reports counts and RSS', () => {
    const m = memory();
    expect(m.models).to.be.a('number');
    expect(m.bytes).to.be.a('number');
    expect(m.rss).to.be.greaterThan(0);
  });
});

describe('addon: tensor bridge through safetensors', () => {
  const dir = tmpDir();
  it('round-trips every dtype and keeps metadata', async () => {
    const f = path.join(dir, 'all.safetensors');
    const tensors = {
      f32: { data: new Float32Array([1.5, -2, 3]), shape: [3] },
      f64: { data: new Float64Array([Math.PI, 1e300]), shape: [2, 1] },
      f16: { data: new Uint16Array([0x3c00, 0xc000]), shape: [2], dtype: 'float16' as const },
      i64: { data: new BigInt64Array([1n, -(2n ** 40n)]), shape: [2] },
      i32: { data: new Int32Array([7, -7]), shape: [1, 2] },
      u8: { data: new Uint8Array([0, 255, 3, 4]), shape: [2, 2] },
      empty: { data: new Float32Array(0), shape: [0, 5] },
    };
    await writeSafetensors(f, tensors, { note: 'hello' });
    const r = await readSafetensors(f);
    expect(r.metadata).to.deep.equal({ note: 'hello' });
    for (const [k, t] of Object.entries(tensors)) {
      expect(r.tensors[k].shape, k).to.deep.equal(t.shape);
      expect(Array.from(r.tensors[k].data as ArrayLike<unknown>), k).to.deep.equal(Array.from(t.data as ArrayLike<unknown>));
    }
    expect(r.tensors.f16.dtype).to.equal('float16');
    expect(r.tensors.i64.data).to.be.instanceOf(BigInt64Array);
  });

  it('copies inputs: a subarray view with an offset is read correctly', async () => {
    const f = path.join(dir, 'view.safetensors');
    const backing = new Float32Array([9, 9, 1, 2, 3, 9]);
    await writeSafetensors(f, { x: { data: backing.subarray(2, 5), shape: [3] } });
    backing.fill(0);
    expect(Array.from((await readSafetensors(f)).tensors.x.data as Float32Array)).to.deep.equal([1, 2, 3]);
  });

  it('rejects a malformed file with an Error that names the file and the fix', async () => {
    const f = path.join(dir, 'bad.safetensors');
    fs.writeFileSync(f, Buffer.from([1, 2, 3]));
    await rejects(readSafetensors(f), Error, /malformed safetensors .*bad\.safetensors.*Fix:/);
    await rejects(readSafetensors(path.join(dir, 'nope.safetensors')), Error, /cannot open .*nope.*Fix:/);
  });
});

// Every exported native function with bad arguments: each must throw or reject
// a JS error naming the parameter; the process must survive all of them.
describe('addon: bad arguments to every exported function', () => {
  const a = native();
  const t = { data: new Float32Array(2), shape: [2] };
  const cases: Array<[string, () => unknown, Function, RegExp]> = [
    ['setNumThreads()', () => a.setNumThreads(undefined as never), TypeError, /n must be a number/],
    ['setNumThreads(0)', () => a.setNumThreads(0), RangeError, /numThreads must be an integer in \[1, 1024\]/],
    ['setNumThreads(1.5)', () => a.setNumThreads(1.5), RangeError, /integer/],
    ['readSafetensors(42)', () => a.readSafetensors(42 as never), TypeError, /path must be a string/],
    ['writeSafetensors(no tensors)', () => a.writeSafetensors('/tmp/x', undefined as never), TypeError, /tensors must be an object/],
    [
      'writeSafetensors(data not typed)',
      () => a.writeSafetensors('/tmp/x', { w: { data: [1, 2], shape: [2] } } as never),
      TypeError,
      /tensors\['w'\]\.data must be a typed array/,
    ],
    [
      'writeSafetensors(shape mismatch)',
      () => a.writeSafetensors('/tmp/x', { w: { data: new Float32Array(3), shape: [2] } }),
      RangeError,
      /has 3 elements but shape \[2\] needs 2/,
    ],
    [
      'writeSafetensors(negative dim)',
      () => a.writeSafetensors('/tmp/x', { w: { data: new Float32Array(2), shape: [-2] } }),
      RangeError,
      /shape\[0\] must be a non-negative integer/,
    ],
    [
      'writeSafetensors(bad dtype)',
      () => a.writeSafetensors('/tmp/x', { w: { ...t, dtype: 'int8' } } as never),
      TypeError,
      /dtype 'int8' is not supported/,
    ],
    [
      'writeSafetensors(dtype vs array)',
      () => a.writeSafetensors('/tmp/x', { w: { ...t, dtype: 'uint8' } } as never),
      TypeError,
      /needs a Uint8Array/,
    ],
    [
      'writeSafetensors(metadata value)',
      () => a.writeSafetensors('/tmp/x', { w: t }, { k: 1 } as never),
      TypeError,
      /metadata\['k'\] must be a string/,
    ],
    ['writeSafetensors(unwritable)', () => a.writeSafetensors('/nonexistent-dir/x.safetensors', { w: t }), Error, /cannot create .*Fix:/],
    ['createModel(5)', () => a.createModel(5 as never), TypeError, /config must be an object/],
    [
      'createModel(bad planes)',
      () => a.createModel({ visual: { planes: [1, 2] } }),
      TypeError,
      /config\.visual\.planes must be an array of 4 integers/,
    ],
    ['createModel(bad preset)', () => a.createModel({ loss: { preset: 'nope' } }), Error, /loss preset must be one of/],
    ['createModel(bad device)', () => a.createModel({ device: 'tpu' }), RangeError, /device 'tpu' is not valid/],
    ['createModel(cuda on CPU build)', () => a.createModel({ device: 'cuda:0' }), RangeError, /CUDA is not available|does not exist/],
    ['createModel(bad optim)', () => a.createModel({ optim: { name: 'lbfgs' } }), Error, /optim\.name must be one of sgd, adam, adamw/],
    ['createModel(tau string)', () => a.createModel({ loss: { tau: '0.1' } }), TypeError, /config\.loss\.tau must be a number/],
    ['createModel(seed -1)', () => a.createModel({ seed: -1 }), RangeError, /config\.seed must be an integer/],
    ['createModel(amp)', () => a.createModel({ amp: 'fp8' } as never), RangeError, /amp must be off, bf16 or fp16/],
    [
      'new CmacModel()',
      () => new (a as unknown as { CmacModel: new () => unknown }).CmacModel(),
      TypeError,
      /cannot be constructed directly/,
    ],
  ];
  for (const [name, fn, cls, re] of cases) {
    it(name, async () => {
      await rejects(async () => fn(), cls, re);
    });
  }

  it('methods called on a foreign receiver throw instead of crashing', async () => {
    const ctor = (a as unknown as { CmacModel: { prototype: Record<string, Function> } }).CmacModel;
    for (const m of ['trainStep', 'embed', 'maps', 'stateDict', 'save', 'load', 'to', 'train', 'eval', 'dispose']) {
      await rejects(async () => ctor.prototype[m].call({}, {}), Error, /./);
    }
  });

  it("a CmacModel's and a VideoClassifier's methods called on each other's objects throw, and both still work", async () => {
    const x = a as unknown as Record<string, any>;
    const model = await x.createModel({
      visual: { planes: [4, 4, 4, 4], blocks: [1, 1, 1, 1], stemMid: 4 },
      audio: { planes: [4, 4, 4, 4], blocks: [1, 1, 1, 1] },
      seed: 1,
    });
    const clf = await x.createClassifier(
      { visual: { planes: [4, 4, 4, 4], blocks: [1, 1, 1, 1], stemMid: 4 }, seed: 1 },
      { numClasses: 2 },
    );
    const getter = (ctor: any, name: string) => Object.getOwnPropertyDescriptor(ctor.prototype, name)!.get!;
    for (const [ctor, other, names] of [
      [x.CmacModel, clf, ['device', 'numParameters', 'disposed', 'rank', 'worldSize']],
      [x.VideoClassifier, model, ['device', 'numParameters', 'disposed', 'numClasses']],
    ] as const) {
      expect(() => ctor.prototype.dispose.call(other)).to.throw(TypeError, /receiver is not a|Illegal invocation/);
      for (const n of names) expect(() => getter(ctor, n).call(other), n).to.throw(TypeError, /receiver is not a|Illegal invocation/);
    }
    expect(model.disposed).to.equal(false);
    expect(clf.disposed).to.equal(false);
    model.dispose();
    clf.dispose();
    expect(model.disposed && clf.disposed).to.equal(true);
  });
});
