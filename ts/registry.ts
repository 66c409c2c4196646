// ManagedRegistry: the on-disk registry of managed serves (records, locks, markers, start failures, sweep).
import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

import { booleanArg, millisArg, optionsArg, received, stringArg } from './args.js';
import { InvalidOptionError, fromNative } from './errors.js';
import * as native from './native.js';

/** A serve record in upstream's field names, plus our identity fields (optional). */
export interface ServeRecord {
  fleetKey: string;
  apiKey: string;
  servePid: number;
  runnerPid: number;
  port: number;
  host: string;
  baseURL: string;
  configPath: string;
  startedAt: string;
  idleTimeoutMs: number;
  serveStartTime?: number;
  runnerStartTime?: number;
  bootId?: string;
  models?: string[];
}

export type RecordRead =
  | { state: 'missing' }
  | { state: 'corrupt'; reason: string }
  | { state: 'untrusted'; reason: string; record: ServeRecord }
  | { state: 'trusted'; record: ServeRecord };

/** One live serve. */
export interface ServeListing {
  fleetKey: string;
  models: string[];
  baseURL: string;
  host: string;
  port: number;
  servePid: number;
  runnerPid: number;
  /** Live consumer processes. */
  consumers: number;
  startedAt: string;
  idleTimeoutMs: number;
}

export interface SweepReport {
  removed: string[];
  keptUntrusted: string[];
  corrupt: string[];
  /** Records of orphaned serves proven ours (command line, start time, or an answer with their key) and stopped. */
  stoppedOrphans: string[];
  /**
   * Records whose serve still runs but could not be proven ours: never signalled, moved aside to
   * `<key>.<pid>.unverified` (see `listUnverified()`), so their fleet starts afresh.
   */
  movedAside: string[];
}

/** A record moved aside because the serve it names could not be proven ours. */
export interface UnverifiedRecord {
  path: string;
  fleetKey: string;
  /** The pid it names; never signalled by us. */
  servePid: number;
  /** That pid still runs. */
  serveAlive: boolean;
  /** The command that removes the file, once you have looked at the pid. */
  removeWith: string;
}

export interface StartFailure {
  code: string;
  message: string;
  outputTail: string;
  /** SERVE_EXITED: the serve's exit code and the signal that ended it, when known. */
  exitCode?: number | null;
  signal?: string | null;
}

/** A held handle (spawn lock or consumer marker); `release()` is idempotent. */
export class RegistryHandle {
  readonly #handle: number;
  /** For a consumer marker, its file name (`<pid>.<8 hex>`). */
  readonly id: string | undefined;

  constructor(handle: number, id?: string) {
    this.#handle = handle;
    this.id = id;
  }

