// The package as users get it: CommonJS and ESM entry points, the `cmac` bin,
// the public types under the TypeScript that tslab bundles (5.0.4), and the
// node-gyp prebuild (binding.gyp) loading from a copy without build/.
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { root, tmpDir } from './helpers';

/** A copy of the package as npm installs it: dist, package.json (+ extra items), and its production dependencies. */
function installCopy(dir: string, items: string[]): string {
  const pkg = path.join(dir, 'node_modules', 'cmac');
  for (const item of ['package.json', 'dist', ...items]) fs.cpSync(path.join(root, item), path.join(pkg, item), { recursive: true });
  const deps = execFileSync('npm', ['ls', '--omit=dev', '--all', '--parseable'], { cwd: root, encoding: 'utf8' })
    .trim()
    .split('\n')
    .slice(1);
  for (const d of deps) {
    const rel = path.relative(path.join(root, 'node_modules'), d);
    if (!rel.startsWith('..')) fs.cpSync(d, path.join(dir, 'node_modules', rel), { recursive: true });
  }
  return pkg;
}

function node(args: string[], cwd = root): string {
  return execFileSync(process.execPath, args, { cwd, encoding: 'utf8' });
}

describe('package', function () {
  this.timeout(900000);

  it('require("cmac") and import "cmac" expose the same API', () => {
    const cjs = node(['-e', `const c = require(${JSON.stringify(root)}); console.log(Object.keys(c).sort().join(','))`]);
    const esm = node([
      '--input-type=module',
      '-e',
      `import * as c from ${JSON.stringify(path.join(root, 'dist', 'index.mjs'))}; console.log(Object.keys(c).filter(k => k !== 'default').sort().join(','))`,
    ]);
    expect(esm).to.equal(cjs);
    expect(cjs).to.include('CmacModel').and.include('info');
    const v = node([
      '--input-type=module',
      '-e',
      `import { info } from ${JSON.stringify(path.join(root, 'dist', 'index.mjs'))}; console.log(info().torchVersion)`,
    ]);
    expect(v.trim()).to.match(/^\d+\.\d+/);
  });

  it('the public entry is curated; cmac/internal (a subpath export, CJS and ESM) holds the building blocks too', () => {
    // A project with cmac in node_modules (a link to this checkout): resolution goes through package.json "exports".
    const dir = tmpDir('cmac-subpath-');
    fs.mkdirSync(path.join(dir, 'node_modules'));
    fs.symlinkSync(root, path.join(dir, 'node_modules', 'cmac'), 'dir');
    const keys = (spec: string) =>
      node(['-e', `console.log(Object.keys(require(${JSON.stringify(spec)})).sort().join(','))`], dir)
        .trim()
        .split(',');
    const pub = keys('cmac'),
      internal = keys('cmac/internal');
    // The user-facing API (issue 16) ...
    expect(pub).to.include.members([
      'train',
      'CmacModel',
      'VideoClassifier',
      'resolveConfig',
      'configSchema',
      'folderSource',
      'createLoader',
      'evaluateModel',
      'linearProbe',
      'loadCheckpoint',
      'encodePng',
      'overlay',
      'localizationPanel',
      'info',
      'ConfigError',
      'DataError',
      'RunFolderBusyError',
    ]);
    // ... and not the helpers under it, which stay one import away.
    const helpers = [
      'hashString',
      'axisTaps',
      'videoFilter',
      'tfRecord',
      'RowsBuilder',
      'vstack',
      'runFfmpeg',
      'mixSeed',
      'scoreMap',
      'writeFileAtomic',
      'deepMerge',
    ];
    expect(pub.filter((k) => helpers.includes(k))).to.deep.equal([]);
    expect(internal).to.include.members([...helpers, ...pub]);
    expect(pub.length).to.be.below(100);
    const esm = node(
      [
        '--input-type=module',
        '-e',
        "import { hashString, CmacModel } from 'cmac/internal'; console.log(typeof hashString, typeof CmacModel)",
      ],
      dir,
    );
    expect(esm.trim()).to.equal('function function');
    const deep = spawnSync(process.execPath, ['-e', 'require("cmac/dist/data/prng.js")'], { cwd: dir, encoding: 'utf8' });
    expect(deep.stderr).to.match(/ERR_PACKAGE_PATH_NOT_EXPORTED/);
  });

  it('npx cmac info --json prints the libtorch version; usage errors exit 2', () => {
    const out = execFileSync('npx', ['--no-install', 'cmac', 'info', '--json'], { cwd: root, encoding: 'utf8' });
    expect(JSON.parse(out).torchVersion).to.match(/^\d+\.\d+\.\d+/);
    const bad = spawnSync(path.join(root, 'dist', 'cli', 'main.js'), ['info', '--nope'], { encoding: 'utf8' });
    expect(bad.status).to.equal(2);
    expect(bad.stderr).to.match(/unknown option/);
  });

  it("the public .d.ts and cmac/internal's type-check under TypeScript 5.0.4 (tslab)", () => {
    const dir = tmpDir();
    const file = path.join(dir, 'consumer.ts');
    fs.writeFileSync(
      file,
      [
        `import { CmacModel, info, modelPreset, Batch, StepResult, Tensor } from ${JSON.stringify(path.join(root, 'dist', 'index'))};`,
        `import { hashString, vstack, blank, type ModelConfig } from ${JSON.stringify(path.join(root, 'dist', 'internal'))};`,
        'const mc: ModelConfig = { ...modelPreset("tiny"), loss: { preset: "cmac-v", tau: 0.1 } };',
        'void [hashString("x"), vstack([blank(2, 2)], 0), mc];',
        'async function main(): Promise<StepResult> {',
        '  const m = await CmacModel.create({ ...modelPreset("tiny"), seed: 1 });',
        '  const t: Tensor<"uint8"> = { data: new Uint8Array(3), shape: [3] };',
        '  const b: Batch = { video: t };',
        '  console.log(info().torchVersion, b);',
        '  return m.trainStep(b, { lr: 1e-3 });',
        '}',
        'void main;',
      ].join('\n'),
    );
    const tsc = path.join(root, 'node_modules', 'typescript-tslab', 'bin', 'tsc');
    expect(node([tsc, '-v']).trim()).to.equal('Version 5.0.4');
    const r = spawnSync(
      process.execPath,
      [
        tsc,
        '--noEmit',
        '--strict',
        '--target',
        'es2020',
        '--module',
        'commonjs',
        '--moduleResolution',
        'node',
        '--types',
        'node',
        '--typeRoots',
        path.join(root, 'node_modules', '@types'),
        file,
      ],
      { encoding: 'utf8' },
    );
    expect(r.status, r.stdout + r.stderr).to.equal(0);
  });

  it('npm run prebuild (prebuildify + node-gyp via binding.gyp) makes a prebuild that loads from a copy without build/', () => {
    const r = spawnSync('npm', ['run', 'prebuild'], { cwd: root, encoding: 'utf8' });
    expect(r.status, r.stdout.slice(-3000) + r.stderr.slice(-3000)).to.equal(0);
    const prebuilt = path.join(root, 'prebuilds', `${process.platform}-${process.arch}`);
    const files = fs.readdirSync(prebuilt);
    expect(files.some((f) => f.endsWith('.node'))).to.equal(true);
    // A copy of the package as npm would install it: dist, package.json, prebuilds, node-gyp-build; no build/.
    const dir = tmpDir('cmac-copy-');
    const pkg = installCopy(dir, ['prebuilds']);
    expect(fs.existsSync(path.join(pkg, 'build'))).to.equal(false);
    const out = node(
      ['-e', 'const c = require("cmac"); const i = c.info(); console.log(JSON.stringify(i)); console.log(require.resolve("cmac"))'],
      dir,
    );
    const i = JSON.parse(out.split('\n')[0]);
    expect(i.torchVersion).to.match(/^\d+\.\d+\.\d+/);
    expect(i.torchSource).to.not.equal('unknown');
    // And it really was the prebuild that loaded:
    const which = node(
      ['-e', 'require("cmac").info(); console.log(Object.keys(require.cache).filter(f => f.endsWith(".node")).join("\\n"))'],
      dir,
    );
    expect(which).to.include(path.join('prebuilds', `${process.platform}-${process.arch}`));
  });

  it('a missing addon gives an error that lists what was tried and the fix', () => {
    const dir = tmpDir('cmac-noaddon-');
    installCopy(dir, ['scripts']);
    const r = spawnSync(process.execPath, ['-e', 'require("cmac").info()'], { cwd: dir, encoding: 'utf8' });
    expect(r.status).to.not.equal(0);
    expect(r.stderr).to.match(/could not be loaded/);
    expect(r.stderr).to.match(/prebuilds.*\(missing\)/);
    expect(r.stderr).to.match(/libtorch: found \(system, \d+\.\d+\.\d+\)|libtorch: NOT found|libtorch: found/);
    // An installed package has no `npm run setup`: the fix is npm rebuild, and the three ways to get a libtorch.
    expect(r.stderr).to.not.match(/npm run setup`? in the cmac folder/);
    expect(r.stderr).to.match(/Fix: `npm rebuild cmac --foreground-scripts`/);
    expect(r.stderr).to.include('sudo apt install libtorch-dev').and.include('pip install torch').and.include('LIBTORCH=/path/to/libtorch');
  });
});
