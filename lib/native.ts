// The only module of lib/ that loads the addon. Loading is lazy, so
// `import 'cmac'` works without it and the first use explains any failure.
import * as fs from 'fs';
import * as path from 'path';
import type { AnyTensor } from './tensor';

/** Where this package lives (dist/ or .test-build/lib/ both resolve here). */
export function packageRoot(): string {
  let dir = __dirname;
  for (let i = 0; i < 5; i++) {
    const pkg = path.join(dir, 'package.json');
    if (fs.existsSync(pkg) && JSON.parse(fs.readFileSync(pkg, 'utf8')).name === 'cmac') return dir;
    dir = path.dirname(dir);
  }
  throw new Error(`cmac: cannot find the package root above ${__dirname}`);
}

/**
 * The stable `code` of every error the native addon throws or rejects with
 * (the list is CMAC_ERROR_CODES in native/addon/bridge.h; the addon exports
 * it as `errorCodes`, and test/addon-errors.test.ts checks this type against
 * it; docs/errors.md says what each means).
 */
export type NativeErrorCode =
  | 'CMAC_BAD_ARGUMENT'
  | 'CMAC_OUT_OF_RANGE'
  | 'CMAC_SHAPE_MISMATCH'
  | 'CMAC_INVALID_VALUE'
  | 'CMAC_IO'
  | 'CMAC_CHECKPOINT_INVALID'
  | 'CMAC_DISPOSED'
  | 'CMAC_UNAVAILABLE'
  | 'CMAC_TORCH_ERROR'
  | 'CMAC_NATIVE_ERROR';

/** An error from the native engine: a TypeError, RangeError or Error whose `code` is a {@link NativeErrorCode}. */
export interface NativeError extends Error {
  code: NativeErrorCode;
}

/** The addon's raw surface (native/addon). lib/ wraps it in typed classes. */
export interface NativeStepResult {
  loss: number;
  lossCon: number;
  lossV: number;
  lossA: number;
  /** In-batch retrieval accuracy read off the L_con logits (both directions; chance 1/B). */
  retrievalAcc: number;
  gradNorm: number;
  timeMs: number;
  lossScale: number;
  stepped: boolean;
  finite: boolean;
}
export interface NativeModel {
  trainStep(batch: object, options?: object): Promise<NativeStepResult>;
  evaluateLoss(batch: object, lambdaScale?: number): Promise<NativeStepResult>;
  embed(batch: object): Promise<Record<string, AnyTensor>>;
  maps(batch: object): Promise<Record<string, AnyTensor>>;
  stateDict(): Promise<Record<string, AnyTensor>>;
  loadStateDict(sd: Record<string, AnyTensor>, strict?: boolean): Promise<void>;
  optimizerState(): Promise<Record<string, AnyTensor>>;
  loadOptimizerState(st: Record<string, AnyTensor>): Promise<void>;
  save(path: string, metadata?: Record<string, string>): Promise<void>;
  load(path: string): Promise<void>;
  to(device: string): Promise<string>;
  train(mode?: boolean): NativeModel;
  eval(): NativeModel;
  dispose(): void;
  anyRank(flag: boolean): Promise<boolean>;
  logmelStats(audio: object): Promise<Record<string, AnyTensor>>;
  setLogmelStats(mean: object, std: object): Promise<void>;
  readonly rank: number;
  readonly worldSize: number;
  readonly training: boolean;
  readonly device: string;
  readonly numParameters: number;
  readonly disposed: boolean;
}
export interface NativeClassifierStep {
  loss: number;
  accuracy: number;
  gradNorm: number;
  timeMs: number;
  finite: boolean;
  step: number;
}
export interface NativeClassifier {
  trainStep(batch: object, options: object): Promise<NativeClassifierStep>;
  predict(batch: object): Promise<AnyTensor>;
  loadEncoder(path: string): Promise<void>;
  snapshot(): Promise<void>;
  restoreSnapshot(): Promise<void>;
  save(path: string): Promise<void>;
  dispose(): void;
  readonly numClasses: number;
  readonly device: string;
  readonly numParameters: number;
  readonly disposed: boolean;
}
/** The caching CPU allocator libtorch allocates through (native/core/cpu_cache.h). */
export interface CpuCacheReport {
  /** Whether it is libtorch's CPU allocator in this process. */
  installed: boolean;
  /** Most bytes of free blocks kept (setCpuCacheLimit; default a quarter of physical memory). */
  limitBytes: number;
  /** Free blocks held for reuse now. */
  cachedBytes: number;
  /** Blocks of >= 64 KiB handed out and not yet freed. */
  inUseBytes: number;
  /** Most cachedBytes + inUseBytes so far. */
  peakBytes: number;
  /** Allocations served from free blocks. */
  hits: number;
  /** Allocations that mapped new memory. */
  misses: number;
  /** Blocks given back to the system. */
  released: number;
}
export interface NativeAddon {
  info(): Record<string, unknown>;
  setNumThreads(n: number): void;
  getNumThreads(): number;
  memory(): { models: number; bytes: number; pendingOps: number; cpuCache: CpuCacheReport };
  setCpuCacheLimit(bytes: number): void;
  releaseCpuCache(): number;
  /** Every NativeErrorCode with what it means (frozen). */
  readonly errorCodes: Readonly<Record<NativeErrorCode, string>>;
  readSafetensors(path: string): Promise<{ tensors: Record<string, AnyTensor>; metadata: Record<string, string> }>;
  writeSafetensors(path: string, tensors: Record<string, AnyTensor>, metadata?: Record<string, string>): Promise<void>;
  createModel(config: object): Promise<NativeModel>;
  createClassifier(config: object, options: object): Promise<NativeClassifier>;
  fitLogisticRegression(
    features: AnyTensor,
    labels: AnyTensor,
    numClasses: number,
    l2: number,
    maxIter?: number,
  ): Promise<{ weight: AnyTensor; bias: AnyTensor; loss: number; iterations: number }>;
}

