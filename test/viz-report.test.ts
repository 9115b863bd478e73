// What report.html and the pictures show (issue 15 item 4), checked on their
// structure and pixels: one chart per loss term drawn by an inlined charting
// library, a readable configuration, no "{}" for skipped samples, a PCA
// scatter whose legend matches its dots and keeps edge points inside, and
// titled pictures with a colour bar and time stamps.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { resolveConfig } from '../lib/config';
import { lineChart, writeReport } from '../lib/report';
import { writeTrainingReport } from '../lib/train/report';
import {
  colormap,
  colourBar,
  frequencyPicture,
  frequencyTimeline,
  localizationPanel,
  pca,
  scatterSvg,
  textSize,
  titled,
  blank,
} from '../lib/viz';
import type { RgbImage } from '../lib/viz';
import { overlayFrame } from '../lib/viz/localize';
import { tmpDir } from './helpers';

function metricsFile(dir: string, steps = 12): string {
  const f = path.join(dir, 'metrics.jsonl');
  const rows = Array.from({ length: steps }, (_, step) =>
    JSON.stringify({
      step,
      epoch: 0,
      loss: 8 / (step + 1) + 0.03,
      lossCon: 8 / (step + 1),
      lossV: 0.02 + 0.001 * step,
      lossA: 0.01,
      retrievalAcc: 0,
      lr: 1e-3,
      lambdaScale: 1,
      rampStart: 0,
      gradNorm: 1000 / (step + 1),
      stepMs: 10,
      dataMs: 1,
      clipsPerSec: 4,
      skippedSamples: 0,
      finite: true,
      stepped: true,
    }),
  );
  fs.writeFileSync(f, rows.join('\n') + '\n');
  return f;
}

/** The chart specs lineChart embedded in the page. */
function chartSpecs(html: string): Array<{ title: string; series: Array<{ name: string }>; data: number[][]; logY: boolean }> {
  return [...html.matchAll(/<div class="cmac-chart"><script type="application\/json">(.*?)<\/script><\/div>/g)].map((m) =>
    JSON.parse(m[1]),
  );
}

