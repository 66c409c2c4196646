// The shutdown coordinator for SDK workers and Electron main processes, and requestCleanup for parents.
import type { ChildProcess } from 'node:child_process';
import { setTimeout as sleep } from 'node:timers/promises';

import { booleanArg, millisArg, optionalFunctionArg, optionsArg, received } from './args.js';
import { InvalidOptionError } from './errors.js';
import { isMainThread } from './exit.js';
import * as native from './native.js';

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
      process.exit(code);
    }
  };

  const onSignal = (signal: NodeJS.Signals): void => {
    if (shuttingDown) {
      // A second signal during cleanup: stop waiting.
      releaseLock();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    void shutdown(0, signal);
  };
  const onCrash = (origin: 'uncaughtException' | 'unhandledRejection') => (error: unknown): void => {
    logger.error?.(`${origin}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}`);
    if (shuttingDown) {
      releaseLock();
      process.exit(1);
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
        process.exit(1);
      }
    })();
  };
  const onUncaught = onCrash('uncaughtException');
  const onUnhandled = onCrash('unhandledRejection');
  const onDisconnect = (): void => void shutdown(0, 'ipc-disconnect');
  const onMessage = (msg: unknown): void => {
    if (!isShutdownMessage(msg)) return;
    void close().then((report) => {
      if (process.connected) process.send?.({ type: ACK_MESSAGE, ok: report.failed.length === 0, ...report });
    });
  };

  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
  process.on('uncaughtException', onUncaught);
  process.on('unhandledRejection', onUnhandled);
  const withIpc = options.ipc !== false && typeof process.send === 'function';
  if (withIpc) {
    process.on('disconnect', onDisconnect);
    process.on('message', onMessage);
  }

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
      process.off('SIGTERM', onSignal);
      process.off('SIGINT', onSignal);
      process.off('uncaughtException', onUncaught);
      process.off('unhandledRejection', onUnhandled);
      if (withIpc) {
        process.off('disconnect', onDisconnect);
        process.off('message', onMessage);
      }
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

/**
 * Parent side: asks an IPC worker to clean up (`__shutdown__`), waits for its ack, then
 * terminates it (SIGTERM, SIGKILL after `graceMs`; `kill()` on Windows). Without an ack within
 * `timeoutMs` it terminates the worker anyway and says so.
 */
export async function requestCleanup(
  child: ChildProcess,
  options: { timeoutMs?: number; graceMs?: number } = {}
): Promise<CleanupResult> {
  const worker = child as Partial<ChildProcess> | null;
  if (typeof worker !== 'object' || worker === null || typeof worker.kill !== 'function' || typeof worker.once !== 'function') {
    throw InvalidOptionError.because('worker', worker === null ? 'null' : typeof worker, 'a ChildProcess (from fork)');
  }
  optionsArg('options', options);
  const timeoutMs = millisArg('timeoutMs', options.timeoutMs, 10_000);
  const graceMs = millisArg('graceMs', options.graceMs, 3000);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    if (child.exitCode !== null || child.signalCode !== null) resolve({ code: child.exitCode, signal: child.signalCode });
    else child.once('exit', (code, signal) => resolve({ code, signal }));
  });
  let acked = false;
  let report: CleanupReport | undefined;
  let timedOut = false;
  if (child.connected) {
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
    if (process.platform === 'win32') child.kill();
    else child.kill(signal);
  };
  terminate('SIGTERM');
  const ended = await Promise.race([exited, sleep(graceMs, null, { ref: false })]);
  const final = ended ?? (terminate('SIGKILL'), await exited);
  const note = acked
    ? 'worker cleaned up and was terminated'
    : timedOut
      ? `worker did not acknowledge cleanup within ${timeoutMs} ms; terminated it anyway`
      : 'worker had no IPC channel or exited before acknowledging; terminated it';
  return { acked, timedOut, report, code: final.code, signal: final.signal, note };
}
