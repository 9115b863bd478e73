// The on-disk probe index (data.probeIndex): probe results of files keyed by
// absolute path + size + mtime + audio stream choice, so a second run over a
// large folder starts without probing again.
//
// Format: one line per probe (the probe without its `file`), appended
// (several processes may share one file: each line is one small O_APPEND
// write):
//   P1 <key hash: 16 hex> <crc32 of the JSON: 8 hex> {"key":...,"info":...}\n
// Opening reads the file with one readFileSync and indexes the lines by their
// fixed-width hash prefix only (typed arrays: an open-addressing table of the
// hashes, and per line its offset and the previous line of its hash); a
// line's JSON is parsed (and its crc checked) the first time its key is
// looked up. So a 200,000-line index opens in a fraction of a second instead
// of the seconds JSON.parse of every line takes. A line that is torn (a
// killed writer), damaged (crc fails) or a hash collision (its key differs)
// is a miss: the file is probed again and a new line appended, which the next
// reader takes (the newest line of a hash first, falling back to older ones
// when it is bad). Lines of the older format (plain JSON, `{"key":...}`) are
// still read, parsed at open.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { crc32 } from 'zlib';
import type { ProbeInfo } from './ffmpeg';

/** A stored probe: the probe without the file name (the key holds the path). */
export type IndexedProbe = Omit<ProbeInfo, 'file'>;

const TAG = 'P1 ';
/** Bytes before the JSON: tag, 16 hex digits of hash, space, 8 hex digits of crc, space. */
const HEAD = TAG.length + 16 + 1 + 8 + 1;

interface IndexLine {
  key: string;
  info: IndexedProbe;
}

function hashOf(key: string): string {
  return createHash('sha1').update(key).digest('hex').slice(0, 16);
}

function endsWithNewline(file: string): boolean {
  let fd: number;
  try {
    fd = fs.openSync(file, 'r');
  } catch {
    return true; // no file yet
  }
  try {
    const size = fs.fstatSync(fd).size;
    if (size === 0) return true;
    const b = Buffer.alloc(1);
    fs.readSync(fd, b, 0, 1, size - 1);
    return b[0] === 10;
  } finally {
    fs.closeSync(fd);
  }
}

function valid(e: Partial<IndexLine> | null): e is IndexLine {
  return !!e && typeof e.key === 'string' && !!e.info && typeof e.info.duration === 'number';
}

/** The hash's first 13 hex digits (52 bits) as a number: what a line's hash field reads as. */
function hashNum(key: string): number {
  return parseInt(hashOf(key).slice(0, 13), 16);
}

const hexVal = (c: number): number => (c <= 57 ? c - 48 : (c | 32) - 87);

/** The first 13 hex digits (52 bits) of a line's hash field at `at`, as a number; NaN when not hex. */
function hashAt(b: Buffer, at: number): number {
  let h = 0;
  for (let i = 0; i < 13; i++) {
    const v = hexVal(b[at + i]);
    if (!(v >= 0 && v < 16)) return NaN;
    h = h * 16 + v;
  }
  return h;
}

/** Sidecar (`<index>.lookup`): header, then `count` sorted hashes and their line offsets (float64 each). */
const LOOKUP_MAGIC = 'CMACPIX1';
const LOOKUP_HEAD = 32;
/** Lines past the sidecar's coverage that make an opener write a new sidecar. */
const LOOKUP_REFRESH = 1024;

function readAt(fd: number, at: number, length: number): Buffer {
  const b = Buffer.alloc(length);
  let got = 0;
  while (got < length) {
    const n = fs.readSync(fd, b, got, length - got, at + got);
    if (n === 0) break;
    got += n;
  }
  return b.subarray(0, got);
}

