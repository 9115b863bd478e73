// The two published localisation protocols (`--protocol ezvsl | lvs`,
// docs/evaluation.md) against a Python transcription of each
// (scripts/protocol_ref.py: torch F.interpolate align_corners=True for
// EZ-VSL, cv2.resize for LVS, numpy for the rest), run at test time on random
// maps and boxes: identical upsampled maps, masks, cIoU lists, cIoU@0.5, AUC
// and mean cIoU. Then the geometry: boxes normalised to a 16:9 frame land on
// the centre crop the eval loader decodes (a real video made with ffmpeg).
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { Prng, writeTestVideos, manifestSource } from '../lib/data';
import {
  Box,
  clipGtMap,
  evalLoader,
  evaluateLocalization,
  frameGeometries,
  gtMap,
  LocalizationProtocol,
  manifestBoxesOf,
  normalisedToGrid,
  parseFlickrXml,
  protocolMask,
  protocolUpsample,
  scoreMap,
  summariseLocalization,
  clipInfos,
  decodeAll,
  ciou,
  registerBox,
} from '../lib/eval';
import type { ModelOutputs } from '../lib/eval';

const root = path.resolve(__dirname, '..', '..');
const script = path.join(root, 'scripts', 'protocol_ref.py');

interface Case {
  h: number;
  w: number;
  map: Float32Array;
  boxes?: Box[];
  vggss?: number[][];
  flickr?: number[][];
  consensus: boolean;
}

function gaussian(r: Prng): number {
  const u = Math.max(1e-12, r.next());
  return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * r.next());
}

/** Random maps of several kinds (smooth, tied plateaus, constants, probabilities, 224 x 224) and boxes of the three GT formats. */
function makeCases(seed: number, n: number): Case[] {
  const r = new Prng(seed);
  const sizes: Array<[number, number]> = [
    [7, 7],
    [7, 7],
    [7, 7],
    [4, 4],
    [14, 14],
    [7, 5],
    [1, 1],
    [7, 7],
    [3, 3],
    [224, 224],
  ];
  const out: Case[] = [];
  for (let i = 0; i < n; i++) {
    const [h, w] = sizes[i % sizes.length];
    const map = new Float32Array(h * w);
    const kind = Math.floor(i / sizes.length) % 5;
    if (kind === 0) for (let k = 0; k < map.length; k++) map[k] = gaussian(r);
    else if (kind === 1)
      for (let k = 0; k < map.length; k++) map[k] = Math.floor(r.next() * 3); // ties everywhere
    else if (kind === 2) {
      // cosine-like values with one bright region
      const cy = r.next() * h,
        cx = r.next() * w;
      for (let y = 0; y < h; y++)
        for (let x = 0; x < w; x++) map[y * w + x] = Math.tanh(1 - ((y - cy) ** 2 + (x - cx) ** 2) / ((h * w) / 8) + 0.1 * gaussian(r));
    } else if (kind === 3)
      map.fill([-0.3, 0, 0.7, 2][i % 4]); // constant maps (LVS's mask depends on the sign)
    else {
      // probabilities (softmax of logits / 0.1)
      let s = 0;
      for (let k = 0; k < map.length; k++) {
        map[k] = Math.exp(gaussian(r) / 0.5);
        s += map[k];
      }
      for (let k = 0; k < map.length; k++) map[k] /= s;
    }
    const gtKind = i % 3;
    const c: Case = { h, w, map, consensus: gtKind === 2 };
    const nb = 1 + Math.floor(r.next() * (gtKind === 2 ? 3 : 2)) + (gtKind === 2 ? 1 : 0);
    const boxes: number[][] = [];
    for (let b = 0; b < nb; b++) {
      if (gtKind === 0) {
        const x0 = Math.floor(r.next() * 200),
          y0 = Math.floor(r.next() * 200);
        boxes.push([x0, y0, x0 + 1 + Math.floor(r.next() * (224 - x0)), y0 + 1 + Math.floor(r.next() * (224 - y0))]);
      } else if (gtKind === 1) {
        const x0 = r.uniform(-0.1, 0.8),
          y0 = r.uniform(-0.1, 0.8);
        boxes.push([x0, y0, x0 + r.uniform(0.02, 0.6), y0 + r.uniform(0.02, 0.6)]);
      } else {
        const x0 = Math.floor(r.next() * 200),
          y0 = Math.floor(r.next() * 200);
        boxes.push([x0, y0, Math.min(256, x0 + 10 + Math.floor(r.next() * 150)), Math.min(256, y0 + 10 + Math.floor(r.next() * 150))]);
      }
    }
    if (gtKind === 0) c.boxes = boxes as Box[];
    else if (gtKind === 1) c.vggss = boxes;
    else c.flickr = boxes;
    out.push(c);
  }
  return out;
}

