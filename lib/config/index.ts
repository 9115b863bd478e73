// Configuration: presets + file + `--set a.b=c` overrides -> one validated,
// fully resolved CmacConfig. Invalid values fail here, before any work,
// naming the field, the value and what is allowed.
import * as fs from 'fs';
import * as path from 'path';
import YAML from 'yaml';
import { z } from 'zod';
import { configSchema, CmacConfig, ModelConfig, modelConfigSchema } from './schema';
import { sizePresets, ConfigInput } from './presets';

export { configSchema, lossPresetNames, modelConfigSchema } from './schema';
export type { CmacConfig, LossPreset, ModelConfig } from './schema';
export type { ConfigInput } from './presets';

type DeepPartial<T> = T extends readonly unknown[] ? T : T extends object ? { [K in keyof T]?: DeepPartial<T[K]> } : T;

/**
 * What resolveConfig and train() take: the schema's input type with every key
 * optional at any depth. A misspelt key in an object literal is a TypeScript
 * error; from plain JavaScript it is a ConfigError naming the key.
 */
export type CmacConfigInput = DeepPartial<z.input<typeof configSchema>>;

/** A configuration that failed validation; `issues` lists every bad field. */
export class ConfigError extends Error {
  /** Stable across versions, for programs that branch on the kind of error. */
  readonly code = 'CMAC_CONFIG';
  constructor(
    public readonly issues: string[],
    source = 'config',
  ) {
    super(`invalid ${source}:\n  ${issues.join('\n  ')}`);
    this.name = 'ConfigError';
  }
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** How deeply a config may nest (objects and arrays); the schema itself needs 3. */
export const maxConfigDepth = 32;

/** The nesting depth of a value (a scalar is 0), found without recursion; stops counting past `limit`. */
function nestingDepth(v: unknown, limit = maxConfigDepth): number {
  let max = 0;
  const stack: Array<[unknown, number]> = [[v, 0]];
  while (stack.length) {
    const [x, d] = stack.pop()!;
    if (typeof x !== 'object' || x === null) continue;
    if (d + 1 > max) max = d + 1;
    if (max > limit) return max;
    for (const c of Object.values(x)) stack.push([c, d + 1]);
  }
  return max;
}

function checkDepth(v: unknown, what: string): void {
  if (nestingDepth(v) > maxConfigDepth)
    throw new ConfigError([`${what} nests deeper than ${maxConfigDepth} levels (the limit for a config); a cmac config needs 3`], 'config');
}

/**
 * Deep merge of plain objects; arrays and scalars in `b` replace those in `a`.
 * Every key lands as an own property, `__proto__` included, so validation
 * reports it as an unknown key and no prototype is ever changed.
 */
export function deepMerge(a: ConfigInput, b: ConfigInput): ConfigInput {
  const out: ConfigInput = { ...a };
  for (const [k, v] of Object.entries(b)) {
    const prev = Object.prototype.hasOwnProperty.call(out, k) ? out[k] : undefined;
    Object.defineProperty(out, k, {
      value: isObject(v) && isObject(prev) ? deepMerge(prev as ConfigInput, v) : v,
      enumerable: true,
      writable: true,
      configurable: true,
    });
  }
  return out;
}

/**
 * Parses one `--set` override `a.b.c=value`; the value is JSON when it parses
 * (numbers, booleans, arrays), a string otherwise.
 * @example parseOverride('optim.lr=1e-3') // { optim: { lr: 0.001 } }
 */
export function parseOverride(s: string): ConfigInput {
  const eq = s.indexOf('=');
  if (eq <= 0) throw new ConfigError([`override '${s}' must look like key.path=value (e.g. optim.lr=1e-3)`], '--set');
  const keys = s.slice(0, eq).trim().split('.');
  if (keys.some((k) => !/^[A-Za-z_][A-Za-z0-9_]*$/.test(k)))
    throw new ConfigError([`override key '${s.slice(0, eq)}' is not a dotted name`], '--set');
  if (keys.length > maxConfigDepth)
    throw new ConfigError(
      [`override key '${s.slice(0, 60)}...' has ${keys.length} parts, more than the nesting limit of ${maxConfigDepth}`],
      '--set',
    );
  const raw = s.slice(eq + 1);
  let value: unknown = raw;
  try {
    value = JSON.parse(raw);
  } catch {
    /* a plain string */
  }
  let out: ConfigInput = { [keys[keys.length - 1]]: value };
  for (let i = keys.length - 2; i >= 0; i--) out = { [keys[i]]: out };
  return out;
}

/** Reads a JSON or YAML config file (by extension); errors name the file. */
export function loadConfigFile(file: string): ConfigInput {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new ConfigError([`cannot read ${file}: ${(e as Error).message}`], 'config file');
  }
  let v: unknown;
  const yaml = /\.ya?ml$/i.test(file);
  const tooDeep = `${file} nests deeper than ${maxConfigDepth} levels (the limit for a config file; a cmac config needs 3)`;
  try {
    v = yaml ? YAML.parse(text) : JSON.parse(text);
  } catch (e) {
    // The YAML parser recurses per level: a file nested thousands deep overflows its stack.
    if (e instanceof RangeError || /Maximum call stack size exceeded/.test((e as Error).message))
      throw new ConfigError([tooDeep], 'config file');
    throw new ConfigError([`${file} is not valid ${yaml ? 'YAML' : 'JSON'}: ${(e as Error).message}`], 'config file');
  }
  if (!isObject(v)) throw new ConfigError([`${file} must hold an object at the top level`], 'config file');
  if (nestingDepth(v) > maxConfigDepth) throw new ConfigError([tooDeep], 'config file');
  return v;
}

