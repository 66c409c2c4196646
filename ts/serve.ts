// ensureServe(): attach to (or start) the shared managed serve for a set of options.

import { millisArg, optionsArg, signalArg, stringArg } from './args.js';
import { withSignal } from './cancel.js';
import './exit.js';
import { InvalidOptionError, fromNative } from './errors.js';
import { splitOptions, type ManagedOptions } from './managed-options.js';
import * as native from './native.js';
import { resolveRunner } from './platform.cjs';
import { defaultRegistryDir } from './registry.js';

/** Where the platform's `qvac-managed` binary is, or NATIVE_BINARY_MISSING (see `resolveRunner`). */
export function resolveRunnerPath(): string {
  return resolveRunner();
}

/** Extra knobs for attaching, mostly for tests and tools. */
export interface AttachOptions {
  /** Registry directory instead of `$QVAC_MANAGED_REGISTRY` or `~/.qvac/managed-serves`. */
  registryDir?: string;
  /**
   * Gives up waiting: the call rejects with the signal's reason and this process's marker is
   * removed. A start other consumers wait on is not cancelled.
   */
  signal?: AbortSignal;
  /** SIGTERM-to-SIGKILL grace the runner uses when stopping the serve (default 5000 ms). */
  graceMs?: number;
  /** Where to look for `node_modules/@qvac/cli` (default: the working directory). */
  projectDir?: string;
  /** A serve pid this process just failed to reach (connection refused): never attach to it again. */
  avoidServePid?: number;
}

/** This process's attachment to a managed serve. `release()` removes its consumer marker. */
export class ManagedServe {
  readonly fleetKey: string;
  readonly baseURL: string;
  readonly port: number;
  readonly pid: number;
  readonly runnerPid: number;
  /** True when this call started the serve. */
  readonly spawned: boolean;
  readonly #handle: number;
  readonly #apiKey: string;

  constructor(attached: native.AttachedServe) {
    this.fleetKey = attached.fleetKey;
    this.baseURL = attached.baseURL;
    this.port = attached.port;
    this.pid = attached.servePid;
    this.runnerPid = attached.runnerPid;
    this.spawned = attached.spawned;
    this.#handle = attached.handle;
    this.#apiKey = attached.apiKey;
  }

  /** The serve's API key (not enumerable, not in JSON). */
  get apiKey(): string {
    return this.#apiKey;
  }

  get attached(): boolean {
    return native.isLockHeld(this.#handle);
  }

  /** Detaches: removes the marker, so the runner's idle clock can start. Idempotent. */
  release(): void {
    native.releaseLock(this.#handle);
  }
}

/**
 * Attaches to the live serve for these options (shared across processes by fleet key), or
 * starts one through a detached `qvac-managed` runner. Bad options reject before anything is
 * spawned or written. Start failures reject with the serve's code (CLI_NOT_FOUND,
 * SERVE_SPAWN_FAILED, SERVE_EXITED, SERVE_START_TIMEOUT, PORT_ALLOCATION_FAILED) and output.
 * `registryDir` and `signal` may be given in either argument (`attach` wins).
 */
export async function ensureServe(options: ManagedOptions, attachIn?: AttachOptions): Promise<ManagedServe> {
  const { encoded, signal: optionsSignal, registryDir: optionsRegistryDir } = splitOptions(options);
  const attach = optionsArg<AttachOptions>('attach', attachIn);
  signalArg('signal', attach.signal);
  stringArg('registryDir', attach.registryDir, true);
  stringArg('projectDir', attach.projectDir, true);
  const graceMs = attach.graceMs === undefined ? undefined : millisArg('graceMs', attach.graceMs, 0);
  const avoid = attach.avoidServePid;
  if (avoid !== undefined && !(Number.isInteger(avoid) && avoid > 0 && avoid <= 0x7fffffff)) {
    throw InvalidOptionError.because('avoidServePid', String(avoid), 'a process id (a whole number from 1 to 2147483647)');
  }
  const signal = attach.signal ?? optionsSignal;
  const precheck = native.validateManagedOptions(encoded);
  if (precheck.error) throw fromNative(precheck.error);
  const request: native.EnsureServeRequest = {
    options: encoded,
    runnerPath: resolveRunnerPath(),
    projectDir: attach.projectDir ?? process.cwd(),
    nodePath: process.execPath,
    graceMs,
    registryDir: attach.registryDir ?? optionsRegistryDir ?? defaultRegistryDir(),
    avoidServePid: avoid,
    // The runner and serve get what this process sees as its environment (in Bun,
    // process.env is not the C environment a native spawn would inherit).
    env: Object.entries(process.env).flatMap(([k, v]) => (v === undefined ? [] : [[k, v]]))
  };
  const outcome = await withSignal(signal, 'attaching to the managed serve', (token) => native.ensureServe(request, token));
  if (outcome.error || !outcome.serve) throw fromNative(outcome.error!);
  return new ManagedServe(outcome.serve);
}
