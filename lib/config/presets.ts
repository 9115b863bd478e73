// Size presets: everything that differs between `tiny` and `paper`.
// Anything not here takes the schema's defaults (method.md's constants).

/** What a preset fills in (a partial config). */
export type ConfigInput = { [k: string]: unknown };

export const sizePresets: Record<'tiny' | 'paper', ConfigInput> = {
  tiny: {
    model: { visual: { planes: [16, 32, 64, 128], stemMid: 11, lastStride1: true }, audio: { planes: [16, 32, 64, 128] } },
    logmel: { nMels: 64 },
    clip: { frames: 4, fps: 8, size: 64 },
    optim: { lr: 1e-3 },
    data: { source: 'synth', batchSize: 32 },
    train: { steps: 300, checkpointEvery: 100 },
  },
  paper: {
    model: { visual: { planes: [64, 128, 256, 512], stemMid: 45, lastStride1: false }, audio: { planes: [64, 128, 256, 512] } },
    logmel: { nMels: 128 },
    clip: { frames: 8, fps: 16, size: 112 },
    optim: { lr: 2e-4 }, // AVID-CMA's Adam setting (references.md)
    data: { source: 'synth', batchSize: 32 },
    train: { steps: 100000, checkpointEvery: 1000 },
  },
};