  get held(): boolean {
    return native.isLockHeld(this.#handle);
  }

  release(): void {
    const error = native.releaseLock(this.#handle);
    if (error) throw fromNative(error);
  }
}

/** The environment variable that moves the default registry (ours; upstream has none). */
export const REGISTRY_ENV = 'QVAC_MANAGED_REGISTRY';

/**
 * `$QVAC_MANAGED_REGISTRY` when set (a relative path is taken from the working directory), else
 * `$HOME/.qvac/managed-serves` as upstream (`os.homedir()`, which is $HOME when set). Read here,
 * not natively, because Bun's native environment does not follow a runtime change of
 * process.env. The one place the TS layer computes the default registry path.
 */
export function defaultRegistryDir(): string {
  const moved = process.env[REGISTRY_ENV];
  if (moved) return resolve(moved);
  return join(process.env['HOME'] || homedir(), '.qvac', 'managed-serves');
}

/** A fleet key names files inside the registry: never a path of its own. */
function fleetKeyArg(fleetKey: unknown): string {
  if (typeof fleetKey !== 'string' || !/^[A-Za-z0-9_-]{1,128}$/.test(fleetKey)) {
    throw InvalidOptionError.because('fleetKey', received(fleetKey), 'a fleet key (letters, digits, "-" and "_")');
  }
  return fleetKey;
}

function check<T extends { error?: native.NativeError }>(outcome: T): T {
  if (outcome.error) throw fromNative(outcome.error);
  return outcome;
}

/** What stopping a fleet did: `stopped` is false when no serve was running for it. */
export interface StopServeResult {
  stopped: boolean;
  pid: number | null;
  runnerPid: number | null;
  /** The serve outlived `graceMs` and was killed. */
  forced: boolean;
}

/** How long a stopped serve gets before it is killed, unless `graceMs` says otherwise. */
const DEFAULT_STOP_GRACE_MS = 5_000;

/**
 * The registry of managed serves (`dir`, else `$QVAC_MANAGED_REGISTRY`, else
 * `~/.qvac/managed-serves`), in the
 * on-disk format of `@qvac/ai-sdk-provider@0.7.0`. Errors: REGISTRY_UNSAFE, REGISTRY_IO,
 * LOCK_HELD, LOCK_IO.
 */
export class ManagedRegistry {
  readonly dir: string;

  constructor(dir?: string) {
    stringArg('dir', dir, true);
    this.dir = dir ?? ManagedRegistry.defaultDir();
  }

  /** `$QVAC_MANAGED_REGISTRY`, else `$HOME/.qvac/managed-serves`. */
  static defaultDir(): string {
    return defaultRegistryDir();
  }

  /** One entry per live serve, ours or upstream's. */
  listServes(): ServeListing[] {
    return check(native.registryListServes(this.dir)).serves ?? [];
  }

  /**
   * Removes what belongs to provably dead serves and consumers, and stops orphaned serves (runner
   * dead, serve answering as ours on its recorded URL with its key), as upstream 0.7.0 sweeps.
   */
  async sweep(): Promise<SweepReport> {
    const { removed, keptUntrusted, corrupt, stoppedOrphans, movedAside } = check(await native.registrySweep(this.dir)).report!;
    return { removed, keptUntrusted, corrupt, stoppedOrphans, movedAside };
  }

  /**
   * Stops the fleet's serve and runner for everyone (see `stopServe`); resolves once both are
   * gone. `{ stopped: false }` when no serve runs for it.
   */
  async stopFleet(fleetKey: string, optionsIn?: { graceMs?: number }): Promise<StopServeResult> {
    const key = fleetKeyArg(fleetKey);
    const options = optionsArg<{ graceMs?: number }>('options', optionsIn);
    const graceMs = millisArg('graceMs', options.graceMs, DEFAULT_STOP_GRACE_MS);
    const r = check(await native.registryStopFleet(this.dir, key, graceMs)).result!;
    return { stopped: r.stopped, pid: r.servePid ?? null, runnerPid: r.runnerPid ?? null, forced: r.forced };
  }

  /** Records moved aside by a sweep or a start (their serve could not be proven ours). */
  listUnverified(): UnverifiedRecord[] {
    return check(native.registryListUnverified(this.dir)).records ?? [];
  }

  readRecord(fleetKey: string): RecordRead {
    const r = check(native.registryReadRecord(this.dir, fleetKeyArg(fleetKey))).read!;
    const record = r.recordJson ? (JSON.parse(r.recordJson) as ServeRecord) : undefined;
    switch (r.state) {
      case 'trusted':
        return { state: 'trusted', record: record! };
      case 'untrusted':
        return { state: 'untrusted', reason: r.reason ?? '', record: record! };
      case 'corrupt':
        return { state: 'corrupt', reason: r.reason ?? '' };
      default:
        return { state: 'missing' };
    }
  }

  /** Writes a record atomically (0600). */
  writeRecord(record: ServeRecord): void {
    optionsArg('record', record, false, 'a serve record object');
    const error = native.registryWriteRecord(this.dir, JSON.stringify(record));
    if (error) throw fromNative(error);
  }

  /** One attempt at the fleet's spawn lock; throws `LockHeldError` naming the holder. */
  trySpawnLock(fleetKey: string): RegistryHandle {
    return new RegistryHandle(check(native.registryTrySpawnLock(this.dir, fleetKeyArg(fleetKey))).handle!);
  }

  /** Registers this process as a consumer of the fleet until `release()` or exit. */
  addConsumer(fleetKey: string): RegistryHandle {
    const { handle, id } = check(native.registryAddConsumer(this.dir, fleetKeyArg(fleetKey))).consumer!;
    return new RegistryHandle(handle, id);
  }

  /** Pids of live consumers; `prune` removes markers of dead ones. */
  liveConsumers(fleetKey: string, optionsIn?: { prune?: boolean }): number[] {
    const key = fleetKeyArg(fleetKey);
    const options = optionsArg<{ prune?: boolean }>('options', optionsIn);
    booleanArg('prune', options.prune);
    return check(native.registryLiveConsumers(this.dir, key, options.prune === true)).pids ?? [];
  }

  readStartFailure(fleetKey: string): StartFailure | null {
    const failure = check(native.registryReadStartFailure(this.dir, fleetKeyArg(fleetKey))).failure;
    return failure ? { ...failure, exitCode: failure.exitCode ?? null, signal: failure.signal ?? null } : null;
  }

  writeStartFailure(fleetKey: string, failure: StartFailure): void {
    const key = fleetKeyArg(fleetKey);
    const { code, message, outputTail, exitCode, signal } = optionsArg<StartFailure>('failure', failure, false, 'a start failure object');
    stringArg('failure.code', code);
    if (typeof message !== 'string') throw InvalidOptionError.because('failure.message', received(message), 'a string');
    if (typeof outputTail !== 'string') throw InvalidOptionError.because('failure.outputTail', received(outputTail), 'a string');
    if (exitCode != null && !(Number.isInteger(exitCode) && Math.abs(exitCode) <= 2147483647)) throw InvalidOptionError.because('failure.exitCode', received(exitCode), 'a whole number or null');
    if (signal != null && typeof signal !== 'string') throw InvalidOptionError.because('failure.signal', received(signal), 'a signal name or null');
    const error = native.registryWriteStartFailure(this.dir, key, {
      code,
      message,
      outputTail,
      exitCode: exitCode ?? undefined,
      signal: signal ?? undefined
    });
    if (error) throw fromNative(error);
  }
}

/** `listServes()` on the default registry. */
export function listServes(): ServeListing[] {
  return new ManagedRegistry().listServes();
}

/** `sweep()` on the default registry. */
export function sweepServes(): Promise<SweepReport> {
  return new ManagedRegistry().sweep();
}
