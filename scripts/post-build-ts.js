#!/usr/bin/env node
// After tsc: writes dist/index.mjs: an ES module that re-exports the CommonJS build's
// named exports, so `import { CmacModel } from 'cmac'` works as well as require.
'use strict';
const fs = require('fs');
const path = require('path');
const dist = path.join(__dirname, '..', 'dist');
const names = Object.keys(require(path.join(dist, 'index.js'))).filter((n) => n !== 'default' && n !== '__esModule');
const body = [
  "import cjs from './index.js';",
  `export const { ${names.join(', ')} } = cjs;`,
  'export default cjs;',
  '',
].join('\n');
fs.writeFileSync(path.join(dist, 'index.mjs'), body);
// The CLI entry must be executable for `npx cmac` and the npm bin link. It
// starts node with MALLOC_ARENA_MAX=1 unless the caller set a value: steps run
// on libuv worker threads, whose per-thread glibc heaps are unmapped and
// refilled every step (tiny step, batch 32: ~150k page faults and 2.2 GiB peak
// RSS without it, ~38k and 0.9 GiB with it; docs/benchmarks.md). The variable
// must be set before the process starts, so the library cannot do it itself.
// Lines 1-2 are a sh/JavaScript polyglot: sh exports and re-executes node on
// this file; JavaScript sees a shebang, then the string ":" and a comment.
const cli = path.join(dist, 'cli', 'main.js');
const src = fs.readFileSync(cli, 'utf8');
const head = '#!/bin/sh\n":" //; export MALLOC_ARENA_MAX="${MALLOC_ARENA_MAX:-1}"; exec node "$0" "$@"\n';
if (src.startsWith('#!/usr/bin/env node\n')) fs.writeFileSync(cli, head + src.slice('#!/usr/bin/env node\n'.length));
fs.chmodSync(cli, 0o755);
