// The mel scale, once for TypeScript (issue 16): HTK formula and triangular
// filters laid out as torchaudio.functional.melscale_fbanks(mel_scale='htk',
// norm=None) builds them, the same as the model's front end
// (native/core/logmel.cpp, melFilterbank; test/mel.test.ts compares the two).
// A leaf module: the synthetic data (band -> mel bins), the evaluators (ground
// truth bins) and the pictures (spectrograms, frequency axes) all use it.

/** Hz to mel, HTK formula (torchaudio mel_scale='htk'). */
export function hzToMel(f: number): number {
  return 2595 * Math.log10(1 + f / 700);
}

/** Mel to Hz, HTK formula. */
export function melToHz(m: number): number {
  return 700 * (Math.pow(10, m / 2595) - 1);
}

/** The nMels + 2 filter edge frequencies (Hz), equally spaced in mel between fMin and fMax: filter m rises from point m, peaks at m + 1, falls to m + 2. */
export function melPoints(nMels: number, fMin: number, fMax: number): number[] {
  const m0 = hzToMel(fMin);
  const m1 = hzToMel(fMax);
  return Array.from({ length: nMels + 2 }, (_, i) => melToHz(m0 + ((m1 - m0) * i) / (nMels + 1)));
}

/** Centre frequencies (Hz) of the `nMels` triangular filters between fMin and fMax (torchaudio layout). */
export function melCentres(nMels: number, fMin = 0, fMax = 8000): number[] {
  return melPoints(nMels, fMin, fMax).slice(1, -1);
}

/**
 * The mel bins [first, last] (inclusive) of a band: the filters whose centre
 * frequency lies in [lo, hi]; when none does, the one nearest the band's
 * centre. Default front end: htk, 0-8000 Hz (n_fft 1024 at 16 kHz).
 */
export function melBins(lo: number, hi: number, nMels: number, fMin = 0, fMax = 8000): [number, number] {
  const c = melCentres(nMels, fMin, fMax);
  let a = -1;
  let b = -1;
  for (let i = 0; i < nMels; i++) {
    if (c[i] >= lo && c[i] <= hi) {
      if (a < 0) a = i;
      b = i;
    }
  }
  if (a < 0) {
    const mid = Math.sqrt(lo * hi);
    let best = 0;
    for (let i = 1; i < nMels; i++) if (Math.abs(c[i] - mid) < Math.abs(c[best] - mid)) best = i;
    a = b = best;
  }
  return [a, b];
}

/** torchaudio.functional.melscale_fbanks (htk, norm None) as [nFreqs][nMels]: the weight of STFT bin f (0..sampleRate/2) in mel filter m. */
export function melFilterbank(nFreqs: number, fMin: number, fMax: number, nMels: number, sampleRate: number): Float64Array[] {
  const all = Array.from({ length: nFreqs }, (_, i) => ((sampleRate / 2) * i) / (nFreqs - 1));
  const fPts = melPoints(nMels, fMin, fMax);
  const fb = all.map(() => new Float64Array(nMels));
  for (let m = 0; m < nMels; m++) {
    const dl = fPts[m + 1] - fPts[m],
      dr = fPts[m + 2] - fPts[m + 1];
    for (let f = 0; f < nFreqs; f++) {
      const down = (all[f] - fPts[m]) / dl,
        up = (fPts[m + 2] - all[f]) / dr;
      fb[f][m] = Math.max(0, Math.min(down, up));
    }
  }
  return fb;
}
