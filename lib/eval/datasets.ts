// Dataset layouts of the linear probe (method.md section 7): UCF101 and
// HMDB51 split files, the ESC-50 meta CSV with its 5 folds, a generic
// folder-per-class tree, and the synthetic dataset's manifest. Each becomes
// a list of folds { train, val, test } of labelled items; a validation split
// (to choose the regulariser) is carved from train where the layout has none.
import * as fs from 'fs';
import * as path from 'path';
import { parseCsv, parseManifest, videoExtensions } from '../data/sources';
import type { OpenedSample, SampleRef, Source } from '../data/sources';
import { Prng, mixSeed } from '../data/prng';
import { checkOptionKeys, keysOf } from '../options';

/** One labelled clip file (or a part of one: a manifest row's window). */
export interface ProbeItem {
  path: string;
  label: number;
  /** Use only this part of the file (seconds), as a manifest row says. */
  start?: number;
  end?: number;
  /** Items of one group never straddle train and validation (UCF101: the gNN recording group). */
  group?: string;
}

/** One train / validation / test split. */
export interface ProbeFold {
  name: string;
  train: ProbeItem[];
  val: ProbeItem[];
  test: ProbeItem[];
}

/** A dataset ready for the linear probe. */
export interface ProbeDataset {
  name: string;
  layout: DatasetLayout;
  classes: string[];
  /** 'audio': audio-only files (ESC-50), probed with the audio encoder only. */
  modality: 'audio-visual' | 'audio';
  folds: ProbeFold[];
}

export type DatasetLayout = 'ucf101' | 'hmdb51' | 'esc50' | 'folder' | 'synth' | 'manifest';

/** Names one item: its file, and its window when it has one (rows of one file differ). */
export function itemKey(it: ProbeItem): string {
  return it.start === undefined && it.end === undefined ? it.path : `${it.path}#${it.start ?? ''}-${it.end ?? ''}`;
}

/** What the labelled-data commands accept, for messages. */
export const acceptedLayouts =
  'a cmac synth folder (synth), a UCF101 or HMDB51 folder with its split files (ucf101, hmdb51; --splits), ESC-50 (its folder or meta/esc50.csv; esc50), ' +
  'a folder with one sub-folder per class or train/ val/ test/ folders of class folders (folder), or a .csv/.jsonl manifest with label and split columns (manifest)';

const lines = (text: string): string[] =>
  text
    .replace(/^\uFEFF/, '')
    .split(/\r?\n/)
    .map((l) => l.trim())
    .filter((l) => l && !l.startsWith('#'));

/** UCF101 classInd.txt: `1 ApplyEyeMakeup` per line -> class names by index (id - 1). */
export function parseUcfClassInd(text: string): string[] {
  const out: string[] = [];
  for (const [i, l] of lines(text).entries()) {
    const m = /^(\d+)\s+(\S+)$/.exec(l);
    if (!m) throw new Error(`classInd.txt line ${i + 1}: expected '<id> <ClassName>', got '${l}'`);
    const id = Number(m[1]);
    if (id < 1 || out[id - 1] !== undefined) throw new Error(`classInd.txt line ${i + 1}: id ${id} is < 1 or repeated`);
    out[id - 1] = m[2];
  }
  for (let i = 0; i < out.length; i++) if (out[i] === undefined) throw new Error(`classInd.txt: class id ${i + 1} is missing`);
  return out;
}

/**
 * A UCF101 trainlist0N.txt (`Class/v_Class_gGG_cCC.avi <id>`) or testlist0N.txt
 * (`Class/v_Class_gGG_cCC.avi`): the label is the id when given, else the
 * folder's class (matched case-insensitively: `HandstandPushups/v_HandStandPushups...`).
 * Paths are resolved against `videoRoot`; the group is gGG.
 */