/** Entries sorted by (hash, offset): equal hashes adjacent, the newest line last. */
function sortEntries(hashes: Float64Array, offsets: Float64Array): { hashes: Float64Array; offsets: Float64Array } {
  const order = new Uint32Array(hashes.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  order.sort((x, y) => hashes[x] - hashes[y] || offsets[x] - offsets[y]);
  return { hashes: Float64Array.from(order, (i) => hashes[i]), offsets: Float64Array.from(order, (i) => offsets[i]) };
}

/**
 * A probe index file (see the file comment). `get` and `put` by the key of
 * {@link ProbeIndex.key}; `size` counts the distinct keys (hashes) held.
 *
 * Opening does not read the lines the sidecar `<file>.lookup` covers: it
 * holds their hashes sorted, with each line's offset (written by an opener
 * that found more than 1024 lines past it, atomically by rename; checked by
 * its crc, its length against the file's and a crc of the file's first 4 KiB).
 * Lines past it are scanned. A lookup is a binary search and one positional
 * read of the line.
 */
export class ProbeIndex {
  /** Every indexed line: 52 bits of its hash and its byte offset, sorted by (hash, offset). */
  private readonly hashes: Float64Array;
  private readonly offsets: Float64Array;
  private readonly distinct: number;
  /** Parsed (or written by this process) entries. */
  private readonly known = new Map<string, IndexedProbe>();
  private wrote = false;

  constructor(readonly file: string) {
    let fd: number;
    try {
      fd = fs.openSync(file, 'r');
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT')
        throw new Error(`cmac: cannot read the probe index ${file}: ${(e as Error).message}`);
      this.hashes = new Float64Array(0);
      this.offsets = new Float64Array(0);
      this.distinct = 0;
      return;
    }
    let sorted: { hashes: Float64Array; offsets: Float64Array };
    try {
      const size = fs.fstatSync(fd).size;
      const head = crc32(readAt(fd, 0, Math.min(4096, size))) >>> 0;
      const base = this.readLookup(size, head);
      const from = base ? base.covered : 0;
      const tail = this.scan(readAt(fd, from, size - from), from);
      sorted =
        tail.hashes.length === 0 && base
          ? base
          : sortEntries(
              Float64Array.from([...(base?.hashes ?? []), ...tail.hashes]),
              Float64Array.from([...(base?.offsets ?? []), ...tail.offsets]),
            );
      if (tail.hashes.length > LOOKUP_REFRESH) this.writeLookup(sorted, tail.covered, head);
    } finally {
      fs.closeSync(fd);
    }
    this.hashes = sorted.hashes;
    this.offsets = sorted.offsets;
    let d = 0;
    for (let i = 0; i < this.hashes.length; i++) if (i === 0 || this.hashes[i] !== this.hashes[i - 1]) d++;
    this.distinct = d;
  }

  /** Hash and offset of each line in `b` (the file from byte `from`); `covered`: the end of its last whole line. */
  private scan(b: Buffer, from: number): { hashes: number[]; offsets: number[]; covered: number } {
    const hashes: number[] = [];
    const offsets: number[] = [];
    let covered = from;
    for (let s = 0; s < b.length;) {
      let e = b.indexOf(10, s);
      if (e < 0)
        e = b.length; // a torn last line: indexed like the others, found out when looked up
      else covered = from + e + 1;
      if (e - s > HEAD && b[s] === 0x50 && b[s + 1] === 0x31 && b[s + 2] === 0x20) {
        const h = hashAt(b, s + TAG.length);
        if (h === h) {
          hashes.push(h);
          offsets.push(from + s);
        }
      } else if (b[s] === 0x7b) {
        this.legacy(b.toString('utf8', s, e));
      }
      s = e + 1;
    }
    return { hashes, offsets, covered };
  }

  private get lookupFile(): string {
    return `${this.file}.lookup`;
  }

  /** The sidecar, when it is whole and belongs to this file as it is now. */
  private readLookup(size: number, head: number): { hashes: Float64Array; offsets: Float64Array; covered: number } | undefined {
    let b: Buffer;
    try {
      b = fs.readFileSync(this.lookupFile);
    } catch {
      return undefined;
    }
    if (b.length < LOOKUP_HEAD || b.toString('latin1', 0, 8) !== LOOKUP_MAGIC) return undefined;
    const covered = b.readDoubleLE(8);
    const count = b.readUInt32LE(16);
    if (!(covered <= size) || b.readUInt32LE(24) !== head || b.length !== LOOKUP_HEAD + count * 16) return undefined;
    const body = b.subarray(LOOKUP_HEAD);
    if (crc32(body) >>> 0 !== b.readUInt32LE(20)) return undefined;
    const all = new Float64Array(body.buffer.slice(body.byteOffset, body.byteOffset + body.length));
    return { hashes: all.subarray(0, count), offsets: all.subarray(count), covered };
  }

  /** Writes the sidecar for the lines up to `covered` (best effort: a read-only folder just scans every time). */
  private writeLookup(all: { hashes: Float64Array; offsets: Float64Array }, covered: number, head: number): void {
    const keep = all.offsets.reduce((n, o) => (o < covered ? n + 1 : n), 0);
    const body = Buffer.alloc(keep * 16);
    let k = 0;
    for (let i = 0; i < all.offsets.length; i++) {
      if (all.offsets[i] >= covered) continue;
      body.writeDoubleLE(all.hashes[i], k * 8);
      body.writeDoubleLE(all.offsets[i], (keep + k) * 8);
      k++;
    }
    const h = Buffer.alloc(LOOKUP_HEAD);
    h.write(LOOKUP_MAGIC, 0, 'latin1');
    h.writeDoubleLE(covered, 8);
    h.writeUInt32LE(keep, 16);
    h.writeUInt32LE(crc32(body) >>> 0, 20);
    h.writeUInt32LE(head, 24);
    const tmp = `${this.lookupFile}.${process.pid}.tmp`;
    try {
      fs.writeFileSync(tmp, Buffer.concat([h, body]));
      fs.renameSync(tmp, this.lookupFile);
    } catch {
      fs.rmSync(tmp, { force: true });
    }
  }

  /** The first entry of hash `h` (or where it would go). */
  private lowerBound(h: number): number {
    let lo = 0;
    let hi = this.hashes.length;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (this.hashes[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    return lo;
  }

  /** A line of the older format: plain JSON, parsed now. */
  private legacy(line: string): void {
    try {
      const e = JSON.parse(line) as IndexLine;
      if (valid(e)) this.known.set(e.key, e.info);
    } catch {
      /* a torn line */
    }
  }

  /** The parsed line at offset `at` when it is whole, passes its crc and holds `key`. */
  private parseAt(fd: number, at: number, key: string): IndexedProbe | undefined {
    let b = readAt(fd, at, 1024);
    let e = b.indexOf(10);
    while (e < 0 && b.length >= 1024 && b.length < 1 << 20) {
      b = readAt(fd, at, b.length * 4);
      e = b.indexOf(10);
    }
    if (e < 0 || e <= HEAD || b.toString('latin1', 0, TAG.length) !== TAG) return undefined; // torn, or not a line start
    const crc = parseInt(b.toString('latin1', TAG.length + 17, HEAD - 1), 16);
    const json = b.subarray(HEAD, e);
    if (!(crc >= 0) || crc32(json) >>> 0 !== crc) return undefined;
    try {
      const x = JSON.parse(json.toString('utf8')) as IndexLine;
      return valid(x) && x.key === key ? x.info : undefined;
    } catch {
      return undefined;
    }
  }

  /** The key of a file's probe: absolute path, size, mtime (whole ms: what utimes and copies keep), audio stream. */
  static key(file: string, st: fs.Stats, audioStream: number | undefined): string {
    return JSON.stringify([path.resolve(file), st.size, Math.floor(st.mtimeMs), audioStream ?? null]);
  }

  get(key: string): IndexedProbe | undefined {
    const hit = this.known.get(key);
    if (hit) return hit;
    const h = hashNum(key);
    const first = this.lowerBound(h);
    let last = first;
    while (last < this.hashes.length && this.hashes[last] === h) last++;
    if (last === first) return undefined;
    let fd: number;
    try {
      fd = fs.openSync(this.file, 'r');
    } catch {
      return undefined;
    }
    try {
      // Newest line of the hash first, then older ones (a damaged newest line falls back).
      for (let i = last - 1; i >= first; i--) {
        const info = this.parseAt(fd, this.offsets[i], key);
        if (info) {
          this.known.set(key, info);
          return info;
        }
      }
    } finally {
      fs.closeSync(fd);
    }
    return undefined;
  }

  put(key: string, info: ProbeInfo | IndexedProbe): void {
    const { file: _file, ...rest } = info as ProbeInfo; // the key holds the path; the caller puts back the name it asked with
    this.known.set(key, rest);
    const json = Buffer.from(JSON.stringify({ key, info: rest }));
    const line = Buffer.concat([
      Buffer.from(`${TAG}${hashOf(key)} ${(crc32(json) >>> 0).toString(16).padStart(8, '0')} `, 'latin1'),
      json,
      Buffer.from('\n'),
    ]);
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      if (!this.wrote) {
        this.wrote = true;
        // After a torn last line (a killed writer) ours starts a line of its own.
        if (!endsWithNewline(this.file)) fs.appendFileSync(this.file, '\n');
      }
      fs.appendFileSync(this.file, line);
    } catch (e) {
      throw new Error(
        `cmac: cannot write the probe index ${this.file}: ${(e as Error).message}. Fix: a writable path for data.probeIndex, or none`,
      );
    }
  }

  /** Distinct keys held (lines of one key count once; a damaged line is only found out when looked up). */
  get size(): number {
    let n = this.distinct;
    for (const k of this.known.keys()) if (this.hashes[this.lowerBound(hashNum(k))] !== hashNum(k)) n++;
    return n;
  }
}
