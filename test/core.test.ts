// Runs the native/core C++ tests (built by CMake next to the addon), one
// mocha case per C++ case. Parity cases run in parity.test.ts.
import { expect } from 'chai';
import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { root } from './helpers';

export const coreTests = path.join(root, 'build', 'Release', 'cmac_core_tests');

export function listCoreTests(): string[] {
  if (!fs.existsSync(coreTests)) throw new Error(`${coreTests} is missing: run npm run build:native`);
  return execFileSync(coreTests, ['--list']).toString().trim().split('\n');
}

/** Runs one C++ case; a case that skips itself (e.g. CUDA on a CPU machine) is reported as pending. */
export function runCoreTest(ctx: Mocha.Context, name: string, extra: string[] = []): void {
  const r = spawnSync(coreTests, ['--run', name, ...extra], { encoding: 'utf8' });
  if (r.status === 3) ctx.skip();
  expect(r.status, `${name}:\n${r.stdout}${r.stderr}`).to.equal(0);
}

describe('native/core (C++ tests)', function () {
  this.timeout(300000);
  for (const name of listCoreTests().filter((n) => !n.startsWith('parity_'))) {
    it(name, function () {
      runCoreTest(this, name);
    });
  }
});

// Both C++ test binaries share one runner (native/core/tests/runner.h): the same
// flags, lines, summary and exit codes, whether or not they link libtorch.
describe('C++ test runner (cmac_core_tests, cmac_media_tests)', function () {
  this.timeout(120000);
  const mediaTests = path.join(root, 'build', 'Release', 'cmac_media_tests');
  for (const bin of [coreTests, mediaTests]) {
    const name = path.basename(bin);
    it(`${name}: one case by name, a summary line, exit codes 2 (no such case) and 4 (bad argument)`, function () {
      if (!fs.existsSync(bin)) throw new Error(`${bin} is missing: run npm run build:native`);
      const first = execFileSync(bin, ['--list']).toString().trim().split('\n')[0];
      const one = spawnSync(bin, ['--run', first], { encoding: 'utf8' });
      expect(one.status, one.stdout + one.stderr).to.be.oneOf([0, 3]);
      expect(one.stdout).to.match(new RegExp(`^(ok  |skip) ${first}`, 'm'));
      expect(one.stdout).to.match(/^\d+ passed, 0 failed, \d+ skipped$/m);
      const none = spawnSync(bin, ['--run', 'no_such_case'], { encoding: 'utf8' });
      expect(none.status).to.equal(2);
      expect(none.stdout).to.contain('no test named no_such_case');
      const bad = spawnSync(bin, ['--fixture', 'x'], { encoding: 'utf8' });
      expect(bad.status).to.equal(4);
      expect(bad.stderr).to.contain("unknown argument '--fixture'");
    });
  }
});
