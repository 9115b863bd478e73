// Where samples come from: a folder of videos, a CSV or JSONL manifest,
// WebDataset-style tar shards, and the synthetic dataset's manifest. A source
// lists sample references once; the loader opens each one to get a local
// file path for ffmpeg (tar members are extracted to a temporary file).
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { pipeline } from 'stream/promises';
import { CsvError, parse as csvParse } from 'csv-parse/sync';
import * as tar from 'tar-stream';
import { DataError } from './errors';

/** Video file extensions the folder and tar sources pick up. */
export const videoExtensions: readonly string[] = ['.mp4', '.mkv', '.webm', '.avi', '.mov'];

/** One sample as a source lists it. */
export interface SampleRef {
  /** Stable id (the file path, or `shard.tar#key`); manifest rows of one file share it. */
  id: string;
  /** Position in the source's list (0..n-1), unique per row; with the seed and epoch it seeds augmentation. */
  index: number;
  /** The manifest row (`file:line`), for messages about this row. */
  row?: string;
  /** Local file, when the sample is a plain file. */
  path?: string;
  /** Integer class, when known. */
  label?: number;
  /** Use only this part of the file (seconds). */
  start?: number;
  end?: number;
  /** Boxes from the manifest / tar json, passed through untouched. */
  boxes?: unknown;
  /** Any other manifest columns or json fields. */
  extra?: Record<string, unknown>;
}

/**
 * A sample opened for decoding: a local path, and what to call when done with
 * it. With `bytes` (a source asked for `inMemory` that can give it, e.g. a tar
 * member) the sample is in memory and `path` only names it in messages.
 */
export interface OpenedSample {
  path: string;
  bytes?: Uint8Array;
  release(): Promise<void>;
}

/** Options of {@link Source.open}. */
export interface OpenOptions {
  /** The caller decodes from memory (the native decoder): a source that holds samples inside a container (tar) returns their bytes instead of a temporary file. */
  inMemory?: boolean;
}

/** A dataset the loader can read. */
export interface Source {
  /** Names the data for messages, e.g. `folder /data/videos`. */
  readonly description: string;
  /** Lists every sample (called once per loader). */
  list(): Promise<SampleRef[]>;
  /** Gives a local file (or, with `inMemory`, possibly the bytes) for a listed sample. */
  open(ref: SampleRef, opts?: OpenOptions): Promise<OpenedSample>;
  /** Class names (label i is classes[i]), when the source knows them; filled by list(). */
  classes?: string[];
  /** Non-fatal problems found while listing (e.g. a cut-off tar shard); the loader logs them. */
  warnings?: string[];
  /** Frees temporary files. */
  close?(): Promise<void>;
}

const noRelease = async (): Promise<void> => undefined;

/**
 * Collects the files under `dir` with one of `exts`, in sorted order.
 * Symlinks are followed, to files and to folders; each folder is listed once,
 * by its real path (`seen`), so a link back up the tree (a loop) or a second
 * link to a folder already listed is skipped with a warning.
 */
function walk(dir: string, exts: Set<string>, out: string[], seen: Set<string>, warnings: string[]): void {
  const entries = fs.readdirSync(dir, { withFileTypes: true }).sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const e of entries) {
    const p = path.join(dir, e.name);
    let isDir = e.isDirectory();
    let isFile = e.isFile();
    if (e.isSymbolicLink()) {
      // A link to anything but a folder is listed by its name, as a file is: a
      // dangling link or one to a FIFO is then a counted skip when opened.
      try {
        isDir = fs.statSync(p).isDirectory();
      } catch {
        isDir = false;
      }
      isFile = !isDir;
    }
    if (isDir) {
      let real: string;
      try {
        real = fs.realpathSync(p);
      } catch (err) {
        warnings.push(`folder ${p} cannot be resolved (${(err as Error).message}); not listed`);
        continue;
      }
      if (seen.has(real)) {
        warnings.push(
          `folder ${p} (real path ${real}) is already listed through another path (a symlink loop or a second link to it); not listed again`,
        );
        continue;
      }
      seen.add(real);
      walk(p, exts, out, seen, warnings);
    } else if (isFile && exts.has(path.extname(e.name).toLowerCase())) out.push(p);
  }
}

