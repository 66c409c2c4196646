// The package's API in Bare (the QVAC SDK worker's runtime): the worker-side primitives, with the
// same names, options, error classes and `.code`s as in Node. Built into dist/bare.js with
// runtime-bare.ts for runtime.ts and addon-bare.ts for platform.cts (scripts/bundle.mjs); the
// `bare` condition of package.json's exports points Bare here. Not here (they need Node's
// process, child_process or IPC): createQvac, ensureServe, stopServe, the registry, requestCleanup
// and the runner lookup — see the README.
export { PidLock, FileLock } from './locks.js';
export type { WaitOptions, PidLockAcquireOptions, FileLockAcquireOptions, PidLockInspection } from './locks.js';
export { retry, singleFlight } from './retry.js';
export type { RetryOptions } from './retry.js';
export {
  QvacError,
  InvalidOptionError,
  LockHeldError,
  LockTimeoutError,
  LockIoError,
  RetryExhaustedError,
  NativeBinaryMissingError,
  QvacManagedModeError,
  UnknownManagedModelError,
  DuplicateManagedModelError,
  MultipleDefaultManagedModelsError
} from './errors.js';
export { computeFleetKey, validateManagedOptions, synthesizeServeConfig } from './managed-options.js';
export type { ManagedModel, ManagedOptions, ServeConfig, ValidatedManagedOptions } from './managed-options.js';
export { spawnSupervised, SupervisedStartError } from './supervisor.js';
export type { SpawnSupervisedOptions, SupervisedExit, SupervisedProcess } from './supervisor.js';
export { installShutdownHandlers, unloadAll, evictExcept } from './shutdown.js';
export type { ShutdownResource, ShutdownLogger, InstallShutdownOptions, ShutdownCoordinator, CleanupReport } from './shutdown.js';
// What the JS host did with the addon's threadsafe functions (src/host/ in the repository): a
// diagnostic that shows which Node-API argument order this host uses and that the workaround is
// in the call path.
export { nodeApiHostReport } from './native.js';
export type { NodeApiHostReport } from './native.js';
