// The layer rule of lib/ (docs/architecture.md, "lib/: groups and their order"): every module of
// lib/ belongs to a group (lib/<group>/... or lib/<group>.ts), the groups sit
// in the tiers below, and an import may only go to the same group or to a
// group in a LOWER tier: never up, never sideways to another group of the
// same tier. Type-only imports count too (they couple the layers as much).
// Also checked here: nothing in lib/ reaches outside lib/ at run time except
// the listed exceptions, and the "one place" rules of issue 16 (ffmpeg only
// in lib/data/ffmpeg.ts, the addon loaded only by lib/native.ts, child
// processes only where listed, the mel scale only in lib/audio/mel.ts).
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import * as ts from 'typescript';
import { root } from './helpers';

/** Lowest tier first. A new group must be placed here (the test names it). */
export const layerTiers: readonly (readonly string[])[] = [
  ['options', 'tensor', 'audio', 'files'], // leaves: option checks, tensor types, the mel scale, atomic files and temp folders
  ['native', 'report'], // the addon loader; the HTML page kit (charts, tables, images)
  ['info', 'safetensors'], // thin wrappers of the addon
  ['config'], // the zod schema, presets table, overrides
  ['presets'], // modelPreset / clipShapes on top of config
  ['data'], // sources, decoding (native pool / ffmpeg CLI), loader, synthetic data
  ['model'], // CmacModel
  ['classifier', 'checkpoint'], // VideoClassifier; checkpoint files (find, read, load a model)
  ['train', 'distributed'], // the trainer and its run folder; local multi-process launch
  ['eval'], // evaluators over trained models
  ['viz'], // pictures of evaluation results, localize
  ['cli'], // the `cmac` command
  ['index'], // the public API (lib/index.ts)
  ['internal'], // cmac/internal: the rest, for tools and tests
];

/** Imports that break the rule on purpose, with why ("from -> to" by file, relative to lib/). */
export const allowedImports: Readonly<Record<string, string>> = {};

/**
 * Files of lib/ that reach a repository folder outside lib/ at run time
 * (a path built to scripts/, bench/...), each with its reason.
 */
export const allowedOutsideLib: Readonly<Record<string, string>> = {
  'native.ts':
    "the load-failure message reports the libtorch search of scripts/find-torch.js (the installer's own, shipped in the package's files); a trimmed install without it still loads",
  'cli/bench.ts': '`cmac bench` runs the benchmark suite scripts/bench.js from a source checkout, naming the fix when it is absent',
};

/** Files of lib/ that may start child processes, and why. */
export const allowedChildProcess: Readonly<Record<string, string>> = {
  'data/ffmpeg.ts': 'the one module that spawns ffmpeg and ffprobe',
  'distributed/launch.ts': '`cmac train --nproc N` starts N Node ranks',
  'cli/bench.ts': '`cmac bench` runs the benchmark script with Node',
};

export interface LibImport {
  /** Importing file and imported file (or outside path), relative to lib/. */
  from: string;
  to: string;
  line: number;
}

/** The group of a file relative to lib/: its first folder, or its base name for a top-level file. */
export function groupOf(rel: string): string {
  const parts = rel.split('/');
  return parts.length > 1 ? parts[0] : parts[0].replace(/\.(ts|js)$/, '');
}

/** Every relative import / export-from / require / import() of a source text, resolved against `rel` (its path under lib/). */
export function importsOf(rel: string, source: string): LibImport[] {
  const info = ts.preProcessFile(source, true, true);
  const lineOf = (pos: number) => source.slice(0, pos).split('\n').length;
  return info.importedFiles
    .filter((f) => f.fileName.startsWith('.'))
    .map((f) => ({
      from: rel,
      to: path.posix.normalize(path.posix.join(path.posix.dirname(rel), f.fileName)),
      line: lineOf(f.pos),
    }));
}

/** The rule's verdict on one import: undefined when it is allowed, else why not. */
export function layerViolation(imp: LibImport, tiers: readonly (readonly string[])[] = layerTiers): string | undefined {
  const tierOf = (g: string) => tiers.findIndex((t) => t.includes(g));
  const from = groupOf(imp.from);
  if (imp.to.startsWith('..')) return `${imp.from}:${imp.line} imports ${imp.to}, outside lib/`;
  const to = groupOf(imp.to);
  if (from === to) return undefined;
  const a = tierOf(from),
    b = tierOf(to);
  if (a < 0) return `${imp.from}: group '${from}' is in no tier: add it to layerTiers (test/layers.test.ts) and docs/architecture.md`;
  if (b < 0) return `${imp.to}: group '${to}' is in no tier: add it to layerTiers (test/layers.test.ts) and docs/architecture.md`;
  if (b > a) return `${imp.from}:${imp.line} imports ${imp.to}: upward (${from}, tier ${a} -> ${to}, tier ${b})`;
  if (b === a) return `${imp.from}:${imp.line} imports ${imp.to}: sideways (${from} and ${to} share tier ${a}; move one to its own tier)`;
  return undefined;
}

