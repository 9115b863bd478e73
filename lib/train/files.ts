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

/** Makes sure a run folder exists and is writable; the error names the folder and the fix. */
export function ensureWritableDir(dir: string): void {
  try {
    fs.mkdirSync(dir, { recursive: true });
    fs.accessSync(dir, fs.constants.W_OK);
  } catch (e) {
    throw new Error(`cannot write to run folder ${dir}: ${(e as Error).message}. Fix: choose another --run-dir or fix its permissions.`);
  }
}
