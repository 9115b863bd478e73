// A cache of decoded clips in sharded binary files, for repeated epochs over
// the same un-augmented (eval) clips. Layout in the cache folder:
//   clips-<tag>-<n>.bin    video bytes then audio f32le bytes, clip after clip
//   clips-<tag>-<n>.jsonl  its index: {"k": key, "s": shard, "o": offset,
//                          "v": video bytes, "a": audio bytes, "c": crc32, "t": ms}
// Every ClipCache that writes creates a shard number of its own (exclusive
// create), so no two writers (ranks, processes sharing the folder, or two
// caches in one process) ever append to the same file; on open the index
// files of all writers are merged. The crc32 covers the entry's bytes and is
// seeded with (key, sizes), so flipped or torn bytes and an index line that
// points at the wrong place all fail the check, which runs on every read: a
// damaged entry is dropped (the caller decodes the clip again), counted, never
// returned. An index line is appended only after its data (a crash loses at
// most the clip being written; a torn line is ignored). Keys are sha1 hashes
// that the loader builds from the sample identity (path, size, mtime or tar
// member), clip placement and geometry. Files of older cmac versions
// (index-<tag>.jsonl, without checksums) are not read.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';
import { crc32 } from 'zlib';

/** Options of {@link ClipCache}. */
export interface ClipCacheOptions {
  /** Start a new shard file past this size (default 256 MiB). */
  shardBytes?: number;
  /** Prefix of this writer's file names (default `r0`); each writer also takes a shard number of its own. */
  tag?: string;
}

interface Entry {
  s: string;
  o: number;
  v: number;
  a: number;
  c: number;
  t: number;
}

/** Hashes any JSON-able description into a cache key. */
export function cacheKey(parts: unknown): string {
  return createHash('sha1').update(JSON.stringify(parts)).digest('hex');
}

/** The checksum of an entry: its bytes, seeded with its key and sizes. */
function entryCrc(key: string, v: number, a: number, video: Uint8Array, audio: Uint8Array): number {
  return crc32(audio, crc32(video, crc32(`clip ${key} ${v} ${a}`))) >>> 0;
}

function isEntry(j: unknown): j is Entry & { k: string } {
  const e = j as Record<string, unknown> | null;
  const int = (x: unknown): boolean => Number.isSafeInteger(x) && (x as number) >= 0;
  return (
    !!e &&
    typeof e.k === 'string' &&
    typeof e.s === 'string' &&
    /^clips-.*\.bin$/.test(e.s) &&
    !e.s.includes('/') &&
    int(e.o) &&
    int(e.v) &&
    int(e.a) &&
    (e.a as number) % 4 === 0 &&
    int(e.c) &&
    typeof e.t === 'number'
  );
}

/** Decoded clips on disk, keyed by {@link cacheKey}. */
export class ClipCache {
  readonly dir: string;
  hits = 0;
  misses = 0;
  /** Entries dropped because they failed their check (or could not be read). */
  damaged = 0;
  private readonly tag: string;
  private readonly shardBytes: number;
  /** Entries of each key, newest first (a damaged one is removed and the next tried). */
  private readonly index = new Map<string, Entry[]>();
  private shard?: { name: string; no: number; size: number };
  private nextShard = 0;
  private chain: Promise<void> = Promise.resolve();

  /** Opens (creating if needed) the cache in `dir` and merges every writer's index. */
  constructor(dir: string, opts: ClipCacheOptions = {}) {
    this.dir = path.resolve(dir);
    this.tag = (opts.tag ?? 'r0').replace(/[^A-Za-z0-9_]/g, '_');
    this.shardBytes = opts.shardBytes ?? 256 * 1024 * 1024;
    fs.mkdirSync(this.dir, { recursive: true });
    const own = new RegExp(`^clips-${this.tag}-(\\d+)\\.(bin|jsonl)$`);
    for (const f of fs.readdirSync(this.dir).sort()) {
      const m = own.exec(f);
      if (m) this.nextShard = Math.max(this.nextShard, Number(m[1]) + 1);
      if (!/^clips-.*\.jsonl$/.test(f)) continue;
      let text: string;
      try {
        text = fs.readFileSync(path.join(this.dir, f), 'utf8');
      } catch {
        continue;
      }
      // Whole lines only: a line still being written (or torn by a crash) is not read.
      for (const line of text.slice(0, text.lastIndexOf('\n') + 1).split('\n')) {
        if (!line) continue;
        let j: unknown;
        try {
          j = JSON.parse(line);
        } catch {
          continue;
        }
        if (!isEntry(j)) continue;
        const list = this.index.get(j.k) ?? [];
        list.push({ s: j.s, o: j.o, v: j.v, a: j.a, c: j.c, t: j.t });
        this.index.set(j.k, list);
      }
    }
    for (const list of this.index.values()) list.sort((x, y) => y.t - x.t);
  }

