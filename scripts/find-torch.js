#!/usr/bin/env node
// Finds libtorch for both builds (CMake and node-gyp), in the one order
// documented in docs/architecture and README:
//   1. LIBTORCH (an unpacked libtorch)   2. Torch_DIR / CMAKE_PREFIX_PATH
//   3. a Python PyTorch install           4. the system package (libtorch-dev)
// CMAC_SKIP_PYTHON_TORCH=1 / CMAC_SKIP_SYSTEM_TORCH=1 leave out 3 / 4.
// Usage: find-torch.js --json | --cmake | --gyp-include | --gyp-libs | --gyp-ldflags | --gyp-defines | --gyp-std
'use strict';
const fs = require('fs');
const path = require('path');
const { execFileSync } = require('child_process');

/** @param {string} dir */
function hasConfig(dir) {
  return !!dir && fs.existsSync(path.join(dir, 'TorchConfig.cmake'));
}

/** cmake dir (the folder holding TorchConfig.cmake) under a prefix, if any. @param {string} prefix */
function configUnder(prefix) {
  for (const rel of [
    'share/cmake/Torch',
    'lib/cmake/Torch',
    'lib/x86_64-linux-gnu/cmake/Torch',
    'lib/aarch64-linux-gnu/cmake/Torch',
    'Torch',
    '.',
  ]) {
    const d = path.join(prefix, rel);
    if (hasConfig(d)) return d;
  }
  return null;
}

function pythonPrefix() {
  const tried = [];
  for (const py of [process.env.PYTHON ?? '', 'python3', '/usr/bin/python3'].filter(Boolean)) {
    try {
      const out = execFileSync(py, ['-c', 'import torch;print(torch.utils.cmake_prefix_path)'], {
        stdio: ['ignore', 'pipe', 'ignore'],
        timeout: 60000,
      })
        .toString()
        .trim();
      tried.push(`${py}: ${out}`);
      const dir = configUnder(out);
      if (dir) return { dir, tried };
    } catch (e) {
      tried.push(`${py}: no torch module`);
    }
  }
  return { dir: null, tried };
}

/**
 * @typedef {'LIBTORCH' | 'Torch_DIR' | 'CMAKE_PREFIX_PATH' | 'python' | 'system'} TorchSource
 * @typedef {{ source: TorchSource, cmakeDir: string, root: string, tried: string[] }} TorchFound
 * @typedef {TorchFound | { source: null, cmakeDir: null, root: null, tried: string[] }} TorchSearch
 */

/** Walks the order above; returns { source, cmakeDir, root, tried }. @returns {TorchSearch} */
function findTorch() {
  /** @type {string[]} */
  const tried = [];
  const env = process.env;
  if (env.LIBTORCH) {
    const dir = configUnder(env.LIBTORCH);
    tried.push(`LIBTORCH=${env.LIBTORCH}: ${dir ? 'found' : 'no TorchConfig.cmake'}`);
    if (dir) return done('LIBTORCH', dir);
  }
  if (env.Torch_DIR) {
    const dir = hasConfig(env.Torch_DIR) ? env.Torch_DIR : configUnder(env.Torch_DIR);
    tried.push(`Torch_DIR=${env.Torch_DIR}: ${dir ? 'found' : 'no TorchConfig.cmake'}`);
    if (dir) return done('Torch_DIR', dir);
  }
  for (const p of (env.CMAKE_PREFIX_PATH || '').split(path.delimiter).filter(Boolean)) {
    const dir = configUnder(p);
    tried.push(`CMAKE_PREFIX_PATH entry ${p}: ${dir ? 'found' : 'no TorchConfig.cmake'}`);
    if (dir) return done('CMAKE_PREFIX_PATH', dir);
  }
  if (env.CMAC_SKIP_PYTHON_TORCH !== '1') {
    const py = pythonPrefix();
    tried.push(...py.tried.map((t) => `python ${t}`));
    if (py.dir) return done('python', py.dir);
  } else {
    tried.push('python: skipped (CMAC_SKIP_PYTHON_TORCH=1)');
  }
  if (env.CMAC_SKIP_SYSTEM_TORCH === '1') tried.push('system: skipped (CMAC_SKIP_SYSTEM_TORCH=1)');
  for (const prefix of env.CMAC_SKIP_SYSTEM_TORCH === '1' ? [] : ['/usr', '/usr/local']) {
    const dir = configUnder(prefix);
    tried.push(`system ${prefix}: ${dir ? 'found' : 'no TorchConfig.cmake'}`);
    if (dir) return done('system', dir);
  }
  return { source: null, cmakeDir: null, root: null, tried };

  /** @param {TorchSource} source @param {string} cmakeDir @returns {TorchFound} */
  function done(source, cmakeDir) {
    return { source, cmakeDir: path.resolve(cmakeDir), root: torchRoot(cmakeDir), tried };
  }
}

/** The install prefix holding include/ and the libraries. @param {string} cmakeDir */
function torchRoot(cmakeDir) {
  let d = path.resolve(cmakeDir);
  for (let i = 0; i < 5; i++) {
    if (fs.existsSync(path.join(d, 'include', 'torch', 'csrc', 'api', 'include'))) return d;
    d = path.dirname(d);
  }
  return path.resolve(cmakeDir, '../../..');
}

/** @param {TorchFound} t */
function libDir(t) {
  for (const rel of ['lib', 'lib/x86_64-linux-gnu', 'lib/aarch64-linux-gnu']) {
    const d = path.join(t.root, rel);
    if (fs.existsSync(path.join(d, 'libtorch_cpu.so'))) return d;
  }
  return path.join(t.root, 'lib');
}

