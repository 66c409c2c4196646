// AbortSignal wiring: a native cancel token per signal, so native waits end the moment JS aborts.
import { abortError } from './errors.js';
import { NativeCancelToken } from './native.js';

/**
 * Runs a native wait with a cancel token that `signal` fires. An already-aborted signal rejects
 * before anything native starts.
 */
export async function withSignal<T>(
  signal: AbortSignal | undefined,
  what: string,
  run: (token: NativeCancelToken) => Promise<T>
): Promise<T> {
  if (signal?.aborted) throw abortError(`${what} was aborted before it started`);
  const token = new NativeCancelToken();
  const onAbort = (): void => token.cancel();
  signal?.addEventListener('abort', onAbort, { once: true });
  try {
    return await run(token);
  } finally {
    signal?.removeEventListener('abort', onAbort);
  }
}
