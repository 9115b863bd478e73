// The finetuning classifier (native/core/classifier.h): a cmac model's
// video encoder, global average pooling and a linear head, trained end to
// end with cross-entropy (method.md section 7, finetune mode).
import { native, NativeClassifier, NativeClassifierStep } from './native';
import { checkEngineConfig, type ModelConfig } from './model';
import { checkOptionKeys, keysOf } from './options';
import type { Tensor } from './tensor';

/** Options of {@link VideoClassifier.create}. */
export interface ClassifierOptions {
  /** Number of classes K (2 or more); labels are 0..K-1. */
  numClasses: number;
  /** A cmac checkpoint (step-N.safetensors) whose visual.* weights start the encoder (default: the random init of config.seed). */
  encoder?: string;
}

const classifierOptionKeys = keysOf<ClassifierOptions>()(['numClasses', 'encoder']);

/** What one finetuning step reports (loss and accuracy of the batch before the update). */
export type ClassifierStepResult = NativeClassifierStep;

/** Labelled clips: video uint8 [N, T, H, W, 3], labels [N] in 0..K-1 (a loader batch fits). */
export interface LabelledBatch {
  video: Tensor<'uint8'>;
  labels: Tensor<'int32'> | Tensor<'int64'>;
}

/**
 * The video encoder of a cmac model (R(2+1)D, `config.visual`) with global
 * average pooling over time and space and a linear head `fc` to K classes,
 * in native memory. `config.optim` is its optimiser (name, momentum,
 * weightDecay, ...); `device` as for CmacModel; it computes in fp32. Its
 * weights (`visual.*`, `fc.weight`, `fc.bias`) load into torchvision's
 * r2plus1d_18 with `fc = Linear(C, K)` once the `visual.` prefix is stripped.
 *
 * @example
 * const clf = await VideoClassifier.create({ ...toModelConfig(config), optim: { name: 'sgd', momentum: 0.9, weightDecay: 1e-4 } },
 *                                          { numClasses: 101, encoder: 'runs/x/checkpoints/step-300.safetensors' });
 * for await (const b of loader) await clf.trainStep({ video: b.video, labels: b.labels! }, { lr: 0.01 });
 * const logits = await clf.predict({ video });   // [N, K] float32
 * clf.dispose();
 */
export class VideoClassifier {
  private constructor(private readonly n: NativeClassifier) {}

  /** Builds the classifier (encoder from `options.encoder` when given, head initialised from `config.seed`). */
  static async create(config: ModelConfig, options: ClassifierOptions): Promise<VideoClassifier> {
    checkEngineConfig(config, 'VideoClassifier.create()');
    checkOptionKeys(options, classifierOptionKeys, 'VideoClassifier.create()');
    return new VideoClassifier(await native().createClassifier(config, options));
  }

  /** One step: forward in training mode (BatchNorm batch statistics), cross-entropy, backward, optimiser. */
  async trainStep(batch: LabelledBatch, options: { lr: number }): Promise<ClassifierStepResult> {
    checkOptionKeys(options, ['lr'], 'VideoClassifier.trainStep()');
    return this.n.trainStep(batch, options);
  }

  /** Logits [N, K] in eval mode (inference only). */
  async predict(batch: { video: Tensor<'uint8'> }): Promise<Tensor<'float32'>> {
    return (await this.n.predict(batch)) as Tensor<'float32'>;
  }

  /** Copies the visual.* weights of a cmac checkpoint into the encoder (the head is kept). */
  async loadEncoder(path: string): Promise<void> {
    return this.n.loadEncoder(path);
  }

  /** Keeps a copy of the current weights in native memory (e.g. the best epoch so far). */
  async snapshot(): Promise<void> {
    return this.n.snapshot();
  }

  /** Puts the weights of the last snapshot() back. */
  async restoreSnapshot(): Promise<void> {
    return this.n.restoreSnapshot();
  }

  /** Writes the weights (visual.*, fc.*) to a safetensors file, atomically. */
  async save(path: string): Promise<void> {
    return this.n.save(path);
  }

  get numClasses(): number {
    return this.n.numClasses;
  }
  get device(): string {
    return this.n.device;
  }
  get numParameters(): number {
    return this.n.numParameters;
  }
  get disposed(): boolean {
    return this.n.disposed;
  }

  /** Frees the native memory now (a finaliser does it later otherwise). Safe to call twice. */
  dispose(): void {
    this.n.dispose();
  }
}
