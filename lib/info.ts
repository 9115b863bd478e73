import { native } from './native';

/** What `cmac info` reports: the libtorch build, CUDA and threads. */
export interface CmacInfo {
  addonVersion: string;
  torchVersion: string;
  /** Where the build found libtorch: LIBTORCH | Torch_DIR | CMAKE_PREFIX_PATH | python | system. */
  torchSource: string;
  cudaCompiled: boolean;
  cudaAvailable: boolean;
  cudaDeviceCount: number;
  cudaDevices: string[];
  numThreads: number;
  numInteropThreads: number;
  cxx11Abi: number;
  parallelInfo: string;
  napiVersion: number;
}

/**
 * Facts about the native build and the machine.
 * @example
 * console.log(info().torchVersion); // "1.13.0"
 */
export function info(): CmacInfo {
  return native().info() as unknown as CmacInfo;
}

/**
 * Sets libtorch's intra-op thread count for every thread that runs cmac work.
 * @example setNumThreads(2);
 */
export function setNumThreads(n: number): void {
  native().setNumThreads(n);
}

/** The intra-op thread count cmac applies. */
export function getNumThreads(): number {
  return native().getNumThreads();
}

/** Live native objects and the bytes they hold, for leak checks. */
export interface MemoryReport {
  /** CmacModel objects not yet disposed or collected, across the process. */
  models: number;
  /** Bytes of weights, buffers and optimiser state those models hold. */
  bytes: number;
  /** Native calls in flight. */
  pendingOps: number;
  /** Resident set size of the process. */
  rss: number;
}

/**
 * Native memory in use.
 * @example const { models, bytes } = memory();
 */
export function memory(): MemoryReport {
  return { ...native().memory(), rss: process.memoryUsage().rss };
}
