// The verdict statistics of issue 14 item 7 (lib/eval/bootstrap.ts,
// lib/eval/verdict.ts): the paired bootstrap over seeds and test clips
// against hand-computed cases, against its own sampling theory, and against
// a numpy transcription (scripts/bootstrap_ref.py) run here; the per-clip
// scores the verdict resamples (AUC share, retrieval ranks, probe
// correctness) against the set-level metrics; the targets and paragraph.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import {
  analyseVerdict,
  bootstrapMean,
  clipAuc,
  fitProbe,
  leftChance,
  matchRanks,
  pairedBootstrapDiff,
  percentile,
  queryRank,
  queryRecall,
  recallAtK,
  summariseLocalization,
  trainingTail,
  verdictMarkdown,
} from '../lib/eval';
import type { RunClipScores, VerdictConfig, VerdictRun } from '../lib/eval';
import type { StepMetrics } from '../lib/train';
import { rng } from './helpers';

const root = path.join(__dirname, '..', '..');

function randomMatrix(seed: number, s: number, n: number, f: (u: number) => number = (u) => u): number[][] {
  const r = rng(seed);
  return Array.from({ length: s }, () => Array.from({ length: n }, () => f(r())));
}

describe('bootstrap: percentile intervals over seeds and test clips', () => {
  it('percentile is numpy.percentile default (linear) on hand cases', () => {
    const v = [1, 2, 3, 4];
    expect(percentile(v, 0)).to.equal(1);
    expect(percentile(v, 25)).to.equal(1.75);
    expect(percentile(v, 50)).to.equal(2.5);
    expect(percentile(v, 100)).to.equal(4);
    expect(percentile([5], 2.5)).to.equal(5);
    expect(percentile([0, 10], 97.5)).to.be.closeTo(9.75, 1e-12);
    expect(() => percentile([], 50)).to.throw(/no values/);
    expect(() => percentile(v, 101)).to.throw(/\[0, 100\]/);
  });

  it('a constant matrix has a zero-width interval at its value', () => {
    const b = bootstrapMean(
      [
        [0.3, 0.3, 0.3],
        [0.3, 0.3, 0.3],
      ],
      { resamples: 500 },
    );
    expect(b.estimate).to.be.closeTo(0.3, 1e-15);
    expect(b.lo).to.be.closeTo(0.3, 1e-15);
    expect(b.hi).to.be.closeTo(0.3, 1e-15);
    expect(b).to.include({ seeds: 2, clips: 3, resamples: 500, level: 0.95 });
  });

  it('two clips scoring 0 and 1 (one seed): replicate means 0, 1/2, 1 with probabilities 1/4, 1/2, 1/4, so the 95% interval is [0, 1]', () => {
    const b = bootstrapMean([[0, 1]], { resamples: 4000, seed: 3 });
    expect(b.estimate).to.equal(0.5);
    expect(b.lo).to.equal(0);
    expect(b.hi).to.equal(1);
    // The same over seeds: two seeds with one clip each.
    const s = bootstrapMean([[0], [1]], { resamples: 4000, seed: 3 });
    expect([s.lo, s.estimate, s.hi]).to.deep.equal([0, 0.5, 1]);
    // A 50% interval of the same distribution (quartiles 0.5 and 0.5) is [0.5, 0.5].
    const h = bootstrapMean([[0, 1]], { resamples: 4000, seed: 3, level: 0.4 });
    expect([h.lo, h.hi]).to.deep.equal([0.5, 0.5]);
  });

  it('the interval width matches sampling theory: 2 x 1.96 x sd / sqrt(N) for one seed of N clips', () => {
    const x = randomMatrix(11, 1, 400);
    const n = x[0].length;
    const m = x[0].reduce((a, b) => a + b, 0) / n;
    const sd = Math.sqrt(x[0].reduce((a, b) => a + (b - m) ** 2, 0) / n);
    const b = bootstrapMean(x, { resamples: 4000, seed: 5 });
    const width = b.hi - b.lo;
    expect(width / ((2 * 1.96 * sd) / Math.sqrt(n))).to.be.within(0.9, 1.1);
    expect((b.lo + b.hi) / 2).to.be.closeTo(m, 0.2 * width);
  });

  it('is deterministic for a seed and moves with another seed', () => {
    const x = randomMatrix(1, 3, 30);
    const a = bootstrapMean(x, { resamples: 1000, seed: 9 });
    expect(bootstrapMean(x, { resamples: 1000, seed: 9 })).to.deep.equal(a);
    const c = bootstrapMean(x, { resamples: 1000, seed: 10 });
    expect(c.estimate).to.equal(a.estimate);
    expect([c.lo, c.hi]).to.not.deep.equal([a.lo, a.hi]);
  });

  it('pairs the draws: b = a + 0.3 per clip gives the difference -0.3 with a zero-width interval however much a varies', () => {
    const a = randomMatrix(2, 3, 50);
    const b = a.map((row) => row.map((v) => v + 0.3));
    const d = pairedBootstrapDiff(a, b, { resamples: 1000 });
    expect(d.estimate).to.be.closeTo(-0.3, 1e-12);
    expect(d.lo).to.be.closeTo(-0.3, 1e-12);
    expect(d.hi).to.be.closeTo(-0.3, 1e-12);
    // The unpaired intervals of the two means are wide and overlap.
    const ia = bootstrapMean(a, { resamples: 1000 }),
      ib = bootstrapMean(b, { resamples: 1000 });
    expect(ia.hi - ia.lo).to.be.greaterThan(0.1);
    expect(ib.hi - ib.lo).to.be.greaterThan(0.1);
  });

  it('rejects ragged, empty, non-finite and mismatched input naming the fix', () => {
    expect(() => bootstrapMean([])).to.throw(/no seeds.*one row of per-clip values per trained seed/);
    expect(() => bootstrapMean([[]])).to.throw(/no test clips/);
    expect(() => bootstrapMean([[1, 2], [1]])).to.throw(
      /seed row 1 has 1 clips, row 0 has 2; every seed must be scored on the same test clips/,
    );
    expect(() => bootstrapMean([[1, NaN]])).to.throw(/seed row 0, clip 1 is NaN/);
    expect(() =>
      pairedBootstrapDiff(
        [[1, 2]],
        [
          [1, 2],
          [3, 4],
        ],
      ),
    ).to.throw(/same seeds x clips, got 1x2 and 2x2/);
    expect(() => bootstrapMean([[1]], { level: 95 })).to.throw(/level must be in \(0, 1\), e.g. 0.95/);
    expect(() => bootstrapMean([[1]], { resamples: 0 })).to.throw(/resamples must be an integer >= 1/);
  });

  it('equals its numpy transcription (scripts/bootstrap_ref.py: the same seeded draws, numpy means and numpy.percentile)', function () {
    this.timeout(120000);
    const cases = [
      { a: randomMatrix(21, 3, 40), b: randomMatrix(22, 3, 40), resamples: 1500, seed: 7, level: 0.95 },
      { a: randomMatrix(23, 3, 25, (u) => (u < 0.4 ? 1 : 0)), resamples: 1500, seed: 123456789, level: 0.9 },
      { a: randomMatrix(24, 2, 17), b: randomMatrix(25, 2, 17, (u) => (u < 0.5 ? 1 : 0)), resamples: 999, seed: 2 ** 33 + 5, level: 0.95 },
    ];
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cmac-bootstrap-'));
    try {
      const file = path.join(dir, 'cases.json');
      fs.writeFileSync(file, JSON.stringify({ cases }));
      const r = spawnSync('/usr/bin/python3', [path.join(root, 'scripts', 'bootstrap_ref.py'), file], { encoding: 'utf8' });
      if (r.error && (r.error as NodeJS.ErrnoException).code === 'ENOENT') {
        console.log('      skipped: /usr/bin/python3 not found');
        this.skip();
      }
      if (r.status === 3) {
        console.log(`      skipped: ${r.stderr.trim()}`);
        this.skip();
      }
      if (r.status !== 0) throw new Error(`scripts/bootstrap_ref.py failed (${r.status}):\n${r.stderr}`);
      const ref = JSON.parse(r.stdout) as Array<{ estimate: number; lo: number; hi: number }>;
      cases.forEach((c, i) => {
        const o = { resamples: c.resamples, seed: c.seed, level: c.level };
        const ours = c.b ? pairedBootstrapDiff(c.a, c.b, o) : bootstrapMean(c.a, o);
        for (const k of ['estimate', 'lo', 'hi'] as const) expect(ours[k], `case ${i} ${k}`).to.be.closeTo(ref[i][k], 1e-12);
      });
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });
});

/** One run's scores with every per-clip value from `v(metric, clip)`. */
function scoresFor(n: number, v: (what: string, i: number) => number): RunClipScores {
  const ids = Array.from({ length: n }, (_, i) => `clip${i}`);
  const arr = (what: string) => ids.map((_, i) => v(what, i));
  const loc = (set: string) => ({
    ids,
    alphaV: { pointing: arr(`${set}.alphaV.pointing`), ciou: arr(`${set}.alphaV.ciou`) },
    betaV: { pointing: arr(`${set}.betaV.pointing`), ciou: arr(`${set}.betaV.ciou`) },
    chance: { pointing: 0.4, ciou50: 0, auc: 0.4 },
  });
  return {
    version: 1,
    large: loc('large'),
    test: loc('test'),
    frequency: { ids, alphaA: arr('alphaA'), betaA: arr('betaA'), chance: 0.25 },
    retrieval: { ids, a2vRank: arr('rank'), v2aRank: arr('rank'), a2v1: arr('a2v1'), v2a1: arr('v2a1'), chance: 1 / n },
    probe: { video: arr('probeV'), audio: arr('probeA'), chance: 0.125 },
  };
}

describe('verdict: per-clip scores, targets and paragraph', () => {
  const scores = scoresFor;
  it("the mean of the clips' AUC shares is the set's AUC, and [cIoU >= 0.5] averages to cIoU@0.5", () => {
    const r = rng(4);
    const scores = Array.from({ length: 57 }, () => ({ ciou: r() < 0.1 ? 0.5 : r(), pointing: 0, mass: 0, area: 0.2 }));
    const s = summariseLocalization(scores);
    expect(scores.reduce((a, x) => a + clipAuc(x.ciou), 0) / scores.length).to.be.closeTo(s.auc, 1e-12);
    expect(scores.filter((x) => x.ciou >= 0.5).length / scores.length).to.equal(s.ciou50);
    expect(clipAuc(1)).to.be.closeTo(1, 1e-12);
    expect(clipAuc(0)).to.be.closeTo(0.025, 1e-12); // only x = 0 counts: half a 0.05 trapezoid
  });

  it('per-query ranks and recall@1 average to recallAtK (ties shared)', () => {
    const sim = [0.9, 0.1, 0.2, 0.8, 0.5, 0.1, 0.3, 0.3, 0.3];
    const q = matchRanks(sim, 3);
    expect(q).to.deep.equal([
      { greater: 0, ties: 0 },
      { greater: 1, ties: 0 },
      { greater: 0, ties: 2 },
    ]);
    expect(q.map(queryRank)).to.deep.equal([1, 2, 2]);
    const r = recallAtK(sim, 3, [1, 2]);
    for (const k of [1, 2]) expect(q.reduce((a, x) => a + queryRecall(x, k), 0) / 3).to.be.closeTo(r.recall[k], 1e-12);
  });

  it("fitProbe's per-test-item correctness averages to its test accuracy", async function () {
    this.timeout(60000);
    const r = rng(8);
    const make = (n: number) => {
      const y = Int32Array.from({ length: n }, (_, i) => i % 3);
      const x = Float32Array.from({ length: n * 4 }, (_, j) => (j % 4 === y[Math.floor(j / 4)] ? 1 : 0) + 1.2 * (r() - 0.5));
      return { x, y, n, d: 4 };
    };
    const f = await fitProbe(make(60), make(20), make(31), 3, [1e-3, 1e-1]);
    expect(f.testCorrect).to.have.length(31);
    expect(f.testCorrect.every((v) => v === 0 || v === 1)).to.equal(true);
    expect(f.testCorrect.reduce((a, b) => a + b, 0) / 31).to.equal(f.testAccuracy);
    expect(f.testAccuracy).to.be.within(0.2, 0.99); // noisy enough that some items are wrong
  });

  const configs: VerdictConfig[] = [
    { key: 'xmodal-mean', label: 'xmodal (mean pool)', baseline: true },
    { key: 'xmodal', label: 'xmodal (attention pool)', baseline: true },
    { key: 'cmac', label: 'cmac', baseline: false },
  ];

  it('chooses the best baseline per metric by its mean, pairs on seeds, and states each target met or not with its numbers', () => {
    const n = 40;
    const hit = (p: number, i: number, seed: number) => ((i * 7 + seed * 3) % 20 < p * 20 ? 1 : 0);
    const runs: VerdictRun[] = [];
    for (const seed of [1, 2, 3]) {
      // xmodal-mean: beta_v pointing 40%, probe video 60%; xmodal (attention): 50% and 50%; cmac: 75% and 40%, alpha_v 65%, alpha_a 55%.
      // hit() puts the hits of a lower rate on a subset of a higher rate's clips, so per-clip differences are 0 or +-1.
      runs.push({
        config: 'xmodal-mean',
        seed,
        clips: scores(n, (w, i) =>
          w === 'large.betaV.pointing'
            ? hit(0.4, i, seed)
            : w === 'probeV'
              ? hit(0.6, i, seed)
              : w.endsWith('ciou')
                ? 0.3
                : hit(0.3, i, seed),
        ),
      });
      runs.push({
        config: 'xmodal',
        seed,
        clips: scores(n, (w, i) =>
          w === 'large.betaV.pointing'
            ? hit(0.5, i, seed)
            : w === 'probeV'
              ? hit(0.5, i, seed)
              : w.endsWith('ciou')
                ? 0.3
                : hit(0.3, i, seed),
        ),
      });
      runs.push({
        config: 'cmac',
        seed,
        clips: scores(n, (w, i) =>
          w === 'large.betaV.pointing'
            ? hit(0.75, i, seed)
            : w === 'probeV'
              ? hit(0.4, i, seed)
              : w === 'large.alphaV.pointing'
                ? hit(0.65, i, seed)
                : w === 'alphaA'
                  ? hit(0.55, i, seed)
                  : w.endsWith('ciou')
                    ? 0.6
                    : hit(0.3, i, seed),
        ),
      });
    }
    const a = analyseVerdict(configs, runs, { resamples: 500, seed: 1 });
    const m = (k: string) => a.metrics.find((x) => x.key === k)!;
    expect(m('large.betaV.pointing').best).to.equal('xmodal');
    expect(m('probe.video').best).to.equal('xmodal-mean');
    expect(m('large.betaV.pointing').diff.estimate).to.be.closeTo(0.25, 1e-12);
    expect(m('probe.video').diff.estimate).to.be.closeTo(-0.2, 1e-12);
    expect(m('probe.video').diff.hi).to.be.lessThan(0);
    expect(m('large.betaV.pointing').diff.lo).to.be.greaterThan(0.1);
    expect(m('large.betaV.ciou50').means.cmac.estimate).to.equal(1);
    expect(m('large.betaV.auc').means.cmac.estimate).to.be.closeTo(clipAuc(0.6), 1e-12);
    expect(a.targets.map((t) => t.met)).to.deep.equal([true, false, true, true]);
    expect(a.targets[1].text).to.match(
      /linear probe, video: cmac - xmodal \(mean pool\) = -20\.0 points \(95% CI \[-\d+\.\d, -\d+\.\d\]\); linear probe, audio: cmac - .* = \+0\.0 points \(95% CI \[0\.0, 0\.0\]\); a significant loss on linear probe, video$/,
    );
    expect(a.targets[2].text).to.equal(
      'cmac 65.0% (95% CI ' +
        `[${(100 * m('large.alphaV.pointing').means.cmac.lo).toFixed(1)}, ${(100 * m('large.alphaV.pointing').means.cmac.hi).toFixed(1)}]; chance 40.0%)`,
    );
    const md = verdictMarkdown(a, {
      steps: 800,
      batch: 32,
      baselineCon: [{ config: 'xmodal', seed: 1, lossCon: 2.3, retrievalAcc: 0.2, steps: 80 }],
    });
    expect(md).to.match(
      /^\*\*Verdict: 3 of 4 targets met\*\* \(3 configurations x 3 seeds, 800 steps of batch 32; final L_con .* 2\.300-2\.300 vs chance ln 32 = 3\.466.*left chance/,
    );
    expect(md).to.include(
      '(1) beta_v pointing on large objects: +10 points over the best baseline, CI above 0: **met**, cmac - xmodal (attention pool) = +25.0 points',
    );
    expect(md).to.include('| beta_v pointing, large objects | 40.0 |');
  });

  it('a run scored on other clips, a missing configuration and a candidate without a baseline seed in common are errors naming the fix', () => {
    const runs: VerdictRun[] = [
      { config: 'xmodal-mean', seed: 1, clips: scores(5, () => 0) },
      { config: 'xmodal', seed: 1, clips: scores(6, () => 0) },
      { config: 'cmac', seed: 1, clips: scores(5, () => 1) },
    ];
    expect(() => analyseVerdict(configs, runs)).to.throw(
      /run xmodal seed 1 was scored on other clips than the first run \(6 vs 5 clips\); evaluate every run on the same decoded test sets/,
    );
    expect(() => analyseVerdict(configs, runs.slice(0, 1).concat(runs.slice(2)))).to.throw(
      /no finished run of xmodal \(attention pool\); train it first/,
    );
    const other = [runs[0], { ...runs[1], clips: scores(5, () => 0), seed: 2 }, { ...runs[2], seed: 3 }];
    expect(() =>
      analyseVerdict(
        configs.filter((c) => c.key !== 'xmodal-mean'),
        other.slice(1),
      ),
    ).to.throw(/cmac and xmodal have no seed in common/);
  });

  it('the training tail and the L_con chance check: ln(batch), the last 10% of steps, the rule stated', () => {
    const lines = Array.from(
      { length: 100 },
      (_, i) => ({ step: i, lossCon: i < 90 ? 3.4 : 2.0, retrievalAcc: i < 90 ? 0.03 : 0.25 }) as unknown as StepMetrics,
    );
    const t = trainingTail(lines);
    expect(t).to.deep.equal({ lossCon: 2, retrievalAcc: 0.25, steps: 10 });
    expect(() => trainingTail([])).to.throw(/no finite L_con/);
    const stuck = leftChance({
      steps: 100,
      batch: 32,
      baselineCon: [
        { config: 'xmodal', seed: 1, lossCon: 3.3, retrievalAcc: 0.04, steps: 10 },
        { config: 'xmodal', seed: 2, ...t },
      ],
    });
    expect(stuck.left).to.equal(false);
    expect(stuck.text)
      .to.include('2.000-3.300 vs chance ln 32 = 3.466')
      .and.include('did NOT clearly leave chance (rule: <= 0.9 ln B in every run)');
    expect(leftChance({ steps: 100, batch: 32, baselineCon: [{ config: 'xmodal', seed: 2, ...t }] }).left).to.equal(true);
  });
});

describe('verdict: scripts/ablation.js --verdict and scripts/verdict.js (no training)', function () {
  this.timeout(60000);
  const node = (script: string, ...args: string[]) =>
    spawnSync(process.execPath, [path.join(root, 'scripts', script), ...args], { encoding: 'utf8' });

  it('rejects options that would change the fixed rows, a bad --cmac-ramp and docs/results.md as the whole output', () => {
    expect(node('ablation.js', '--verdict', '--presets', 'cmac').stderr).to.include(
      '--presets cannot be combined with --verdict: its rows are fixed',
    );
    expect(node('ablation.js', '--verdict', '--baseline-pooling', 'mean').stderr).to.include(
      '--baseline-pooling cannot be combined with --verdict',
    );
    expect(node('ablation.js', '--verdict', '--ramp-start', '10').stderr).to.include('set the cmac ramp with --cmac-ramp auto|<share>');
    expect(node('ablation.js', '--verdict', '--cmac-ramp', '50').stderr).to.include(
      '--cmac-ramp must be auto or a share of the steps in (0, 1] such as 0.1 or 0.5, got 50',
    );
    expect(node('ablation.js', '--verdict', '--cmac-ramp', '0.5', '--ramp', '0.1').stderr).to.include(
      '--ramp and --cmac-ramp <share> both set the ramp share',
    );
    expect(node('ablation.js', '--verdict', '--results', path.join(root, 'docs', 'results.md')).stderr).to.include(
      'would replace the whole file in --verdict mode',
    );
    expect(node('ablation.js', '--verdict', '--bootstrap', '10').stderr).to.include('--bootstrap must be an integer >= 100');
  });

  it("--baselines-from: reuses another folder's baseline runs (any ramp, same steps, scores present), never its cmac runs", () => {
    const from = fs.mkdtempSync(path.join(os.tmpdir(), 'cmac-verdict-from-'));
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cmac-verdict-to-'));
    try {
      expect(node('ablation.js', '--baselines-from', from).stderr).to.include('--baselines-from is an option of --verdict');
      expect(node('ablation.js', '--verdict', '--baselines-from', out).stderr).to.include('no runs.json there');
      const records = [];
      for (const [preset, pooling, steps] of [
        ['xmodal', 'mean', 16],
        ['xmodal', 'attention', 16],
        ['xmodal+within', 'attention', 99],
        ['cmac', 'attention', 16],
      ] as const) {
        const dir = path.join(from, 'runs', `${preset}-${pooling}-s1`);
        fs.mkdirSync(dir, { recursive: true });
        fs.writeFileSync(path.join(dir, 'perclip.json'), '{}');
        const ramp = { fraction: 0.1, start: 'auto', threshold: 0.2 };
        records.push({ preset, pooling, seed: 1, steps, ramp, clipScores: path.relative(from, path.join(dir, 'perclip.json')) });
      }
      fs.writeFileSync(path.join(from, 'runs.json'), JSON.stringify(records));
      const { reusedBaselines } = require(path.join(root, 'scripts', 'verdict.js')) as {
        reusedBaselines: (
          cfg: object,
          done: object[],
          log: (l: string) => void,
        ) => { preset: string; pooling: string; clipScores: string }[];
      };
      const lines: string[] = [];
      const cfg = { out, seeds: 1, steps: 16, verdict: { baselinesFrom: from } };
      const got = reusedBaselines(cfg, [], (l) => lines.push(l));
      // xmodal+within ran 99 steps there: not reused; cmac: never
      expect(got.map((r) => `${r.preset}/${r.pooling}`)).to.deep.equal(['xmodal/mean', 'xmodal/attention']);
      for (const r of got) expect(fs.existsSync(path.join(out, r.clipScores)), r.clipScores).to.equal(true);
      expect(lines[0]).to.equal(`xmodal (mean pool) seed 1: reused from ${from}`);
      // what this folder already has is kept
      expect(reusedBaselines(cfg, [{ preset: 'xmodal', pooling: 'mean', seed: 1 }], () => {}).length).to.equal(1);
    } finally {
      fs.rmSync(from, { recursive: true, force: true });
      fs.rmSync(out, { recursive: true, force: true });
    }
  });

  it('replaces only the verdict block of docs/results.md (a file without the markers is left alone)', () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'cmac-verdict-docs-'));
    try {
      const { writeDocsBlock } = require(path.join(root, 'scripts', 'verdict.js')) as {
        writeDocsBlock: (file: string, text: string, log: (l: string) => void) => boolean;
      };
      const file = path.join(dir, 'results.md');
      fs.writeFileSync(file, '# Results\n\n<!-- verdict:begin -->\nnot run yet\n<!-- verdict:end -->\n\n## Old tables\n| a |\n');
      const lines: string[] = [];
      expect(writeDocsBlock(file, '**Verdict: 1 of 4 targets met**', (l) => lines.push(l))).to.equal(true);
      expect(fs.readFileSync(file, 'utf8')).to.equal(
        '# Results\n\n<!-- verdict:begin -->\n**Verdict: 1 of 4 targets met**\n<!-- verdict:end -->\n\n## Old tables\n| a |\n',
      );
      fs.writeFileSync(file, '# Results\n| a |\n');
      expect(writeDocsBlock(file, 'x', (l) => lines.push(l))).to.equal(false);
      expect(fs.readFileSync(file, 'utf8')).to.equal('# Results\n| a |\n');
      expect(lines[1]).to.include('has no <!-- verdict:begin --> ... <!-- verdict:end --> block: not changed');
      // The real file has the block.
      const real = fs.readFileSync(path.join(root, 'docs', 'results.md'), 'utf8');
      expect(real.indexOf('<!-- verdict:begin -->')).to.be.within(0, real.indexOf('<!-- verdict:end -->'));
    } finally {
      fs.rmSync(dir, { recursive: true, force: true });
    }
  });

  it('re-analyses a finished folder: verdict.md with the paragraph, every row and metric, the runs; verdict.json; resumable records only', () => {
    const out = fs.mkdtempSync(path.join(os.tmpdir(), 'cmac-verdict-'));
    try {
      const rows = [
        ['xmodal', 'mean'],
        ['xmodal', 'attention'],
        ['xmodal+within', 'attention'],
        ['cmac', 'attention'],
      ];
      const ramp = { fraction: 0.1, start: 'auto', threshold: 0.2 };
      const records: unknown[] = [];
      for (const seed of [1, 2]) {
        for (const [preset, pooling] of rows) {
          const dir = path.join(out, 'runs', `${preset}-${pooling}-s${seed}`);
          fs.mkdirSync(dir, { recursive: true });
          // 10 clips: (i + seed) % 10 < 10 x rate hits exactly that rate. cmac: 90% everywhere but the video probe (10%); baselines 30%.
          const rate = (w: string) => (preset !== 'cmac' ? 0.3 : w === 'probeV' ? 0.1 : 0.9);
          fs.writeFileSync(
            path.join(dir, 'perclip.json'),
            JSON.stringify(scoresFor(10, (w, i) => (w.endsWith('ciou') ? rate(w) : (i + seed) % 10 < rate(w) * 10 ? 1 : 0))),
          );
          records.push({
            preset,
            pooling,
            seed,
            steps: 16,
            ramp,
            rampStartedAt: preset === 'cmac' && seed === 1 ? 9 : null,
            trainSeconds: 1,
            clipScores: path.relative(out, path.join(dir, 'perclip.json')),
            tail: { lossCon: preset === 'xmodal' ? 2.0 : 3.0, retrievalAcc: 0.3, steps: 2 },
          });
        }
      }
      // A record with other steps (scored on other clips) is not part of this verdict: read, it would be an error.
      fs.writeFileSync(path.join(out, 'other.json'), JSON.stringify(scoresFor(5, () => 0)));
      records.unshift({ ...(records[0] as object), steps: 99, clipScores: 'other.json' });
      fs.writeFileSync(path.join(out, 'runs.json'), JSON.stringify(records));
      expect(node('verdict.js', '--out', out).stderr).to.include('verdict-config.json not found: run node scripts/ablation.js --verdict');
      fs.writeFileSync(
        path.join(out, 'verdict-config.json'),
        JSON.stringify({
          quick: true,
          steps: 16,
          batch: 16,
          seeds: 2,
          clips: 120,
          large: 40,
          ramp: 0.1,
          rampStart: 'auto',
          rampThreshold: 0.2,
          cmacRamp: 'auto',
          bootstrap: 300,
          bootstrapSeed: 1,
          docs: false,
        }),
      );
      const r = node('verdict.js', '--out', out);
      expect(r.status, r.stderr).to.equal(0);
      const md = fs.readFileSync(path.join(out, 'verdict.md'), 'utf8');
      expect(md).to.match(
        /\*\*Verdict \(QUICK SMOKE RUN: not evidence\): 3 of 4 targets met\*\* \(4 configurations x 2 seeds, 16 steps of batch 16; final L_con of the xmodal runs \(mean of the last 2 steps\) 2\.000-2\.000 vs chance ln 16 = 2\.773/,
      );
      expect(md).to.include(
        '(1) beta_v pointing on large objects: +10 points over the best baseline, CI above 0: **met**, `cmac` - `xmodal` (mean pool) = +60.0 points',
      );
      expect(md).to.include('(3) alpha_v pointing >= 60% on large objects: **met**, `cmac` 90.0%');
      expect(md).to.include("cmac's lambda ramp: loss.rampStart auto");
      expect(md).to.include('In the cmac run(s) of seed 2 the auto ramp never started: they trained with lambda 0, as `xmodal+within`.');
      for (const label of ['`xmodal` (mean pool)', '`xmodal` (attention pool)', '`xmodal+within` (attention pool)', '`cmac`'])
        expect(md).to.include(label);
      expect(md.split('\n').filter((l) => /^\| (alpha|beta|linear|retrieval).* \[-?\d+\.\d, -?\d+\.\d\]/.test(l))).to.have.length(18);
      expect(md.split('\n').filter((l) => /^\| `.*\| [12] \| 16 \|/.test(l))).to.have.length(8);
      const j = JSON.parse(fs.readFileSync(path.join(out, 'verdict.json'), 'utf8'));
      expect(j.analysis.metrics).to.have.length(18);
      expect(j.analysis.targets.map((t: { met: boolean }) => t.met)).to.deep.equal([true, false, true, true]);
      expect(j.settings.bootstrap).to.equal(300);
    } finally {
      fs.rmSync(out, { recursive: true, force: true });
    }
  });
});
