// Model-size presets (method.md section 2). The native defaults are the
// `paper` values; presets list only what they change.
import type { ModelConfig } from './model';

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

export const clipShapes: Record<SizePreset, ClipShape> = {
  tiny: { frames: 4, fps: 8, size: 64, audioSeconds: 2, sampleRate: 16000 },
  paper: { frames: 8, fps: 16, size: 112, audioSeconds: 2, sampleRate: 16000 },
};

const tinyWidths: [number, number, number, number] = [16, 32, 64, 128];

/** The model part of a size preset. */
export function modelPreset(preset: SizePreset): ModelConfig {
  if (preset === 'tiny') {
    return {
      visual: { planes: tinyWidths, stemMid: Math.floor((45 * tinyWidths[0]) / 64), lastStride1: true },
      audio: { planes: tinyWidths },
      logmel: { nMels: 64 },
    };
  }
  if (preset === 'paper') return {};
  throw new RangeError(`preset must be 'tiny' or 'paper', got '${String(preset)}'`);
}
