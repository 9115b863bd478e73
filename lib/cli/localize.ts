// `cmac localize`: sound-source maps along one video (docs/evaluation.md).
import { Command } from 'commander';
import { oneOf, positiveInt, seconds } from './args';
import { probe } from '../data';
import { setNumThreads } from '../info';
import { loadCheckpoint } from '../checkpoint';
import { localizeVideo } from '../viz/localize';

/** Adds `cmac localize` to a commander program. */
export function registerLocalize(program: Command): void {
  program
    .command('localize')
    .description(
      'where the sound comes from along a video: overlays per frame, an overlay MP4 with the original audio, the frequency map, and the maps as safetensors',
    )
    .requiredOption('--checkpoint <path>', 'run folder, its checkpoints/ folder, or a step-N.safetensors file')
    .requiredOption('--video <file>', 'the video')
    .requiredOption('--out <dir>', 'output folder')
    .option('--maps <which>', 'alpha | beta | both (side by side: alpha_v | beta_v)', oneOf('--maps', ['alpha', 'beta', 'both']), 'both')
    .option('--size <px>', 'overlay side in pixels', positiveInt('--size'), 224)
    .option('--from <seconds>', "start time in seconds (0 to the video's duration)", seconds('--from'), 0) // the video's length is checked once it is probed
    .option('--max-clips <n>', 'at most this many clips', positiveInt('--max-clips'))
    .option('--no-mp4', 'skip the overlay MP4')
    .option('--threads <n>', 'libtorch threads', positiveInt('--threads'))
    .option('--quiet', 'no progress lines')
    .addHelpText(
      'after',
      [
        '',
        'Examples:',
        '  cmac localize --checkpoint runs/tiny --video data/synth/test/clip-000003.mp4 --out out/loc',
        '  cmac localize --checkpoint runs/paper/checkpoints/step-00100000.safetensors --video talk.mp4 --out out/talk --maps beta --max-clips 120',
      ].join('\n'),
    )
    .action(
      async (o: {
        checkpoint: string;
        video: string;
        out: string;
        maps: 'alpha' | 'beta' | 'both';
        size: number;
        from: number;
        maxClips?: number;
        mp4: boolean;
        threads?: number;
        quiet?: boolean;
      }) => {
        if (o.threads) setNumThreads(o.threads);
        const log = o.quiet ? () => undefined : (l: string) => process.stderr.write(`${l}\n`);
        const { duration } = await probe(o.video); // before the checkpoint: a bad --from fails at once
        if (duration > 0 && o.from >= duration)
          throw new Error(
            `--from ${o.from} is past the end of ${o.video} (${duration.toFixed(2)} s long). Fix: pass --from between 0 and ${duration.toFixed(2)}`,
          );
        const m = await loadCheckpoint(o.checkpoint);
        try {
          const r = await localizeVideo(m.model, m.config, o.video, o.out, {
            maps: o.maps,
            size: o.size,
            from: o.from,
            maxClips: o.maxClips,
            noVideo: !o.mp4,
            log,
          });
          process.stdout.write(
            [
              `${r.clips} clips of ${r.clipSeconds} s: ${r.frames.length} overlay frames in ${o.out}/frames`,
              r.video ? `video: ${r.video}` : '',
              r.frequency ? `frequency map: ${r.frequency}` : '',
              `maps: ${r.maps}`,
            ]
              .filter(Boolean)
              .join('\n') + '\n',
          );
        } finally {
          m.model.dispose();
        }
      },
    );
}
