// createQvac in managed mode: the provider over a shared managed serve, following respawns.
import { ServeEvents, type ServeEventListener, type ServeEventName } from '../events.js';
import { singleFlight } from '../retry.js';
import { ManagedRegistry, type StopServeResult } from '../registry.js';
import { attachServe, type AttachOptions, type ManagedServe } from '../serve.js';
import { checkOptions, type ManagedOptions } from '../managed-options.js';
import { createExternalQvac, type QvacProvider } from './external.js';
import { mergeHeaders } from './headers.js';

export interface QvacManagedOptions extends ManagedOptions {
  readonly mode: 'managed';
}

export interface ManagedQvacProvider extends QvacProvider {
  readonly apiKey: string;
  readonly baseURL: string;
  readonly port: number;
  readonly pid: number;
  /**
   * Lifecycle events: `exit` as soon as the serve this provider uses exits, `respawn` when a
   * request moved to a new serve, `output` with the serve's lines while a start this provider
   * waits on is in progress. Listeners never keep the process alive.
   */
  on<K extends ServeEventName>(name: K, listener: ServeEventListener<K>): this;
  off<K extends ServeEventName>(name: K, listener: ServeEventListener<K>): this;
  /**
   * Stops this fleet's shared serve and runner for everyone (see `stopServe`); this provider and
   * every other consumer get a fresh serve on their next request.
   */
  stopServe(options?: { graceMs?: number }): Promise<StopServeResult>;
  close(): Promise<void>;
  [Symbol.asyncDispose](): Promise<void>;
}

/** How often `closeOnParentExit` checks the parent pid when there is no IPC channel to watch. */
const PARENT_POLL_MS = 100;

/**
 * Only a refused connection proves the serve is gone (nothing listens on its port), so only
 * that is re-resolved and replayed. A reset may come after the serve took the request, and a
 * timeout or abort is the caller's: neither is retried.
 */
function connectionRefused(error: unknown): boolean {
  const e = error as { name?: string; code?: string; cause?: { code?: string } } | undefined;
  if (e?.name === 'AbortError' || e?.name === 'TimeoutError') return false;
  return (e?.cause?.code ?? e?.code) === 'ECONNREFUSED';
}

/** The request's URL moved to the live serve's origin (string, URL and Request alike). */
export function retarget(input: string | URL | Request, baseURL: string): string | URL | Request {
  let live: URL;
  try {
    live = new URL(baseURL);
  } catch {
    return input;
  }
  const move = (url: URL): URL => {
    url.protocol = live.protocol;
    url.host = live.host;
    return url;
  };
  try {
    if (typeof input === 'string') return move(new URL(input)).toString();
    if (input instanceof URL) return move(new URL(input.toString()));
    if (input instanceof Request) return new Request(move(new URL(input.url)).toString(), input);
  } catch {
    // not a URL we can parse: leave it
  }
  return input;
}

/**
 * The request's init with the serve's key, asking for `Connection: close`: the provider keeps no
 * idle connection to its serve, so nothing of it holds the serve once `close()` has removed its
 * marker (the runner counts live connections as clients). A loopback connect costs well under a
 * millisecond; a request in flight at `close()` keeps its connection until it ends.
 */
function withAuthorization(input: string | URL | Request, init: RequestInit | undefined, apiKey: string): RequestInit {
  const headers = new Headers(init?.headers ?? (input instanceof Request ? input.headers : undefined));
  headers.set('authorization', `Bearer ${apiKey}`);
  headers.set('connection', 'close');
  return { ...init, headers };
}

/**
 * Managed mode: attaches to (or starts) the shared serve for these options and returns a
 * provider whose requests always go to the live serve. A serve that is provably gone is
 * re-ensured once per burst of requests and the request replayed; the getters follow.
 * `options.signal` bounds the first attach only (see `ensureServe`).
 */
