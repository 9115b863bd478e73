// What every `cmac` command shares about its process (README, "Signals,
// pipes and leftovers"):
// - output to a closed pipe (`cmac train ... | head -1`) is dropped instead of
//   killing the command with an unhandled EPIPE;
// - SIGINT / SIGTERM / SIGHUP end the command through process.exit with code
//   128 + the signal's number, so the exit hooks of lib/files.ts
//   onProcessExit run (temp folders, half-written overlay videos and
//   checkpoints, the run-folder lock), unless a command takes the first
//   signal itself (train: stop after this step with a checkpoint);
// - temp folders that killed cmac processes left in the OS temp folder are
//   removed when a command (any but `info`) starts.
import * as os from 'os';
import { finetuneTempPrefix } from '../eval/finetune';
import { removeStaleTempDirs } from '../files';

const SIGNALS = ['SIGINT', 'SIGTERM', 'SIGHUP'] as const;
type Handled = (typeof SIGNALS)[number];

/** Exit code of a command ended by `sig`: 128 + its number, as shells report it. */
export function signalExitCode(sig: NodeJS.Signals): number {
  return 128 + (os.constants.signals[sig] ?? 15);
}

let firstSignal: ((sig: Handled) => void) | undefined;
let installed = false;

/**
 * Installs the process behaviour above (once per process). Errors on stdout
 * and stderr (EPIPE, and ENOSPC or EIO of a redirect) only drop the output:
 * a run must not die or lose its checkpoint because nobody reads its log.
 */
export function installProcessGuards(): void {
  if (installed) return;
  installed = true;
  for (const s of [process.stdout, process.stderr]) s.on('error', () => undefined);
  for (const sig of SIGNALS) {
    process.on(sig, () => {
      const take = firstSignal;
      firstSignal = undefined;
      if (take) take(sig);
      else process.exit(signalExitCode(sig));
    });
  }
}

/**
 * Lets the command handle the next signal itself (e.g. a graceful stop);
 * the one after it exits as usual. Returns the function that gives it back.
 */
export function takeNextSignal(fn: (sig: Handled) => void): () => void {
  installProcessGuards();
  firstSignal = fn;
  return () => {
    if (firstSignal === fn) firstSignal = undefined;
  };
}

/** Temp-folder prefixes of cmac (each followed by the owner's pid): the tar-shard members, finetuning's clip cache. */
export const TEMP_PREFIXES = ['cmac-tar-', finetuneTempPrefix];

/** Removes what killed cmac processes left in the OS temp folder; returns how many folders. */
export function removeStaleTemp(): number {
  return removeStaleTempDirs(TEMP_PREFIXES);
}
