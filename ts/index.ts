export { PidLock, FileLock } from './locks.js';
export type {
  WaitOptions,
  PidLockAcquireOptions,
  FileLockAcquireOptions,
  PidLockInspection
} from './locks.js';
export { retry, singleFlight } from './retry.js';
export type { RetryOptions } from './retry.js';
export {
  QvacError,
  InvalidOptionError,
  LockHeldError,
  LockTimeoutError,
  LockIoError,
  RetryExhaustedError
} from './errors.js';
