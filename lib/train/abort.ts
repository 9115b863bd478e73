// Waiting for data that a signal can cut short: the training loop's next
// batch and the log-mel statistics pass both wait on a loader that may be
// stalled (a network share, a FIFO), and an abort must not wait for it.

/**
 * Resolves with `p`'s value, or with `undefined` as soon as `signal` aborts
 * (at once when it already has). `p` keeps running; its rejection is not
 * reported after an abort. Rejects when `p` rejects first.
 */
export async function untilAborted<T>(p: Promise<T>, signal?: AbortSignal): Promise<T | undefined> {
  if (!signal) return p;
  p.catch(() => undefined);
  let onAbort = (): void => undefined;
  const aborted = new Promise<undefined>((resolve) => {
    onAbort = () => resolve(undefined);
    if (signal.aborted) onAbort();
    else signal.addEventListener('abort', onAbort, { once: true });
  });
  try {
    return await Promise.race([p, aborted]);
  } finally {
    signal.removeEventListener('abort', onAbort);
  }
}
