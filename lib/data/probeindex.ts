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
    return true;  // no file yet
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

/**
 * A probe index file (see the file comment). `get` and `put` by the key of
 * {@link ProbeIndex.key}; `size` counts the distinct keys (hashes) held.
 */
export class ProbeIndex {
  private readonly buf: Buffer;
  /** Per line: its start in `buf`, its hash, and the previous line with the same hash (-1: none); the first two may run past the last line. */
  private readonly starts: Float64Array;
  private readonly hashes: Float64Array;
  private readonly prev: Int32Array;
  /** Open addressing over the hashes: slot -> newest line + 1 (0: empty). */
  private readonly table: Int32Array;
  private readonly mask: number;
  private distinct = 0;
  /** Parsed (or written by this process) entries. */
  private readonly known = new Map<string, IndexedProbe>();
  private wrote = false;

  constructor(readonly file: string) {
    try {
      this.buf = fs.readFileSync(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cmac: cannot read the probe index ${file}: ${(e as Error).message}`);
      this.buf = Buffer.alloc(0);
    }
    // One pass over the lines: start and hash of each indexed line.
    const b = this.buf;
    let starts = new Float64Array(Math.max(16, Math.ceil(b.length / 256)));
    let hashes = new Float64Array(starts.length);
    let n = 0;
    for (let s = 0; s < b.length;) {
      let e = b.indexOf(10, s);
      if (e < 0) e = b.length;  // a torn last line: kept like the others, found out when looked up
      if (e - s > HEAD && b[s] === 0x50 && b[s + 1] === 0x31 && b[s + 2] === 0x20) {
        const h = hashAt(b, s + TAG.length);
        if (h === h) {
          if (n === starts.length) {
            const s2 = new Float64Array(n * 2);
            const h2 = new Float64Array(n * 2);
            s2.set(starts);
            h2.set(hashes);
            starts = s2;
            hashes = h2;
          }
          starts[n] = s;
          hashes[n++] = h;
        }
      } else if (b[s] === 0x7b) {
        this.legacy(b.toString('utf8', s, e));
      }
      s = e + 1;
    }
    this.starts = starts;
    this.hashes = hashes;
    this.prev = new Int32Array(n);
    let size = 1024;
    while (size < 2 * n) size *= 2;
    this.table = new Int32Array(size);
    this.mask = size - 1;
    for (let line = 0; line < n; line++) {
      const i = this.slot(this.hashes[line]);
      this.prev[line] = this.table[i] - 1;
      if (this.table[i] === 0) this.distinct++;
      this.table[i] = line + 1;
    }
  }

  /** The slot of hash `h`: its own, or the empty one where it would go. */
  private slot(h: number): number {
    let i = (h % 0x40000000) & this.mask;  // low bits of the hash
    for (;;) {
      const at = this.table[i];
      if (at === 0 || this.hashes[at - 1] === h) return i;
      i = (i + 1) & this.mask;
    }
  }

  /** A line of the older format: plain JSON, parsed now. */
  private legacy(line: string): void {
    try {
      const e = JSON.parse(line) as IndexLine;
      if (valid(e)) this.known.set(e.key, e.info);
    } catch { /* a torn line */ }
  }

  /** The parsed line at `s` when it is whole, passes its crc and holds `key`. */
  private parseAt(s: number, key: string): IndexedProbe | undefined {
    const b = this.buf;
    const e = b.indexOf(10, s);
    if (e < 0) return undefined;  // torn: never finished
    const crc = parseInt(b.toString('latin1', s + TAG.length + 17, s + HEAD - 1), 16);
    const json = b.subarray(s + HEAD, e);
    if (!(crc >= 0) || (crc32(json) >>> 0) !== crc) return undefined;
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
    // Newest line of the hash first, then older ones (a damaged newest line falls back).
    for (let line = this.table[this.slot(hashNum(key))] - 1; line >= 0; line = this.prev[line]) {
      const info = this.parseAt(this.starts[line], key);
      if (info) {
        this.known.set(key, info);
        return info;
      }
    }
    return undefined;
  }

  put(key: string, info: ProbeInfo | IndexedProbe): void {
    const { file: _file, ...rest } = info as ProbeInfo;  // the key holds the path; the caller puts back the name it asked with
    this.known.set(key, rest);
    const json = Buffer.from(JSON.stringify({ key, info: rest }));
    const line = Buffer.concat([Buffer.from(`${TAG}${hashOf(key)} ${(crc32(json) >>> 0).toString(16).padStart(8, '0')} `, 'latin1'), json, Buffer.from('\n')]);
    try {
      fs.mkdirSync(path.dirname(this.file), { recursive: true });
      if (!this.wrote) {
        this.wrote = true;
        // After a torn last line (a killed writer) ours starts a line of its own.
        if (!endsWithNewline(this.file)) fs.appendFileSync(this.file, '\n');
      }
      fs.appendFileSync(this.file, line);
    } catch (e) {
      throw new Error(`cmac: cannot write the probe index ${this.file}: ${(e as Error).message}. Fix: a writable path for data.probeIndex, or none`);
    }
  }

  /** Distinct keys held (lines of one key count once; a damaged line is only found out when looked up). */
  get size(): number {
    let n = this.distinct;
    for (const k of this.known.keys()) if (this.table[this.slot(hashNum(k))] === 0) n++;
    return n;
  }
}
