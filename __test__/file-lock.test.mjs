import assert from 'node:assert/strict';
import { existsSync, readlinkSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { FileLock, LockTimeoutError } from '../dist/index.js';
import { event, isRoot, spawnFixture, tempDir } from './helpers.mjs';

describe('FileLock', () => {
  test('tryAcquire never blocks: null while another process holds it, a lock once it is free', async (t) => {
    const path = join(tempDir(t), 'registry.lock');
    const holder = spawnFixture(t, 'lock-holder.mjs', ['file', path]);
    await holder.next(event('acquired'));
    const started = Date.now();
    assert.equal(FileLock.tryAcquire(path), null);
    assert.equal(FileLock.tryAcquire(path, { shared: true }), null);
    assert.ok(Date.now() - started < 5_000);
    await holder.finish();
    const lock = FileLock.tryAcquire(path);
    assert.ok(lock);
    assert.equal(lock.held, true);
    lock.release();
    lock.release();
    assert.equal(lock.held, false);
    assert.equal(existsSync(path), true, 'the lock file stays (removing it would split waiters)');
  });

  test('shared locks coexist across processes and keep out an exclusive one', async (t) => {
    const path = join(tempDir(t), 'shared.lock');
    const reader = spawnFixture(t, 'lock-holder.mjs', ['file', path, '--shared']);
    await reader.next(event('acquired'));
    const mine = FileLock.tryAcquire(path, { shared: true });
    assert.ok(mine, 'second shared holder admitted');
    assert.equal(mine.shared, true);
    const writer = spawnFixture(t, 'lock-holder.mjs', ['file', path]);
    const refused = await writer.next(() => true);
    assert.equal(refused.event, 'failed');
    mine.release();
    await reader.finish();
  });

  test('the kernel frees the lock when its holder is SIGKILLed', async (t) => {
    const path = join(tempDir(t), 'killed.lock');
    const holder = spawnFixture(t, 'lock-holder.mjs', ['file', path]);
    await holder.next(event('acquired'));
    holder.child.kill('SIGKILL');
    await holder.exited;
    const lock = FileLock.tryAcquire(path);
    assert.ok(lock);
    lock.release();
  });

  test('the descriptor is close-on-exec: a child of the holder does not keep the lock', async (t) => {
    const path = join(tempDir(t), 'inherit.lock');
    const holder = spawnFixture(t, 'lock-holder.mjs', ['file', path, '--spawn-child']);
    const { childPid } = await holder.next(event('acquired'));
    t.after(() => {
      try {
        process.kill(childPid, 'SIGKILL');
      } catch {}
    });
    const childFds = readdirSync(`/proc/${childPid}/fd`).map((fd) => {
      try {
        return readlinkSync(`/proc/${childPid}/fd/${fd}`);
      } catch {
        return '';
      }
    });
    assert.equal(childFds.includes(path), false, `child fds: ${childFds.join(', ')}`);
    holder.child.kill('SIGKILL');
    await holder.exited;
    // The holder's child is still running; had it inherited the descriptor, the lock would be held.
    process.kill(childPid, 0);
    const lock = FileLock.tryAcquire(path);
    assert.ok(lock, 'lock free although the holder\'s child lives');
    lock.release();
  });

  test('acquire waits with backoff and gets the lock when it is freed', async (t) => {
    const path = join(tempDir(t), 'wait.lock');
    const holder = spawnFixture(t, 'lock-holder.mjs', ['file', path]);
    await holder.next(event('acquired'));
    setTimeout(() => holder.finish(), 150);
    const lock = await FileLock.acquire(path, { attempts: 100, baseDelayMs: 10, maxDelayMs: 40, deadlineMs: 20_000 });
    assert.equal(lock.held, true);
    lock.release();
  });

  test('acquire times out with LOCK_TIMEOUT, the attempts made, elapsed time and the holder pid', async (t) => {
    const path = join(tempDir(t), 'timeout.lock');
    const holder = spawnFixture(t, 'lock-holder.mjs', ['file', path]);
    await holder.next(event('acquired'));
    const err = await FileLock.acquire(path, { attempts: 3, baseDelayMs: 20 }).catch((e) => e);
    assert.ok(err instanceof LockTimeoutError);
    assert.equal(err.code, 'LOCK_TIMEOUT');
    assert.equal(err.attempts, 3);
    assert.equal(err.holderPid, holder.pid);
    assert.ok(err.elapsedMs >= 20, `elapsed ${err.elapsedMs}`);
    assert.match(err.message, new RegExp(`held by pid ${holder.pid} after 3 attempts`));

    const byDeadline = await FileLock.acquire(path, { attempts: 10_000, baseDelayMs: 5, maxDelayMs: 10, deadlineMs: 100 }).catch((e) => e);
    assert.equal(byDeadline.code, 'LOCK_TIMEOUT');
    assert.ok(byDeadline.attempts < 10_000, 'the deadline ended it, not the attempts');
  });

  test('AbortSignal cancels a wait at once; an aborted signal rejects before trying', async (t) => {
    const path = join(tempDir(t), 'abort.lock');
    const holder = spawnFixture(t, 'lock-holder.mjs', ['file', path]);
    await holder.next(event('acquired'));
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 50);
    const err = await FileLock.acquire(path, { attempts: 100, baseDelayMs: 30_000, deadlineMs: 120_000, signal: controller.signal }).catch((e) => e);
    assert.equal(err.name, 'AbortError');
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms (the pending delay was 15-30 s)`);
    const pre = await FileLock.acquire(path, { signal: AbortSignal.abort() }).catch((e) => e);
    assert.equal(pre.name, 'AbortError');
  });

  test('bad options and unusable paths get typed errors', async (t) => {
    const dir = tempDir(t);
    for (const opts of [{ attempts: 0 }, { deadlineMs: -5 }, { baseDelayMs: Number.POSITIVE_INFINITY }]) {
      const err = await FileLock.acquire(join(dir, 'x.lock'), opts).catch((e) => e);
      assert.equal(err.code, 'INVALID_OPTION');
    }
    assert.deepEqual(readdirSync(dir), [], 'nothing written for bad options');
    assert.throws(() => FileLock.tryAcquire(''), { code: 'INVALID_OPTION' });
    assert.throws(() => FileLock.tryAcquire('/dev/null/x.lock'), (e) => e.code === 'LOCK_IO' && /\/dev\/null\/x\.lock/.test(e.message));
  });

  test('an unprivileged process gets LOCK_IO for a lock it may not open', { skip: !isRoot && 'needs root to spawn a process as nobody' }, async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'root-only.lock');
    FileLock.tryAcquire(path).release(); // creates it 0600, owned by root
    const probe = spawnFixture(t, 'lock-probe.mjs', ['file', path], { uid: 65534, gid: 65534 });
    const result = await probe.next(() => true);
    assert.equal(result.uid, 65534);
    assert.equal(result.code, 'LOCK_IO');
    assert.match(result.message, /permission denied/i);
  });

  test('Symbol.dispose releases', async (t) => {
    const path = join(tempDir(t), 'dispose.lock');
    {
      const lock = FileLock.tryAcquire(path);
      lock[Symbol.dispose]();
      assert.equal(lock.held, false);
    }
    assert.ok(FileLock.tryAcquire(path));
  });
});