export async function createManagedQvac(options: QvacManagedOptions, attach: AttachOptions = {}): Promise<ManagedQvacProvider> {
  // Every option is checked before anything is armed, spawned or written; headers also as
  // fetch will check them (the native check does not know fetch's ByteString rule).
  const checked = checkOptions(options);
  mergeHeaders(options.headers);
  // One emitter for the provider's life: `on` listeners see the first start's output, and every
  // later serve's events.
  const events = new ServeEvents(checked.on);
  // The parent pact is armed before the (possibly long) first start, as upstream does.
  let closeProvider: (() => Promise<void>) | undefined;
  let serve: ManagedServe | undefined;
  let parentWatch: ReturnType<typeof setInterval> | undefined;
  const onParentGone = (): void => {
    if (parentWatch) clearInterval(parentWatch);
    void (closeProvider ? closeProvider() : Promise.resolve(serve?.release())).finally(() => process.exit(0));
  };
  if (options.closeOnParentExit) {
    const parentPid = process.ppid;
    parentWatch = setInterval(() => {
      if (process.ppid !== parentPid || process.ppid === 1) onParentGone();
    }, PARENT_POLL_MS);
    parentWatch.unref();
    if (typeof process.send === 'function') process.once('disconnect', onParentGone);
  }

  try {
    serve = await attachServe(checked, attach, events);
  } catch (error) {
    if (parentWatch) clearInterval(parentWatch);
    process.off('disconnect', onParentGone);
    throw error;
  }
  const attached: ManagedServe = serve;
  try {
    return buildProvider(attached);
  } catch (error) {
    // Nothing of a failed createQvac may pin the serve: the marker goes, the watches stop.
    if (parentWatch) clearInterval(parentWatch);
    process.off('disconnect', onParentGone);
    attached.release();
    throw error;
  }

  function buildProvider(first: ManagedServe): ManagedQvacProvider {
    let live: ManagedServe = first;
    let closed = false;
    // Later attaches are the provider's own: the caller's signal bounded only the first one.
    const later = { ...checked, signal: undefined };
    const reresolve = singleFlight(async (refused: ManagedServe) => {
      // Never the serve that just refused the connection (its runner notices and replaces it),
      // and only that one: `live` may already be a newer serve.
      const next = await attachServe(later, { ...attach, avoidServePid: refused.pid, signal: undefined }, events);
      const previous = live;
      live = next;
      previous.release();
      events.emit('respawn', {
        reason: previous.exit?.kind ?? 'unreachable',
        oldPid: previous.pid,
        newPid: next.pid,
        oldPort: previous.port,
        newPort: next.port
      });
      return next;
    });

    const baseFetch: typeof fetch = options.fetch ?? fetch;
    const managedFetch = (async (input: string | URL | Request, init?: RequestInit) => {
      const target = live;
      try {
        return await baseFetch(retarget(input, target.baseURL), withAuthorization(input, init, target.apiKey));
      } catch (error) {
        if (closed || !connectionRefused(error)) throw error;
        // Another request already moved to a newer serve: replay there.
        const next = live !== target ? live : await reresolve(target);
        if (closed) {
          // close() won while we re-attached: do not keep the new serve warm for nobody.
          next.release();
          throw error;
        }
        return baseFetch(retarget(input, next.baseURL), withAuthorization(input, init, next.apiKey));
      }
    }) as typeof fetch;

    const provider = createExternalQvac({
      baseURL: live.baseURL,
      apiKey: live.apiKey,
      ...(options.headers && { headers: options.headers }),
      fetch: managedFetch
    }) as unknown as Record<string | symbol, unknown>;

    let closing: Promise<void> | undefined;
    const close = (): Promise<void> => {
      closing ??= (async () => {
        closed = true;
        if (parentWatch) clearInterval(parentWatch);
        process.off('disconnect', onParentGone);
        live.release();
      })();
      return closing;
    };
    closeProvider = close;

    Object.defineProperties(provider, {
      apiKey: { get: () => live.apiKey, enumerable: false, configurable: false },
      baseURL: { get: () => live.baseURL, enumerable: true, configurable: true },
      port: { get: () => live.port, enumerable: true, configurable: true },
      pid: { get: () => live.pid, enumerable: true, configurable: true }
    });
    provider['close'] = close;
    provider[Symbol.asyncDispose] = close;
    provider['on'] = function on(this: unknown, name: ServeEventName, listener: ServeEventListener<ServeEventName>) {
      events.on(name, listener);
      return this;
    };
    provider['off'] = function off(this: unknown, name: ServeEventName, listener: ServeEventListener<ServeEventName>) {
      events.off(name, listener);
      return this;
    };
    provider['stopServe'] = (stop?: { graceMs?: number }): Promise<StopServeResult> =>
      new ManagedRegistry(live.registryDir).stopFleet(live.fleetKey, stop);
    return provider as unknown as ManagedQvacProvider;
  }
}
