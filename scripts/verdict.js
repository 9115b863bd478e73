#!/usr/bin/env node
// The verdict of issue 14 item 7, run by `node scripts/ablation.js --verdict`
// (docs/results.md "The verdict: procedure"): 4 configurations x 3 seeds
// trained on the synthetic set, evaluated on the ordinary test split and on
// the large-object set; every run's per-clip scores are kept (perclip.json in
// its run folder) so that lib/eval/bootstrap.ts can resample seeds and test
// clips; the analysis (lib/eval/verdict.ts) gives per-metric means, 95%
// intervals of cmac - best baseline, the four targets and one paragraph.
//
// This file holds the verdict's part of ablation.js (its rows, defaults and
// report). Run alone it re-writes the report from a finished folder without
// training or decoding anything:
//
//   node scripts/verdict.js --out runs/verdict [--bootstrap 10000] [--bootstrap-seed 1]
'use strict';
const fs = require('fs');
const path = require('path');

const root = path.join(__dirname, '..');
const docsResults = path.join(root, 'docs', 'results.md');
const markers = ['<!-- verdict:begin -->', '<!-- verdict:end -->'];

/** The rows of the verdict: the three baselines and cmac (its ramp from --cmac-ramp). */
const variants = [
  { preset: 'xmodal', pooling: 'mean' },
  { preset: 'xmodal', pooling: 'attention' },
  { preset: 'xmodal+within', pooling: 'attention' },
  { preset: 'cmac', pooling: 'attention' },
];
const keyOf = (v) => `${v.preset}/${v.pooling}`;
const labelOf = (v) => (v.preset === 'cmac' ? '`cmac`' : `\`${v.preset}\` (${v.pooling} pool)`);
const candidate = keyOf(variants[3]);

const help = `  --verdict            the verdict of issue 14 item 7 (docs/results.md): xmodal (mean pool), xmodal (attention pool),
                       xmodal+within (attention pool), cmac; 3 seeds (quick: 2), 800 steps (quick: 16); per-clip scores of every
                       run, bootstrap CIs of cmac - best baseline, the targets; writes <out>/verdict.md and verdict.json
                       (out: runs/verdict, quick: runs/verdict-quick) and, for a full run, the verdict block of docs/results.md
  --cmac-ramp <r>      the cmac row's lambda ramp: auto (default: loss.rampStart auto at --ramp-threshold, over --ramp of the steps)
                       or a share of the steps from step 0 (0.1, 0.5: issue 14 item 6's fixed ramps)
  --baselines-from <dir>  reuse the baseline runs (and the clips) of another verdict folder: only the cmac row trains
                       (issue 14 item 6: --cmac-ramp 0.1 / 0.5 against the auto ramp, baselines trained once)
  --bootstrap <n>      bootstrap replicates (default 10000, quick: 2000)
  --bootstrap-seed <s> seed of the bootstrap draws (default 1)`;

/**
 * Applies --verdict to ablation.js's parsed config: its rows, defaults for
 * the options not given, the cmac ramp (the baselines have no L_v / L_a, so
 * the ramp settings change nothing in their training) and where it writes.
 * @param {Record<string, any>} cfg  ablation.js's config (changed in place)
 * @param {Record<string, any>} o    the options as given
 */