/** Our GT map of a case: grid boxes, the VGG-SS JSON reader, or a Flickr XML through the Flickr reader. */
function ourGt(c: Case): Float64Array {
  if (c.boxes) return gtMap(c.boxes, c.consensus);
  if (c.vggss) return gtMap(normalisedToGrid(c.vggss), false);
  const xml = `<annotation>${c.flickr!.map((b) => `<object><bbox><conf>1</conf><xmin>${b[0]}</xmin><ymin>${b[1]}</ymin><xmax>${b[2]}</xmax><ymax>${b[3]}</ymax></bbox></object>`).join('')}</annotation>`;
  return clipGtMap(parseFlickrXml(xml));
}

interface RefResult {
  ciou: Array<number | null>;
  ciou50: number;
  auc: number;
  meanCiou: number | null;
  masks: number[][];
  upsampled: number[][];
}

/** Runs the Python transcription; undefined (with the reason printed) when a module it needs is missing. */
function reference(protocol: LocalizationProtocol, cases: Case[], upsampled: number[]): RefResult | undefined {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cmac-protocol-'));
  try {
    const file = path.join(dir, 'cases.json');
    fs.writeFileSync(
      file,
      JSON.stringify({
        protocol,
        size: 224,
        upsampled,
        cases: cases.map((c) => ({
          h: c.h,
          w: c.w,
          map: Array.from(c.map),
          consensus: c.consensus,
          ...(c.boxes ? { boxes: c.boxes } : c.vggss ? { vggss: c.vggss } : { flickr: c.flickr }),
        })),
      }),
    );
    const r = spawnSync('/usr/bin/python3', [script, file], { encoding: 'utf8', maxBuffer: 1 << 30 });
    if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
      console.log('      skipped: /usr/bin/python3 not found (scripts/setup.sh --python)');
      return undefined;
    }
    if (r.status === 3) {
      console.log(`      skipped: ${r.stderr.trim()} (scripts/setup.sh --python installs python3-torch and python3-opencv)`);
      return undefined;
    }
    if (r.status !== 0) throw new Error(`scripts/protocol_ref.py failed (${r.status}):\n${r.stderr}`);
    return JSON.parse(r.stdout) as RefResult;
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

describe('eval: localisation protocols against their Python transcription', function () {
  this.timeout(300000);
  const cases = makeCases(20260202, 150);
  const shown = [0, 1, 3, 5, 6, 10, 21, 30, 34, 40, 41]; // smooth, tied, 4x4, 7x5, 1x1, constant, probability maps
  for (const protocol of ['ezvsl', 'lvs'] as const) {
    it(`${protocol}: identical upsampled maps, masks, cIoU lists, cIoU@0.5, AUC and mean cIoU on ${cases.length} random maps and boxes`, function () {
      const ref = reference(protocol, cases, shown);
      if (!ref) this.skip();
      shown.forEach((k, j) => {
        const c = cases[k];
        const up = protocolUpsample(c.map, c.h, c.w, protocol);
        const diff = Array.from(up).findIndex((v, i) => v !== ref!.upsampled[j][i]);
        expect(diff, `case ${k} (${c.h}x${c.w}) upsampled value ${diff}: ours ${up[diff]}, reference ${ref!.upsampled[j][diff]}`).to.equal(
          -1,
        );
        const mask = protocolMask(up, protocol);
        const ours: number[] = [];
        mask.forEach((v, i) => {
          if (v) ours.push(i);
        });
        expect(ours, `case ${k} mask`).to.deep.equal(ref!.masks[j]);
      });
      const scores = cases.map((c) => scoreMap(c.map, c.h, c.w, ourGt(c), { protocol }));
      const list = scores.map((s) => (Number.isNaN(s.ciou) ? null : s.ciou));
      expect(list).to.deep.equal(ref!.ciou);
      const sum = summariseLocalization(scores);
      expect(sum.ciou50).to.equal(ref!.ciou50);
      expect(sum.auc).to.equal(ref!.auc);
      expect(Number.isNaN(sum.meanCiou) ? null : sum.meanCiou).to.equal(ref!.meanCiou);
      // Not a trivial agreement: the values spread (most images have their own cIoU).
      expect(new Set(list).size).to.be.greaterThan(cases.length / 2);
    });
  }

  it('the protocols differ where their code differs: >= vs > at the threshold, and the sign of a constant map for LVS', () => {
    // A 224 map equal to a box over a quarter of the frame: sorted[n / 2] is 0.
    const box: Box = [0, 0, 112, 112];
    const m = new Float32Array(224 * 224);
    for (let y = 0; y < 112; y++) for (let x = 0; x < 112; x++) m[y * 224 + x] = 1;
    const gt = gtMap([box], false);
    expect(scoreMap(m, 224, 224, gt, { protocol: 'ezvsl' }).ciou).to.equal(0.25); // mask = map >= 0: the whole frame
    expect(scoreMap(m, 224, 224, gt, { protocol: 'lvs' }).ciou).to.equal(1); // mask = pred > 0: the box
    // A constant map (at 224: no resize; upsampled, float32 weights make it
    // vary by an ulp): EZ-VSL keeps every pixel; LVS keeps all when it is >= 0
    // and none when negative.
    for (const v of [-0.5, 0, 0.5]) {
      const c = new Float32Array(224 * 224).fill(v);
      expect(scoreMap(c, 224, 224, gt, { protocol: 'ezvsl' }).ciou).to.equal(0.25);
      expect(scoreMap(c, 224, 224, gt, { protocol: 'lvs' }).ciou).to.equal(v < 0 ? 0 : 0.25);
    }
    expect(ciou(new Uint8Array(224 * 224), new Float64Array(224 * 224))).to.be.NaN; // 0 / 0, as numpy
  });
});

describe('eval: which map is thresholded', () => {
  // The addon returns probabilities; the cosine map and the logits are
  // recovered from them up to a per-clip constant and float32 rounding, so a
  // pixel whose value ties the threshold within ~1e-7 may flip: cIoU agrees
  // with the raw map's to within 2e-3 (a few pixels), while thresholding the
  // probabilities themselves moves it much further.
  it('beta_v is scored on its cosine map (tauT ln beta_v), alpha_v on its logits (ln alpha_v); mass on the probabilities; an underflowed probability is counted', () => {
    const r = new Prng(11);
    const n = 20,
      tauT = 0.1;
    const cos = new Float32Array(n * 49),
      logits = new Float32Array(n * 49),
      beta = new Float32Array(n * 49),
      alpha = new Float32Array(n * 49);
    const softmax = (src: Float32Array, dst: Float32Array, o: number, t: number) => {
      let mx = -Infinity,
        s = 0;
      for (let k = 0; k < 49; k++) mx = Math.max(mx, src[o + k] / t);
      for (let k = 0; k < 49; k++) s += Math.exp(src[o + k] / t - mx);
      for (let k = 0; k < 49; k++) dst[o + k] = Math.exp(src[o + k] / t - mx) / s;
    };
    for (let i = 0; i < n; i++) {
      for (let k = 0; k < 49; k++) {
        cos[i * 49 + k] = Math.tanh(0.5 * gaussian(r));
        logits[i * 49 + k] = 2 * gaussian(r);
      }
      softmax(cos, beta, i * 49, tauT);
      softmax(logits, alpha, i * 49, 1);
    }
    const clips = Array.from({ length: n }, (_, i) => ({ id: `c${i}`, index: i, clip: 0, start: 0, label: -1 }));
    const box: Box = [30, 40, 150, 120];
    const gtOf = () => ({ boxes: [box], consensus: false });
    const gt = gtMap([box], false);
    const out: ModelOutputs = { clips, alphaV: { data: alpha, shape: [7, 7] }, betaV: { data: beta, shape: [7, 7] } };
    for (const protocol of ['ezvsl', 'lvs'] as const) {
      const res = evaluateLocalization(out, gtOf, { protocol, tauT });
      let worst = 0,
        probWorst = 0;
      for (let i = 0; i < n; i++) {
        const c = cos.subarray(i * 49, (i + 1) * 49),
          b = beta.subarray(i * 49, (i + 1) * 49);
        const want = scoreMap(c, 7, 7, gt, { protocol, probabilities: b });
        const got = res.perClip.betaV[i].score;
        expect(got.ciou).to.be.closeTo(want.ciou, 2e-3);
        expect([got.pointing, got.mass, got.area]).to.deep.equal([want.pointing, want.mass, want.area]);
        expect(res.perClip.alphaV[i].score.ciou).to.be.closeTo(
          scoreMap(logits.subarray(i * 49, (i + 1) * 49), 7, 7, gt, { protocol }).ciou,
          2e-3,
        );
        worst = Math.max(worst, Math.abs(got.ciou - want.ciou));
        probWorst = Math.max(probWorst, Math.abs(scoreMap(b, 7, 7, gt, { protocol }).ciou - want.ciou));
      }
      expect(probWorst, 'thresholding the probabilities instead').to.be.greaterThan(0.02);
      console.log(
        `      ${protocol}: largest |cIoU(recovered) - cIoU(raw cosine)| ${worst.toExponential(2)}; with the probabilities thresholded ${probWorst.toFixed(3)}`,
      );
      expect(res.underflow).to.deep.equal({ alphaV: 0, betaV: 0 });
    }
    // A probability of exactly 0 cannot give its log: floored and counted.
    const peaked = Float32Array.from(beta);
    peaked[3] = 0;
    expect(evaluateLocalization({ ...out, betaV: { data: peaked, shape: [7, 7] } }, gtOf, { tauT }).underflow).to.deep.equal({
      alphaV: 0,
      betaV: 1,
    });
  });
});

describe('eval: the raw maps of maps() against the Python reference', function () {
  this.timeout(300000);
  // maps() returns alpha_v's logits and the cosine map <z_a, v_n> (issue 14
  // item 5); the evaluator thresholds those, so its cIoU list is the
  // reference's on the same raw maps to the bit (no recovery from
  // probabilities, no underflow floor).
  it("evaluateLocalization on a real model's alphaVLogits / betaVCos gives the reference's cIoU list, cIoU@0.5, AUC and mean cIoU (ezvsl and lvs)", async function () {
    const { CmacModel } = await import('../lib/model');
    const { collectOutputs } = await import('../lib/eval');
    const { randomBatch, tinyConfig } = await import('./helpers');
    const model = await CmacModel.create(tinyConfig({ seed: 5 }));
    let out: ModelOutputs;
    try {
      const n = 24;
      const b = randomBatch(n, 7);
      const meta = Array.from({ length: n }, (_, i) => ({ id: `c${i}`, index: i, clip: 0, start: 0, label: -1 }));
      out = await collectOutputs(model, [{ ...b, meta } as never], { maps: true, embed: false });
    } finally {
      model.dispose();
    }
    expect(out.betaVCos, 'maps() returns the cosine map').to.not.equal(undefined);
    expect(out.alphaVLogits, 'maps() returns the logits').to.not.equal(undefined);
    const [h, w] = out.betaVCos!.shape;
    const r = new Prng(3);
    const boxes: Box[] = out.clips.map(() => {
      const x0 = Math.floor(r.next() * 150),
        y0 = Math.floor(r.next() * 150);
      return [x0, y0, x0 + 20 + Math.floor(r.next() * (204 - x0)), y0 + 20 + Math.floor(r.next() * (204 - y0))];
    });
    const rowOf = (rows: { data: Float32Array; shape: number[] }, i: number) => rows.data.slice(i * h * w, (i + 1) * h * w);
    for (const protocol of ['ezvsl', 'lvs'] as const) {
      const res = evaluateLocalization(out, (c) => ({ boxes: [boxes[c.index]], consensus: false }), { protocol, tauT: 0.1 });
      for (const [key, raw] of [
        ['betaV', out.betaVCos!],
        ['alphaV', out.alphaVLogits!],
      ] as const) {
        const cases: Case[] = out.clips.map((_, i) => ({ h, w, map: rowOf(raw as never, i), boxes: [boxes[i]], consensus: false }));
        const ref = reference(protocol, cases, []);
        if (!ref) this.skip();
        const ours = res.perClip[key].map((c) => (Number.isNaN(c.score.ciou) ? null : c.score.ciou));
        expect(ours, `${protocol} ${key} cIoU list`).to.deep.equal(ref!.ciou);
        expect(new Set(ours).size, 'the cIoUs spread').to.be.greaterThan(cases.length / 2);
        const sum = res[key];
        expect([sum.ciou50, sum.auc, sum.meanCiou], `${protocol} ${key} summary`).to.deep.equal([ref!.ciou50, ref!.auc, ref!.meanCiou]);
      }
      expect(res.underflow).to.deep.equal({ alphaV: 0, betaV: 0 });
    }
  });
});

describe('eval: geometry of the ground truth on non-square video', function () {
  this.timeout(120000);
  let dir: string;
  before(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cmac-geometry-'));
  });
  after(() => fs.rmSync(dir, { recursive: true, force: true }));

  it('registers whole-frame boxes of a 16:9 video through the centre crop the loader applies (a bright object scores mass 1, pointing 1)', async () => {
    // 320 x 180: the eval loader's centre crop is x 70..250 (180 x 180).
    // The object (white on black) covers x 160..240, y 45..135: normalised
    // [0.5, 0.25, 0.75, 0.75] of the whole frame; on the 224 grid of the crop
    // x (160 - 70) / 180 * 224 = 112 .. (240 - 70) / 180 * 224 = 211.5, y 56 .. 168.
    const file = path.join(dir, 'wide.mp4');
    await writeTestVideos([
      {
        out: file,
        seconds: 1.2,
        fps: 10,
        width: 320,
        height: 180,
        tone: 440,
        pixel: (x, y) => (x >= 160 && x < 240 && y >= 45 && y < 135 ? [255, 255, 255] : [0, 0, 0]),
      },
    ]);
    const manifest = path.join(dir, 'm.jsonl');
    fs.writeFileSync(manifest, JSON.stringify({ file: 'wide.mp4', boxes: [0.5, 0.25, 0.75, 0.75] }) + '\n');
    const source = manifestSource(manifest);
    const clip = { frames: 4, fps: 10, size: 112, audioSeconds: 1, sampleRate: 16000 };
    const loader = evalLoader(source, clip, { batchSize: 1, decoders: 1 });
    const refs = await loader.init();
    const geometry = await frameGeometries(source, refs);
    expect(geometry.get(refs[0].id)).to.deep.equal({ width: 320, height: 180, crop: { x: 70, y: 0, w: 180, h: 180 } });
    expect(registerBox([0.5, 0.25, 0.75, 0.75], geometry.get(refs[0].id))).to.deep.equal([112, 56, 211, 168]);
    const batches = await decodeAll(loader);
    await loader.close();
    // The "attention map" is the decoded middle frame's brightness as a
    // distribution at the clip size: what the model sees, with the object where it is.
    const b = batches[0];
    const [, T, H, W] = b.video.shape;
    const frame = new Float32Array(H * W);
    const t = Math.floor(T / 2);
    let total = 0;
    for (let k = 0; k < H * W; k++) total += frame[k] = b.video.data[(t * H * W + k) * 3] / 255 + 0.001;
    for (let k = 0; k < H * W; k++) frame[k] /= total;
    const out: ModelOutputs = { clips: clipInfos(b), alphaV: { data: frame, shape: [H, W] }, betaV: { data: frame, shape: [H, W] } };
    const fixed = evaluateLocalization(out, manifestBoxesOf(geometry), { protocol: 'ezvsl' });
    expect(fixed.betaV.n).to.equal(1);
    expect(fixed.betaV.mass).to.be.greaterThan(0.9);
    expect(fixed.betaV.pointing).to.equal(1);
    expect(fixed.betaV.chance).to.be.closeTo((99 * 112) / (224 * 224), 1e-12);
  });
});
