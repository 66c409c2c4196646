// AbortSignal wiring: a native cancel token per signal, so native waits end the moment JS aborts,
// and the one rule for what an abort rejects with.
import { abortError } from './errors.js';
import { NativeCancelToken, type NativeError } from './native.js';

/**
 * What every abort in this package rejects with: the signal's `reason`, as fetch and
 * `signal.throwIfAborted()` do — an AbortError for `controller.abort()`, a TimeoutError for
 * `AbortSignal.timeout()`, the caller's own value for `abort(reason)` — or an AbortError naming
 * `what` when there is no reason.
 */
export function abortReason(signal: AbortSignal | undefined, what: string): unknown {
  const reason: unknown = signal?.reason;
  return reason !== undefined ? reason : abortError(`${what} was aborted`);
}

/**
 * Runs a native wait with a cancel token that `signal` fires. An already-aborted signal rejects
 * before anything native starts; a wait the token ended (ABORT_ERR) rejects with the signal's
 * reason (see `abortReason`).
 */
export async function withSignal<T extends { error?: NativeError | null }>(
  signal: AbortSignal | undefined,
  what: string,
  run: (token: NativeCancelToken) => Promise<T>
): Promise<T> {
  if (signal?.aborted) throw abortReason(signal, what);
  const token = new NativeCancelToken();
  const onAbort = (): void => token.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    const outcome = await run(token);
    if (outcome.error?.code === 'ABORT_ERR' && signal?.aborted) throw abortReason(signal, what);
    return outcome;
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
