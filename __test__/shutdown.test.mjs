import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { evictExcept, installShutdownHandlers, unloadAll } from '../dist/index.js';
import { event, running, spawnFixture, tempDir, waitFor } from './helpers.mjs';

function worker(t, mode, extraEnv = {}) {
  const dir = tempDir(t);
  const lock = join(dir, '.worker.lock');
  const events = join(dir, 'events.jsonl');
  const env = { ...process.env, WORKER_LOCK: lock, WORKER_EVENTS: events, ...extraEnv };
  const child = spawnFixture(t, 'worker.mjs', [mode], { env });
  const read = () => (existsSync(events) ? readFileSync(events, 'utf8').trim().split('\n').map((l) => JSON.parse(l)) : []);
  return { child, lock, events: read, env, dir };
}

describe('installShutdownHandlers (worker side)', () => {
  test('an uncaught exception: onCrash, cleanup, lock released, exit 1', async (t) => {
    const w = worker(t, 'throw');
    await w.child.next(event('ready'));
    assert.ok(existsSync(w.lock));
    const { code } = await w.child.exited;
    assert.equal(code, 1);
    assert.equal(existsSync(w.lock), false, 'lock released');
    const seen = w.events().map((e) => e.event);
    assert.ok(seen.includes('crash') && seen.includes('closed'), seen.join(','));
    assert.equal(w.events().find((e) => e.event === 'crash').origin, 'uncaughtException');
  });

  test('an unhandled rejection: the same', async (t) => {
    const w = worker(t, 'reject');
    await w.child.next(event('ready'));
    const { code } = await w.child.exited;
    assert.equal(code, 1);
    assert.equal(existsSync(w.lock), false);
    assert.equal(w.events().find((e) => e.event === 'crash').origin, 'unhandledRejection');
  });

  test('SIGTERM: graceful cleanup, exit 0; a second SIGTERM during a slow cleanup still exits, cleanup ran once', async (t) => {
    const w = worker(t, 'slow-close');
    await w.child.next(event('ready'));
    w.child.child.kill('SIGTERM');
    await waitFor(() => w.events().some((e) => e.event === 'closing'), 5_000, 'cleanup started');
    w.child.child.kill('SIGTERM');
    const { code } = await w.child.exited;
    assert.equal(code, 143, 'the second signal ends it at once');
    assert.equal(existsSync(w.lock), false, 'lock released');
    assert.equal(w.events().filter((e) => e.event === 'closing').length, 1, 'cleanup ran once');

    const single = worker(t, 'idle');
    await single.child.next(event('ready'));
    single.child.child.kill('SIGTERM');
    assert.equal((await single.child.exited).code, 0);
    assert.equal(existsSync(single.lock), false);
    assert.ok(single.events().some((e) => e.event === 'closed' && e.name === 'model'));
  });

  test('a resource whose close() hangs does not stop the others; the failure is logged by name', async (t) => {
    const w = worker(t, 'hang-one');
    await w.child.next(event('ready'));
    w.child.child.kill('SIGTERM');
    assert.equal((await w.child.exited).code, 0);
    const events = w.events();
    assert.ok(events.some((e) => e.event === 'closed' && e.name === 'first'));
    assert.ok(events.some((e) => e.event === 'warn' && /closing hangs failed: did not close within 200 ms/.test(e.message)));
    assert.equal(existsSync(w.lock), false);
  });

  test('event loop blocked during shutdown: the native safety net ends the process and releases the lock', async (t) => {
    const w = worker(t, 'busy-close', { WORKER_SAFETY_NET_MS: '500' });
    await w.child.next(event('ready'));
    const started = Date.now();
    w.child.child.kill('SIGTERM');
    const { code } = await w.child.exited;
    assert.equal(code, 0, 'exits with the shutdown\'s code');
    assert.ok(Date.now() - started >= 450, 'not before the net');
    assert.equal(existsSync(w.lock), false, 'the net released the lock');
    assert.ok(w.events().some((e) => e.event === 'closing' && e.name === 'spinner'));
  });
});

