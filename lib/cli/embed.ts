// `cmac embed`: videos -> embeddings (safetensors or JSON).
import { Command } from 'commander';
import { positiveInt } from './args';
import * as fs from 'fs';
import * as path from 'path';
import { clipOf } from '../config';
import { createLoader } from '../data';
import { writeSafetensors } from '../safetensors';
import type { AnyTensor, Tensor } from '../tensor';
import { loadCheckpoint } from '../checkpoint';
import { openSource } from '../data';
import { fsyncDir } from '../files';

/** The tensors `cmac embed` writes, in file order. */
export const embeddingKeys = ['zV', 'zA', 'featV', 'featA'] as const;
export type EmbeddingKey = (typeof embeddingKeys)[number];

/** One embedded clip as the output lists it. */
export interface EmbeddedClip {
  id: string;
  clip: number;
  start: number;
  label?: number;
}

/**
 * Where `cmac embed` puts its rows, one batch at a time. `finish` commits the
 * file (temp file, fsync, rename: a failed run never leaves a torn output);
 * `abort` removes what was written.
 */
export interface EmbeddingSink {
  /** Adds a batch: its clips and, per tensor, an [n, d] float tensor with one row per clip. */
  add(clips: EmbeddedClip[], rows: Partial<Record<EmbeddingKey, Tensor<'float32'>>>): Promise<void>;
  /** Writes the file; returns the clip count and the tensor names written. */
  finish(): Promise<{ clips: number; keys: EmbeddingKey[] }>;
  abort(): Promise<void>;
}

/**
 * The output format `--out` asks for: `.json` is JSON, `.safetensors` or no
 * extension at all is safetensors (the compact default, ~7x smaller); any
 * other extension is an Error naming the allowed ones.
 */
export function embeddingFormat(out: string): 'json' | 'safetensors' {
  const ext = path.extname(out).toLowerCase();
  if (ext === '.json') return 'json';
  if (ext === '.safetensors' || ext === '') return 'safetensors';
  throw new Error(`--out ${out} must end in .safetensors or .json (or have no extension, for safetensors)`);
}

function checkRows(clips: EmbeddedClip[], rows: Partial<Record<EmbeddingKey, Tensor<'float32'>>>): void {
  for (const [k, t] of Object.entries(rows)) {
    if (t && (t.shape.length !== 2 || t.shape[0] !== clips.length))
      throw new Error(`embedding ${k} has shape [${t.shape.join(', ')}]; expected [${clips.length}, d] (one row per clip)`);
  }
}

/** Chunks of the JSON writer are flushed to the file at this size. */
const jsonFlushBytes = 1 << 20;

/**
 * A JSON array of rows `{id, clip, start, label?, zV: [...], zA, featV, featA}`,
 * streamed: each row is serialised on its own and written in ~1 MiB chunks,
 * so memory stays bounded whatever the clip count (one string of all rows
 * would pass V8's string limit at ~50k clips).
 */
export function jsonEmbeddingSink(file: string): EmbeddingSink {
  const tmp = `${file}.tmp-${process.pid}`;
  let fh: fs.promises.FileHandle | undefined;
  let pending: string[] = [];
  let pendingBytes = 0;
  let count = 0;
  const keys = new Set<EmbeddingKey>();
  const flush = async () => {
    fh ??= await fs.promises.open(tmp, 'w', 0o644);
    if (pending.length) await fh.writeFile(pending.join(''));
    pending = [];
    pendingBytes = 0;
  };
  return {
    async add(clips, rows) {
      checkRows(clips, rows);
      for (let i = 0; i < clips.length; i++) {
        const row: Record<string, unknown> = { ...clips[i] };
        for (const k of embeddingKeys) {
          const t = rows[k];
          if (!t) continue;
          keys.add(k);
          const d = t.shape[1];
          row[k] = Array.from(t.data.subarray(i * d, (i + 1) * d));
        }
        const s = (count++ === 0 ? '[' : ',') + JSON.stringify(row);
        pending.push(s);
        pendingBytes += s.length;
        if (pendingBytes >= jsonFlushBytes) await flush();
      }
    },
    async finish() {
      pending.push(count === 0 ? '[]\n' : ']\n');
      try {
        await flush();
        await fh!.sync();
        await fh!.close();
        fh = undefined;
        await fs.promises.rename(tmp, file);
      } catch (e) {
        await this.abort();
        throw e;
      }
      fsyncDir(path.dirname(file));
      return { clips: count, keys: embeddingKeys.filter((k) => keys.has(k)) };
    },
    async abort() {
      pending = [];
      await fh?.close().catch(() => undefined);
      fh = undefined;
      await fs.promises.rm(tmp, { force: true });
    },
  };
}

