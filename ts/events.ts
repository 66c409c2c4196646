// Lifecycle events of a managed serve: `exit`, `respawn`, `output`, with Node-style on/off that
// behave the same in Bun. Listeners never keep the process alive (the native sources are weak).
import { received } from './args.js';
import { InvalidOptionError } from './errors.js';

/** How the serve this process used ended, as soon as it did (seen by a process watch). */
export interface ServeExitEvent {
  /**
   * `crashed` (exited on its own, or stopped listening), `hung` (alive and accepting but answered
   * no probe for `serveHangTimeout`; stopped by its runner), `stopped` (stopServe, `qvac-managed
   * stop`, a signal to its runner), `reaped` (idle), `evicted` (idle, stopped early to make room
   * for another fleet under a memory budget) or `memory` (its tree stayed above `serveMaxMemory`;
   * stopped by its runner, restarted by the next request). `crashed` with no code or signal when
   * no runner recorded the end (a runner that died with it, or upstream's).
   */
  kind: 'crashed' | 'hung' | 'stopped' | 'reaped' | 'evicted' | 'memory';
  code: number | null;
  signal: string | null;
  /** The serve's last output (up to 4 KiB). */
  outputTail: string;
  /** The most resident memory its process tree was seen to use (bytes); null when not sampled. */
  peakBytes: number | null;
  pid: number;
  port: number;
}

/** A request moved to a new serve. */
export interface ServeRespawnEvent {
  /** Why the old one went: its exit kind when it was seen, else `unreachable` (connection refused). */
  reason: ServeExitEvent['kind'] | 'unreachable';
  oldPid: number;
  newPid: number;
  oldPort: number;
  newPort: number;
}

/** A line of the serve's output while a start this process waits on is in progress. */
export interface ServeOutputEvent {
  stream: 'stdout' | 'stderr';
  line: string;
}

export interface ServeEventMap {
  exit: ServeExitEvent;
  respawn: ServeRespawnEvent;
  output: ServeOutputEvent;
}

export type ServeEventName = keyof ServeEventMap;
export type ServeEventListener<K extends ServeEventName> = (event: ServeEventMap[K]) => void;

/** `on: { exit, respawn, output }` as createQvac and ensureServe take it. */
export type ServeEventListeners = { [K in ServeEventName]?: ServeEventListener<K> };

const NAMES: readonly ServeEventName[] = ['exit', 'respawn', 'output'];

function eventName(option: string, name: unknown): ServeEventName {
  if (!NAMES.includes(name as ServeEventName)) {
    throw InvalidOptionError.because(option, received(name), `an event name (${NAMES.map((n) => `'${n}'`).join(', ')})`);
  }
  return name as ServeEventName;
}

function listenerArg(option: string, listener: unknown): void {
  if (typeof listener !== 'function') throw InvalidOptionError.because(option, received(listener), 'a function');
}

/** Checks `on` (INVALID_OPTION before anything starts). */
export function checkListeners(on: unknown): ServeEventListeners | undefined {
  if (on === undefined) return undefined;
  if (typeof on !== 'object' || on === null || Array.isArray(on)) {
    throw InvalidOptionError.because('on', received(on), 'an object of event listeners ({ exit, respawn, output })');
  }
  for (const [name, listener] of Object.entries(on)) {
    eventName(`on.${name}`, name);
    if (listener !== undefined) listenerArg(`on.${name}`, listener);
  }
  return on as ServeEventListeners;
}

/** A minimal emitter: listeners run in the order added; one that throws is reported as uncaught. */
export class ServeEvents {
  readonly #listeners = new Map<ServeEventName, Array<(event: never) => void>>();
  #watchHook: (() => void) | undefined;

  /** Called when an `exit` or `respawn` listener is added (the live serve starts its exit watch). */
  setWatchHook(hook: () => void): void {
    this.#watchHook = hook;
  }

  constructor(initial?: ServeEventListeners) {
    for (const name of NAMES) {
      const listener = initial?.[name] as ServeEventListener<ServeEventName> | undefined;
      if (listener) this.on(name, listener);
    }
  }

  on<K extends ServeEventName>(name: K, listener: ServeEventListener<K>): this {
    eventName('event', name);
    listenerArg('listener', listener);
    const list = this.#listeners.get(name) ?? [];
    list.push(listener as (event: never) => void);
    this.#listeners.set(name, list);
    if (name !== 'output') this.#watchHook?.();
    return this;
  }

  off<K extends ServeEventName>(name: K, listener: ServeEventListener<K>): this {
    eventName('event', name);
    const list = this.#listeners.get(name);
    const at = list?.lastIndexOf(listener as (event: never) => void) ?? -1;
    if (list && at >= 0) list.splice(at, 1);
    return this;
  }

  has(name: ServeEventName): boolean {
    return (this.#listeners.get(name)?.length ?? 0) > 0;
  }

  emit<K extends ServeEventName>(name: K, event: ServeEventMap[K]): void {
    for (const listener of [...(this.#listeners.get(name) ?? [])]) {
      try {
        (listener as ServeEventListener<K>)(event);
      } catch (error) {
        // As an EventEmitter listener's error from an I/O callback: uncaught, not swallowed.
        queueMicrotask(() => {
          throw error;
        });
      }
    }
  }
}

/** A native `o <line>` / `e <line>` output record as an event. */
export function outputEvent(record: string): ServeOutputEvent {
  return { stream: record.startsWith('e ') ? 'stderr' : 'stdout', line: record.slice(2) };
}
