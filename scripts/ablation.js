#!/usr/bin/env node
// The ablation of method.md section 5 on synthetic data (`npm run ablation`):
// trains the five loss presets (xmodal, xmodal+within, cmac-v, cmac-a, cmac)
// with several seeds (the baselines with attention and with mean pooling,
// model.pooling, so that a row differs from another by its losses only) on the tiny preset, evaluates every run the same way
// (localisation on a large-object set and on the ordinary test split,
// frequency grounding, linear probes, retrieval) and writes the mean +- std
// per preset to results.md (docs/results.md by default for the full run).
//
//   node scripts/ablation.js                 # full: 7 rows (5 presets, baselines with both poolings) x 3 seeds x 100 steps (budget: ~2 h on 2 idle cores)
//   node scripts/ablation.js --quick         # smoke run: 1 seed, few steps, small data (a few minutes)
//   node scripts/ablation.js --verdict       # issue 14 item 7's verdict: 4 rows x 3 seeds x 800 steps, bootstrap CIs (scripts/verdict.js)
//   node scripts/ablation.js --help
//
// Resumable: finished runs are recorded in <out>/runs.json and skipped when
// the script is started again with the same --out. Needs `npm run build:ts`.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const verdict = require('./verdict');

const root = path.join(__dirname, '..');
function load() {
  try {
    return {
      data: require('../dist/data'),
      ev: require('../dist/eval'),
      train: require('../dist/train'),
      config: require('../dist/config'),
      info: require('../dist/info'),
    };
  } catch (err) {
    const e = /** @type {NodeJS.ErrnoException} */ (err);
    if (e.code === 'MODULE_NOT_FOUND') throw new Error(`build first: npm run build:ts (${e.message.split('\n')[0]})`);
    throw e;
  }
}

const presets = ['xmodal', 'xmodal+within', 'cmac-v', 'cmac-a', 'cmac'];
const baselines = ['xmodal', 'xmodal+within'];
const poolings = ['attention', 'mean'];

// The rows: every preset with attention pooling (the default), the baselines also with each --baseline-pooling.
function variants(cfg) {
  if (cfg.verdict) return verdict.variants;
  return cfg.presets.flatMap((preset) =>
    (baselines.includes(preset) ? cfg.baselinePooling : ['attention']).map((pooling) => ({ preset, pooling })),
  );
}
const label = (v) => (baselines.includes(v.preset) ? `\`${v.preset}\` (${v.pooling} pool)` : `\`${v.preset}\``);
const sameVariant = (r, v) => r.preset === v.preset && r.pooling === v.pooling;

const help = `usage: node scripts/ablation.js [options]
  --quick              smoke run: 1 seed, 12 steps, batch 16, small datasets
  --out <dir>          work folder: data, runs, runs.json, results.md (default runs/ablation, quick: runs/ablation-quick)
  --seeds <n>          seeds per preset (default 3)
  --steps <n>          training steps per run (default 100)
  --batch <n>          batch size (default 32)
  --clips <n>          synthetic clips for training/probing (default 800: 70% train, 15% val, 15% test)
  --large <n>          large-object clips for cIoU (default 160)
  --presets <list>     comma-separated subset of ${presets.join(',')}
  --threads <n>        libtorch threads (default: all cores)
  --baseline-pooling <list>  pooling of the baseline rows xmodal, xmodal+within: attention, mean or both (default attention,mean);
                       the other presets always use attention (model.pooling, method.md s5)
  --ramp <f>           share of the steps over which lambda_v/lambda_a ramp from 0 (default 0.1, method.md s4)
  --ramp-start <s>     step the ramp starts at, or auto: when the in-batch retrieval accuracy reaches --ramp-threshold (default 0)
  --ramp-threshold <f> retrieval accuracy that starts an auto ramp (default 0.2, loss.rampThreshold; chance is 1/batch)
  --results <file>     results table (default: docs/results.md for a full run, <out>/results.md for --quick)
  --no-docs            never write docs/results.md
${verdict.help}`;

