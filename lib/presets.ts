// Size presets as the model and the data pipeline see them, derived from the
// one source of truth in lib/config (schema defaults + size presets).
import { clipOf, resolveConfig, toModelConfig } from './config';
import type { ModelConfig } from './config';

/** Size presets: `tiny` for CPU tests and the demo, `paper` for R(2+1)D-18 at 8x112x112. */
export type SizePreset = 'tiny' | 'paper';

/** Clip geometry a preset expects from the data pipeline. */
export interface ClipShape {
  frames: number;
  fps: number;
  size: number;
  audioSeconds: number;
  sampleRate: number;
}

/**
 * The clip geometry of a size preset.
 * @example clipShape('tiny') // { frames: 4, fps: 8, size: 64, audioSeconds: 2, sampleRate: 16000 }
 */
export function clipShape(preset: SizePreset): ClipShape {
  return clipOf(resolveConfig({ preset }));
}

/** Clip geometry of both presets. */
export const clipShapes: Record<SizePreset, ClipShape> = { tiny: clipShape('tiny'), paper: clipShape('paper') };

/**
 * The full native model configuration of a size preset (method.md defaults).
 * @example const model = await CmacModel.create({ ...modelPreset('tiny'), seed: 1 });
 */
export function modelPreset(preset: SizePreset): ModelConfig {
  if (preset !== 'tiny' && preset !== 'paper') throw new RangeError(`preset must be 'tiny' or 'paper', got '${String(preset)}'`);
  return toModelConfig(resolveConfig({ preset }));
}