let cached: NativeAddon | undefined;

/** Loads the addon once (node-gyp-build: build/Release first, then prebuilds/<platform>-<arch>), or throws an error that explains how to fix it. */
export function native(): NativeAddon {
  if (cached) return cached;
  const root = packageRoot();
  // Debian's libtorch computes with OpenMP; OpenBLAS's own thread pool only
  // adds a pthread_atfork handler that deadlocks fork() (every child_process
  // spawn, e.g. ffmpeg) while a step runs on another thread. One BLAS thread
  // means no pool. It must be set before libopenblas loads with the addon.
  if (process.env.CMAC_KEEP_BLAS_THREADS !== '1') {
    process.env.OPENBLAS_NUM_THREADS = '1';
    process.env.GOTO_NUM_THREADS = '1';
  }
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- node-gyp-build has no types
    const load = require('node-gyp-build') as (dir: string) => NativeAddon;
    cached = load(root);
    return cached;
  } catch (err) {
    throw new Error(loadFailure(root, err as Error));
  }
}

function loadFailure(root: string, err: Error): string {
  const plat = `${process.platform}-${process.arch}`;
  const tried = [path.join(root, 'prebuilds', plat), path.join(root, 'build', 'Release'), path.join(root, 'build', 'Debug')].map(
    (p) => `  ${p} ${fs.existsSync(p) ? '(exists)' : '(missing)'}`,
  );
  let prebuild = '';
  try {
    const m = JSON.parse(fs.readFileSync(path.join(root, 'prebuilds', plat, 'cmac.json'), 'utf8'));
    prebuild = `The prebuild was made for libtorch ${m.torchVersion} (${m.torchSource}, ${m.cuda ? 'CUDA' : 'CPU'}), ${m.libav ? 'with' : 'without'} libav; it needs ${(m.needed ?? []).join(' ')}.`;
  } catch {
    /* no prebuild manifest */
  }
  let torch = 'libtorch: not checked';
  let howTo = '';
  try {
    // eslint-disable-next-line @typescript-eslint/no-require-imports -- plain JS, loaded only for the error message
    const ft = require(path.join(root, 'scripts', 'find-torch.js'));
    const t = ft.findTorch();
    torch = t.source
      ? `libtorch: found (${t.source}, ${ft.torchVersion(t) ?? 'version unknown'}) at ${t.cmakeDir}`
      : `libtorch: NOT found; tried ${t.tried.join('; ')}`;
    howTo = ft.HOW_TO_GET_LIBTORCH;
  } catch {
    /* scripts/ may be absent in a trimmed install */
  }
  const missingLib = /lib(torch|c10|av[a-z]+|sw[a-z]+)[^ ]*\.so[.0-9]*/.exec(err.message);
  const checkout = fs.existsSync(path.join(root, 'tsconfig.json'));
  return [
    `cmac: the native addon could not be loaded: ${err.message.split('\n')[0]}`,
    `Tried (node-gyp-build, ${plat}, Node ${process.version}, N-API ${process.versions.napi}, ABI ${process.versions.modules}):`,
    ...tried,
    torch,
    prebuild,
    missingLib ? `The addon was found but ${missingLib[0]} was not: a library it was built against is missing at run time.` : '',
    checkout
      ? 'Fix: in this cmac checkout run `npm run setup` (installs libtorch-dev, ffmpeg, and builds; Debian/Ubuntu), or `npm run build:native`.'
      : 'Fix: `npm rebuild cmac --foreground-scripts` re-runs the install: it takes the prebuild when it was made for the libtorch found, else builds from source (`--build-from-source` forces that).',
    howTo,
  ]
    .filter(Boolean)
    .join('\n');
}
