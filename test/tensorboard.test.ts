// TensorBoard event files: CRC32C, TFRecord framing, and the Event/Summary
// protobufs, decoded back with protobufjs and independently with Debian's
// protoc --decode_raw against TensorBoard's field numbers (event.proto:
// wall_time=1 double, step=2 int64, file_version=3, summary=5;
// summary.proto: Summary.value=1, Value.tag=1, Value.simple_value=2 float).
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { crc32c, eventSchema, maskedCrc32c, readTfRecords, TensorBoardWriter, train } from '../lib/train';
import { synthesize } from '../lib/data';
import { tmpDir } from './helpers';

function fixed32ToFloat(hex: string): number {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(Number(hex));
  return b.readFloatLE(0);
}

describe('tensorboard event files', function () {
  this.timeout(300000);

  it('CRC32C matches the standard check value; masking per TFRecord', () => {
    expect(crc32c(Buffer.from('123456789'))).to.equal(0xe3069283);
    expect(crc32c(new Uint8Array(32))).to.equal(0x8a9136aa);
    const c = crc32c(Buffer.from('abc'));
    expect(maskedCrc32c(Buffer.from('abc'))).to.equal(((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0);
  });

  it('writes records that decode with protobufjs and with protoc --decode_raw', () => {
    const dir = tmpDir();
    const w = new TensorBoardWriter(dir);
    w.scalars(3, { loss: 1.5, 'loss/con': 0.25 });
    w.scalars(4, { loss: 1.25 });
    w.close();
    const recs = readTfRecords(fs.readFileSync(w.file));
    expect(recs).to.have.length(3);
    const evs = recs.map((r) => eventSchema.Event.toObject(eventSchema.Event.decode(r), { longs: Number })) as Array<Record<string, any>>;
    expect(evs[0].file_version).to.equal('brain.Event:2');
    expect(evs[1].step).to.equal(3);
    expect(evs[1].summary.value).to.deep.equal([
      { tag: 'loss', simple_value: 1.5 },
      { tag: 'loss/con', simple_value: 0.25 },
    ]);
    // Independent decoder: protoc (apt protobuf-compiler) sees the wire format only.
    const raw = spawnSync('protoc', ['--decode_raw'], { input: recs[1], encoding: 'utf8' });
    expect(raw.status, raw.stderr).to.equal(0);
    expect(raw.stdout).to.match(/^1: 0x[0-9a-f]{16}$/m); // wall_time: fixed64 (double)
    expect(raw.stdout).to.match(/^2: 3$/m); // step: varint
    const tags = [...raw.stdout.matchAll(/1: "([^"]+)"/g)].map((m) => m[1]);
    expect(tags).to.deep.equal(['loss', 'loss/con']);
    const vals = [...raw.stdout.matchAll(/2: (0x[0-9a-f]{8})\b/g)].map((m) => fixed32ToFloat(m[1]));
    expect(vals).to.deep.equal([1.5, 0.25]);
    const first = spawnSync('protoc', ['--decode_raw'], { input: recs[0], encoding: 'utf8' });
    expect(first.stdout).to.match(/^3: "brain\.Event:2"$/m);
  });

  it('a corrupted record is detected by its CRC', () => {
    const dir = tmpDir();
    const w = new TensorBoardWriter(dir);
    w.scalars(1, { loss: 2 });
    w.close();
    const buf = fs.readFileSync(w.file);
    buf[buf.length - 6] ^= 0xff;
    expect(() => readTfRecords(buf)).to.throw(/CRC mismatch/);
  });

  it('cmac train --tensorboard writes one scalar event per step', async () => {
    const dir = tmpDir();
    const data = path.join(dir, 'data');
    await synthesize({ out: data, clips: 8, seed: 1, size: 64, fps: 8, seconds: 2 });
    const runDir = path.join(dir, 'run');
    await train(
      { preset: 'tiny', data: { source: data, batchSize: 4 }, train: { steps: 3, runDir, tensorboard: true } },
      { progress: false },
    );
    const files = fs.readdirSync(path.join(runDir, 'tensorboard'));
    expect(files).to.have.length(1);
    const evs = readTfRecords(fs.readFileSync(path.join(runDir, 'tensorboard', files[0]))).map((r) =>
      eventSchema.Event.toObject(eventSchema.Event.decode(r), { longs: Number }),
    ) as Array<Record<string, any>>;
    expect(evs.slice(1).map((e) => e.step)).to.deep.equal([0, 1, 2]);
    expect(evs[1].summary.value.map((v: { tag: string }) => v.tag)).to.include.members(['loss', 'loss/con', 'loss/v', 'loss/a', 'lr']);
  });
});