function configure(cfg, o) {
  for (const [flag, given] of [
    ['--presets', o.presets],
    ['--baseline-pooling', o.baselinePooling],
    ['--ramp-start', o.rampStart !== undefined],
  ]) {
    if (given)
      throw new Error(
        `${flag} cannot be combined with --verdict: its rows are fixed (xmodal mean/attention pool, xmodal+within, cmac); set the cmac ramp with --cmac-ramp auto|<share>`,
      );
  }
  const q = cfg.quick;
  const ramp = o.cmacRamp ?? 'auto';
  if (ramp !== 'auto' && !(Number(ramp) > 0 && Number(ramp) <= 1))
    throw new Error(`--cmac-ramp must be auto or a share of the steps in (0, 1] such as 0.1 or 0.5, got ${ramp}`);
  if (ramp !== 'auto' && o.ramp !== undefined) throw new Error('--ramp and --cmac-ramp <share> both set the ramp share: give one');
  cfg.presets = ['xmodal', 'xmodal+within', 'cmac'];
  cfg.baselinePooling = ['attention', 'mean'];
  cfg.rampStart = ramp === 'auto' ? 'auto' : 0;
  if (ramp !== 'auto') cfg.ramp = Number(ramp);
  cfg.out = path.resolve(o.out || (q ? 'runs/verdict-quick' : 'runs/verdict'));
  cfg.seeds = o.seeds || (q ? 2 : 3);
  cfg.steps = o.steps || (q ? 16 : 800);
  cfg.results = o.results ? path.resolve(o.results) : path.join(cfg.out, 'results.md');
  if (cfg.results === docsResults)
    throw new Error(
      '--results docs/results.md would replace the whole file in --verdict mode; the full run writes only its verdict block there',
    );
  const bootstrap = o.bootstrap ?? (q ? 2000 : 10000);
  if (!(Number.isInteger(bootstrap) && bootstrap >= 100)) throw new Error(`--bootstrap must be an integer >= 100, got ${o.bootstrap}`);
  const bootstrapSeed = o.bootstrapSeed ?? 1;
  if (!Number.isInteger(bootstrapSeed)) throw new Error(`--bootstrap-seed must be an integer, got ${o.bootstrapSeed}`);
  const baselinesFrom = o.baselinesFrom ? path.resolve(o.baselinesFrom) : undefined;
  if (baselinesFrom && !fs.existsSync(path.join(baselinesFrom, 'runs.json')))
    throw new Error(`--baselines-from ${o.baselinesFrom}: no runs.json there (a folder of ablation.js --verdict)`);
  if (baselinesFrom === cfg.out) throw new Error('--baselines-from names the --out folder itself');
  // A folder that reuses another's baselines is a side comparison: it never writes docs/results.md.
  cfg.verdict = { cmacRamp: ramp, bootstrap, bootstrapSeed, docs: !q && o.docs !== false && !baselinesFrom, baselinesFrom };
}

/**
 * The baseline runs of --baselines-from that this folder lacks (same steps, per-clip scores kept),
 * as records whose clipScores point into that folder; logged one by one.
 * @param {Record<string, any>} cfg
 * @param {any[]} done  this folder's runs.json records
 * @param {(line: string) => void} log
 */
function reusedBaselines(cfg, done, log) {
  const from = cfg.verdict.baselinesFrom;
  const theirs = JSON.parse(fs.readFileSync(path.join(from, 'runs.json'), 'utf8'));
  const out = [];
  for (const v of variants.filter((x) => x.preset !== 'cmac'))
    for (let seed = 1; seed <= cfg.seeds; seed++) {
      if (done.some((r) => r.preset === v.preset && r.pooling === v.pooling && r.seed === seed)) continue;
      const r = theirs.find(
        (x) =>
          x.preset === v.preset &&
          x.pooling === v.pooling &&
          x.seed === seed &&
          x.steps === cfg.steps &&
          x.clipScores &&
          fs.existsSync(path.join(from, x.clipScores)),
      );
      if (!r) continue;
      out.push({ ...r, clipScores: path.relative(cfg.out, path.join(from, r.clipScores)), reusedFrom: from });
      log(`${v.preset} (${v.pooling} pool) seed ${seed}: reused from ${from}`);
    }
  return out;
}

/**
 * Keeps one run's per-clip scores (perclip.json in its folder) and its
 * training tail; returns the fields ablation.js adds to the run's record.
 * @param {any} lib  ablation.js's loaded modules
 * @param {string} out  the work folder (paths in runs.json are relative to it)
 * @param {string} runDir
 * @param {{ results: any, outputs: any }} test  evaluateModel() on the test split
 * @param {any} large  evaluateModel(...).results on the large-object set
 * @param {any} probe  linearProbe()
 */
