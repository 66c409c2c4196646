// The package's public API: everything users import from 'qvac-managed'.
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
  RetryExhaustedError,
  NativeBinaryMissingError
} from './errors.js';
export { validateManagedOptions, synthesizeServeConfig, computeFleetKey } from './managed-options.js';
export type { ManagedModel, ManagedOptions, ServeConfig, ValidatedManagedOptions } from './managed-options.js';
export { ManagedRegistry, RegistryHandle, listServes, sweepServes } from './registry.js';
export type { ServeRecord, RecordRead, ServeListing, SweepReport, StartFailure, UnverifiedRecord } from './registry.js';
export {
  QvacManagedModeError,
  UnknownManagedModelError,
  DuplicateManagedModelError,
  MultipleDefaultManagedModelsError,
  RegistryUnsafeError,
  RegistryIoError,
  CliNotFoundError,
  ServeSpawnFailedError,
  ServeStartTimeoutError,
  ServeExitedError,
  ServeCrashLoopError,
  ServeMemoryBudgetError,
  PortAllocationFailedError
} from './errors.js';
export { ensureServe, stopServe, ManagedServe, resolveRunnerPath } from './serve.js';
export type { StopServeResult } from './registry.js';
export type {
  ServeExitEvent,
  ServeRespawnEvent,
  ServeOutputEvent,
  ServeEventMap,
  ServeEventName,
  ServeEventListener,
  ServeEventListeners
} from './events.js';
export { resolveRunner, platformId, platformPackageName, asarUnpackedPath } from './host.js';
export type { HostFacts, RunnerLookup } from './platform.cjs';
export type { AttachOptions } from './serve.js';
export { spawnSupervised, SupervisedStartError } from './supervisor.js';
export type { SpawnSupervisedOptions, SupervisedExit, SupervisedProcess } from './supervisor.js';
export { installShutdownHandlers, requestCleanup, unloadAll, evictExcept } from './shutdown.js';
export type {
  ShutdownResource,
  ShutdownLogger,
  InstallShutdownOptions,
  ShutdownCoordinator,
  CleanupReport,
  CleanupResult,
  RequestCleanupOptions
} from './shutdown.js';
export { createQvac, qvac, DEFAULT_API_KEY, DEFAULT_BASE_URL } from './provider/index.js';
export type { QvacOptions, QvacExternalOptions, QvacManagedOptions, QvacProvider, ManagedQvacProvider } from './provider/index.js';
// What the JS host did with the addon's threadsafe functions (src/host/ in the repository): a
// diagnostic that shows which Node-API argument order this host uses and that the workaround is
// in the call path.
export { nodeApiHostReport } from './native.js';
export type { NodeApiHostReport } from './native.js';
