#!/usr/bin/env node
// npm's "install" script: node-gyp-build's semantics (use a build that loads,
// else build from source) with a libtorch check, as sharp, better-sqlite3 and
// onnxruntime-node do it:
//   1. build/Release/cmac.node from an earlier source build, if it loads;
//   2. prebuilds/<platform>-<arch>/cmac.node, if its manifest (cmac.json) was
//      made for the libtorch found here (version and CUDA) and it loads;
//   3. else a source build with cmake-js against the libtorch found
//      (scripts/find-torch.js: LIBTORCH, Torch_DIR / CMAKE_PREFIX_PATH,
//      the Python `torch` on PATH, the system), progress on stderr;
//   4. no libtorch and nothing that loads: fail with the three ways to get one.
// `npm install cmac --build-from-source` (or CMAC_BUILD_FROM_SOURCE=1) skips
// 1 and 2. In a development checkout (tsconfig.json present) it does nothing:
// `npm run build:all` (run by npm test and npm run demo) builds there.
'use strict';
const fs = require('fs');
const os = require('os');
const path = require('path');
const { spawnSync } = require('child_process');
const { findTorch, torchVersion, hasCuda, HOW_TO_GET_LIBTORCH } = require('./find-torch');

const root = path.resolve(__dirname, '..');
const platform = `${process.platform}-${process.arch}`;
const say = (/** @type {string} */ m) => process.stderr.write(`cmac: ${m}\n`);

/** Loads an addon in a child process (a missing shared library must not end this one); returns its info() or the error. */
/** @param {string} file @returns {{ info?: any, error?: string }} */
function tryLoad(file) {
  const r = spawnSync(process.execPath, ['-e', `process.stdout.write(JSON.stringify(require(${JSON.stringify(file)}).info()))`], {
    encoding: 'utf8',
    timeout: 120000,
    env: { ...process.env, OPENBLAS_NUM_THREADS: '1', GOTO_NUM_THREADS: '1' },
  });
  if (r.status === 0) {
    try {
      return { info: JSON.parse(r.stdout) };
    } catch {
      /* fall through */
    }
  }
  const why =
    (r.stderr || '').split('\n').find((l) => /Error|error|cannot|No such/.test(l)) || (r.error ? r.error.message : `exit ${r.status}`);
  return { error: why.trim() };
}

/** The prebuild for this platform and its manifest, or null. */
function prebuild() {
  const dir = path.join(root, 'prebuilds', platform);
  const file = path.join(dir, 'cmac.node');
  if (!fs.existsSync(file)) return null;
  let manifest = null;
  try {
    manifest = JSON.parse(fs.readFileSync(path.join(dir, 'cmac.json'), 'utf8'));
  } catch {
    /* checked below */
  }
  return { file, manifest };
}

/**
 * Why the prebuild does not fit the libtorch found, or null when it fits.
 * @param {{ file: string, manifest: any }} pb @param {import('./find-torch').TorchSearch} t
 */
function mismatch(pb, t) {
  if (!pb.manifest) return `prebuilds/${platform}/cmac.json (the manifest) is missing`;
  if (!t.source) return null; // nothing to compare with: loading decides
  const want = torchVersion(t);
  if (want && pb.manifest.torchVersion !== want) {
    return `the prebuild was made for libtorch ${pb.manifest.torchVersion}, the libtorch found here (${t.source}, ${t.cmakeDir}) is ${want}`;
  }
  if (hasCuda(t) !== !!pb.manifest.cuda) {
    return `the prebuild is ${pb.manifest.cuda ? 'a CUDA' : 'a CPU'} build, the libtorch found here (${t.source}) is ${hasCuda(t) ? 'CUDA' : 'CPU only'}`;
  }
  return null;
}

/** @param {string[]} lines @returns {never} */
function fail(lines) {
  say(lines.join('\n'));
  process.exit(1);
}

/** @param {string} cmd @param {string[]} args */
function has(cmd, args) {
  const r = spawnSync(cmd, args, { stdio: 'ignore' });
  return r.status === 0;
}