function describeIssue(issue: z.ZodIssue, input: ConfigInput): string {
  const where = ['config', ...issue.path].join('.');
  let value: unknown = input;
  for (const k of issue.path) value = isObject(value) || Array.isArray(value) ? (value as Record<string, unknown>)[k as string] : undefined;
  const got = value === undefined ? 'missing' : `got ${JSON.stringify(value)}`;
  switch (issue.code) {
    case 'unrecognized_keys':
      return `${where}: unknown key(s) ${issue.keys.map((k) => `'${k}'`).join(', ')}`;
    case 'invalid_enum_value':
      return `${where}: ${got}; allowed: ${issue.options.map((o) => JSON.stringify(o)).join(', ')}`;
    case 'too_small':
      return `${where}: ${got}; must be ${issue.inclusive ? '>=' : '>'} ${issue.minimum}`;
    case 'too_big':
      return `${where}: ${got}; must be ${issue.inclusive ? '<=' : '<'} ${issue.maximum}`;
    case 'invalid_type':
      return `${where}: ${got}; expected ${issue.expected}`;
    default:
      return `${where}: ${got}; ${issue.message}`;
  }
}

/**
 * Resolves a configuration: size preset (default tiny) <- input <- overrides,
 * validated. Throws ConfigError listing every bad field.
 * @example const cfg = resolveConfig({ preset: 'tiny' }, ['optim.lr=5e-4']);
 */
