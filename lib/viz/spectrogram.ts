// A log-mel spectrogram in TypeScript for display (the model's own front end
// is native; this one follows the same recipe: periodic Hann window of
// winLength zero-padded to nFft, centre reflect padding, power 2, HTK mel
// filters as torchaudio builds them, log(x + 1e-6)), and the picture of a
// frequency attention map drawn beside it.
import { hzToMel, melFilterbank } from '../audio/mel';
import { blank, colormap, colourBar, drawText, paste, textSize } from './image';
import type { RgbImage } from './png';

/** Log-mel settings (defaults: both presets' front end at 16 kHz; nMels 64 = tiny). */
export interface LogMelOptions {
  sampleRate?: number;
  nFft?: number;
  winLength?: number;
  hopLength?: number;
  nMels?: number;
  fMin?: number;
  fMax?: number;
}

/** In-place iterative radix-2 FFT of (re, im); length a power of two. */
export function fft(re: Float64Array, im: Float64Array): void {
  const n = re.length;
  if (n & (n - 1)) throw new RangeError(`fft length must be a power of two, got ${n}`);
  for (let i = 1, j = 0; i < n; i++) {
    let bit = n >> 1;
    for (; j & bit; bit >>= 1) j ^= bit;
    j ^= bit;
    if (i < j) {
      [re[i], re[j]] = [re[j], re[i]];
      [im[i], im[j]] = [im[j], im[i]];
    }
  }
  for (let len = 2; len <= n; len <<= 1) {
    const ang = (-2 * Math.PI) / len;
    const wr = Math.cos(ang),
      wi = Math.sin(ang);
    for (let i = 0; i < n; i += len) {
      let cr = 1,
        ci = 0;
      for (let k = 0; k < len / 2; k++) {
        const a = i + k,
          b = a + len / 2;
        const xr = re[b] * cr - im[b] * ci,
          xi = re[b] * ci + im[b] * cr;
        re[b] = re[a] - xr;
        im[b] = im[a] - xi;
        re[a] += xr;
        im[a] += xi;
        const t = cr * wr - ci * wi;
        ci = cr * wi + ci * wr;
        cr = t;
      }
    }
  }
}

/** Log-mel spectrogram: { data [nMels * frames] mel-major (row m = mel bin m, low to high), nMels, frames }. */
export function logMel(pcm: Float32Array, o: LogMelOptions = {}): { data: Float32Array; nMels: number; frames: number } {
  const sr = o.sampleRate ?? 16000,
    nFft = o.nFft ?? 1024,
    win = o.winLength ?? 400,
    hop = o.hopLength ?? 160;
  const nMels = o.nMels ?? 64,
    fMin = o.fMin ?? 0,
    fMax = o.fMax ?? sr / 2;
  const pad = nFft >> 1;
  const n = pcm.length;
  const at = (i: number) => {
    // reflect padding
    let j = i - pad;
    if (n === 1) return pcm[0];
    while (j < 0 || j >= n) j = j < 0 ? -j : 2 * (n - 1) - j;
    return pcm[j];
  };
  const frames = 1 + Math.floor(n / hop);
  const window = new Float64Array(nFft);
  const off = (nFft - win) >> 1;
  for (let i = 0; i < win; i++) window[off + i] = 0.5 - 0.5 * Math.cos((2 * Math.PI * i) / win);
  const nFreqs = nFft / 2 + 1;
  const fb = melFilterbank(nFreqs, fMin, fMax, nMels, sr);
  const out = new Float32Array(nMels * frames);
  const re = new Float64Array(nFft),
    im = new Float64Array(nFft);
  for (let t = 0; t < frames; t++) {
    for (let i = 0; i < nFft; i++) {
      re[i] = window[i] ? at(t * hop + i) * window[i] : 0;
      im[i] = 0;
    }
    fft(re, im);
    const mel = new Float64Array(nMels);
    for (let f = 0; f < nFreqs; f++) {
      const p = re[f] * re[f] + im[f] * im[f];
      if (p === 0) continue;
      const row = fb[f];
      for (let m = 0; m < nMels; m++) if (row[m]) mel[m] += p * row[m];
    }
    for (let m = 0; m < nMels; m++) out[m * frames + t] = Math.log(mel[m] + 1e-6);
  }
  return { data: out, nMels, frames };
}

/** The spectrogram as an image (low frequencies at the bottom), `rowPx` pixels per mel bin and `colPx` per frame, colour range = its min..max. */
export function spectrogramImage(
  spec: { data: Float32Array; nMels: number; frames: number },
  rowPx = 2,
  colPx = 1,
  cmap: 'inferno' | 'gray' = 'inferno',
): RgbImage {
  let lo = Infinity,
    hi = -Infinity;
  for (const v of spec.data) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const W = spec.frames * colPx,
    H = spec.nMels * rowPx;
  const img = blank(W, H);
  for (let y = 0; y < H; y++) {
    const m = spec.nMels - 1 - Math.floor(y / rowPx);
    for (let x = 0; x < W; x++) {
      const v = spec.data[m * spec.frames + Math.floor(x / colPx)];
      img.data.set(colormap(cmap, hi > lo ? (v - lo) / (hi - lo) : 0), (y * W + x) * 3);
    }
  }
  return img;
}

