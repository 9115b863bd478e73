// `cmac eval <linear-probe|finetune|retrieval|localization|frequency|all>`:
// evaluates a trained checkpoint (docs/evaluation.md).
import { Command } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { setNumThreads } from '../info';
import { writeReport } from '../report';
import { clipOf } from '../config';
import { openSource } from '../data';
import { readManifest } from '../data/sources';
import { loadCheckpoint, LoadedModel, readCheckpointState, resolveCheckpoint } from '../checkpoint';
import { evalLoader } from '../eval/collect';
import { DatasetLayout, openProbeDataset, ProbeDataset } from '../eval/datasets';
import { frameGeometries, groundTruthFor, isSynthFolder } from '../eval/evaluate';
import { checkProtocol, LocalizationProtocol } from '../eval/localization';
import { finetune } from '../eval/finetune';
import { linearProbe } from '../eval/probe';
import { ClipTask, evaluateModel, EvaluationResults } from '../eval/run';
import { evaluationSections } from '../viz/report';
import type { LocalizationSummary } from '../eval/localization';
import type { FrequencySummary } from '../eval/frequency';
import { fromCheck, numberAtLeast, numberInRange, oneOf, positiveInt, positiveIntList } from './args';

interface CommonOpts {
  checkpoint: string;
  data: string;
  json?: string;
  report?: string;
  threads?: number;
  batchSize: number;
  decoders: number;
  cacheDir?: string;
  quiet?: boolean;
}

interface ClipOpts extends CommonOpts {
  split?: string;
  annotations?: string;
  gtFrames: 'union' | 'middle';
  gtObjects: 'sounding' | 'dominant';
  clipsPerVideo: number;
  protocol?: LocalizationProtocol;
}

interface DatasetOpts extends CommonOpts {
  layout: DatasetLayout | 'auto';
  splits?: string;
  videos?: string;
  folds?: number[];
  clipsPerVideo?: number;
  valShare: number;
}

type ProbeOpts = DatasetOpts;

interface FinetuneOpts extends DatasetOpts {
  epochs: number;
  lr: number;
  batch: number;
  optimizer: 'sgd' | 'adam' | 'adamw';
  momentum: number;
  weightDecay: number;
  augment: boolean;
  device?: string;
  saveDir?: string;
  scratch?: boolean;
}

const pct = (v: number) => (Number.isFinite(v) ? `${(100 * v).toFixed(1)}%` : '-');
const f3 = (v: number) => (Number.isFinite(v) ? v.toFixed(3) : '-');

function addCommon(c: Command): Command {
  return c
    .requiredOption('--checkpoint <path>', 'run folder, its checkpoints/ folder, or a step-N.safetensors file')
    .requiredOption('--data <source>', 'data to evaluate on (see docs/evaluation.md)')
    .option('--json <file>', 'write the results as JSON')
    .option('--report <file>', 'write a self-contained HTML report (metrics, overlays, frequency maps, embeddings)')
    .option('--threads <n>', 'libtorch threads', positiveInt('--threads'))
    .option('--batch-size <n>', 'clips per forward pass', positiveInt('--batch-size'), 32)
    .option('--decoders <n>', 'ffmpeg decoder processes', positiveInt('--decoders'), 2)
    .option('--cache-dir <dir>', 'cache decoded eval clips here (re-runs skip ffmpeg)')
    .option('--quiet', 'no progress lines');
}

function addClipOptions(c: Command): Command {
  return addCommon(c)
    .option(
      '--split <name>',
      "split to use (default: 'test' for a cmac synth folder or a manifest with a 'test' split; all clips otherwise, with a warning when the manifest has other splits)",
    )
    .option(
      '--annotations <path>',
      'Flickr-SoundNet folder of .xml files, or a VGG-SS .json (default: the synthetic ground truth, or a manifest boxes column)',
    )
    .option('--gt-frames <how>', 'synthetic GT boxes over the clip: union | middle', 'union')
    .option('--gt-objects <which>', 'synthetic GT objects: sounding | dominant', 'sounding')
    .option('--clips-per-video <n>', 'uniformly spaced clips per video', positiveInt('--clips-per-video'), 1);
}

