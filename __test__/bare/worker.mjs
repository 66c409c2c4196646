// A QVAC-SDK-shaped worker, run by Bare (the bare lane, scripts/test-bare.mjs): it imports the
// package by name from the project it is installed in (the `bare` export condition) and does what
// argv says, printing one JSON line per event for the Node test that drives it (bare.test.mjs).
//   exports                      the names the package exports
//   hold <lock>                  PidLock.acquire, then wait (until killed)
//   contend <lock>               PidLock.acquire once: LOCK_HELD naming the holder
//   async <dir>                  200 concurrent native waits, three rounds; FileLock timeout and
//                                abort; retry and singleFlight; then nodeApiHostReport()
//   supervise                    spawnSupervised: ready line, stop, crash
//   shutdown <how> <lock>        the shutdown coordinator with a lock and a supervised child, ended
//                                by: signal (the test sends it), uncaught, unhandled, blocked
//   sdk <lock> <socket>          the SDK's worker: the lock, then its own Unix socket to the
//                                parent (bare-pipe); `__shutdown__` on it = cleanup with a report,
//                                its `close` = parent gone: shutdown(1, 'ipc-disconnect')
import * as qvac from 'qvac-managed';

const { PidLock, FileLock, retry, singleFlight, spawnSupervised, installShutdownHandlers } = qvac;
const [mode, ...args] = Bare.argv.slice(Bare.argv.findIndex((a) => a.endsWith('worker.mjs')) + 1);
const say = (event) => console.log(JSON.stringify(event));
const keepAlive = () => setInterval(() => {}, 1 << 30);
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** An AbortSignal-shaped object (Bare 1.31 has no AbortController global). */
function controller() {
  const listeners = new Set();
  const signal = {
    aborted: false,
    reason: undefined,
    addEventListener: (type, fn) => type === 'abort' && listeners.add(fn),
    removeEventListener: (type, fn) => listeners.delete(fn)
  };
  return {
    signal,
    abort(reason) {
      signal.aborted = true;
      signal.reason = reason ?? Object.assign(new Error('aborted'), { name: 'AbortError' });
      for (const fn of [...listeners]) fn();
    }
  };
}

const error = (e) => ({ name: e?.name, code: e?.code, message: String(e?.message ?? e), holderPid: e?.holderPid ?? null, holderAlive: e?.holderAlive ?? null });

