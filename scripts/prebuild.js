#!/usr/bin/env node
// `npm run prebuild`: builds prebuilds/<platform>-<arch>/ with prebuildify,
// which drives node-gyp through binding.gyp. It runs in a staging copy so the
// CMake build in build/ is left alone (node-gyp also writes to build/).
'use strict';
const fs = require('fs');
const path = require('path');
const { spawnSync } = require('child_process');

const root = path.resolve(__dirname, '..');
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
const env = { ...process.env, JOBS: process.env.JOBS || 'max', npm_config_nodedir: nodedir,
  PREBUILD_NODE_GYP: path.join(root, 'node_modules', '.bin', 'node-gyp') };
const args = ['--napi', '--strip', '--target', process.versions.node, ...process.argv.slice(2)];
const r = spawnSync(bin, args, { cwd: stage, stdio: 'inherit', env });
if (r.status !== 0) {
  console.error('prebuild: prebuildify failed. Fix: run `npm run setup` (libtorch-dev, g++), then `npm run build:gyp` to see the compiler output.');
  process.exit(r.status || 1);
}
fs.cpSync(path.join(stage, 'prebuilds'), path.join(root, 'prebuilds'), { recursive: true });
console.log(`prebuild: wrote ${path.relative(root, path.join(root, 'prebuilds'))}/${process.platform}-${process.arch}/`);
