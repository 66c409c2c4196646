// PidLock and FileLock: the JS classes over the native locks, with bounded, cancellable waits.
import { booleanArg, optionsArg, received, signalArg } from './args.js';
import { abortReason, withSignal } from './cancel.js';
import './exit.js';
import { InvalidOptionError, fromNative } from './errors.js';
import { checkedRetryOptions } from './retry.js';
import * as native from './native.js';
import type { LockOutcome } from './native.js';

/** Bounds for waiting on a lock. Defaults: 8 attempts, 250 ms base delay, 10 s deadline. */
export interface WaitOptions {
  attempts?: number;
  baseDelayMs?: number;
  maxDelayMs?: number;
  deadlineMs?: number;
  jitter?: number;
}

export interface PidLockAcquireOptions {
  /** `false` (default): one attempt. An object: retry with backoff within these bounds. */
  wait?: false | WaitOptions;
  signal?: AbortSignal;
}

export interface FileLockAcquireOptions extends WaitOptions {
  shared?: boolean;
  signal?: AbortSignal;
}

export interface PidLockInspection {
  /** The pid the file names; `null` for an empty or damaged file. */
  pid: number | null;
  alive: boolean;
  /** True when the lock may be taken: holder provably dead, or damaged file past 30 s. */
  stale: boolean;
}

function checkPath(path: unknown): string {
  if (typeof path !== 'string' || path.length === 0 || path.includes('\0')) {
    throw InvalidOptionError.because('path', received(path), 'a non-empty file path without NUL bytes');
  }
  return path;
}

function handleOf(outcome: LockOutcome): number | null {
  if (outcome.error) throw fromNative(outcome.error);
  return outcome.handle ?? null;
}

/** Shared by both lock kinds: release once, report whether still held. */
abstract class HeldLock {
  readonly path: string;
  #handle: number;

  protected constructor(path: string, handle: number) {
    this.path = path;
    this.#handle = handle;
  }

  /** True until `release()`. */
  get held(): boolean {
    return native.isLockHeld(this.#handle);
  }

  /** Releases the lock. Idempotent. */
  release(): void {
    const error = native.releaseLock(this.#handle);
    if (error) throw fromNative(error);
  }

  [Symbol.dispose](): void {
    this.release();
  }
}

/**
 * A single-instance lock file naming its holder (pid, start time, boot id). Taken over only
 * when the holder is provably dead; see README "PidLock".
 */
export class PidLock extends HeldLock {
  private constructor(path: string, handle: number) {
    super(path, handle);
  }

  /**
   * Takes the lock, or rejects with `LockHeldError` (`.code === 'LOCK_HELD'`). The attempt (which
   * writes and fsyncs the lock file) runs off the JS thread. An aborted `signal` rejects with its
   * reason (an AbortError, or a TimeoutError for `AbortSignal.timeout()`), as fetch does.
   */
  static async acquire(path: string, optionsIn?: PidLockAcquireOptions): Promise<PidLock> {
    const lockPath = checkPath(path);
    const options = optionsArg<PidLockAcquireOptions>('options', optionsIn);
    signalArg('signal', options.signal);
    const wait = (options.wait as unknown) ?? false;
    if (wait === false) {
      if (options.signal?.aborted) throw abortReason(options.signal, `acquiring ${lockPath}`);
      return new PidLock(lockPath, handleOf(await native.pidLockTryAcquire(lockPath)) as number);
    }
    const retry = checkedRetryOptions(optionsArg<WaitOptions>('wait', wait, false, 'false or an object of wait bounds'));
    const outcome = await withSignal(options.signal, `waiting for lock ${lockPath}`, (token) =>
      native.pidLockAcquire(lockPath, retry, token)
    );
    return new PidLock(lockPath, handleOf(outcome) as number);
  }

  /** Who holds the lock at `path`, or `null` when there is no lock file. */
  static inspect(path: string): PidLockInspection | null {
    const outcome = native.pidLockInspect(checkPath(path));
    if (outcome.error) throw fromNative(outcome.error);
    const found = outcome.inspection;
    return found ? { pid: found.pid ?? null, alive: found.alive, stale: found.stale } : null;
  }
}

/** An flock held by an open close-on-exec descriptor; the kernel frees it if we die. */
export class FileLock extends HeldLock {
  readonly shared: boolean;

  private constructor(path: string, handle: number, shared: boolean) {
    super(path, handle);
    this.shared = shared;
  }

  /** Takes the lock if it is free now, else `null`. Never blocks. */
  static tryAcquire(path: string, optionsIn?: { shared?: boolean }): FileLock | null {
    const lockPath = checkPath(path);
    const options = optionsArg<{ shared?: boolean }>('options', optionsIn);
    booleanArg('shared', options.shared);
    const shared = options.shared === true;
    const handle = handleOf(native.fileLockTryAcquire(lockPath, shared));
    return handle === null ? null : new FileLock(lockPath, handle, shared);
  }

  /**
   * Waits for the lock with exponential backoff and jitter, off the JS thread. Rejects with
   * `LockTimeoutError` (`LOCK_TIMEOUT`) when attempts or deadline run out, or as soon as
   * `signal` aborts with its reason (an AbortError, or a TimeoutError for `AbortSignal.timeout()`).
   */
  static async acquire(path: string, optionsIn?: FileLockAcquireOptions): Promise<FileLock> {
    const lockPath = checkPath(path);
    const options = optionsArg<FileLockAcquireOptions>('options', optionsIn);
    booleanArg('shared', options.shared);
    signalArg('signal', options.signal);
    const shared = options.shared === true;
    const retry = checkedRetryOptions(options);
    const outcome = await withSignal(options.signal, `waiting for lock ${lockPath}`, (token) =>
      native.fileLockAcquire(lockPath, shared, retry, token)
    );
    return new FileLock(lockPath, handleOf(outcome) as number, shared);
  }
}
