// The host runtime's process facts the worker-side API needs (Node and Bun): timers, the
// process's exit, signals and crash events, and the IPC channel to a parent. The Bare entry
// (dist/bare.js) swaps this module for runtime-bare.ts, which gives the same names over Bare's
// own modules; nothing else in the worker-side API touches `process` directly.
import type { ChildProcess } from 'node:child_process';
import { setTimeout as timer } from 'node:timers/promises';

/** `node:timers/promises` setTimeout: `value` after `ms`; rejects when `signal` aborts. */
export const sleep: <T>(ms: number, value?: T, options?: { signal?: AbortSignal; ref?: boolean }) => Promise<T> = timer;

/** The process events the shutdown coordinator listens to. */
export type ProcessEvent = 'SIGTERM' | 'SIGINT' | 'uncaughtException' | 'unhandledRejection';

export function onProcessEvent(event: ProcessEvent, listener: (value: unknown) => void): void {
  process.on(event, listener);
}

export function offProcessEvent(event: ProcessEvent, listener: (value: unknown) => void): void {
  process.off(event, listener);
}

/** Runs `listener` once when this environment ends (normal end, exit(), uncaught exception). */
export function onceAtExit(listener: () => void): void {
  process.once('exit', listener);
}

/** Ends the process (the environment, in a worker thread) with `code`. */
export function exitProcess(code: number): never {
  process.exit(code);
}

/**
 * `worker_threads.isMainThread`, looked up when asked: importing node:worker_threads loads Node's
 * stream and worker internals (~2 ms), which most processes never need. A worker thread has
 * already loaded it; the main thread loads it at its exit (or at its shutdown's safety net).
 */
export const isMainThread = (): boolean => process.getBuiltinModule('node:worker_threads').isMainThread;

export const isWindows = (): boolean => process.platform === 'win32';

/** The IPC channel to the parent that forked this process, if there is one. */
export interface ParentChannel {
  readonly connected: boolean;
  send(message: unknown): void;
  on(event: 'message' | 'disconnect', listener: (message?: unknown) => void): void;
  off(event: 'message' | 'disconnect', listener: (message?: unknown) => void): void;
}

export function parentChannel(): ParentChannel | undefined {
  if (typeof process.send !== 'function') return undefined;
  return {
    get connected() {
      return process.connected;
    },
    send: (message) => void process.send?.(message),
    on: (event, listener) => void process.on(event, listener),
    off: (event, listener) => void process.off(event, listener)
  };
}

export type { ChildProcess };
