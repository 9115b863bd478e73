#!/usr/bin/env node
// After tsc: writes dist/index.mjs: an ES module that re-exports the CommonJS build's
// named exports, so `import { CmacModel } from 'cmac'` works as well as require.
'use strict';
const fs = require('fs');
const path = require('path');
const dist = path.join(__dirname, '..', 'dist');
const names = Object.keys(require(path.join(dist, 'index.js'))).filter((n) => n !== 'default' && n !== '__esModule');
const body = ["import cjs from './index.js';", `export const { ${names.join(', ')} } = cjs;`, 'export default cjs;', ''].join('\n');
fs.writeFileSync(path.join(dist, 'index.mjs'), body);
// The CLI entry must be executable for `npx cmac` and the npm bin link. (It
// keeps tsc's `#!/usr/bin/env node`: it no longer re-executes node with
// MALLOC_ARENA_MAX=1, as each model runs on a native thread of its own and
// memory no longer depends on the variable; docs/benchmarks.md section 6.)
const cli = path.join(dist, 'cli', 'main.js');
fs.chmodSync(cli, 0o755);
