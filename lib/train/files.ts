// Crash-safe file writes for run folders: temp file, fsync, rename, fsync dir.
import * as fs from 'fs';
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
function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code !== 'ESRCH';
  }
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
    const pid = Number(m[1]);
    if (pid === process.pid || !Number.isSafeInteger(pid) || pid <= 0 || processAlive(pid)) continue;
    try {
      fs.rmSync(path.join(dir, f), { force: true });
      removed++;
    } catch { /* another cleaner got there first, or not ours to remove: leave it */ }
  }
  return removed;
}
