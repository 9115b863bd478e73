// PCA of embeddings to 2-D and an inline-SVG scatter coloured by class.
import { esc } from '../report';

/**
 * Projects [n, d] rows onto their first `k` principal components (centred;
 * power iteration with deflation on the d x d covariance, deterministic start).
 */
export function pca(
  x: ArrayLike<number>,
  n: number,
  d: number,
  k = 2,
  iters = 200,
): { points: Float64Array; components: Float64Array[]; variance: number[]; totalVariance: number } {
  const mean = new Float64Array(d);
  for (let i = 0; i < n; i++) for (let j = 0; j < d; j++) mean[j] += x[i * d + j] / n;
  const cov = new Float64Array(d * d);
  const r = new Float64Array(d);
  for (let i = 0; i < n; i++) {
    for (let j = 0; j < d; j++) r[j] = x[i * d + j] - mean[j];
    for (let a = 0; a < d; a++) {
      const ra = r[a];
      if (ra) for (let b = a; b < d; b++) cov[a * d + b] += ra * r[b];
    }
  }
  for (let a = 0; a < d; a++)
    for (let b = a; b < d; b++) {
      cov[a * d + b] /= Math.max(1, n - 1);
      cov[b * d + a] = cov[a * d + b];
    }
  let total = 0;
  for (let a = 0; a < d; a++) total += cov[a * d + a];
  const comps: Float64Array[] = [],
    variance: number[] = [];
  for (let c = 0; c < Math.min(k, d); c++) {
    let v = new Float64Array(d);
    for (let j = 0; j < d; j++) v[j] = 1 + ((j * 7919 + c * 104729) % 97) / 97;
    let lambda = 0;
    for (let it = 0; it < iters; it++) {
      const w = new Float64Array(d);
      for (let a = 0; a < d; a++) {
        let s = 0;
        for (let b = 0; b < d; b++) s += cov[a * d + b] * v[b];
        w[a] = s;
      }
      for (const p of comps) {
        const dot = w.reduce((s, wv, j) => s + wv * p[j], 0);
        for (let j = 0; j < d; j++) w[j] -= dot * p[j];
      }
      const norm = Math.hypot(...w);
      if (!(norm > 0)) break;
      lambda = norm;
      v = w.map((wv) => wv / norm);
    }
    // Sign convention: the largest |entry| is positive.
    let big = 0;
    for (let j = 1; j < d; j++) if (Math.abs(v[j]) > Math.abs(v[big])) big = j;
    if (v[big] < 0) v = v.map((t) => -t);
    comps.push(v);
    variance.push(lambda);
  }
  const points = new Float64Array(n * comps.length);
  for (let i = 0; i < n; i++) {
    comps.forEach((p, c) => {
      let s = 0;
      for (let j = 0; j < d; j++) s += (x[i * d + j] - mean[j]) * p[j];
      points[i * comps.length + c] = s;
    });
  }
  return { points, components: comps, variance, totalVariance: total };
}

const palette = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf', '#bcbd22', '#7f7f7f'];

/**
 * Colour of class c of `classes` (unlabelled, c < 0, is light grey): the
 * tab10 palette up to 10 classes, beyond that evenly spaced hues (golden
 * angle), so no two classes share a colour.
 */
export function classColour(c: number, classes = 10): string {
  if (c < 0) return '#bbbbbb';
  if (classes <= palette.length) return palette[c % palette.length];
  const hue = (c * 137.508) % 360,
    light = 38 + 14 * (c % 3);
  return hslHex(hue, 0.7, light / 100);
}

function hslHex(h: number, s: number, l: number): string {
  const a = s * Math.min(l, 1 - l);
  const f = (n: number) => {
    const k = (n + h / 30) % 12;
    return Math.round(255 * (l - a * Math.max(-1, Math.min(k - 3, 9 - k, 1))));
  };
  return '#' + [f(0), f(8), f(4)].map((v) => v.toString(16).padStart(2, '0')).join('');
}

/**
 * An inline-SVG scatter of 2-D points coloured by label, with a legend in the
 * same colours (one key per class present, up to 40) and 6% padding so
 * points on the edge of the range stay inside the frame.
 */
export function scatterSvg(
  points: ArrayLike<number>,
  labels: ArrayLike<number>,
  o: { title?: string; classes?: string[]; width?: number; height?: number; xLabel?: string; yLabel?: string } = {},
): string {
  const n = labels.length;
  if (!n) return '<p>(no points)</p>';
  const present = [...new Set(Array.from(labels))].sort((a, b) => a - b);
  const nClasses = Math.max(o.classes?.length ?? 0, present[present.length - 1] + 1);
  const colour = (c: number) => classColour(c, nClasses);
  const keys = present.slice(0, 40);
  const W = o.width ?? 460,
    T = 24,
    B = 30,
    L = 30,
    R = 160;
  const H = Math.max(o.height ?? 360, T + 8 + 14 * keys.length);
  const r = 2.6;
  let x0 = Infinity,
    x1 = -Infinity,
    y0 = Infinity,
    y1 = -Infinity;
  for (let i = 0; i < n; i++) {
    x0 = Math.min(x0, points[2 * i]);
    x1 = Math.max(x1, points[2 * i]);
    y0 = Math.min(y0, points[2 * i + 1]);
    y1 = Math.max(y1, points[2 * i + 1]);
  }
  const padX = (x1 - x0 || 1) * 0.06,
    padY = (y1 - y0 || 1) * 0.06;
  x0 -= padX;
  x1 += padX;
  y0 -= padY;
  y1 += padY;
  const pw = W - L - R,
    ph = H - T - B;
  const sx = (x: number) => L + ((x - x0) / (x1 - x0)) * pw;
  const sy = (y: number) => T + (1 - (y - y0) / (y1 - y0)) * ph;
  const dots: string[] = [];
  for (let i = 0; i < n; i++)
    dots.push(
      `<circle class="dot" cx="${sx(points[2 * i]).toFixed(1)}" cy="${sy(points[2 * i + 1]).toFixed(1)}" r="${r}" fill="${colour(labels[i])}" data-label="${labels[i]}" fill-opacity="0.8"/>`,
    );
  const name = (c: number) => o.classes?.[c] ?? (c < 0 ? 'unlabelled' : `class ${c}`);
  const legend =
    keys
      .map(
        (c, k) =>
          `<circle class="key" cx="${W - R + 12}" cy="${T + 6 + 14 * k}" r="4" fill="${colour(c)}" data-label="${c}" fill-opacity="0.8"/><text x="${W - R + 20}" y="${T + 10 + 14 * k}" font-size="11">${esc(name(c))}</text>`,
      )
      .join('') +
    (present.length > keys.length
      ? `<text x="${W - R + 8}" y="${T + 10 + 14 * keys.length}" font-size="11">(+${present.length - keys.length} more)</text>`
      : '');
  const frame =
    `<rect class="plot" x="${L}" y="${T}" width="${pw}" height="${ph}" fill="none" stroke="#ccc"/>` +
    `<text x="${L + pw / 2}" y="${H - 8}" text-anchor="middle" font-size="11">${esc(o.xLabel ?? 'PC 1')}</text>` +
    `<text x="12" y="${T + ph / 2}" text-anchor="middle" font-size="11" transform="rotate(-90 12 ${T + ph / 2})">${esc(o.yLabel ?? 'PC 2')}</text>` +
    (o.title ? `<text x="${L}" y="15" font-size="13" font-weight="bold">${esc(o.title)}</text>` : '');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">${frame}${dots.join('')}${legend}</svg>`;
}
