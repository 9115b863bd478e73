// TensorBoard event files: TFRecord framing (length, masked CRC32C of the
// length, payload, masked CRC32C of the payload) around Event protobufs,
// encoded with protobufjs from the field numbers of TensorBoard's
// event.proto / summary.proto (package tensorboard).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import * as protobuf from 'protobufjs';

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1; // Castagnoli, reflected
    t[i] = c >>> 0;
  }
  return t;
})();

/** CRC-32C (Castagnoli) of `data`. */
export function crc32c(data: Uint8Array): number {
  let c = 0xffffffff;
  for (let i = 0; i < data.length; i++) c = CRC_TABLE[(c ^ data[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masked CRC: rotate right by 15 and add a constant. */
export function maskedCrc32c(data: Uint8Array): number {
  const c = crc32c(data);
  return ((((c >>> 15) | (c << 17)) >>> 0) + 0xa282ead8) >>> 0;
}

/** One TFRecord around `payload`. */
export function tfRecord(payload: Uint8Array): Buffer {
  const len = Buffer.alloc(8);
  len.writeBigUInt64LE(BigInt(payload.length));
  const out = Buffer.alloc(8 + 4 + payload.length + 4);
  len.copy(out, 0);
  out.writeUInt32LE(maskedCrc32c(len), 8);
  Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).copy(out, 12);
  out.writeUInt32LE(maskedCrc32c(payload), 12 + payload.length);
  return out;
}

/** Splits a TFRecord file into payloads, checking both CRCs of every record. */
export function readTfRecords(buf: Uint8Array): Uint8Array[] {
  const b = Buffer.from(buf.buffer, buf.byteOffset, buf.byteLength);
  const out: Uint8Array[] = [];
  let off = 0;
  while (off < b.length) {
    if (off + 12 > b.length) throw new Error(`TFRecord truncated at byte ${off}`);
    const lenBytes = b.subarray(off, off + 8);
    if (b.readUInt32LE(off + 8) !== maskedCrc32c(lenBytes)) throw new Error(`TFRecord length CRC mismatch at byte ${off}`);
    const n = Number(b.readBigUInt64LE(off));
    if (off + 12 + n + 4 > b.length) throw new Error(`TFRecord payload truncated at byte ${off}`);
    const payload = b.subarray(off + 12, off + 12 + n);
    if (b.readUInt32LE(off + 12 + n) !== maskedCrc32c(payload)) throw new Error(`TFRecord payload CRC mismatch at byte ${off}`);
    out.push(payload);
    off += 12 + n + 4;
  }
  return out;
}

/** The subset of tensorboard.Event / tensorboard.Summary that cmac writes (same field numbers). */
export const eventSchema = (() => {
  const root = new protobuf.Root();
  const ns = root.define('tensorboard');
  const pluginData = new protobuf.Type('PluginData')
    .add(new protobuf.Field('plugin_name', 1, 'string'))
    .add(new protobuf.Field('content', 2, 'bytes'));
  const metadata = new protobuf.Type('SummaryMetadata')
    .add(pluginData)
    .add(new protobuf.Field('plugin_data', 1, 'PluginData'))
    .add(new protobuf.Field('display_name', 2, 'string'));
  const image = new protobuf.Type('Image')
    .add(new protobuf.Field('height', 1, 'int32'))
    .add(new protobuf.Field('width', 2, 'int32'))
    .add(new protobuf.Field('colorspace', 3, 'int32'))
    .add(new protobuf.Field('encoded_image_string', 4, 'bytes'));
  const value = new protobuf.Type('Value')
    .add(new protobuf.Field('tag', 1, 'string'))
    .add(new protobuf.Field('simple_value', 2, 'float'))
    .add(new protobuf.Field('image', 4, 'Summary.Image'))
    .add(new protobuf.Field('metadata', 9, 'SummaryMetadata'));
  const summary = new protobuf.Type('Summary')
    .add(image)
    .add(value)
    .add(new protobuf.Field('value', 1, 'Value', 'repeated'));
  const event = new protobuf.Type('Event')
    .add(new protobuf.Field('wall_time', 1, 'double'))
    .add(new protobuf.Field('step', 2, 'int64'))
    .add(new protobuf.Field('file_version', 3, 'string'))
    .add(new protobuf.Field('summary', 5, 'Summary'));
  ns.add(metadata).add(summary).add(event);
  root.resolveAll();
  return { Event: root.lookupType('tensorboard.Event'), Summary: root.lookupType('tensorboard.Summary') };
})();

/**
 * Appends scalars (and PNG images) to an events.out.tfevents.* file that
 * TensorBoard reads (`tensorboard --logdir <runDir>/tensorboard`).
 */
export class TensorBoardWriter {
  readonly file: string;
  private readonly fd: number;

  constructor(dir: string) {
    fs.mkdirSync(dir, { recursive: true });
    this.file = path.join(dir, `events.out.tfevents.${Math.floor(Date.now() / 1000)}.${os.hostname()}.${process.pid}`);
    this.fd = fs.openSync(this.file, 'a');
    this.write({ wall_time: Date.now() / 1000, step: 0, file_version: 'brain.Event:2' });
  }

  /** Scalars under their tags at `step`. */
  scalars(step: number, values: Record<string, number>): void {
    const value = Object.entries(values)
      .filter(([, v]) => Number.isFinite(v))
      .map(([tag, v]) => ({ tag, simple_value: v }));
    this.write({ wall_time: Date.now() / 1000, step, summary: { value } });
  }

  /** A PNG image under `tag`. */
  image(step: number, tag: string, png: Uint8Array, width: number, height: number): void {
    this.write({
      wall_time: Date.now() / 1000,
      step,
      summary: { value: [{ tag, image: { height, width, colorspace: 3, encoded_image_string: png } }] },
    });
  }

  flush(): void {
    fs.fsyncSync(this.fd);
  }

  close(): void {
    fs.closeSync(this.fd);
  }

  private write(ev: Record<string, unknown>): void {
    const err = eventSchema.Event.verify(ev);
    if (err) throw new Error(`tensorboard: bad event: ${err}`);
    fs.writeSync(this.fd, tfRecord(eventSchema.Event.encode(eventSchema.Event.create(ev)).finish()));
  }
}
