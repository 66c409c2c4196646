// The shutdown coordinator for SDK workers and Electron main processes, and requestCleanup for parents.
import { booleanArg, millisArg, optionalFunctionArg, optionsArg, received } from './args.js';
import { InvalidOptionError } from './errors.js';
import './exit.js';
import * as native from './native.js';
import {
  exitProcess,
  isMainThread,
  isWindows,
  offProcessEvent,
  onProcessEvent,
  parentChannel,
  sleep,
  type ChildProcess,
  type ProcessEvent
} from './runtime.js';

/** Something to close at shutdown: `close()` or `unload()`, sync or async. */
export interface ShutdownResource {
  name?: string;
  close?(): unknown;
  unload?(): unknown;
}

export interface ShutdownLogger {
  info?(message: string, meta?: Record<string, unknown>): void;
  warn?(message: string, meta?: Record<string, unknown>): void;
  error?(message: string, meta?: Record<string, unknown>): void;
}

export interface InstallShutdownOptions {
  /** Closed in reverse order; a function is called at cleanup time (for late-added resources). */
  resources?: ShutdownResource[] | (() => ShutdownResource[]);
  /** Released on every path, crash included (e.g. a `PidLock`). */
  lock?: { release(): void };
  /**
   * The native net ends the process this long after shutdown begins. Default 3000. Main thread
   * only: in a worker thread, `process.exit()` ends just the worker, and a stuck worker is the
   * main thread's to `terminate()`; a net there would end the whole process.
   */
  safetyNetMs?: number;
  /** Each resource gets this long to close. Default 2000. */
  resourceTimeoutMs?: number;
  /** Shut down when the IPC parent disconnects, and answer `__shutdown__`. Default true. */
  ipc?: boolean;
  /** Called (and awaited, within the safety net) on uncaughtException / unhandledRejection. */
  onCrash?: (error: unknown, origin: 'uncaughtException' | 'unhandledRejection') => unknown;
  /** Where cleanup failures go. Default: warnings and errors on stderr. */
  logger?: ShutdownLogger;
}

export interface CleanupReport {
  closed: string[];
  failed: { name: string; error: string }[];
}

export interface ShutdownCoordinator {
  /** Shutdown began (a signal, crash, disconnect or `shutdown()`). */
  readonly shuttingDown: boolean;
  /** Cleanup ran (possibly as a pre-terminate cleanup, without exiting). */
  readonly cleanupRan: boolean;
  /** Runs cleanup once (resources, then the lock); later calls share its result. */
  close(): Promise<CleanupReport>;
  /** Cleanup, then `process.exit(code)`, under the safety net. */
  shutdown(code?: number, reason?: string): Promise<void>;
  /** Removes the handlers (tests, hot reload). */
  uninstall(): void;
}

const SHUTDOWN_MESSAGE = '__shutdown__';
const ACK_MESSAGE = '__shutdown_ack__';

const isShutdownMessage = (msg: unknown): boolean =>
  msg === SHUTDOWN_MESSAGE || (typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === SHUTDOWN_MESSAGE);

function iterableArg(option: string, value: unknown): void {
  if (typeof (value as { [Symbol.iterator]?: unknown } | null)?.[Symbol.iterator] !== 'function') {
    throw InvalidOptionError.because(option, value === null ? 'null' : typeof value, 'an iterable');
  }
}

const defaultLogger: ShutdownLogger = {
  warn: (m, meta) => console.error(`qvac-managed: ${m}`, meta ?? ''),
  error: (m, meta) => console.error(`qvac-managed: ${m}`, meta ?? '')
};

async function closeOne(resource: ShutdownResource, timeoutMs: number): Promise<void> {
  const close = resource.close ?? resource.unload;
  if (!close) return;
  const timeout = sleep(timeoutMs, 'timeout', { ref: false }).then(() => {
    throw new Error(`did not close within ${timeoutMs} ms`);
  });
  await Promise.race([Promise.resolve().then(() => close.call(resource)), timeout]);
}

