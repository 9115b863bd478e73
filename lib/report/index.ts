// Self-contained HTML reports: charts drawn by uPlot (its script and CSS
// inlined into the page), tables and data-URI images, no external assets,
// so report.html opens offline.
import * as fs from 'fs';
import { writeFileAtomic } from '../files';

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

/** Options of {@link lineChart}. */
export interface LineChartOptions {
  title?: string;
  xLabel?: string;
  yLabel?: string;
  width?: number;
  height?: number;
  /** Start on a log10 y scale (the page's toggle switches it either way). */
  logY?: boolean;
}

/**
 * A line chart of several series sharing an x axis, drawn in the page by
 * uPlot (inlined by {@link writeReport}): axes with ticks and gridlines, a
 * log-scale toggle, and the values under the cursor in the legend.
 * Non-finite points are gaps; on the log scale so are values <= 0.
 */
export function lineChart(series: { name: string; points: Array<[number, number]> }[], opts: LineChartOptions = {}): string {
  const xs = [...new Set(series.flatMap((s) => s.points.map((p) => p[0])))].filter(Number.isFinite).sort((a, b) => a - b);
  if (!xs.length || !series.some((s) => s.points.some(([, y]) => Number.isFinite(y))))
    return `<p>${opts.title ? `${esc(opts.title)}: ` : ''}(no data)</p>`;
  const at = new Map(xs.map((x, i) => [x, i]));
  const ys = series.map((s) => {
    const col: Array<number | null> = xs.map(() => null);
    for (const [x, y] of s.points) if (at.has(x) && Number.isFinite(y)) col[at.get(x)!] = y;
    return col;
  });
  const spec = {
    title: opts.title ?? '',
    xLabel: opts.xLabel ?? 'step',
    yLabel: opts.yLabel ?? '',
    width: opts.width ?? 520,
    height: opts.height ?? 240,
    logY: !!opts.logY,
    series: series.map((s, i) => ({ name: s.name, colour: colours[i % colours.length] })),
    data: [xs, ...ys],
    integerX: xs.every(Number.isInteger),
  };
  // JSON inside <script type="application/json">: only "</" can end it early.
  return `<div class="cmac-chart"><script type="application/json">${JSON.stringify(spec).replace(/<\//g, '<\\/')}</script></div>`;
}

// Turns each .cmac-chart into a uPlot chart, with a log-scale checkbox. The y
// axis asks for 20 px between ticks (uPlot: 30): on a ~130 px plot 30 px can
// leave only 2 ticks for some value ranges; 20 px gives at least 3.
const chartBoot = `(function(){
var intIncrs=[];for(var e=0;e<10;e++)[1,2,5].forEach(function(m){intIncrs.push(m*Math.pow(10,e));});
function fmt(v){if(v==null||!isFinite(v))return '-';var a=Math.abs(v);return a!==0&&(a>=1e5||a<1e-3)?(+v.toPrecision(4)).toExponential():+v.toPrecision(4)+'';}
function logKeep(u,splits){var s=u.scales.y,dec=Math.log10(s.max/s.min);return splits.map(function(v){var m=Math.round(v/Math.pow(10,Math.floor(Math.log10(v)+1e-9))*1000)/1000;return dec<=1.2||m===1||m===2||m===5?v:null;});}
document.querySelectorAll('.cmac-chart').forEach(function(el){
  var spec=JSON.parse(el.querySelector('script').textContent);
  var box=document.createElement('div');
  var bar=document.createElement('label');bar.className='cmac-log';
  var cb=document.createElement('input');cb.type='checkbox';cb.checked=spec.logY;
  bar.appendChild(cb);bar.appendChild(document.createTextNode(' log scale'));
  el.appendChild(bar);el.appendChild(box);
  var plot;el.ticks={};
  function draw(){
    if(plot)plot.destroy();
    var log=cb.checked;
    var data=[spec.data[0]].concat(spec.data.slice(1).map(function(c){return log?c.map(function(v){return v!=null&&v>0?v:null;}):c;}));
    plot=new uPlot({title:spec.title,width:spec.width,height:spec.height,
      scales:{x:{time:false},y:log?{distr:3,log:10}:{auto:true}},
      axes:[{label:spec.xLabel,grid:{show:true,stroke:'#e5e5e5'},ticks:{show:true},incrs:spec.integerX?intIncrs:undefined,values:function(u,vals){el.ticks.x=vals.length;return vals.map(fmt);}},
            {label:spec.yLabel,size:64,space:20,grid:{show:true,stroke:'#e5e5e5'},ticks:{show:true},filter:log?logKeep:undefined,values:function(u,vals){el.ticks.y=vals.filter(function(v){return v!=null;}).length;return vals.map(function(v){return v==null?'':fmt(v);});}}],
      series:[{label:spec.xLabel,value:function(u,v){return v==null?'-':v;}}].concat(spec.series.map(function(s){return {label:s.name,stroke:s.colour,width:1.5,spanGaps:false,points:{show:spec.data[0].length<2},value:function(u,v){return fmt(v);}};}))
    },data,box);
    el.uplot=plot;
  }
  cb.addEventListener('change',draw);draw();
});})();`;

