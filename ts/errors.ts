// Every error class the package throws, each with a stable `.code`, and the one map from native errors.
import { QvacError } from './error-base.cjs';
import type { NativeError } from './native.js';

export { QvacError, NativeBinaryMissingError } from './error-base.cjs';

/**
 * Base of the managed-mode errors, named and coded as in `@qvac/ai-sdk-provider@0.7.0`, so
 * `instanceof` checks and `.code` switches written for upstream keep working.
 */
export class QvacManagedModeError extends QvacError {}

/** An option had a bad value; nothing was spawned or written. `option` names it. */
export class InvalidOptionError extends QvacManagedModeError {
  readonly option: string | undefined;
  constructor(message: string, option?: string) {
    super('INVALID_OPTION', message);
    this.option = option;
  }

  /** The message core writes for the same mistake: "invalid option `x`: got y; expected z". */
  static because(option: string, received: string, expected: string): InvalidOptionError {
    return new InvalidOptionError(`invalid option \`${option}\`: got ${received}; expected ${expected}`, option);
  }
}

/** `models` is empty or names something that is neither an SDK constant nor a catalog id. */
export class UnknownManagedModelError extends QvacManagedModeError {
  readonly unknownModels: string[];
  constructor(message: string, unknownModels: string[]) {
    super('UNKNOWN_MODEL', message);
    this.unknownModels = unknownModels;
  }
}

/** A model is listed twice. */
export class DuplicateManagedModelError extends QvacManagedModeError {
  readonly duplicateModels: string[];
  constructor(message: string, duplicateModels: string[]) {
    super('DUPLICATE_MODEL', message);
    this.duplicateModels = duplicateModels;
  }
}

/** More than one model says `default: true`. */
export class MultipleDefaultManagedModelsError extends QvacManagedModeError {
  readonly defaultModels: string[];
  constructor(message: string, defaultModels: string[]) {
    super('MULTIPLE_DEFAULTS', message);
    this.defaultModels = defaultModels;
  }
}

/** A serve start failure; `outputTail` is the serve's last output, when it printed any. */
abstract class ServeStartError extends QvacManagedModeError {
  readonly outputTail: string | undefined;
  constructor(code: string, native: NativeError) {
    super(code, native.message);
    this.outputTail = native.outputTail ?? undefined;
  }
}

/** Neither `serveBinPath`, nor `@qvac/cli` in the project, nor `qvac` on PATH. */
export class CliNotFoundError extends ServeStartError {
  constructor(native: NativeError) {
    super('CLI_NOT_FOUND', native);
  }
}

/** The serve (or its runner) could not be spawned. */
export class ServeSpawnFailedError extends ServeStartError {
  constructor(native: NativeError) {
    super('SERVE_SPAWN_FAILED', native);
  }
}

/** The serve did not answer its health check within `serveStartTimeout`; it was killed. */
export class ServeStartTimeoutError extends ServeStartError {
  constructor(native: NativeError) {
    super('SERVE_START_TIMEOUT', native);
  }
}

/** The serve exited before it became healthy. */
export class ServeExitedError extends ServeStartError {
  readonly exitCode: number | null;
  readonly signal: string | null;
  constructor(native: NativeError) {
    super('SERVE_EXITED', native);
    this.exitCode = native.exitCode ?? null;
    this.signal = native.signal ?? null;
  }
}

/** No port could be had (a pinned `servePort` in use, or none free). */
export class PortAllocationFailedError extends ServeStartError {
  constructor(native: NativeError) {
    super('PORT_ALLOCATION_FAILED', native);
  }
}

/**
 * The fleet's serve exited unexpectedly after becoming healthy more than `serveMaxRestarts`
 * times within `windowMs`: it is not started again until `retryAfterMs` has passed (or
 * `qvac-managed reset <fleet>`). `outputTail` is the last crash's output.
 */
export class ServeCrashLoopError extends ServeStartError {
  readonly restarts: number;
  readonly windowMs: number;
  readonly retryAfterMs: number;
  constructor(native: NativeError) {
    super('SERVE_CRASH_LOOP', native);
    this.restarts = native.restarts ?? 0;
    this.windowMs = native.windowMs ?? 0;
    this.retryAfterMs = native.retryAfterMs ?? 0;
  }
}

/** A fleet holding memory that a start under a budget could not evict (SERVE_MEMORY_BUDGET). */
export interface FleetMemoryHold {
  fleet: string;
  models: string[];
  rssBytes: number;
  consumers: number;
  connections: number;
  pinned: boolean;
}

/**
 * The fleet's start does not fit the memory budget (`memoryBudget`,
 * `QVAC_MANAGED_MEMORY_BUDGET`) even with every idle fleet evicted, so nothing was evicted and
 * nothing started: `needBytes` (the fleet's last peak, else the estimate from its model files),
 * `budgetBytes`, and `heldBy`, the fleets in use, pinned or starting that hold the rest.
 */
export class ServeMemoryBudgetError extends QvacManagedModeError {
  readonly needBytes: number;
  readonly budgetBytes: number;
  readonly heldBy: FleetMemoryHold[];
  constructor(native: NativeError) {
    super('SERVE_MEMORY_BUDGET', native.message);
    this.needBytes = native.needBytes ?? 0;
    this.budgetBytes = native.budgetBytes ?? 0;
    this.heldBy = (native.heldBy ?? []).map((f) => ({ ...f }));
  }
}

