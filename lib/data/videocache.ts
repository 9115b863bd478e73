// The train-mode cache of decoded videos: each video is decoded ONCE (the
// whole file, up to a cap) at the clip frame rate and a working resolution a
// little larger than the clip, plus its whole audio track, and appended to
// sharded binary files; every later clip of it is cut from there in JS
// (lib/data/frames.ts). Layout in the cache folder, per writer tag (one per
// rank, so ranks never write the same file):
//   videos-<tag>-<n>.bin   entries, back to back: n frame records
//                          (w * h * 3 RGB bytes + crc32), then the audio
//                          track in blocks of up to 4096 f32le samples (+ crc32)
//   videos-<tag>.jsonl     one line per entry: key, shard, offset, sizes,
//                          frame rate, audio rate, probe info, and a crc32
//                          of all of these (field c)
// Each crc32 is seeded with (key, record number), so a record that is torn,
// overwritten or read from the wrong place fails its check: every frame and
// audio block is verified each time it is read, and a damaged entry is
// dropped (the loader decodes the video again). An index line whose fields
// fail their crc (edited, damaged, or written before lines had one) is not
// used (counted; the video is decoded again). An index line is appended
// only after its entry's data is written (not fsync'ed: the checks catch data
// that a crash kept from reaching the disk); a decode that fails or is
// aborted is cut off its shard again (ftruncate). Shards are
// never appended to by a later run (each writer starts a new shard number).
import * as fs from 'fs';
import * as path from 'path';
import { crc32 } from 'zlib';
import type { ProbeInfo } from './ffmpeg';
import { mixSeed } from './prng';

/** Options of the train-mode video cache (LoaderOptions.trainCache). */
export interface TrainCacheOptions {
  /** Folder of the cache (created when missing); may be shared with the eval `cacheDir` and by all ranks. */
  dir: string;
  /** Stop adding videos once the cache's shard files hold this many bytes (default: no limit). Videos not cached use the per-clip decode path. */
  maxBytes?: number;
  /** Cache at most the first this many seconds of a video (default 30); clips beyond use the per-clip decode path. */
  maxSeconds?: number;
  /** Working resolution: shorter side = min(source, ceil(size * scale)) (default 1.15). */
  scale?: number;
  /** Start a new shard file past this size (default 1 GiB). */
  shardBytes?: number;
}

/** One cached video. */
export interface VideoEntry {
  /** Key (sha1 hex of the sample identity and the cache geometry). */
  k: string;
  /** Shard file name and byte offset of the entry. */
  s: string;
  o: number;
  /** Working frame size, frame count, frame rate. */
  w: number;
  h: number;
  n: number;
  fps: number;
  /** Audio samples and rate (a: 0 and sr: 0 when the file has no audio). */
  a: number;
  sr: number;
  /** True when the whole file is cached (it is not longer than maxSeconds). */
  full: boolean;
  /** Bytes of the entry. */
  b: number;
  /** Probe of the source file (without its path), so a later run need not probe again. */
  info?: Omit<ProbeInfo, 'file'>;
  /** Written at (ms since 1970): the newest entry of a key wins. */
  t: number;
  /** crc32 of the line's other fields (set when the line is written; a line that fails it is not used). */
  c?: number;
}

/** The checksum of an index line: its other fields as written, seeded with the key. */
function lineCrc(e: VideoEntry): number {
  const { c: _c, ...rest } = e;
  return crc32(JSON.stringify(rest), keySeed(e.k)) >>> 0;
}

/** A cached record that failed its check (or could not be read). */
export class CacheDamage extends Error {
  constructor(
    readonly entry: VideoEntry,
    detail: string,
  ) {
    super(`cmac: damaged cache entry ${entry.s}@${entry.o}: ${detail}`);
    this.name = 'CacheDamage';
  }
}

/** Samples per audio block. */
export const AUDIO_BLOCK = 4096;

function keySeed(key: string): number {
  return parseInt(key.slice(0, 8), 16) >>> 0;
}

function frameSeed(key: string, j: number): number {
  return mixSeed(keySeed(key), 0x46524d45, j);
}

function blockSeed(key: string, b: number): number {
  return mixSeed(keySeed(key), 0x41554449, b);
}

function audioOffset(e: Pick<VideoEntry, 'w' | 'h' | 'n'>): number {
  return e.n * (e.w * e.h * 3 + 4);
}

