// `cmac train` and `cmac demo`.
import { Command } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import { clipOf, ConfigInput, loadConfigFile, resolveConfig } from '../config';
import { synthesize } from '../data/synth';
import { loadCheckpoint } from '../checkpoint';
import { openSource } from '../data';
import { train, TrainSummary } from '../train';
import { writeTrainingReport } from '../train/report';
import { evalLoader } from '../eval/collect';
import { groundTruthFor } from '../eval/evaluate';
import { evaluateModel } from '../eval/run';
import { evaluationSections } from '../viz/report';
import { launchLocal } from '../distributed/launch';
import { takeNextSignal } from './lifecycle';
import { collect, positiveInt } from './args';

/**
 * SIGINT/SIGTERM/SIGHUP stop the run after the current step, with a
 * checkpoint; a second signal exits at once (code 128 + n), and the exit
 * hooks remove a half-written checkpoint and the run-folder lock (lifecycle.ts).
 */
function abortOnSignals(): { signal: AbortSignal; dispose: () => void } {
  const ac = new AbortController();
  const dispose = takeNextSignal((sig) => {
    process.stderr.write(`\ncmac: ${sig} received, stopping after this step and writing a checkpoint (send again to quit at once)\n`);
    ac.abort();
  });
  return { signal: ac.signal, dispose };
}

function printSummary(s: TrainSummary): void {
  const l = s.last;
  process.stdout.write(
    [
      `${s.stoppedBy === 'done' ? 'finished' : 'stopped'} at step ${s.stepsDone}/${s.totalSteps} in ${s.wallSeconds.toFixed(1)} s`,
      l
        ? `last losses: total ${l.loss.toFixed(4)}, L_con ${l.lossCon.toFixed(4)}, L_v ${l.lossV.toFixed(4)}, L_a ${l.lossA.toFixed(4)}`
        : '',
      `skipped samples ${s.skippedSamples}, skipped (non-finite) steps ${s.skippedSteps}`,
      s.checkpoint ? `checkpoint: ${s.checkpoint.weights}` : '',
      `report: ${s.report}`,
    ]
      .filter(Boolean)
      .join('\n') + '\n',
  );
}

