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
// The CLI entry must be executable for `npx cmac` and the npm bin link. Its
// shebang starts node with MALLOC_ARENA_MAX=1: steps run on libuv worker
// threads, whose per-thread glibc heaps are unmapped and refilled every step
// (tiny step, batch 32: 72k page faults and 2.2 GiB peak RSS per step without
// it, ~0 and 0.85 GiB with it; docs/benchmarks.md). The variable must be set
// before the process starts, so the library cannot do it for itself.
const cli = path.join(dist, 'cli', 'main.js');
const src = fs.readFileSync(cli, 'utf8');
if (src.startsWith('#!/usr/bin/env node\n')) fs.writeFileSync(cli, '#!/usr/bin/env -S MALLOC_ARENA_MAX=1 node\n' + src.slice('#!/usr/bin/env node\n'.length));
fs.chmodSync(cli, 0o755);