export function parseUcfList(text: string, classes: string[], videoRoot: string): ProbeItem[] {
  const lower = classes.map((c) => c.toLowerCase());
  return lines(text).map((l, i) => {
    const [rel, id] = l.split(/\s+/);
    const folder = rel.split('/')[0];
    let label: number;
    if (id !== undefined) {
      label = Number(id) - 1;
      if (!Number.isInteger(label) || label < 0 || label >= classes.length)
        throw new Error(`UCF101 list line ${i + 1}: class id '${id}' is not in classInd.txt`);
    } else {
      label = lower.indexOf(folder.toLowerCase());
      if (label < 0) throw new Error(`UCF101 list line ${i + 1}: folder '${folder}' is not a class of classInd.txt`);
    }
    const g = /_g(\d+)_c\d+/i.exec(rel);
    return { path: path.join(videoRoot, rel), label, group: g ? `${lower[label]}-g${g[1]}` : undefined };
  });
}

/** One HMDB51 split file `<class>_test_split<N>.txt`: `<video>.avi <0|1|2>` per line (1 train, 2 test, 0 unused). */
export function parseHmdbSplit(text: string): Array<{ name: string; set: 0 | 1 | 2 }> {
  return lines(text).map((l, i) => {
    const m = /^(\S+)\s+([012])$/.exec(l);
    if (!m) throw new Error(`HMDB51 split line ${i + 1}: expected '<video> <0|1|2>', got '${l}'`);
    return { name: m[1], set: Number(m[2]) as 0 | 1 | 2 };
  });
}

/** One row of ESC-50's meta/esc50.csv. */
export interface Esc50Row {
  filename: string;
  fold: number;
  target: number;
  category: string;
}

/** ESC-50 meta CSV (`filename,fold,target,category,esc10,src_file,take`). */
export function parseEsc50Csv(text: string): Esc50Row[] {
  const rows = parseCsv(text);
  if (!rows.length) return [];
  const h = rows[0].map((x) => x.trim().toLowerCase());
  const col = (n: string) => {
    const i = h.indexOf(n);
    if (i < 0) throw new Error(`ESC-50 meta: no '${n}' column (header: ${h.join(',')})`);
    return i;
  };
  const f = col('filename'),
    fo = col('fold'),
    t = col('target'),
    c = col('category');
  return rows.slice(1).map((r, i) => {
    const fold = Number(r[fo]),
      target = Number(r[t]);
    if (!Number.isInteger(fold) || !Number.isInteger(target) || !r[f]) throw new Error(`ESC-50 meta line ${i + 2}: bad row ${r.join(',')}`);
    return { filename: r[f], fold, target, category: r[c] };
  });
}

/**
 * Carves a validation split from `items`: about `share` of each class, whole
 * groups at a time when items have groups; seeded, so repeatable.
 */
export function carveValidation(items: ProbeItem[], share: number, seed: number): { train: ProbeItem[]; val: ProbeItem[] } {
  const rng = new Prng(mixSeed(seed, 0x7a1));
  const byClass = new Map<number, ProbeItem[]>();
  for (const it of items) byClass.set(it.label, [...(byClass.get(it.label) ?? []), it]);
  const valSet = new Set<ProbeItem>();
  for (const label of [...byClass.keys()].sort((a, b) => a - b)) {
    const list = byClass.get(label)!;
    const groups = new Map<string, ProbeItem[]>();
    list.forEach((it, i) => groups.set(it.group ?? `#${i}`, [...(groups.get(it.group ?? `#${i}`) ?? []), it]));
    const keys = rng.shuffle([...groups.keys()].sort());
    const want = Math.round(list.length * share);
    let got = 0;
    for (const k of keys) {
      if (got >= want || valSet.size + groups.get(k)!.length >= items.length) break;
      if (keys.length > 1 && got + groups.get(k)!.length > list.length - 1) continue; // keep at least one train item per class
      for (const it of groups.get(k)!) valSet.add(it);
      got += groups.get(k)!.length;
    }
  }
  return { train: items.filter((i) => !valSet.has(i)), val: items.filter((i) => valSet.has(i)) };
}

