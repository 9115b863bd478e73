import { native, type CpuCacheReport } from './native';

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
  /**
   * libtorch's CPU blocks of >= 64 KiB come from cmac's caching allocator: a training step reuses the
   * memory of the previous one instead of page-faulting it in again (docs/benchmarks.md s6a).
   */
  cpuCache: CpuCacheReport;
}

/**
 * Native memory in use.
 * @example const { models, bytes } = memory();
 */
export function memory(): MemoryReport {
  return { ...native().memory(), rss: process.memoryUsage().rss };
}

/**
 * The most bytes of free CPU blocks the caching allocator keeps for reuse (default: a quarter of physical
 * memory); beyond it a freed block goes back to the system at once. 0 keeps none (every step maps its
 * memory afresh, as plain malloc does for large blocks).
 * @example setCpuCacheLimit(512 * 2 ** 20) // keep at most 512 MiB of free blocks
 */
export function setCpuCacheLimit(bytes: number): void {
  native().setCpuCacheLimit(bytes);
}

/**
 * Gives every free block of the caching allocator back to the system now (disposing of a model does
 * this too); returns the bytes released.
 * @example const freed = releaseCpuCache();
 */
export function releaseCpuCache(): number {
  return native().releaseCpuCache();
}
