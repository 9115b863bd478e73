#!/usr/bin/env node
// The `cmac` command. Exit codes: 0 ok, 1 error, 2 usage.
import { Command, CommanderError } from 'commander';
import { info } from '../info';
import { registerSynth } from './synth';
import { registerTrain } from './train';
import { registerEmbed } from './embed';
import { registerEval } from './eval';
import { registerLocalize } from './localize';
import { registerBench } from './bench';
import { installProcessGuards, removeStaleTemp } from './lifecycle';

function fail(err: unknown): never {
  // Library errors already start with "cmac: "; the CLI prints the prefix once.
  const msg = (err instanceof Error ? err.message : String(err)).replace(/^(cmac: )+/, '');
  process.stderr.write(`cmac: ${msg}\n`);
  process.exit(1);
}

export function buildCli(): Command {
  const program = new Command('cmac')
    .description('Cross-Modal Attention Consistency: audio-visual self-supervised learning on libtorch')
    .exitOverride()
    .showHelpAfterError('(run with --help for usage)')
    // Leftovers of killed cmac processes (temp folders named by pid) go before any real work.
    .hook('preAction', (_p, cmd) => {
      if (cmd.name() !== 'info') removeStaleTemp();
    });

  program
    .command('info')
    .description('libtorch build, CUDA devices and threads')
    .option('--json', 'print JSON')
    .addHelpText('after', '\nExamples:\n  cmac info\n  cmac info --json')
    .action((opts: { json?: boolean }) => {
      const i = info();
      if (opts.json) {
        process.stdout.write(JSON.stringify(i, null, 2) + '\n');
        return;
      }
      const lines = [
        `cmac ${i.addonVersion} (N-API ${i.napiVersion})`,
        `libtorch ${i.torchVersion} from ${i.torchSource}, CXX11 ABI ${i.cxx11Abi}`,
        `CUDA: ${i.cudaAvailable ? `${i.cudaDeviceCount} device(s): ${i.cudaDevices.join(', ')}` : i.cudaCompiled ? 'compiled, no device' : 'not compiled'}`,
        `threads: ${i.numThreads} intra-op, ${i.numInteropThreads} inter-op`,
      ];
      process.stdout.write(lines.join('\n') + '\n');
    });
  registerSynth(program);
  registerTrain(program);
  registerEmbed(program);
  registerEval(program);
  registerLocalize(program);
  registerBench(program);
  return program;
}

export async function main(argv: string[]): Promise<void> {
  installProcessGuards();
  const program = buildCli();
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof CommanderError) {
      process.exit(err.exitCode === 0 ? 0 : 2);
    }
    fail(err);
  }
}

if (require.main === module) void main(process.argv);
