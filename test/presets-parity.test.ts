// The loss-preset table of method.md section 5 is held on both sides of the
// addon: the engine's (native/core lossPresets(), used when a ModelConfig
// names only loss.preset) and lib/config's lossSwitches() (what train and the
// CLI pass as explicit switches). native/core/tests/test_wiring.cpp holds the
// engine's rows to method.md's; this holds lib/config's rows to method.md's
// and, through the addon, each engine row to lib/config's.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import { lossPresetNames, lossSwitches, resolveConfig } from '../lib/config';
import { CmacModel, type ModelConfig, type StepResult } from '../lib/model';
import { randomBatch, root, tinyConfig } from './helpers';

type Preset = (typeof lossPresetNames)[number];
type Row = { name: string; withinModal: boolean; lossV: boolean; lossA: boolean };

/** The rows of the table in docs/method.md section 5: | `name` ... | yes/no | yes/no | yes/no |. */
function methodTable(): Row[] {
  const text = fs.readFileSync(path.join(root, 'docs', 'method.md'), 'utf8');
  const section = text.split(/^## /m).find((s) => s.startsWith('5.'));
  if (!section) throw new Error('docs/method.md has no section 5 (ablation presets)');
  return section.split('\n').flatMap((line) => {
    const m = /^\|\s*`([^`]+)`[^|]*\|\s*(yes|no)\s*\|\s*(yes|no)\s*\|\s*(yes|no)\s*\|/.exec(line);
    return m ? [{ name: m[1], withinModal: m[2] === 'yes', lossV: m[3] === 'yes', lossA: m[4] === 'yes' }] : [];
  });
}

const tsRow = (name: Preset): Row => ({ name, ...lossSwitches(resolveConfig({ loss: { preset: name } })) });

describe('loss presets: one table, held to method.md on both sides of the addon', () => {
  it('lib/config (lossPresetNames, lossSwitches) has method.md s5 rows in its order', () => {
    const doc = methodTable();
    expect(doc).to.have.length(5);
    expect(lossPresetNames.map(tsRow)).to.deep.equal(doc);
  });

  it("the engine's row for each preset gives the same step as lib/config's explicit switches", async function () {
    this.timeout(300000);
    const batch = randomBatch(3, 5);
    const step = async (loss: NonNullable<ModelConfig['loss']>): Promise<StepResult> => {
      const m = await CmacModel.create({ ...tinyConfig({ seed: 2 }), loss });
      try {
        return await m.trainStep(batch, { lr: 0, lambdaScale: 1 });
      } finally {
        m.dispose();
      }
    };
    const seen = new Set<string>();
    for (const name of lossPresetNames) {
      const { withinModal, lossV, lossA } = tsRow(name);
      // The engine's table: the preset name alone. lib/config's: another preset's name overridden by explicit switches.
      const engine = await step({ preset: name });
      const ts = await step({ preset: name === 'cmac' ? 'xmodal' : 'cmac', withinModal, lossV, lossA });
      const pick = (r: StepResult) => ({ name, loss: r.loss, lossCon: r.lossCon, lossV: r.lossV, lossA: r.lossA });
      expect(pick(engine)).to.deep.equal(pick(ts));
      expect({ name, lossV: engine.lossV > 0, lossA: engine.lossA > 0 }).to.deep.equal({ name, lossV, lossA });
      seen.add(`${engine.lossCon} ${lossV} ${lossA}`);
    }
    expect(seen.size).to.equal(lossPresetNames.length); // every row differs in a step (the comparison can tell rows apart)
  });
});
