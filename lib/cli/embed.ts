// `cmac embed`: videos -> embeddings (safetensors or JSON).
import { InvalidArgumentError, Command } from 'commander';
import * as fs from 'fs';
import { createLoader } from '../data';
import { writeSafetensors } from '../safetensors';
import type { Tensor } from '../tensor';
import { openCheckpoint, openSource } from '../train';

function positiveInt(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${name} must be a positive integer, got '${v}'`);
    return n;
  };
}

/** Concatenates [n_i, d] float tensors along the first axis. */
function cat(parts: Tensor<'float32'>[]): Tensor<'float32'> | undefined {
  if (!parts.length) return undefined;
  const d = parts[0].shape[1];
  const n = parts.reduce((a, p) => a + p.shape[0], 0);
  const data = new Float32Array(n * d);
  let off = 0;
  for (const p of parts) { data.set(p.data, off); off += p.data.length; }
  return { data, shape: [n, d], dtype: 'float32' };
}

/** Adds `cmac embed` to a commander program. */
export function registerEmbed(program: Command): void {
  program
    .command('embed')
    .description('embed videos with a trained model: z_v, z_a (L2-normalised) and pooled encoder features')
    .requiredOption('--checkpoint <path>', 'run folder, checkpoints/ folder or step-N.safetensors')
    .requiredOption('--data <source>', 'folder of videos, .csv/.jsonl manifest, tar shards or a cmac synth folder')
    .requiredOption('--out <file>', 'output: .safetensors (tensors + clip list in metadata) or .json')
    .option('--clips-per-video <n>', 'uniformly spaced clips per video', positiveInt('--clips-per-video'), 1)
    .option('--batch <n>', 'clips per native call', positiveInt('--batch'), 16)
    .option('--split <name>', 'for synth folders and manifests with splits: train | val | test')
    .addHelpText('after', '\nExamples:\n  cmac embed --checkpoint runs/demo/run --data videos/ --out emb.safetensors\n  cmac embed --checkpoint runs/demo/run --data data/synth --split test --out emb.json')
    .action(async (o: { checkpoint: string; data: string; out: string; clipsPerVideo: number; batch: number; split?: string }) => {
      if (!/\.(safetensors|json)$/.test(o.out)) throw new Error(`--out ${o.out} must end in .safetensors or .json`);
      const { model, config } = await openCheckpoint(o.checkpoint);
      const loader = createLoader({
        source: openSource(o.data, o.split), batchSize: o.batch, mode: 'eval', clipsPerVideo: o.clipsPerVideo,
        clip: { ...config.clip, sampleRate: config.logmel.sampleRate }, decoders: config.data.decoders, missingAudio: 'silence',
        log: (l) => process.stderr.write(`${l}\n`),
      });
      const parts: Record<'zV' | 'zA' | 'featV' | 'featA', Tensor<'float32'>[]> = { zV: [], zA: [], featV: [], featA: [] };
      const clips: Array<{ id: string; clip: number; start: number; label?: number }> = [];
      try {
        for await (const b of loader) {
          const e = await model.embed(b);
          for (const k of ['zV', 'zA', 'featV', 'featA'] as const) if (e[k]) parts[k].push(e[k]!);
          b.meta.forEach((m) => clips.push({ id: m.id, clip: m.clip, start: m.start, ...(m.label !== undefined ? { label: m.label } : {}) }));
        }
      } finally {
        await loader.close();
        model.dispose();
      }
      if (!clips.length) throw new Error(`no clip of ${o.data} could be embedded (see the skip reasons above)`);
      const tensors: Record<string, Tensor> = {};
      for (const [k, v] of Object.entries(parts)) { const t = cat(v); if (t) tensors[k] = t; }
      if (o.out.endsWith('.json')) {
        const rows = clips.map((c, i) => ({ ...c, ...Object.fromEntries(Object.entries(tensors).map(([k, t]) => [k, Array.from(t.data.subarray(i * t.shape[1], (i + 1) * t.shape[1]) as Float32Array)])) }));
        fs.writeFileSync(o.out, JSON.stringify(rows) + '\n');
      } else {
        await writeSafetensors(o.out, tensors, { clips: JSON.stringify(clips) });
      }
      process.stdout.write(`embedded ${clips.length} clips -> ${o.out} (${Object.keys(tensors).join(', ')})\n`);
    });
}
