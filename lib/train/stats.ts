// The log-mel front end's dataset statistics (method.md s1): per mel bin,
// the mean and std of log(mel + 1e-6) over logmel.statsClips training
// clips, computed once at the start of a run and stored in the model (and so
// in every checkpoint, as logmel.mean / logmel.std).
import { clipOf, type CmacConfig } from '../config';
import { createLoader, openSource } from '../data';
import type { CmacModel, LogMelStats } from '../model';
import { untilAborted } from './abort';

/**
 * Reads the first logmel.statsClips clips of the training data (seeded
 * order, no augmentation, one epoch: fewer when the data has fewer), and
 * sets the model's per-bin standardisation from their log-mel. Returns the
 * statistics and the number of clips, or undefined when statsClips is 0 or
 * `signal` aborted the pass (the model keeps mean 0 / std 1; a wait for
 * stalled data is abandoned at once).
 */
export async function fitLogmelStats(
  model: CmacModel,
  cfg: CmacConfig,
  log: (line: string) => void = () => undefined,
  signal?: AbortSignal,
): Promise<{ stats: LogMelStats; clips: number } | undefined> {
  const want = cfg.logmel.statsClips;
  if (want <= 0) return undefined;
  const loader = createLoader({
    source: openSource(cfg.data.source, 'train', { allWhenUnsplit: true }),
    batchSize: Math.min(want, cfg.data.batchSize),
    clip: clipOf(cfg),
    mode: 'train',
    augment: false,
    seed: cfg.seed,
    dropLast: false,
    decoders: cfg.data.decoders,
    decoder: cfg.data.decoder,
    audioStream: cfg.data.audioStream,
    probeIndex: cfg.data.probeIndex,
    missingAudio: cfg.data.missingAudio,
    epochs: 1,
    log,
  });
  const parts: Float32Array[] = [];
  let clips = 0,
    samples = 0;
  const it = loader[Symbol.asyncIterator]();
  try {
    for (;;) {
      const next = await untilAborted(it.next(), signal);
      if (next === undefined) {
        log('log-mel statistics: stopped by the abort signal (mean 0 / std 1 until a resume computes them)');
        Promise.resolve(it.return?.()).catch(() => undefined);
        return undefined;
      }
      if (next.done) break;
      const b = next.value;
      const [n, s] = b.audio.shape;
      const take = Math.min(n, want - clips);
      parts.push(b.audio.data.subarray(0, take * s));
      clips += take;
      samples = s;
      if (clips >= want) break;
    }
  } finally {
    // After an abort the stalled read may never settle: close without waiting for it.
    if (signal?.aborted) void loader.close().catch(() => undefined);
    else await loader.close();
  }
  if (!clips)
    throw new Error(
      `log-mel statistics: the training data ${cfg.data.source} gave no clip. Fix: check the data, or set logmel.statsClips=0 (mean 0 / std 1).`,
    );
  const data = new Float32Array(clips * samples);
  let o = 0;
  for (const p of parts) {
    data.set(p, o);
    o += p.length;
  }
  const stats = await model.logmelStats({ data, shape: [clips, samples], dtype: 'float32' });
  await model.setLogmelStats(stats);
  const range = (v: ArrayLike<number>) => `${Math.min(...Array.from(v)).toFixed(2)}..${Math.max(...Array.from(v)).toFixed(2)}`;
  log(
    `log-mel statistics from ${clips} training clip(s)${clips < want ? ` (logmel.statsClips ${want}; the data has fewer)` : ''}: per-bin mean ${range(stats.mean.data)}, std ${range(stats.std.data)}`,
  );
  return { stats, clips };
}
