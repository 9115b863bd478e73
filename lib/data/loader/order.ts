// The clip order of an epoch: every (sample, clip number), shuffled by
// (seed, epoch) when asked, then this rank's contiguous slice.
import { Prng, mixSeed } from '../prng';
import type { SampleRef } from '../sources';
import type { Unit } from './types';

export interface OrderOptions {
  clipsPerVideo: number;
  shuffle: boolean;
  seed: number;
  rank: number;
  worldSize: number;
  evenShards?: boolean;
}

/**
 * This rank's clips of `epoch`: a permutation drawn from (seed, epoch)
 * (identity without shuffling); rank r of w takes [floor(r n / w),
 * floor((r + 1) n / w)), or floor(n / w) clips from there with evenShards.
 */
export function epochOrder(refs: readonly SampleRef[], o: OrderOptions, epoch: number): Unit[] {
  const all: Unit[] = [];
  for (const ref of refs) for (let c = 0; c < o.clipsPerVideo; c++) all.push({ ref, clip: c });
  if (o.shuffle) new Prng(mixSeed(o.seed, epoch, 0x5eed)).shuffle(all);
  const n = all.length;
  const w = o.worldSize;
  const a = Math.floor((o.rank * n) / w);
  let b = Math.floor(((o.rank + 1) * n) / w);
  if (o.evenShards) b = a + Math.floor(n / w);
  return all.slice(a, b);
}
