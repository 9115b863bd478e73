// `cmac synth`: writes the synthetic sounding-objects dataset (lib/data/synth.ts).
import { InvalidArgumentError, type Command } from 'commander';
import { intInRange as int, numberAtLeast, oneOf, positiveNumber as positive } from './args';
import { synthesize } from '../data/synth';

function shares(v: string): [number, number, number] {
  const p = v.split(',').map(Number);
  if (p.length !== 3 || p.some((x) => !Number.isFinite(x) || x < 0) || p[0] + p[1] + p[2] <= 0) {
    throw new InvalidArgumentError(`--splits must be three non-negative numbers like 0.8,0.1,0.1, got '${v}'`);
  }
  return [p[0], p[1], p[2]];
}

/** Options of the `synth` command as commander parses them. */
export interface SynthCliOptions {
  out: string;
  clips: number;
  seed: number;
  classes: number;
  size: number;
  seconds: number;
  fps: number;
  largeObjects?: boolean;
  objectSize?: [number, number];
  noise: number;
  pulse: 'size' | 'brightness' | 'both';
  splits?: [number, number, number];
  jobs: number;
  clipsPerProcess: number;
  json?: boolean;
  quiet?: boolean;
}

/** Adds `cmac synth` to a commander program. */
export function registerSynth(program: Command): Command {
  return program
    .command('synth')
    .description('write the synthetic sounding-objects dataset (mp4 + ground-truth JSON + manifest.jsonl)')
    .requiredOption('--out <dir>', 'output folder')
    .option('--clips <n>', 'number of clips', int('--clips', 1), 100)
    .option('--seed <s>', 'seed (same seed and options = same dataset)', int('--seed', 0), 0)
    .option('--classes <k>', 'number of classes (1..24)', int('--classes', 1, 24), 8)
    .option('--size <px>', 'frame side in pixels', int('--size', 16, 4096), 112)
    .option('--seconds <s>', 'clip length in seconds', positive('--seconds'), 4)
    .option('--fps <f>', 'frame rate', positive('--fps'), 16)
    .option('--large-objects', 'one sounding object covering 25-50% of the frame')
    .option('--object-size <min,max>', 'box side of ordinary objects as a share of the frame side', (v: string) => {
      const p = v.split(',').map(Number);
      if (p.length !== 2 || !(p[0] > 0 && p[1] >= p[0] && p[1] <= 0.9))
        throw new InvalidArgumentError(`--object-size must be two shares 0 < min <= max <= 0.9 like 0.16,0.3, got '${v}'`);
      return [p[0], p[1]] as [number, number];
    })
    .option('--noise <rms>', 'background noise RMS in the audio (0 = none)', numberAtLeast('--noise', 0), 0.02)
    .option(
      '--pulse <what>',
      "what a sounding object's envelope drives: size | brightness | both",
      oneOf('--pulse', ['size', 'brightness', 'both']),
      'size',
    )
    .option('--splits <a,b,c>', 'train,val,test shares', shares)
    .option('--jobs <n>', 'ffmpeg encoder processes at once', int('--jobs', 1, 64), 2)
    .option('--clips-per-process <n>', 'clips encoded by one ffmpeg process', int('--clips-per-process', 1, 256), 8)
    .option('--json', 'print the result as JSON')
    .option('--quiet', 'no progress on stderr')
    .addHelpText(
      'after',
      '\nExamples:\n  cmac synth --out data/synth --clips 1000 --seed 1\n  cmac synth --out data/synth-large --clips 200 --large-objects --size 64 --fps 8 --seconds 3',
    )
    .action(async (opts: SynthCliOptions) => {
      let last = 0;
      const r = await synthesize({
        out: opts.out,
        clips: opts.clips,
        seed: opts.seed,
        classes: opts.classes,
        size: opts.size,
        seconds: opts.seconds,
        fps: opts.fps,
        largeObjects: !!opts.largeObjects,
        objectSize: opts.objectSize,
        noise: opts.noise,
        pulse: opts.pulse,
        splits: opts.splits,
        jobs: opts.jobs,
        clipsPerProcess: opts.clipsPerProcess,
        onProgress: (done, total) => {
          if (opts.quiet) return;
          const now = Date.now();
          if (now - last > 1000 || done === total) {
            last = now;
            process.stderr.write(`synth: ${done}/${total} clips\n`);
          }
        },
      });
      if (opts.json) process.stdout.write(JSON.stringify(r, null, 2) + '\n');
      else {
        process.stdout.write(
          `wrote ${r.clips} clips (train ${r.counts.train}, val ${r.counts.val}, test ${r.counts.test}) to ${r.out} in ${r.seconds.toFixed(1)} s (${r.clipsPerSecond.toFixed(1)} clips/s); manifest ${r.manifest}\n`,
        );
      }
    });
}