function findFirst(dirs: string[], test: (f: string) => boolean): string | undefined {
  for (const d of dirs) {
    if (!fs.existsSync(d) || !fs.statSync(d).isDirectory()) continue;
    const hit = fs.readdirSync(d).sort().find(test);
    if (hit) return path.join(d, hit);
  }
  return undefined;
}

/** Options of {@link openProbeDataset}. */
export interface ProbeDatasetOptions {
  /** Layout (default: detected from the folder). */
  layout?: DatasetLayout | 'auto';
  /** Folder of the split files (UCF101 classInd/trainlist/testlist, HMDB51 *_test_splitN.txt); default: searched in and under the data folder. */
  splits?: string;
  /** Folder of the videos (default: the data folder, or its UCF-101/, hmdb51/ or videos/ sub-folder when present). */
  videos?: string;
  /** Which standard splits / folds (UCF101, HMDB51: 1-3; ESC-50: 1-5); default all. */
  folds?: number[];
  /** Share of train carved out for validation where the layout has no validation split (default 0.2). */
  valShare?: number;
  seed?: number;
}

function ucfSplitsDir(root: string, o: ProbeDatasetOptions): string | undefined {
  const cands = o.splits
    ? [o.splits]
    : [root, path.join(root, 'ucfTrainTestlist'), path.join(root, 'splits'), path.join(root, '..', 'ucfTrainTestlist')];
  return cands.find((d) => fs.existsSync(path.join(d, 'classInd.txt')));
}

function hmdbSplitsDir(root: string, o: ProbeDatasetOptions): string | undefined {
  const cands = o.splits
    ? [o.splits]
    : [root, path.join(root, 'testTrainMulti_7030_splits'), path.join(root, 'splits'), path.join(root, '..', 'testTrainMulti_7030_splits')];
  return cands.find((d) => findFirst([d], (f) => /_test_split\d+\.txt$/.test(f)));
}

const probeDatasetOptionKeys = keysOf<ProbeDatasetOptions>()(['layout', 'splits', 'videos', 'folds', 'valShare', 'seed']);

/** Which layout a data folder has. */
export function detectLayout(root: string, o: ProbeDatasetOptions = {}): DatasetLayout {
  if (fs.existsSync(path.join(root, 'manifest.jsonl')) && fs.existsSync(path.join(root, 'classes.json'))) return 'synth';
  if (fs.existsSync(path.join(root, 'meta', 'esc50.csv')) || /esc50\.csv$/i.test(root)) return 'esc50';
  if (/\.(csv|jsonl)$/i.test(root) && fs.existsSync(root) && fs.statSync(root).isFile()) return 'manifest';
  if (ucfSplitsDir(root, o)) return 'ucf101';
  if (hmdbSplitsDir(root, o)) return 'hmdb51';
  return 'folder';
}

function subdirs(d: string): string[] {
  return fs
    .readdirSync(d, { withFileTypes: true })
    .filter((e) => e.isDirectory())
    .map((e) => e.name)
    .sort();
}

function videosUnder(d: string, exts: readonly string[]): string[] {
  const out: string[] = [];
  const walk = (x: string) => {
    for (const e of fs.readdirSync(x, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0))) {
      const p = path.join(x, e.name);
      if (e.isDirectory()) walk(p);
      else if (exts.includes(path.extname(e.name).toLowerCase())) out.push(p);
    }
  };
  walk(d);
  return out;
}

/**
 * Opens a probe dataset. Layouts:
 * - `synth`: a `cmac synth` folder (manifest splits train / val / test);
 * - `ucf101`: classInd.txt + trainlist0N.txt / testlist0N.txt (validation carved from train by recording group);
 * - `hmdb51`: `<class>_test_split<N>.txt` (1 train, 2 test, 0 unused; validation carved from train);
 * - `esc50`: meta/esc50.csv + audio/*.wav, 5 folds (test = fold k, validation = the next fold, train = the other 3), audio only;
 * - `folder`: `<root>/<class>/*` (random stratified 60/20/20 split), or `<root>/{train,val,test}/<class>/*`.
 */
