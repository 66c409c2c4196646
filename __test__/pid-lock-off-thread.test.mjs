// The one-try `PidLock.acquire(path)` (no `wait`) does its file work (write, fsync, link, read the
// holder) off the JS thread, like every other wait in the package (I6): a filesystem that blocks
// stalls the attempt, never the event loop.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { join } from 'node:path';
import { describe, test } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';

import { PidLock } from '../dist/index.js';
import { tempDir } from './helpers.mjs';

describe('PidLock.acquire without wait runs off the JS thread', () => {
  test('an attempt blocked in the filesystem leaves the event loop free', async (t) => {
    // A FIFO at the lock path: the attempt finds the path taken and opens it to read the holder,
    // which blocks until a writer opens the FIFO (as a read on a hung network filesystem would).
    const path = join(tempDir(t), 'blocked.lock');
    assert.equal(spawnSync('mkfifo', [path]).status, 0, 'mkfifo');
    // A writer of last resort, so that a JS thread blocked by the attempt comes back at all.
    const rescue = spawn('sh', ['-c', 'sleep 3; exec 3>"$0"; echo rescued >&3', path], { stdio: 'ignore' });
    t.after(() => rescue.kill('SIGKILL'));

    const started = performance.now();
    const attempt = PidLock.acquire(path).then(
      () => 'acquired',
      (error) => error
    );
    const returnedMs = performance.now() - started;
    await sleep(50);
    const timerMs = performance.now() - started;
    assert.ok(returnedMs < 500, `PidLock.acquire() returned after ${Math.round(returnedMs)} ms: the attempt ran on the JS thread`);
    assert.ok(timerMs < 1_000, `a 50 ms timer fired after ${Math.round(timerMs)} ms: the event loop was blocked`);

    // Unblock the attempt: a writer opens the FIFO (a process of ours, killed at the end should
    // no reader be left), and the attempt reads a holder that names no process: held (damaged file).
    const writer = spawn('sh', ['-c', 'echo "not a holder" > "$0"', path], { stdio: 'ignore' });
    t.after(() => writer.kill('SIGKILL'));
    const error = await attempt;
    assert.equal(error.code, 'LOCK_HELD', String(error));
    assert.equal(error.holderPid, null);
  });

  test('the one-try path still takes a free lock and refuses a held one', async (t) => {
    const path = join(tempDir(t), 'p.lock');
    const lock = await PidLock.acquire(path);
    assert.equal(lock.held, true);
    const second = await PidLock.acquire(path).catch((e) => e);
    assert.equal(second.code, 'LOCK_HELD');
    assert.equal(second.holderPid, process.pid);
    lock.release();
    (await PidLock.acquire(path)).release();
  });
});
