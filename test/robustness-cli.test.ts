// Robustness catalogue, part 2 (issue 17 items 7, 9 and 12): scale limits
// that failed late, and config / CLI argument edge cases. CLI behaviour is
// tested by spawning `node dist/cli/main.js`; the rest through the library.
//
//   7  `cmac embed --out x.json` built one string of all rows (V8's string
//      limit at ~52k clips): the JSON writer now streams, and `--out` without
//      an extension writes safetensors.
//   9  `--data 'x-{00000000..99999999}.tar'` expanded 1e8 names (143 s, 6 GB,
//      then out of memory): the count is checked arithmetically first.
//   12 `--set __proto__.x=1` was silently dropped; a 100,000-deep config
//      overflowed the stack; `localize --from abc|-5` was accepted; symlinked
//      sub-folders of a --data folder were not listed.
import { expect } from 'chai';
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { ConfigError, loadConfigFile, resolveConfig } from '../lib/config';
import { expandBraces, folderSource, synthesize, tarSource } from '../lib/data';
import { readSafetensors } from '../lib/safetensors';
import { train } from '../lib/train';
import { rejects, root, tmpDir } from './helpers';

const cli = path.join(root, 'dist', 'cli', 'main.js');
const run = (args: string[], o: { timeout?: number; node?: string[] } = {}) =>
  spawnSync(process.execPath, [...(o.node ?? []), cli, ...args], { encoding: 'utf8', timeout: o.timeout ?? 240000 });

/** The rows of a `cmac embed` output, whichever the format: clips and tensor rows. */
async function readEmbeddings(file: string, format: 'json' | 'safetensors') {
  if (format === 'json') {
    const rows = JSON.parse(fs.readFileSync(file, 'utf8')) as Array<Record<string, unknown>>;
    return {
      clips: rows.map(({ zV: _v, zA: _a, featV: _fv, featA: _fa, ...c }) => c),
      tensors: Object.fromEntries(
        ['zV', 'zA', 'featV', 'featA'].filter((k) => k in rows[0]).map((k) => [k, rows.map((r) => r[k] as number[])]),
      ),
    };
  }
  const f = await readSafetensors(file);
  return {
    clips: JSON.parse(f.metadata.clips) as Array<Record<string, unknown>>,
    tensors: Object.fromEntries(
      Object.entries(f.tensors).map(([k, t]) => {
        const d = t.shape[1];
        const data = t.data as Float32Array;
        return [k, Array.from({ length: t.shape[0] }, (_, i) => Array.from(data.subarray(i * d, (i + 1) * d)))];
      }),
    ),
  };
}