function parseArgs(argv) {
  const o = { quick: false, docs: true };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    const val = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`);
      return argv[++i];
    };
    if (a === '--quick') o.quick = true;
    else if (a === '--out') o.out = val();
    else if (a === '--seeds') o.seeds = Number(val());
    else if (a === '--steps') o.steps = Number(val());
    else if (a === '--batch') o.batch = Number(val());
    else if (a === '--clips') o.clips = Number(val());
    else if (a === '--large') o.large = Number(val());
    else if (a === '--presets') o.presets = val().split(',');
    else if (a === '--threads') o.threads = Number(val());
    else if (a === '--ramp') o.ramp = Number(val());
    else if (a === '--baseline-pooling') o.baselinePooling = val().split(',');
    else if (a === '--ramp-start') {
      const v = val();
      o.rampStart = v === 'auto' ? 'auto' : Number(v);
    } else if (a === '--ramp-threshold') o.rampThreshold = Number(val());
    else if (a === '--results') o.results = val();
    else if (a === '--no-docs') o.docs = false;
    else if (a === '--verdict') o.verdict = true;
    else if (a === '--cmac-ramp') o.cmacRamp = val();
    else if (a === '--baselines-from') o.baselinesFrom = val();
    else if (a === '--bootstrap') o.bootstrap = Number(val());
    else if (a === '--bootstrap-seed') o.bootstrapSeed = Number(val());
    else if (a === '--help' || a === '-h') {
      process.stdout.write(help + '\n');
      process.exit(0);
    } else throw new Error(`unknown option ${a}\n${help}`);
  }
  const q = o.quick;
  const cfg = {
    quick: q,
    out: path.resolve(o.out || (q ? 'runs/ablation-quick' : 'runs/ablation')),
    seeds: o.seeds || (q ? 1 : 3),
    steps: o.steps || (q ? 12 : 100),
    batch: o.batch || (q ? 16 : 32),
    clips: o.clips || (q ? 120 : 800),
    large: o.large || (q ? 40 : 160),
    presets: o.presets || presets,
    threads: o.threads,
    ramp: o.ramp ?? 0.1,
    rampStart: o.rampStart ?? 0,
    rampThreshold: o.rampThreshold ?? 0.2,
    baselinePooling: o.baselinePooling || poolings,
  };
  if (!(cfg.ramp >= 0 && cfg.ramp <= 1)) throw new Error('--ramp must be a number in [0, 1]');
  if (cfg.rampStart !== 'auto' && !(Number.isInteger(cfg.rampStart) && cfg.rampStart >= 0))
    throw new Error('--ramp-start must be auto or a step number >= 0');
  if (!(cfg.rampThreshold >= 0 && cfg.rampThreshold <= 1)) throw new Error('--ramp-threshold must be a number in [0, 1]');
  for (const p of cfg.baselinePooling) if (!poolings.includes(p)) throw new Error(`unknown pooling ${p}; allowed: ${poolings.join(', ')}`);
  for (const p of cfg.presets) if (!presets.includes(p)) throw new Error(`unknown preset ${p}; allowed: ${presets.join(', ')}`);
  for (const k of ['seeds', 'steps', 'batch', 'clips', 'large'])
    if (!(Number.isInteger(cfg[k]) && cfg[k] > 0)) throw new Error(`--${k} must be a positive integer`);
  cfg.results = o.results
    ? path.resolve(o.results)
    : !q && o.docs
      ? path.join(root, 'docs', 'results.md')
      : path.join(cfg.out, 'results.md');
  if (!o.docs && cfg.results === path.join(root, 'docs', 'results.md')) cfg.results = path.join(cfg.out, 'results.md');
  if (!o.verdict)
    for (const [flag, given] of [
      ['--cmac-ramp', o.cmacRamp],
      ['--baselines-from', o.baselinesFrom],
    ])
      if (given !== undefined) throw new Error(`${flag} is an option of --verdict`);
  if (o.verdict) verdict.configure(cfg, o);
  return cfg;
}

const log = (s) => process.stderr.write(`[ablation ${new Date().toISOString().slice(11, 19)}] ${s}\n`);

async function ensureData(cfg, data) {
  // --baselines-from: the same clips as the folder whose baseline runs are reused
  const dataRoot = cfg.verdict && cfg.verdict.baselinesFrom ? cfg.verdict.baselinesFrom : cfg.out;
  const main = path.join(dataRoot, 'data', 'main');
  const large = path.join(dataRoot, 'data', 'large');
  const common = { size: 64, fps: 8, seconds: 3, classes: 8 };
  if (!fs.existsSync(path.join(main, 'manifest.jsonl'))) {
    log(`synthesising ${cfg.clips} clips into ${main}`);
    const r = await data.synthesize({ out: main, clips: cfg.clips, seed: 1, splits: [0.7, 0.15, 0.15], ...common });
    log(`  ${r.clips} clips in ${r.seconds.toFixed(0)} s (${JSON.stringify(r.counts)})`);
  }
  if (!fs.existsSync(path.join(large, 'manifest.jsonl'))) {
    log(`synthesising ${cfg.large} large-object clips into ${large}`);
    const r = await data.synthesize({ out: large, clips: cfg.large, seed: 2, splits: [0, 0, 1], largeObjects: true, ...common });
    log(`  ${r.clips} clips in ${r.seconds.toFixed(0)} s`);
  }
  return { main, large };
}

async function decodeSets(cfg, paths, lib) {
  const { data, ev, config } = lib;
  const c0 = config.resolveConfig({ preset: 'tiny' });
  const clip = ev.clipOf(c0);
  const t0 = Date.now();
  const dec = async (source) => ev.decodeAll(ev.evalLoader(source, clip, { batchSize: 32, decoders: 2 }));
  const test = await dec(data.synthSource(paths.main, { split: 'test' }));
  const large = await dec(data.synthSource(paths.large, { split: 'test' }));
  const ds = ev.openProbeDataset(paths.main, { layout: 'synth' });
  const probe = await dec(ev.itemsSource(ev.probeItems(ds), ds.name));
  const n = (b) => b.reduce((s, x) => s + x.meta.length, 0);
  log(
    `decoded eval clips once: test ${n(test)}, large-object ${n(large)}, probe ${n(probe)} in ${((Date.now() - t0) / 1000).toFixed(0)} s`,
  );
  return { test, large, probe, ds, clip };
}

function pick(r) {
  const L = r.large.localization,
    S = r.test.localization,
    F = r.test.frequency,
    R = r.test.retrieval,
    P = r.probe;
  const loc = (x) => ({ ciou50: x.ciou50, auc: x.auc, meanCiou: x.meanCiou, pointing: x.pointing, mass: x.mass, chance: x.chance });
  return {
    large: { alphaV: loc(L.alphaV), betaV: loc(L.betaV), uniform: loc(L.uniform) },
    small: { alphaV: loc(S.alphaV), betaV: loc(S.betaV), uniform: loc(S.uniform) },
    frequency: { alphaA: F.alphaA, betaA: F.betaA },
    retrieval: { a2v: R.audioToVideo.recall, v2a: R.videoToAudio.recall, chance: R.audioToVideo.chance, n: R.audioToVideo.n },
    probe: { video: P.video.mean, audio: P.audio.mean, chance: P.chance, l2Video: P.folds[0].video.l2, l2Audio: P.folds[0].audio.l2 },
  };
}

// What a finished run must match to be reused (runs.json from before model.pooling has none: it predates the fair baselines).
const rampOf = (cfg) => ({ fraction: cfg.ramp, start: cfg.rampStart, threshold: cfg.rampStart === 'auto' ? cfg.rampThreshold : undefined });

async function runOne(cfg, lib, paths, sets, { preset, pooling }, seed) {
  const { train, config, ev } = lib;
  const runDir = path.join(cfg.out, 'runs', `${preset}${pooling === 'mean' ? '-meanpool' : ''}-s${seed}`);
  const ck = path.join(runDir, 'checkpoints');
  let trained = false;
  const last = train.latestCheckpoint(ck);
  let wall = 0;
  // A finished checkpoint trained with another ramp (runs.json dropped its record) is trained again, not reused.
  const ranWith =
    last && fs.existsSync(path.join(runDir, 'config.json'))
      ? JSON.parse(fs.readFileSync(path.join(runDir, 'config.json'), 'utf8')).loss
      : undefined;
  const otherRamp =
    ranWith &&
    JSON.stringify([ranWith.rampFraction, ranWith.rampStart, ranWith.rampStart === 'auto' ? ranWith.rampThreshold : 0]) !==
      JSON.stringify([cfg.ramp, cfg.rampStart, cfg.rampStart === 'auto' ? cfg.rampThreshold : 0]);
  if (!last || last.step < cfg.steps || otherRamp) {
    fs.rmSync(runDir, { recursive: true, force: true });
    const c = config.resolveConfig({
      preset: 'tiny',
      seed,
      ...(cfg.threads ? { threads: cfg.threads } : {}),
      model: { pooling },
      loss: { preset, rampFraction: cfg.ramp, rampStart: cfg.rampStart, rampThreshold: cfg.rampThreshold },
      data: { source: paths.main, batchSize: cfg.batch, cacheDir: path.join(cfg.out, 'cache') },
      train: { steps: cfg.steps, runDir, checkpointEvery: cfg.steps, keepLast: 1 },
    });
    const s = await train.train(c, {
      progress: false,
      log: (l) => {
        if (/^epoch|skip/.test(l)) log(`  ${l}`);
      },
    });
    wall = s.wallSeconds;
    trained = true;
    log(
      `  trained ${preset} (${pooling} pool) seed ${seed}: ${s.stepsDone} steps in ${s.wallSeconds.toFixed(0)} s, last loss ${s.last.loss.toFixed(3)} (L_con ${s.last.lossCon.toFixed(3)}, L_v ${s.last.lossV.toFixed(3)}, L_a ${s.last.lossA.toFixed(3)})`,
    );
  }
  const t0 = Date.now();
  const m = await ev.loadCheckpoint(runDir);
  try {
    const gt = (dir) =>
      ev.synthGroundTruthOf(dir, sets.clip, { nMels: m.config.logmel.nMels, fMin: m.config.logmel.fMin, fMax: m.config.logmel.fMax });
    const test = await ev.evaluateModel(m.model, {
      config: m.config,
      clips: sets.test,
      tasks: ['retrieval', 'localization', 'frequency'],
      gtOf: gt(paths.main),
    });
    const large = await ev.evaluateModel(m.model, { config: m.config, clips: sets.large, tasks: ['localization'], gtOf: gt(paths.large) });
    const probe = await ev.linearProbe(m.model, sets.ds, { clip: sets.clip, batches: sets.probe });
    const metrics = pick({ test: test.results, large: large.results, probe });
    const kept = cfg.verdict ? verdict.keepRun(lib, cfg.out, runDir, test, large.results, probe) : {};
    log(
      `  evaluated in ${((Date.now() - t0) / 1000).toFixed(0)} s: large beta_v cIoU@0.5 ${(100 * metrics.large.betaV.ciou50).toFixed(1)}%, small beta_v pointing ${(100 * metrics.small.betaV.pointing).toFixed(1)}%, probe video ${(100 * metrics.probe.video).toFixed(1)}% audio ${(100 * metrics.probe.audio).toFixed(1)}%, R@1 a->v ${(100 * metrics.retrieval.a2v[1]).toFixed(1)}%`,
    );
    return {
      preset,
      pooling,
      ramp: rampOf(cfg),
      rampStartedAt: m.state.rampStart ?? null,
      seed,
      steps: m.state.step,
      trainSeconds: trained ? wall : undefined,
      evalSeconds: (Date.now() - t0) / 1000,
      metrics,
      finalLoss: readLast(path.join(runDir, 'metrics.jsonl')),
      ...kept,
    };
  } finally {
    m.model.dispose();
  }
}

function readLast(file) {
  try {
    const lines = fs.readFileSync(file, 'utf8').trim().split('\n');
    const m = JSON.parse(lines[lines.length - 1]);
    return { loss: m.loss, lossCon: m.lossCon, lossV: m.lossV, lossA: m.lossA };
  } catch {
    return undefined;
  }
}

function meanStd(v) {
  const m = v.reduce((a, b) => a + b, 0) / v.length;
  const s = v.length > 1 ? Math.sqrt(v.reduce((a, b) => a + (b - m) ** 2, 0) / (v.length - 1)) : 0;
  return { m, s, n: v.length };
}

function get(o, keyPath) {
  return keyPath.split('.').reduce((x, k) => (x == null ? undefined : x[k]), o);
}

function cell(runs, keyPath, scale = 100, digits = 1) {
  const v = runs.map((r) => get(r.metrics, keyPath)).filter((x) => typeof x === 'number' && Number.isFinite(x));
  if (!v.length) return '-';
  const { m, s, n } = meanStd(v);
  return n > 1 ? `${(m * scale).toFixed(digits)} ± ${(s * scale).toFixed(digits)}` : `${(m * scale).toFixed(digits)}`;
}

function writeResults(cfg, all, meta) {
  const by = variants(cfg)
    .map((v) => ({ p: label(v), runs: all.filter((r) => sameVariant(r, v)) }))
    .filter((x) => x.runs.length);
  const any = all[0];
  const chance = (keyPath, scale = 100) => (any ? (get(any.metrics, keyPath) * scale).toFixed(1) : '-');
  const row = (cells) => `| ${cells.join(' | ')} |`;
  const table = (head, rows) => [row(head), row(head.map(() => '---')), ...rows.map(row)].join('\n');
  const seedsNote = cfg.seeds > 1 ? `mean ± std over ${cfg.seeds} seeds` : 'one seed (no spread)';
  const lines = [
    `# Results: the loss ablation on synthetic data${cfg.quick ? ' (QUICK SMOKE RUN)' : ''}`,
    '',
    cfg.quick
      ? `> **This is the output of \`npm run ablation -- --quick\`: ${cfg.steps} steps, ${cfg.seeds} seed, ${cfg.clips} clips. It proves the pipeline runs end to end; the numbers are NOT the ablation and do not separate the presets.** Run the full ablation (below) to replace this file.`
      : `Measured by \`npm run ablation\` (scripts/ablation.js).`,
    '',
    `Written ${meta.date} on ${meta.host}: ${meta.cpus} CPU cores (load average ${meta.load} when written), libtorch ${meta.torch}, Node ${process.version}. Training + evaluation time summed over the runs: ${(all.reduce((a, r) => a + (r.trainSeconds || 0) + (r.evalSeconds || 0), 0) / 60).toFixed(1)} min; this invocation (data, decoding, runs not done before): ${(meta.seconds / 60).toFixed(1)} min.`,
    '',
    '## Setup',
    '',
    `- Model: \`tiny\` preset (method.md section 2: R(2+1)D-18 and ResNet-18 layouts at widths 16/32/64/128, 4 frames of 64x64 at 8 fps, 2 s of audio, 64 mel bins -> 8 frequency bands, an 8x8 visual map), Adam lr 1e-3 with cosine decay, lambda ramp over ${Math.round(cfg.ramp * 100)}% of the steps, ${cfg.rampStart === 'auto' ? `starting when the in-batch retrieval accuracy first reaches ${cfg.rampThreshold} (loss.rampStart auto; the step is in the runs table)` : `from step ${cfg.rampStart}`}.`,
    `- Pooling (model.pooling, independent of the preset): attention for every preset; the baselines also with ${cfg.baselinePooling.filter((p) => p !== 'attention').join(', ') || 'no other'} pooling. With attention the scorers g_v, g_a train through L_con in the baselines too; the projection's BatchNorm sees the same inputs in every row (method.md s5).`,
    `- Training: ${cfg.steps} steps of batch ${cfg.batch} per run, presets ${cfg.presets.join(', ')}, seeds ${Array.from({ length: cfg.seeds }, (_, i) => i + 1).join(', ')} (seed = model init, augmentation and data order).`,
    `- Data: \`synthesize({ clips: ${cfg.clips}, seed: 1, size: 64, fps: 8, seconds: 3, classes: 8, splits: [0.7, 0.15, 0.15] })\` for training (train split), the linear probe (train / val / test) and the ordinary test set (1-3 objects, box side 16-30% of the frame); a large-object set \`synthesize({ clips: ${cfg.large}, seed: 2, largeObjects: true, ... })\` (one sounding object covering 25-50% of the frame) for cIoU.`,
    "- Evaluation (docs/evaluation.md): eval-mode centre clips; localisation by the LVS / EZ-VSL protocol (224x224 bilinear upsampling, median threshold, cIoU@0.5, AUC) plus pointing accuracy and attention mass in the GT box; GT = union of the sounding objects' boxes over the clip's frames. Frequency grounding: mass and argmax of alpha_a / beta_a in the sounding objects' bands. Linear probe: pooled featV / featA, standardised, L2 logistic regression with the regulariser chosen on val (1e-5..1), refitted on train+val, scored on test (8 classes = the dominant sounding object). Retrieval: recall@1 over the test clips.",
    `- Every number is a percentage, ${seedsNote}.`,
    '',
    '## Localisation on the large-object set (cIoU is meaningful here)',
    '',
    table(
      [
        'preset',
        'alpha_v cIoU@0.5',
        'alpha_v AUC',
        'alpha_v pointing',
        'alpha_v mass',
        'beta_v cIoU@0.5',
        'beta_v AUC',
        'beta_v pointing',
        'beta_v mass',
      ],
      by
        .map(({ p, runs }) => [
          p,
          cell(runs, 'large.alphaV.ciou50'),
          cell(runs, 'large.alphaV.auc'),
          cell(runs, 'large.alphaV.pointing'),
          cell(runs, 'large.alphaV.mass'),
          cell(runs, 'large.betaV.ciou50'),
          cell(runs, 'large.betaV.auc'),
          cell(runs, 'large.betaV.pointing'),
          cell(runs, 'large.betaV.mass'),
        ])
        .concat([
          [
            'uniform map (chance)',
            chance('large.uniform.ciou50'),
            chance('large.uniform.auc'),
            chance('large.alphaV.chance'),
            chance('large.alphaV.chance'),
            chance('large.uniform.ciou50'),
            chance('large.uniform.auc'),
            chance('large.betaV.chance'),
            chance('large.betaV.chance'),
          ],
        ]),
    ),
    '',
    "AUC is given x100. Chance of pointing and mass = mean GT area share; the uniform map's cIoU@0.5 / AUC is what a map without information scores (its mask is the whole frame).",
    '',
    '## Localisation on the ordinary test split (small objects: pointing and mass)',
    '',
    table(
      ['preset', 'alpha_v pointing', 'alpha_v mass', 'beta_v pointing', 'beta_v mass', 'beta_v cIoU@0.5'],
      by
        .map(({ p, runs }) => [
          p,
          cell(runs, 'small.alphaV.pointing'),
          cell(runs, 'small.alphaV.mass'),
          cell(runs, 'small.betaV.pointing'),
          cell(runs, 'small.betaV.mass'),
          cell(runs, 'small.betaV.ciou50'),
        ])
        .concat([
          [
            'chance',
            chance('small.alphaV.chance'),
            chance('small.alphaV.chance'),
            chance('small.betaV.chance'),
            chance('small.betaV.chance'),
            chance('small.uniform.ciou50'),
          ],
        ]),
    ),
    '',
    '## Frequency grounding, linear probe, retrieval (ordinary test split)',
    '',
    table(
      [
        'preset',
        'alpha_a pointing',
        'alpha_a mass',
        'beta_a pointing',
        'beta_a mass',
        'probe video',
        'probe audio',
        'R@1 a->v',
        'R@1 v->a',
      ],
      by
        .map(({ p, runs }) => [
          p,
          cell(runs, 'frequency.alphaA.pointing'),
          cell(runs, 'frequency.alphaA.mass'),
          cell(runs, 'frequency.betaA.pointing'),
          cell(runs, 'frequency.betaA.mass'),
          cell(runs, 'probe.video'),
          cell(runs, 'probe.audio'),
          cell(runs, 'retrieval.a2v.1'),
          cell(runs, 'retrieval.v2a.1'),
        ])
        .concat([
          [
            'chance',
            chance('frequency.alphaA.chance'),
            chance('frequency.alphaA.chance'),
            chance('frequency.betaA.chance'),
            chance('frequency.betaA.chance'),
            chance('probe.chance'),
            chance('probe.chance'),
            chance('retrieval.chance.1'),
            chance('retrieval.chance.1'),
          ],
        ]),
    ),
    '',
    `Retrieval over ${any ? any.metrics.retrieval.n : '-'} test clips. Note that the synthetic classes repeat across clips, so a retrieval "miss" can be a clip of the same class.`,
    '',
    '## Runs',
    '',
    table(
      ['preset', 'seed', 'steps', 'ramp started at', 'train s', 'final loss (L_con / L_v / L_a)'],
      all.map((r) => [
        label(r),
        r.seed,
        r.steps,
        r.rampStartedAt ?? '-',
        r.trainSeconds === undefined ? '-' : r.trainSeconds.toFixed(0),
        r.finalLoss
          ? `${r.finalLoss.loss.toFixed(3)} (${r.finalLoss.lossCon.toFixed(3)} / ${r.finalLoss.lossV.toFixed(3)} / ${r.finalLoss.lossA.toFixed(3)})`
          : '-',
      ]),
    ),
    '',
    '## Reproduce',
    '',
    '```sh',
    'npm run build:ts',
    `npm run ablation${cfg.quick ? ' -- --quick' : ''}      # ${cfg.quick ? 'this smoke run' : 'this table'}`,
    cfg.quick
      ? 'npm run ablation                 # the full ablation: 5 presets x 3 seeds x 100 steps of batch 32, writes docs/results.md'
      : 'npm run ablation -- --quick      # a smoke run in a few minutes',
    'npm run ablation -- --steps 300 --out runs/ablation-300   # longer training (about 3x the time)',
    'cmac eval all --checkpoint runs/ablation/runs/cmac-s1 --data runs/ablation/data/main --report eval.html   # one run in detail',
    '```',
    '',
    `Raw per-run metrics: \`${path.relative(root, path.join(cfg.out, 'runs.json'))}\`.`,
    '',
  ];
  fs.mkdirSync(path.dirname(cfg.results), { recursive: true });
  fs.writeFileSync(cfg.results, lines.join('\n'));
  log(`wrote ${cfg.results}`);
}

