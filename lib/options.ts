// Options objects from plain JavaScript: TypeScript rejects a misspelt key at
// compile time, JavaScript callers get this error at run time instead of the
// option being silently ignored.

/** An options object held a key the function does not know. */
export class OptionsError extends TypeError {
  readonly code = 'CMAC_OPTIONS';
  constructor(
    message: string,
    readonly key: string,
  ) {
    super(message);
    this.name = 'OptionsError';
  }
}

/**
 * Throws an {@link OptionsError} naming the first own key of `opts` that is
 * not in `known` (and listing the known ones). `undefined` / `null` pass.
 */
export function checkOptionKeys(opts: object | undefined | null, known: readonly string[], where: string): void {
  if (opts === undefined || opts === null) return;
  if (typeof opts !== 'object' || Array.isArray(opts))
    throw new OptionsError(`cmac: ${where} options must be an object, got ${Array.isArray(opts) ? 'an array' : typeof opts}`, '');
  for (const k of Object.keys(opts)) {
    if (!known.includes(k)) throw new OptionsError(`cmac: ${where} options: unknown key '${k}'. Known keys: ${known.join(', ')}`, k);
  }
}

/** A list of every key of T, checked at compile time to miss none (`keysOf<T>()([...])`). */
export function keysOf<T>() {
  return <const K extends readonly (keyof T & string)[]>(
    keys: K & ([Exclude<keyof T, K[number]>] extends [never] ? unknown : { missing: Exclude<keyof T, K[number]> }),
  ): K => keys;
}