/**
 * One safetensors file: tensors zV, zA, featV, featA [n, d] and the clip list
 * (JSON) in the metadata field `clips`. The rows are held in memory
 * (4 bytes per number) until `finish`.
 */
export function safetensorsEmbeddingSink(file: string): EmbeddingSink {
  const parts: Record<EmbeddingKey, Tensor<'float32'>[]> = { zV: [], zA: [], featV: [], featA: [] };
  let all: EmbeddedClip[] = [];
  return {
    async add(clips, rows) {
      checkRows(clips, rows);
      for (const k of embeddingKeys) if (rows[k]) parts[k].push(rows[k]!);
      for (const c of clips) all.push(c);
    },
    async finish() {
      const tensors: Partial<Record<EmbeddingKey, AnyTensor>> = {};
      for (const k of embeddingKeys) {
        const t = cat(parts[k]);
        if (t) tensors[k] = t;
      }
      await writeSafetensors(file, tensors as Record<string, AnyTensor>, { clips: JSON.stringify(all) });
      return { clips: all.length, keys: embeddingKeys.filter((k) => tensors[k]) };
    },
    async abort() {
      for (const k of embeddingKeys) parts[k] = [];
      all = [];
    },
  };
}

/** Concatenates [n_i, d] float tensors along the first axis. */
function cat(parts: Tensor<'float32'>[]): Tensor<'float32'> | undefined {
  if (!parts.length) return undefined;
  const d = parts[0].shape[1];
  const n = parts.reduce((a, p) => a + p.shape[0], 0);
  const data = new Float32Array(n * d);
  let off = 0;
  for (const p of parts) {
    data.set(p.data, off);
    off += p.data.length;
  }
  return { data, shape: [n, d], dtype: 'float32' };
}

/** Adds `cmac embed` to a commander program. */
export function registerEmbed(program: Command): void {
  program
    .command('embed')
    .description('embed videos with a trained model: z_v, z_a (L2-normalised) and pooled encoder features')
    .requiredOption('--checkpoint <path>', 'run folder, checkpoints/ folder or step-N.safetensors')
    .requiredOption('--data <source>', 'folder of videos, .csv/.jsonl manifest, tar shards or a cmac synth folder')
    .requiredOption(
      '--out <file>',
      'output: .safetensors or no extension (tensors + clip list in metadata; compact) or .json (rows, streamed; ~7x larger)',
    )
    .option('--clips-per-video <n>', 'uniformly spaced clips per video', positiveInt('--clips-per-video'), 1)
    .option('--batch <n>', 'clips per native call', positiveInt('--batch'), 16)
    .option('--split <name>', 'for synth folders and manifests with splits: train | val | test')
    .addHelpText(
      'after',
      '\nExamples:\n  cmac embed --checkpoint runs/demo/run --data videos/ --out emb.safetensors\n  cmac embed --checkpoint runs/demo/run --data data/synth --split test --out emb.json',
    )
    .action(async (o: { checkpoint: string; data: string; out: string; clipsPerVideo: number; batch: number; split?: string }) => {
      const format = embeddingFormat(o.out);
      const source = openSource(o.data, o.split);
      const { model, config } = await loadCheckpoint(o.checkpoint);
      const loader = createLoader({
        source,
        batchSize: o.batch,
        mode: 'eval',
        clipsPerVideo: o.clipsPerVideo,
        clip: clipOf(config),
        decoders: config.data.decoders,
        decoder: config.data.decoder,
        audioStream: config.data.audioStream,
        missingAudio: 'silence',
        log: (l) => process.stderr.write(`${l}\n`),
      });
      const sink = format === 'json' ? jsonEmbeddingSink(o.out) : safetensorsEmbeddingSink(o.out);
      let n = 0;
      try {
        for await (const b of loader) {
          const e = await model.embed(b);
          const rows: Partial<Record<EmbeddingKey, Tensor<'float32'>>> = {};
          for (const k of embeddingKeys) if (e[k]) rows[k] = e[k]!;
          await sink.add(
            b.meta.map((m) => ({ id: m.id, clip: m.clip, start: m.start, ...(m.label !== undefined ? { label: m.label } : {}) })),
            rows,
          );
          n += b.meta.length;
        }
      } catch (e) {
        await sink.abort();
        throw e;
      } finally {
        await loader.close();
        model.dispose();
      }
      if (!n) {
        await sink.abort();
        throw new Error(`no clip of ${o.data} could be embedded (see the skip reasons above)`);
      }
      const r = await sink.finish();
      process.stdout.write(`embedded ${r.clips} clips -> ${o.out} (${format}: ${r.keys.join(', ')})\n`);
    });
}
