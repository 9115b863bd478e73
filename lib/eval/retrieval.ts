// Cross-modal retrieval: audio -> video and video -> audio recall@k from
// the normalised embeddings z_a, z_v of held-out clips (clip i's audio and
// video are each other's only correct match).

/** Similarity matrix S[i, j] = <q_i, g_j> of [N, D] row-major embeddings. */
export function similarity(q: ArrayLike<number>, g: ArrayLike<number>, n: number, d: number): Float64Array {
  if (q.length !== n * d || g.length !== n * d) throw new RangeError(`embeddings must both be [${n}, ${d}]`);
  const s = new Float64Array(n * n);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < n; j++) {
      let acc = 0;
      for (let k = 0; k < d; k++) acc += q[i * d + k] * g[j * d + k];
      s[i * n + j] = acc;
    }
  }
  return s;
}

/** Recall@k of each query (row) whose match is the diagonal. */
export interface RetrievalSummary {
  n: number;
  /** k -> share of queries whose match ranks in the top k (ties broken uniformly at random, in expectation). */
  recall: Record<number, number>;
  /** Median 1-based rank of the match (ties: the mid rank). */
  medianRank: number;
  /** k -> k / n: recall@k of random embeddings. */
  chance: Record<number, number>;
}

/** Where one query's match ranks: items scoring strictly higher, items tied with it. */
export interface MatchRank {
  greater: number;
  ties: number;
}

/** Per query (row of `sim` [n, n], match = column i): how many items beat its match and how many tie with it. */
export function matchRanks(sim: ArrayLike<number>, n: number): MatchRank[] {
  const out: MatchRank[] = [];
  for (let i = 0; i < n; i++) {
    const own = sim[i * n + i];
    let greater = 0,
      ties = 0;
    for (let j = 0; j < n; j++) {
      if (j === i) continue;
      const v = sim[i * n + j];
      if (v > own) greater++;
      else if (v === own) ties++;
    }
    out.push({ greater, ties });
  }
  return out;
}

/** Expected recall@k of one query (ties broken uniformly at random): clamp((k - greater) / (ties + 1), 0, 1). */
export function queryRecall(r: MatchRank, k: number): number {
  return Math.max(0, Math.min(1, (k - r.greater) / (r.ties + 1)));
}

/** 1-based rank of the match, ties at the mid rank. */
export const queryRank = (r: MatchRank): number => r.greater + 1 + r.ties / 2;

/**
 * Recall@k for queries = rows of `sim` [n, n], correct item = column i.
 * A query with g items scoring strictly higher than its match and t other
 * items tied with it has expected recall@k = clamp((k - g) / (t + 1), 0, 1).
 */
export function recallAtK(sim: ArrayLike<number>, n: number, ks: number[] = [1, 5, 10]): RetrievalSummary {
  const recall: Record<number, number> = {};
  const chance: Record<number, number> = {};
  for (const k of ks) {
    recall[k] = 0;
    chance[k] = n ? Math.min(1, k / n) : NaN;
  }
  const ranks: number[] = [];
  for (const r of matchRanks(sim, n)) {
    for (const k of ks) recall[k] += queryRecall(r, k);
    ranks.push(queryRank(r));
  }
  for (const k of ks) recall[k] = n ? recall[k] / n : NaN;
  ranks.sort((a, b) => a - b);
  const medianRank = n ? (n % 2 ? ranks[(n - 1) / 2] : (ranks[n / 2 - 1] + ranks[n / 2]) / 2) : NaN;
  return { n, recall, medianRank, chance };
}

/** Both directions from z_a, z_v [n, d]. */
export function crossModalRetrieval(
  zA: ArrayLike<number>,
  zV: ArrayLike<number>,
  n: number,
  d: number,
  ks: number[] = [1, 5, 10],
): { audioToVideo: RetrievalSummary; videoToAudio: RetrievalSummary } {
  return {
    audioToVideo: recallAtK(similarity(zA, zV, n, d), n, ks),
    videoToAudio: recallAtK(similarity(zV, zA, n, d), n, ks),
  };
}