async function main() {
  const cfg = parseArgs(process.argv.slice(2));
  const lib = load();
  if (cfg.threads) lib.info.setNumThreads(cfg.threads);
  fs.mkdirSync(cfg.out, { recursive: true });
  const t0 = Date.now();
  log(
    `${cfg.quick ? 'QUICK ' : ''}ablation: presets ${cfg.presets.join(', ')}, ${cfg.seeds} seed(s), ${cfg.steps} steps of batch ${cfg.batch}, out ${cfg.out}`,
  );
  const paths = await ensureData(cfg, lib.data);
  const sets = await decodeSets(cfg, paths, lib);
  const doneFile = path.join(cfg.out, 'runs.json');
  let done = fs.existsSync(doneFile) ? JSON.parse(fs.readFileSync(doneFile, 'utf8')) : [];
  const stale = done.filter((r) => !r.pooling).length; // written before model.pooling: other baselines, other BatchNorm inputs
  if (stale) log(`ignoring ${stale} run(s) in ${doneFile} that predate model.pooling (baselines then pooled by mean only)`);
  // The verdict's baselines have no L_v / L_a: their ramp settings change nothing, so any ramp matches.
  const sameRamp = (r) => (cfg.verdict && baselines.includes(r.preset)) || JSON.stringify(r.ramp) === JSON.stringify(rampOf(cfg));
  done = done.filter(
    (r) =>
      r.pooling &&
      r.steps === cfg.steps &&
      sameRamp(r) &&
      (!cfg.verdict || (r.clipScores && fs.existsSync(path.join(cfg.out, r.clipScores)))),
  );
  if (cfg.verdict && cfg.verdict.baselinesFrom) {
    for (const r of verdict.reusedBaselines(cfg, done, log)) done.push(r);
    fs.writeFileSync(doneFile, JSON.stringify(done, null, 1) + '\n');
  }
  for (let seed = 1; seed <= cfg.seeds; seed++) {
    for (const v of variants(cfg)) {
      if (done.some((r) => sameVariant(r, v) && r.seed === seed)) {
        log(`${v.preset} (${v.pooling} pool) seed ${seed}: done earlier`);
        continue;
      }
      log(`${v.preset} (${v.pooling} pool) seed ${seed}`);
      const r = await runOne(cfg, lib, paths, sets, v, seed);
      done.push(r);
      fs.writeFileSync(doneFile, JSON.stringify(done, null, 1) + '\n');
    }
  }
  const all = done.filter((r) => variants(cfg).some((v) => sameVariant(r, v)) && r.seed <= cfg.seeds);
  const info = lib.info.info();
  if (cfg.verdict) verdict.write(cfg, all, lib.ev, log);
  writeResults(cfg, all, {
    date: new Date().toISOString().slice(0, 16).replace('T', ' '),
    host: `${os.type()} ${os.release()}`,
    cpus: os.cpus().length,
    torch: info.torchVersion,
    load: os
      .loadavg()
      .map((x) => x.toFixed(1))
      .join(' / '),
    seconds: (Date.now() - t0) / 1000,
  });
  log(`total ${((Date.now() - t0) / 60000).toFixed(1)} min`);
}

main().catch((e) => {
  process.stderr.write(`ablation: ${e.stack || e}\n`);
  process.exit(1);
});
