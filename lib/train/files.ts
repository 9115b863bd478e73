// Crash-safe file writes for run folders: temp file, fsync, rename, fsync dir.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

/** Writes `data` to `file` atomically: a reader sees the old or the new file, never a torn one. */
export function writeFileAtomic(file: string, data: string | Uint8Array): void {
  const tmp = `${file}.tmp-${process.pid}`;
  try {
    const fd = fs.openSync(tmp, 'w', 0o644);
    try {
      fs.writeFileSync(fd, data);
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
    fs.renameSync(tmp, file);
  } catch (e) {
    fs.rmSync(tmp, { force: true });  // never leave a torn temp file behind
    throw e;
  }
  fsyncDir(path.dirname(file));
}

/** fsync a folder so a rename in it survives a crash. */
export function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try { fs.fsyncSync(fd); } finally { fs.closeSync(fd); }
  } catch { /* not every filesystem allows it */ }
}

/** Makes sure a run folder exists and is writable; the error names the folder, the cause and the fix. */
export function ensureWritableDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    // Node's recursive mkdir reports ENOENT on a read-only file system; probing
    // the nearest folder that exists tells the real cause (access(2) says EROFS).
    const ro = readOnlyAncestor(dir);
    if (ro) {
      throw new Error(`cannot write to run folder ${dir}: the file system holding ${ro} is read-only (EROFS). ` +
        'Fix: choose another --run-dir on a writable file system, or remount it read-write.');
    }
    throw new Error(`cannot write to run folder ${dir}: ${(e as Error).message}. Fix: choose another --run-dir or fix its permissions.`);
  }
}

/** The nearest existing folder at or above `dir` when it lies on a read-only file system, else undefined. */
function readOnlyAncestor(dir: string): string | undefined {
  let p = path.resolve(dir);
  while (!fs.existsSync(p) && path.dirname(p) !== p) p = path.dirname(p);
  try {
    fs.accessSync(p, fs.constants.W_OK);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'EROFS') return p;
  }
  return undefined;
}

/** Whether process `pid` exists on this machine (EPERM: it exists, owned by someone else). */
export function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

/** Whether the owner `pid` named in a leftover's name is another process that no longer exists. */
function ownerGone(pid: number): boolean {
  return pid !== process.pid && Number.isSafeInteger(pid) && pid > 0 && !processAlive(pid);
}

/**
 * Removes `*.tmp-<pid>` files (see writeFileAtomic; the native writer uses the
 * same names) in `dir` whose writer process no longer exists: what a killed
 * run leaves behind. Files of live processes are kept. Returns how many were removed.
 */
export function removeStaleTempFiles(dir: string): number {
  let names: string[];
  try { names = fs.readdirSync(dir); } catch { return 0; }
  let removed = 0;
  for (const f of names) {
    const m = /\.tmp-(\d+)$/.exec(f);
    if (!m) continue;
    if (!ownerGone(Number(m[1]))) continue;
    try {
      fs.rmSync(path.join(dir, f), { force: true });
      removed++;
    } catch { /* another cleaner got there first, or not ours to remove: leave it */ }
  }
  return removed;
}

const exitHooks = new Set<() => void>();

/**
 * Runs `fn` when the process exits: normally, through process.exit, or on a
 * signal that the CLI turns into an exit (lib/cli/lifecycle.ts). Meant for
 * removing what a killed command would otherwise leave behind (temp files,
 * uncommitted checkpoints, a run-folder lock). Returns the function that
 * cancels it. One 'exit' listener serves every hook.
 */
export function onProcessExit(fn: () => void): () => void {
  if (!exitHooks.size) process.once('exit', runExitHooks);
  exitHooks.add(fn);
  return () => {
    exitHooks.delete(fn);
    if (!exitHooks.size) process.off('exit', runExitHooks);
  };
}

function runExitHooks(): void {
  for (const fn of [...exitHooks]) {
    try { fn(); } catch { /* exiting: a failed cleanup must not stop the others */ }
  }
  exitHooks.clear();
}

/**
 * A new folder `<os temp>/<prefix><pid>-XXXXXX`: the owner's pid in the name
 * lets {@link removeStaleTempDirs} tell what a killed process left behind.
 * It is removed when the process exits (see {@link onProcessExit}) unless the
 * returned `remove` ran first.
 */
export function makeOwnedTempDir(prefix: string): { dir: string; remove: () => void } {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), `${prefix}${process.pid}-`));
  const rm = () => fs.rmSync(dir, { recursive: true, force: true });
  const cancel = onProcessExit(rm);
  return { dir, remove: () => { cancel(); rm(); } };
}

/**
 * Removes folders `<prefix><pid>-*` in `parent` (default: the OS temp folder)
 * whose owner process no longer exists (a SIGKILL or a crash skips every exit
 * hook); folders of live processes are kept. Returns how many were removed.
 */
export function removeStaleTempDirs(prefixes: string[], parent = os.tmpdir()): number {
  let names: string[];
  try { names = fs.readdirSync(parent); } catch { return 0; }
  let removed = 0;
  for (const f of names) {
    const pre = prefixes.find((p) => f.startsWith(p));
    const m = pre === undefined ? null : /^(\d+)-/.exec(f.slice(pre.length));
    if (!m) continue;
    if (!ownerGone(Number(m[1]))) continue;
    try {
      fs.rmSync(path.join(parent, f), { recursive: true, force: true });
      removed++;
    } catch { /* not ours to remove, or gone already */ }
  }
  return removed;
}