/** Options of {@link folderSource}. */
export interface FolderSourceOptions {
  /** Extensions to pick up (default .mp4 .mkv .webm .avi .mov), case-insensitive. */
  extensions?: string[];
  /** 'subdir': label = index of the first-level sub-folder name among the sorted names (UCF101 layout). */
  labels?: 'subdir';
}

/**
 * Every video under `dir`, recursively, in sorted path order. Symlinks to
 * files and folders are followed; each folder is listed once by its real path,
 * so symlink loops end (the skipped link is in `warnings`).
 *
 * @example
 * const src = folderSource('/data/clips', { labels: 'subdir' });
 */
export function folderSource(dir: string, opts: FolderSourceOptions = {}): Source {
  const root = path.resolve(dir);
  const exts = new Set((opts.extensions ?? videoExtensions).map((e) => (e.startsWith('.') ? e : `.${e}`).toLowerCase()));
  const src: Source = {
    description: `folder ${root}`,
    async list(): Promise<SampleRef[]> {
      if (!fs.existsSync(root) || !fs.statSync(root).isDirectory())
        throw new Error(`cmac: folder ${root} does not exist or is not a folder`);
      const files: string[] = [];
      const warnings: string[] = [];
      walk(root, exts, files, new Set([fs.realpathSync(root)]), warnings);
      src.warnings = warnings;
      let classes: string[] | undefined;
      if (opts.labels === 'subdir') {
        classes = [
          ...new Set(
            files
              .map((f) => path.relative(root, f).split(path.sep))
              .filter((p) => p.length > 1)
              .map((p) => p[0]),
          ),
        ].sort();
        src.classes = classes;
      }
      return files.map((f, index) => {
        const ref: SampleRef = { id: f, index, path: f };
        if (classes) {
          const parts = path.relative(root, f).split(path.sep);
          if (parts.length > 1) ref.label = classes.indexOf(parts[0]);
        }
        return ref;
      });
    },
    async open(ref: SampleRef): Promise<OpenedSample> {
      return { path: ref.path!, release: noRelease };
    },
  };
  return src;
}

/**
 * Parses CSV text (RFC 4180: quoted fields, "" escapes, CRLF, a leading BOM;
 * blank lines skipped, rows may differ in length) into rows, with
 * csv-parse's sync API. Bad quoting (an unterminated quote, a quote inside an
 * unquoted field) throws an error naming `source`, the line and the column.
 */
export function parseCsv(text: string, source = 'CSV'): string[][] {
  let lastRecordLine = 0; // the line where the last complete record ended
  try {
    return csvParse(text, {
      bom: true,
      skip_empty_lines: true,
      relax_column_count: true,
      record_delimiter: ['\r\n', '\n', '\r'],
      on_record: (record: string[], ctx) => {
        lastRecordLine = ctx.lines;
        return record;
      },
    }) as string[][];
  } catch (e) {
    if (!(e instanceof CsvError)) throw e;
    if (e.code === 'CSV_QUOTE_NOT_CLOSED') {
      // csv-parse names the line where the text ended; the open quote is on
      // the first non-blank line after the last complete record.
      const lines = text.split(/\r\n|\n|\r/);
      let line = lastRecordLine + 1;
      while (line < lines.length && lines[line - 1].trim() === '') line++;
      throw Object.assign(
        new Error(
          `cmac: ${source}: line ${line}: a quoted field opened here is never closed (the rest of the file would become one field). Fix: add the closing " or write the field without quotes`,
        ),
        { code: 'CMAC_CSV', line },
      );
    }
    const column = typeof e.index === 'number' ? `, column ${e.index + 1}` : '';
    const what = e.code === 'INVALID_OPENING_QUOTE' ? 'a " inside an unquoted field' : e.message.replace(/^[A-Za-z ]+: /, '');
    throw Object.assign(
      new Error(`cmac: ${source}: line ${e.lines}${column}: ${what}. Fix: quote the whole field ("...") and double each " inside it ("")`),
      { code: 'CMAC_CSV', line: e.lines },
    );
  }
}