export function openProbeDataset(dataRoot: string, o: ProbeDatasetOptions = {}): ProbeDataset {
  checkOptionKeys(o, probeDatasetOptionKeys, 'openProbeDataset()');
  const root = path.resolve(dataRoot);
  if (!fs.existsSync(root)) throw new Error(`data ${root} does not exist`);
  const layout = !o.layout || o.layout === 'auto' ? detectLayout(root, o) : o.layout;
  const seed = o.seed ?? 0;
  const valShare = o.valShare ?? 0.2;
  const pick = (all: number[]) => (o.folds?.length ? all.filter((f) => o.folds!.includes(f)) : all);
  const withVal = (name: string, train: ProbeItem[], test: ProbeItem[]): ProbeFold => withValidation(name, train, test, valShare, seed);

  if (layout === 'manifest') return manifestDataset(root, seed, valShare);
  if (!fs.statSync(root).isDirectory() && layout !== 'esc50') {
    throw new Error(
      `data ${root} is a file that is not a dataset the ${layout} layout reads. Accepted: ${acceptedLayouts}. Fix: force one with the layout option (CLI: --layout)`,
    );
  }
  if (layout === 'synth') {
    const cls = JSON.parse(fs.readFileSync(path.join(root, 'classes.json'), 'utf8')) as { classes: { name: string }[] };
    const rows = lines(fs.readFileSync(path.join(root, 'manifest.jsonl'), 'utf8')).map(
      (l) => JSON.parse(l) as { path: string; label: number; split: string },
    );
    const of = (s: string) =>
      rows.filter((r) => r.split === s && r.label >= 0).map((r) => ({ path: path.resolve(root, r.path), label: r.label }));
    const train = of('train'),
      val = of('val'),
      test = of('test');
    const fold = val.length ? { name: 'synth', train, val, test } : withVal('synth', train, test);
    return { name: `synthetic ${root}`, layout, classes: cls.classes.map((c) => c.name), modality: 'audio-visual', folds: [fold] };
  }
  if (layout === 'ucf101') {
    const sd = ucfSplitsDir(root, o);
    if (!sd)
      throw new Error(
        `UCF101: no classInd.txt in ${o.splits ?? root}. Fix: pass the splits option (CLI: --splits): the ucfTrainTestlist folder`,
      );
    const classes = parseUcfClassInd(fs.readFileSync(path.join(sd, 'classInd.txt'), 'utf8'));
    const videos = o.videos ?? [path.join(root, 'UCF-101'), path.join(root, 'videos')].find((d) => fs.existsSync(d)) ?? root;
    const folds = pick([1, 2, 3])
      .filter((k) => fs.existsSync(path.join(sd, `trainlist0${k}.txt`)))
      .map((k) =>
        withVal(
          `split ${k}`,
          parseUcfList(fs.readFileSync(path.join(sd, `trainlist0${k}.txt`), 'utf8'), classes, videos),
          parseUcfList(fs.readFileSync(path.join(sd, `testlist0${k}.txt`), 'utf8'), classes, videos),
        ),
      );
    if (!folds.length) throw new Error(`UCF101: no trainlist0N.txt for the asked splits in ${sd}`);
    return { name: `UCF101 ${videos}`, layout, classes, modality: 'audio-visual', folds };
  }
  if (layout === 'hmdb51') {
    const sd = hmdbSplitsDir(root, o);
    if (!sd)
      throw new Error(
        `HMDB51: no <class>_test_split<N>.txt in ${o.splits ?? root}. Fix: pass the splits option (CLI: --splits): the testTrainMulti_7030_splits folder`,
      );
    const files = fs
      .readdirSync(sd)
      .filter((f) => /_test_split\d+\.txt$/.test(f))
      .sort();
    const classes = [...new Set(files.map((f) => f.replace(/_test_split\d+\.txt$/, '')))].sort();
    const videos = o.videos ?? [path.join(root, 'hmdb51'), path.join(root, 'videos')].find((d) => fs.existsSync(d)) ?? root;
    const folds = pick([1, 2, 3])
      .filter((k) => files.some((f) => f.endsWith(`_test_split${k}.txt`)))
      .map((k) => {
        const train: ProbeItem[] = [],
          test: ProbeItem[] = [];
        classes.forEach((c, label) => {
          const f = path.join(sd, `${c}_test_split${k}.txt`);
          if (!fs.existsSync(f)) throw new Error(`HMDB51: ${f} is missing`);
          for (const r of parseHmdbSplit(fs.readFileSync(f, 'utf8'))) {
            const it = { path: path.join(videos, c, r.name), label };
            if (r.set === 1) train.push(it);
            else if (r.set === 2) test.push(it);
          }
        });
        return withVal(`split ${k}`, train, test);
      });
    if (!folds.length) throw new Error(`HMDB51: no split files for the asked splits in ${sd}`);
    return { name: `HMDB51 ${videos}`, layout, classes, modality: 'audio-visual', folds };
  }
  if (layout === 'esc50') {
    const csv = /\.csv$/i.test(root) ? root : path.join(root, 'meta', 'esc50.csv');
    const base = /\.csv$/i.test(root) ? path.dirname(path.dirname(root)) : root;
    const rows = parseEsc50Csv(fs.readFileSync(csv, 'utf8'));
    const nClass = Math.max(...rows.map((r) => r.target)) + 1;
    const classes = Array.from({ length: nClass }, (_, t) => rows.find((r) => r.target === t)?.category ?? `class-${t}`);
    const audioDir = o.videos ?? path.join(base, 'audio');
    const item = (r: Esc50Row): ProbeItem => ({ path: path.join(audioDir, r.filename), label: r.target });
    const allFolds = [...new Set(rows.map((r) => r.fold))].sort((a, b) => a - b);
    const folds = pick(allFolds).map((k) => {
      const v = allFolds[(allFolds.indexOf(k) + 1) % allFolds.length];
      return {
        name: `fold ${k}`,
        train: rows.filter((r) => r.fold !== k && r.fold !== v).map(item),
        val: rows.filter((r) => r.fold === v).map(item),
        test: rows.filter((r) => r.fold === k).map(item),
      };
    });
    return { name: `ESC-50 ${base}`, layout, classes, modality: 'audio', folds };
  }
  // Generic folder-per-class.
  const exts = [...videoExtensions, '.wav', '.flac', '.mp3', '.ogg'];
  const split = ['train', 'val', 'test'].map((s) => path.join(root, s));
  if (fs.existsSync(split[0]) && fs.existsSync(split[2])) {
    const classes = [...new Set([...subdirs(split[0]), ...subdirs(split[2])])].sort();
    const of = (d: string) =>
      fs.existsSync(d)
        ? classes.flatMap((c, label) =>
            fs.existsSync(path.join(d, c)) ? videosUnder(path.join(d, c), exts).map((p) => ({ path: p, label })) : [],
          )
        : [];
    const train = of(split[0]),
      val = of(split[1]),
      test = of(split[2]);
    const fold = val.length ? { name: 'folder', train, val, test } : withVal('folder', train, test);
    return { name: `folder ${root}`, layout: 'folder', classes, modality: modalityOf([...train, ...test]), folds: [fold] };
  }
  const classes = subdirs(root);
  if (classes.length < 2) throw new Error(`folder ${root}: expected one sub-folder per class (at least 2), found ${classes.length}`);
  const items = classes.flatMap((c, label) => videosUnder(path.join(root, c), exts).map((p) => ({ path: p, label })));
  const { train: rest, val: test } = carveValidation(items, 0.2, seed + 1);
  const { train, val } = carveValidation(rest, 0.25, seed);
  return {
    name: `folder ${root}`,
    layout: 'folder',
    classes,
    modality: modalityOf(items),
    folds: [{ name: 'folder (random 60/20/20)', train, val, test }],
  };
}

