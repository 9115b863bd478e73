// Crash-safe file writes (temp file, fsync, rename, fsync dir) and cleanup of
// what a killed process leaves behind (temp files and folders named by their
// owner's pid, exit hooks). Used by every layer that writes files: run
// folders, checkpoints, reports, the CLI; it imports nothing of cmac.
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
    fs.rmSync(tmp, { force: true }); // never leave a torn temp file behind
    throw e;
  }
  fsyncDir(path.dirname(file));
}

/** fsync a folder so a rename in it survives a crash. */
export function fsyncDir(dir: string): void {
  try {
    const fd = fs.openSync(dir, 'r');
    try {
      fs.fsyncSync(fd);
    } finally {
      fs.closeSync(fd);
    }
  } catch {
    /* not every filesystem allows it */
  }
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
  try {
    names = fs.readdirSync(dir);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const f of names) {
    const m = /\.tmp-(\d+)$/.exec(f);
    if (!m) continue;
    if (!ownerGone(Number(m[1]))) continue;
    try {
      fs.rmSync(path.join(dir, f), { force: true });
      removed++;
    } catch {
      /* another cleaner got there first, or not ours to remove: leave it */
    }
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
    try {
      fn();
    } catch {
      /* exiting: a failed cleanup must not stop the others */
    }
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
  return {
    dir,
    remove: () => {
      cancel();
      rm();
    },
  };
}

/**
 * Removes folders `<prefix><pid>-*` in `parent` (default: the OS temp folder)
 * whose owner process no longer exists (a SIGKILL or a crash skips every exit
 * hook); folders of live processes are kept. Returns how many were removed.
 */
export function removeStaleTempDirs(prefixes: string[], parent = os.tmpdir()): number {
  let names: string[];
  try {
    names = fs.readdirSync(parent);
  } catch {
    return 0;
  }
  let removed = 0;
  for (const f of names) {
    const pre = prefixes.find((p) => f.startsWith(p));
    const m = pre === undefined ? null : /^(\d+)-/.exec(f.slice(pre.length));
    if (!m) continue;
    if (!ownerGone(Number(m[1]))) continue;
    try {
      fs.rmSync(path.join(parent, f), { recursive: true, force: true });
      removed++;
    } catch {
      /* not ours to remove, or gone already */
    }
  }
  return removed;
}