/** The registry directory exists but is not safe to use (owner, mode, symlink); `path` names it. */
export class RegistryUnsafeError extends QvacError {
  readonly path: string;
  constructor(native: NativeError) {
    super('REGISTRY_UNSAFE', native.message);
    this.path = native.path ?? '';
  }
}

/** A registry file or directory could not be read or written. */
export class RegistryIoError extends QvacError {
  readonly path: string;
  constructor(native: NativeError) {
    super('REGISTRY_IO', native.message);
    this.path = native.path ?? '';
  }
}

/** A lock is held by another process (or by another handle in this one). */
export class LockHeldError extends QvacError {
  readonly path: string;
  readonly holderPid: number | null;
  readonly holderAlive: boolean;
  readonly attempts: number;
  readonly elapsedMs: number;
  constructor(native: NativeError) {
    super('LOCK_HELD', native.message);
    this.path = native.path ?? '';
    this.holderPid = native.holderPid ?? null;
    this.holderAlive = native.holderAlive ?? false;
    this.attempts = native.attempts ?? 1;
    this.elapsedMs = native.elapsedMs ?? 0;
  }
}

/** Waiting for a lock ran out of attempts or time. */
export class LockTimeoutError extends QvacError {
  readonly path: string;
  readonly holderPid: number | null;
  readonly attempts: number;
  readonly elapsedMs: number;
  constructor(native: NativeError) {
    super('LOCK_TIMEOUT', native.message);
    this.path = native.path ?? '';
    this.holderPid = native.holderPid ?? null;
    this.attempts = native.attempts ?? 0;
    this.elapsedMs = native.elapsedMs ?? 0;
  }
}

/** The lock file could not be created, read or removed (permissions, read-only disk, ...). */
export class LockIoError extends QvacError {
  readonly path: string;
  constructor(native: NativeError) {
    super('LOCK_IO', native.message);
    this.path = native.path ?? '';
  }
}

/** `retry()` spent its attempts or deadline; `cause` is the last attempt's error. */
export class RetryExhaustedError extends QvacError {
  readonly attempts: number;
  readonly elapsedMs: number;
  constructor(attempts: number, elapsedMs: number, cause: unknown) {
    const last = cause instanceof Error ? cause.message : String(cause);
    super(
      'RETRY_EXHAUSTED',
      `gave up after ${attempts} attempts over ${Math.round(elapsedMs)} ms; last error: ${last}`,
      { cause }
    );
    this.attempts = attempts;
    this.elapsedMs = elapsedMs;
  }
}

/**
 * The standard AbortError (a DOMException), as fetch and timers reject with. Bare has no
 * DOMException: there it is an Error named `AbortError` with `.code` `ABORT_ERR`, which is what
 * bare-abort-controller's own aborts look like.
 */
export function abortError(message: string): DOMException {
  if (typeof DOMException === 'function') return new DOMException(message, 'AbortError');
  return Object.assign(new Error(message), { name: 'AbortError', code: 'ABORT_ERR' }) as unknown as DOMException;
}

/** Turns a native error value into its class. The one place codes become classes. */
export function fromNative(native: NativeError): Error {
  switch (native.code) {
    case 'LOCK_HELD':
      return new LockHeldError(native);
    case 'LOCK_TIMEOUT':
      return new LockTimeoutError(native);
    case 'LOCK_IO':
      return new LockIoError(native);
    case 'INVALID_OPTION':
      return new InvalidOptionError(native.message, native.option ?? undefined);
    case 'UNKNOWN_MODEL':
      return new UnknownManagedModelError(native.message, native.models ?? []);
    case 'DUPLICATE_MODEL':
      return new DuplicateManagedModelError(native.message, native.models ?? []);
    case 'MULTIPLE_DEFAULTS':
      return new MultipleDefaultManagedModelsError(native.message, native.models ?? []);
    case 'CLI_NOT_FOUND':
      return new CliNotFoundError(native);
    case 'SERVE_SPAWN_FAILED':
      return new ServeSpawnFailedError(native);
    case 'SERVE_START_TIMEOUT':
      return new ServeStartTimeoutError(native);
    case 'SERVE_EXITED':
      return new ServeExitedError(native);
    case 'PORT_ALLOCATION_FAILED':
      return new PortAllocationFailedError(native);
    case 'SERVE_CRASH_LOOP':
      return new ServeCrashLoopError(native);
    case 'SERVE_MEMORY_BUDGET':
      return new ServeMemoryBudgetError(native);
    case 'REGISTRY_UNSAFE':
      return new RegistryUnsafeError(native);
    case 'REGISTRY_IO':
      return new RegistryIoError(native);
    case 'SERVE_RECORD_UNTRUSTED':
    case 'SERVE_STOP_FAILED':
    case 'SERVE_STOPPED':
      return new QvacManagedModeError(native.code, native.message);
    case 'ABORT_ERR':
      return abortError(native.message);
    default:
      return new QvacError(native.code, native.message);
  }
}
