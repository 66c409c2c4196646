// ensureServe(): attach to (or start) the shared managed serve for a set of options.

import { millisArg, optionsArg, signalArg, stringArg } from './args.js';
import { withSignal } from './cancel.js';
import './exit.js';
import { InvalidOptionError, fromNative } from './errors.js';
import { ServeEvents, outputEvent, type ServeEventListener, type ServeEventName, type ServeExitEvent } from './events.js';
import { checkOptions, type CheckedOptions, type ManagedOptions } from './managed-options.js';
import * as native from './native.js';
import { resolveRunner } from './platform.cjs';
import { ManagedRegistry, defaultRegistryDir, type StopServeResult } from './registry.js';

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
  /** The registry directory the serve is recorded in. */
  readonly registryDir: string;
  readonly #handle: number;
  readonly #apiKey: string;
  readonly #events: ServeEvents;
  readonly #serveStartTime: string | undefined;
  #watch: number | undefined;
  #exit: ServeExitEvent | undefined;
  #released = false;

  /** @internal Made by `ensureServe`. */
  constructor(attached: native.AttachedServe, registryDir: string, events: ServeEvents) {
    this.fleetKey = attached.fleetKey;
    this.baseURL = attached.baseURL;
    this.port = attached.port;
    this.pid = attached.servePid;
    this.runnerPid = attached.runnerPid;
    this.spawned = attached.spawned;
    this.registryDir = registryDir;
    this.#handle = attached.handle;
    this.#apiKey = attached.apiKey;
    this.#events = events;
    this.#serveStartTime = attached.serveStartTime ?? undefined;
    // The exit watch costs nothing until someone listens for `exit` or `respawn`.
    events.setWatchHook(() => this.#watchExit());
    if (events.has('exit') || events.has('respawn')) this.#watchExit();
  }

  /** A process watch (pidfd, kqueue, process handle) on the serve: `exit` fires as it exits. */
  #watchExit(): void {
    if (this.#watch !== undefined || this.#exit !== undefined || this.#released) return;
    this.#watch = native.watchServeExit(
      { registryDir: this.registryDir, fleetKey: this.fleetKey, servePid: this.pid, serveStartTime: this.#serveStartTime, port: this.port },
      (json: string) => {
        this.#watch = undefined;
        const e = JSON.parse(json) as { servePid: number; port: number; kind: ServeExitEvent['kind']; code?: number | null; signal?: string | null; outputTail?: string; peakBytes?: number };
        this.#exit = { kind: e.kind, code: e.code ?? null, signal: e.signal ?? null, outputTail: e.outputTail ?? '', peakBytes: e.peakBytes ?? null, pid: e.servePid, port: e.port };
        this.#events.emit('exit', this.#exit);
      }
    );
  }

  /** The serve's API key (not enumerable, not in JSON). */
  get apiKey(): string {
    return this.#apiKey;
  }

  get attached(): boolean {
    return native.isLockHeld(this.#handle);
  }

  /** How the serve ended, once its `exit` event fired (watched once an `exit` or `respawn` listener exists). */
  get exit(): ServeExitEvent | undefined {
    return this.#exit;
  }

  /** Adds a listener: `exit` as soon as this serve exits (see `ServeExitEvent`). */
  on<K extends ServeEventName>(name: K, listener: ServeEventListener<K>): this {
    this.#events.on(name, listener);
    return this;
  }

  off<K extends ServeEventName>(name: K, listener: ServeEventListener<K>): this {
    this.#events.off(name, listener);
    return this;
  }

  /** Detaches: removes the marker, so the runner's idle clock can start; no more events. Idempotent. */
  release(): void {
    this.#released = true;
    if (this.#watch !== undefined) native.unwatchServeExit(this.#watch);
    this.#watch = undefined;
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
  return attachServe(checkOptions(options), attachIn);
}

/**
 * `ensureServe` for options already checked (`checkOptions`: the managed provider checks once,
 * then attaches again after a respawn), with the events of an existing emitter (the provider's,
 * which follows its serve across respawns); otherwise one made from `options.on`.
 */
export async function attachServe(options: CheckedOptions, attachIn?: AttachOptions, eventsIn?: ServeEvents): Promise<ManagedServe> {
  const { encoded, signal: optionsSignal, registryDir: optionsRegistryDir, on } = options;
  const events = eventsIn ?? new ServeEvents(on);
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
  const registryDir = attach.registryDir ?? optionsRegistryDir ?? defaultRegistryDir();
  const request: native.EnsureServeRequest = {
    options: encoded,
    runnerPath: resolveRunnerPath(),
    projectDir: attach.projectDir ?? process.cwd(),
    nodePath: process.execPath,
    graceMs,
    registryDir,
    avoidServePid: avoid,
    // The runner and serve get what this process sees as its environment (in Bun,
    // process.env is not the C environment a native spawn would inherit).
    env: Object.entries(process.env).flatMap(([k, v]) => (v === undefined ? [] : [[k, v]]))
  };
  // Output lines only while someone listens (a follower polls the start's output file).
  const onOutput = events.has('output') ? (record: string) => events.emit('output', outputEvent(record)) : undefined;
  const outcome = await withSignal(signal, 'attaching to the managed serve', (token) => native.ensureServe(request, token, onOutput));
  if (outcome.error || !outcome.serve) throw fromNative(outcome.error!);
  return new ManagedServe(outcome.serve, registryDir, events);
}

/**
 * Stops the shared serve (and its runner) of these options' fleet for every process using it,
 * resolving once both are gone. Its runner stops it (SIGTERM, then SIGKILL after the runner's
 * grace); a serve still alive `graceMs` (default 5000) after the request is killed. Consumers
 * still open get a fresh serve on their next request, and an `exit` event of kind `stopped`.
 * SERVE_STOP_FAILED when the runner cannot be proven (nothing is signalled) or survives a kill.
 */
export async function stopServe(options: ManagedOptions, stopIn?: { graceMs?: number; registryDir?: string }): Promise<StopServeResult> {
  const { registryDir: optionsRegistryDir, fleetKey } = checkOptions(options);
  const stop = optionsArg<{ graceMs?: number; registryDir?: string }>('stop', stopIn);
  stringArg('registryDir', stop.registryDir, true);
  return new ManagedRegistry(stop.registryDir ?? optionsRegistryDir).stopFleet(fleetKey, { graceMs: stop.graceMs });
}
