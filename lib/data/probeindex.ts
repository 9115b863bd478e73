// The on-disk probe index (data.probeIndex): probe results of files keyed by
// absolute path + size + mtime + audio stream choice, so a second run over a
// large folder starts without probing again.
//
// Format: one line per probe, appended (several processes may share one file:
// each line is one small O_APPEND write):
//   P1 <key hash: 16 hex> <crc32 of the JSON: 8 hex> {"key":...,"info":...}\n
// Opening reads the file with one readFileSync and indexes the lines by their
// fixed-width hash prefix only; a line's JSON is parsed (and its crc checked)
// the first time its key is looked up. So a 200,000-line index opens in a
// fraction of a second instead of the seconds JSON.parse of every line takes.
// A line that is torn (a killed writer), damaged (crc fails) or a hash
// collision (its key differs) is a miss: the file is probed again and a new
// line appended, which the next reader takes (the last line of a hash wins,
// falling back to earlier ones when it is bad). Lines of the older format (plain
// JSON, `{"key":...}`) are still read, parsed at open.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { crc32 } from 'zlib';
import type { ProbeInfo } from './ffmpeg';

const TAG = 'P1 ';
/** Bytes before the JSON: tag, 16 hex digits of hash, space, 8 hex digits of crc, space. */
const HEAD = TAG.length + 16 + 1 + 8 + 1;

interface IndexLine {
  key: string;
  info: ProbeInfo;
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

/**
 * A probe index file (see the file comment). `get` and `put` by the key of
 * {@link ProbeIndex.key}; `size` counts the distinct keys (hashes) held.
 */
export class ProbeIndex {
  private readonly buf: Buffer;
  /** Hash -> start offsets of its lines in `buf` (last one last). */
  private readonly lines = new Map<string, number | number[]>();
  /** Parsed (or written by this process) entries. */
  private readonly known = new Map<string, ProbeInfo>();
  private wrote = false;

  constructor(readonly file: string) {
    try {
      this.buf = fs.readFileSync(file);
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw new Error(`cmac: cannot read the probe index ${file}: ${(e as Error).message}`);
      this.buf = Buffer.alloc(0);
    }
    const b = this.buf;
    for (let s = 0; s < b.length;) {
      let e = b.indexOf(10, s);
      if (e < 0) e = b.length;  // a torn last line: looked at like the others, its crc fails
      if (e - s > HEAD && b[s] === 0x50 && b[s + 1] === 0x31 && b[s + 2] === 0x20) {
        const h = b.toString('latin1', s + TAG.length, s + TAG.length + 16);
        const had = this.lines.get(h);
        if (had === undefined) this.lines.set(h, s);
        else if (typeof had === 'number') this.lines.set(h, [had, s]);
        else had.push(s);
      } else if (b[s] === 0x7b) {
        this.legacy(b.toString('utf8', s, e));
      }
      s = e + 1;
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
  private parseAt(s: number, key: string): ProbeInfo | undefined {
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

  get(key: string): ProbeInfo | undefined {
    const hit = this.known.get(key);
    if (hit) return hit;
    const at = this.lines.get(hashOf(key));
    if (at === undefined) return undefined;
    const offsets = typeof at === 'number' ? [at] : at;
    for (let i = offsets.length - 1; i >= 0; i--) {
      const info = this.parseAt(offsets[i], key);
      if (info) {
        this.known.set(key, info);
        return info;
      }
    }
    return undefined;
  }

  put(key: string, info: ProbeInfo): void {
    this.known.set(key, info);
    const json = Buffer.from(JSON.stringify({ key, info }));
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
    let n = this.lines.size;
    for (const k of this.known.keys()) if (!this.lines.has(hashOf(k))) n++;
    return n;
  }
}