let uplotAssets: { js: string; css: string } | undefined;
function uplot(): { js: string; css: string } {
  if (!uplotAssets) {
    const js = fs.readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js'), 'utf8');
    const css = fs.readFileSync(require.resolve('uplot/dist/uPlot.min.css'), 'utf8');
    uplotAssets = { js, css };
  }
  return uplotAssets;
}

/** A two-column key/value table, or a table of rows with the same keys. */
export function table(rows: Array<Record<string, unknown>> | Array<[string, unknown]>): string {
  if (!rows.length) return '<p>(none)</p>';
  if (Array.isArray(rows[0])) {
    return `<table>${(rows as Array<[string, unknown]>).map(([k, v]) => `<tr><th>${esc(k)}</th><td>${esc(typeof v === 'object' ? JSON.stringify(v) : v)}</td></tr>`).join('')}</table>`;
  }
  const recs = rows as Array<Record<string, unknown>>;
  const keys = Object.keys(recs[0]);
  const cell = (v: unknown) =>
    esc(typeof v === 'number' ? (Number.isInteger(v) ? v : v.toFixed(4)) : typeof v === 'object' ? JSON.stringify(v) : v);
  return `<table><tr>${keys.map((k) => `<th>${esc(k)}</th>`).join('')}</tr>${recs.map((r) => `<tr>${keys.map((k) => `<td>${cell(r[k])}</td>`).join('')}</tr>`).join('')}</table>`;
}

/** An inline PNG image. */
export function image(png: Uint8Array, alt: string, width?: number): string {
  return `<img alt="${esc(alt)}" ${width ? `width="${width}" ` : ''}src="data:image/png;base64,${Buffer.from(png).toString('base64')}"/>`;
}

/** Writes a self-contained HTML page (atomically); charts carry uPlot (MIT) inline. */
export function writeReport(file: string, title: string, sections: ReportSection[]): void {
  const css =
    'body{font-family:system-ui,sans-serif;max-width:1100px;margin:2em auto;padding:0 1em;color:#222}' +
    'table{border-collapse:collapse;margin:.5em 0}td,th{border:1px solid #ccc;padding:3px 8px;text-align:left;font-size:13px;vertical-align:top}' +
    'th{background:#f3f3f3}h2{border-bottom:1px solid #ddd;padding-bottom:4px}img{margin:2px;image-rendering:pixelated}' +
    '.cmac-chart{display:inline-block;margin:6px 12px 12px 0;vertical-align:top}.cmac-log{font-size:12px;color:#555;user-select:none}' +
    '.cmac-cfg{display:flex;flex-wrap:wrap;gap:0 16px;align-items:flex-start}.cmac-cfg table caption{text-align:left;font-weight:bold;font-size:13px}' +
    '.cmac-cfg td:last-child{font-family:ui-monospace,monospace}';
  const body = sections.map((s) => `<section><h2>${esc(s.title)}</h2>${s.html}</section>`).join('\n');
  const charts = /class="cmac-chart"/.test(body);
  const assets = charts ? uplot() : undefined;
  const head = `<meta charset="utf-8"><title>${esc(title)}</title><style>${assets ? assets.css : ''}${css}</style>`;
  // uPlot and the chart set-up run after the body is parsed; "</script" cannot occur in them.
  const scripts = assets ? `<script>${assets.js.replace(/<\/script/gi, '<\\/script')}</script><script>${chartBoot}</script>` : '';
  writeFileAtomic(file, `<!doctype html><html><head>${head}</head><body><h1>${esc(title)}</h1>\n${body}\n${scripts}\n</body></html>\n`);
}

/**
 * A nested settings object as small tables, one per top-level key (nested
 * keys dotted, arrays inline), side by side: the readable form of a config.
 */
export function settingsTables(obj: Record<string, unknown>): string {
  const flat = (o: unknown, prefix: string, out: Array<[string, unknown]>) => {
    if (o && typeof o === 'object' && !Array.isArray(o) && Object.keys(o).length) {
      for (const [k, v] of Object.entries(o)) flat(v, prefix ? `${prefix}.${k}` : k, out);
    } else out.push([prefix, o]);
    return out;
  };
  const show = (v: unknown) => (v === undefined ? '-' : typeof v === 'string' ? v : JSON.stringify(v));
  const scalars: Array<[string, unknown]> = [];
  const groups: string[] = [];
  for (const [k, v] of Object.entries(obj)) {
    if (v && typeof v === 'object' && !Array.isArray(v) && Object.keys(v).length) {
      const rows = flat(v, '', []);
      groups.push(
        `<table><caption>${esc(k)}</caption>${rows.map(([n, x]) => `<tr><td>${esc(n)}</td><td>${esc(show(x))}</td></tr>`).join('')}</table>`,
      );
    } else scalars.push([k, v]);
  }
  const top = scalars.length
    ? `<table><caption>(top level)</caption>${scalars.map(([n, x]) => `<tr><td>${esc(n)}</td><td>${esc(show(x))}</td></tr>`).join('')}</table>`
    : '';
  return `<div class="cmac-cfg">${top}${groups.join('')}</div>`;
}

/** True when the file exists and holds no reference to an external asset. */
export function isSelfContained(file: string): boolean {
  const html = fs.readFileSync(file, 'utf8');
  return !/(src|href)="(https?:)?\/\//i.test(html);
}
