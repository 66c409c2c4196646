// Worker threads (I15): every Node environment releases only what it acquired. Node emits 'exit'
// in worker threads too, so a worker's end must not drop the main thread's locks, consumer
// markers or children; and a worker can use every primitive, whose holdings go when it ends.
// Runs under Node (worker_threads) and Bun (its Worker implements the same module).
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { Worker } from 'node:worker_threads';

import { FileLock, ManagedRegistry, PidLock, createQvac } from '../dist/index.js';
import { fixtures, privateTmp, running, spawnFixture, tempDir, waitFor, withEnv } from './helpers.mjs';

const fakeServe = join(fixtures, 'fake-serve.mjs');
const IDLE_MS = 300;

function setup(t) {
  const home = tempDir(t);
  const scratch = tempDir(t);
  privateTmp(t);
  // The worker inherits this environment (HOME: the registry; FAKE_SERVE_EVENTS: the serve's log).
  withEnv(t, { HOME: home, FAKE_SERVE_EVENTS: join(scratch, 'events.jsonl') });
  const registryDir = join(home, '.qvac', 'managed-serves');
  const managed = (model) => ({ mode: 'managed', models: [model], serveBinPath: fakeServe, serveIdleTimeout: IDLE_MS });
  return { scratch, registryDir, registry: new ManagedRegistry(registryDir), managed };
}

/** Starts the fixture worker; resolves its 'holding' report and, after `postMessage('go')`, its end. */
function startWorker(t, workerData) {
  const worker = new Worker(new URL('./fixtures/thread-worker.mjs', import.meta.url), { workerData });
  const ended = new Promise((resolve) => worker.once('exit', resolve));
  const holding = new Promise((resolve, reject) => {
    worker.once('message', resolve);
    worker.once('error', reject);
    ended.then((code) => reject(new Error(`the worker ended (${code}) before it reported`)));
  });
  t.after(() => worker.terminate());
  return { worker, holding, ended };
}

/** This process's consumer markers of a fleet (`<pid>.<8 hex>`). */
const ourMarkers = (registryDir, fleetKey) => {
  const dir = join(registryDir, `${fleetKey}.consumers`);
  return existsSync(dir) ? readdirSync(dir).filter((name) => name.startsWith(`${process.pid}.`)) : [];
};

/** One attempt at a PidLock from another process: 'acquired', or 'failed' with the holder. */
async function probeFromAnotherProcess(t, path) {
  const probe = spawnFixture(t, 'lock-probe.mjs', ['pid', path]);
  return probe.next((e) => e.event === 'acquired' || e.event === 'failed' || e.event === 'busy');
}