function addProtocol(c: Command): Command {
  return c.option(
    '--protocol <name>',
    "localisation protocol: 'ezvsl' (EZ-VSL's test.py) or 'lvs' (LVS's test.py); docs/evaluation.md",
    fromCheck((v) => checkProtocol(v, '--protocol')),
    'ezvsl',
  );
}

/** Applies --threads and returns the progress logger (stderr unless --quiet). */
function prepare(o: CommonOpts): (l: string) => void {
  if (o.threads) setNumThreads(o.threads);
  return o.quiet ? () => undefined : (l: string) => process.stderr.write(`${l}\n`);
}

async function withModel<T>(o: CommonOpts, fn: (m: LoadedModel, log: (l: string) => void) => Promise<T>): Promise<T> {
  const log = prepare(o);
  const m = await loadCheckpoint(o.checkpoint);
  log(`checkpoint ${m.ref.weights} (step ${m.state.step}, ${m.config.preset} preset, loss ${m.config.loss.preset})`);
  try {
    return await fn(m, log);
  } finally {
    m.model.dispose();
  }
}

const isSynth = isSynthFolder;

function synthClasses(data: string): string[] | undefined {
  try {
    return (JSON.parse(fs.readFileSync(path.join(data, 'classes.json'), 'utf8')) as { classes: { name: string }[] }).classes.map(
      (c) => c.name,
    );
  } catch {
    return undefined;
  }
}

/** The --layout, --splits, --videos, --folds, --clips-per-video and --val-share options of the labelled-data commands. */
function addDatasetOptions(c: Command, clipsHelp: string): Command {
  return c
    .option('--layout <name>', 'auto | synth | ucf101 | hmdb51 | esc50 | folder', 'auto')
    .option('--splits <dir>', 'folder of the split files (UCF101 ucfTrainTestlist/, HMDB51 testTrainMulti_7030_splits/)')
    .option('--videos <dir>', 'folder of the videos (or ESC-50 audio/) when not found under --data')
    .option('--folds <list>', 'standard splits / folds to run, e.g. 1 or 1,2,3 (default all)', positiveIntList('--folds'))
    .option('--clips-per-video <n>', clipsHelp, positiveInt('--clips-per-video'))
    .option(
      '--val-share <x>',
      'share of train held out for validation where the layout has none',
      numberInRange('--val-share', 0, 0.9),
      0.2,
    );
}

function openDataset(o: DatasetOpts, seed: number, log: (l: string) => void): ProbeDataset {
  const ds = openProbeDataset(o.data, { layout: o.layout, splits: o.splits, videos: o.videos, folds: o.folds, valShare: o.valShare, seed });
  log(`${ds.name}: ${ds.layout}, ${ds.classes.length} classes, ${ds.folds.length} fold(s), ${ds.modality}`);
  return ds;
}

function finish(results: EvaluationResults, o: CommonOpts, text: string, visuals?: Parameters<typeof evaluationSections>[1]): void {
  process.stdout.write(text + '\n');
  if (o.json) {
    fs.mkdirSync(path.dirname(path.resolve(o.json)), { recursive: true });
    fs.writeFileSync(o.json, JSON.stringify(results, null, 1) + '\n');
    process.stderr.write(o.quiet ? '' : `results: ${o.json}\n`);
  }
  if (o.report) {
    fs.mkdirSync(path.dirname(path.resolve(o.report)), { recursive: true });
    writeReport(o.report, `cmac evaluation: ${path.basename(results.checkpoint ?? '')}`, evaluationSections(results, visuals));
    process.stderr.write(o.quiet ? '' : `report: ${o.report}\n`);
  }
}