/** Options of {@link manifestSource}. */
export interface ManifestSourceOptions {
  /** Keep only rows whose `split` field equals this. */
  split?: string;
  /**
   * When no row of the manifest has a `split` field at all, use every row
   * instead of failing (training asks for `train`; a manifest without splits
   * is all training data). Default false: an explicit split must exist.
   */
  allWhenUnsplit?: boolean;
  /** Folder relative paths are resolved against (default: the manifest's folder). */
  root?: string;
  /** Class names: string labels map to their index here (default: sorted unique names). */
  classes?: string[];
  /** Force the format (default: from the extension; .csv is CSV, anything else JSONL). */
  format?: 'csv' | 'jsonl';
}

interface ManifestRow {
  path?: unknown;
  file?: unknown;
  video?: unknown;
  start?: unknown;
  end?: unknown;
  label?: unknown;
  boxes?: unknown;
  split?: unknown;
  [k: string]: unknown;
}

function optNumber(v: unknown, what: string, where: string): number | undefined {
  if (v === undefined || v === null || v === '') return undefined;
  const n = typeof v === 'number' ? v : Number(v);
  if (!Number.isFinite(n)) throw new Error(`cmac: ${where}: ${what} must be a number, got ${JSON.stringify(v)}`);
  return n;
}

/** The largest class index a label may have (labels travel as int32). */
const maxLabel = 2147483647;

/** One label value as a manifest row or a tar sample's json gives it, and where it came from (`file:line`). */
export interface LabelCell {
  value: unknown;
  where: string;
}

/**
 * The label rule of manifests and tar samples (docs/data.md):
 * - no label: the field is absent, null or empty;
 * - a class index: a JSON integer, or text of digits only (`3`; CSV has only
 *   text), in 0..K-1 with K = `classes.length` when `classes` is given
 *   (at most 2^31-1 otherwise);
 * - a class name: any other string, mapped through `classes`, or (without
 *   `classes`) through the sorted unique names of all rows.
 * Errors (thrown, naming the row): a number that is not an integer or is
 * negative or out of range (`-7`, `1.5`, `4294967297`), text that looks like
 * a number but is not digits only (` 2`, `1.0`, `-7`) unless `classes` names
 * it, a name with spaces around it, any other type (`true`, objects), a name
 * not in `classes`, and a list mixing indices and names.
 */
