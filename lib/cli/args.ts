// Option-value parsers shared by every `cmac` command (commander's third
// `.option()` argument). Each names the flag and what it wants in the error,
// which commander prints as "error: option '...' argument '...' is invalid. <message>".
import { InvalidArgumentError } from 'commander';

type Parse<T> = (v: string) => T;

/** A number from a flag value: '' and whitespace are not 0. */
function num(v: string): number {
  return v.trim() === '' ? NaN : Number(v);
}

/** An integer >= 1. */
export function positiveInt(flag: string): Parse<number> {
  return (v) => {
    const n = num(v);
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError(`${flag} must be a positive integer, got '${v}'`);
    return n;
  };
}

/** An integer in min..max (max: no upper bound when left out). */
export function intInRange(flag: string, min: number, max = Number.MAX_SAFE_INTEGER): Parse<number> {
  return (v) => {
    const n = num(v);
    if (!Number.isInteger(n) || n < min || n > max)
      throw new InvalidArgumentError(`${flag} must be an integer in ${min}..${max === Number.MAX_SAFE_INTEGER ? 'inf' : max}, got '${v}'`);
    return n;
  };
}

/** A finite number > 0. */
export function positiveNumber(flag: string): Parse<number> {
  return (v) => {
    const n = num(v);
    if (!Number.isFinite(n) || n <= 0) throw new InvalidArgumentError(`${flag} must be a positive number, got '${v}'`);
    return n;
  };
}

/** A finite number >= min. */
export function numberAtLeast(flag: string, min: number): Parse<number> {
  return (v) => {
    const n = num(v);
    if (!Number.isFinite(n) || n < min) throw new InvalidArgumentError(`${flag} must be a number >= ${min}, got '${v}'`);
    return n;
  };
}

/** A finite number in [min, max]. */
export function numberInRange(flag: string, min: number, max: number): Parse<number> {
  return (v) => {
    const n = num(v);
    if (!Number.isFinite(n) || n < min || n > max)
      throw new InvalidArgumentError(`${flag} must be a number in [${min}, ${max}], got '${v}'`);
    return n;
  };
}

/** A non-negative number of seconds. */
export function seconds(flag: string): Parse<number> {
  return (v) => {
    const n = num(v);
    if (!Number.isFinite(n) || n < 0) throw new InvalidArgumentError(`${flag} must be a non-negative number of seconds, got '${v}'`);
    return n;
  };
}

/** A comma-separated list of positive integers, e.g. `1,2,3`. */
export function positiveIntList(flag: string): Parse<number[]> {
  return (v) => {
    const out = v.split(',').map(num);
    if (out.some((n) => !Number.isInteger(n) || n < 1))
      throw new InvalidArgumentError(`${flag} must be a comma-separated list of positive integers like 1,2,3, got '${v}'`);
    return out;
  };
}

/** One of a fixed set of words. */
export function oneOf<const T extends string>(flag: string, values: readonly T[]): Parse<T> {
  return (v) => {
    if (!(values as readonly string[]).includes(v)) {
      const list = values.length > 1 ? `${values.slice(0, -1).join(', ')} or ${values[values.length - 1]}` : values[0];
      throw new InvalidArgumentError(`${flag} must be ${list}, got '${v}'`);
    }
    return v as T;
  };
}

/** A repeatable flag: each use appends its value (start from `[]`). */
export function collect(v: string, prev: string[]): string[] {
  return [...prev, v];
}

/** Wraps a library check that throws a plain Error into a commander argument error. */
export function fromCheck<T>(check: (v: string) => T): Parse<T> {
  return (v) => {
    try {
      return check(v);
    } catch (e) {
      throw new InvalidArgumentError((e as Error).message);
    }
  };
}