/** Human-readable lines of clip-task results. */
export function formatResults(r: EvaluationResults): string {
  const lines: string[] = [];
  const loc = (name: string, s: LocalizationSummary) =>
    `  ${name.padEnd(22)} cIoU@0.5 ${pct(s.ciou50).padStart(6)}  AUC ${f3(s.auc)}  mean cIoU ${f3(s.meanCiou)}  pointing ${pct(s.pointing).padStart(6)}  mass ${pct(s.mass).padStart(6)}  (chance ${pct(s.chance)})`;
  const fr = (name: string, s: FrequencySummary) =>
    `  ${name.padEnd(22)} pointing ${pct(s.pointing).padStart(6)}  mass ${pct(s.mass).padStart(6)}  (chance ${pct(s.chance)})`;
  if (r.localization) {
    const l = r.localization;
    const name = l.protocol === 'lvs' ? 'LVS' : 'EZ-VSL';
    const skipped = [
      l.unscored ? `${l.unscored} without GT skipped` : '',
      l.outsideCrop ? `${l.outsideCrop} with no GT pixel in the evaluated centre crop skipped` : '',
    ]
      .filter(Boolean)
      .join(', ');
    lines.push(
      `localisation (${name} protocol) on ${l.alphaV.n} clips${skipped ? ` (${skipped})` : ''}:`,
      loc('alpha_v (no audio)', l.alphaV),
      loc('beta_v (audio-guided)', l.betaV),
      loc('uniform map', l.uniform),
    );
    const uf = l.underflow;
    if (uf && (uf.alphaV || uf.betaV))
      lines.push(
        `  warning: probabilities underflowed to 0 in ${uf.alphaV} alpha_v / ${uf.betaV} beta_v map(s): their scoring maps are floored at ln(1e-45) (docs/evaluation.md)`,
      );
  }
  if (r.frequency) {
    const f = r.frequency;
    lines.push(
      `frequency grounding on ${f.alphaA.n} clips (${f.bands} bands over ${f.nMels} mel bins):`,
      fr('alpha_a (no video)', f.alphaA),
      fr('beta_a (vision-guided)', f.betaA),
    );
  }
  if (r.retrieval) {
    const x = r.retrieval;
    const rr = (name: string, s: typeof x.audioToVideo) =>
      `  ${name.padEnd(16)} R@1 ${pct(s.recall[1]).padStart(6)}  R@5 ${pct(s.recall[5]).padStart(6)}  R@10 ${pct(s.recall[10]).padStart(6)}  median rank ${s.medianRank}  (chance R@1 ${pct(s.chance[1])})`;
    lines.push(`retrieval on ${x.audioToVideo.n} clips:`, rr('audio -> video', x.audioToVideo), rr('video -> audio', x.videoToAudio));
  }
  if (r.linearProbe) {
    const p = r.linearProbe;
    lines.push(
      `linear probe on ${p.dataset} (${p.classes} classes, chance ${pct(p.chance)}${p.missing ? `, ${p.missing} item(s) unusable` : ''}):`,
    );
    for (const f of p.folds)
      lines.push(
        `  ${f.name.padEnd(14)}${f.video ? ` video ${pct(f.video.testAccuracy)} (l2 ${f.video.l2})` : ''}${f.audio ? ` audio ${pct(f.audio.testAccuracy)} (l2 ${f.audio.l2})` : ''}`,
      );
    if (p.video) lines.push(`  video (featV): ${pct(p.video.mean)} +- ${pct(p.video.std)}`);
    if (p.audio) lines.push(`  audio (featA): ${pct(p.audio.mean)} +- ${pct(p.audio.std)}`);
  }
  if (r.finetune) {
    const ft = r.finetune;
    const st = ft.settings;
    lines.push(
      `finetune on ${ft.dataset} (${ft.classes} classes, chance ${pct(ft.chance)}; ${st.epochs} epochs, ${st.optimizer} lr ${st.lr}, batch ${st.batchSize}${st.fromScratch ? ', from scratch' : ''}):`,
    );
    for (const f of ft.folds) {
      const first = f.epochs[0],
        last = f.epochs[f.epochs.length - 1];
      lines.push(
        `  ${f.name.padEnd(14)} test ${pct(f.testAccuracy).padStart(6)}  val ${pct(f.valAccuracy).padStart(6)} (epoch ${f.bestEpoch} kept)  train loss ${f3(first?.trainLoss ?? NaN)} -> ${f3(last?.trainLoss ?? NaN)}  (${f.nTrain} / ${f.nVal} / ${f.nTest} videos${f.missing ? `, ${f.missing} unusable` : ''})`,
      );
    }
    lines.push(`  video (finetuned): ${pct(ft.test.mean)} +- ${pct(ft.test.std)}`);
  }
  for (const [t, why] of Object.entries(r.skipped ?? {})) lines.push(`${taskNames[t as ClipTask]} skipped: ${why}`);
  return lines.join('\n');
}