export function resolveLabels(
  cells: LabelCell[],
  classes?: string[],
  what = 'manifest',
): { labels: Array<number | undefined>; classes?: string[] } {
  type Kind = { kind: 'none' } | { kind: 'index'; n: number } | { kind: 'name'; s: string };
  const range = () => (classes ? `0..${classes.length - 1} (${classes.length} classes)` : `0..${maxLabel}`);
  const index = (n: number, where: string, raw: unknown): Kind => {
    if (!Number.isInteger(n) || n < 0 || n > maxLabel || (classes && n >= classes.length)) {
      throw new Error(
        `cmac: ${where}: label ${JSON.stringify(raw)} is not a class index: indices are integers ${range()}. Fix: correct the label, or write the class name as a string`,
      );
    }
    return { kind: 'index', n };
  };
  const kinds = cells.map(({ value: v, where }): Kind => {
    if (v === undefined || v === null || v === '') return { kind: 'none' };
    if (typeof v === 'number') return index(v, where, v);
    if (typeof v !== 'string') {
      throw new Error(`cmac: ${where}: label must be an integer class index or a class name (a string), got ${JSON.stringify(v)}`);
    }
    if (/^\d+$/.test(v)) return index(Number(v), where, v);
    if (classes?.includes(v)) return { kind: 'name', s: v };
    if (v.trim() !== '' && Number.isFinite(Number(v))) {
      throw new Error(
        `cmac: ${where}: label ${JSON.stringify(v)} looks like a number but is not a plain class index (digits only) nor one of the classes. ` +
          `Fix: write it as ${Number.isInteger(Number(v)) && Number(v) >= 0 ? Number(v) : 'a non-negative integer'}, or list it in classes`,
      );
    }
    if (v.trim() !== v)
      throw new Error(`cmac: ${where}: label ${JSON.stringify(v)} has spaces around it. Fix: write the class name without them`);
    return { kind: 'name', s: v };
  });
  const firstIndex = kinds.findIndex((k) => k.kind === 'index');
  const firstName = kinds.findIndex((k) => k.kind === 'name');
  if (firstIndex >= 0 && firstName >= 0) {
    const count = (kind: string) => kinds.filter((k) => k.kind === kind).length;
    throw new Error(
      `cmac: ${what}: labels mix class indices (${count('index')} row(s), first ${cells[firstIndex].where}: ${JSON.stringify(cells[firstIndex].value)}) ` +
        `and class names (${count('name')} row(s), first ${cells[firstName].where}: ${JSON.stringify(cells[firstName].value)}). ` +
        'Fix: use one kind: integers are class indices, strings are class names (mapped through classes)',
    );
  }
  let names = classes;
  if (!names && firstName >= 0) names = [...new Set(kinds.flatMap((k) => (k.kind === 'name' ? [k.s] : [])))].sort();
  const labels = kinds.map((k, i) => {
    if (k.kind === 'index') return k.n;
    if (k.kind === 'none') return undefined;
    const j = names!.indexOf(k.s);
    if (j < 0) throw new Error(`cmac: ${cells[i].where}: label '${k.s}' is not one of the classes (${names!.join(', ')})`);
    return j;
  });
  return { labels, classes: names };
}

/** One row of a manifest, parsed and checked. */
export interface ManifestEntry {
  /** `file:line` of the row, for messages. */
  where: string;
  /** Absolute path of the video. */
  path: string;
  start?: number;
  end?: number;
  /** Class index (see {@link resolveLabels}). */
  label?: number;
  boxes?: unknown;
  /** The row's `split` field, when it has one. */
  split?: unknown;
  /** Every field but path/file/video, start, end, label and boxes (split included). */
  extra?: Record<string, unknown>;
}

/** A whole manifest: every row (all splits), with one class mapping for all of them. */
export interface Manifest {
  file: string;
  entries: ManifestEntry[];
  /** Class names, when the labels are names or `classes` was given. */
  classes?: string[];
  /** The distinct string values of the rows' `split` field, sorted (empty: no split field). */
  splits: string[];
}

/**
 * Reads and checks a CSV or JSONL manifest (see {@link manifestSource}):
 * every row of every split, labels resolved by {@link resolveLabels} over
 * all rows, so a class keeps its index whichever split is used.
 */
export async function readManifest(file: string, opts: Omit<ManifestSourceOptions, 'split'> = {}): Promise<Manifest> {
  const mf = path.resolve(file);
  let text: string;
  try {
    text = await fs.promises.readFile(mf, 'utf8');
  } catch (e) {
    throw new Error(`cmac: cannot read manifest ${mf}: ${(e as Error).message}`);
  }
  return parseManifest(text, mf, opts);
}

