// Cancellation: createQvac (managed) and ensureServe take `signal`. An abort rejects at once with
// the signal's reason (an AbortError, or a TimeoutError for AbortSignal.timeout(), as fetch does,
// and the same for every wait in the package), removes this process's consumer marker, and never
// cancels a start that other consumers wait on.
import assert from 'node:assert/strict';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { FileLock, PidLock, computeFleetKey, createQvac, ensureServe, retry } from '../dist/index.js';
import { event, fixtures, privateTmp, running, spawnFixture, tempDir, waitFor, withEnv } from './helpers.mjs';

const fakeServe = join(fixtures, 'fake-serve.mjs');

function setup(t, startDelayMs, env = {}) {
  const home = tempDir(t);
  const events = join(tempDir(t), 'events.jsonl');
  privateTmp(t);
  withEnv(t, { HOME: home, FAKE_SERVE_EVENTS: events, FAKE_SERVE_START_DELAY_MS: String(startDelayMs), ...env });
  const registryDir = join(home, '.qvac', 'managed-serves');
  const options = { mode: 'managed', models: ['qwen3.5-9b'], serveBinPath: fakeServe, serveIdleTimeout: 200 };
  const readEvents = () => (existsSync(events) ? readFileSync(events, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);
  const markers = (pid) => {
    const dir = join(registryDir, `${computeFleetKey(options)}.consumers`);
    return existsSync(dir) ? readdirSync(dir).filter((name) => name.startsWith(`${pid}.`)) : [];
  };
  return { home, registryDir, options, readEvents, markers };
}

/** Settles `promise`, and says how long that took from now and when (`at`, performance.now()) it settled. */
async function timed(promise) {
  const started = performance.now();
  try {
    const value = await promise;
    const at = performance.now();
    return { value, ms: at - started, at };
  } catch (error) {
    const at = performance.now();
    return { error, ms: at - started, at };
  }
}

describe('cancelling a managed start', () => {
  test('an abort mid-start rejects at once, removes our marker, and the consumer waiting on the same start gets the serve', async (t) => {
    // The serve listens only once the test opens the gate: however slow the machine, the abort
    // comes while the start is in progress.
    const gate = join(tempDir(t), 'gate');
    const { registryDir, options, readEvents, markers } = setup(t, 0, { FAKE_SERVE_LISTEN_GATE: gate });
    const controller = new AbortController();
    const ours = timed(createQvac({ ...options, signal: controller.signal }));
    // Our attach launched the runner; the serve is starting (it listens only once the gate opens).
    await waitFor(() => readEvents().some((e) => e.event === 'started'), 10_000, 'the serve started');
    assert.equal(markers(process.pid).length, 1);
    // Another process joins the same start and waits on it (its marker comes first).
    const other = spawnFixture(t, 'consumer.mjs', [registryDir, '1'], { env: { ...process.env, CONSUMER_OPTIONS: JSON.stringify(options) } });
    await waitFor(() => markers(other.pid).length === 1, 10_000, "the other consumer's marker");

    const reason = new Error('the caller gave up');
    const abortedAt = performance.now();
    controller.abort(reason);
    const { error, at } = await ours;
    assert.equal(error, reason, 'rejects with the signal reason');
    assert.ok(at - abortedAt < 1_000, `rejected ${Math.round(at - abortedAt)} ms after the abort`);
    assert.equal(readEvents().some((e) => e.event === 'listening'), false, 'rejected before the serve was up');
    assert.deepEqual(markers(process.pid), [], 'our marker removed');

    // The start goes on for the consumer that waits on it: one serve, started once, not by it.
    writeFileSync(gate, '');
    const attached = await other.next(event('attached'));
    assert.deepEqual(attached.errors, []);
    assert.equal(attached.spawned, 0);
    assert.equal(readEvents().filter((e) => e.event === 'started').length, 1);
    const [servePid] = attached.servePids;
    assert.ok(running(servePid));
    await other.finish();
    await waitFor(() => !running(servePid), 15_000, 'the serve reaped after the last consumer left');
  });

  test('AbortSignal.timeout() on ensureServe rejects with a TimeoutError; the started serve is reaped, nothing left', async (t) => {
    const { registryDir, options, readEvents, markers } = setup(t, 1_500);
    const { error, ms } = await timed(ensureServe(options, { registryDir, signal: AbortSignal.timeout(200) }));
    assert.equal(error?.name, 'TimeoutError', String(error));
    assert.ok(ms < 1_200, `rejected after ${Math.round(ms)} ms`);
    assert.deepEqual(markers(process.pid), []);
    // Nobody waits on the start any more: the runner finishes it and reaps the serve when idle.
    const started = await waitFor(() => readEvents().find((e) => e.event === 'started'), 10_000, 'the serve started');
    await waitFor(() => !running(started.pid), 15_000, 'the unwanted serve reaped');
    await waitFor(() => !existsSync(join(registryDir, `${computeFleetKey(options)}.json`)), 10_000, 'record removed');
  });

  test('a signal given in the options of ensureServe works too; an aborted one writes nothing', async (t) => {
    const { home, options } = setup(t, 0);
    const pre = await timed(createQvac({ ...options, signal: AbortSignal.abort() }));
    assert.equal(pre.error?.name, 'AbortError');
    const viaOptions = await timed(ensureServe({ ...options, signal: AbortSignal.abort() }));
    assert.equal(viaOptions.error?.name, 'AbortError');
    assert.equal(existsSync(join(home, '.qvac')), false, 'nothing written');
  });
});

describe('every abort rejects with the signal reason', () => {
  test('PidLock, FileLock and retry give a TimeoutError for AbortSignal.timeout() and the caller reason for abort(reason)', async (t) => {
    const dir = tempDir(t);
    const pidPath = join(dir, 'p.lock');
    const held = await PidLock.acquire(pidPath);
    t.after(() => held.release());
    const filePath = join(dir, 'f.lock');
    const flock = FileLock.tryAcquire(filePath);
    t.after(() => flock.release());
    const forever = { attempts: 1e6, baseDelayMs: 20, maxDelayMs: 20, deadlineMs: 60_000 };

    const waits = {
      pid: (signal) => PidLock.acquire(pidPath, { wait: forever, signal }),
      file: (signal) => FileLock.acquire(filePath, { ...forever, signal }),
      retry: (signal) => retry(() => Promise.reject(new Error('again')), { ...forever, signal })
    };
    for (const [name, wait] of Object.entries(waits)) {
      const timedOut = await timed(wait(AbortSignal.timeout(50)));
      assert.equal(timedOut.error?.name, 'TimeoutError', `${name}: ${timedOut.error}`);
      const controller = new AbortController();
      const reason = new Error(`${name}: mine`);
      setTimeout(() => controller.abort(reason), 50);
      assert.equal((await timed(wait(controller.signal))).error, reason, name);
      const plain = new AbortController();
      setTimeout(() => plain.abort(), 50);
      assert.equal((await timed(wait(plain.signal))).error?.name, 'AbortError', name);
    }
    // The one-try PidLock with an aborted signal: nothing attempted.
    const pre = await timed(PidLock.acquire(join(dir, 'q.lock'), { signal: AbortSignal.abort() }));
    assert.equal(pre.error?.name, 'AbortError');
    assert.equal(existsSync(join(dir, 'q.lock')), false);
  });
});