/**
 * The split to evaluate when --split is not given: 'test' for a synth folder
 * or a manifest that has one; otherwise all clips, with a warning when the
 * manifest's rows have other splits (training clips would be scored too).
 */
async function defaultSplit(data: string, log: (l: string) => void): Promise<string | undefined> {
  if (isSynth(data)) return 'test';
  if (!/\.(csv|jsonl)$/i.test(data)) return undefined;
  const m = await readManifest(data);
  if (m.splits.includes('test')) {
    log(`manifest ${m.file} has splits ${m.splits.join(', ')}: evaluating split 'test' (--split NAME for another)`);
    return 'test';
  }
  if (m.splits.length)
    log(
      `warning: manifest ${m.file} has splits ${m.splits.join(', ')} but none named 'test': evaluating all ${m.entries.length} rows, training clips included (--split NAME to choose)`,
    );
  return undefined;
}

const taskNames: Record<ClipTask, string> = { retrieval: 'retrieval', localization: 'localisation', frequency: 'frequency grounding' };

/** What `cmac eval all` runs: every task the data has ground truth for; the others named with the reason, not silently dropped. */
async function allTasks(
  o: ClipOpts,
  loader: ReturnType<typeof evalLoader>,
  log: (l: string) => void,
): Promise<{ tasks: ClipTask[]; skipped: Partial<Record<ClipTask, string>> }> {
  const synth = isSynth(o.data);
  const boxes = !synth && !o.annotations && (await loader.init()).some((r) => Array.isArray(r.boxes) && r.boxes.length > 0);
  const tasks: ClipTask[] = ['retrieval'];
  const skipped: Partial<Record<ClipTask, string>> = {};
  if (synth || o.annotations || boxes) tasks.push('localization');
  else skipped.localization = "no ground-truth boxes (a manifest 'boxes' column, --annotations, or synthetic data)";
  if (synth) tasks.push('frequency');
  else skipped.frequency = 'needs ground-truth mel bins, which only synthetic data has';
  for (const [t, why] of Object.entries(skipped)) log(`eval all: ${taskNames[t as ClipTask]} skipped: ${why}`);
  return { tasks, skipped };
}

