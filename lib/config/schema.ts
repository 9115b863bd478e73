// The one typed configuration of a cmac run. Defaults are method.md's
// constants; size presets (tiny, paper) fill in what differs by size.
import { z } from 'zod';

const int = (min: number, max: number) => z.number().int().min(min).max(max);
const widths = z.tuple([int(4, 4096), int(4, 4096), int(4, 4096), int(4, 4096)]);
const depths = z.tuple([int(1, 64), int(1, 64), int(1, 64), int(1, 64)]);

export const lossPresetNames = ['xmodal', 'xmodal+within', 'cmac-v', 'cmac-a', 'cmac'] as const;
/** The five loss presets of method.md section 5. */
export type LossPreset = (typeof lossPresetNames)[number];

// Each section once, as a named schema: the run config (configSchema) and the
// native engine's view of it (modelConfigSchema) are both built from these.
/**
 * The memory layout an encoder computes in (speed only: same weights, same checkpoints, results equal to float
 * rounding). auto: channels-last on CPU at one intra-op thread (oneDNN's NHWC convolutions, ~10% faster), contiguous
 * otherwise (libtorch 1.13's channels-last BatchNorm gains nothing from more threads); docs/benchmarks.md.
 */
const layoutSchema = z.enum(['auto', 'channels-last', 'contiguous']).default('auto');
const visualSchema = z
  .object({
    planes: widths,
    blocks: depths.default([2, 2, 2, 2]),
    stemMid: int(1, 4096),
    lastStride1: z.boolean(),
    layout: layoutSchema,
  })
  .strict();
const audioSchema = z.object({ planes: widths, blocks: depths.default([2, 2, 2, 2]), layout: layoutSchema }).strict();
const seedSchema = int(0, Number.MAX_SAFE_INTEGER);
const deviceSchema = z.string().regex(/^(cpu|auto|cuda(:\d{1,3})?)$/, 'must be cpu, cuda, cuda:N or auto');
const ampSchema = z.enum(['off', 'bf16', 'fp16']);
const embedDimSchema = int(1, 65536);
/** How z is pooled from regions/bands, independent of the loss preset (method.md s5): attention (the scorers g_v, g_a train through L_con in every preset) or mean (global average, the paper-style baseline). */
const poolingSchema = z.enum(['attention', 'mean']);

/** SpecAugment in training steps only (never embed/maps/eval): masks of width U{0..width} mel bins / frames, set to the bin mean; 0 masks: off (the default). */
const specAugmentSchema = z
  .object({
    freqMasks: int(0, 64).default(0),
    freqWidth: int(0, 1024).default(16),
    timeMasks: int(0, 64).default(0),
    timeWidth: int(0, 100000).default(20),
  })
  .strict();

/** Log-mel front end, method.md section 1. */
const logmelSchema = z
  .object({
    sampleRate: int(1000, 192000).default(16000),
    nFft: int(16, 65536).default(1024),
    winLength: int(2, 65536).default(400),
    hopLength: int(1, 65536).default(160),
    nMels: int(4, 1024),
    fMin: z.number().min(0).default(0),
    /** Upper edge of the mel filterbank in Hz; default: sampleRate / 2 (Nyquist), the rule of the native front end too (fMax <= 0 there). */
    fMax: z.number().positive().optional(),
    /** Per-bin standardisation (method.md s1): mean/std per mel bin from this many training clips, computed at the start of a run and kept in the checkpoint (logmel.mean / logmel.std). 0: mean 0 / std 1. */
    statsClips: int(0, 1_000_000).default(256),
    specAugment: specAugmentSchema.default({}),
  })
  .strict();

/** Losses, method.md section 4; `preset` picks a row of the ablation table (section 5). */
const lossSchema = z
  .object({
    preset: z.enum(lossPresetNames).default('cmac'),
    withinModal: z.boolean().optional(),
    lossV: z.boolean().optional(),
    lossA: z.boolean().optional(),
    targetGrad: z.boolean().default(false),
    tau: z.number().positive().default(0.07),
    tauT: z.number().positive().default(0.1),
    lambdaV: z.number().min(0).default(1),
    lambdaA: z.number().min(0).default(1),
    /** lambda ramps linearly from 0 over this share of the steps (the ramp's length). */
    rampFraction: z.number().min(0).max(1).default(0.1),
    /** The step the ramp starts at, or 'auto': the step after the first whose in-batch retrieval accuracy (read off the L_con logits) reaches rampThreshold. */
    rampStart: z.union([z.literal('auto'), int(0, 1e9)]).default(0),
    /** rampStart 'auto': the in-batch retrieval accuracy (0..1; chance is 1/batchSize) that starts the ramp (docs/method.md s4 gives a measured curve). */
    rampThreshold: z.number().min(0).max(1).default(0.2),
    queueSize: int(0, 1 << 20).default(0),
  })
  .strict();

const optimSchema = z
  .object({
    name: z.enum(['sgd', 'adam', 'adamw']).default('adam'),
    lr: z.number().positive(),
    weightDecay: z.number().min(0).default(1e-5),
    momentum: z.number().min(0).max(1).default(0.9),
    nesterov: z.boolean().default(false),
    beta1: z.number().min(0).lt(1).default(0.9),
    beta2: z.number().min(0).lt(1).default(0.999),
    eps: z.number().positive().default(1e-8),
    schedule: z.enum(['cosine', 'constant']).default('cosine'),
    /** Linear warmup over this share of the steps. */
    warmupFraction: z.number().min(0).max(1).default(0.05),
    /** Cosine decays to lr * minLrFraction. */
    minLrFraction: z.number().min(0).max(1).default(0),
    clipGradNorm: z.number().min(0).default(0),
    accumulate: int(1, 4096).default(1),
  })
  .strict();

