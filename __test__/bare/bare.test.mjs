// The bare lane's tests (run by scripts/test-bare.mjs, never by the main suites): the package
// installed from its tarballs into a fresh project with bare-runtime, its worker-side API driven in
// Bare processes (worker.mjs) under every Bare binary the lane found, asserted here in Node.
// QVAC_BARE_PROJECT: the project; QVAC_BARE_BINS: JSON [{ version, path, tsfnFinalizeOrder }]
// (the order the probe addon saw that binary use: 'node-api' or 'swapped').
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { describe, test } from 'node:test';

const project = process.env.QVAC_BARE_PROJECT;
const bins = JSON.parse(process.env.QVAC_BARE_BINS ?? '[]');
const worker = join(project ?? '.', 'test', 'worker.mjs');
const EXPORTS = [
  'DuplicateManagedModelError', 'FileLock', 'InvalidOptionError', 'LockHeldError', 'LockIoError', 'LockTimeoutError',
  'MultipleDefaultManagedModelsError', 'NativeBinaryMissingError', 'PidLock', 'QvacError', 'QvacManagedModeError',
  'RetryExhaustedError', 'SupervisedStartError', 'UnknownManagedModelError', 'computeFleetKey', 'evictExcept',
  'installShutdownHandlers', 'nodeApiHostReport', 'retry', 'singleFlight', 'spawnSupervised', 'synthesizeServeConfig', 'unloadAll',
  'validateManagedOptions'
];

const running = (pid) => {
  try {
    process.kill(pid, 0);
  } catch (e) {
    if (e.code !== 'EPERM') return false;
  }
  const stat = existsSync(`/proc/${pid}/stat`) ? readFileSync(`/proc/${pid}/stat`, 'utf8') : '';
  return !/\) Z /.test(stat);
};

