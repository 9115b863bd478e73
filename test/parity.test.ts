// Parity with torchvision and torchaudio: fixtures are generated now by
// scripts/make-parity-fixtures.py with Debian's PyTorch, then compared by the
// C++ core tests (max abs error <= 1e-4 for the encoders, 1e-4 relative for log-mel).
import { spawnSync } from 'child_process';
import * as path from 'path';
import { root, tmpDir } from './helpers';
import { listCoreTests, runCoreTest } from './core.test';

describe('parity with torchvision / torchaudio', function () {
  this.timeout(600000);
  const dir = tmpDir('cmac-parity-');
  before(function () {
    const r = spawnSync('/usr/bin/python3', [path.join(root, 'scripts', 'make-parity-fixtures.py'), dir], { encoding: 'utf8' });
    if (r.status !== 0) {
      throw new Error(`fixture generation failed (needs apt python3-torch, python3-torchvision, python3-torchaudio: ` +
        `run \`npm run setup -- --python\`):\n${r.stdout}${r.stderr}`);
    }
  });
  for (const name of listCoreTests().filter((n) => n.startsWith('parity_'))) {
    it(name, () => runCoreTest(name, ['--fixtures', dir]));
  }
});
