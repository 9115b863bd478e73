// examples/cmac.ipynb runs headless in the tslab kernel (issue 9): every code
// cell executes without error and the heatmap cell shows an image/png.
//
// Needs Jupyter's nbconvert + ipykernel (Debian: jupyter-nbconvert
// python3-ipykernel) and tslab, installed GLOBALLY (`npm install -g
// tslab@1.0.22`), not as a devDependency: tslab depends on
// @tslab/typescript-for-tslab, whose `tsc` bin npm links over TypeScript's own
// node_modules/.bin/tsc on a fresh `npm ci`, so the project would build with
// TypeScript 5.0.4 and fail. A `tslab` in node_modules/.bin is used when
// present. The kernel spec is written into a temporary JUPYTER_PATH, so no
// `tslab install` is needed. Skipped, with the reason printed, only when
// nbconvert or tslab is missing. About 30 s on 2 cores.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { root, tmpDir } from './helpers';

interface Output {
  output_type: string;
  name?: string;
  text?: string[] | string;
  data?: Record<string, unknown>;
  ename?: string;
  evalue?: string;
}
interface Cell {
  cell_type: string;
  execution_count: number | null;
  outputs?: Output[];
  source: string[] | string;
}

describe('examples/cmac.ipynb (tslab kernel, headless)', function () {
  this.timeout(900000);

  it('executes every cell without error and displays a heatmap PNG', function () {
    const local = path.join(root, 'node_modules', '.bin', 'tslab');
    const onPath = spawnSync('sh', ['-c', 'command -v tslab'], { encoding: 'utf8' }).stdout.trim();
    const tslab = fs.existsSync(local) ? local : onPath;
    const nbconvert = spawnSync('jupyter', ['nbconvert', '--version'], { encoding: 'utf8' });
    if (nbconvert.status !== 0) {
      console.log(
        '      (skipped: `jupyter nbconvert` is not installed. Fix: npm run setup -- --jupyter, or apt install jupyter-nbconvert python3-ipykernel)',
      );
      this.skip();
    }
    if (!tslab) {
      console.log('      (skipped: tslab is not installed. Fix: npm run setup -- --jupyter, or npm install -g tslab@1.0.22)');
      this.skip();
    }
    expect(fs.existsSync(path.join(root, 'dist', 'index.js')), 'the notebook imports ../dist: run npm run build:ts').to.equal(true);

    const dir = tmpDir('cmac-notebook-test-');
    const spec = path.join(dir, 'jupyter', 'kernels', 'tslab');
    fs.mkdirSync(spec, { recursive: true });
    fs.writeFileSync(
      path.join(spec, 'kernel.json'),
      JSON.stringify({
        argv: [tslab, 'kernel', '--config-path', '{connection_file}'],
        display_name: 'TypeScript',
        language: 'typescript',
      }),
    );
    const out = path.join(dir, 'cmac.out.ipynb');
    const r = spawnSync(
      'jupyter',
      [
        'nbconvert',
        '--to',
        'notebook',
        '--execute',
        '--ExecutePreprocessor.timeout=600',
        '--output',
        out,
        path.join(root, 'examples', 'cmac.ipynb'),
      ],
      {
        encoding: 'utf8',
        timeout: 840000,
        env: { ...process.env, JUPYTER_PATH: path.join(dir, 'jupyter') },
      },
    );
    expect(r.status, `nbconvert failed:\n${r.stdout}\n${r.stderr}`).to.equal(0);

    const nb = JSON.parse(fs.readFileSync(out, 'utf8')) as { cells: Cell[]; metadata: { kernelspec: { name: string } } };
    expect(nb.metadata.kernelspec.name).to.equal('tslab');
    const code = nb.cells.filter((c) => c.cell_type === 'code');
    expect(code.length).to.be.greaterThan(4);
    const text = (o: Output) => (Array.isArray(o.text) ? o.text.join('') : (o.text ?? ''));
    // tslab leaves execution_count null; nbconvert --execute stops (exit != 0) at the
    // first failing cell, and every cell but the one that only defines functions prints.
    expect(code.filter((c) => (c.outputs ?? []).length === 0).length, 'cells without output').to.be.at.most(1);
    for (const [i, c] of code.entries()) {
      const errors = (c.outputs ?? []).filter(
        (o) => o.output_type === 'error' || (o.output_type === 'stream' && o.name === 'stderr' && /Error/.test(text(o))),
      );
      expect(
        errors.map((o) => `${o.ename ?? ''} ${o.evalue ?? text(o)}`),
        `code cell ${i}`,
      ).to.deep.equal([]);
    }
    const pngs = code
      .flatMap((c) => c.outputs ?? [])
      .filter((o) => o.output_type === 'display_data' && o.data && typeof o.data['image/png'] === 'string');
    expect(pngs, 'an image/png output').to.have.length.greaterThan(0);
    const png = Buffer.from(pngs[0].data!['image/png'] as string, 'base64');
    expect(png.subarray(0, 8).equals(Buffer.from([137, 80, 78, 71, 13, 10, 26, 10])), 'PNG signature').to.equal(true);
    const all = code
      .flatMap((c) => c.outputs ?? [])
      .map(text)
      .join('');
    // The size the notebook printed for the picture cmac's localizationPanel/vstack made (3 panels a row).
    const size = /(\d+)x(\d+) PNG/.exec(all);
    expect(size, 'the printed PNG size').to.not.equal(null);
    expect([png.readUInt32BE(16), png.readUInt32BE(20)], 'PNG width, height').to.deep.equal([Number(size![1]), Number(size![2])]);
    expect(png.readUInt32BE(16), 'three panels side by side').to.be.at.least(3 * 64);
    expect(all)
      .to.match(/step 3: loss \d/)
      .and.match(/live native models: 0/);
  });
});