/** Data parallelism across processes (ranks from WORLD_SIZE/RANK/MASTER_ADDR/MASTER_PORT, set by `cmac train --nproc N` or torchrun). */
const distSchema = z
  .object({
    /** L_con negatives from every rank (all_gather with gradient), so negatives grow with the world size. */
    gatherNegatives: z.boolean().default(false),
    /** BatchNorm statistics: per-rank (each rank's batch) or frozen (running statistics, eval mode). */
    batchNorm: z.enum(['per-rank', 'frozen']).default('per-rank'),
    timeoutSec: int(1, 86400).default(300),
  })
  .strict();

export const configSchema = z
  .object({
    /** Size preset: tiny (CPU tests, demo) or paper (R(2+1)D-18 at 8x112x112). */
    preset: z.enum(['tiny', 'paper']),
    seed: seedSchema.default(0),
    device: deviceSchema.default('cpu'),
    amp: ampSchema.default('off'),
    /** CUDA: let cuDNN time its algorithms for each new shape and keep the fastest (process-wide; fixed-shape steps gain). */
    cudnnBenchmark: z.boolean().default(false),
    /** libtorch intra-op threads (default: all cores). */
    threads: int(1, 1024).optional(),
    model: z
      .object({
        visual: visualSchema,
        audio: audioSchema,
        embedDim: embedDimSchema.default(128),
        pooling: poolingSchema.default('attention'),
      })
      .strict(),
    /** Log-mel front end, method.md section 1 (fMax filled in: sampleRate / 2 unless given). */
    logmel: logmelSchema.transform((l) => ({ ...l, fMax: l.fMax ?? l.sampleRate / 2 })),
    /** Clip geometry fed to the encoders. */
    clip: z
      .object({
        frames: int(1, 1024),
        fps: z.number().positive().max(240),
        size: int(16, 4096),
        audioSeconds: z.number().positive().max(60).default(2),
      })
      .strict(),
    loss: lossSchema.default({}),
    optim: optimSchema,
    data: z
      .object({
        /** A folder of videos, a .csv/.jsonl manifest, a tar shard pattern, or a synthetic dataset folder. */
        source: z.string().min(1),
        batchSize: int(2, 65536),
        decoders: int(1, 64).default(2),
        /** Clip decoder: 'native' (libav in process, `decoders` threads) or 'ffmpeg-cli' (ffmpeg processes); native falls back to the CLI, with one logged line, when the addon lacks libav. */
        decoder: z.enum(['native', 'ffmpeg-cli']).default('native'),
        /** Audio stream to use (index among a file's audio streams); default: the first with the default disposition, else the first. */
        audioStream: int(0, 1023).optional(),
        /** Probe index file (JSON lines keyed by path + size + mtime): a second run over the same files skips probing (docs/data.md). */
        probeIndex: z.string().min(1).optional(),
        prefetchBytes: int(1 << 20, Number.MAX_SAFE_INTEGER).default(512 << 20),
        missingAudio: z.enum(['skip', 'silence']).default('skip'),
        augment: z.boolean().default(true),
        dropLast: z.boolean().default(true),
        /** Cache decoded videos here (sharded binary files) so epochs after the first cut clips from it (docs/data.md). */
        cacheDir: z.string().min(1).optional(),
      })
      .strict(),
    dist: distSchema.default({}),
    train: z
      .object({
        steps: int(1, 1e9),
        logEvery: int(1, 1e9).default(10),
        checkpointEvery: int(1, 1e9).default(100),
        keepLast: int(1, 1000).default(3),
        /** Stop after this many non-finite steps in a row. */
        maxNonFinite: int(1, 1e6).default(5),
        runDir: z.string().min(1).default('runs/cmac'),
        tensorboard: z.boolean().default(false),
      })
      .strict(),
  })
  .strict();

/** A fully resolved configuration (every default filled in). */
export type CmacConfig = z.infer<typeof configSchema>;

/**
 * The native engine's view of a config (CmacModel.create, VideoClassifier.create):
 * the same section schemas without what only the trainer reads (ramp, schedule,
 * lr, statistics clips), specAugment at the top level, every key optional (the
 * engine takes method.md's defaults). toModelConfig() maps a CmacConfig onto it.
 */
export const modelConfigSchema = z
  .object({
    visual: visualSchema.partial(),
    audio: audioSchema.partial(),
    logmel: logmelSchema.omit({ statsClips: true, specAugment: true }).partial(),
    specAugment: specAugmentSchema.partial(),
    embedDim: embedDimSchema,
    pooling: poolingSchema,
    loss: lossSchema.omit({ rampFraction: true, rampStart: true, rampThreshold: true }).partial(),
    optim: optimSchema.omit({ lr: true, schedule: true, warmupFraction: true, minLrFraction: true }).partial(),
    /** cpu | cuda | cuda:N | auto */
    device: deviceSchema,
    /** Mixed precision on CUDA: off | bf16 | fp16 (loss math stays fp32). */
    amp: ampSchema,
    /** CUDA: cuDNN benchmark mode (torch.backends.cudnn.benchmark), process-wide once a CUDA model sets it. */
    cudnnBenchmark: z.boolean(),
    seed: seedSchema,
    /** Join the process group of WORLD_SIZE/RANK/MASTER_ADDR/MASTER_PORT (multi-process data parallel). */
    dist: z
      .object({ enabled: z.boolean() })
      .merge(distSchema.pick({ gatherNegatives: true, timeoutSec: true }))
      .partial()
      .strict(),
  })
  .partial()
  .strict();

/** Model, loss and optimiser settings understood by the native engine. Every field is optional; defaults are method.md's. */
export type ModelConfig = z.input<typeof modelConfigSchema>;