/** {@link readManifest} on text already read from `file` (which names rows in messages and roots relative paths). */
export function parseManifest(text: string, file: string, opts: Omit<ManifestSourceOptions, 'split'> = {}): Manifest {
  const mf = path.resolve(file);
  const root = path.resolve(opts.root ?? path.dirname(mf));
  const format = opts.format ?? (path.extname(mf).toLowerCase() === '.csv' ? 'csv' : 'jsonl');
  const rows: { row: ManifestRow; where: string }[] = [];
  if (format === 'csv') {
    const table = parseCsv(text, mf);
    if (table.length > 0) {
      const header = table[0].map((h) => h.trim().toLowerCase());
      if (!header.some((h) => h === 'path' || h === 'file' || h === 'video')) {
        throw new Error(`cmac: manifest ${mf}: the CSV header must name a 'path' column, got ${header.join(',')}`);
      }
      for (let r = 1; r < table.length; r++) {
        const row: ManifestRow = {};
        header.forEach((h, c) => {
          const v = table[r][c];
          if (v !== undefined && v !== '') row[h] = v;
        });
        const where = `${mf}:${r + 1}`;
        if (typeof row.boxes === 'string') {
          try {
            row.boxes = JSON.parse(row.boxes);
          } catch {
            throw new Error(`cmac: ${where}: boxes is not JSON: ${row.boxes}`);
          }
        }
        rows.push({ row, where });
      }
    }
  } else {
    text.split('\n').forEach((line, i) => {
      const t = line.trim();
      if (!t || t.startsWith('#')) return;
      const where = `${mf}:${i + 1}`;
      let row: ManifestRow;
      try {
        row = JSON.parse(t);
      } catch (e) {
        throw new Error(`cmac: ${where}: not JSON (${(e as Error).message})`);
      }
      if (typeof row !== 'object' || row === null || Array.isArray(row)) throw new Error(`cmac: ${where}: each line must be a JSON object`);
      rows.push({ row, where });
    });
  }
  const { labels, classes } = resolveLabels(
    rows.map(({ row, where }) => ({ value: row.label, where })),
    opts.classes,
    `manifest ${mf}`,
  );
  const entries = rows.map(({ row, where }, i): ManifestEntry => {
    const p = row.path ?? row.file ?? row.video;
    if (typeof p !== 'string' || !p) throw new Error(`cmac: ${where}: missing 'path'`);
    const e: ManifestEntry = { where, path: path.resolve(root, p) };
    const start = optNumber(row.start, 'start', where);
    const end = optNumber(row.end, 'end', where);
    if (start !== undefined) e.start = start;
    if (end !== undefined) e.end = end;
    if (labels[i] !== undefined) e.label = labels[i];
    if (row.boxes !== undefined) e.boxes = row.boxes;
    if (row.split !== undefined) e.split = row.split;
    const extra: Record<string, unknown> = {};
    for (const [k, v] of Object.entries(row)) {
      if (!['path', 'file', 'video', 'start', 'end', 'label', 'boxes'].includes(k)) extra[k] = v;
    }
    if (Object.keys(extra).length) e.extra = extra;
    return e;
  });
  const splits = [...new Set(entries.flatMap((e) => (typeof e.split === 'string' ? [e.split] : [])))].sort();
  return { file: mf, entries, classes, splits };
}

/**
 * Samples listed in a CSV (header row: `path,start,end,label,boxes`, any
 * order, only `path` required; `boxes` is JSON text) or JSONL manifest (one
 * object per line with the same fields; extra fields pass through as
 * `extra`). Relative paths are resolved against the manifest's folder.
 * Labels follow {@link resolveLabels}: integers are class indices, strings
 * are class names mapped through `classes`, mixing them is an error.
 *
 * @example
 * const src = manifestSource('/data/train.jsonl', { split: 'train' });
 */
export function manifestSource(file: string, opts: ManifestSourceOptions = {}): Source {
  const mf = path.resolve(file);
  const src: Source = {
    description: `manifest ${mf}${opts.split ? ` (split ${opts.split})` : ''}`,
    async list(): Promise<SampleRef[]> {
      const m = await readManifest(mf, opts);
      const unsplit =
        opts.split !== undefined && opts.allWhenUnsplit === true && m.splits.length === 0 && m.entries.every((e) => e.split === undefined);
      const kept = opts.split === undefined || unsplit ? m.entries : m.entries.filter((e) => e.split === opts.split);
      if (kept.length === 0 && m.entries.length > 0) {
        throw new Error(
          `cmac: manifest ${mf} has no rows of split '${opts.split}' (${m.splits.length ? `its splits: ${m.splits.join(', ')}` : 'its rows have no split field'}). ` +
            `Fix: ${m.splits.length ? 'choose one of its splits' : 'add a split field (e.g. "split": "train") to the rows'}`,
        );
      }
      if (m.classes) src.classes = m.classes;
      return kept.map((e, index) => {
        const ref: SampleRef = { id: e.path, index, path: e.path, row: e.where };
        if (e.start !== undefined) ref.start = e.start;
        if (e.end !== undefined) ref.end = e.end;
        if (e.label !== undefined) ref.label = e.label;
        if (e.boxes !== undefined) ref.boxes = e.boxes;
        if (e.extra) ref.extra = e.extra;
        return ref;
      });
    },
    async open(ref: SampleRef): Promise<OpenedSample> {
      return { path: ref.path!, release: noRelease };
    },
  };
  return src;
}