async function runClipTasks(asked: ClipTask[] | 'all', o: ClipOpts): Promise<void> {
  await withModel(o, async ({ model, config, state, ref }, log) => {
    const clip = clipOf(config);
    const split = o.split ?? (await defaultSplit(o.data, log));
    const source = openSource(o.data, split);
    const loader = evalLoader(source, clip, {
      batchSize: o.batchSize,
      decoders: o.decoders,
      clipsPerVideo: o.clipsPerVideo,
      cacheDir: o.cacheDir,
      log,
    });
    const t0 = Date.now();
    let results: EvaluationResults, outputs, gtOf, skipped: Partial<Record<ClipTask, string>>;
    try {
      let tasks: ClipTask[];
      ({ tasks, skipped } = asked === 'all' ? await allTasks(o, loader, log) : { tasks: asked, skipped: {} });
      const needGt = tasks.includes('localization') || tasks.includes('frequency');
      // Boxes normalised to the whole frame are registered through each video's eval crop (its size from a probe).
      const frames =
        (needGt || o.report) && (o.annotations || !isSynthFolder(o.data))
          ? await frameGeometries(source, await loader.init(), { log })
          : undefined;
      gtOf =
        needGt || o.report
          ? groundTruthFor(
              o.data,
              clip,
              o.annotations,
              { objects: o.gtObjects, frames: o.gtFrames, nMels: config.logmel.nMels, fMin: config.logmel.fMin, fMax: config.logmel.fMax },
              frames,
            )
          : undefined;
      ({ results, outputs } = await evaluateModel(model, {
        config,
        clips: loader,
        tasks,
        gtOf,
        protocol: o.protocol,
        keepFrames: !!o.report,
        keepAudio: o.report ? 256 : false,
        onProgress: (n) => {
          if (n % (o.batchSize * 10) < o.batchSize) log(`${n} clips`);
        },
      }));
    } finally {
      await loader.close();
    }
    log(`${outputs.clips.length} clips in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
    results = { checkpoint: ref.weights, step: state.step, data: `${path.resolve(o.data)}${split ? ` (split ${split})` : ''}`, ...results };
    if (Object.keys(skipped).length) results.skipped = skipped;
    finish(results, o, formatResults(results), { outputs, gtOf, classes: loader.classes ?? synthClasses(o.data), logmel: config.logmel });
  });
}

const examples = (lines: string[]) => `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}`;

/** Adds `cmac eval ...` to a commander program. */
export function registerEval(program: Command): void {
  const ev = program
    .command('eval')
    .description('evaluate a trained checkpoint: linear probe, finetuning, retrieval, sound-source localisation, frequency grounding');

  addDatasetOptions(addCommon(ev.command('linear-probe')), 'clips (audio files: windows) averaged per item (default 1; audio files 3)')
    .description('frozen pooled features (featV, featA) -> L2-regularised logistic regression, regulariser chosen on validation')
    .addHelpText(
      'after',
      examples([
        'cmac eval linear-probe --checkpoint runs/tiny --data data/synth',
        'cmac eval linear-probe --checkpoint runs/k400 --data /data/UCF101 --splits /data/UCF101/ucfTrainTestlist --folds 1',
        'cmac eval linear-probe --checkpoint runs/k400 --data /data/hmdb51 --layout hmdb51 --splits /data/testTrainMulti_7030_splits',
        'cmac eval linear-probe --checkpoint runs/as --data /data/ESC-50-master --json esc50.json',
      ]),
    )
    .action(async (o: ProbeOpts) => {
      await withModel(o, async ({ model, config, state, ref }, log) => {
        const ds = openDataset(o, config.seed, log);
        const lp = await linearProbe(model, ds, {
          clip: clipOf(config),
          clipsPerVideo: o.clipsPerVideo,
          batchSize: o.batchSize,
          decoders: o.decoders,
          cacheDir: o.cacheDir,
          log,
        });
        const results: EvaluationResults = { checkpoint: ref.weights, step: state.step, data: path.resolve(o.data), linearProbe: lp };
        finish(results, o, formatResults(results));
      });
    });

  addDatasetOptions(addCommon(ev.command('finetune')), 'validation / test clips per video, logits averaged (default 1)')
    .description('train the video encoder + a linear head end to end on labelled clips; best epoch on validation; top-1 test accuracy')
    .option('--epochs <n>', 'passes over the training clips', positiveInt('--epochs'), 10)
    .option('--lr <x>', 'peak learning rate (cosine decay to 0)', numberAtLeast('--lr', 1e-12), 0.01)
    .option('--batch <n>', 'training clips per step (--batch-size is the validation / test forward batch)', positiveInt('--batch'), 16)
    .option('--optimizer <name>', 'sgd | adam | adamw', oneOf('--optimizer', ['sgd', 'adam', 'adamw']), 'sgd')
    .option('--momentum <x>', 'SGD momentum', numberAtLeast('--momentum', 0), 0.9)
    .option('--weight-decay <x>', 'weight decay', numberAtLeast('--weight-decay', 0), 1e-4)
    .option('--no-augment', 'no training augmentation (random clip placement only)')
    .option('--device <name>', "cpu | cuda | cuda:N | auto (default: the checkpoint's)")
    .option('--save-dir <dir>', "write each fold's kept weights (visual.*, fc.*) here as <fold>.safetensors")
    .option('--scratch', 'start the encoder from its random init instead of the checkpoint (a baseline)')
    .addHelpText(
      'after',
      examples([
        'cmac eval finetune --checkpoint runs/tiny --data data/synth --epochs 5 --json finetune.json',
        'cmac eval finetune --checkpoint runs/k400 --data /data/UCF101 --splits /data/UCF101/ucfTrainTestlist --folds 1 --epochs 20 --lr 0.005 --cache-dir runs/cache/ucf',
        'cmac eval finetune --checkpoint runs/k400 --data /data/hmdb51 --layout hmdb51 --device cuda --batch 32',
      ]),
    )
    .action(async (o: FinetuneOpts) => {
      const log = prepare(o);
      const ref = resolveCheckpoint(o.checkpoint);
      const state = readCheckpointState(ref);
      const config = state.config;
      log(
        `checkpoint ${ref.weights} (step ${state.step}, ${config.preset} preset, loss ${config.loss.preset})${o.scratch ? ': encoder from scratch' : ''}`,
      );
      const ds = openDataset(o, config.seed, log);
      const ft = await finetune(ds, {
        config,
        weights: o.scratch ? undefined : ref.weights,
        epochs: o.epochs,
        lr: o.lr,
        batchSize: o.batch,
        evalBatchSize: o.batchSize,
        optimizer: o.optimizer,
        momentum: o.momentum,
        weightDecay: o.weightDecay,
        augment: o.augment,
        clipsPerVideo: o.clipsPerVideo,
        decoders: o.decoders,
        cacheDir: o.cacheDir,
        device: o.device,
        saveDir: o.saveDir,
        log,
      });
      const results: EvaluationResults = { checkpoint: ref.weights, step: state.step, data: path.resolve(o.data), finetune: ft };
      finish(results, o, formatResults(results));
    });

  addClipOptions(ev.command('retrieval'))
    .description('audio -> video and video -> audio recall@1/5/10 on held-out clips')
    .addHelpText('after', examples(['cmac eval retrieval --checkpoint runs/tiny --data data/synth --json retrieval.json']))
    .action((o: ClipOpts) => runClipTasks(['retrieval'], o));

  addProtocol(addClipOptions(ev.command('localization')))
    .description('alpha_v and beta_v maps by the EZ-VSL or LVS protocol (cIoU@0.5, AUC, mean cIoU) plus pointing and mass in box')
    .addHelpText(
      'after',
      examples([
        'cmac eval localization --checkpoint runs/tiny --data data/synth-large --report loc.html',
        'cmac eval localization --checkpoint runs/paper --data flickr/videos --annotations flickr/Annotations',
        'cmac eval localization --checkpoint runs/paper --data vggss/videos --annotations vggss.json --protocol lvs',
      ]),
    )
    .action((o: ClipOpts) => runClipTasks(['localization'], o));

  addClipOptions(ev.command('frequency'))
    .description('alpha_a and beta_a against the ground-truth mel bins (synthetic data): mass and pointing')
    .addHelpText('after', examples(['cmac eval frequency --checkpoint runs/tiny --data data/synth']))
    .action((o: ClipOpts) => runClipTasks(['frequency'], o));

  addProtocol(addClipOptions(ev.command('all')))
    .description(
      'retrieval, plus localisation and frequency grounding where the data has their ground truth (synthetic data; boxes), from one pass over the clips; a skipped task is named',
    )
    .addHelpText('after', examples(['cmac eval all --checkpoint runs/tiny --data data/synth --json eval.json --report eval.html']))
    .action((o: ClipOpts) => runClipTasks('all', o));
}