/** Options of {@link frequencyPicture}. */
export interface FrequencyPictureOptions extends LogMelOptions {
  /** Band maps to draw as bars (e.g. { alpha_a: [...], beta_a: [...] }), each over M bands. */
  maps: Record<string, ArrayLike<number>>;
  /** Ground-truth bands (indices), marked green beside the bars. */
  gtBands?: number[];
  rowPx?: number;
  barWidth?: number;
}

/**
 * The log-mel spectrogram of a clip's audio with, to its right, one bar chart
 * per band map: band m covers the mel rows [m * nMels / M, (m + 1) * nMels / M)
 * of the spectrogram, its bar length is the band's share of the map's maximum;
 * ground-truth bands get a green mark left of each bar chart. A strip on
 * top titles the spectrogram and each bar chart (by its map's name).
 */
export function frequencyPicture(pcm: Float32Array, o: FrequencyPictureOptions): RgbImage {
  const spec = logMel(pcm, o);
  const rowPx = o.rowPx ?? 3;
  const sp = spectrogramImage(spec, rowPx, 2);
  const barW = o.barWidth ?? 64;
  const names = Object.keys(o.maps);
  const img = blank(sp.width + names.length * (barW + 14) + 4, sp.height);
  paste(img, sp, 0, 0);
  const gt = new Set(o.gtBands ?? []);
  names.forEach((name, k) => {
    const map = o.maps[name];
    const M = map.length;
    let mx = 0;
    for (let m = 0; m < M; m++) mx = Math.max(mx, map[m]);
    const x0 = sp.width + 4 + k * (barW + 14);
    const colour: [number, number, number] = k === 0 ? [31, 119, 180] : [214, 39, 40];
    for (let m = 0; m < M; m++) {
      const yTop = sp.height - Math.round(((m + 1) * spec.nMels * rowPx) / M);
      const yBot = sp.height - Math.round((m * spec.nMels * rowPx) / M);
      const len = mx > 0 ? Math.round((barW * map[m]) / mx) : 0;
      for (let y = yTop + 1; y < yBot - 1; y++) {
        if (gt.has(m)) for (let x = x0; x < x0 + 6; x++) img.data.set([44, 160, 44], (y * img.width + x) * 3);
        for (let x = x0 + 8; x < x0 + 8 + len; x++) img.data.set(colour, (y * img.width + x) * 3);
      }
      for (let x = x0 + 8; x < x0 + 8 + barW; x++) img.data.set([200, 200, 200], ((yBot - 1) * img.width + x) * 3);
    }
  });
  // Titles over the spectrogram and each bar chart.
  const out = blank(img.width, img.height + 14);
  paste(out, img, 0, 14);
  drawText(out, sp.width >= 120 ? 'log-mel spectrogram' : 'log-mel', 2, 3);
  names.forEach((name, k) => drawText(out, name, sp.width + 4 + k * (barW + 14) + 8, 3, k === 0 ? [31, 119, 180] : [214, 39, 40]));
  return out;
}

/** Options of {@link frequencyTimeline}. */
export interface FrequencyTimelineOptions extends LogMelOptions {
  /** Band maps per clip: name -> [K * M] (clip-major). */
  maps: Record<string, Float32Array>;
  bands: number;
  /** Start time (s) and length (s) of each clip's video part: where its bands are drawn. */
  clipStarts: number[];
  clipSeconds: number;
  /** Most pixels across (default 1200); longer audio is sampled. */
  maxWidth?: number;
  rowPx?: number;
}

/**
 * The log-mel spectrogram of a whole soundtrack (time left to right, low
 * frequencies at the bottom) with one strip per band map below it, on the
 * same time and frequency axes: band m of clip k fills the rows of mel bins
 * [m * nMels / M, (m + 1) * nMels / M) over the clip's time span, coloured
 * by its attention (inferno; each clip's map scaled to its maximum);
 * titled, with a frequency axis (Hz), a time axis (s) and a colour bar.
 */