/** Who holds a run folder's lock (the JSON in its `run.lock`). */
export interface LockHolder {
  pid: number;
  host: string;
  command: string;
  started: string;
}

/** The run folder is in use by another run (see {@link lockRunDir}). */
export class RunFolderBusyError extends Error {
  readonly code = 'CMAC_RUN_FOLDER_BUSY';
  constructor(message: string, readonly holder: LockHolder | undefined, readonly lockFile: string) {
    super(message);
    this.name = 'RunFolderBusyError';
  }
}

/** An exclusive lock on a run folder; release() removes it (it also goes when the process exits). */
export interface RunLock {
  file: string;
  release(): void;
}

const heldLocks = new Set<string>();

/**
 * Takes the exclusive lock of run folder `dir` (the file `run.lock`, created
 * with O_EXCL, holding the owner's pid, host, command and start time), so two
 * runs can never write one folder's metrics, checkpoints and config at once.
 * A lock whose owner process no longer exists on this host (SIGKILL, a crash,
 * a reboot) is stale and taken over. A live owner, this process included
 * (a second train() on the same folder), is a {@link RunFolderBusyError}
 * naming its pid and the fix.
 */
export function lockRunDir(dir: string): RunLock {
  const file = path.join(dir, 'run.lock');
  const mine = JSON.stringify({ pid: process.pid, host: os.hostname(), command: commandLine(), started: new Date().toISOString() } satisfies LockHolder) + '\n';
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o644);
      try { fs.writeSync(fd, mine); } finally { fs.closeSync(fd); }
      heldLocks.add(file);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        cancel();
        heldLocks.delete(file);
        try { if (fs.readFileSync(file, 'utf8') === mine) fs.rmSync(file, { force: true }); } catch { /* gone already */ }
      };
      const cancel = onProcessExit(release);
      return { file, release };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new Error(`cannot create the lock ${file}: ${(e as Error).message}. Fix: make the run folder writable, or use another one.`);
      }
    }
    const seen = readLock(file);
    if (seen === undefined) continue;  // released in between: try again
    const holder = seen.holder;
    if (holder && !lockHolderAlive(holder, file)) {
      breakStaleLock(file, seen.raw);
      continue;
    }
    throw busyError(dir, file, holder);
  }
  throw busyError(dir, file, readLock(file)?.holder);
}

function commandLine(): string {
  return [path.basename(process.argv[1] ?? 'node'), ...process.argv.slice(2)].join(' ').slice(0, 300);
}

/** The lock's raw text and its holder; holder undefined when the file is not a lock we can read (a torn or foreign file). */
function readLock(file: string): { raw: string; holder?: LockHolder } | undefined {
  let raw: string;
  try { raw = fs.readFileSync(file, 'utf8'); } catch { return undefined; }
  try {
    const h = JSON.parse(raw) as LockHolder;
    if (Number.isSafeInteger(h.pid) && h.pid > 0 && typeof h.host === 'string') return { raw, holder: h };
  } catch { /* torn: see below */ }
  // A lock is written right after its O_EXCL create; an unreadable one older
  // than a few seconds was left by a process killed in between.
  try {
    if (Date.now() - fs.statSync(file).mtimeMs > 5000) return { raw, holder: { pid: 0, host: os.hostname(), command: '', started: '' } };
  } catch { return undefined; }
  return { raw };
}

function lockHolderAlive(h: LockHolder, file: string): boolean {
  if (h.host !== os.hostname()) return true;  // cannot check another machine's processes
  if (h.pid === 0) return false;
  if (h.pid === process.pid) return heldLocks.has(file);  // a pid of a dead process reused by this one
  return processAlive(h.pid);
}

/** Removes a stale lock, but only the one judged stale: a fresh lock another process took meanwhile is put back. */
function breakStaleLock(file: string, staleRaw: string): void {
  const grave = `${file}.stale-${process.pid}`;
  try { fs.renameSync(file, grave); } catch { return; }
  let raw = '';
  try { raw = fs.readFileSync(grave, 'utf8'); } catch { /* gone */ }
  if (raw !== staleRaw) {
    try { fs.linkSync(grave, file); } catch { /* a third run took it: it holds the lock */ }
  }
  fs.rmSync(grave, { force: true });
}

function busyError(dir: string, file: string, h: LockHolder | undefined): RunFolderBusyError {
  const who = h
    ? `pid ${h.pid}${h.host !== os.hostname() ? ` on host ${h.host}` : h.pid === process.pid ? ' (this process)' : ''}${h.command ? ` (${h.command})` : ''}${h.started ? `, since ${h.started}` : ''}`
    : 'a process that has not finished writing the lock';
  return new RunFolderBusyError(
    `run folder ${dir} is in use by another run: ${who}. Two runs in one folder would interleave their metrics and checkpoints. ` +
    `Fix: wait for that run to finish${h && h.pid !== process.pid ? ` (or stop it: kill ${h.pid})` : ''}, or use another run folder (--run-dir, train.runDir). ` +
    `If that process is no cmac run (a reused pid, or a folder copied from another host), delete ${file}.`, h, file);
}
