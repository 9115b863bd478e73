#!/usr/bin/env node
// Finds FFmpeg's libraries (libav*) with pkg-config for binding.gyp, as
// CMakeLists.txt does with pkg_check_modules. Without them (or without
// pkg-config) every mode prints nothing: the addon builds without
// native/core/media and lib/ decodes through the ffmpeg CLI.
//   --gyp-sources   native/core/media/*.cpp
//   --gyp-include   include folders
//   --gyp-defines   CMAC_HAVE_LIBAV=1
//   --gyp-libs      linker flags
const { execFileSync } = require('child_process');
const fs = require('fs');
const path = require('path');

const mods = ['libavformat', 'libavcodec', 'libavutil', 'libswscale', 'libswresample'];
/** @param {string[]} args */
function pc(args) {
  try {
    return execFileSync('pkg-config', [...args, ...mods], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}
const have = pc(['--exists']) !== null && process.env.CMAC_WITH_LIBAV !== '0';
const mode = process.argv[2];
if (!have) {
  if (mode === '--gyp-sources')
    process.stderr.write(
      'cmac: libav not found with pkg-config; native decoding is left out (apt install libavformat-dev libavcodec-dev libavutil-dev libswscale-dev libswresample-dev pkg-config)\n',
    );
  process.exit(0);
}
const root = path.join(__dirname, '..');
if (mode === '--gyp-sources') {
  console.log(
    fs
      .readdirSync(path.join(root, 'native/core/media'))
      .filter((f) => f.endsWith('.cpp'))
      .map((f) => `native/core/media/${f}`)
      .join(' '),
  );
} else if (mode === '--gyp-include') {
  const inc = (pc(['--cflags-only-I']) || '')
    .split(/\s+/)
    .filter(Boolean)
    .map((s) => s.replace(/^-I/, ''));
  console.log(['native/core/media', ...inc].join(' '));
} else if (mode === '--gyp-defines') {
  console.log('CMAC_HAVE_LIBAV=1');
} else if (mode === '--gyp-libs') {
  console.log(pc(['--libs']) || '');
} else {
  process.stderr.write('usage: find-libav.js --gyp-sources|--gyp-include|--gyp-defines|--gyp-libs\n');
  process.exit(2);
}
