// A cache of decoded clips in sharded binary files, for repeated epochs over
// the same un-augmented (eval) clips. Layout in the cache folder, per writer
// tag (one per rank, so ranks never write the same file):
//   clips-<tag>-<n>.bin   video bytes then audio f32le bytes, clip after clip
//   index-<tag>.jsonl     {"k": key, "s": shard file, "o": offset, "v": video bytes, "a": audio bytes}
// An index line is appended only after its data, so a crash loses at most
// the clip being written. Keys are sha1 hashes that the loader builds from the
// sample identity (path, size, mtime or tar member), clip placement and geometry.
import { createHash } from 'crypto';
import * as fs from 'fs';
import * as path from 'path';

/** Options of {@link ClipCache}. */
export interface ClipCacheOptions {
  /** Start a new shard file past this size (default 256 MiB). */
  shardBytes?: number;
  /** Names this writer's files (default `r0`); use one tag per process. */
  tag?: string;
}

interface Entry {
  s: string;
  o: number;
  v: number;
  a: number;
}

/** Hashes any JSON-able description into a cache key. */
export function cacheKey(parts: unknown): string {
  return createHash('sha1').update(JSON.stringify(parts)).digest('hex');
}

/** Decoded clips on disk, keyed by {@link cacheKey}. */
export class ClipCache {
  readonly dir: string;
  hits = 0;
  misses = 0;
  private readonly tag: string;
  private readonly shardBytes: number;
  private readonly index = new Map<string, Entry>();
  private shardNo = 0;
  private shardSize = 0;
  private chain: Promise<void> = Promise.resolve();

  /** Opens (creating if needed) the cache in `dir` and reads every writer's index. */
  constructor(dir: string, opts: ClipCacheOptions = {}) {
    this.dir = path.resolve(dir);
    this.tag = opts.tag ?? 'r0';
    this.shardBytes = opts.shardBytes ?? 256 * 1024 * 1024;
    fs.mkdirSync(this.dir, { recursive: true });
    for (const f of fs.readdirSync(this.dir).filter((n) => /^index-.*\.jsonl$/.test(n)).sort()) {
      for (const line of fs.readFileSync(path.join(this.dir, f), 'utf8').split('\n')) {
        if (!line) continue;
        try {
          const j = JSON.parse(line) as Entry & { k: string };
          this.index.set(j.k, { s: j.s, o: j.o, v: j.v, a: j.a });
        } catch {
          /* a torn last line: ignore */
        }
      }
    }
    while (fs.existsSync(this.shardPath(this.shardNo + 1))) this.shardNo++;
    const cur = this.shardPath(this.shardNo);
    this.shardSize = fs.existsSync(cur) ? fs.statSync(cur).size : 0;
  }

  /** Number of clips the cache holds. */
  get size(): number {
    return this.index.size;
  }

  private shardPath(n: number): string {
    return path.join(this.dir, `clips-${this.tag}-${String(n).padStart(5, '0')}.bin`);
  }

  /** The clip stored under `key`, or undefined. */
  async get(key: string): Promise<{ video: Uint8Array; audio: Float32Array } | undefined> {
    const e = this.index.get(key);
    if (!e) {
      this.misses++;
      return undefined;
    }
    let fh: fs.promises.FileHandle | undefined;
    try {
      fh = await fs.promises.open(path.join(this.dir, e.s), 'r');
      const buf = new Uint8Array(e.v + e.a);
      const { bytesRead } = await fh.read(buf, 0, buf.length, e.o);
      if (bytesRead !== buf.length) throw new Error('short read');
      this.hits++;
      return { video: buf.subarray(0, e.v), audio: new Float32Array(buf.buffer.slice(e.v, e.v + e.a)) };
    } catch {
      this.index.delete(key);
      this.misses++;
      return undefined;
    } finally {
      await fh?.close();
    }
  }

  /** Stores a clip (writes are serialised; resolves when it is on disk). */
  put(key: string, video: Uint8Array, audio: Float32Array): Promise<void> {
    const job = async (): Promise<void> => {
      if (this.index.has(key)) return;
      if (this.shardSize > 0 && this.shardSize + video.length + audio.byteLength > this.shardBytes) {
        this.shardNo++;
        this.shardSize = 0;
      }
      const shard = this.shardPath(this.shardNo);
      const fh = await fs.promises.open(shard, 'a');
      try {
        await fh.write(video);
        await fh.write(new Uint8Array(audio.buffer, audio.byteOffset, audio.byteLength));
      } finally {
        await fh.close();
      }
      const e: Entry = { s: path.basename(shard), o: this.shardSize, v: video.length, a: audio.byteLength };
      this.shardSize += video.length + audio.byteLength;
      await fs.promises.appendFile(path.join(this.dir, `index-${this.tag}.jsonl`), JSON.stringify({ k: key, ...e }) + '\n');
      this.index.set(key, e);
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
