#!/usr/bin/env node
// `npm run bench`: the benchmark driver lives in bench/run.js (docs/benchmarks.md).
'use strict';
const bench = require('../bench/run.js');
bench.main().catch(bench.fail);
