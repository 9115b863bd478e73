/** Element types that cross the native boundary. float16 travels as raw bits in a Uint16Array. */
export type DType = 'float32' | 'float64' | 'float16' | 'int64' | 'int32' | 'uint8';

/** The typed array that holds each {@link DType}. */
export interface DTypeArrays {
  float32: Float32Array;
  float64: Float64Array;
  float16: Uint16Array;
  int64: BigInt64Array;
  int32: Int32Array;
  uint8: Uint8Array;
}

/**
 * A tensor as it crosses the native boundary: a typed array in row-major (C)
 * order, its shape, and optionally its dtype (inferred from the array when
 * omitted). Always copied in and out, so callers may reuse the buffer.
 *
 * Without a type argument it is a float32 tensor (what the model's audio input
 * and every output are); {@link AnyTensor} is a tensor of any dtype (state
 * dicts, safetensors files). `shape` may be a readonly array (`as const`).
 *
 * @example
 * const audio: Tensor = { data: new Float32Array(2 * 32000), shape: [2, 32000] };
 * const video: Tensor<'uint8'> = { data: new Uint8Array(2 * 4 * 64 * 64 * 3), shape: [2, 4, 64, 64, 3] as const };
 */
export interface Tensor<D extends DType = 'float32'> {
  data: DTypeArrays[D];
  shape: readonly number[];
  dtype?: D;
}

/** Number of elements a shape describes. */
export function numel(shape: readonly number[]): number {
  return shape.reduce((a, b) => a * b, 1);
}

/** A float32 tensor of zeros (handy for tests and examples). */
export function zeros(shape: readonly number[]): Tensor<'float32'> {
  return { data: new Float32Array(numel(shape)), shape: [...shape], dtype: 'float32' };
}

/** A tensor of any {@link DType} (state dicts, safetensors files, native results of mixed types). */
export type AnyTensor = Tensor<DType>;