/** _GLIBCXX_USE_CXX11_ABI the library was built with (read from TorchConfig.cmake). @param {TorchFound} t */
function cxx11Abi(t) {
  const text = fs.readFileSync(path.join(t.cmakeDir, 'TorchConfig.cmake'), 'utf8');
  const m = /_GLIBCXX_USE_CXX11_ABI=(\d)/.exec(text);
  return m ? Number(m[1]) : 1;
}

/** @param {TorchFound} t */
function hasCuda(t) {
  return fs.existsSync(path.join(libDir(t), 'libtorch_cuda.so'));
}

/** libtorch's version from TorchConfigVersion.cmake ("1.13.0"), or null. @param {TorchFound} t */
function torchVersion(t) {
  try {
    const m = /PACKAGE_VERSION "([0-9.]+)"/.exec(fs.readFileSync(path.join(t.cmakeDir, 'TorchConfigVersion.cmake'), 'utf8'));
    return m ? m[1] : null;
  } catch {
    return null;
  }
}

/** The first of these folders holding `rel` (a header), or null. @param {string[]} dirs @param {string} rel */
function headerIn(dirs, rel) {
  return dirs.find((d) => fs.existsSync(path.join(d, rel))) || null;
}

/** @param {string} d */
function isSystemDir(d) {
  return ['/usr/lib', '/usr/lib64', '/usr/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib'].includes(d);
}

/** The three ways to get a libtorch, for every "not found" message (install, loader, CMake). */
const HOW_TO_GET_LIBTORCH = [
  'Get a libtorch in one of three ways, then run `npm rebuild cmac` (in a cmac checkout: `npm run setup` does 1.):',
  '  1. Debian/Ubuntu, CPU:  sudo apt install libtorch-dev',
  '  2. PyTorch, CPU or CUDA: pip install torch                       (found through `python3 -c "import torch"`;',
  '                          CPU only: pip install torch --index-url https://download.pytorch.org/whl/cpu)',
  '  3. a libtorch archive:  unpack libtorch-*.zip from https://pytorch.org/get-started/locally/ (C++, cxx11 ABI)',
  '                          and set LIBTORCH=/path/to/libtorch',
].join('\n');

function main() {
  const t = findTorch();
  const arg = process.argv[2] || '--json';
  if (!t.source) {
    if (arg === '--json') {
      console.log(JSON.stringify(t, null, 2));
      return;
    }
    console.error('cmac: libtorch not found. Tried:\n  ' + t.tried.join('\n  ') + '\n' + HOW_TO_GET_LIBTORCH);
    process.exit(1);
  }
  const lib = libDir(t);
  const cuda = hasCuda(t);
  switch (arg) {
    case '--json':
      console.log(JSON.stringify({ ...t, libDir: lib, cxx11Abi: cxx11Abi(t), cuda, version: torchVersion(t) }, null, 2));
      break;
    case '--cmake': // a CMake list: source;cmakeDir;root;libDir;abi;cuda
      process.stdout.write([t.source, t.cmakeDir, t.root, lib, cxx11Abi(t), cuda ? 1 : 0].join(';'));
      break;
    case '--gyp-include':
      console.log([path.join(t.root, 'include'), path.join(t.root, 'include/torch/csrc/api/include')].join(' '));
      break;
    case '--gyp-defines': {
      // c10d back-ends only where their headers are (as CMakeLists.txt decides): PyTorch's
      // wheels ship no gloo/*.h; nccl.h comes with CUDA installs or libnccl-dev.
      const inc = [path.join(t.root, 'include'), '/usr/include', '/usr/local/include'];
      const gloo =
        headerIn(inc, 'gloo/config.h') && fs.existsSync(path.join(t.root, 'include/torch/csrc/distributed/c10d/ProcessGroupGloo.hpp'));
      const nccl = cuda && headerIn([...inc, '/usr/local/cuda/include'], 'nccl.h');
      console.log(
        [
          `_GLIBCXX_USE_CXX11_ABI=${cxx11Abi(t)}`,
          `CMAC_TORCH_SOURCE_ID=${t.source}`,
          ...(gloo ? ['USE_DISTRIBUTED', 'USE_C10D_GLOO', 'CMAC_HAVE_GLOO'] : []),
          ...(cuda ? ['CMAC_WITH_CUDA=1'] : []),
          ...(nccl ? ['USE_DISTRIBUTED', 'USE_C10D_NCCL', 'CMAC_HAVE_NCCL'] : []),
        ].join(' '),
      );
      break;
    }
    case '--gyp-std': {
      // libtorch 2.12 and later need C++20 in every consumer of the ATen headers (as CMakeLists.txt).
      const [maj, min] = (torchVersion(t) || '0.0').split('.').map(Number);
      console.log(maj > 2 || (maj === 2 && min >= 12) ? '-std=c++20' : '-std=c++17');
      break;
    }
    case '--gyp-libs': {
      const libs = [`-L${lib}`];
      if (cuda) libs.push('-Wl,--no-as-needed', '-ltorch_cuda', '-lc10_cuda', '-Wl,--as-needed');
      libs.push('-ltorch', '-ltorch_cpu', '-lc10');
      console.log(libs.join(' '));
      break;
    }
    case '--gyp-ldflags': {
      // Relative rpath only: from build/Release (and prebuilds/<platform>) to the torch lib dir.
      if (isSystemDir(lib)) {
        console.log('');
        break;
      }
      const pkg = path.resolve(__dirname, '..');
      const rel = path.relative(path.join(pkg, 'build', 'Release'), lib);
      console.log(`-Wl,-rpath,'$$ORIGIN/${rel}'`);
      break;
    }
    default:
      console.error(`find-torch: unknown option ${arg}`);
      process.exit(2);
  }
}

module.exports = { findTorch, torchVersion, hasCuda, libDir, cxx11Abi, HOW_TO_GET_LIBTORCH };
if (require.main === module) main();