export function frequencyTimeline(pcm: Float32Array, o: FrequencyTimelineOptions): RgbImage {
  const spec = logMel(pcm, o);
  const sr = o.sampleRate ?? 16000,
    hop = o.hopLength ?? 160;
  const rowPx = o.rowPx ?? 2;
  const W = Math.max(1, Math.min(o.maxWidth ?? 1200, spec.frames));
  const H = spec.nMels * rowPx;
  const colFrame = (x: number) => Math.min(spec.frames - 1, Math.floor((x * spec.frames) / W));
  let lo = Infinity,
    hi = -Infinity;
  for (const v of spec.data) {
    if (v < lo) lo = v;
    if (v > hi) hi = v;
  }
  const names = Object.keys(o.maps);
  const img = blank(W, H + names.length * (H + 6));
  for (let y = 0; y < H; y++) {
    const m = spec.nMels - 1 - Math.floor(y / rowPx);
    for (let x = 0; x < W; x++)
      img.data.set(colormap('inferno', hi > lo ? (spec.data[m * spec.frames + colFrame(x)] - lo) / (hi - lo) : 0), (y * W + x) * 3);
  }
  const M = o.bands;
  names.forEach((name, s) => {
    const y0 = H + 6 + s * (H + 6);
    const maps = o.maps[name];
    for (let x = 0; x < W; x++) {
      const t = (colFrame(x) * hop) / sr;
      const k = o.clipStarts.findIndex((c) => t >= c && t < c + o.clipSeconds);
      let mx = 0;
      if (k >= 0) for (let b = 0; b < M; b++) mx = Math.max(mx, maps[k * M + b]);
      for (let y = 0; y < H; y++) {
        let rgb: [number, number, number] = [235, 235, 235];
        if (k >= 0) {
          const mel = spec.nMels - 1 - Math.floor(y / rowPx);
          const band = Math.min(M - 1, Math.floor((mel * M) / spec.nMels));
          rgb = colormap('inferno', mx > 0 ? maps[k * M + band] / mx : 0);
        }
        img.data.set(rgb, ((y0 + y) * W + x) * 3);
      }
    }
  });
  return labelTimeline(img, W, H, names, { sr, hop, frames: spec.frames, nMels: spec.nMels, fMin: o.fMin ?? 0, fMax: o.fMax ?? sr / 2 });
}

/** A step of 1, 2 or 5 x 10^k that puts about `want` ticks over `span`. */
function niceStep(span: number, want: number): number {
  const raw = span / Math.max(1, want),
    p = 10 ** Math.floor(Math.log10(raw));
  return [1, 2, 5, 10].map((m) => m * p).find((st) => st >= raw) ?? 10 * p;
}

/**
 * Titles, a frequency axis (Hz, on the mel scale) left of each strip, a time
 * axis (s) below, and a colour bar to the right of the rows of `img`: the
 * spectrogram (H rows) then one H-row strip per name, 6 px apart.
 */
function labelTimeline(
  img: RgbImage,
  W: number,
  H: number,
  names: string[],
  g: { sr: number; hop: number; frames: number; nMels: number; fMin: number; fMax: number },
): RgbImage {
  const left = 40,
    titleH = 14,
    gap = 6,
    axisH = 22;
  const titles = ['log-mel spectrogram', ...names.map((n) => `${n} per band (each clip scaled to its max)`)];
  const panelH = titleH + H;
  const bar = colourBar(H, { cmap: 'inferno', high: 'high', low: 'low' });
  const out = blank(left + W + 8 + bar.width, titles.length * (panelH + gap) + axisH);
  const m0 = hzToMel(g.fMin),
    m1 = hzToMel(g.fMax);
  const hzTicks = [100, 200, 500, 1000, 2000, 4000, 8000, 16000, 32000].filter((f) => f >= g.fMin && f <= g.fMax);
  titles.forEach((t, i) => {
    const y0 = i * (panelH + gap);
    drawText(out, t, left, y0 + 3);
    const rows: RgbImage = { width: W, height: H, channels: 3, data: img.data.subarray(i * (H + 6) * W * 3, (i * (H + 6) + H) * W * 3) };
    paste(out, rows, left, y0 + titleH);
    let last = -Infinity;
    for (const f of [...hzTicks].reverse()) {
      // top down, skipping a label that would touch the one above
      const y = y0 + titleH + Math.round((1 - (hzToMel(f) - m0) / (m1 - m0)) * (H - 1));
      if (y - last < 10) continue;
      last = y;
      for (let x = left - 4; x < left; x++) out.data.set([0, 0, 0], (y * out.width + x) * 3);
      const label = f >= 1000 ? `${f / 1000}k` : String(f);
      drawText(out, label, left - 6 - label.length * 5, y - 3);
    }
    paste(out, bar, left + W + 8, y0 + titleH);
  });
  const yAxis = titles.length * (panelH + gap);
  const seconds = (g.frames * g.hop) / g.sr;
  const step = niceStep(seconds, Math.max(2, Math.floor(W / 30)));
  for (let x = left; x < left + W; x++) out.data.set([0, 0, 0], (yAxis * out.width + x) * 3);
  for (let t = 0; t <= seconds + 1e-9; t += step) {
    const x = left + Math.round((t / seconds) * (W - 1));
    for (let y = yAxis; y < yAxis + 4; y++) out.data.set([0, 0, 0], (y * out.width + x) * 3);
    const label = `${+t.toFixed(3)}`;
    drawText(out, label, Math.min(out.width - 5 * label.length - 2, x - Math.floor(textSize(label).width / 2)), yAxis + 6);
  }
  drawText(out, 'time (s)', left + W - textSize('time (s)').width, yAxis + 14);
  drawText(out, 'Hz', 4, 3);
  return out;
}