/** The most names one brace pattern may expand to (see {@link expandBraces}). */
export const maxBraceExpansion = 100_000;

interface BraceRange {
  index: number;
  length: number;
  from: number;
  to: number;
  width: number;
}

function braceRanges(pattern: string): BraceRange[] {
  const out: BraceRange[] = [];
  for (const m of pattern.matchAll(/\{(\d+)\.\.(\d+)\}/g)) {
    const [from, to] = [Number(m[1]), Number(m[2])];
    if (!Number.isSafeInteger(from) || !Number.isSafeInteger(to))
      throw new Error(`cmac: the range ${m[0]} in ${pattern} has numbers past ${Number.MAX_SAFE_INTEGER}`);
    if (from > to) throw new Error(`cmac: the range ${m[0]} in ${pattern} is empty (it counts down). Fix: write it as {${m[2]}..${m[1]}}`);
    out.push({ index: m.index!, length: m[0].length, from, to, width: m[1].length });
  }
  return out;
}

/**
 * How many names a brace pattern stands for (the product of its range
 * sizes), computed without expanding it.
 * @example braceCount('shard-{000..099}-{0..1}.tar') // 200
 */
export function braceCount(pattern: string): number {
  return braceRanges(pattern).reduce((n, r) => n * (r.to - r.from + 1), 1);
}

/** The brace count of `pattern`; an Error naming the pattern, the count and the limit when it is over `limit`. */
function checkBraceCount(pattern: string, limit = maxBraceExpansion): number {
  const count = braceCount(pattern);
  if (count > limit) {
    throw new Error(
      `cmac: the shard pattern ${pattern} stands for ${count.toLocaleString('en-US')} names, more than the limit of ${limit.toLocaleString('en-US')}. ` +
        'Fix: narrow the range(s), or put the shards in a folder and pass the folder',
    );
  }
  return count;
}

/**
 * Expands WebDataset-style brace ranges: `shard-{000..003}.tar` gives four
 * names (several ranges give every combination, the last range varying
 * fastest). The count is checked before anything is expanded: a pattern
 * standing for more than `limit` (default {@link maxBraceExpansion}) names is
 * an Error naming the pattern, the count and the limit.
 */
export function expandBraces(pattern: string, limit = maxBraceExpansion): string[] {
  const ranges = braceRanges(pattern);
  const count = checkBraceCount(pattern, limit);
  if (!ranges.length) return [pattern];
  const out: string[] = [];
  const digits = ranges.map((r) => r.from);
  for (let n = 0; n < count; n++) {
    let s = '';
    let at = 0;
    ranges.forEach((r, k) => {
      s += pattern.slice(at, r.index) + String(digits[k]).padStart(r.width, '0');
      at = r.index + r.length;
    });
    out.push(s + pattern.slice(at));
    for (let k = ranges.length - 1; k >= 0; k--) {
      // odometer: the last range varies fastest
      if (digits[k] < ranges[k].to) {
        digits[k]++;
        break;
      }
      digits[k] = ranges[k].from;
    }
  }
  return out;
}

interface TarMember {
  shard: string;
  name: string;
  offset: number;
  size: number;
}

/** Options of {@link tarSource}. */
export interface TarSourceOptions {
  /** Where extracted members go (default: a fresh folder under the OS temp dir). */
  tmpDir?: string;
  /** Extensions of the video member (default .mp4 .mkv .webm .avi .mov). */
  extensions?: string[];
}