describe('robustness: scale limits, config and CLI arguments (issue 17)', function () {
  this.timeout(600000);
  const dir = tmpDir('cmac-robust-cli-');
  const data = path.join(dir, 'data');
  const runDir = path.join(dir, 'run');

  before(async () => {
    await synthesize({ out: data, clips: 6, seed: 3, size: 64, fps: 8, seconds: 2 });
    await train({ preset: 'tiny', data: { source: data, batchSize: 2 }, train: { steps: 1, runDir } }, { progress: false });
  });

  // ---- item 7: embed output -------------------------------------------------

  it('embed: --out without an extension writes safetensors, and --out .json holds the same rows', async () => {
    const bare = path.join(dir, 'emb');
    const r = run(['embed', '--checkpoint', runDir, '--data', data, '--out', bare]);
    expect(r.status, r.stderr).to.equal(0);
    const js = path.join(dir, 'emb.json');
    const r2 = run(['embed', '--checkpoint', runDir, '--data', data, '--out', js]);
    expect(r2.status, r2.stderr).to.equal(0);
    const a = await readEmbeddings(bare, 'safetensors');
    const b = await readEmbeddings(js, 'json');
    expect(a.clips).to.have.length(6);
    expect(b.clips).to.deep.equal(a.clips);
    expect(Object.keys(b.tensors).sort()).to.deep.equal(Object.keys(a.tensors).sort());
    for (const k of Object.keys(a.tensors)) expect(b.tensors[k], k).to.deep.equal(a.tensors[k]);
    expect(
      fs.readdirSync(dir).filter((f) => f.includes('.tmp-')),
      'no temp file left',
    ).to.deep.equal([]);
    const bad = run(['embed', '--checkpoint', runDir, '--data', data, '--out', path.join(dir, 'emb.txt')]);
    expect(bad.status).to.equal(1);
    expect(bad.stderr).to.match(/--out .*emb\.txt must end in \.safetensors or \.json \(or have no extension/);
  });

  it('embed: the JSON writer streams (40 MB of rows under a 32 MB heap, where one string of them runs out of memory) and matches the safetensors writer', async function () {
    // Synthetic rows through the writers `cmac embed` uses (not 52k decodes):
    // 1600 clips x (128 + 128 + 512 + 512) floats, batches of 32, made lazily.
    const script = (sink: string, out: string) => `
      const e = require(${JSON.stringify(path.join(root, 'dist', 'cli', 'embed.js'))});
      (async () => {
        const dims = { zV: 128, zA: 128, featV: 512, featA: 512 };
        const naive = ${JSON.stringify(sink)} === 'naive' ? [] : undefined;
        const s = naive ? undefined : e[${JSON.stringify(sink)}](${JSON.stringify(out)});
        for (let b = 0; b < 50; b++) {
          const clips = Array.from({ length: 32 }, (_, i) => ({ id: '/v/' + (b * 32 + i) + '.mp4', clip: i % 3, start: i * 0.5, label: b % 7 }));
          const rows = {};
          for (const [k, d] of Object.entries(dims)) {
            const t = new Float32Array(32 * d);
            for (let j = 0; j < t.length; j++) t[j] = Math.sin(b * 7919 + j * 0.37 + d) / 3;
            rows[k] = { data: t, shape: [32, d], dtype: 'float32' };
          }
          if (naive) clips.forEach((c, i) => naive.push({ ...c, ...Object.fromEntries(Object.entries(rows).map(([k, t]) => [k, Array.from(t.data.subarray(i * t.shape[1], (i + 1) * t.shape[1]))])) }));
          else await s.add(clips, rows);
        }
        if (naive) require('fs').writeFileSync(${JSON.stringify(out)}, JSON.stringify(naive) + '\\n');
        else console.log(JSON.stringify(await s.finish()));
      })().catch((err) => { console.error(err.stack || err); process.exit(1); });`;
    const node = (sink: string, out: string, heapMb?: number) =>
      spawnSync(process.execPath, [...(heapMb ? [`--max-old-space-size=${heapMb}`] : []), '-e', script(sink, out)], {
        encoding: 'utf8',
        timeout: 240000,
      });
    const heap = 32;
    // The control: a writer holding all rows and one string runs out of memory under this heap.
    const naive = node('naive', path.join(dir, 'naive.json'), heap);
    expect(naive.status, 'the heap cap must be tight enough to stop a one-string writer').to.not.equal(0);
    expect(naive.stderr).to.match(/heap out of memory|Invalid string length|Allocation failed/i);
    const js = path.join(dir, 'big.json');
    const r = node('jsonEmbeddingSink', js, heap);
    expect(r.status, r.stderr).to.equal(0);
    expect(JSON.parse(r.stdout)).to.deep.equal({ clips: 1600, keys: ['zV', 'zA', 'featV', 'featA'] });
    expect(fs.statSync(js).size).to.be.greaterThan(40e6);
    const st = path.join(dir, 'big.safetensors');
    const r2 = node('safetensorsEmbeddingSink', st);
    expect(r2.status, r2.stderr).to.equal(0);
    const a = await readEmbeddings(js, 'json');
    const b = await readEmbeddings(st, 'safetensors');
    expect(a.clips).to.have.length(1600);
    expect(a.clips).to.deep.equal(b.clips);
    for (const k of ['zV', 'zA', 'featV', 'featA']) expect(a.tensors[k], k).to.deep.equal(b.tensors[k]);
    expect(
      fs.readdirSync(dir).filter((f) => f.includes('.tmp-')),
      'no temp file left',
    ).to.deep.equal([]);
  });

  // ---- item 9: brace patterns -----------------------------------------------

  it('--data with a brace pattern of 1e8 names fails at once, naming the pattern, the count and the limit', () => {
    const pattern = path.join(dir, 'x-{00000000..99999999}.tar');
    const t0 = Date.now();
    const r = run(['embed', '--checkpoint', runDir, '--data', pattern, '--out', path.join(dir, 'never.safetensors')], { timeout: 60000 });
    const ms = Date.now() - t0;
    expect(r.signal, `killed after ${ms} ms`).to.equal(null);
    expect(r.status, r.stderr).to.equal(1);
    expect(r.stderr).to.include(pattern);
    expect(r.stderr).to.match(/100,000,000 names, more than the limit of 100,000/);
    expect(ms).to.be.lessThan(20000);
  });

  it('expandBraces: several ranges in order, a limit checked before expanding, reversed ranges named; tarSource checks on creation', () => {
    expect(expandBraces('s-{0..1}-{08..10}.tar')).to.deep.equal([
      's-0-08.tar',
      's-0-09.tar',
      's-0-10.tar',
      's-1-08.tar',
      's-1-09.tar',
      's-1-10.tar',
    ]);
    expect(expandBraces('plain.tar')).to.deep.equal(['plain.tar']);
    expect(expandBraces('a{0..4}', 5)).to.have.length(5);
    expect(() => expandBraces('a{0..5}', 5)).to.throw(/a\{0\.\.5\} stands for 6 names, more than the limit of 5/);
    const t0 = Date.now();
    expect(() => expandBraces('{0..99999}{0..99999}{0..99999}')).to.throw(/1,000,000,000,000,000 names/);
    expect(Date.now() - t0).to.be.lessThan(1000);
    expect(() => expandBraces('s-{09..03}.tar')).to.throw(/s-\{09\.\.03\}\.tar is empty .*\{03\.\.09\}/);
    expect(() => tarSource(path.join(dir, 'y-{000000..999999}.tar'))).to.throw(/1,000,000 names, more than the limit of 100,000/);
  });

  // ---- item 12: config keys and nesting -------------------------------------

  it('--set __proto__.x=1 and --set data.__proto__.batchSize=3 are unknown keys, and nothing is polluted', () => {
    const a = run(['train', '--set', '__proto__.x=1', '--print-config']);
    expect(a.status, a.stdout).to.equal(1);
    expect(a.stderr).to.match(/config: unknown key\(s\) '__proto__'/);
    const b = run(['train', '--set', 'data.__proto__.batchSize=3', '--print-config']);
    expect(b.status, b.stdout).to.equal(1);
    expect(b.stderr).to.match(/config\.data: unknown key\(s\) '__proto__'/);
    expect(() => resolveConfig({ preset: 'tiny' }, ['__proto__.polluted=1'])).to.throw(ConfigError, /unknown key\(s\) '__proto__'/);
    expect(() => resolveConfig({ preset: 'tiny' }, ['data.__proto__.polluted=1'])).to.throw(
      ConfigError,
      /config\.data: unknown key\(s\) '__proto__'/,
    );
    const file = path.join(dir, 'proto.json');
    fs.writeFileSync(file, '{"preset": "tiny", "__proto__": {"polluted": 1}, "optim": {"__proto__": {"lr": 5}}}');
    const e = (() => {
      try {
        resolveConfig(loadConfigFile(file));
      } catch (err) {
        return err as Error;
      }
    })();
    expect(e).to.be.instanceOf(ConfigError);
    expect(e!.message)
      .to.match(/^ {2}config: unknown key\(s\) '__proto__'$/m)
      .and.to.match(/^ {2}config\.optim: unknown key\(s\) '__proto__'$/m);
    expect(({} as Record<string, unknown>).polluted).to.equal(undefined);
    expect(Object.prototype.hasOwnProperty.call(Object.prototype, 'polluted')).to.equal(false);
  });

  it('a 100,000-deep config file is an error naming the file and the nesting limit (JSON and YAML; --set too)', () => {
    const deep = path.join(dir, 'deep.json');
    fs.writeFileSync(deep, '{"a":'.repeat(100000) + '1' + '}'.repeat(100000));
    const r = run(['train', '--config', deep, '--print-config']);
    expect(r.status).to.equal(1);
    expect(r.stderr).to.not.match(/call stack/);
    expect(r.stderr).to.include(`${deep} nests deeper than 32 levels`);
    const yml = path.join(dir, 'deep.yaml');
    fs.writeFileSync(yml, '{"a":'.repeat(20000) + '1' + '}'.repeat(20000));
    expect(() => loadConfigFile(yml)).to.throw(ConfigError, new RegExp(`${yml.replace(/[.]/g, '\\.')} nests deeper than 32 levels`));
    const mid = path.join(dir, 'mid.yaml');
    fs.writeFileSync(mid, Array.from({ length: 40 }, (_, i) => `${'  '.repeat(i)}a:`).join('\n') + ' 1\n');
    expect(() => loadConfigFile(mid)).to.throw(ConfigError, /mid\.yaml nests deeper than 32 levels/);
    const s = run(['train', '--set', `${Array(5000).fill('a').join('.')}=1`, '--print-config']);
    expect(s.status).to.equal(1);
    expect(s.stderr).to.match(/has 5000 parts, more than the nesting limit of 32/);
  });

  // ---- item 12: localize --from ---------------------------------------------

  it('localize --from: not a number or negative is a usage error naming the flag; past the end names the duration', () => {
    const video = fs
      .readdirSync(path.join(data, 'train'))
      .map((f) => path.join(data, 'train', f))
      .find((f) => f.endsWith('.mp4'))!;
    const out = path.join(dir, 'loc');
    const base = ['localize', '--checkpoint', runDir, '--video', video, '--out', out, '--max-clips', '1', '--no-mp4', '--quiet'];
    for (const v of ['abc', '-5', '']) {
      const r = run([...base, '--from', v]);
      expect(r.status, `--from '${v}': ${r.stderr}`).to.equal(2);
      expect(r.stderr).to.include(`--from must be a non-negative number of seconds, got '${v}'`);
    }
    const past = run([...base, '--from', '100']);
    expect(past.status).to.equal(1);
    expect(past.stderr).to.match(/--from 100 is past the end of .*\(2\.\d\d s long\)\. Fix: pass --from between 0 and 2\.\d\d/);
    expect(fs.existsSync(out), 'nothing written for a bad --from').to.equal(false);
    const ok = run([...base, '--from', '0.5']);
    expect(ok.status, ok.stderr).to.equal(0);
  });

  // ---- item 12: symlinked sub-folders ---------------------------------------

  it('a --data folder follows symlinked sub-folders, once per real folder, and ends symlink loops with a warning', async () => {
    const videos = fs
      .readdirSync(path.join(data, 'train'))
      .filter((f) => f.endsWith('.mp4'))
      .map((f) => path.join(data, 'train', f));
    const top = path.join(dir, 'linked');
    const elsewhere = path.join(dir, 'elsewhere');
    fs.mkdirSync(path.join(top, 'real'), { recursive: true });
    fs.mkdirSync(path.join(elsewhere, 'deeper'), { recursive: true });
    fs.copyFileSync(videos[0], path.join(top, 'real', 'a.mp4'));
    fs.copyFileSync(videos[1], path.join(elsewhere, 'b.mp4'));
    fs.copyFileSync(videos[2], path.join(elsewhere, 'deeper', 'c.mp4'));
    fs.symlinkSync(elsewhere, path.join(top, 'ext')); // a linked sub-folder: listed
    fs.symlinkSync(top, path.join(elsewhere, 'deeper', 'up')); // a loop back to the top
    fs.symlinkSync(path.join(top, 'real'), path.join(top, 'zz-again')); // a second link to a listed folder
    fs.symlinkSync(videos[3], path.join(top, 'real', 'd.mp4')); // a linked file, as before
    const src = folderSource(top);
    const refs = await src.list();
    expect(refs.map((r) => path.relative(top, r.path!))).to.deep.equal(['ext/b.mp4', 'ext/deeper/c.mp4', 'real/a.mp4', 'real/d.mp4']);
    expect(src.warnings!.join('\n')).to.match(/ext\/deeper\/up \(real path .*linked\) is already listed through another path/);
    expect(src.warnings!.join('\n')).to.match(/zz-again \(real path .*real\) is already listed/);
    const sub = await folderSource(top, { labels: 'subdir' }).list();
    expect(sub.map((r) => r.label)).to.deep.equal([0, 0, 1, 1]);
    await rejects(folderSource(path.join(dir, 'nope')).list(), Error, /does not exist/);
  });
});