function keepRun(lib, out, runDir, test, large, probe) {
  const file = path.join(runDir, 'perclip.json');
  fs.writeFileSync(file, JSON.stringify(lib.ev.runClipScores(test, large, probe)) + '\n');
  const tail = lib.ev.trainingTail(lib.train.readMetrics(path.join(runDir, 'metrics.jsonl')));
  return { clipScores: path.relative(out, file), tail };
}

/** The verdict's settings that a re-analysis needs (verdict-config.json). */
const settingsOf = (cfg) => ({
  quick: cfg.quick,
  steps: cfg.steps,
  batch: cfg.batch,
  seeds: cfg.seeds,
  clips: cfg.clips,
  large: cfg.large,
  ramp: cfg.ramp,
  rampStart: cfg.rampStart,
  rampThreshold: cfg.rampThreshold,
  ...cfg.verdict,
});

const pct = (x) => (100 * x).toFixed(1);
/** A path as the report shows it: relative to the repository when inside it, else absolute. */
const shown = (p) => {
  const r = path.relative(root, p);
  return r && !r.startsWith('..') ? r : p;
};

/**
 * Analyses the finished runs and writes <out>/verdict.md, verdict.json and
 * (full run, --verdict without --no-docs) docs/results.md's verdict block.
 * @param {Record<string, any>} cfg
 * @param {any[]} all  runs.json records of the verdict's rows
 * @param {any} ev  the eval module (dist/eval)
 * @param {(line: string) => void} log
 */
