// `cmac bench`: runs the benchmark suite (bench/run.js, docs/benchmarks.md) from a source checkout.
import { Command } from 'commander';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { packageRoot } from '../native';

/** Adds `cmac bench` to a commander program. */
export function registerBench(program: Command): void {
  program
    .command('bench')
    .description('benchmarks against the PyTorch reference: step time, boundary cost, loader, inference, memory, GFLOP/s')
    .allowUnknownOption(true)
    .argument('[args...]', 'passed to bench/run.js, e.g. --quick or --only step,data')
    .addHelpText(
      'after',
      '\nExamples:\n  cmac bench --quick\n  cmac bench --only step,data\n\nNeeds a source checkout with `npm run setup -- --python` (the PyTorch baseline).',
    )
    .action((args: string[]) => {
      const script = path.join(packageRoot(), 'scripts', 'bench.js');
      if (!fs.existsSync(script))
        throw new Error(
          `${script} is missing: the benchmarks run from a source checkout of cmac. Fix: git clone the repository, npm run setup -- --python, then cmac bench.`,
        );
      const r = spawnSync(process.execPath, [script, ...args], { stdio: 'inherit' });
      process.exitCode = r.status ?? 1;
    });
}
