// lib/cli/args.ts: the option-value parsers every `cmac` command shares
// (issue 16: one parser module instead of a positiveInt per command file).
import { expect } from 'chai';
import { Command, CommanderError, InvalidArgumentError } from 'commander';
import * as fs from 'fs';
import * as path from 'path';
import {
  collect,
  fromCheck,
  intInRange,
  numberAtLeast,
  numberInRange,
  oneOf,
  positiveInt,
  positiveIntList,
  positiveNumber,
  seconds,
} from '../lib/cli/args';
import { buildCli } from '../lib/cli/main';
import { root } from './helpers';

function throwsArg(fn: () => unknown, re: RegExp): void {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err, String(re)).to.be.instanceOf(InvalidArgumentError);
  expect((err as Error).message).to.match(re);
}

describe('cli option parsers (lib/cli/args.ts)', () => {
  it('positiveInt / intInRange / positiveIntList take integers and name the flag otherwise', () => {
    expect(positiveInt('--n')('3')).to.equal(3);
    for (const bad of ['0', '-1', '1.5', 'x', '', ' '])
      throwsArg(() => positiveInt('--n')(bad), new RegExp(`^--n must be a positive integer, got '${bad}'$`));
    expect(intInRange('--k', 1, 24)('24')).to.equal(24);
    throwsArg(() => intInRange('--k', 1, 24)('25'), /^--k must be an integer in 1\.\.24, got '25'$/);
    throwsArg(() => intInRange('--seed', 0)('-1'), /^--seed must be an integer in 0\.\.inf, got '-1'$/);
    expect(positiveIntList('--folds')('1, 2,3')).to.deep.equal([1, 2, 3]);
    throwsArg(
      () => positiveIntList('--folds')('1,,2'),
      /^--folds must be a comma-separated list of positive integers like 1,2,3, got '1,,2'$/,
    );
  });

  it('positiveNumber / numberAtLeast / numberInRange / seconds take finite numbers in range', () => {
    expect(positiveNumber('--s')('0.5')).to.equal(0.5);
    throwsArg(() => positiveNumber('--s')('0'), /^--s must be a positive number, got '0'$/);
    expect(numberAtLeast('--m', 0)('0')).to.equal(0);
    throwsArg(() => numberAtLeast('--m', 0)('-0.1'), /^--m must be a number >= 0, got '-0\.1'$/);
    throwsArg(() => numberAtLeast('--m', 0)('Infinity'), /must be a number >= 0/);
    expect(numberInRange('--v', 0, 0.9)('0.2')).to.equal(0.2);
    throwsArg(() => numberInRange('--v', 0, 0.9)('abc'), /^--v must be a number in \[0, 0\.9\], got 'abc'$/);
    expect(seconds('--from')('0')).to.equal(0);
    throwsArg(() => seconds('--from')(''), /^--from must be a non-negative number of seconds, got ''$/);
  });

  it('oneOf lists the choices; collect appends; fromCheck turns a library error into a usage error', () => {
    expect(oneOf('--maps', ['alpha', 'beta', 'both'])('beta')).to.equal('beta');
    throwsArg(() => oneOf('--maps', ['alpha', 'beta', 'both'])('gamma'), /^--maps must be alpha, beta or both, got 'gamma'$/);
    expect(collect('b', collect('a', []))).to.deep.equal(['a', 'b']);
    throwsArg(
      () =>
        fromCheck((v) => {
          throw new Error(`no ${v}`);
        })('x'),
      /^no x$/,
    );
  });

  it('every command parses its values through them: a bad value is a usage error naming the flag', async () => {
    const cases: [string[], RegExp][] = [
      [['train', '--steps', '0'], /--steps must be a positive integer/],
      [['demo', '--batch', '2.5'], /--batch must be a positive integer/],
      [['embed', '--checkpoint', 'c', '--data', 'd', '--out', 'o.json', '--batch', '0'], /--batch must be a positive integer/],
      [['localize', '--checkpoint', 'c', '--video', 'v', '--out', 'o', '--maps', 'gamma'], /--maps must be alpha, beta or both/],
      [['localize', '--checkpoint', 'c', '--video', 'v', '--out', 'o', '--from', '-1'], /--from must be a non-negative number of seconds/],
      [['synth', '--out', 'o', '--pulse', 'loud'], /--pulse must be size, brightness or both/],
      [
        ['eval', 'linear-probe', '--checkpoint', 'c', '--data', 'd', '--folds', 'one'],
        /--folds must be a comma-separated list of positive integers/,
      ],
      [['eval', 'finetune', '--checkpoint', 'c', '--data', 'd', '--val-share', 'abc'], /--val-share must be a number in \[0, 0\.9\]/],
      [['eval', 'finetune', '--checkpoint', 'c', '--data', 'd', '--momentum', '-1'], /--momentum must be a number >= 0/],
    ];
    for (const [argv, re] of cases) {
      const program = buildCli();
      const quiet = (c: Command): void => {
        c.exitOverride().configureOutput({ writeErr: () => undefined, writeOut: () => undefined });
        c.commands.forEach(quiet);
      };
      quiet(program);
      let err: unknown;
      try {
        await program.parseAsync(['node', 'cmac', ...argv]);
      } catch (e) {
        err = e;
      }
      expect(err, argv.join(' ')).to.be.instanceOf(CommanderError);
      expect((err as CommanderError).code, argv.join(' ')).to.equal('commander.invalidArgument');
      expect((err as Error).message, argv.join(' ')).to.match(re);
    }
  });

  it('no command file writes its own value parser', () => {
    const dir = path.join(root, 'lib', 'cli');
    for (const f of fs.readdirSync(dir).filter((n) => n.endsWith('.ts') && n !== 'args.ts')) {
      const src = fs.readFileSync(path.join(dir, f), 'utf8');
      expect(src, f).to.not.match(/function (positiveInt|intList|positive|number|int|seconds)\s*\(/);
    }
  });
});
