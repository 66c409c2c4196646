// retry() and singleFlight(): the native backoff policy driven from the event loop, never blocking it.
import { sleep } from './runtime.js';

import { functionArg, numberArg, optionalFunctionArg, optionsArg, signalArg } from './args.js';
import { abortReason } from './cancel.js';
import { RetryExhaustedError, fromNative } from './errors.js';
import * as native from './native.js';
import type { WaitOptions } from './locks.js';

export interface RetryOptions extends WaitOptions {
  signal?: AbortSignal;
  /** Return false to stop retrying on this error (it is rethrown as is). Default: retry all. */
  retryIf?: (error: unknown, attempt: number) => boolean;
}

/** The backoff bounds as the native policy takes them; throws INVALID_OPTION for bad values. */
export function checkedRetryOptions(wait: WaitOptions): native.RetryOptions {
  for (const key of ['attempts', 'baseDelayMs', 'maxDelayMs', 'deadlineMs', 'jitter'] as const) numberArg(key, wait[key]);
  const options: native.RetryOptions = {
    attempts: wait.attempts,
    baseDelayMs: wait.baseDelayMs,
    maxDelayMs: wait.maxDelayMs,
    deadlineMs: wait.deadlineMs,
    jitter: wait.jitter
  };
  const invalid = native.checkRetryOptions(options);
  if (invalid) throw fromNative(invalid);
  return options;
}

/**
 * Calls `fn` until it resolves, under the same backoff policy the native code uses (attempts,
 * base delay doubling to a cap, jitter, deadline). Waits on timers, never blocking the event
 * loop. Rejects with `RetryExhaustedError` (cause: the last error) or, on abort, the signal's
 * reason (an AbortError, or a TimeoutError for `AbortSignal.timeout()`).
 */
export async function retry<T>(
  fn: (attempt: number, signal: AbortSignal | undefined) => T | Promise<T>,
  optionsIn?: RetryOptions
): Promise<T> {
  functionArg('fn', fn);
  const options = optionsArg<RetryOptions>('options', optionsIn);
  signalArg('signal', options.signal);
  optionalFunctionArg('retryIf', options.retryIf);
  const policy = checkedRetryOptions(options);
  const { signal, retryIf } = options;
  const backoff = new native.NativeBackoff(policy);
  for (;;) {
    if (signal?.aborted) throw abortReason(signal, 'retry');
    const attempt = backoff.attemptsMade + 1;
    try {
      return await fn(attempt, signal);
    } catch (error) {
      if (retryIf && !retryIf(error, attempt)) throw error;
      const delay = backoff.nextDelayMs();
      if (delay === null) {
        throw new RetryExhaustedError(backoff.attemptsMade, backoff.elapsedMs, error);
      }
      try {
        await sleep(delay, undefined, { signal });
      } catch {
        throw abortReason(signal, 'retry');
      }
    }
  }
}

/**
 * Wraps `fn` so that concurrent callers share one run: while a call is in flight, further
 * calls get the same promise; once it settles, the next call starts a new run.
 */
export function singleFlight<A extends unknown[], T>(
  fn: (...args: A) => Promise<T>
): (...args: A) => Promise<T> {
  functionArg('fn', fn);
  let inFlight: Promise<T> | undefined;
  return (...args: A): Promise<T> => {
    if (inFlight) return inFlight;
    const run = (async () => fn(...args))();
    inFlight = run;
    const clear = (): void => {
      if (inFlight === run) inFlight = undefined;
    };
    run.then(clear, clear);
    return run;
  };
}
