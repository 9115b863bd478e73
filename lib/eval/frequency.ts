// Frequency grounding (method.md section 7, new): how much of a frequency
// attention map (alpha_a or beta_a, over the M bands of the audio encoder)
// lies in the ground-truth mel bins of the sounding objects, and whether its
// argmax does.

/**
 * The encoder bands a set of mel bins falls in: band = floor(bin * M / nMels)
 * (the audio encoder keeps the frequency axis in order and divides it by
 * nMels / M).
 */
export function melBinsToBands(bins: Array<[number, number]>, nMels: number, bands: number): Set<number> {
  const out = new Set<number>();
  for (const [a, b] of bins) {
    for (let m = Math.max(0, a); m <= Math.min(nMels - 1, b); m++) out.add(Math.floor((m * bands) / nMels));
  }
  return out;
}

/** One clip's frequency grounding. */
export interface FrequencyScore {
  /** Share of the map's mass in the GT bands. */
  mass: number;
  /** Expected argmax hit (ties shared, as in pointing). */
  pointing: number;
  /** |GT bands| / M: chance level of both. */
  chance: number;
}

/** Scores a band map [M] against the GT band set. */
export function scoreBands(map: ArrayLike<number>, gtBands: Set<number>): FrequencyScore {
  const M = map.length;
  let tot = 0,
    inside = 0,
    hi = -Infinity;
  for (let m = 0; m < M; m++) {
    const v = map[m] > 0 ? map[m] : 0;
    tot += v;
    if (gtBands.has(m)) inside += v;
    if (map[m] > hi) hi = map[m];
  }
  let n = 0,
    hit = 0;
  for (let m = 0; m < M; m++)
    if (map[m] === hi) {
      n++;
      if (gtBands.has(m)) hit++;
    }
  const chance = gtBands.size / M;
  return { mass: tot > 0 ? inside / tot : chance, pointing: n ? hit / n : 0, chance };
}

/** Mean over clips. */
export interface FrequencySummary {
  n: number;
  mass: number;
  pointing: number;
  chance: number;
}

export function summariseFrequency(scores: FrequencyScore[]): FrequencySummary {
  const n = scores.length;
  const mean = (f: (s: FrequencyScore) => number) => (n ? scores.reduce((a, s) => a + f(s), 0) / n : NaN);
  return { n, mass: mean((s) => s.mass), pointing: mean((s) => s.pointing), chance: mean((s) => s.chance) };
}
