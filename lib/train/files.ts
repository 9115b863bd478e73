// Run folders: a writable folder, and the exclusive lock that keeps two runs
// out of one folder. The crash-safe writes they use are lib/files.ts's.
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { onProcessExit, processAlive } from '../files';

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
      throw new Error(
        `cannot write to run folder ${dir}: the file system holding ${ro} is read-only (EROFS). ` +
          'Fix: choose another run folder on a writable file system (train.runDir; CLI: --run-dir), or remount it read-write.',
      );
    }
    throw new Error(
      `cannot write to run folder ${dir}: ${(e as Error).message}. Fix: choose another run folder (train.runDir; CLI: --run-dir) or fix its permissions.`,
    );
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
  constructor(
    message: string,
    readonly holder: LockHolder | undefined,
    readonly lockFile: string,
  ) {
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
  const mine =
    JSON.stringify({
      pid: process.pid,
      host: os.hostname(),
      command: commandLine(),
      started: new Date().toISOString(),
    } satisfies LockHolder) + '\n';
  for (let attempt = 0; attempt < 5; attempt++) {
    try {
      const fd = fs.openSync(file, 'wx', 0o644);
      try {
        fs.writeSync(fd, mine);
      } finally {
        fs.closeSync(fd);
      }
      heldLocks.add(file);
      let released = false;
      const release = () => {
        if (released) return;
        released = true;
        cancel();
        heldLocks.delete(file);
        try {
          if (fs.readFileSync(file, 'utf8') === mine) fs.rmSync(file, { force: true });
        } catch {
          /* gone already */
        }
      };
      const cancel = onProcessExit(release);
      return { file, release };
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
        throw new Error(`cannot create the lock ${file}: ${(e as Error).message}. Fix: make the run folder writable, or use another one.`);
      }
    }
    const seen = readLock(file);
    if (seen === undefined) continue; // released in between: try again
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
  try {
    raw = fs.readFileSync(file, 'utf8');
  } catch {
    return undefined;
  }
  try {
    const h = JSON.parse(raw) as LockHolder;
    if (Number.isSafeInteger(h.pid) && h.pid > 0 && typeof h.host === 'string') return { raw, holder: h };
  } catch {
    /* torn: see below */
  }
  // A lock is written right after its O_EXCL create; an unreadable one older
  // than a few seconds was left by a process killed in between.
  try {
    if (Date.now() - fs.statSync(file).mtimeMs > 5000) return { raw, holder: { pid: 0, host: os.hostname(), command: '', started: '' } };
  } catch {
    return undefined;
  }
  return { raw };
}

function lockHolderAlive(h: LockHolder, file: string): boolean {
  if (h.host !== os.hostname()) return true; // cannot check another machine's processes
  if (h.pid === 0) return false;
  if (h.pid === process.pid) return heldLocks.has(file); // a pid of a dead process reused by this one
  return processAlive(h.pid);
}

/** Removes a stale lock, but only the one judged stale: a fresh lock another process took meanwhile is put back. */
function breakStaleLock(file: string, staleRaw: string): void {
  const grave = `${file}.stale-${process.pid}`;
  try {
    fs.renameSync(file, grave);
  } catch {
    return;
  }
  let raw = '';
  try {
    raw = fs.readFileSync(grave, 'utf8');
  } catch {
    /* gone */
  }
  if (raw !== staleRaw) {
    try {
      fs.linkSync(grave, file);
    } catch {
      /* a third run took it: it holds the lock */
    }
  }
  fs.rmSync(grave, { force: true });
}

function busyError(dir: string, file: string, h: LockHolder | undefined): RunFolderBusyError {
  const who = h
    ? `pid ${h.pid}${h.host !== os.hostname() ? ` on host ${h.host}` : h.pid === process.pid ? ' (this process)' : ''}${h.command ? ` (${h.command})` : ''}${h.started ? `, since ${h.started}` : ''}`
    : 'a process that has not finished writing the lock';
  return new RunFolderBusyError(
    `run folder ${dir} is in use by another run: ${who}. Two runs in one folder would interleave their metrics and checkpoints. ` +
      `Fix: wait for that run to finish${h && h.pid !== process.pid ? ` (or stop it: kill ${h.pid})` : ''}, or use another run folder (train.runDir; CLI: --run-dir). ` +
      `If that process is no cmac run (a reused pid, or a folder copied from another host), delete ${file}.`,
    h,
    file,
  );
}