describe('IPC: parent death and pre-terminate cleanup', () => {
  test('parent SIGKILLed: the worker sees the channel close, cleans up and exits', async (t) => {
    const dir = tempDir(t);
    const env = { ...process.env, WORKER_LOCK: join(dir, 'w.lock'), WORKER_EVENTS: join(dir, 'e.jsonl') };
    const parent = spawnFixture(t, 'ipc-parent.mjs', ['idle'], { env });
    const { workerPid } = await parent.next(event('worker'));
    t.after(() => {
      if (running(workerPid)) process.kill(workerPid, 'SIGKILL');
    });
    parent.child.kill('SIGKILL');
    await waitFor(() => !running(workerPid), 5_000, 'worker exited after its parent died');
    assert.equal(existsSync(join(dir, 'w.lock')), false, 'lock released');
  });

  test('requestCleanup: ack after cleanup, then SIGTERM; the worker exits 0 with the lock released', async (t) => {
    const dir = tempDir(t);
    const env = { ...process.env, WORKER_LOCK: join(dir, 'w.lock'), WORKER_EVENTS: join(dir, 'e.jsonl') };
    const parent = spawnFixture(t, 'ipc-parent.mjs', ['idle', 'request-cleanup'], { env });
    const result = await parent.next(event('result'));
    assert.equal(result.acked, true);
    assert.equal(result.timedOut, false);
    assert.deepEqual(result.report.closed, ['model']);
    assert.equal(result.code, 0);
    assert.equal(existsSync(join(dir, 'w.lock')), false);
    const lines = readFileSync(join(dir, 'e.jsonl'), 'utf8').trim().split('\n').map((l) => JSON.parse(l));
    assert.equal(lines.filter((e) => e.event === 'closing').length, 1, 'the SIGTERM after the pre-terminate cleanup did not clean up again');
  });

  test('requestCleanup without an ack: terminates after the timeout and says so', async (t) => {
    const dir = tempDir(t);
    const env = { ...process.env, WORKER_LOCK: join(dir, 'w.lock'), WORKER_EVENTS: join(dir, 'e.jsonl') };
    const parent = spawnFixture(t, 'ipc-parent.mjs', ['no-handlers', 'request-cleanup', '300'], { env });
    const result = await parent.next(event('result'));
    assert.equal(result.acked, false);
    assert.equal(result.timedOut, true);
    assert.match(result.note, /did not acknowledge cleanup within 300 ms; terminated it anyway/);
    assert.equal(result.signal, 'SIGTERM');
  });
});

describe('model helpers and coordinator state', () => {
  test('unloadAll settles every model; evictExcept keeps the named ones', async () => {
    const calls = [];
    const model = (name, fail = false) => ({ unload: async () => { calls.push(name); if (fail) throw new Error(name); } });
    const r = await unloadAll([model('a'), model('b', true), model('c')], { settleMs: 5 });
    assert.equal(r.unloaded, 2);
    assert.equal(r.failed.length, 1);
    assert.deepEqual(calls.sort(), ['a', 'b', 'c']);
    const loaded = new Map([['x', model('x')], ['y', model('y')], ['z', model('z')]]);
    assert.deepEqual(await evictExcept(loaded, ['y']), ['x', 'z']);
    assert.deepEqual([...loaded.keys()], ['y']);
  });

  test('close() runs cleanup once, shared by concurrent callers, in reverse order', async () => {
    const order = [];
    const coordinator = installShutdownHandlers({
      ipc: false,
      resources: [{ name: 'first', close: () => order.push('first') }, { name: 'second', unload: async () => order.push('second') }],
      lock: { release: () => order.push('lock') }
    });
    try {
      const [a, b] = await Promise.all([coordinator.close(), coordinator.close()]);
      assert.equal(a, b);
      assert.deepEqual(order, ['second', 'first', 'lock']);
      assert.deepEqual(a.closed, ['second', 'first']);
      assert.equal(coordinator.cleanupRan, true);
      assert.equal(coordinator.shuttingDown, false, 'cleanup without exit is not shutting down');
      await coordinator.close();
      assert.equal(order.length, 3);
    } finally {
      coordinator.uninstall();
    }
  });

  test('bad options are INVALID_OPTION', () => {
    assert.throws(() => installShutdownHandlers({ safetyNetMs: -1 }), { code: 'INVALID_OPTION' });
  });
});
