// Dataset layouts of the linear probe on small hand-written split files:
// UCF101 (classInd / trainlist / testlist), HMDB51 (<class>_test_splitN.txt),
// ESC-50 (meta CSV with folds), folder-per-class and the synthetic manifest.
// Files are empty placeholders: nothing is decoded here.
import { expect } from 'chai';
import * as fs from 'fs';
import * as path from 'path';
import {
  carveValidation,
  detectLayout,
  openProbeDataset,
  parseEsc50Csv,
  parseHmdbSplit,
  parseUcfClassInd,
  parseUcfList,
} from '../lib/eval';
import { tmpDir } from './helpers';

function touch(file: string, text = ''): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, text);
}

describe('eval: dataset layouts', () => {
  it('parses UCF101 classInd and train / test lists (CRLF, label from id or folder, case-insensitive folders, groups)', () => {
    const classes = parseUcfClassInd('1 ApplyEyeMakeup\r\n2 HandstandPushups\r\n3 YoYo\r\n');
    expect(classes).to.deep.equal(['ApplyEyeMakeup', 'HandstandPushups', 'YoYo']);
    const train = parseUcfList('ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi 1\r\nYoYo/v_YoYo_g09_c02.avi 3\r\n', classes, '/v');
    expect(train).to.deep.equal([
      { path: '/v/ApplyEyeMakeup/v_ApplyEyeMakeup_g08_c01.avi', label: 0, group: 'applyeyemakeup-g08' },
      { path: '/v/YoYo/v_YoYo_g09_c02.avi', label: 2, group: 'yoyo-g09' },
    ]);
    const test = parseUcfList('HandStandPushups/v_HandStandPushups_g01_c01.avi\n', classes, '/v');
    expect(test[0].label).to.equal(1);
    expect(() => parseUcfList('Nope/v_Nope_g01_c01.avi\n', classes, '/v')).to.throw(/not a class/);
    expect(() => parseUcfList('YoYo/x.avi 9\n', classes, '/v')).to.throw(/class id '9'/);
    expect(() => parseUcfClassInd('1 A\n3 C\n')).to.throw(/class id 2 is missing/);
  });

  it('parses HMDB51 split files (1 train, 2 test, 0 unused) and ESC-50 meta', () => {
    expect(parseHmdbSplit('a.avi 1 \nb.avi 2\nc.avi 0\n')).to.deep.equal([
      { name: 'a.avi', set: 1 },
      { name: 'b.avi', set: 2 },
      { name: 'c.avi', set: 0 },
    ]);
    expect(() => parseHmdbSplit('a.avi 3\n')).to.throw(/expected/);
    const rows = parseEsc50Csv(
      'filename,fold,target,category,esc10,src_file,take\n1-100032-A-0.wav,1,0,dog,True,100032,A\n2-1-A-1.wav,2,1,rooster,False,1,A\n',
    );
    expect(rows).to.deep.equal([
      { filename: '1-100032-A-0.wav', fold: 1, target: 0, category: 'dog' },
      { filename: '2-1-A-1.wav', fold: 2, target: 1, category: 'rooster' },
    ]);
  });

  it('carves a stratified validation split by whole groups, repeatably', () => {
    const items = [];
    for (let c = 0; c < 3; c++)
      for (let g = 0; g < 5; g++) for (let k = 0; k < 2; k++) items.push({ path: `c${c}g${g}k${k}`, label: c, group: `c${c}-g${g}` });
    const a = carveValidation(items, 0.2, 1);
    const b = carveValidation(items, 0.2, 1);
    expect(a.val.map((i) => i.path)).to.deep.equal(b.val.map((i) => i.path));
    expect(a.val.length).to.equal(6); // one group of 2 per class
    const trainGroups = new Set(a.train.map((i) => i.group));
    for (const v of a.val) expect(trainGroups.has(v.group)).to.equal(false);
    for (let c = 0; c < 3; c++) expect(a.val.filter((i) => i.label === c).length).to.equal(2);
  });

  it('opens UCF101, HMDB51, ESC-50, folder-per-class and synthetic layouts from folders', () => {
    const d = tmpDir('cmac-eval-ds-');
    // UCF101
    const ucf = path.join(d, 'ucf');
    touch(path.join(ucf, 'ucfTrainTestlist', 'classInd.txt'), '1 A\n2 B\n');
    touch(
      path.join(ucf, 'ucfTrainTestlist', 'trainlist01.txt'),
      'A/v_A_g08_c01.avi 1\nA/v_A_g09_c01.avi 1\nA/v_A_g10_c01.avi 1\nB/v_B_g08_c01.avi 2\nB/v_B_g09_c01.avi 2\nB/v_B_g10_c01.avi 2\n',
    );
    touch(path.join(ucf, 'ucfTrainTestlist', 'testlist01.txt'), 'A/v_A_g01_c01.avi\nB/v_B_g01_c01.avi\n');
    fs.mkdirSync(path.join(ucf, 'UCF-101'));
    expect(detectLayout(ucf)).to.equal('ucf101');
    const u = openProbeDataset(ucf);
    expect(u.layout).to.equal('ucf101');
    expect(u.folds.map((f) => f.name)).to.deep.equal(['split 1']);
    expect(u.folds[0].test.map((i) => path.relative(ucf, i.path))).to.deep.equal([
      'UCF-101/A/v_A_g01_c01.avi',
      'UCF-101/B/v_B_g01_c01.avi',
    ]);
    expect(u.folds[0].train.length + u.folds[0].val.length).to.equal(6);
    expect(u.folds[0].val.length).to.be.greaterThan(0);
    // HMDB51
    const hm = path.join(d, 'hmdb');
    touch(path.join(hm, 'splits', 'run_test_split1.txt'), 'r1.avi 1\nr2.avi 2\nr3.avi 0\nr4.avi 1\n');
    touch(path.join(hm, 'splits', 'jump_test_split1.txt'), 'j1.avi 2\nj2.avi 1\nj3.avi 1\n');
    const h = openProbeDataset(hm, { valShare: 0 });
    expect(h.layout).to.equal('hmdb51');
    expect(h.classes).to.deep.equal(['jump', 'run']);
    expect(h.folds[0].train.map((i) => [path.basename(i.path), i.label])).to.deep.equal([
      ['j2.avi', 0],
      ['j3.avi', 0],
      ['r1.avi', 1],
      ['r4.avi', 1],
    ]);
    expect(h.folds[0].test.map((i) => path.basename(i.path))).to.deep.equal(['j1.avi', 'r2.avi']);
    expect(path.relative(hm, h.folds[0].test[0].path)).to.equal(path.join('jump', 'j1.avi'));
    // ESC-50
    const esc = path.join(d, 'esc');
    const csvRows = ['filename,fold,target,category,esc10,src_file,take'];
    for (let f = 1; f <= 5; f++) for (let t = 0; t < 2; t++) csvRows.push(`${f}-${t}-A-${t}.wav,${f},${t},${t ? 'cat' : 'dog'},False,1,A`);
    touch(path.join(esc, 'meta', 'esc50.csv'), csvRows.join('\n') + '\n');
    const e = openProbeDataset(esc);
    expect(e.layout).to.equal('esc50');
    expect(e.modality).to.equal('audio');
    expect(e.classes).to.deep.equal(['dog', 'cat']);
    expect(e.folds.length).to.equal(5);
    expect(e.folds[0].test.map((i) => path.basename(i.path))).to.deep.equal(['1-0-A-0.wav', '1-1-A-1.wav']);
    expect(e.folds[0].val.every((i) => path.basename(i.path).startsWith('2-'))).to.equal(true);
    expect(e.folds[4].val.every((i) => path.basename(i.path).startsWith('1-'))).to.equal(true);
    expect(e.folds[0].train.length).to.equal(6);
    expect(openProbeDataset(esc, { folds: [3] }).folds.map((f) => f.name)).to.deep.equal(['fold 3']);
    // Folder per class (random 60/20/20) and with train/test folders.
    const fo = path.join(d, 'folder');
    for (const c of ['cat', 'dog']) for (let i = 0; i < 10; i++) touch(path.join(fo, c, `${i}.mp4`));
    const f = openProbeDataset(fo);
    expect(f.layout).to.equal('folder');
    expect(f.classes).to.deep.equal(['cat', 'dog']);
    expect(f.folds[0].train.length + f.folds[0].val.length + f.folds[0].test.length).to.equal(20);
    expect(f.folds[0].test.length).to.equal(4);
    const fs2 = path.join(d, 'folder2');
    for (const s of ['train', 'test']) for (const c of ['a', 'b']) for (let i = 0; i < 5; i++) touch(path.join(fs2, s, c, `${i}.mkv`));
    const f2 = openProbeDataset(fs2);
    expect(f2.folds[0].test.length).to.equal(10);
    expect(f2.folds[0].train.length + f2.folds[0].val.length).to.equal(10);
    // Synthetic manifest.
    const sy = path.join(d, 'synth');
    touch(path.join(sy, 'classes.json'), JSON.stringify({ classes: [{ name: 'red-circle' }, { name: 'orange-square' }] }));
    touch(
      path.join(sy, 'manifest.jsonl'),
      ['train', 'train', 'val', 'test'].map((s, i) => JSON.stringify({ path: `${s}/clip-${i}.mp4`, label: i % 2, split: s })).join('\n') +
        '\n',
    );
    const s = openProbeDataset(sy);
    expect(s.layout).to.equal('synth');
    expect(s.classes).to.deep.equal(['red-circle', 'orange-square']);
    expect([s.folds[0].train.length, s.folds[0].val.length, s.folds[0].test.length]).to.deep.equal([2, 1, 1]);
  });
});
