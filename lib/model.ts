import { z } from 'zod';
import { checkModelConfig } from './config';
import { modelConfigSchema, type ModelConfig } from './config/schema';
import { native, NativeModel, NativeStepResult } from './native';
import { checkOptionKeys, keysOf } from './options';
import type { AnyTensor, Tensor } from './tensor';

export type { LossPreset, ModelConfig } from './config/schema';

/** The key names of a (possibly optional) zod object schema. */
function keysOfSchema(s: z.ZodTypeAny): string[] {
  const inner = s instanceof z.ZodOptional || s instanceof z.ZodDefault ? s._def.innerType : s;
  return inner instanceof z.ZodObject ? Object.keys(inner.shape) : [];
}
// The known keys come from the schema, so a new setting needs no second list.
const modelConfigKeys = Object.keys(modelConfigSchema.shape);
const modelGroupKeys = Object.entries(modelConfigSchema.shape as Record<string, z.ZodTypeAny>)
  .map(([group, s]) => [group, keysOfSchema(s)] as const)
  .filter(([, keys]) => keys.length > 0)
  // attentionPooling is retired: passed through so that the engine's error names its replacement (pooling).
  .map(([group, keys]) => [group, group === 'loss' ? [...keys, 'attentionPooling'] : keys] as const);

/**
 * Checks a {@link ModelConfig} before it reaches the engine: a key it does not
 * have, at the top level or in one of its groups, is an {@link OptionsError}
 * naming it and the known keys (so a misspelt setting from plain JavaScript is
 * never silently a default); a value out of the schema's range is a
 * ConfigError naming the field.
 */
export function checkEngineConfig(config: ModelConfig, where: string): void {
  checkOptionKeys(config, modelConfigKeys, where);
  for (const [group, keys] of modelGroupKeys) {
    const v = (config as Record<string, unknown>)[group];
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) checkOptionKeys(v, keys, `${where} ${group}`);
  }
  checkModelConfig(config, `${where} config`);
}
const stepOptionKeys = keysOf<StepOptions>()(['lr', 'lambdaScale']);

/** A batch of clips: video uint8 [N, T, H, W, 3] and/or audio float32 [N, samples] (16 kHz mono). */
export interface Batch {
  video?: Tensor<'uint8'>;
  audio?: Tensor<'float32'>;
}

/** Everything one training step reports. */
export type StepResult = NativeStepResult;

/** Options of one training step. */
export interface StepOptions {
  /** Learning rate for this step. */
  lr: number;
  /** Multiplies lambda_v and lambda_a: the ramp of method.md section 4, in [0, 1]. */
  lambdaScale?: number;
}

/** Embeddings of a batch: z (normalised, D) and pooled encoder features (C). */
export interface Embeddings {
  zV?: Tensor<'float32'>;
  zA?: Tensor<'float32'>;
  featV?: Tensor<'float32'>;
  featA?: Tensor<'float32'>;
}

/** Attention maps: over regions [N, H', W'] and over frequency bands [N, M]. */
export interface AttentionMaps {
  /** Probabilities: softmax over the regions / bands. */
  alphaV?: Tensor<'float32'>;
  betaV?: Tensor<'float32'>;
  alphaA?: Tensor<'float32'>;
  betaA?: Tensor<'float32'>;
  /** alpha_v's logits g_v(Vbar_n) before the softmax (what the localisation protocols threshold). */
  alphaVLogits?: Tensor<'float32'>;
  /** The cosine map <z_a, v_n> (in [-1, 1]); betaV = softmax(betaVCos / loss.tauT). */
  betaVCos?: Tensor<'float32'>;
  /** alpha_a's logits over the bands. */
  alphaALogits?: Tensor<'float32'>;
  /** The cosine map <z_v, a_m> over the bands; betaA = softmax(betaACos / loss.tauT). */
  betaACos?: Tensor<'float32'>;
}

/** Per-mel-bin statistics of the log-mel (before standardisation), [nMels] each. */
export interface LogMelStats {
  mean: Tensor<'float32'>;
  std: Tensor<'float32'>;
}

/**
 * Both encoders, the heads, the CMAC losses and the optimiser, in native
 * memory. Every heavy call runs off the JS thread and returns a Promise;
 * calls on one model run one at a time in the order made.
 *
 * @example
 * const model = await CmacModel.create({ ...modelPreset('tiny'), seed: 1 });
 * const r = await model.trainStep(batch, { lr: 1e-3 });
 * model.dispose();
 */
