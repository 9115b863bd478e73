// The synthetic sounding-objects dataset: class definitions, determinism,
// ground truth against the rendered (and the encoded, decoded) pixels and
// sound, large-object mode, the written files and the `cmac synth` command.
import { expect } from 'chai';
import { Command, CommanderError } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { registerSynth } from '../lib/cli/synth';
import { decodeClip, hzToMel, melBins, melCentres, probe, renderClip, synthClasses, synthesize, type SynthClipTruth } from '../lib/data';
import { tmpDir } from './helpers';

/** Power spectrum of the first 2^k samples (radix-2 FFT, Hann window). */
function powerSpectrum(x: Float32Array, sr: number): { freqs: Float64Array; power: Float64Array } {
  let n = 1;
  while (n * 2 <= x.length) n *= 2;
  const re = new Float64Array(n);
  const im = new Float64Array(n);
  for (let i = 0; i < n; i++) re[i] = x[i] * (0.5 - 0.5 * Math.cos((2 * Math.PI * i) / n));
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
    for (let i = 0; i < n; i += len) {
      for (let k = 0; k < len / 2; k++) {
        const wr = Math.cos(ang * k);
        const wi = Math.sin(ang * k);
        const a = i + k;
        const b = a + len / 2;
        const tr = re[b] * wr - im[b] * wi;
        const ti = re[b] * wi + im[b] * wr;
        re[b] = re[a] - tr;
        im[b] = im[a] - ti;
        re[a] += tr;
        im[a] += ti;
      }
    }
  }
  const power = new Float64Array(n / 2);
  const freqs = new Float64Array(n / 2);
  for (let i = 0; i < n / 2; i++) {
    power[i] = re[i] * re[i] + im[i] * im[i];
    freqs[i] = (i * sr) / n;
  }
  return { freqs, power };
}

function peakHz(x: Float32Array, sr: number): number {
  const { freqs, power } = powerSpectrum(x, sr);
  let best = 1;
  for (let i = 2; i < power.length; i++) if (power[i] > power[best]) best = i;
  return freqs[best];
}

function corr(a: number[], b: number[]): number {
  const n = a.length;
  const ma = a.reduce((s, v) => s + v, 0) / n;
  const mb = b.reduce((s, v) => s + v, 0) / n;
  let sab = 0;
  let saa = 0;
  let sbb = 0;
  for (let i = 0; i < n; i++) {
    sab += (a[i] - ma) * (b[i] - mb);
    saa += (a[i] - ma) ** 2;
    sbb += (b[i] - mb) ** 2;
  }
  return sab / Math.sqrt(saa * sbb);
}

/** Pixels of frame f exactly equal to `c`, inside and outside box. */
function colourCounts(frames: Uint8Array, S: number, f: number, c: number[], box: number[]): { inside: number; outside: number } {
  let inside = 0;
  let outside = 0;
  const base = f * S * S * 3;
  for (let y = 0; y < S; y++)
    for (let x = 0; x < S; x++) {
      const k = base + (y * S + x) * 3;
      if (frames[k] === c[0] && frames[k + 1] === c[1] && frames[k + 2] === c[2]) {
        if (x >= box[0] && x < box[2] && y >= box[1] && y < box[3]) inside++;
        else outside++;
      }
    }
  return { inside, outside };
}

function listFiles(dir: string, ext: string): string[] {
  const out: string[] = [];
  const walk = (d: string): void => {
    for (const e of fs.readdirSync(d, { withFileTypes: true }).sort((a, b) => a.name.localeCompare(b.name))) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (p.endsWith(ext)) out.push(p);
    }
  };
  walk(dir);
  return out;
}