describe('viz: report.html and labelled pictures', () => {
  it('training report: one chart per loss term, grad norm on a log scale, uPlot inlined, no external asset', () => {
    const dir = tmpDir('cmac-report-');
    const file = path.join(dir, 'report.html');
    const cfg = resolveConfig({ preset: 'tiny' });
    writeTrainingReport(file, cfg, metricsFile(dir), { clips: 24, batches: 6, skipped: {}, decodes: 24, peakBytes: 1 << 20 } as never);
    const html = fs.readFileSync(file, 'utf8');
    const specs = chartSpecs(html);
    const titles = specs.map((s) => s.title);
    for (const t of ['total loss', 'L_con', 'L_v', 'L_a', 'gradient norm', 'learning rate'])
      expect(
        titles.some((x) => x.startsWith(t)),
        t,
      ).to.equal(true);
    for (const s of specs) expect(s.series.length).to.equal(1); // each term on its own axis
    const lv = specs.find((s) => s.title.startsWith('L_v'))!;
    expect(lv.data[1]).to.have.length(12);
    expect(lv.data[1][11]).to.be.closeTo(0.031, 1e-9);
    expect(specs.find((s) => s.title.startsWith('gradient norm'))!.logY).to.equal(true);
    expect(html).to.include('uPlot'); // the library itself, inline
    expect(html).to.not.match(/(src|href)="(https?:)?\/\//i);
    expect(html).to.not.include('<pre>{'); // config as tables, not a JSON dump
    expect(html).to.match(/<caption>optim<\/caption>.*<td>lr<\/td><td>0\.001<\/td>/s);
    expect(html).to.match(/<th>skipped<\/th><td>none<\/td>/);
    expect(html).to.not.include('<td>{}</td>');
  });

  it('skipped samples are listed by reason', () => {
    const dir = tmpDir('cmac-report-');
    const file = path.join(dir, 'report.html');
    writeTrainingReport(file, resolveConfig({ preset: 'tiny' }), metricsFile(dir), {
      clips: 24,
      batches: 6,
      skipped: { too_short: 2, no_audio: 1 },
      decodes: 24,
      peakBytes: 1,
    } as never);
    expect(fs.readFileSync(file, 'utf8')).to.match(/<th>skipped<\/th><td>too_short: 2, no_audio: 1<\/td>/);
  });

  it('a page without charts carries no script; "</script" in a title cannot end the chart data', () => {
    const dir = tmpDir('cmac-report-');
    writeReport(path.join(dir, 'a.html'), 't', [{ title: 's', html: '<p>x</p>' }]);
    expect(fs.readFileSync(path.join(dir, 'a.html'), 'utf8')).to.not.include('<script');
    const c = lineChart(
      [
        {
          name: '</script><b>',
          points: [
            [0, 1],
            [1, 2],
          ],
        },
      ],
      { title: '</script>' },
    );
    expect(c.match(/<\/script>/g)).to.have.length(1);
    expect(lineChart([{ name: 'x', points: [[0, NaN]] }], { title: 'empty' })).to.equal('<p>empty: (no data)</p>');
  });

  it("PCA scatter: legend colours are the dots' colours (also past 10 classes), edge points inside the frame", () => {
    const n = 60,
      classes = 14;
    const x = Float64Array.from({ length: n * 3 }, (_, i) => Math.sin(i * 1.7) * (1 + (i % 5)));
    const p = pca(x, n, 3, 2);
    const labels = Int32Array.from({ length: n }, (_, i) => (i === 0 ? -1 : i % classes));
    const svg = scatterSvg(p.points, labels, { classes: Array.from({ length: classes }, (_, c) => `c${c}`) });
    const dots = [...svg.matchAll(/<circle class="dot" cx="([\d.]+)" cy="([\d.]+)" r="([\d.]+)" fill="([^"]+)" data-label="(-?\d+)"/g)];
    expect(dots).to.have.length(n);
    const legend = new Map(
      [...svg.matchAll(/<circle class="key" [^>]*fill="([^"]+)" data-label="(-?\d+)"/g)].map((m) => [Number(m[2]), m[1]]),
    );
    expect(legend.size).to.equal(classes + 1);
    for (const d of dots) expect(legend.get(Number(d[5])), `class ${d[5]}`).to.equal(d[4]);
    expect(new Set(legend.values()).size).to.equal(classes + 1); // distinct colours, no cycling
    const frame = svg
      .match(/<rect class="plot" x="([\d.]+)" y="([\d.]+)" width="([\d.]+)" height="([\d.]+)"/)!
      .slice(1)
      .map(Number);
    for (const d of dots) {
      const [cx, cy, r] = [Number(d[1]), Number(d[2]), Number(d[3])];
      expect(cx - r).to.be.at.least(frame[0]);
      expect(cx + r).to.be.at.most(frame[0] + frame[2]);
      expect(cy - r).to.be.at.least(frame[1]);
      expect(cy + r).to.be.at.most(frame[1] + frame[3]);
    }
  });

  it('localisation panel: a title over each panel and a jet colour bar from min (bottom) to max (top)', () => {
    const frame = { width: 64, height: 64, channels: 3 as const, data: new Uint8Array(64 * 64 * 3).fill(100) };
    const map = Float32Array.from({ length: 64 }, (_, i) => i);
    const size = 100;
    const panel = localizationPanel(frame, { alphaV: map, betaV: map }, 8, 8, [[0, 0, 50, 50]], size);
    const strip = panel.height - size;
    expect(strip).to.be.within(10, 20);
    const inked = (x0: number, x1: number, y0: number, y1: number) => {
      let k = 0;
      for (let y = y0; y < y1; y++) for (let x = x0; x < x1; x++) if (panel.data[(y * panel.width + x) * 3] < 128) k++;
      return k;
    };
    for (let i = 0; i < 3; i++) expect(inked(i * (size + 4), i * (size + 4) + size, 0, strip), `title of panel ${i}`).to.be.greaterThan(10);
    const barX = 3 * (size + 4) + 2;
    const px = (x: number, y: number) => Array.from(panel.data.subarray((y * panel.width + x) * 3, (y * panel.width + x) * 3 + 3));
    expect(px(barX, strip)).to.deep.equal(colormap('jet', 1));
    expect(px(barX, panel.height - 1)).to.deep.equal(colormap('jet', 0));
    expect(inked(barX + 14, panel.width, strip, strip + 9)).to.be.greaterThan(5); // "max"
  });

  it('localize overlay frame: titles, colour bar, a time stamp, even width and height', () => {
    const frame = { width: 96, height: 96, channels: 3 as const, data: new Uint8Array(96 * 96 * 3).fill(90) };
    const map = Float32Array.from({ length: 16 }, (_, i) => i);
    const a = overlayFrame(frame, { alphaV: map, betaV: map }, 4, 4, 96, 12.5, 'clip 4/9, frame 2/8');
    const b = overlayFrame(frame, { alphaV: map, betaV: map }, 4, 4, 96, 0, '');
    expect(a.width % 2).to.equal(0);
    expect(a.height % 2).to.equal(0);
    expect([a.width, a.height]).to.deep.equal([b.width, b.height]); // every frame of a video the same size
    // The time stamp row differs between two times; the pictures above it do not.
    const rowsDiffer = (y0: number, y1: number) =>
      !Buffer.from(a.data.subarray(y0 * a.width * 3, y1 * a.width * 3)).equals(
        Buffer.from(b.data.subarray(y0 * b.width * 3, y1 * b.width * 3)),
      );
    expect(rowsDiffer(0, a.height - 16)).to.equal(false);
    expect(rowsDiffer(a.height - 16, a.height)).to.equal(true);
    const one = overlayFrame(frame, { betaV: map }, 4, 4, 96, 1);
    expect(one.width).to.be.lessThan(a.width - 96);
  });

  it('frequency pictures: titles, a Hz axis, a time axis in seconds and colour bars', () => {
    const sr = 16000;
    const pcm = Float32Array.from({ length: 3 * sr }, (_, i) => 0.3 * Math.sin((2 * Math.PI * 700 * i) / sr));
    const ink = (img: RgbImage, x0: number, x1: number, y0: number, y1: number) => {
      let k = 0;
      for (let y = y0; y < y1; y++)
        for (let x = x0; x < x1; x++) if (img.data[(y * img.width + x) * 3] < 100 && img.data[(y * img.width + x) * 3 + 2] < 100) k++;
      return k;
    };
    const M = 4,
      K = 3;
    const maps = { alpha_a: Float32Array.from({ length: K * M }, (_, i) => i % M), beta_a: Float32Array.from({ length: K * M }, () => 1) };
    const tl = frequencyTimeline(pcm, { nMels: 64, maps, bands: M, clipStarts: [0, 1, 2], clipSeconds: 1 });
    const spec = 301,
      H = 128; // frames of 3 s at hop 160; 64 mel rows x 2 px
    expect(tl.width).to.be.greaterThan(spec + 40);
    expect(tl.height).to.be.greaterThan(3 * H + 3 * 14 + 16);
    expect(ink(tl, 0, 38, 14, 14 + H), 'Hz labels').to.be.greaterThan(20);
    expect(ink(tl, 40, 40 + spec, 0, 12), 'title').to.be.greaterThan(20);
    expect(ink(tl, 40, 40 + spec, tl.height - 20, tl.height), 'time axis').to.be.greaterThan(40);
    const pic = frequencyPicture(pcm.subarray(0, sr), { nMels: 64, maps: { alpha_a: [1, 2, 3, 4], beta_a: [4, 3, 2, 1] } });
    expect(ink(pic, 0, pic.width, 0, 12), 'titles').to.be.greaterThan(20);
  });

  it('text and colour bar helpers', () => {
    expect(textSize('abc').height).to.be.at.least(7);
    expect(textSize('abc', 2).width).to.equal(2 * textSize('abc').width);
    const t = titled(blank(50, 20, [0, 0, 0]), 'x');
    expect([t.width, t.height]).to.deep.equal([50, 35]);
    const bar = colourBar(50, { cmap: 'inferno' });
    expect(Array.from(bar.data.subarray(0, 3))).to.deep.equal(colormap('inferno', 1));
  });
});