/** @param {import('./find-torch').TorchFound} t @param {string} reason */
function buildFromSource(t, reason) {
  const missing = [];
  if (!has('cmake', ['--version'])) missing.push('cmake');
  if (!has(process.env.CXX || 'c++', ['--version'])) missing.push('a C++ compiler (g++)');
  if (missing.length) {
    fail([
      `building from source (${reason}) needs ${missing.join(' and ')}.`,
      'Fix: sudo apt install cmake g++ nlohmann-json3-dev pkg-config (Debian/Ubuntu; other systems: the same from their package manager), then `npm rebuild cmac`.',
    ]);
  }
  const jobs = Number(process.env.CMAC_BUILD_JOBS) || os.cpus().length;
  say(`building the addon from source: ${reason}.`);
  say(
    `libtorch ${torchVersion(t) || '(version unknown)'} from ${t.source} (${t.cmakeDir}), ${hasCuda(t) ? 'CUDA' : 'CPU'}; cmake-js, ${jobs} jobs. ` +
      'This takes about 10 minutes on 2 cores (see it with `npm install --foreground-scripts`).',
  );
  const cmakeJs = require.resolve('cmake-js/bin/cmake-js', { paths: [root] });
  const t0 = Date.now();
  const r = spawnSync(
    process.execPath,
    [cmakeJs, 'compile', '--out', 'build', '--parallel', String(jobs), '--target', 'cmac', '--CDCMAC_BUILD_TESTS=OFF'],
    { cwd: root, stdio: ['ignore', 'inherit', 'inherit'] },
  );
  const secs = ((Date.now() - t0) / 1000).toFixed(0);
  if (r.status !== 0) {
    fail([
      `the source build failed after ${secs} s (the compiler's output is above).`,
      'Fix: install what it names (Debian/Ubuntu: sudo apt install cmake g++ nlohmann-json3-dev pkg-config), then `npm rebuild cmac --foreground-scripts`.',
      HOW_TO_GET_LIBTORCH,
    ]);
  }
  const built = path.join(root, 'build', 'Release', 'cmac.node');
  const l = tryLoad(built);
  if (l.error) fail([`built ${built} in ${secs} s, but it does not load: ${l.error}`, HOW_TO_GET_LIBTORCH]);
  say(`built from source in ${secs} s: build/Release/cmac.node, libtorch ${l.info.torchVersion} (${l.info.torchSource}).`);
}

function main() {
  if (fs.existsSync(path.join(root, 'tsconfig.json')) && process.env.CMAC_INSTALL_IN_CHECKOUT !== '1') {
    say('development checkout: nothing to do at install (`npm run build:all` builds the addon; npm test and npm run demo run the set-up).');
    return;
  }
  const fromSource = process.env.npm_config_build_from_source === 'true' || process.env.CMAC_BUILD_FROM_SOURCE === '1';
  const t = findTorch();
  /** @type {string | null} */
  let reason = 'requested (--build-from-source)';
  if (!fromSource) {
    const built = path.join(root, 'build', 'Release', 'cmac.node');
    if (fs.existsSync(built)) {
      const l = tryLoad(built);
      const want = t.source ? torchVersion(t) : null;
      if (l.info && (!want || l.info.torchVersion === want)) {
        say(`using build/Release/cmac.node (libtorch ${l.info.torchVersion}, ${l.info.torchSource}).`);
        return;
      }
      // The loader tries build/Release before prebuilds/: a stale build must not shadow what is chosen below.
      say(
        `build/Release/cmac.node ${l.info ? `was built for libtorch ${l.info.torchVersion}, the libtorch found here is ${want}` : `does not load: ${l.error}`}; set aside.`,
      );
      fs.renameSync(built, `${built}.old`);
    }
    const pb = prebuild();
    if (!pb) {
      reason = `there is no prebuild for ${platform}`;
    } else {
      reason = mismatch(pb, t);
      if (!reason) {
        const l = tryLoad(pb.file);
        if (l.info) {
          const m = pb.manifest || {};
          say(
            `using the prebuild prebuilds/${platform}/cmac.node (libtorch ${l.info.torchVersion}, ${m.libav ? 'with' : 'without'} libav).`,
          );
          return;
        }
        reason = `the prebuild does not load here: ${l.error}`;
      }
    }
  }
  if (!t.source) {
    fail([`${reason}, and no libtorch to build against was found. Tried:`, ...t.tried.map((x) => `  ${x}`), HOW_TO_GET_LIBTORCH]);
  }
  buildFromSource(t, reason);
}

module.exports = { tryLoad };
if (require.main === module) main();
