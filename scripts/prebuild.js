#!/usr/bin/env node
// Makes prebuilds/<platform>-<arch>/cmac.node and its manifest cmac.json (the
// libtorch version, CUDA, libav and the shared libraries it needs), which
// scripts/install.js checks against the libtorch it finds on the user's machine.
//   `npm run prebuild`            prebuildify, which drives node-gyp through binding.gyp,
//                                 in a staging copy (node-gyp also writes to build/)
//   `node scripts/prebuild.js --cmake`   (prepack) the addon of the cmake-js build in
//                                 build/ (`npm run build:native`, incremental), stripped
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');
const { tryLoad } = require('./install');

const root = path.resolve(__dirname, '..');
const platform = `${process.platform}-${process.arch}`;
const out = path.join(root, 'prebuilds', platform);

/** @param {string} msg @returns {never} */
function die(msg, status = 1) {
  console.error(`prebuild: ${msg}`);
  process.exit(status);
}

/** @param {string[]} extra */
function viaPrebuildify(extra) {
  const stage = path.join(root, '.prebuild-stage');
  fs.mkdirSync(stage, { recursive: true });
  for (const item of ['package.json', 'binding.gyp', 'native', 'scripts']) {
    fs.cpSync(path.join(root, item), path.join(stage, item), { recursive: true, preserveTimestamps: true, force: true });
  }
  const nm = path.join(stage, 'node_modules');
  if (!fs.existsSync(nm)) fs.symlinkSync(path.join(root, 'node_modules'), nm, 'dir');
  const bin = path.join(root, 'node_modules', '.bin', 'prebuildify');
  // Build against this Node's own headers (no download): N-API makes the result
  // load in every Node version with N-API 8, and in Electron.
  const nodedir = process.env.npm_config_nodedir || path.resolve(process.execPath, '..', '..');
  const env = {
    ...process.env,
    JOBS: process.env.JOBS || 'max',
    npm_config_nodedir: nodedir,
    PREBUILD_NODE_GYP: path.join(root, 'node_modules', '.bin', 'node-gyp'),
  };
  const args = ['--napi', '--strip', '--target', process.versions.node, ...extra];
  const r = spawnSync(bin, args, { cwd: stage, stdio: 'inherit', env });
  if (r.status !== 0)
    die(
      'prebuildify failed. Fix: run `npm run setup` (libtorch-dev, g++), then `npm run build:gyp` to see the compiler output.',
      r.status || 1,
    );
  fs.mkdirSync(out, { recursive: true });
  const made = path.join(stage, 'prebuilds', platform);
  const file = fs.readdirSync(made).find((f) => f.endsWith('.node')); // prebuildify names it after package.json
  if (!file) die(`prebuildify wrote no .node file into ${made}`);
  fs.copyFileSync(path.join(made, file), path.join(out, 'cmac.node'));
  return 'node-gyp (prebuildify)';
}

function viaCmake() {
  const r = spawnSync('npm', ['run', '--silent', 'build:native'], { cwd: root, stdio: ['ignore', process.stderr, 'inherit'] });
  if (r.status !== 0) die('`npm run build:native` failed (output above). Fix: run `npm run setup`.', r.status || 1);
  fs.mkdirSync(out, { recursive: true });
  const dest = path.join(out, 'cmac.node');
  fs.copyFileSync(path.join(root, 'build', 'Release', 'cmac.node'), dest);
  const s = spawnSync('strip', ['--strip-unneeded', dest], { stdio: 'inherit' });
  if (s.status !== 0) console.error('prebuild: warning: strip failed; the prebuild keeps its symbols');
  return 'cmake-js (build/)';
}

/** The shared libraries the addon names (ELF NEEDED), or null without readelf. @param {string} file */
function needed(file) {
  const r = spawnSync('readelf', ['-d', file], { encoding: 'utf8' });
  if (r.status !== 0) return null;
  return [...r.stdout.matchAll(/\(NEEDED\)\s+Shared library: \[([^\]]+)\]/g)].map((m) => m[1]);
}

function main() {
  const args = process.argv.slice(2);
  const cmake = args.includes('--cmake');
  // The old prebuildify file name; node-gyp-build would pick either.
  fs.rmSync(path.join(out, 'cmac.node'), { force: true });
  const via = cmake ? viaCmake() : viaPrebuildify(args);
  const file = path.join(out, 'cmac.node');
  const l = tryLoad(file);
  if (l.error) die(`${path.relative(root, file)} was built but does not load: ${l.error}`);
  const libs = needed(file);
  const manifest = {
    name: 'cmac',
    version: require(path.join(root, 'package.json')).version,
    platform,
    napiVersion: 8,
    builtWith: via,
    node: process.version,
    glibc: /** @type {any} */ (process.report.getReport()).header.glibcVersionRuntime || null,
    torchVersion: l.info.torchVersion,
    torchSource: l.info.torchSource,
    cuda: !!l.info.cudaCompiled,
    cxx11Abi: l.info.cxx11Abi,
    libav: libs ? libs.some((n) => n.startsWith('libavformat')) : null,
    needed: libs,
  };
  fs.writeFileSync(path.join(out, 'cmac.json'), JSON.stringify(manifest, null, 2) + '\n');
  console.error(
    `prebuild: wrote ${path.relative(root, out)}/cmac.node and cmac.json (${via}; libtorch ${manifest.torchVersion} ${manifest.torchSource}, ` +
      `${manifest.cuda ? 'CUDA' : 'CPU'}, ${manifest.libav ? 'with' : 'without'} libav)`,
  );
}

main();