/** Bytes of an entry with these sizes. */
export function entryBytes(w: number, h: number, n: number, a: number): number {
  const blocks = Math.ceil(a / AUDIO_BLOCK);
  return n * (w * h * 3 + 4) + a * 4 + blocks * 4;
}

interface Writer {
  fd: number;
  name: string;
  size: number;
}

/**
 * Receives one video's decoded bytes (from decodeVideos, native or CLI) and writes them to a
 * shard: frame records as they come, the audio track at the end.
 */
export class VideoFill {
  private readonly frameBytes: number;
  private readonly stage: Buffer;
  private staged = 0;
  private partial = 0;
  private frames = 0;
  private written = 0;
  private audio: Buffer[] = [];
  private audioBytes = 0;
  private error?: Error;
  private done = false;

  constructor(
    private readonly cache: VideoCache,
    private readonly writer: Writer,
    readonly key: string,
    readonly width: number,
    readonly height: number,
    private readonly maxFrames: number,
    private readonly maxAudio: number,
  ) {
    this.frameBytes = width * height * 3;
    const rec = this.frameBytes + 4;
    this.stage = Buffer.allocUnsafe(Math.max(1, Math.floor((1 << 20) / rec)) * rec);
  }

  private flushStage(): void {
    if (this.staged === 0) return;
    fs.writeSync(this.writer.fd, this.stage, 0, this.staged, this.writer.size + this.written);
    this.written += this.staged;
    this.staged = 0;
  }

  /** Video bytes (rgb24); full frames become records (frame + crc32). */
  video(chunk: Buffer): void {
    if (this.error || this.done) return;
    try {
      let p = 0;
      const fb = this.frameBytes;
      while (p < chunk.length && this.frames < this.maxFrames) {
        const rec = this.staged;
        const take = Math.min(fb - this.partial, chunk.length - p);
        chunk.copy(this.stage, rec + this.partial, p, p + take);
        this.partial += take;
        p += take;
        if (this.partial === fb) {
          const c = crc32(this.stage.subarray(rec, rec + fb), frameSeed(this.key, this.frames));
          this.stage.writeUInt32LE(c >>> 0, rec + fb);
          this.staged += fb + 4;
          this.partial = 0;
          this.frames++;
          if (this.staged + fb + 4 > this.stage.length) this.flushStage();
        }
      }
    } catch (e) {
      this.error = e as Error;
    }
  }

  /** Audio bytes (f32le mono). */
  audioChunk(chunk: Buffer): void {
    if (this.error || this.done) return;
    if (this.audioBytes >= this.maxAudio * 4) return;
    const take = Math.min(chunk.length, this.maxAudio * 4 - this.audioBytes);
    this.audio.push(Buffer.from(chunk.subarray(0, take)));
    this.audioBytes += take;
  }

  /** Forgets everything received (the decode starts over). */
  reset(): void {
    try {
      fs.ftruncateSync(this.writer.fd, this.writer.size);
    } catch {
      /* positional writes overwrite it anyway */
    }
    this.staged = 0;
    this.partial = 0;
    this.frames = 0;
    this.written = 0;
    this.audio = [];
    this.audioBytes = 0;
    this.error = undefined;
  }

  /**
   * Writes the audio blocks and appends the index line.
   * Returns the entry, or undefined (nothing kept) when no frame came or a
   * write failed.
   */
  async commit(o: { fps: number; sampleRate: number; full: boolean; info?: ProbeInfo }): Promise<VideoEntry | undefined> {
    if (this.done) throw new Error('cmac: video fill already finished');
    try {
      if (this.error) throw this.error;
      if (this.frames === 0) {
        this.abort();
        return undefined;
      }
      this.flushStage();
      const a = Math.floor(this.audioBytes / 4);
      if (a > 0) {
        const pcm = Buffer.concat(this.audio, this.audioBytes);
        const blocks = Math.ceil(a / AUDIO_BLOCK);
        const buf = Buffer.allocUnsafe(a * 4 + blocks * 4);
        let q = 0;
        for (let b = 0; b < blocks; b++) {
          const from = b * AUDIO_BLOCK * 4;
          const to = Math.min(a * 4, from + AUDIO_BLOCK * 4);
          pcm.copy(buf, q, from, to);
          buf.writeUInt32LE(crc32(buf.subarray(q, q + to - from), blockSeed(this.key, b)) >>> 0, q + to - from);
          q += to - from + 4;
        }
        fs.writeSync(this.writer.fd, buf, 0, q, this.writer.size + this.written);
        this.written += q;
      }
      this.audio = [];
      let info: Omit<ProbeInfo, 'file'> | undefined;
      if (o.info) {
        const { file: _file, ...rest } = o.info;
        info = rest;
      }
      const e: VideoEntry = {
        k: this.key,
        s: this.writer.name,
        o: this.writer.size,
        w: this.width,
        h: this.height,
        n: this.frames,
        fps: o.fps,
        a,
        sr: a > 0 ? o.sampleRate : 0,
        full: o.full,
        b: this.written,
        info,
        t: Date.now(),
      };
      if (this.written !== entryBytes(e.w, e.h, e.n, e.a)) throw new Error(`cmac: cache entry size mismatch (${this.written} bytes)`);
      this.cache.appendIndex(e);
      this.writer.size += this.written;
      this.done = true;
      this.cache.releaseWriter(this.writer, this.written);
      return e;
    } catch (err) {
      if (!this.done) this.abort();
      this.cache.onWriteError(err as Error);
      return undefined;
    }
  }