  /** Number of clips the cache holds. */
  get size(): number {
    return this.index.size;
  }

  /**
   * The clip stored under `key`, checked, or undefined. An entry that fails
   * its check is dropped, counted in `damaged` and reported to `onDamage`
   * (what failed, and whether another entry of the key is tried next).
   */
  async get(
    key: string,
    onDamage?: (detail: string, another: boolean) => void,
  ): Promise<{ video: Uint8Array; audio: Float32Array } | undefined> {
    const list = this.index.get(key);
    while (list && list.length > 0) {
      const e = list[0];
      let detail: string | undefined;
      let fh: fs.promises.FileHandle | undefined;
      try {
        fh = await fs.promises.open(path.join(this.dir, e.s), 'r');
        const buf = new Uint8Array(e.v + e.a);
        let got = 0;
        while (got < buf.length) {
          const { bytesRead } = await fh.read(buf, got, buf.length - got, e.o + got);
          if (bytesRead === 0) break;
          got += bytesRead;
        }
        if (got !== buf.length) detail = `short read (${got} of ${buf.length} bytes)`;
        else if (entryCrc(key, e.v, e.a, buf.subarray(0, e.v), buf.subarray(e.v)) !== e.c) detail = 'fails its checksum';
        else {
          this.hits++;
          return { video: buf.subarray(0, e.v), audio: new Float32Array(buf.buffer.slice(e.v, e.v + e.a)) };
        }
      } catch (err) {
        detail = `cannot be read (${(err as Error).message})`;
      } finally {
        await fh?.close().catch(() => undefined);
      }
      if (list[0] === e) list.shift();
      if (list.length === 0) this.index.delete(key);
      this.damaged++;
      onDamage?.(`entry ${e.s}@${e.o} ${detail}`, list.length > 0);
    }
    this.misses++;
    return undefined;
  }

  /** Stores a clip (writes are serialised; resolves when it is on disk). */
  put(key: string, video: Uint8Array, audio: Float32Array): Promise<void> {
    const job = async (): Promise<void> => {
      if (this.index.has(key)) return;
      const bytes = video.length + audio.byteLength;
      if (this.shard && this.shard.size > 0 && this.shard.size + bytes > this.shardBytes) this.shard = undefined;
      let fh: fs.promises.FileHandle | undefined;
      if (!this.shard) {
        // A shard number no other writer has taken (exclusive create).
        for (;;) {
          const no = this.nextShard++;
          const name = `clips-${this.tag}-${String(no).padStart(5, '0')}.bin`;
          try {
            fh = await fs.promises.open(path.join(this.dir, name), 'wx');
            this.shard = { name, no, size: 0 };
            break;
          } catch (e) {
            if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
          }
        }
      }
      const shard = this.shard!;
      const a8 = new Uint8Array(audio.buffer, audio.byteOffset, audio.byteLength);
      fh ??= await fs.promises.open(path.join(this.dir, shard.name), 'r+');
      try {
        // Positional: a failed write is overwritten by the next entry.
        let done = (await fh.writev([video, a8], shard.size)).bytesWritten;
        if (done < bytes) {
          const all = Buffer.concat([video, a8]);
          while (done < bytes) done += (await fh.write(all, done, bytes - done, shard.size + done)).bytesWritten;
        }
      } finally {
        await fh.close();
      }
      const e: Entry = {
        s: shard.name,
        o: shard.size,
        v: video.length,
        a: audio.byteLength,
        c: entryCrc(key, video.length, audio.byteLength, video, a8),
        t: Date.now(),
      };
      shard.size += bytes;
      await fs.promises.appendFile(path.join(this.dir, shard.name.replace(/\.bin$/, '.jsonl')), JSON.stringify({ k: key, ...e }) + '\n');
      this.index.set(key, [e]);
    };
    const p = this.chain.then(job);
    this.chain = p.catch(() => undefined);
    return p;
  }

  /** Waits for pending writes. */
  async flush(): Promise<void> {
    await this.chain;
  }
}
