// Fuzzing native decoding (issue 13): scripts/fuzz-media.sh builds
// native/fuzz/media_fuzz.cpp with AddressSanitizer (+LeakSanitizer) and
// libFuzzer (clang) or its seeded-mutation fallback, seeds it with tiny
// mp4/mkv/webm/avi/mov files made by the ffmpeg CLI, and runs probe + a clip
// decode over each input in memory (the custom AVIOContext path). Every input
// must decode or fail with a skip reason; no crash, no leak.
// Default: 10000 cases or 120 s. CMAC_LONG=1: 200000 cases or 1800 s.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as path from 'path';
import { root } from './helpers';

const has = (cmd: string) => spawnSync('sh', ['-c', `command -v ${cmd}`]).status === 0;

describe('fuzz: native media decoding under AddressSanitizer', function () {
  this.timeout(3600000);

  it('no crash, no leak, every rejection a skip reason', function () {
    if (!has('clang++') && !has('g++')) {
      console.log('      (skipped: no clang++ or g++. Fix: apt install clang libclang-rt-14-dev)');
      this.skip();
    }
    const long = process.env.CMAC_LONG === '1';
    const r = spawnSync('bash', [path.join(root, 'scripts', 'fuzz-media.sh'), ...(long ? ['--long'] : [])], {
      cwd: root,
      encoding: 'utf8',
      timeout: long ? 3000000 : 900000,
      maxBuffer: 64 * 1024 * 1024,
    });
    if (r.status === 4) {
      console.log(`      (skipped: ${r.stderr.trim()})`);
      this.skip();
    }
    const last = /fuzz-media: mode (\S+), cases (\d+), crashes (\d+), leaks (\d+), seconds (\d+)/.exec(r.stdout);
    expect(last, `no summary line:\n${r.stdout}\n${r.stderr.slice(-4000)}`).to.not.equal(null);
    const [, mode, cases, crashes, leaks, secs] = last!;
    const stats = /cmac-fuzz: cases \d+, decoded (\d+), rejected with a reason (\d+)/g;
    let m: RegExpExecArray | null;
    let lastStats: RegExpExecArray | null = null;
    while ((m = stats.exec(r.stderr))) lastStats = m;
    console.log(
      `      ${mode}: ${cases} cases in ${secs} s, ${lastStats ? `${lastStats[1]} decoded, ${lastStats[2]} rejected with a reason, ` : ''}crashes ${crashes}, leaks ${leaks}`,
    );
    expect(Number(crashes), r.stderr.slice(-4000)).to.equal(0);
    expect(Number(leaks), r.stderr.slice(-4000)).to.equal(0);
    expect(r.status, r.stderr.slice(-4000)).to.equal(0);
    expect(Number(cases), 'cases run before the time limit').to.be.at.least(long ? 200000 : 10000);
  });
});