/** Adds `cmac train` and `cmac demo` to a commander program. */
export function registerTrain(program: Command): void {
  program
    .command('train')
    .description('CMAC pretraining: data -> native steps -> metrics, checkpoints, report.html')
    .option('-c, --config <file>', 'config file (JSON or YAML)')
    .option('--preset <name>', 'size preset: tiny | paper')
    .option('--loss <preset>', 'loss preset: xmodal | xmodal+within | cmac-v | cmac-a | cmac')
    .option('--data <source>', 'folder of videos, .csv/.jsonl manifest, tar shards, or a cmac synth folder')
    .option('--steps <n>', 'training steps', positiveInt('--steps'))
    .option('--run-dir <dir>', 'run folder (config, metrics, checkpoints, report)')
    .option('--set <key=value>', 'override any config field (repeatable), e.g. --set optim.lr=1e-3', collect, [])
    .option('--resume', 'continue from the newest checkpoint in the run folder')
    .option('--tensorboard', 'also write TensorBoard event files')
    .option('--print-config', 'print the resolved config and exit')
    .option('--quiet', 'no progress bar or log lines')
    .option('--nproc <n>', 'data-parallel ranks on this machine (child processes over c10d/Gloo)', positiveInt('--nproc'))
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  cmac synth --out data/synth --clips 200 --size 64 --fps 8',
        '  cmac train --preset tiny --data data/synth --steps 300 --run-dir runs/tiny',
        '  cmac train -c run.yaml --set optim.lr=5e-4 --set loss.preset=cmac-v',
        '  cmac train --resume --run-dir runs/tiny          # continue after Ctrl-C or a crash',
        '  cmac train --nproc 2 --preset tiny --data data/synth --set dist.gatherNegatives=true',
        '  torchrun --nproc-per-node 2 --no-python node dist/cli/main.js train ...   # torchrun sets the same variables',
      ].join('\n'),
    )
    .action(
      async (o: {
        config?: string;
        preset?: string;
        loss?: string;
        data?: string;
        steps?: number;
        runDir?: string;
        set: string[];
        resume?: boolean;
        tensorboard?: boolean;
        printConfig?: boolean;
        quiet?: boolean;
        nproc?: number;
      }) => {
        if (o.nproc && o.nproc > 1 && process.env.RANK === undefined) {
          const args = process.argv
            .slice(1)
            .filter((a, i, all) => a !== '--nproc' && all[i - 1] !== '--nproc' && !a.startsWith('--nproc='));
          // Every signal is launchLocal's to forward to the ranks (they stop with a checkpoint, then quit at the second).
          let giveBack = () => undefined as void;
          const hold = () => {
            giveBack = takeNextSignal(hold);
          };
          hold();
          try {
            process.exitCode = await launchLocal({ nproc: o.nproc, args });
          } finally {
            giveBack();
          }
          return;
        }
        let input: ConfigInput = {};
        if (o.config) input = loadConfigFile(o.config);
        else if (o.resume && o.runDir && fs.existsSync(path.join(o.runDir, 'config.json')))
          input = loadConfigFile(path.join(o.runDir, 'config.json'));
        const sets = [...o.set];
        if (o.preset) sets.unshift(`preset=${o.preset}`);
        if (o.loss) sets.push(`loss.preset=${o.loss}`);
        if (o.data) sets.push(`data.source=${JSON.stringify(o.data)}`);
        if (o.steps) sets.push(`train.steps=${o.steps}`);
        if (o.runDir) sets.push(`train.runDir=${JSON.stringify(o.runDir)}`);
        if (o.tensorboard) sets.push('train.tensorboard=true');
        const cfg = resolveConfig(input, sets);
        if (o.printConfig) {
          process.stdout.write(JSON.stringify(cfg, null, 2) + '\n');
          return;
        }
        const { signal, dispose } = abortOnSignals();
        try {
          const log = o.quiet ? undefined : (line: string) => process.stderr.write(`${line}\n`);
          const summary = await train(cfg, { signal, resume: !!o.resume, log, progress: !o.quiet });
          if ((process.env.RANK ?? '0') === '0') printSummary(summary);
        } finally {
          dispose();
        }
      },
    );

  program
    .command('demo')
    .description('the main job: synthesise a small dataset, train the tiny preset with full CMAC, write the run folder')
    .option('--out <dir>', 'folder for the data and the run (default: runs/demo, with --quick runs/demo-quick)')
    .option('--clips <n>', 'synthetic clips (default: 192, with --quick 40)', positiveInt('--clips'))
    .option('--steps <n>', 'training steps (default: 150, with --quick 8)', positiveInt('--steps'))
    .option('--batch <n>', 'clips per step (default: 16, with --quick 8)', positiveInt('--batch'))
    .option('--threads <n>', 'libtorch threads (default: all cores)', positiveInt('--threads'))
    .option(
      '--quick',
      'a check that the install works end to end (synthesis, training, evaluation, report) in about a minute; its numbers mean nothing',
    )
    .addHelpText('after', '\nExamples:\n  npm run demo\n  cmac demo --out /tmp/demo --steps 100\n  npx cmac demo --quick')
    .action(async (opts: { out?: string; clips?: number; steps?: number; batch?: number; threads?: number; quick?: boolean }) => {
      const q = !!opts.quick;
      const o = {
        out: opts.out ?? (q ? 'runs/demo-quick' : 'runs/demo'),
        clips: opts.clips ?? (q ? 40 : 192),
        steps: opts.steps ?? (q ? 8 : 150),
        batch: opts.batch ?? (q ? 8 : 16),
        threads: opts.threads,
      };
      const data = path.join(o.out, 'data');
      if (!fs.existsSync(path.join(data, 'manifest.jsonl'))) {
        process.stderr.write(`demo: synthesising ${o.clips} clips into ${data}\n`);
        const r = await synthesize({ out: data, clips: o.clips, seed: 1, size: 64, fps: 8, seconds: 3 });
        process.stderr.write(`demo: ${r.clips} clips in ${r.seconds.toFixed(1)} s\n`);
      }
      const runDir = path.join(o.out, 'run');
      fs.rmSync(runDir, { recursive: true, force: true });
      const cfg = resolveConfig({
        preset: 'tiny',
        data: { source: data, batchSize: o.batch, cacheDir: path.join(o.out, 'cache') },
        train: { steps: o.steps, runDir, checkpointEvery: 50 },
        ...(o.threads ? { threads: o.threads } : {}),
      });
      const { signal, dispose } = abortOnSignals();
      const t0 = Date.now();
      let summary: TrainSummary;
      try {
        summary = await train(cfg, { signal, log: (l) => process.stderr.write(`${l}\n`) });
      } finally {
        dispose();
      }
      printSummary(summary);
      process.stderr.write('demo: evaluating on the test split (retrieval, localisation, frequency grounding)\n');
      const text = await demoEvaluate(summary, data);
      process.stdout.write(`${text}\ndemo finished in ${((Date.now() - t0) / 1000).toFixed(0)} s; open ${summary.report}\n`);
    });
}

/** Evaluates the demo's final checkpoint on the synthetic test split and adds the results to report.html. */
async function demoEvaluate(summary: TrainSummary, data: string): Promise<string> {
  const { model, config } = await loadCheckpoint(summary.runDir);
  const clip = clipOf(config);
  const loader = evalLoader(openSource(data, 'test'), clip, { batchSize: 16, decoders: config.data.decoders });
  const gtOf = groundTruthFor(data, clip, undefined, { nMels: config.logmel.nMels, fMin: config.logmel.fMin, fMax: config.logmel.fMax });
  try {
    const { results, outputs } = await evaluateModel(model, {
      config,
      clips: loader,
      tasks: ['retrieval', 'localization', 'frequency'],
      gtOf,
      keepFrames: true,
      keepAudio: 64,
    });
    writeTrainingReport(
      summary.report,
      config,
      path.join(summary.runDir, 'metrics.jsonl'),
      summary.dataStats,
      evaluationSections(results, { outputs, gtOf, classes: loader.classes, logmel: config.logmel }),
    );
    const pct = (x: number) => `${(100 * x).toFixed(1)}%`;
    const l = results.localization!,
      f = results.frequency!,
      r = results.retrieval!;
    return [
      `test clips: ${outputs.clips.length}`,
      `retrieval R@1 audio->video ${pct(r.audioToVideo.recall[1])}, video->audio ${pct(r.videoToAudio.recall[1])} (chance ${pct(r.audioToVideo.chance[1])})`,
      `localisation pointing: alpha_v ${pct(l.alphaV.pointing)}, beta_v ${pct(l.betaV.pointing)} (chance ${pct(l.alphaV.chance)})`,
      `frequency pointing: alpha_a ${pct(f.alphaA.pointing)}, beta_a ${pct(f.betaA.pointing)} (chance ${pct(f.alphaA.chance)})`,
    ].join('\n');
  } finally {
    await loader.close();
    model.dispose();
  }
}