function write(cfg, all, ev, log) {
  const v = cfg.verdict;
  fs.writeFileSync(path.join(cfg.out, 'verdict-config.json'), JSON.stringify(settingsOf(cfg), null, 1) + '\n');
  const missing = all.filter((r) => !r.clipScores || !fs.existsSync(path.join(cfg.out, r.clipScores)));
  if (missing.length)
    throw new Error(
      `verdict: ${missing.length} run(s) have no per-clip scores (${missing.map((r) => `${r.preset}/${r.pooling} seed ${r.seed}`).join(', ')}); run ablation.js --verdict again on ${cfg.out} to evaluate them`,
    );
  const runs = all.map((r) => ({
    config: keyOf(r),
    seed: r.seed,
    clips: JSON.parse(fs.readFileSync(path.join(cfg.out, r.clipScores), 'utf8')),
  }));
  const configs = variants.map((x) => ({ key: keyOf(x), label: labelOf(x), baseline: x.preset !== 'cmac' }));
  const t0 = Date.now();
  const analysis = ev.analyseVerdict(configs, runs, { candidate, resamples: v.bootstrap, seed: v.bootstrapSeed });
  log(`verdict: bootstrap (${v.bootstrap} replicates x ${analysis.metrics.length} metrics) in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  const rampText =
    v.cmacRamp === 'auto'
      ? `cmac's lambda ramp: loss.rampStart auto (starts when the in-batch retrieval accuracy reaches ${cfg.rampThreshold}), over ${pct(cfg.ramp)}% of the steps (\`--cmac-ramp auto\`, the default: issue 14 item 6's comparison of auto with the fixed 10% / 50% ramps is not recorded for the current code, so the verdict does not claim auto is the best; \`--cmac-ramp 0.1\` or \`0.5\` with another --out runs the others).`
      : `cmac's lambda ramp: from step 0 over ${pct(cfg.ramp)}% of the steps (\`--cmac-ramp ${v.cmacRamp}\`).`;
  const unstarted = all.filter((r) => r.preset === 'cmac' && v.cmacRamp === 'auto' && r.rampStartedAt == null).map((r) => r.seed);
  const ramps = unstarted.length
    ? ` In the cmac run(s) of seed ${unstarted.join(', ')} the auto ramp never started: they trained with lambda 0, as \`xmodal+within\`.`
    : '';
  const training = {
    steps: cfg.steps,
    batch: cfg.batch,
    quick: cfg.quick,
    note: rampText + ramps,
    baselineCon: all.filter((r) => r.preset === 'xmodal').map((r) => ({ config: keyOf(r), seed: r.seed, ...r.tail })),
  };
  const body = ev.verdictMarkdown(analysis, training);
  const row = (cells) => `| ${cells.join(' | ')} |`;
  const lines = [
    `# The verdict: CMAC against the best baseline, with bootstrap intervals${cfg.quick ? ' (QUICK SMOKE RUN)' : ''}`,
    '',
    cfg.quick
      ? `> **Output of \`node scripts/ablation.js --verdict --quick\`: ${cfg.steps} steps, ${cfg.seeds} seeds, ${cfg.clips} clips. It proves the verdict pipeline end to end; its numbers decide nothing.**\n`
      : '',
    body,
    '',
    '## Procedure',
    '',
    `- Rows: ${configs.map((c) => c.label).join(', ')}; seeds ${analysis.seeds.join(', ')} (seed = model init, augmentation and data order; row r of every configuration is the same seed), ${cfg.steps} steps of batch ${cfg.batch}, \`tiny\` preset. ${rampText}`,
    `- Training data: \`synthesize({ clips: ${cfg.clips}, seed: 1, ... })\` (train split); evaluation on its test split (retrieval, localisation, frequency grounding; linear probe train / val / test) and on the large-object set \`synthesize({ clips: ${cfg.large}, seed: 2, largeObjects: true })\`, every run on the same clips decoded once.`,
    "- Per run, `perclip.json` in its run folder keeps: per test clip with GT, alpha_v and beta_v pointing hit and cIoU (both sets), alpha_a / beta_a frequency pointing hit, the 1-based rank of each clip's match and its expected recall@1 both ways, and per probe test item whether the prediction is right.",
    `- Intervals (lib/eval/bootstrap.ts): each of ${v.bootstrap} replicates draws the seeds and the test clips with replacement (one draw shared by cmac and the baseline: paired) and averages the drawn seeds x clips; 95% = the 2.5th and 97.5th percentiles (numpy's linear rule). The best baseline is chosen per metric by its mean over all its runs, once (not re-chosen per replicate).`,
    "- Targets (issue 14): (1) cmac - best baseline >= 10 points of beta_v pointing on large objects, CI above 0; (2) no loss of linear-probe accuracy, read as: the CI of cmac - best baseline has its lower end >= 0 for the video and the audio probe (the paragraph also says whether a loss is significant); (3) cmac's alpha_v pointing >= 60% on large objects (its mean); (4) cmac's alpha_a or beta_a frequency pointing >= 2x chance (mean GT band share). L_con left chance: the mean L_con of each xmodal run over its last 10% of steps <= 0.9 ln(batch).",
    '',
    '## Runs',
    '',
    row([
      'row',
      'seed',
      'steps',
      'ramp started at',
      'train s',
      `L_con, last ${all[0]?.tail?.steps ?? '-'} steps`,
      'in-batch retrieval acc., same steps',
    ]),
    row(['---', '---', '---', '---', '---', '---', '---']),
    ...all.map((r) =>
      row([
        labelOf(r),
        r.seed,
        r.steps,
        r.preset === 'cmac' ? (r.rampStartedAt ?? 'not started') : '-',
        r.trainSeconds === undefined ? '-' : r.trainSeconds.toFixed(0),
        r.tail ? r.tail.lossCon.toFixed(3) : '-',
        r.tail ? r.tail.retrievalAcc.toFixed(3) : '-',
      ]),
    ),
    '',
    `The per-preset tables of the same runs: \`${shown(cfg.results)}\`; the analysis as JSON: \`${shown(path.join(cfg.out, 'verdict.json'))}\`.`,
    '',
    '```sh',
    `node scripts/ablation.js --verdict${cfg.quick ? ' --quick' : ''}${v.cmacRamp !== 'auto' ? ` --cmac-ramp ${v.cmacRamp}` : ''} --out ${shown(cfg.out)}   # resumable: finished runs are kept`,
    `node scripts/verdict.js --out ${shown(cfg.out)}   # re-analyse the finished runs only`,
    '```',
    '',
  ];
  const md = lines.filter((l, i) => l !== '' || lines[i - 1] !== '').join('\n');
  fs.writeFileSync(path.join(cfg.out, 'verdict.md'), md);
  fs.writeFileSync(path.join(cfg.out, 'verdict.json'), JSON.stringify({ settings: settingsOf(cfg), analysis }, null, 1) + '\n');
  log(
    `wrote ${path.join(cfg.out, 'verdict.md')}: ${analysis.targets.filter((t) => t.met).length} of ${analysis.targets.length} targets met`,
  );
  if (v.docs)
    writeDocsBlock(
      docsResults,
      `${body}\n\nDetails: \`${shown(path.join(cfg.out, 'verdict.md'))}\` (written ${new Date().toISOString().slice(0, 16).replace('T', ' ')}).`,
      log,
    );
  return analysis;
}

/**
 * Replaces the text between the verdict markers of `file` (docs/results.md; the rest of the file is kept).
 * @param {string} file
 * @param {string} text
 * @param {(line: string) => void} log
 */
function writeDocsBlock(file, text, log) {
  const s = fs.readFileSync(file, 'utf8');
  const a = s.indexOf(markers[0]),
    b = s.indexOf(markers[1]);
  if (a < 0 || b < a) {
    log(`${shown(file)} has no ${markers[0]} ... ${markers[1]} block: not changed (paste verdict.md by hand)`);
    return false;
  }
  fs.writeFileSync(file, `${s.slice(0, a + markers[0].length)}\n${text}\n${s.slice(b)}`);
  log(`wrote the verdict block of ${shown(file)}`);
  return true;
}

module.exports = {
  reusedBaselines,
  variants,
  help,
  configure,
  keepRun,
  write,
  writeDocsBlock,
};

// Alone: re-analyse a finished verdict folder.
if (require.main === module) {
  const argv = process.argv.slice(2);
  const get = (flag) => {
    const i = argv.indexOf(flag);
    return i >= 0 ? argv[i + 1] : undefined;
  };
  if (argv.includes('--help') || !get('--out')) {
    process.stdout.write('usage: node scripts/verdict.js --out <verdict folder> [--bootstrap n] [--bootstrap-seed s] [--no-docs]\n');
    process.exit(argv.includes('--help') ? 0 : 2);
  }
  try {
    const out = path.resolve(/** @type {string} */ (get('--out')));
    const settingsFile = path.join(out, 'verdict-config.json');
    if (!fs.existsSync(settingsFile))
      throw new Error(`${settingsFile} not found: run node scripts/ablation.js --verdict --out ${get('--out')} first`);
    const cfg = { ...JSON.parse(fs.readFileSync(settingsFile, 'utf8')), out, results: path.join(out, 'results.md') };
    cfg.verdict = {
      cmacRamp: cfg.cmacRamp,
      bootstrap: get('--bootstrap') ? Number(get('--bootstrap')) : cfg.bootstrap,
      bootstrapSeed: get('--bootstrap-seed') ? Number(get('--bootstrap-seed')) : cfg.bootstrapSeed,
      docs: cfg.docs && !argv.includes('--no-docs'),
    };
    const done = JSON.parse(fs.readFileSync(path.join(out, 'runs.json'), 'utf8'));
    const ramp = JSON.stringify({
      fraction: cfg.ramp,
      start: cfg.rampStart,
      threshold: cfg.rampStart === 'auto' ? cfg.rampThreshold : undefined,
    });
    const all = done.filter(
      (r) => variants.some((x) => keyOf(x) === keyOf(r)) && r.seed <= cfg.seeds && r.steps === cfg.steps && JSON.stringify(r.ramp) === ramp,
    );
    write(cfg, all, require('../dist/eval'), (l) => process.stderr.write(`[verdict] ${l}\n`));
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    process.stderr.write(`${msg.startsWith('verdict: ') ? '' : 'verdict: '}${msg}\n`);
    process.exit(1);
  }
}