  /** Drops the partial entry (cuts it off the shard) and frees the writer. */
  abort(): void {
    if (this.done) return;
    this.done = true;
    this.audio = [];
    try {
      fs.ftruncateSync(this.writer.fd, this.writer.size);
    } catch {
      /* the next entry overwrites it anyway: writes are positional */
    }
    this.cache.releaseWriter(this.writer, 0);
  }
}

/**
 * Decoded videos on disk (see the file comment). Used by the loader with
 * `trainCache`; usable alone for tools and tests.
 */
export class VideoCache {
  readonly dir: string;
  readonly maxBytes: number;
  /** Bytes of shard files in the folder (at open, plus what this process wrote). */
  diskBytes = 0;
  /** Entries dropped because a record failed its check. */
  damaged = 0;
  /** The last write error (the cache stops writing after one). */
  writeError?: Error;
  private readonly tag: string;
  private readonly shardBytes: number;
  private readonly index = new Map<string, VideoEntry>();
  private readonly bad = new Set<string>();
  private readonly indexRead = new Map<string, number>();
  /** Lines read so far per index file (for messages). */
  private readonly indexLines = new Map<string, number>();
  private readonly readers = new Map<string, Promise<fs.promises.FileHandle>>();
  private idle: Writer[] = [];
  private busy = 0;
  private nextShard = 0;
  private indexFd?: number;

  /** Called with a line for every index line that fails its check (also counted in `damaged`). */
  private readonly onDamage?: (detail: string) => void;

  constructor(dir: string, opts: { tag?: string; shardBytes?: number; maxBytes?: number; onDamage?: (detail: string) => void } = {}) {
    this.dir = path.resolve(dir);
    this.onDamage = opts.onDamage;
    this.tag = opts.tag ?? 'r0';
    this.shardBytes = opts.shardBytes ?? 1024 * 1024 * 1024;
    this.maxBytes = opts.maxBytes ?? Infinity;
    fs.mkdirSync(this.dir, { recursive: true });
    const re = new RegExp(`^videos-${this.tag.replace(/[^A-Za-z0-9_]/g, '_')}-(\\d+)\\.bin$`);
    for (const f of fs.readdirSync(this.dir)) {
      if (/^videos-.*\.bin$/.test(f)) this.diskBytes += fs.statSync(path.join(this.dir, f)).size;
      const m = re.exec(f);
      if (m) this.nextShard = Math.max(this.nextShard, Number(m[1]) + 1);
    }
    this.refresh();
  }

  private get safeTag(): string {
    return this.tag.replace(/[^A-Za-z0-9_]/g, '_');
  }

  /** Number of videos the cache holds. */
  get size(): number {
    return this.index.size;
  }

