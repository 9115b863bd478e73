// Fuzzing the safetensors parser (issue 9): scripts/fuzz-safetensors.sh builds
// native/fuzz/safetensors_fuzz.cpp with AddressSanitizer (+LeakSanitizer) and
// libFuzzer (clang), or its seeded-mutation fallback (g++ or clang without
// libFuzzer), into build-fuzz/, and runs it. Every input must parse or be
// rejected with a cmac::Error; whatever parses must round-trip.
//
// Default: 20000 cases or 30 s (a few seconds once built; the first build
// takes ~30 s). CMAC_LONG=1: 2,000,000 cases or 900 s. Skipped, with the
// reason printed, only when no C++ compiler with AddressSanitizer is installed
// (Debian: apt install clang libclang-rt-14-dev).
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { root } from './helpers';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

describe('fuzz: safetensors parser under AddressSanitizer', function () {
  this.timeout(1800000);

  it('no crash, no leak, no unclear exception over the run', function () {
    if (!has('clang++') && !has('g++')) {
      console.log('      (skipped: no clang++ or g++. Fix: apt install clang libclang-rt-14-dev)');
      this.skip();
    }
    if (!has('clang++'))
      console.log(
        '      (clang++ missing: using the seeded-mutation fallback built with g++; install clang libclang-rt-14-dev for libFuzzer)',
      );
    const long = process.env.CMAC_LONG === '1';
    const r = spawnSync('bash', [path.join(root, 'scripts', 'fuzz-safetensors.sh'), ...(long ? ['--long'] : [])], {
      cwd: root,
      encoding: 'utf8',
      timeout: long ? 1700000 : 600000,
      maxBuffer: 64 * 1024 * 1024,
    });
    const last = /fuzz-safetensors: mode (\S+), cases (\d+), crashes (\d+), leaks (\d+), seconds (\d+)/.exec(r.stdout);
    expect(last, `no summary line:\n${r.stdout}\n${r.stderr.slice(-4000)}`).to.not.equal(null);
    const [, mode, cases, crashes, leaks, secs] = last!;
    const stats = /cmac-fuzz: cases \d+, accepted (\d+), rejected[^\d]*(\d+)/.exec(r.stderr + r.stdout);
    console.log(
      `      ${mode}: ${cases} cases in ${secs} s, ${stats ? `${stats[1]} accepted, ${stats[2]} rejected with a cmac::Error, ` : ''}crashes ${crashes}, leaks ${leaks}`,
    );
    expect(Number(crashes), r.stderr.slice(-4000)).to.equal(0);
    expect(Number(leaks), r.stderr.slice(-4000)).to.equal(0);
    expect(r.status, r.stderr.slice(-4000)).to.equal(0);
    expect(Number(cases), 'cases run before the time limit').to.be.at.least(long ? 100000 : 5000);
  });
});
