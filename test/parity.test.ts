// Parity with torchvision and torchaudio: fixtures are generated now by
// scripts/make-parity-fixtures.py with Debian's PyTorch, then compared by the
// C++ core tests (max abs error <= 1e-4 for the encoders, 1e-4 relative for log-mel).
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import { CmacModel } from '../lib/model';
import { modelPreset } from '../lib/presets';
import * as path from 'path';
import { root, tmpDir } from './helpers';
import { listCoreTests, runCoreTest } from './core.test';

describe('parity with torchvision / torchaudio', function () {
  this.timeout(600000);
  const dir = tmpDir('cmac-parity-');
  before(function () {
    const r = spawnSync('/usr/bin/python3', [path.join(root, 'scripts', 'make-parity-fixtures.py'), dir], { encoding: 'utf8' });
    if (r.status !== 0) {
      throw new Error(
        `fixture generation failed (needs apt python3-torch, python3-torchvision, python3-torchaudio: ` +
          `run \`npm run setup -- --python\`):\n${r.stdout}${r.stderr}`,
      );
    }
  });
  for (const name of listCoreTests().filter((n) => n.startsWith('parity_'))) {
    it(name, function () {
      runCoreTest(this, name, ['--fixtures', dir]);
    });
  }
});

describe('torchvision loads cmac checkpoints', function () {
  this.timeout(300000);
  it('visual.* loads into r2plus1d_18 and audio.* into the resnet18 variant with strict=True (paper preset)', async () => {
    const dir = tmpDir('cmac-tvload-');
    const file = path.join(dir, 'paper.safetensors');
    const m = await CmacModel.create({ ...modelPreset('paper'), seed: 1 });
    await m.save(file);
    m.dispose();
    const r = spawnSync('/usr/bin/python3', [path.join(root, 'scripts', 'check-torchvision-load.py'), file], { encoding: 'utf8' });
    expect(r.status, r.stdout + r.stderr).to.equal(0);
    const out = JSON.parse(r.stdout.trim().split('\n').pop()!);
    expect(out.visual_keys).to.equal(222);
    expect(out.visual_feature).to.deep.equal([1, 512]);
  });
});