async function waitFor(check, timeoutMs, what) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (check()) return;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A process of `command args` in the project; its JSON lines as events. Killed (by pid) at the end. */
function run(t, command, args) {
  const child = spawn(command, args, { cwd: project, stdio: ['pipe', 'pipe', 'inherit'] });
  const events = [];
  const waiters = [];
  const exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  createInterface({ input: child.stdout }).on('line', (line) => {
    let event;
    try {
      event = JSON.parse(line);
    } catch {
      return;
    }
    events.push(event);
    for (const w of [...waiters]) if (w.name === event.event) waiters.splice(waiters.indexOf(w), 1), w.resolve(event);
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    exited,
    next(name, timeoutMs = 30_000) {
      const seen = events.find((e) => e.event === name);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${name} event within ${timeoutMs} ms; saw ${JSON.stringify(events)}`)), timeoutMs);
        waiters.push({ name, resolve: (e) => (clearTimeout(timer), resolve(e)) });
        exited.then(({ code, signal }) => {
          clearTimeout(timer);
          reject(new Error(`exited (${code ?? signal}) before ${name}; saw ${JSON.stringify(events)}`));
        });
      });
    }
  };
}

function tempDir(t) {
  const dir = mkdtempSync(join(tmpdir(), 'qvac-managed-bare-'));
  t.after(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

for (const { version, path: bare, tsfnFinalizeOrder } of bins) {
  describe(`Bare ${version}`, () => {
    const inBare = (t, ...args) => run(t, bare, [worker, ...args]);

    test('every export of the bare entry is there, with the names Node gets', async (t) => {
      const { names } = await inBare(t, 'exports').next('exports');
      assert.deepEqual(names, EXPORTS);
    });

    test('PidLock: a second Bare process is refused with LOCK_HELD naming the holder; a SIGKILLed holder is taken over', async (t) => {
      const lock = join(tempDir(t), 'worker.lock');
      const holder = inBare(t, 'hold', lock);
      const { pid } = await holder.next('held');
      const refused = await inBare(t, 'contend', lock).next('refused');
      assert.equal(refused.error.code, 'LOCK_HELD');
      assert.equal(refused.error.name, 'LockHeldError');
      assert.equal(refused.error.holderPid, pid);
      assert.equal(refused.error.holderAlive, true);
      assert.match(refused.error.message, new RegExp(`pid ${pid}`));
      holder.child.kill('SIGKILL');
      await holder.exited;
      const taken = await inBare(t, 'contend', lock).next('acquired');
      assert.notEqual(taken.pid, pid);
    });

    test('200 concurrent native waits, three rounds; FileLock timeout and abort; retry and singleFlight', async (t) => {
      const result = await inBare(t, 'async', tempDir(t)).next('async', 120_000);
      assert.deepEqual(result.rounds.map((r) => [r.fileLocks, r.pidLocks]), [[200, 200], [200, 200], [200, 200]]);
      assert.equal(result.timedOut.code, 'LOCK_TIMEOUT');
      assert.equal(result.aborted.name, 'AbortError');
      assert.ok(result.abortMs < 1_000, `the abort ended the wait in ${result.abortMs} ms`);
      assert.equal(result.retried, 'done');
      assert.equal(result.calls, 3);
      assert.equal(result.exhausted.code, 'RETRY_EXHAUSTED');
      assert.deepEqual(result.flights, [1, 1, 1]);
      assert.equal(result.runs, 1);
      // The workaround decided from what this Bare did, and agrees with the probe addon's
      // independent reading of the same binary.
      const { threadsafeFunctionsCreated: created, finalizedInNodeApiOrder: nodeApi, finalizedInSwappedOrder: swapped } = result.host;
      assert.ok(created >= 600, `the threadsafe functions went through the workaround (${created} created)`);
      assert.deepEqual(
        { nodeApi: nodeApi > 0, swapped: swapped > 0 },
        { nodeApi: tsfnFinalizeOrder === 'node-api', swapped: tsfnFinalizeOrder === 'swapped' },
        `the probe saw ${tsfnFinalizeOrder}; the addon saw ${JSON.stringify(result.host)}`
      );
    });

    test('spawnSupervised: ready line, stop, crash with its code, SPAWN_FAILED for a missing command', async (t) => {
      const result = await inBare(t, 'supervise').next('supervise');
      assert.equal(result.stopped.kind, 'stopped');
      assert.equal(running(result.pid), false);
      assert.equal(result.crashed.kind, 'crashed');
      assert.equal(result.crashed.code, 5);
      assert.equal(result.missing.code, 'SPAWN_FAILED');
    });

    test('spawnSupervised runs a Bare worker: ready on its line, stop() ends it through its own shutdown (stopped, lock released)', async (t) => {
      const { spawnSupervised } = await import(join(project, 'node_modules', 'qvac-managed', 'dist', 'index.js'));
      const lock = join(tempDir(t), 'worker.lock');
      const child = spawnSupervised({ command: bare, args: [worker, 'shutdown', 'signal', lock], cwd: project, readiness: { outputLine: '"event":"ready"' }, graceMs: 3_000 });
      t.after(() => child.stop({ graceMs: 0 }));
      await child.ready;
      assert.ok(existsSync(lock), 'the worker holds its lock');
      await child.stop();
      const exit = await child.exited;
      assert.equal(exit.kind, 'stopped');
      assert.equal(exit.code, 0, 'its shutdown coordinator exited cleanly on SIGTERM');
      assert.match(exit.outputTail, /"event":"cleanup"/);
      assert.equal(existsSync(lock), false);
      const crash = spawnSupervised({ command: bare, args: [worker, 'no-such-mode'], cwd: project });
      assert.equal((await crash.exited).kind, 'crashed');
    });

    for (const [how, send, code] of [
      ['signal', 'SIGTERM', 0],
      ['signal', 'SIGINT', 0],
      ['uncaught', null, 1],
      ['unhandled', null, 1],
      ['blocked', 'SIGTERM', 0]
    ]) {
      test(`shutdown: ${how}${send ? ` (${send})` : ''} — cleanup ran, the lock released, the supervised child killed, exit ${code}`, async (t) => {
        const lock = join(tempDir(t), 'worker.lock');
        const w = inBare(t, 'shutdown', how, lock);
        const ready = await w.next('ready');
        assert.ok(existsSync(lock));
        if (send) w.child.kill(send);
        const exit = await w.exited;
        assert.equal(exit.code, code, JSON.stringify(exit));
        await w.next('cleanup', 1_000);
        assert.equal(existsSync(lock), false, 'the lock is released');
        await waitFor(() => !running(ready.child), 5_000, 'the supervised child killed');
      });
    }
  });
}

describe('the SDK-shaped worker (bare-runtime/spawn, its own Unix socket)', () => {
  test('parent SIGKILLed: the worker cleans up and is gone within 2 s, lock removed; a second worker meanwhile is refused', async (t) => {
    const dir = tempDir(t);
    const lock = join(dir, 'worker.lock');
    const parent = run(t, process.execPath, [join(project, 'test', 'sdk-parent.mjs'), worker, lock, join(dir, 'a.sock')]);
    const { workerPid } = await parent.next('spawned');
    t.after(() => running(workerPid) && process.kill(workerPid, 'SIGKILL'));
    const ready = await parent.next('ready');
    assert.equal(ready.pid, workerPid);
    const second = run(t, process.execPath, [join(project, 'test', 'sdk-parent.mjs'), worker, lock, join(dir, 'b.sock')]);
    const refused = await second.next('refused');
    assert.equal(refused.error.code, 'LOCK_HELD');
    assert.equal(refused.error.holderPid, workerPid);
    parent.child.kill('SIGKILL');
    const killedAt = Date.now();
    await waitFor(() => !running(workerPid), 2_000, 'the worker gone within 2 s of its parent');
    assert.equal(existsSync(lock), false, `lock removed (worker gone after ${Date.now() - killedAt} ms)`);
  });

  test("requestCleanup with the SDK's own request: ack with the report, then the worker terminated", async (t) => {
    const dir = tempDir(t);
    const lock = join(dir, 'worker.lock');
    const parent = run(t, process.execPath, [join(project, 'test', 'sdk-parent.mjs'), worker, lock, join(dir, 'a.sock')]);
    const { workerPid } = await parent.next('spawned');
    t.after(() => running(workerPid) && process.kill(workerPid, 'SIGKILL'));
    await parent.next('ready');
    parent.child.stdin.write('stop\n');
    const stopped = await parent.next('stopped');
    assert.equal(stopped.acked, true, stopped.note);
    assert.equal(stopped.timedOut, false);
    assert.deepEqual(stopped.report, { closed: [], failed: [] });
    assert.match(stopped.note, /cleaned up and was terminated/);
    assert.equal(running(workerPid), false);
    assert.equal(existsSync(lock), false);
  });

  test('__shutdown__ over the socket: cleanup without exit, the report returned', async (t) => {
    const dir = tempDir(t);
    const lock = join(dir, 'worker.lock');
    const parent = run(t, process.execPath, [join(project, 'test', 'sdk-parent.mjs'), worker, lock, join(dir, 'a.sock')]);
    const { workerPid } = await parent.next('spawned');
    t.after(() => running(workerPid) && process.kill(workerPid, 'SIGKILL'));
    await parent.next('ready');
    parent.child.stdin.write('shutdown\n');
    const ack = await parent.next('ack');
    assert.deepEqual(ack.report, { closed: [], failed: [] });
    assert.equal(existsSync(lock), false, 'the lock released by the cleanup');
    assert.ok(running(workerPid), 'cleanup without exit');
  });
});
