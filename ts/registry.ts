// ManagedRegistry: the on-disk registry of managed serves (records, locks, markers, start failures, sweep).
import { homedir } from 'node:os';
import { join } from 'node:path';

import { stringArg } from './args.js';
import { fromNative } from './errors.js';
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
  /** Records of orphaned serves that answered as ours and were stopped. */
  stoppedOrphans: string[];
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

/**
 * `$HOME/.qvac/managed-serves`, as upstream (`os.homedir()`, which is $HOME when set). $HOME is read
 * here, not natively, because Bun's native environment does not follow a runtime change of
 * process.env.HOME. The one place the default registry path is computed.
 */
export function defaultRegistryDir(): string {
  return join(process.env['HOME'] || homedir(), '.qvac', 'managed-serves');
}

function check<T extends { error?: native.NativeError }>(outcome: T): T {
  if (outcome.error) throw fromNative(outcome.error);
  return outcome;
}

/**
 * The registry of managed serves (`~/.qvac/managed-serves` unless `dir` is given), in the
 * on-disk format of `@qvac/ai-sdk-provider@0.7.0`. Errors: REGISTRY_UNSAFE, REGISTRY_IO,
 * LOCK_HELD, LOCK_IO.
 */
export class ManagedRegistry {
  readonly dir: string;

  constructor(dir?: string) {
    stringArg('dir', dir, true);
    this.dir = dir ?? ManagedRegistry.defaultDir();
  }

  /** `$HOME/.qvac/managed-serves`. */
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
    const { removed, keptUntrusted, corrupt, stoppedOrphans } = check(await native.registrySweep(this.dir)).report!;
    return { removed, keptUntrusted, corrupt, stoppedOrphans };
  }

  readRecord(fleetKey: string): RecordRead {
    const r = check(native.registryReadRecord(this.dir, fleetKey)).read!;
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
    const error = native.registryWriteRecord(this.dir, JSON.stringify(record));
    if (error) throw fromNative(error);
  }

  /** One attempt at the fleet's spawn lock; throws `LockHeldError` naming the holder. */
  trySpawnLock(fleetKey: string): RegistryHandle {
    return new RegistryHandle(check(native.registryTrySpawnLock(this.dir, fleetKey)).handle!);
  }

  /** Registers this process as a consumer of the fleet until `release()` or exit. */
  addConsumer(fleetKey: string): RegistryHandle {
    const { handle, id } = check(native.registryAddConsumer(this.dir, fleetKey)).consumer!;
    return new RegistryHandle(handle, id);
  }

  /** Pids of live consumers; `prune` removes markers of dead ones. */
  liveConsumers(fleetKey: string, options: { prune?: boolean } = {}): number[] {
    return check(native.registryLiveConsumers(this.dir, fleetKey, options.prune === true)).pids ?? [];
  }

  readStartFailure(fleetKey: string): StartFailure | null {
    const failure = check(native.registryReadStartFailure(this.dir, fleetKey)).failure;
    return failure ? { ...failure, exitCode: failure.exitCode ?? null, signal: failure.signal ?? null } : null;
  }

  writeStartFailure(fleetKey: string, failure: StartFailure): void {
    const { exitCode, signal, ...rest } = failure;
    const error = native.registryWriteStartFailure(this.dir, fleetKey, {
      ...rest,
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