describe('worker threads: each environment releases only what it acquired', () => {
  for (const end of ['return', 'exit']) {
    test(`a worker that ends (${end}) leaves the main thread's lock, marker and serve; its own are released`, async (t) => {
      const { scratch, registryDir, registry, managed } = setup(t);
      const mainLockPath = join(scratch, 'main.lock');
      const mainLock = await PidLock.acquire(mainLockPath);
      t.after(() => mainLock.release());
      const provider = await createQvac(managed('QWEN3_600M_INST_Q4'));
      t.after(() => provider.close());
      const sharedKey = registry.listServes().find((s) => s.servePid === provider.pid).fleetKey;
      assert.equal(ourMarkers(registryDir, sharedKey).length, 1);

      const workerLockPath = join(scratch, 'worker.lock');
      const fileLockPath = join(scratch, 'worker.flock');
      const { worker, holding, ended } = startWorker(t, {
        end,
        lockPath: workerLockPath,
        fileLockPath,
        // The worker's own fleet (another model): it alone uses it.
        own: managed('qwen3.5-9b'),
        // The main thread's fleet: the worker attaches to it too.
        shared: managed('QWEN3_600M_INST_Q4')
      });
      const held = await holding;
      assert.deepEqual([held.lockHeld, held.fileLockHeld, held.tries], [true, true, 2]);
      assert.equal(held.sharedServePid, provider.pid, 'the worker joined the main thread serve');
      assert.equal(ourMarkers(registryDir, sharedKey).length, 2, 'one marker each: main thread and worker');
      if (end === 'exit') assert.ok(running(held.childPid));
      worker.postMessage('go');
      assert.equal(await ended, 0);

      // The main thread's lock: still on disk, still ours, refused to another process.
      assert.equal(existsSync(mainLockPath), true, 'main thread lock file still there');
      assert.equal(mainLock.held, true);
      assert.equal(PidLock.inspect(mainLockPath).pid, process.pid);
      const probe = await probeFromAnotherProcess(t, mainLockPath);
      assert.equal(probe.event, 'failed', 'another process acquired the main thread lock');
      assert.equal(probe.code, 'LOCK_HELD');
      assert.equal(probe.holderPid, process.pid);

      // The worker's own holdings went with it.
      assert.equal(existsSync(workerLockPath), false, 'worker lock released');
      assert.equal((await probeFromAnotherProcess(t, workerLockPath)).event, 'acquired');
      const flock = FileLock.tryAcquire(fileLockPath);
      assert.ok(flock, 'worker file lock released');
      flock.release();
      if (end === 'exit') await waitFor(() => !running(held.childPid), 5_000, 'the worker supervised child killed');
      assert.equal(ourMarkers(registryDir, sharedKey).length, 1, "the worker's marker went, the provider's stayed");

      // The worker's own fleet lost its last consumer: its runner reaps it after the idle timeout.
      // Once that happened, a main-thread serve that had lost its marker at the same moment (to
      // the same idle timeout) would be gone too; it must still run, with its record and a consumer.
      await waitFor(() => !running(held.ownServePid), 15_000, "the worker's own serve reaped");
      await new Promise((r) => setTimeout(r, IDLE_MS));
      assert.ok(running(provider.pid), 'the main thread serve was reaped');
      const listing = registry.listServes().find((s) => s.fleetKey === sharedKey);
      assert.ok(listing, 'the main thread serve record is gone');
      assert.equal(listing.consumers, 1);
      const res = await fetch(`${provider.baseURL}/models`, { headers: { authorization: `Bearer ${provider.apiKey}` } });
      assert.equal(res.status, 200);

      await provider.close();
      await waitFor(() => !running(provider.pid), 15_000, 'the main thread serve reaped after close()');
    });
  }

  test("worker.terminate() releases the worker's locks and kills its children, and only those", async (t) => {
    const { scratch } = setup(t);
    const mainLockPath = join(scratch, 'main.lock');
    const mainLock = await PidLock.acquire(mainLockPath);
    t.after(() => mainLock.release());
    const workerLockPath = join(scratch, 'worker.lock');
    const fileLockPath = join(scratch, 'worker.flock');
    const { worker, holding, ended } = startWorker(t, { end: 'wait', lockPath: workerLockPath, fileLockPath });
    const held = await holding;
    assert.equal(existsSync(workerLockPath), true);
    assert.equal(FileLock.tryAcquire(fileLockPath), null, 'the worker holds the file lock');

    await worker.terminate();
    await ended;
    // terminate() runs no 'exit' listener in the worker: the environment cleanup hook releases.
    await waitFor(() => !existsSync(workerLockPath), 5_000, 'worker lock released');
    await waitFor(() => !running(held.childPid), 5_000, 'the worker supervised child killed');
    const flock = FileLock.tryAcquire(fileLockPath);
    assert.ok(flock, 'worker file lock released');
    flock.release();
    assert.equal(mainLock.held, true);
    assert.equal(PidLock.inspect(mainLockPath).pid, process.pid);
    assert.equal((await probeFromAnotherProcess(t, mainLockPath)).event, 'failed');
  });

  test("a worker's shutdown() ends the worker, not the process: no native safety net from a worker", async (t) => {
    const lockPath = join(tempDir(t), 'main.lock');
    const parent = spawnFixture(t, 'thread-shutdown.mjs', [lockPath]);
    assert.equal((await parent.next((e) => e.event === 'worker-exited')).code, 7);
    // The net would have fired 100 ms after the worker armed it, ending the process with code 7.
    const alive = await parent.next((e) => e.event === 'alive');
    assert.equal(alive.held, true);
    assert.deepEqual(await parent.exited, { code: 0, signal: null });
  });

  test("the process's end takes a still-running worker's locks and children with it", async (t) => {
    const lockPath = join(tempDir(t), 'worker.lock');
    const parent = spawnFixture(t, 'thread-process-exit.mjs', [lockPath]);
    const { childPid } = await parent.next((e) => e.event === 'holding');
    assert.deepEqual(await parent.exited, { code: 0, signal: null });
    await waitFor(() => !running(childPid), 5_000, "the worker's supervised child killed");
    assert.equal(existsSync(lockPath), false, "the worker's lock released");
  });
});