export function resolveConfig(input: CmacConfigInput = {}, overrides: string[] = []): CmacConfig {
  checkDepth(input, 'the config input');
  let merged = input as ConfigInput;
  for (const o of overrides) merged = deepMerge(merged, parseOverride(o));
  const preset = merged.preset ?? 'tiny';
  if (preset !== 'tiny' && preset !== 'paper')
    throw new ConfigError([`config.preset: got ${JSON.stringify(preset)}; allowed: "tiny", "paper"`]);
  merged = deepMerge(deepMerge(sizePresets[preset], { preset }), merged);
  const oldPooling = isObject(merged.loss) && Object.prototype.hasOwnProperty.call(merged.loss, 'attentionPooling');
  if (oldPooling)
    throw new ConfigError([
      `config.loss.attentionPooling: replaced by model.pooling ("attention" | "mean"), a setting of its own independent of the loss preset. Fix: remove it, or set model.pooling=mean for global average pooling`,
    ]);
  const nonFinite = nonFiniteNumbers(merged); // YAML's .inf / .nan would otherwise pass min/max checks
  if (nonFinite.length) throw new ConfigError(nonFinite.map(([p, v]) => `${p}: got ${v}; must be a finite number`));
  const r = configSchema.safeParse(merged);
  if (!r.success) throw new ConfigError(r.error.issues.map((i) => describeIssue(i, merged)));
  const c = r.data;
  const issues: string[] = [];
  if (c.logmel.winLength > c.logmel.nFft)
    issues.push(`config.logmel.winLength: got ${c.logmel.winLength}; must be <= logmel.nFft (${c.logmel.nFft})`);
  if (c.logmel.fMin >= c.logmel.fMax) issues.push(`config.logmel.fMin: got ${c.logmel.fMin}; must be < logmel.fMax (${c.logmel.fMax})`);
  if (c.logmel.fMax > c.logmel.sampleRate / 2)
    issues.push(`config.logmel.fMax: got ${c.logmel.fMax}; must be <= sampleRate/2 (${c.logmel.sampleRate / 2})`);
  if (c.clip.audioSeconds * c.logmel.sampleRate < c.logmel.nFft)
    issues.push(`config.clip.audioSeconds: got ${c.clip.audioSeconds}; the window must hold at least nFft samples`);
  if (c.data.batchSize < 2) issues.push('config.data.batchSize: must be >= 2 (the contrastive loss needs negatives)');
  if (issues.length) throw new ConfigError(issues);
  return c;
}

/**
 * Checks the ranges of a ModelConfig (what CmacModel.create and
 * VideoClassifier.create take) against the engine schema, built from the same
 * sections as the run config: a direct caller gets the ConfigError naming the
 * field that resolveConfig gives, and the native side keeps only the checks
 * memory safety needs. Unknown keys are left to the caller's key check.
 */
export function checkModelConfig(config: ModelConfig, where = 'model config'): void {
  checkDepth(config, where);
  const nonFinite = nonFiniteNumbers(config);
  if (nonFinite.length)
    throw new ConfigError(
      nonFinite.map(([p, v]) => `${p}: got ${v}; must be a finite number`),
      where,
    );
  const r = modelConfigSchema.safeParse(config);
  const issues = r.success
    ? []
    : r.error.issues.filter((i) => i.code !== 'unrecognized_keys').map((i) => describeIssue(i, config as ConfigInput));
  if (issues.length) throw new ConfigError(issues, where);
}

/** [path, value] of every NaN or infinite number in a config input. */
function nonFiniteNumbers(v: unknown, at = 'config'): Array<[string, number]> {
  if (typeof v === 'number') return Number.isFinite(v) ? [] : [[at, v]];
  if (Array.isArray(v)) return v.flatMap((x, i) => nonFiniteNumbers(x, `${at}[${i}]`));
  if (isObject(v)) return Object.entries(v).flatMap(([k, x]) => nonFiniteNumbers(x, `${at}.${k}`));
  return [];
}

/** The loss switches a config selects: its preset's row (method.md s5), with explicit fields winning. Pooling is model.pooling, not part of a preset. */
export function lossSwitches(c: CmacConfig): { withinModal: boolean; lossV: boolean; lossA: boolean } {
  const p = c.loss.preset;
  const row = {
    withinModal: p !== 'xmodal',
    lossV: p === 'cmac' || p === 'cmac-v',
    lossA: p === 'cmac' || p === 'cmac-a',
  };
  return {
    withinModal: c.loss.withinModal ?? row.withinModal,
    lossV: c.loss.lossV ?? row.lossV,
    lossA: c.loss.lossA ?? row.lossA,
  };
}

