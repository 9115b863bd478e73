// Visualisation: the PNG encoder (checked by ffmpeg as an independent
// decoder), colour maps, overlays, the display log-mel, PCA and the report
// sections.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { runFfmpeg, melCentres } from '../lib/data';
import {
  colormap,
  crc32,
  decodePng,
  encodePng,
  evaluationSections,
  fft,
  frequencyPicture,
  heatmap,
  logMel,
  overlay,
  pca,
  scatterSvg,
  localizationPanel,
} from '../lib/viz';
import type { ModelOutputs } from '../lib/eval';
import { tmpDir } from './helpers';

describe('viz: PNG and pictures', function () {
  this.timeout(60000);

  it('CRC-32 matches the PNG reference value', () => {
    expect(crc32(Buffer.from('IEND', 'latin1'))).to.equal(0xae426082);
    expect(crc32(Buffer.from('123456789', 'latin1'))).to.equal(0xcbf43926);
  });

  it('encodes RGB and RGBA that round-trip, and ffmpeg decodes to the same pixels', async () => {
    const w = 37,
      h = 23;
    const rgb = new Uint8Array(w * h * 3).map((_, i) => (i * 37 + (i >> 5)) & 0xff);
    const png = encodePng({ width: w, height: h, channels: 3, data: rgb });
    expect(Array.from(png.subarray(0, 8))).to.deep.equal([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
    expect(Buffer.from(decodePng(png).data).equals(Buffer.from(rgb))).to.equal(true);
    const rgba = new Uint8Array(w * h * 4).map((_, i) => (i * 11) & 0xff);
    const d4 = decodePng(encodePng({ width: w, height: h, channels: 4, data: rgba }));
    expect(d4.channels).to.equal(4);
    expect(Buffer.from(d4.data).equals(Buffer.from(rgba))).to.equal(true);
    const file = path.join(tmpDir('cmac-png-'), 'x.png');
    fs.writeFileSync(file, png);
    const { stdout } = await runFfmpeg(['-i', file, '-f', 'rawvideo', '-pix_fmt', 'rgb24', 'pipe:1']);
    expect(stdout.equals(Buffer.from(rgb))).to.equal(true);
    expect(() => encodePng({ width: 2, height: 2, channels: 3, data: new Uint8Array(5) })).to.throw(/expected 12 bytes/);
  });

  it('colour maps run from dark/blue to bright/red; heat maps and overlays have the asked size', () => {
    expect(colormap('jet', 0)).to.deep.equal([0, 0, 128]);
    expect(colormap('jet', 1)).to.deep.equal([128, 0, 0]);
    expect(colormap('inferno', 0)).to.deep.equal([0, 0, 4]);
    expect(colormap('inferno', 1)).to.deep.equal([252, 255, 164]);
    const map = new Float32Array(64);
    map[9] = 1; // row 1, column 1 of an 8 x 8 map
    const hm = heatmap(map, 8, 8, 224);
    expect([hm.width, hm.height]).to.deep.equal([224, 224]);
    // The hottest pixels are around the centre of cell (1, 1): (1.5 * 28, 1.5 * 28) = (42, 42): jet(1) = dark red; far away: jet(0) = dark blue.
    const px = (x: number, y: number) => Array.from(hm.data.subarray((y * 224 + x) * 3, (y * 224 + x) * 3 + 3));
    const hot = px(42, 42);
    expect(hot[0]).to.be.within(120, 136);
    expect(hot[1] + hot[2]).to.equal(0);
    expect(px(200, 200)).to.deep.equal([0, 0, 128]);
    // Rows are y, columns x: cell (row 1, column 5) lands at x = 5.5 * 28 = 154, y = 42 (not transposed).
    const asym = new Float32Array(64);
    asym[1 * 8 + 5] = 1;
    const ha = heatmap(asym, 8, 8, 224);
    expect(ha.data[(42 * 224 + 154) * 3]).to.be.within(120, 136);
    expect(Array.from(ha.data.subarray((154 * 224 + 42) * 3, (154 * 224 + 42) * 3 + 3))).to.deep.equal([0, 0, 128]);
    const frame = { width: 64, height: 64, channels: 3 as const, data: new Uint8Array(64 * 64 * 3).fill(100) };
    const ov = overlay(frame, map, 8, 8, { size: 160, boxes: [[0, 0, 112, 112]] });
    expect([ov.width, ov.height, ov.data.length]).to.deep.equal([160, 160, 160 * 160 * 3]);
    expect(Array.from(ov.data.subarray(0, 3))).to.deep.equal([255, 255, 255]); // box outline at the corner
    const panel = localizationPanel(frame, { alphaV: map, betaV: map }, 8, 8, [[0, 0, 50, 50]], 100);
    expect(panel.height).to.equal(100 + 15); // a title strip over each panel
    expect(panel.width).to.be.greaterThan(3 * 100 + 3 * 4 + 12); // three panels and the colour bar with its labels
  });

  it('FFT of an impulse is flat; the display log-mel of a 1 kHz tone peaks at the mel bin centred nearest 1 kHz', () => {
    const re = new Float64Array(8),
      im = new Float64Array(8);
    re[0] = 1;
    fft(re, im);
    expect(Array.from(re)).to.deep.equal(new Array(8).fill(1));
    const sr = 16000;
    const pcm = new Float32Array(32000).map((_, i) => 0.5 * Math.sin((2 * Math.PI * 1000 * i) / sr));
    const spec = logMel(pcm, { nMels: 64 });
    expect(spec.frames).to.equal(201);
    const t = 100;
    let arg = 0;
    for (let m = 1; m < 64; m++) if (spec.data[m * spec.frames + t] > spec.data[arg * spec.frames + t]) arg = m;
    const c = melCentres(64);
    const nearest = c.reduce((b, f, i) => (Math.abs(f - 1000) < Math.abs(c[b] - 1000) ? i : b), 0);
    expect(Math.abs(arg - nearest)).to.be.at.most(1);
    const pic = frequencyPicture(pcm, { nMels: 64, maps: { a: [0, 0, 1, 0, 0, 0, 0, 0], b: new Array(8).fill(1) }, gtBands: [2] });
    expect(pic.height).to.equal(64 * 3 + 14); // with the title strip
    expect(pic.width).to.equal(201 * 2 + 2 * (64 + 14) + 4);
  });

  it('PCA finds the direction of a line; the scatter is inline SVG', () => {
    const n = 20,
      d = 3;
    const x = new Float64Array(n * d);
    for (let i = 0; i < n; i++) {
      x[i * d] = i;
      x[i * d + 1] = 2 * i;
      x[i * d + 2] = 5;
    }
    const p = pca(x, n, d, 2);
    const c = p.components[0];
    expect(Math.abs(c[0] - 1 / Math.sqrt(5))).to.be.lessThan(1e-6);
    expect(Math.abs(c[1] - 2 / Math.sqrt(5))).to.be.lessThan(1e-6);
    expect(p.variance[0] / p.totalVariance).to.be.closeTo(1, 1e-9);
    const svg = scatterSvg(
      p.points,
      Int32Array.from({ length: n }, (_, i) => i % 2),
      { classes: ['even', 'odd'] },
    );
    expect(svg.startsWith('<svg')).to.equal(true);
    expect(svg.match(/<circle class="dot"/g)!.length).to.equal(n);
    expect(svg.match(/<circle class="key"/g)!.length).to.equal(2);
  });

  it('evaluation sections: tables, overlays, frequency maps and a PCA scatter, all inline', () => {
    const n = 4;
    const out: ModelOutputs = {
      clips: Array.from({ length: n }, (_, i) => ({ id: `/d/test/clip-${i}.mp4`, index: i, clip: 0, start: 0, label: i % 2 })),
      zV: { data: new Float32Array(n * 4).map((_, i) => Math.sin(i)), shape: [4] },
      zA: { data: new Float32Array(n * 4).map((_, i) => Math.cos(i)), shape: [4] },
      alphaV: { data: new Float32Array(n * 4).fill(0.25), shape: [2, 2] },
      betaV: { data: new Float32Array(n * 4).map((_, i) => (i % 4 === 0 ? 1 : 0)), shape: [2, 2] },
      alphaA: { data: new Float32Array(n * 8).fill(0.125), shape: [8] },
      betaA: { data: new Float32Array(n * 8).fill(0.125), shape: [8] },
      frames: Array.from({ length: n }, () => new Uint8Array(16 * 16 * 3).fill(90)),
      frameSize: 16,
      audio: Array.from({ length: n }, () => new Float32Array(4000)),
      sampleRate: 16000,
    };
    const score = { ciou: 0.5, pointing: 1, mass: 0.5, area: 0.25 };
    const summary = { n, ciou50: 1, auc: 0.5, meanCiou: 0.5, pointing: 1, mass: 0.5, chance: 0.25 };
    const per = out.clips.map((c, i) => ({ i, id: c.id, score }));
    const fsum = { n, mass: 0.25, pointing: 0.25, chance: 0.25 };
    const secs = evaluationSections(
      {
        localization: { alphaV: summary, betaV: summary, uniform: summary, perClip: { alphaV: per, betaV: per }, unscored: 0 },
        frequency: {
          alphaA: fsum,
          betaA: fsum,
          nMels: 64,
          bands: 8,
          unscored: 0,
          perClip: out.clips.map((c, i) => ({ i, id: c.id, bands: [1], alphaA: { mass: 0.1, pointing: 0, chance: 0.125 } })),
        },
        retrieval: {
          audioToVideo: { n, recall: { 1: 0.5, 5: 1, 10: 1 }, medianRank: 1.5, chance: { 1: 0.25, 5: 1, 10: 1 } },
          videoToAudio: { n, recall: { 1: 0.25, 5: 1, 10: 1 }, medianRank: 2, chance: { 1: 0.25, 5: 1, 10: 1 } },
        },
      },
      { outputs: out, gtOf: () => ({ boxes: [[0, 0, 112, 112]], consensus: false }), classes: ['a', 'b'], examples: 2 },
    );
    expect(secs.map((s) => s.title)).to.deep.equal(['Evaluation', 'Localisation examples', 'Frequency maps', 'Embeddings']);
    const html = secs.map((s) => s.html).join('');
    expect(html).to.include('cIoU@0.5').and.include('data:image/png;base64,').and.include('<svg');
    expect(html).to.not.match(/(src|href)="(https?:)?\/\//);
  });
});