/**
 * WebDataset-style tar shards: members sharing a key (the member path up to
 * the first dot of its file name) form one sample, e.g. `000123.mp4` and
 * `000123.json` (fields label, start, end, boxes; the rest goes to `extra`).
 * `shards` is a .tar file, a folder of .tar files, a brace pattern
 * (`shards/train-{000..099}.tar`) or a list of these. Listing streams every
 * shard once with tar-stream, keeping the json members and the byte range of
 * each video member; opening a sample copies that range to a temporary file
 * for ffmpeg (removed on release), or with `inMemory` (the native decoder)
 * reads it into a Buffer: no temporary file.
 */
export function tarSource(shards: string | string[], opts: TarSourceOptions = {}): Source {
  const exts = new Set((opts.extensions ?? videoExtensions).map((e) => e.toLowerCase()));
  let tmp: string | undefined = opts.tmpDir;
  let ownTmp = false;
  let counter = 0;
  const specs = Array.isArray(shards) ? shards : [shards];
  for (const spec of specs) checkBraceCount(spec); // fail before any work, not when listing
  const src: Source = {
    description: `tar shards ${specs.join(', ')}`,
    warnings: [],
    async list(): Promise<SampleRef[]> {
      const files: string[] = [];
      for (const spec of specs) {
        for (const s of expandBraces(spec)) {
          const abs = path.resolve(s);
          if (fs.existsSync(abs) && fs.statSync(abs).isDirectory()) {
            files.push(
              ...fs
                .readdirSync(abs)
                .filter((f) => f.toLowerCase().endsWith('.tar'))
                .sort()
                .map((f) => path.join(abs, f)),
            );
          } else if (fs.existsSync(abs)) files.push(abs);
          else throw new Error(`cmac: tar shard ${abs} does not exist`);
        }
      }
      const refs: SampleRef[] = [];
      const labelCells: LabelCell[] = [];
      const warnings: string[] = [];
      for (const shard of files) {
        const samples = new Map<string, { video?: TarMember; json?: Record<string, unknown>; jsonError?: string }>();
        const extract = tar.extract();
        const reading = pipeline(fs.createReadStream(shard), extract);
        reading.catch(() => undefined);
        try {
          for await (const entry of extract) {
            const h = entry.header as tar.Header & { byteOffset?: number };
            const base = path.posix.basename(h.name);
            const dot = base.indexOf('.');
            if (h.type !== 'file' || dot <= 0) {
              entry.resume();
              continue;
            }
            const key = path.posix.join(path.posix.dirname(h.name), base.slice(0, dot));
            const ext = base.slice(dot).toLowerCase();
            const s = samples.get(key) ?? {};
            samples.set(key, s);
            if (ext === '.json') {
              const chunks: Buffer[] = [];
              for await (const c of entry) chunks.push(c as Buffer);
              try {
                const j = JSON.parse(Buffer.concat(chunks).toString('utf8'));
                if (typeof j === 'object' && j && !Array.isArray(j)) s.json = j;
              } catch (e) {
                s.jsonError = (e as Error).message;
              }
              continue;
            }
            const vext = path.extname(base).toLowerCase();
            if (exts.has(vext) && !s.video) {
              if (typeof h.byteOffset !== 'number') throw new Error('tar-stream did not report member offsets (needs tar-stream >= 3)');
              s.video = { shard, name: h.name, offset: h.byteOffset, size: h.size };
            }
            entry.resume();
          }
          await reading;
        } catch (e) {
          warnings.push(
            `tar shard ${shard} is damaged after ${samples.size} sample(s): ${(e as Error).message}; the complete samples before it are used`,
          );
        }
        for (const [key, s] of samples) {
          if (s.jsonError) warnings.push(`${shard}#${key}: json member is not JSON (${s.jsonError}); sample used without it`);
          const ref: SampleRef = { id: `${shard}#${key}`, index: refs.length, extra: { shard, key } };
          const j = s.json ?? {};
          labelCells.push({ value: j.label, where: ref.id });
          if (typeof j.start === 'number') ref.start = j.start;
          if (typeof j.end === 'number') ref.end = j.end;
          if (j.boxes !== undefined) ref.boxes = j.boxes;
          for (const [k, v] of Object.entries(j)) if (!['label', 'start', 'end', 'boxes'].includes(k)) ref.extra![k] = v;
          if (s.video) ref.extra!.member = s.video;
          refs.push(ref);
        }
      }
      // The manifest's label rule (resolveLabels): indices, or names mapped through their sorted order.
      const { labels, classes } = resolveLabels(labelCells, undefined, `tar shards ${specs.join(', ')}`);
      refs.forEach((r, i) => {
        if (labels[i] !== undefined) r.label = labels[i];
      });
      if (classes) src.classes = classes;
      src.warnings = warnings;
      return refs;
    },
    async open(ref: SampleRef, o: OpenOptions = {}): Promise<OpenedSample> {
      const m = ref.extra?.member as TarMember | undefined;
      if (!m) throw new DataError('no_video', ref.id, 'the sample has no video member');
      if (o.inMemory) {
        const bytes = Buffer.alloc(m.size);
        const fh = await fs.promises.open(m.shard, 'r');
        try {
          const { bytesRead } = await fh.read(bytes, 0, m.size, m.offset);
          if (bytesRead !== m.size)
            throw new DataError('truncated', ref.id, `tar member ${m.name} of ${m.shard} ends after ${bytesRead} of ${m.size} bytes`);
        } finally {
          await fh.close();
        }
        return { path: `${m.shard}#${m.name}`, bytes, release: noRelease };
      }
      if (!tmp) {
        tmp = fs.mkdtempSync(path.join(os.tmpdir(), `cmac-tar-${process.pid}-`)); // the owner's pid: see removeStaleTempDirs (lib/files.ts)
        ownTmp = true;
        const dir = tmp;
        process.once('exit', () => fs.rmSync(dir, { recursive: true, force: true }));
      }
      fs.mkdirSync(tmp, { recursive: true });
      const out = path.join(tmp, `${process.pid}-${counter++}${path.extname(m.name)}`);
      if (m.size > 0)
        await pipeline(fs.createReadStream(m.shard, { start: m.offset, end: m.offset + m.size - 1 }), fs.createWriteStream(out));
      else fs.writeFileSync(out, '');
      return { path: out, release: async () => fs.promises.rm(out, { force: true }) };
    },
    async close(): Promise<void> {
      if (tmp && ownTmp) fs.rmSync(tmp, { recursive: true, force: true });
      tmp = ownTmp ? undefined : tmp;
    },
  };
  return src;
}

