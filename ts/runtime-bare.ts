// runtime.ts for Bare (the QVAC SDK worker's runtime), over Bare's own modules: `Bare` for the
// process's events and exit, bare-signals for SIGTERM/SIGINT. No `process`, no Node builtins.
// Bare has no IPC channel to a parent (the SDK talks to its worker over its own socket), no
// worker threads here, and its timers cannot be unref'd per promise (each is cleared instead).
import Signal from 'bare-signals';

import { abortError } from './errors.js';
// Types only (erased): the contract this module implements for Bare.
import type { ParentChannel, ProcessEvent } from './runtime.js';

export type { ParentChannel, ProcessEvent };

export function sleep<T>(ms: number, value?: T, options: { signal?: AbortSignal; ref?: boolean } = {}): Promise<T> {
  const { signal, ref = true } = options;
  return new Promise<T>((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason ?? abortError('The operation was aborted'));
    const onAbort = (): void => {
      clearTimeout(timer);
      reject(signal?.reason ?? abortError('The operation was aborted'));
    };
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort);
      resolve(value as T);
    }, ms);
    if (!ref) (timer as unknown as { unref?: () => void }).unref?.();
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/** One bare-signals handle per signal, started while it has listeners, never keeping Bare alive. */
const signals = new Map<string, { handle: Signal; listeners: Set<(value: unknown) => void> }>();

export function onProcessEvent(event: ProcessEvent, listener: (value: unknown) => void): void {
  if (event === 'uncaughtException' || event === 'unhandledRejection') {
    Bare.on(event, listener);
    return;
  }
  let entry = signals.get(event);
  if (!entry) {
    const handle = new Signal(event);
    const listeners = new Set<(value: unknown) => void>();
    handle.on('signal', () => {
      for (const l of [...listeners]) l(event);
    });
    handle.start();
    handle.unref();
    entry = { handle, listeners };
    signals.set(event, entry);
  }
  entry.listeners.add(listener);
}

export function offProcessEvent(event: ProcessEvent, listener: (value: unknown) => void): void {
  if (event === 'uncaughtException' || event === 'unhandledRejection') {
    Bare.off(event, listener);
    return;
  }
  const entry = signals.get(event);
  if (!entry) return;
  entry.listeners.delete(listener);
  if (entry.listeners.size === 0) {
    signals.delete(event);
    void entry.handle.close();
  }
}

export function onceAtExit(listener: () => void): void {
  Bare.once('exit', listener);
}

export function exitProcess(code: number): never {
  Bare.exit(code);
  throw new Error('unreachable: Bare.exit returned');
}

/** A Bare worker is one thread of its own here. */
export const isMainThread = (): boolean => true;

export const isWindows = (): boolean => Bare.platform === 'win32';

/** Bare has no Node IPC: the SDK's worker uses its own socket (see the README). */
export function parentChannel(): ParentChannel | undefined {
  return undefined;
}