function libFiles(): string[] {
  const lib = path.join(root, 'lib');
  const out: string[] = [];
  (function walk(d: string) {
    for (const e of fs.readdirSync(d, { withFileTypes: true })) {
      const p = path.join(d, e.name);
      if (e.isDirectory()) walk(p);
      else if (/\.ts$/.test(e.name) && !/\.d\.ts$/.test(e.name)) out.push(path.relative(lib, p).split(path.sep).join('/'));
    }
  })(lib);
  return out.sort();
}

const read = (rel: string) => fs.readFileSync(path.join(root, 'lib', rel), 'utf8');
/** Source without comments (so a rule is not tripped by prose). */
const code = (rel: string) =>
  read(rel)
    .replace(/\/\*[\s\S]*?\*\//g, '')
    .replace(/(^|[^:'"`])\/\/.*$/gm, '$1');

describe('layers: lib/ imports only go down (docs/architecture.md)', () => {
  const files = libFiles();

  it('no import goes up or sideways between groups, or out of lib/', () => {
    const bad: string[] = [];
    for (const rel of files) {
      for (const imp of importsOf(rel, read(rel))) {
        const why = layerViolation(imp);
        if (why && !allowedImports[`${imp.from} -> ${imp.to}`]) bad.push(why);
      }
    }
    expect(bad, `layer rule broken (order in test/layers.test.ts layerTiers):\n  ${bad.join('\n  ')}\n`).to.deep.equal([]);
  });

  it('every group of lib/ has a tier, and every allowed exception is still needed', () => {
    const groups = new Set(files.map(groupOf));
    const tiered = new Set(layerTiers.flat());
    expect(
      [...groups].filter((g) => !tiered.has(g)),
      'groups in no tier',
    ).to.deep.equal([]);
    expect(
      [...tiered].filter((g) => !groups.has(g)),
      'tiers naming a group that no longer exists',
    ).to.deep.equal([]);
    const edges = new Set(files.flatMap((rel) => importsOf(rel, read(rel)).map((i) => `${i.from} -> ${i.to}`)));
    expect(
      Object.keys(allowedImports).filter((k) => !edges.has(k)),
      'stale allowedImports',
    ).to.deep.equal([]);
  });

  it('the rule catches an upward, a sideways and an untiered import (a checker that cannot fail proves nothing)', () => {
    const up = importsOf('data/loader/epoch.ts', "import type { CmacModel } from '../../model';\n");
    expect(up).to.deep.equal([{ from: 'data/loader/epoch.ts', to: 'model', line: 1 }]);
    expect(layerViolation(up[0])).to.match(/upward \(data, tier \d+ -> model, tier \d+\)/);
    expect(layerViolation(importsOf('train/trainer.ts', "const e = require('../eval');")[0])).to.match(/upward/);
    expect(layerViolation(importsOf('eval/probe.ts', "export * from '../viz/report';")[0])).to.match(/upward/);
    expect(layerViolation(importsOf('data/x.ts', "const m = await import('../train');")[0])).to.match(/upward/);
    expect(layerViolation(importsOf('info.ts', "import { readSafetensors } from './safetensors';")[0])).to.match(/sideways/);
    expect(layerViolation(importsOf('native.ts', "import '../scripts/find-torch';")[0])).to.match(/outside lib/);
    expect(layerViolation(importsOf('cli/x.ts', "import { y } from '../newthing/y';")[0])).to.match(/'newthing' is in no tier/);
    expect(layerViolation(importsOf('viz/x.ts', "import { y } from '../eval/collect';")[0])).to.equal(undefined);
    expect(layerViolation(importsOf('data/loader/x.ts', "import { y } from '../sources';")[0])).to.equal(undefined);
  });

  it('run-time paths out of lib/ only where listed (scripts/, bench/, test/ are not part of the library)', () => {
    const bad = files.filter((rel) =>
      /(path\.(join|resolve)\((?:[^()]|\([^()]*\))*['"](scripts|bench|test|examples|dist)['"])|require\(\s*['"][./]*(scripts|bench|test|examples)\//.test(
        code(rel),
      ),
    );
    expect(bad.filter((f) => !allowedOutsideLib[f])).to.deep.equal([]);
    expect(
      Object.keys(allowedOutsideLib).filter((f) => !bad.includes(f)),
      'stale allowedOutsideLib',
    ).to.deep.equal([]);
  });

  it('one place each: ffmpeg in data/ffmpeg.ts, the addon in native.ts, child processes where listed, the mel scale in audio/mel.ts', () => {
    const where = (re: RegExp) => files.filter((rel) => re.test(code(rel)));
    expect(where(/\b(runFfmpeg|ffmpegBin|ffprobeBin)\s*\(/), 'ffmpeg run outside lib/data/ffmpeg.ts').to.deep.equal(['data/ffmpeg.ts']);
    expect(where(/['"]node-gyp-build['"]|\.node['"]\s*\)/), 'the addon loaded outside lib/native.ts').to.deep.equal(['native.ts']);
    expect(where(/['"](node:)?child_process['"]/), 'child processes').to.deep.equal(Object.keys(allowedChildProcess).sort());
    expect(where(/\b2595\b/), 'the HTK mel constant outside lib/audio/mel.ts').to.deep.equal(['audio/mel.ts']);
  });
});
