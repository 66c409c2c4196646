// Managed-mode options: validation, serve config and fleet key, computed natively as upstream does.
import { optionsArg, signalArg, stringArg } from './args.js';
import { encodeValue } from './encode.js';
import { fromNative } from './errors.js';
import { checkListeners, type ServeEventListeners } from './events.js';
import * as native from './native.js';

/** A model as `createQvac({ mode: 'managed', models })` accepts it. */
export type ManagedModel =
  | string
  | { name: string; config?: Record<string, unknown>; preload?: boolean; default?: boolean };

/** The managed-mode options (as upstream 0.7.0). */
export interface ManagedOptions {
  mode?: 'managed';
  models: ManagedModel[];
  servePort?: number;
  serveHost?: string;
  serveStartTimeout?: number;
  serveBinPath?: string;
  reuse?: boolean;
  serveIdleTimeout?: number;
  closeOnParentExit?: boolean;
  headers?: Record<string, string>;
  fetch?: typeof fetch;
  /**
   * Ours: the runner stops a serve as hung when it lives and accepts connections but answers
   * no probe (`GET /v1/models`) for this long, and handles it as a crash (ms; default 60000; 0
   * turns the watchdog off). A serve that answers within it, however slowly, is never stopped.
   */
  serveHangTimeout?: number;
  /**
   * Ours: an established TCP connection to the serve's port (an agent on `baseURL`, from any
   * process) keeps it from being idle; it is reaped `serveIdleTimeout` after both its last
   * consumer and its last connection are gone (default true; false is upstream's rule).
   */
  serveIdleCountsConnections?: boolean;
  /**
   * Ours: a fleet whose serve exits unexpectedly after becoming healthy more than this many
   * times within 60 s is not started again until that window passes (SERVE_CRASH_LOOP;
   * default 5).
   */
  serveMaxRestarts?: number;
  /**
   * Ours, off by default, not in the fleet key: a machine-wide memory budget for every managed
   * serve of this registry, across processes. A start that would exceed it first evicts idle
   * fleets (least recently used, never a pinned one), or fails at once with SERVE_MEMORY_BUDGET.
   * Bytes, a string with a unit (`'12GiB'`, `'512MB'`) or a percentage of physical memory
   * (`'80%'`). Default: `QVAC_MANAGED_MEMORY_BUDGET`, else none. See the README's Memory section.
   */
  memoryBudget?: number | string;
  /** Ours, not in the fleet key: this fleet is never evicted under a memory budget (`qvac-managed unpin` undoes it). */
  pin?: boolean;
  /**
   * Ours, not in the fleet key: a serve whose process tree stays above this for 10 s is stopped
   * by its runner (exit kind `memory`, counted toward the crash-loop cap) and restarted by the
   * next request. The same forms as `memoryBudget`.
   */
  serveMaxMemory?: number | string;
  /** Ours: lifecycle listeners, there before the first start (see `on()`). */
  on?: ServeEventListeners;
  /**
   * Registry directory (ours; not in upstream). Default: `$QVAC_MANAGED_REGISTRY`, else
   * `~/.qvac/managed-serves`. Not part of the fleet key.
   */
  registryDir?: string;
  /**
   * Gives up a (cold) start (ours; not in upstream): rejects with the signal's reason, as fetch
   * does, and removes this process's marker; a start other consumers wait on goes on.
   */
  signal?: AbortSignal;
}

/** The `qvac.config.json` a managed serve is started with. */
export interface ServeConfig {
  serve: {
    models: Record<string, { model: string; preload: boolean; default?: true; config?: Record<string, unknown> }>;
  };
}

/** Options after checking, with defaults applied. */
export interface ValidatedManagedOptions {
  fleetKey: string;
  config: ServeConfig;
  models: string[];
  serveHost: string;
  servePort: number | undefined;
  serveStartTimeout: number;
  serveIdleTimeout: number;
  serveBinPath: string | undefined;
  reuse: boolean;
  closeOnParentExit: boolean;
  serveHangTimeout: number;
  serveIdleCountsConnections: boolean;
  serveMaxRestarts: number;
}

/** The options split into upstream's (encoded for the native checks) and our own, checked. */
export interface SplitOptions {
  /** Upstream's options as tagged JSON (see encode.ts). */
  encoded: string;
  registryDir: string | undefined;
  signal: AbortSignal | undefined;
  on: ServeEventListeners | undefined;
}

/**
 * Checks our own JS-only options (`registryDir`, `signal`, `on`: not upstream's, not in the
 * fleet key) and encodes the rest for the native checks (which also check our `serveHangTimeout`,
 * `serveIdleCountsConnections` and `serveMaxRestarts`). INVALID_OPTION for a non-object.
 */
export function splitOptions(options: unknown): SplitOptions {
  const { registryDir, signal, on, ...upstream } = optionsArg<ManagedOptions>('options', options, false, 'an object');
  stringArg('registryDir', registryDir, true);
  signalArg('signal', signal);
  return { encoded: encodeValue(upstream), registryDir, signal, on: checkListeners(on) };
}

/**
 * Checks everything managed mode accepts and throws a typed error (`.code`: UNKNOWN_MODEL,
 * DUPLICATE_MODEL, MULTIPLE_DEFAULTS, INVALID_OPTION) before anything is spawned or written.
 */
export function validateManagedOptions(options: ManagedOptions): ValidatedManagedOptions {
  const o = nativeCheck(splitOptions(options));
  return {
    fleetKey: o.fleetKey,
    config: JSON.parse(o.configJson) as ServeConfig,
    models: o.models,
    serveHost: o.serveHost,
    servePort: o.servePort ?? undefined,
    serveStartTimeout: o.serveStartTimeoutMs,
    serveIdleTimeout: o.serveIdleTimeoutMs,
    serveBinPath: o.serveBinPath ?? undefined,
    reuse: o.reuse,
    closeOnParentExit: o.closeOnParentExit,
    serveHangTimeout: o.serveHangTimeoutMs,
    serveIdleCountsConnections: o.serveIdleCountsConnections,
    serveMaxRestarts: o.serveMaxRestarts
  };
}

/** Options checked once, all of them (ours and, natively, upstream's): what attaching takes. */
export interface CheckedOptions extends SplitOptions {
  fleetKey: string;
}

/** `validateManagedOptions` without building its result: the split options and the fleet key. */
export function checkOptions(options: unknown): CheckedOptions {
  const split = splitOptions(options);
  return { ...split, fleetKey: nativeCheck(split).fleetKey };
}

function nativeCheck(split: SplitOptions): NonNullable<ReturnType<typeof native.validateManagedOptions>['options']> {
  const outcome = native.validateManagedOptions(split.encoded);
  if (outcome.error || !outcome.options) throw fromNative(outcome.error!);
  return outcome.options;
}

/** The exact `qvac.config.json` object upstream writes for `models`. */
export function synthesizeServeConfig(models: ManagedModel[]): ServeConfig {
  const outcome = native.synthesizeServeConfig(encodeValue(models));
  if (outcome.error || outcome.configJson == null) throw fromNative(outcome.error!);
  return JSON.parse(outcome.configJson) as ServeConfig;
}

/** The fleet key upstream computes for these options (serves with equal keys are shared). */
export function computeFleetKey(options: ManagedOptions): string {
  return validateManagedOptions(options).fleetKey;
}