/**
 * A CSV / JSONL manifest (lib/data's rules: paths, windows, labels as indices
 * or names): every row needs a label; the `split` field gives train / val
 * (also `valid`, `validation`) / test, validation carved from train when
 * absent; without a split field, a random stratified 60/20/20 split.
 */
function manifestDataset(file: string, seed: number, valShare: number): ProbeDataset {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new Error(`cannot read manifest ${file}: ${(e as Error).message}`);
  }
  const m = parseManifest(text, file);
  if (!m.entries.length) throw new Error(`manifest ${file} has no rows`);
  const unlabelled = m.entries.filter((e) => e.label === undefined);
  if (unlabelled.length) {
    throw new Error(
      `manifest ${file}: ${unlabelled.length} row(s) have no label (first ${unlabelled[0].where}); the linear probe and finetuning need a label on every row. Fix: label them, or leave them out of the manifest`,
    );
  }
  const item = (e: (typeof m.entries)[number]): ProbeItem => ({
    path: e.path,
    label: e.label!,
    ...(e.start !== undefined ? { start: e.start } : {}),
    ...(e.end !== undefined ? { end: e.end } : {}),
  });
  const nClass = Math.max(...m.entries.map((e) => e.label!)) + 1;
  const classes = m.classes ?? Array.from({ length: nClass }, (_, k) => `class-${k}`);
  const name = `manifest ${file}`;
  const all = m.entries.map(item);
  if (!m.splits.length) {
    const { train: rest, val: test } = carveValidation(all, 0.2, seed + 1);
    const { train, val } = carveValidation(rest, 0.25, seed);
    return {
      name,
      layout: 'manifest',
      classes,
      modality: modalityOf(all),
      folds: [{ name: 'manifest (random 60/20/20)', train, val, test }],
    };
  }
  const valNames = ['val', 'valid', 'validation'];
  const other = m.splits.filter((s) => s !== 'train' && s !== 'test' && !valNames.includes(s));
  const noSplit = m.entries.filter((e) => typeof e.split !== 'string');
  if (other.length || noSplit.length || !m.splits.includes('train') || !m.splits.includes('test')) {
    throw new Error(
      `manifest ${file}: the linear probe and finetuning need split 'train' and 'test' on every row (and optionally 'val'); ` +
        `its splits: ${m.splits.join(', ')}${noSplit.length ? `, and ${noSplit.length} row(s) without one (first ${noSplit[0].where})` : ''}`,
    );
  }
  const of = (names: string[]) => m.entries.filter((e) => names.includes(e.split as string)).map(item);
  const train = of(['train']),
    val = of(valNames),
    test = of(['test']);
  const fold = val.length ? { name: 'manifest', train, val, test } : withValidation('manifest', train, test, valShare, seed);
  return { name, layout: 'manifest', classes, modality: modalityOf(all), folds: [fold] };
}

function withValidation(name: string, train: ProbeItem[], test: ProbeItem[], valShare: number, seed: number): ProbeFold {
  return { name, ...carveValidation(train, valShare, seed), test };
}

function modalityOf(items: ProbeItem[]): 'audio-visual' | 'audio' {
  return items.length && items.every((i) => /\.(wav|flac|mp3|ogg)$/i.test(i.path)) ? 'audio' : 'audio-visual';
}

/** A Source over explicit items (for the clip loader). */
export function itemsSource(items: ProbeItem[], description: string): Source {
  return {
    description,
    async list(): Promise<SampleRef[]> {
      return items.map((it, index) => ({
        id: it.path,
        index,
        path: it.path,
        label: it.label,
        ...(it.start !== undefined ? { start: it.start } : {}),
        ...(it.end !== undefined ? { end: it.end } : {}),
      }));
    },
    async open(ref: SampleRef): Promise<OpenedSample> {
      return { path: ref.path!, release: async () => undefined };
    },
  };
}
