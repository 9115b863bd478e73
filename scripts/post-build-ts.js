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
// The CLI entry must be executable for `npx cmac` and the npm bin link.
fs.chmodSync(path.join(dist, 'cli', 'main.js'), 0o755);
