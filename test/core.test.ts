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
    it(name, function () { runCoreTest(this, name); });
  }
});
