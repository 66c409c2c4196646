// The addon, loaded once by `loadAddon` (platform.cjs: the generated loader's lookup, done once,
// with NATIVE_BINARY_MISSING when the platform package is missing), typed by napi-rs's generated
// index.d.ts. Everything the TS layer does natively goes through this module. The generated
// index.js at the package root loads the same addon the same way; the library does not use it.
import type * as Addon from '../index.js';
import { loadAddon } from './platform.cjs';

export type * from '../index.js';
export type NativeBackoff = Addon.NativeBackoff;
export type NativeCancelToken = Addon.NativeCancelToken;
export type NativeSupervised = Addon.NativeSupervised;
export type NodeApiHostReport = Addon.NodeApiHostReport;

const addon = loadAddon() as typeof Addon;
export const {
  NativeBackoff,
  NativeCancelToken,
  NativeSupervised,
  armSafetyNet,
  checkRetryOptions,
  checkSupervisedOptions,
  disarmSafetyNet,
  ensureServe,
  fileLockAcquire,
  fileLockTryAcquire,
  isLockHeld,
  killEnvSupervised,
  killProcessSupervised,
  nodeApiHostReport,
  pidLockAcquire,
  pidLockInspect,
  pidLockTryAcquire,
  registryAddConsumer,
  registryListServes,
  registryListUnverified,
  registryLiveConsumers,
  registryReadRecord,
  registryReadStartFailure,
  registryStopFleet,
  registrySweep,
  registryTrySpawnLock,
  registryWriteRecord,
  registryWriteStartFailure,
  releaseEnvLocks,
  releaseLock,
  releaseProcessLocks,
  synthesizeServeConfig,
  unwatchServeExit,
  validateManagedOptions,
  watchServeExit
} = addon;