switch (mode) {
  case 'exports':
    say({ event: 'exports', names: Object.keys(qvac).sort() });
    break;
  case 'hold': {
    await PidLock.acquire(args[0]);
    say({ event: 'held', pid: Bare.pid });
    keepAlive();
    break;
  }
  case 'contend': {
    try {
      await PidLock.acquire(args[0]);
      say({ event: 'acquired', pid: Bare.pid });
    } catch (e) {
      say({ event: 'refused', error: error(e) });
    }
    break;
  }
  case 'async': {
    const dir = args[0];
    const rounds = [];
    for (let round = 0; round < 3; round++) {
      const started = Date.now();
      const locks = await Promise.all(Array.from({ length: 200 }, (_, i) => FileLock.acquire(`${dir}/f${round}-${i}.lock`, { attempts: 2 })));
      for (const l of locks) l.release();
      const pids = await Promise.all(Array.from({ length: 200 }, (_, i) => PidLock.acquire(`${dir}/p${round}-${i}.lock`, { wait: { attempts: 2 } })));
      for (const l of pids) l.release();
      rounds.push({ fileLocks: locks.length, pidLocks: pids.length, ms: Date.now() - started });
    }
    const held = FileLock.tryAcquire(`${dir}/busy.lock`);
    const timedOut = await FileLock.acquire(`${dir}/busy.lock`, { attempts: 3, baseDelayMs: 10 }).then(() => null, error);
    const c = controller();
    const waiting = FileLock.acquire(`${dir}/busy.lock`, { attempts: 1000, baseDelayMs: 50, deadlineMs: 60_000, signal: c.signal }).then(() => null, error);
    await sleep(100);
    const abortedAt = Date.now();
    c.abort();
    const aborted = await waiting;
    const abortMs = Date.now() - abortedAt;
    held.release();
    let calls = 0;
    const retried = await retry(async (attempt) => {
      calls++;
      if (attempt < 3) throw new Error(`try ${attempt}`);
      return 'done';
    }, { attempts: 5, baseDelayMs: 5 });
    const exhausted = await retry(() => Promise.reject(new Error('never')), { attempts: 2, baseDelayMs: 5 }).then(() => null, error);
    let runs = 0;
    const shared = singleFlight(async () => {
      runs++;
      await sleep(20);
      return runs;
    });
    const flights = await Promise.all([shared(), shared(), shared()]);
    say({ event: 'async', rounds, timedOut, aborted, abortMs, retried, calls, exhausted, flights, runs, host: qvac.nodeApiHostReport() });
    break;
  }
  case 'supervise': {
    const child = spawnSupervised({ command: 'sh', args: ['-c', 'echo READY; exec sleep 30'], readiness: { outputLine: 'READY' }, graceMs: 1000 });
    await child.ready;
    const pid = child.pid;
    await child.stop();
    const stopped = await child.exited;
    const crash = spawnSupervised({ command: 'sh', args: ['-c', 'exit 5'] });
    const crashed = await crash.exited;
    const missing = (() => {
      try {
        spawnSupervised({ command: '/nonexistent/qvac-managed-test-binary' });
        return null;
      } catch (e) {
        return error(e);
      }
    })();
    say({ event: 'supervise', pid, stopped, crashed, missing });
    break;
  }
  case 'shutdown': {
    const [how, lockPath] = args;
    const lock = await PidLock.acquire(lockPath);
    const child = spawnSupervised({ command: 'sleep', args: ['60'] });
    const shutdown = installShutdownHandlers({
      lock,
      safetyNetMs: 800,
      resourceTimeoutMs: 60_000,
      resources: [
        {
          name: 'model',
          close() {
            say({ event: 'cleanup' });
            // A cleanup that blocks the JS thread: only the native safety net can end it.
            if (how === 'blocked') for (const end = Date.now() + 30_000; Date.now() < end; );
          }
        }
      ]
    });
    say({ event: 'ready', pid: Bare.pid, child: child.pid, shuttingDown: shutdown.shuttingDown });
    keepAlive();
    if (how === 'uncaught') setTimeout(() => {
      throw new Error('boom in the worker');
    }, 50);
    if (how === 'unhandled') setTimeout(() => void Promise.reject(new Error('rejected in the worker')), 50);
    break;
  }
  case 'sdk': {
    const [lockPath, socketPath] = args;
    const { default: Pipe } = await import('bare-pipe');
    const pipe = Pipe.createConnection(socketPath);
    const send = (event) => pipe.write(`${JSON.stringify(event)}\n`);
    let lock;
    try {
      lock = await PidLock.acquire(lockPath);
    } catch (e) {
      send({ event: 'refused', pid: Bare.pid, error: error(e) });
      pipe.end();
      break;
    }
    const shutdown = installShutdownHandlers({ lock, safetyNetMs: 1500 });
    // The SDK's transport: the parent's socket closing is the parent gone.
    // `end` is the parent's side closing (its process gone); `close` and `error` the same, later.
    for (const event of ['end', 'close', 'error']) pipe.on(event, () => void shutdown.shutdown(1, 'ipc-disconnect'));
    pipe.on('data', (data) => {
      if (String(data).includes('__shutdown__')) void shutdown.close().then((report) => send({ event: 'ack', report }));
    });
    send({ event: 'ready', pid: Bare.pid });
    keepAlive();
    break;
  }
  default:
    say({ event: 'error', message: `unknown mode ${mode}` });
    Bare.exit(2);
}
