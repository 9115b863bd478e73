// Self-contained HTML reports: inline SVG charts, tables and data-URI
// images, no external assets, so report.html opens offline.
import * as fs from 'fs';
import { writeFileAtomic } from '../train/files';

/** One section of a report. */
export interface ReportSection {
  title: string;
  /** Trusted HTML made with the helpers below. */
  html: string;
}

/** Escapes text for HTML. */
export function esc(s: unknown): string {
  return String(s).replace(/[&<>"']/g, (c) => ({ '&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;' })[c] as string);
}

const colours = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b', '#e377c2', '#17becf'];

/** A line chart of several series as inline SVG. */
export function lineChart(series: { name: string; points: Array<[number, number]> }[], opts: { title?: string; xLabel?: string; width?: number; height?: number; logY?: boolean } = {}): string {
  const W = opts.width ?? 640, H = opts.height ?? 260, L = 56, R = 120, T = 24, B = 36;
  const pts = series.flatMap((s) => s.points).filter(([, y]) => Number.isFinite(y) && (!opts.logY || y > 0));
  if (!pts.length) return '<p>(no data)</p>';
  const fy = (y: number) => (opts.logY ? Math.log10(y) : y);
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => fy(p[1]));
  const x0 = Math.min(...xs), x1 = Math.max(...xs) || 1, y0 = Math.min(...ys), y1 = Math.max(...ys);
  const sx = (x: number) => L + ((x - x0) / (x1 - x0 || 1)) * (W - L - R);
  const sy = (y: number) => T + (1 - (fy(y) - y0) / (y1 - y0 || 1)) * (H - T - B);
  const lines = series.map((s, i) => {
    const d = s.points.filter(([, y]) => Number.isFinite(y) && (!opts.logY || y > 0)).map(([x, y]) => `${sx(x).toFixed(1)},${sy(y).toFixed(1)}`).join(' ');
    return `<polyline fill="none" stroke="${colours[i % colours.length]}" stroke-width="1.5" points="${d}"/>` +
      `<text x="${W - R + 8}" y="${T + 14 * (i + 1)}" fill="${colours[i % colours.length]}" font-size="12">${esc(s.name)}</text>`;
  }).join('');
  const yTick = (v: number) => (opts.logY ? (10 ** v).toPrecision(2) : v.toPrecision(3));
  const axes = `<line x1="${L}" y1="${H - B}" x2="${W - R}" y2="${H - B}" stroke="#888"/><line x1="${L}" y1="${T}" x2="${L}" y2="${H - B}" stroke="#888"/>` +
    `<text x="${L - 4}" y="${T + 4}" text-anchor="end" font-size="11">${yTick(y1)}</text><text x="${L - 4}" y="${H - B}" text-anchor="end" font-size="11">${yTick(y0)}</text>` +
    `<text x="${L}" y="${H - B + 14}" font-size="11">${x0}</text><text x="${W - R}" y="${H - B + 14}" text-anchor="end" font-size="11">${x1}</text>` +
    `<text x="${(L + W - R) / 2}" y="${H - 6}" text-anchor="middle" font-size="12">${esc(opts.xLabel ?? 'step')}</text>` +
    (opts.title ? `<text x="${L}" y="14" font-size="13" font-weight="bold">${esc(opts.title)}</text>` : '');
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}">${axes}${lines}</svg>`;
}

/** A two-column key/value table, or a table of rows with the same keys. */
export function table(rows: Array<Record<string, unknown>> | Array<[string, unknown]>): string {
  if (!rows.length) return '<p>(none)</p>';
  if (Array.isArray(rows[0])) {
    return `<table>${(rows as Array<[string, unknown]>).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(typeof v === 'object' ? JSON.stringify(v) : v)}</td></tr>`).join('')}</table>`;
  }
  const recs = rows as Array<Record<string, unknown>>;
  const keys = Object.keys(recs[0]);
  const cell = (v: unknown) => esc(typeof v === 'number' ? (Number.isInteger(v) ? v : v.toFixed(4)) : typeof v === 'object' ? JSON.stringify(v) : v);
  return `<table><tr>${keys.map((k) => `<th>${esc(k)}</th>`).join('')}</tr>${recs.map((r) => `<tr>${keys.map((k) => `<td>${cell(r[k])}</td>`).join('')}</tr>`).join('')}</table>`;
}

/** An inline PNG image. */
export function image(png: Uint8Array, alt: string, width?: number): string {
  return `<img alt="${esc(alt)}" ${width ? `width="${width}" ` : ''}src="data:image/png;base64,${Buffer.from(png).toString('base64')}"/>`;
}

/** Writes a self-contained HTML page (atomically). */
export function writeReport(file: string, title: string, sections: ReportSection[]): void {
  const css = 'body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}' +
    'table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px}' +
    'th{background:#f3f3f3}h2{border-bottom:1px solid #ddd;padding-bottom:4px}img{margin:2px;image-rendering:pixelated}';
  const body = sections.map((s) => `<section><h2>${esc(s.title)}</h2>${s.html}</section>`).join('\n');
  writeFileAtomic(file, `<!doctype html><html><head><meta charset="utf-8"><title>${esc(title)}</title><style>${css}</style></head><body><h1>${esc(title)}</h1>\n${body}\n</body></html>\n`);
}

/** True when the file exists and holds no reference to an external asset. */
export function isSelfContained(file: string): boolean {
  const html = fs.readFileSync(file, 'utf8');
  return !/(src|href)="(https?:)?\/\//i.test(html);
}