describe('synthetic dataset', function () {
  this.timeout(120000);
  const root = tmpDir('cmac-synth-');

  it('defines K classes with distinct looks and non-overlapping bands in 150 Hz .. 7 kHz', () => {
    const cls = synthClasses(8);
    expect(cls).to.have.length(8);
    expect(new Set(cls.map((c) => c.shape)).size).to.equal(8);
    expect(new Set(cls.map((c) => c.colour.join())).size).to.equal(8);
    expect(new Set(cls.map((c) => c.name)).size).to.equal(8);
    expect(cls[0].band.lo).to.be.at.least(150);
    expect(cls[7].band.hi).to.be.at.most(7000);
    for (let i = 0; i < cls.length; i++) {
      const c = cls[i];
      if (i > 0) expect(c.band.lo).to.be.greaterThan(cls[i - 1].band.hi);
      expect(c.partials.length).to.be.at.least(3);
      for (const p of c.partials) expect(p).to.be.within(c.band.lo, c.band.hi);
      expect(c.amRate).to.be.within(1, 3.5);
      for (const [n, range] of [
        [128, c.mel['128']],
        [64, c.mel['64']],
      ] as const) {
        expect(range[0]).to.be.at.most(range[1]);
        expect(range[0]).to.be.at.least(0);
        expect(range[1]).to.be.below(n);
        const centres = melCentres(n);
        // Every bin in the range has its centre in the band (or it is the single nearest bin).
        if (range[1] > range[0]) for (let b = range[0]; b <= range[1]; b++) expect(centres[b]).to.be.within(c.band.lo, c.band.hi);
      }
      if (i > 0) expect(c.mel['128'][0]).to.be.greaterThan(cls[i - 1].mel['128'][1]);
    }
    expect(hzToMel(1000)).to.be.closeTo(1000, 0.1);
    expect(melBins(150, 160, 64)[0]).to.equal(melBins(150, 160, 64)[1]);
    expect(synthClasses(24)).to.have.length(24);
    expect(() => synthClasses(25)).to.throw(RangeError);
  });

  it('renders with fewer classes than objects per clip (1 or 2 classes): never more objects than classes', () => {
    for (const classes of [1, 2]) {
      for (let i = 0; i < 12; i++) {
        const r = renderClip(7, i, { size: 32, seconds: 1, fps: 4, classes });
        expect(r.truth.objects.length).to.be.within(1, classes);
        expect(new Set(r.truth.objects.map((o) => o.class)).size).to.equal(r.truth.objects.length);
      }
    }
  });

  it('renders the same bytes for the same seed and different ones for another', () => {
    const opts = { size: 48, seconds: 2, fps: 8 };
    const a = renderClip(5, 3, opts);
    const b = renderClip(5, 3, opts);
    const c = renderClip(6, 3, opts);
    expect(a.frames.length).to.equal(16 * 48 * 48 * 3);
    expect(a.audio.length).to.equal(32000);
    expect(Buffer.from(a.frames).equals(Buffer.from(b.frames))).to.equal(true);
    expect(Buffer.from(a.audio.buffer).equals(Buffer.from(b.audio.buffer))).to.equal(true);
    expect(JSON.stringify(a.truth)).to.equal(JSON.stringify(b.truth));
    expect(Buffer.from(a.frames).equals(Buffer.from(c.frames))).to.equal(false);
  });

  it('ground-truth boxes match the rendered pixels, and pulses follow the sound envelope', () => {
    const S = 64;
    let checked = 0;
    let pulses = 0;
    for (let i = 0; i < 16; i++) {
      const { frames, truth } = renderClip(9, i, { size: S, seconds: 2, fps: 16 });
      expect(truth.objects.length).to.be.within(1, 3);
      const sounding = truth.objects.filter((o) => o.sounding);
      expect(sounding.length).to.be.within(1, 2);
      expect(truth.objects.filter((o) => o.dominant)).to.have.length(1);
      const dom = truth.objects[truth.objects.length - 1];
      expect(dom.dominant).to.equal(true);
      expect(truth.label).to.equal(dom.class);
      for (let f = 0; f < truth.frames; f += 5) {
        truth.objects.forEach((o, k) => {
          const box = o.boxes[f]!;
          expect(box[2]).to.be.greaterThan(box[0]);
          expect(o.boxesNorm[f]![2]).to.be.closeTo(box[2] / S, 1e-4);
          const { inside, outside } = colourCounts(frames, S, f, o.colour, box);
          expect(outside, `clip ${i} frame ${f} ${o.className}: its colour outside its box`).to.equal(0);
          if (k === truth.objects.length - 1) {
            // Drawn last, never occluded: the shape fills a good part of its box.
            const area = (box[2] - box[0]) * (box[3] - box[1]);
            expect(inside / area, `clip ${i} frame ${f} ${o.className}`).to.be.greaterThan(0.3);
            checked++;
          }
        });
      }
      for (const o of sounding) {
        const areas = o.boxes.map((b) => (b![2] - b![0]) * (b![3] - b![1]));
        expect(corr(areas, o.envelope)).to.be.greaterThan(0.8);
        pulses++;
      }
    }
    expect(checked).to.be.greaterThan(40);
    expect(pulses).to.be.at.least(16);
    // Brightness pulse: the object's mean level follows the envelope instead.
    const { frames, truth } = renderClip(2, 0, { size: S, seconds: 2, fps: 16, pulse: 'brightness', objects: [1, 1] });
    const o = truth.objects[0];
    const level = o.boxes.map((b, f) => {
      const cx = Math.floor((b![0] + b![2]) / 2);
      const cy = Math.floor((b![1] + b![3]) / 2);
      let best = 0;
      for (let dy = -1; dy <= 1; dy++)
        for (let dx = -1; dx <= 1; dx++) {
          const k = (f * S * S + (cy + dy) * S + cx + dx) * 3;
          best = Math.max(best, frames[k] + frames[k + 1] + frames[k + 2]);
        }
      return best;
    });
    if (o.shape !== 'ring') expect(corr(level, o.envelope)).to.be.greaterThan(0.9);
  });

  it("puts each sound's spectral peak in its class band", () => {
    const seen = new Set<number>();
    for (let i = 0; i < 12; i++) {
      const { audio, truth } = renderClip(21, i, { seconds: 2, objects: [1, 1], noise: 0.02 });
      const o = truth.objects[0];
      const f = peakHz(audio, 16000);
      expect(f, `${o.className} band ${o.band.lo}-${o.band.hi}`).to.be.within(o.band.lo - 2, o.band.hi + 2);
      const mel = melCentres(128);
      let bin = 0;
      for (let b = 1; b < 128; b++) if (Math.abs(mel[b] - f) < Math.abs(mel[bin] - f)) bin = b;
      expect(bin).to.be.within(o.mel['128'][0] - 1, o.mel['128'][1] + 1);
      seen.add(o.class);
    }
    expect(seen.size).to.be.at.least(5);
  });

  it('large-object mode: the sounding object covers 25-50% of the frame', () => {
    const S = 64;
    for (let i = 0; i < 8; i++) {
      const { truth } = renderClip(4, i, { size: S, seconds: 2, fps: 8, largeObjects: true });
      const s = truth.objects.filter((o) => o.sounding);
      expect(s).to.have.length(1);
      for (const b of s[0].boxes) {
        const share = ((b![2] - b![0]) * (b![3] - b![1])) / (S * S);
        expect(share, `clip ${i} ${s[0].shape}`).to.be.within(0.24, 0.52);
      }
    }
  });

  it('writes mp4 + JSON + manifest, byte-identical JSON for the same seed, decodable with matching ground truth', async () => {
    const opts = { clips: 6, seed: 13, size: 64, seconds: 2, fps: 8, objects: [1, 2] as [number, number] };
    const a = path.join(root, 'a');
    const b = path.join(root, 'b');
    const ra = await synthesize({ ...opts, out: a });
    await synthesize({ ...opts, out: b, jobs: 1, clipsPerProcess: 4 });
    expect(ra.clips).to.equal(6);
    expect(ra.counts.train + ra.counts.val + ra.counts.test).to.equal(6);
    const ja = listFiles(a, '.json').concat(listFiles(a, '.jsonl'));
    const jb = listFiles(b, '.json').concat(listFiles(b, '.jsonl'));
    expect(ja.map((f) => path.relative(a, f))).to.deep.equal(jb.map((f) => path.relative(b, f)));
    expect(ja.length).to.equal(6 + 3);
    for (let i = 0; i < ja.length; i++) expect(fs.readFileSync(ja[i]).equals(fs.readFileSync(jb[i])), ja[i]).to.equal(true);
    const lines = fs
      .readFileSync(path.join(a, 'manifest.jsonl'), 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l));
    expect(lines).to.have.length(6);
    for (const row of lines) {
      const gt = JSON.parse(fs.readFileSync(path.join(a, row.gt), 'utf8')) as SynthClipTruth;
      expect(row.label).to.equal(gt.label);
      expect(row.path).to.equal(`${gt.split}/${gt.id}.mp4`);
      const file = path.join(a, row.path);
      const info = await probe(file);
      expect(info.video).to.include({ codec: 'h264', width: 64, height: 64 });
      expect(info.video!.fps).to.be.closeTo(8, 0.01);
      expect(info.audio).to.include({ codec: 'aac', sampleRate: 16000, channels: 1 });
      expect(info.duration).to.be.closeTo(2, 0.1);
      // Decode every frame at the native rate: the dominant object is where the ground truth says.
      const d = await decodeClip(file, info, {
        start: 0,
        frames: 16,
        fps: 8,
        width: 64,
        height: 64,
        crop: { x: 0, y: 0, w: 64, h: 64 },
        audio: { start: 0, samples: 32000, sampleRate: 16000 },
      });
      const dom = gt.objects[gt.objects.length - 1];
      for (const f of [0, 7, 15]) {
        const box = dom.boxes[f]!;
        let near = 0;
        let area = 0;
        for (let y = box[1]; y < box[3]; y++)
          for (let x = box[0]; x < box[2]; x++) {
            const k = ((f * 64 + y) * 64 + x) * 3;
            area++;
            if (
              Math.abs(d.video[k] - dom.colour[0]) + Math.abs(d.video[k + 1] - dom.colour[1]) + Math.abs(d.video[k + 2] - dom.colour[2]) <
              90
            )
              near++;
          }
        expect(near / area, `${row.path} frame ${f} ${dom.className}`).to.be.greaterThan(0.25);
      }
      // The decoded (AAC) sound has its strongest energy in a sounding object's band.
      const fpk = peakHz(d.audio!, 16000);
      const bands = gt.objects.filter((o) => o.sounding).map((o) => o.band);
      expect(
        bands.some((bd) => fpk >= bd.lo - 3 && fpk <= bd.hi + 3),
        `${row.path}: peak ${fpk} Hz not in ${JSON.stringify(bands)}`,
      ).to.equal(true);
    }
    const classes = JSON.parse(fs.readFileSync(path.join(a, 'classes.json'), 'utf8'));
    expect(classes.classes).to.have.length(8);
  });

  it('cmac synth writes the dataset and rejects bad options', async () => {
    const out = path.join(root, 'cli');
    const program = new Command('cmac').exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    registerSynth(program);
    const write = process.stdout.write.bind(process.stdout);
    let printed = '';
    process.stdout.write = ((s: string) => {
      printed += s;
      return true;
    }) as typeof process.stdout.write;
    try {
      await program.parseAsync([
        'node',
        'cmac',
        'synth',
        '--out',
        out,
        '--clips',
        '3',
        '--seed',
        '2',
        '--size',
        '32',
        '--seconds',
        '1',
        '--fps',
        '8',
        '--large-objects',
        '--quiet',
      ]);
    } finally {
      process.stdout.write = write;
    }
    expect(printed).to.match(/^wrote 3 clips \(train \d, val \d, test \d\) to /);
    expect(fs.readFileSync(path.join(out, 'manifest.jsonl'), 'utf8').trim().split('\n')).to.have.length(3);
    const cfg = JSON.parse(fs.readFileSync(path.join(out, 'synth.json'), 'utf8'));
    expect(cfg).to.include({ seed: 2, clips: 3, size: 32, largeObjects: true, fps: 8, seconds: 1 });
    const bad = new Command('cmac').exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
    registerSynth(bad);
    let err: unknown;
    try {
      await bad.parseAsync(['node', 'cmac', 'synth', '--out', out, '--classes', '30']);
    } catch (e) {
      err = e;
    }
    expect(err).to.be.instanceOf(CommanderError);
    expect((err as CommanderError).message).to.match(/--classes must be an integer in 1\.\.24/);
  });
});