/**
 * Installs the worker-side shutdown: crash handlers (exit 1), SIGTERM/SIGINT (exit 0; a second
 * signal exits at once), IPC disconnect, `__shutdown__` pre-terminate cleanup with ack, and a
 * native safety net that ends a stuck exit. Cleanup runs exactly once whatever the triggers;
 * the lock is released on every path.
 */
export function installShutdownHandlers(optionsIn?: InstallShutdownOptions): ShutdownCoordinator {
  const options = optionsArg<InstallShutdownOptions>('options', optionsIn);
  if (options.resources !== undefined && typeof options.resources !== 'function' && !Array.isArray(options.resources)) {
    throw InvalidOptionError.because('resources', typeof options.resources, 'an array of resources or a function returning one');
  }
  if (Array.isArray(options.resources)) {
    const bad = options.resources.findIndex((r) => typeof r !== 'object' || r === null);
    if (bad >= 0) throw InvalidOptionError.because(`resources[${bad}]`, received(options.resources[bad]), 'a resource object with close() or unload()');
  }
  optionalFunctionArg('onCrash', options.onCrash);
  booleanArg('ipc', options.ipc);
  if (options.logger !== undefined) {
    const logger = optionsArg<ShutdownLogger>('logger', options.logger, false, 'a logger object');
    for (const level of ['info', 'warn', 'error'] as const) optionalFunctionArg(`logger.${level}`, logger[level]);
  }
  if (options.lock !== undefined && typeof (options.lock as { release?: unknown } | null)?.release !== 'function') {
    throw InvalidOptionError.because('lock', String(options.lock), 'a lock with a release() method');
  }
  const safetyNetMs = millisArg('safetyNetMs', options.safetyNetMs, 3000);
  const resourceTimeoutMs = millisArg('resourceTimeoutMs', options.resourceTimeoutMs, 2000);
  const logger = options.logger ?? defaultLogger;
  let cleanup: Promise<CleanupReport> | undefined;
  let shuttingDown = false;

  // The net _exits the process: armed from the main thread only (see `safetyNetMs`).
  const armSafetyNet = (code: number): void => {
    if (isMainThread()) native.armSafetyNet(safetyNetMs, code);
  };

  const releaseLock = (): void => {
    try {
      options.lock?.release();
    } catch (err) {
      logger.error?.('releasing the lock failed', { error: String(err) });
    }
  };

  const close = (): Promise<CleanupReport> => {
    cleanup ??= (async () => {
      const list = typeof options.resources === 'function' ? options.resources() : (options.resources ?? []);
      const ordered = [...list].reverse();
      const settled = await Promise.allSettled(ordered.map((r) => closeOne(r, resourceTimeoutMs)));
      const report: CleanupReport = { closed: [], failed: [] };
      settled.forEach((outcome, i) => {
        const name = ordered[i]!.name ?? `resource #${list.length - i}`;
        if (outcome.status === 'fulfilled') report.closed.push(name);
        else {
          const error = outcome.reason instanceof Error ? outcome.reason.message : String(outcome.reason);
          report.failed.push({ name, error });
          logger.warn?.(`closing ${name} failed: ${error}`, { resource: name });
        }
      });
      releaseLock();
      return report;
    })();
    return cleanup;
  };

  const shutdown = async (code = 0, reason = 'shutdown'): Promise<void> => {
    if (shuttingDown) return;
    shuttingDown = true;
    armSafetyNet(code);
    logger.info?.(`shutting down (${reason})`, { code });
    try {
      await close();
    } finally {
      releaseLock();
      exitProcess(code);
    }
  };

  const onSignal = (value: unknown): void => {
    const signal = value as 'SIGTERM' | 'SIGINT';
    if (shuttingDown) {
      // A second signal during cleanup: stop waiting.
      releaseLock();
      exitProcess(signal === 'SIGINT' ? 130 : 143);
    }
    void shutdown(0, signal);
  };
  const onCrash = (origin: 'uncaughtException' | 'unhandledRejection') => (error: unknown): void => {
    logger.error?.(`${origin}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    if (shuttingDown) {
      releaseLock();
      exitProcess(1);
    }
    // A crash is never graceful: exit 1 even if the crash hook or cleanup succeeds.
    shuttingDown = true;
    armSafetyNet(1);
    void (async () => {
      try {
        await options.onCrash?.(error, origin);
      } catch (err) {
        logger.error?.('onCrash failed', { error: String(err) });
      }
      try {
        await close();
      } finally {
        releaseLock();
        exitProcess(1);
      }
    })();
  };
  const onUncaught = onCrash('uncaughtException');
  const onUnhandled = onCrash('unhandledRejection');
  const onDisconnect = (): void => void shutdown(0, 'ipc-disconnect');
  const channel = options.ipc !== false ? parentChannel() : undefined;
  const onMessage = (msg: unknown): void => {
    if (!isShutdownMessage(msg)) return;
    void close().then((report) => {
      if (channel?.connected) channel.send({ type: ACK_MESSAGE, ok: report.failed.length === 0, ...report });
    });
  };

  const listeners: [ProcessEvent, (value: unknown) => void][] = [
    ['SIGTERM', onSignal],
    ['SIGINT', onSignal],
    ['uncaughtException', onUncaught],
    ['unhandledRejection', onUnhandled]
  ];
  for (const [event, listener] of listeners) onProcessEvent(event, listener);
  channel?.on('disconnect', onDisconnect);
  channel?.on('message', onMessage);

  return {
    get shuttingDown() {
      return shuttingDown;
    },
    get cleanupRan() {
      return cleanup !== undefined;
    },
    close,
    shutdown,
    uninstall() {
      for (const [event, listener] of listeners) offProcessEvent(event, listener);
      channel?.off('disconnect', onDisconnect);
      channel?.off('message', onMessage);
    }
  };
}

/** Unloads every model concurrently (allSettled), then waits `settleMs` for native frees. */
export async function unloadAll(
  models: Iterable<{ unload(): unknown }>,
  options: { settleMs?: number } = {}
): Promise<{ unloaded: number; failed: unknown[] }> {
  iterableArg('models', models);
  optionsArg('options', options);
  const settleMs = millisArg('settleMs', options.settleMs, 0);
  const settled = await Promise.allSettled([...models].map(async (m) => m.unload()));
  if (settleMs) await sleep(settleMs);
  const failed = settled.flatMap((s) => (s.status === 'rejected' ? [s.reason] : []));
  return { unloaded: settled.length - failed.length, failed };
}

/** Unloads and removes every model in `loaded` whose key is not in `keep`; returns the evicted keys. */
export async function evictExcept<K>(loaded: Map<K, { unload(): unknown }>, keep: Iterable<K>): Promise<K[]> {
  if (!(loaded instanceof Map)) throw InvalidOptionError.because('loaded', typeof loaded, 'a Map of models');
  iterableArg('keep', keep);
  const kept = new Set(keep);
  const evicted = [...loaded.keys()].filter((k) => !kept.has(k));
  await Promise.allSettled(evicted.map(async (k) => loaded.get(k)!.unload()));
  for (const k of evicted) loaded.delete(k);
  return evicted;
}

export interface CleanupResult {
  /** The worker acknowledged its cleanup. */
  acked: boolean;
  /** The ack did not come within `timeoutMs`; the worker was terminated anyway. */
  timedOut: boolean;
  /** What the worker reported (when it acked). */
  report?: CleanupReport;
  code: number | null;
  signal: NodeJS.Signals | null;
  /** Says what happened, e.g. that the worker was terminated without an ack. */
  note: string;
}

export interface RequestCleanupOptions {
  /** How long to wait for the ack. Default 10000. */
  timeoutMs?: number;
  /** SIGTERM-to-SIGKILL grace once the worker is asked to exit. Default 3000. */
  graceMs?: number;
  /**
   * The caller's own "ask the worker to clean up" for a worker without Node IPC (the QVAC SDK's
   * Bare worker over its own socket, started with `bare-runtime/spawn`): resolves on the worker's
   * ack, with its report (`{ closed, failed }`) if it sent one. Default: `__shutdown__` over IPC.
   */
  request?: () => Promise<unknown>;
}

/**
 * Parent side: asks a worker to clean up — `__shutdown__` over its IPC channel, or the caller's
 * own `request()` — waits for its ack, then terminates it (SIGTERM, SIGKILL after `graceMs`;
 * `kill()` on Windows). Without an ack within `timeoutMs` it terminates the worker anyway and
 * says so.
 */
export async function requestCleanup(child: ChildProcess, options: RequestCleanupOptions = {}): Promise<CleanupResult> {
  const worker = child as Partial<ChildProcess> | null;
  if (typeof worker !== 'object' || worker === null || typeof worker.kill !== 'function' || typeof worker.once !== 'function') {
    throw InvalidOptionError.because('worker', worker === null ? 'null' : typeof worker, 'a ChildProcess (from fork)');
  }
  optionsArg('options', options);
  optionalFunctionArg('request', options.request);
  const timeoutMs = millisArg('timeoutMs', options.timeoutMs, 10_000);
  const graceMs = millisArg('graceMs', options.graceMs, 3000);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let acked = false;
  let report: CleanupReport | undefined;
  let timedOut = false;
  const { request } = options;
  if (request) {
    const ack = Promise.resolve()
      .then(request)
      .then((answer) => {
        const { closed, failed } = (answer ?? {}) as Partial<CleanupReport>;
        if (Array.isArray(closed) && Array.isArray(failed)) report = { closed, failed };
        return 'ack' as const;
      });
    // A request that fails is no ack: the worker is terminated anyway.
    const outcome = await Promise.race([ack.catch(() => 'failed' as const), exited.then(() => 'exit' as const), sleep(timeoutMs, 'timeout' as const, { ref: false })]);
    acked = outcome === 'ack';
    timedOut = outcome === 'timeout';
  } else if (child.connected) {
    const ack = new Promise<'ack'>((resolve) => {
      const onMessage = (msg: unknown): void => {
        if (typeof msg === 'object' && msg !== null && (msg as { type?: unknown }).type === ACK_MESSAGE) {
          child.off('message', onMessage);
          const { closed = [], failed = [] } = msg as Partial<CleanupReport>;
          report = { closed, failed };
          resolve('ack');
        }
      };
      child.on('message', onMessage);
    });
    child.send({ type: SHUTDOWN_MESSAGE });
    const outcome = await Promise.race([ack, exited.then(() => 'exit' as const), sleep(timeoutMs, 'timeout' as const, { ref: false })]);
    acked = outcome === 'ack';
    timedOut = outcome === 'timeout';
  }
  const terminate = (signal: NodeJS.Signals): void => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    if (isWindows()) child.kill();
    else child.kill(signal);
  };
  terminate('SIGTERM');
  const ended = await Promise.race([exited, sleep(graceMs, null, { ref: false })]);
  const final = ended ?? (terminate('SIGKILL'), await exited);
  const note = acked
    ? 'worker cleaned up and was terminated'
    : timedOut
      ? `worker did not acknowledge cleanup within ${timeoutMs} ms; terminated it anyway`
      : request
        ? 'the cleanup request failed or the worker exited before acknowledging; terminated it'
        : 'worker had no IPC channel or exited before acknowledging; terminated it';
  return { acked, timedOut, report, code: final.code, signal: final.signal, note };
}