  /** Reads index lines appended since the last call (by this or other ranks). */
  refresh(): void {
    let names: string[];
    try {
      names = fs
        .readdirSync(this.dir)
        .filter((n) => /^videos-.*\.jsonl$/.test(n))
        .sort();
    } catch {
      return;
    }
    const failed: { k: string; detail: string }[] = [];
    for (const n of names) {
      const file = path.join(this.dir, n);
      const from = this.indexRead.get(n) ?? 0;
      let size: number;
      try {
        size = fs.statSync(file).size;
      } catch {
        continue;
      }
      if (size <= from) continue;
      const buf = Buffer.alloc(size - from);
      try {
        const fd = fs.openSync(file, 'r');
        try {
          fs.readSync(fd, buf, 0, buf.length, from);
        } finally {
          fs.closeSync(fd);
        }
      } catch {
        continue;
      }
      // Only whole lines; a line still being written is read next time.
      const end = buf.lastIndexOf(10);
      if (end < 0) continue;
      this.indexRead.set(n, from + end + 1);
      const lineNo = this.indexLines.get(n) ?? 0;
      const lines = buf.toString('utf8', 0, end).split('\n');
      this.indexLines.set(n, lineNo + lines.length);
      for (const [i, line] of lines.entries()) {
        if (!line) continue;
        let e: VideoEntry;
        try {
          e = JSON.parse(line) as VideoEntry;
        } catch {
          continue; // a torn line
        }
        if (typeof e.k !== 'string' || typeof e.s !== 'string' || !(e.n > 0 && e.w > 0 && e.h > 0)) continue;
        if (e.c !== lineCrc(e)) {
          failed.push({
            k: e.k,
            detail: `index line ${lineNo + i + 1} of ${n} (${e.s}@${e.o}) fails its checksum${e.c === undefined ? ' (none: written by an older cmac)' : ''}`,
          });
          continue;
        }
        if (this.bad.has(`${e.s}@${e.o}`)) continue;
        const old = this.index.get(e.k);
        if (!old || old.t <= e.t) this.index.set(e.k, e);
      }
    }
    // A failed line is reported (once per process) unless its key has a good entry (e.g. the video decoded again since).
    for (const f of failed) {
      if (this.index.has(f.k)) continue;
      this.damaged++;
      this.onDamage?.(f.detail);
    }
  }

  /** The entry of a key, if cached (and not found damaged). */
  get(key: string): VideoEntry | undefined {
    return this.index.get(key);
  }

  /** Whether a video of about `bytes` may be added (room under maxBytes, no write error so far). */
  canAdd(bytes: number): boolean {
    return !this.writeError && this.diskBytes + bytes <= this.maxBytes;
  }

  /** Drops a damaged entry (this process never uses it again). */
  reject(e: VideoEntry): void {
    this.bad.add(`${e.s}@${e.o}`);
    if (this.index.get(e.k) === e) this.index.delete(e.k);
    this.damaged++;
  }

  private shardName(n: number): string {
    return `videos-${this.safeTag}-${String(n).padStart(5, '0')}.bin`;
  }

  private takeWriter(): Writer {
    const w = this.idle.pop();
    if (w) return w;
    for (;;) {
      const name = this.shardName(this.nextShard++);
      try {
        const fd = fs.openSync(path.join(this.dir, name), 'wx+');
        return { fd, name, size: 0 };
      } catch (e) {
        if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      }
    }
  }

  /** Starts writing one video (frames of width x height, at most maxFrames frames and maxAudio samples). */
  begin(key: string, width: number, height: number, maxFrames: number, maxAudio: number): VideoFill {
    const w = this.takeWriter();
    this.busy++;
    return new VideoFill(this, w, key, width, height, maxFrames, maxAudio);
  }

  /** @internal */
  releaseWriter(w: Writer, added: number): void {
    this.busy--;
    this.diskBytes += added;
    if (w.size >= this.shardBytes) {
      try {
        fs.closeSync(w.fd);
      } catch {
        /* ignore */
      }
    } else this.idle.push(w);
  }

  /** @internal */
  onWriteError(e: Error): void {
    this.writeError ??= e;
  }

  /** @internal Appends one index line (after the entry's data is on disk). */
  appendIndex(e: VideoEntry): void {
    const file = path.join(this.dir, `videos-${this.safeTag}.jsonl`);
    let pre = '';
    if (this.indexFd === undefined) {
      this.indexFd = fs.openSync(file, 'a');
      // A line torn by a crash stays on its own line.
      const st = fs.fstatSync(this.indexFd);
      if (st.size > 0) {
        const b = Buffer.alloc(1);
        const rfd = fs.openSync(file, 'r');
        try {
          fs.readSync(rfd, b, 0, 1, st.size - 1);
        } finally {
          fs.closeSync(rfd);
        }
        if (b[0] !== 10) pre = '\n';
      }
    }
    e.c = lineCrc(e);
    fs.writeSync(this.indexFd, pre + JSON.stringify(e) + '\n');
    this.index.set(e.k, e);
  }

  private reader(name: string): Promise<fs.promises.FileHandle> {
    let r = this.readers.get(name);
    if (!r) {
      r = fs.promises.open(path.join(this.dir, name), 'r');
      r.catch(() => this.readers.delete(name));
      this.readers.set(name, r);
    }
    return r;
  }