/** Options of {@link synthSource}. */
export interface SynthSourceOptions {
  /** 'train' | 'val' | 'test'; omitted = all clips. */
  split?: string;
}

/**
 * The synthetic dataset written by `cmac synth` / {@link synthesize}: its
 * manifest.jsonl (labels are class indices; `extra.gt` names each clip's
 * ground-truth JSON) with class names from classes.json.
 */
export function synthSource(dir: string, opts: SynthSourceOptions = {}): Source {
  const root = path.resolve(dir);
  const manifest = path.join(root, 'manifest.jsonl');
  const src: Source = {
    description: `synthetic dataset ${root}${opts.split ? ` (split ${opts.split})` : ''}`,
    async list(): Promise<SampleRef[]> {
      if (!fs.existsSync(path.join(root, 'manifest.jsonl')))
        throw new Error(
          `cmac: ${root} has no manifest.jsonl. Fix: make one with synthesize({ out: ${JSON.stringify(root)}, clips: 200 }) (CLI: cmac synth --out ${root})`,
        );
      let classes: string[] | undefined;
      try {
        const c = JSON.parse(fs.readFileSync(path.join(root, 'classes.json'), 'utf8')) as { classes?: { name: string }[] };
        if (Array.isArray(c.classes)) classes = c.classes.map((k) => k.name);
      } catch {
        /* classes.json is optional */
      }
      // With the class names known, a label index past them is an error naming the row.
      const refs = await manifestSource(manifest, { split: opts.split, classes }).list();
      if (classes) src.classes = classes;
      return refs;
    },
    open: async (ref) => ({ path: ref.path!, release: noRelease }),
  };
  return src;
}
