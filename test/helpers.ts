// Shared helpers for the mocha suites.
import { Command } from 'commander';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { packageRoot } from '../lib/native';
import { modelPreset } from '../lib/presets';
import type { Batch, ModelConfig } from '../lib/model';

export const root = packageRoot();

const tmpDirs: string[] = [];
process.once('exit', () => {
  for (const d of tmpDirs) fs.rmSync(d, { recursive: true, force: true });
});

/** A fresh temporary folder, removed at process exit. */
export function tmpDir(prefix = 'cmac-test-'): string {
  const d = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tmpDirs.push(d);
  return d;
}

/** Deterministic pseudo-random numbers (mulberry32). */
export function rng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A random tiny-preset batch: video [n, 4, 64, 64, 3] uint8, audio [n, 16000] float32. */
export function randomBatch(n: number, seed = 1, samples = 16000): Batch {
  const r = rng(seed);
  const video = new Uint8Array(n * 4 * 64 * 64 * 3);
  for (let i = 0; i < video.length; i++) video[i] = Math.floor(r() * 256);
  const audio = new Float32Array(n * samples);
  for (let i = 0; i < audio.length; i++) audio[i] = (r() - 0.5) * 0.2;
  return { video: { data: video, shape: [n, 4, 64, 64, 3] }, audio: { data: audio, shape: [n, samples] } };
}

export function tinyConfig(extra: ModelConfig = {}): ModelConfig {
  return { ...modelPreset('tiny'), ...extra };
}

/** Asserts that a promise rejects (or a function throws) with `cls` and a message matching `re`. */
export async function rejects(p: Promise<unknown> | (() => unknown), cls: Function, re: RegExp): Promise<Error> {
  try {
    await (typeof p === 'function' ? p() : p);
  } catch (e) {
    if (!(e instanceof cls)) throw new Error(`expected ${cls.name}, got ${(e as Error).constructor.name}: ${(e as Error).message}`);
    if (!re.test((e as Error).message)) throw new Error(`message "${(e as Error).message}" does not match ${re}`);
    return e as Error;
  }
  throw new Error(`expected ${cls.name} matching ${re}, but nothing was thrown`);
}

/**
 * Runs CLI arguments through a fresh commander program that `register` fills
 * (e.g. registerEval); returns what it printed on stdout (stderr is dropped).
 * Usage errors throw a CommanderError instead of exiting.
 */
export async function runCommand(register: (program: Command) => void, args: string[]): Promise<string> {
  const p = new Command('cmac').exitOverride();
  register(p);
  let out = '';
  const write = process.stdout.write.bind(process.stdout);
  const err = process.stderr.write.bind(process.stderr);
  process.stdout.write = ((s: string) => {
    out += s;
    return true;
  }) as typeof process.stdout.write;
  process.stderr.write = (() => true) as typeof process.stderr.write;
  try {
    await p.parseAsync(['node', 'cmac', ...args]);
  } finally {
    process.stdout.write = write;
    process.stderr.write = err;
  }
  return out;
}