/** The native engine's view of a config. */
export function toModelConfig(c: CmacConfig): ModelConfig {
  const { rampFraction: _r, rampStart: _rs, rampThreshold: _rt, preset, ...loss } = c.loss;
  const { lr: _lr, schedule: _s, warmupFraction: _w, minLrFraction: _m, ...optim } = c.optim;
  const { statsClips: _n, specAugment: _sa, ...logmelOptions } = c.logmel;
  return {
    visual: c.model.visual,
    audio: c.model.audio,
    embedDim: c.model.embedDim,
    pooling: c.model.pooling,
    logmel: logmelOptions,
    specAugment: c.logmel.specAugment,
    loss: { ...loss, preset, ...lossSwitches(c) },
    optim,
    device: c.device,
    amp: c.amp,
    cudnnBenchmark: c.cudnnBenchmark,
    seed: c.seed,
    dist: { enabled: false, gatherNegatives: c.dist.gatherNegatives, timeoutSec: c.dist.timeoutSec },
  };
}

/**
 * The clip geometry a config feeds the encoders, as the data loader takes it.
 * @example clipOf(resolveConfig({ preset: 'tiny' })) // { frames: 4, fps: 8, size: 64, audioSeconds: 2, sampleRate: 16000 }
 */
export function clipOf(c: CmacConfig): { frames: number; fps: number; size: number; audioSeconds: number; sampleRate: number } {
  return { ...c.clip, sampleRate: c.logmel.sampleRate };
}

/** Writes the resolved config next to a run (JSON), for reproducibility. */
export function saveConfig(c: CmacConfig, file: string): void {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, JSON.stringify(c, null, 2) + '\n');
}

/** Learning rate at `step` (0-based) of `total`: linear warmup, then cosine or constant. */
export function learningRate(c: CmacConfig, step: number, total: number): number {
  const { lr, warmupFraction, schedule, minLrFraction } = c.optim;
  const warm = Math.floor(warmupFraction * total);
  if (step < warm) return (lr * (step + 1)) / warm;
  if (schedule === 'constant') return lr;
  const t = total > warm ? (step - warm) / Math.max(1, total - warm) : 1;
  const min = lr * minLrFraction;
  return min + 0.5 * (lr - min) * (1 + Math.cos(Math.PI * Math.min(1, t)));
}

/**
 * The lambda ramp of method.md section 4: 0 until the ramp starts, then
 * 0 -> 1 linearly over rampFraction of the steps. `start` is the step the
 * ramp starts at: loss.rampStart, or with rampStart 'auto' the step found
 * by {@link RampStart} (undefined: not yet, so 0).
 */
export function lambdaScale(c: CmacConfig, step: number, total: number, start?: number): number {
  const s = c.loss.rampStart === 'auto' ? start : c.loss.rampStart;
  if (s === undefined || step < s) return 0;
  const ramp = c.loss.rampFraction * total;
  return ramp <= 0 ? 1 : Math.min(1, (step - s) / ramp);
}

/**
 * loss.rampStart 'auto' (method.md s4): the ramp starts at the step after the
 * first whose in-batch retrieval accuracy (a train step's `retrievalAcc`)
 * reaches loss.rampThreshold. `step` survives a resume through the checkpoint.
 * @example
 * const ramp = new RampStart(cfg);
 * const lam = lambdaScale(cfg, step, total, ramp.step);
 * const r = await model.trainStep(batch, { lr, lambdaScale: lam });
 * if (ramp.observe(step, r.retrievalAcc)) log(`ramp starts at step ${ramp.step}`);
 */
export class RampStart {
  constructor(
    private readonly c: CmacConfig,
    public step?: number,
  ) {
    if (c.loss.rampStart !== 'auto') this.step = c.loss.rampStart;
  }

  /** Records a finished step's accuracy; true when this starts the ramp. */
  observe(step: number, retrievalAcc: number): boolean {
    if (this.step !== undefined || this.c.loss.rampStart !== 'auto' || !(retrievalAcc >= this.c.loss.rampThreshold)) return false;
    this.step = step + 1;
    return true;
  }
}