  private async readRange(e: VideoEntry, from: number, length: number): Promise<Uint8Array> {
    const buf = new Uint8Array(length);
    let fh: fs.promises.FileHandle;
    try {
      fh = await this.reader(e.s);
    } catch (err) {
      throw new CacheDamage(e, `cannot open shard (${(err as Error).message})`);
    }
    let got = 0;
    while (got < length) {
      const { bytesRead } = await fh.read(buf, got, length - got, e.o + from + got);
      if (bytesRead === 0) break;
      got += bytesRead;
    }
    if (got !== length) throw new CacheDamage(e, `short read (${got} of ${length} bytes at ${e.o + from})`);
    return buf;
  }

  /**
   * Frames j0 .. j0 + count - 1 of an entry, each checked: a buffer of
   * `count` records, frame f at offset f * stride (stride = w * h * 3 + 4).
   * Throws CacheDamage when a record fails its check.
   */
  async readFrames(e: VideoEntry, j0: number, count: number): Promise<{ data: Uint8Array; stride: number }> {
    if (j0 < 0 || j0 + count > e.n) throw new RangeError(`cmac: frames ${j0}..${j0 + count - 1} outside the ${e.n} cached`);
    const fb = e.w * e.h * 3;
    const stride = fb + 4;
    const data = await this.readRange(e, j0 * stride, count * stride);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let f = 0; f < count; f++) {
      const want = dv.getUint32(f * stride + fb, true);
      const got = crc32(data.subarray(f * stride, f * stride + fb), frameSeed(e.k, j0 + f)) >>> 0;
      if (want !== got) throw new CacheDamage(e, `frame ${j0 + f} fails its checksum`);
    }
    return { data, stride };
  }

  /**
   * `count` audio samples from sample `first` of the track (may start before
   * 0 or run past the end: zeros there), checked. Returns the samples and how
   * many zeros were put before / after the track.
   */
  async readAudio(e: VideoEntry, first: number, count: number): Promise<{ pcm: Float32Array; front: number; back: number }> {
    const pcm = new Float32Array(count);
    const front = Math.max(0, Math.min(count, -first));
    const back = Math.max(0, Math.min(count, first + count - e.a));
    const lo = Math.max(0, first);
    const hi = Math.min(e.a, first + count);
    if (hi <= lo) return { pcm, front: e.a === 0 ? count : front, back: e.a === 0 ? 0 : back };
    const bLo = Math.floor(lo / AUDIO_BLOCK);
    const bHi = Math.floor((hi - 1) / AUDIO_BLOCK);
    const rec = AUDIO_BLOCK * 4 + 4;
    const lastBlock = Math.ceil(e.a / AUDIO_BLOCK) - 1;
    const lastLen = (e.a - lastBlock * AUDIO_BLOCK) * 4;
    const bytes = (bHi - bLo) * rec + (bHi === lastBlock ? lastLen + 4 : rec);
    const data = await this.readRange(e, audioOffset(e) + bLo * rec, bytes);
    const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
    for (let b = bLo; b <= bHi; b++) {
      const at = (b - bLo) * rec;
      const len = b === lastBlock ? lastLen : AUDIO_BLOCK * 4;
      const want = dv.getUint32(at + len, true);
      const got = crc32(data.subarray(at, at + len), blockSeed(e.k, b)) >>> 0;
      if (want !== got) throw new CacheDamage(e, `audio block ${b} fails its checksum`);
      // Samples of this block that fall in [lo, hi).
      const s0 = Math.max(lo, b * AUDIO_BLOCK);
      const s1 = Math.min(hi, (b + 1) * AUDIO_BLOCK);
      const src = new Float32Array(data.buffer, data.byteOffset + at + (s0 - b * AUDIO_BLOCK) * 4, s1 - s0);
      pcm.set(src, s0 - first);
    }
    return { pcm, front, back };
  }

  /** Closes the files this process holds open (the cache stays usable: they reopen when needed). */
  async close(): Promise<void> {
    const rs = [...this.readers.values()];
    this.readers.clear();
    for (const r of rs) await r.then((fh) => fh.close()).catch(() => undefined);
    if (this.busy === 0) {
      for (const w of this.idle) {
        try {
          fs.closeSync(w.fd);
        } catch {
          /* ignore */
        }
      }
      this.idle = [];
    }
    if (this.indexFd !== undefined) {
      try {
        fs.closeSync(this.indexFd);
      } catch {
        /* ignore */
      }
      this.indexFd = undefined;
    }
  }
}
