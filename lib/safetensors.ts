import { native } from './native';
import type { AnyTensor } from './tensor';

/** Contents of a safetensors file. */
export interface SafetensorsFile {
  tensors: Record<string, AnyTensor>;
  metadata: Record<string, string>;
}

/**
 * Reads and validates a safetensors file (every rule of the format; a malformed file is an Error).
 * @example const { tensors } = await readSafetensors('run/ckpt/step-100.safetensors');
 */
export async function readSafetensors(path: string): Promise<SafetensorsFile> {
  return native().readSafetensors(path);
}

/**
 * Writes tensors atomically (temp file, fsync, rename).
 * @example await writeSafetensors('emb.safetensors', { zV: { data, shape: [n, 128] } });
 */
export async function writeSafetensors(
  path: string,
  tensors: Record<string, AnyTensor>,
  metadata: Record<string, string> = {},
): Promise<void> {
  return native().writeSafetensors(path, tensors, metadata);
}