export class CmacModel {
  private constructor(private readonly nativeModel: NativeModel) {}

  /** Builds a model (weights initialised from `config.seed`). */
  static async create(config: ModelConfig = {}): Promise<CmacModel> {
    checkEngineConfig(config, 'CmacModel.create()');
    return new CmacModel(await native().createModel(config));
  }

  /** One whole training step: forward, losses, backward, clipping, optimiser (or accumulation). */
  async trainStep(batch: Batch, options: StepOptions): Promise<StepResult> {
    checkOptionKeys(options, stepOptionKeys, 'trainStep()');
    return this.nativeModel.trainStep(batch, options);
  }

  /** Every loss term of a batch in eval mode, without updating anything. */
  async evaluateLoss(batch: Batch, lambdaScale = 1): Promise<StepResult> {
    return this.nativeModel.evaluateLoss(batch, lambdaScale);
  }

  /** Embeddings (eval mode, inference only). Either modality may be omitted. */
  async embed(batch: Batch): Promise<Embeddings> {
    return this.nativeModel.embed(batch) as Promise<Embeddings>;
  }

  /** alpha/beta maps (eval mode). beta needs both modalities. */
  async maps(batch: Batch): Promise<AttentionMaps> {
    return this.nativeModel.maps(batch) as Promise<AttentionMaps>;
  }

  /** Per-bin log-mel mean and std (population, floored at 1e-5) of the clips in `audio` [N, samples], before standardisation. */
  async logmelStats(audio: Tensor<'float32'>): Promise<LogMelStats> {
    const r = await this.nativeModel.logmelStats(audio);
    return { mean: r.mean as Tensor<'float32'>, std: r.std as Tensor<'float32'> };
  }

  /** Sets the front end's per-bin standardisation (the weights logmel.mean / logmel.std, so checkpoints keep it). */
  async setLogmelStats(stats: LogMelStats): Promise<void> {
    return this.nativeModel.setLogmelStats(stats.mean, stats.std);
  }

  /** Weights with torchvision key names under visual./audio./heads./logmel. (copies). */
  async stateDict(): Promise<Record<string, AnyTensor>> {
    return this.nativeModel.stateDict();
  }

  /** Loads weights; with strict (default) every name and shape must match, and nothing changes on error. */
  async loadStateDict(stateDict: Record<string, AnyTensor>, strict = true): Promise<void> {
    return this.nativeModel.loadStateDict(stateDict, strict);
  }

  /** Optimiser state (optim.*) and the negatives queue (queue.*). */
  async optimizerState(): Promise<Record<string, AnyTensor>> {
    return this.nativeModel.optimizerState();
  }

  /** Restores what optimizerState() returned. */
  async loadOptimizerState(state: Record<string, AnyTensor>): Promise<void> {
    return this.nativeModel.loadOptimizerState(state);
  }

  /** Writes weights + optimiser state to one safetensors file, atomically. */
  async save(path: string, metadata: Record<string, string> = {}): Promise<void> {
    return this.nativeModel.save(path, metadata);
  }

  /** Reads a safetensors file written by save() (optimiser state too when present). */
  async load(path: string): Promise<void> {
    return this.nativeModel.load(path);
  }

  /** Moves the model (and optimiser state) to a device: cpu | cuda | cuda:N | auto. */
  async to(device: string): Promise<string> {
    return this.nativeModel.to(device);
  }

  /** BatchNorm in training mode for trainStep (the default). */
  train(mode = true): this {
    this.nativeModel.train(mode);
    return this;
  }

  /** BatchNorm in eval mode for trainStep (embed and maps always use eval mode). */
  eval(): this {
    this.nativeModel.eval();
    return this;
  }

  get training(): boolean {
    return this.nativeModel.training;
  }
  get device(): string {
    return this.nativeModel.device;
  }
  get numParameters(): number {
    return this.nativeModel.numParameters;
  }
  get disposed(): boolean {
    return this.nativeModel.disposed;
  }
  /** This process's rank and the number of ranks (0 and 1 without dist). */
  get rank(): number {
    return this.nativeModel.rank;
  }
  get worldSize(): number {
    return this.nativeModel.worldSize;
  }

  /** True on every rank when any rank passes true (a collective: every rank must call it). */
  async anyRank(flag: boolean): Promise<boolean> {
    return this.nativeModel.anyRank(flag);
  }

  /** Frees the native memory now (a finaliser does it later otherwise). Safe to call twice. */
  dispose(): void {
    this.nativeModel.dispose();
  }
}
