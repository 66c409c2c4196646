import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, readFileSync, readdirSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { PidLock, LockHeldError } from '../dist/index.js';
import { deadPid, event, isRoot, noteNotRoot, spawnFixture, tempDir } from './helpers.mjs';

const ageFile = (path, seconds) => {
  const t = Date.now() / 1000 - seconds;
  utimesSync(path, t, t);
};

describe('PidLock', () => {
  test('acquire writes our pid first, refuses a second handle, release is idempotent', async (t) => {
    const path = join(tempDir(t), 'sub', 'worker.lock');
    const lock = await PidLock.acquire(path);
    const lines = readFileSync(path, 'utf8').split('\n');
    assert.equal(lines[0], String(process.pid));
    assert.equal(Number.parseInt(readFileSync(path, 'utf8'), 10), process.pid, 'old int parsers still read the pid');
    assert.ok(lines.some((l) => l.startsWith('start=')), 'start time recorded');
    assert.ok(lines.some((l) => l.startsWith('boot=')), 'boot id recorded');
    assert.deepEqual(PidLock.inspect(path), { pid: process.pid, alive: true, stale: false });

    const second = await PidLock.acquire(path).catch((e) => e);
    assert.ok(second instanceof LockHeldError);
    assert.equal(second.code, 'LOCK_HELD');
    assert.equal(second.holderPid, process.pid);
    assert.equal(second.holderAlive, true);
    assert.match(second.message, /already held by this process/);

    assert.equal(lock.held, true);
    lock.release();
    lock.release();
    assert.equal(lock.held, false);
    assert.equal(existsSync(path), false);
    assert.equal(PidLock.inspect(path), null);
    assert.deepEqual(readdirSync(join(path, '..')), [], 'no temp files left behind');
  });

  test('another live process holding it gets LOCK_HELD naming that pid; free after it releases', async (t) => {
    const path = join(tempDir(t), 'a.lock');
    const holder = spawnFixture(t, 'lock-holder.mjs', ['pid', path]);
    await holder.next(event('acquired'));
    const err = await PidLock.acquire(path).catch((e) => e);
    assert.equal(err.code, 'LOCK_HELD');
    assert.equal(err.holderPid, holder.pid);
    assert.equal(err.holderAlive, true);
    assert.equal(err.path, path);
    assert.match(err.message, new RegExp(`pid ${holder.pid}`));
    assert.deepEqual(PidLock.inspect(path), { pid: holder.pid, alive: true, stale: false });

    await holder.finish();
    assert.equal(existsSync(path), false, 'holder removed its lock on release');
    (await PidLock.acquire(path)).release();
  });

  test('a holder killed with SIGKILL leaves a stale lock that is taken over', async (t) => {
    const path = join(tempDir(t), 'k.lock');
    const holder = spawnFixture(t, 'lock-holder.mjs', ['pid', path]);
    await holder.next(event('acquired'));
    holder.child.kill('SIGKILL');
    await holder.exited;
    assert.equal(existsSync(path), true, 'SIGKILL leaves the file');
    assert.deepEqual(PidLock.inspect(path), { pid: holder.pid, alive: false, stale: true });
    const lock = await PidLock.acquire(path);
    assert.equal(PidLock.inspect(path).pid, process.pid);
    lock.release();
  });

  test('wait: retries until the holder releases', async (t) => {
    const path = join(tempDir(t), 'w.lock');
    const holder = spawnFixture(t, 'lock-holder.mjs', ['pid', path]);
    await holder.next(event('acquired'));
    setTimeout(() => holder.finish(), 150);
    const lock = await PidLock.acquire(path, { wait: { attempts: 100, baseDelayMs: 10, maxDelayMs: 40, deadlineMs: 20_000 } });
    assert.equal(PidLock.inspect(path).pid, process.pid);
    lock.release();
  });

  test('wait: gives up within its bounds with LOCK_HELD and the attempts made', async (t) => {
    const path = join(tempDir(t), 'g.lock');
    const holder = spawnFixture(t, 'lock-holder.mjs', ['pid', path]);
    await holder.next(event('acquired'));
    const err = await PidLock.acquire(path, { wait: { attempts: 4, baseDelayMs: 5 } }).catch((e) => e);
    assert.equal(err.code, 'LOCK_HELD');
    assert.equal(err.attempts, 4);
    assert.equal(err.holderPid, holder.pid);
    assert.match(err.message, /after 4 attempts/);
  });

  test('pid reuse: a live pid with another start time is a dead holder; with its own start time it holds', async (t) => {
    const dir = tempDir(t);
    const bystander = spawnFixture(t, 'lock-holder.mjs', ['file', join(dir, 'unrelated.lock')]);
    await bystander.next(event('acquired'));
    const realStart = readFileSync(`/proc/${bystander.pid}/stat`, 'utf8').split(')')[1].trim().split(/\s+/)[19];
    const boot = readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();

    const reused = join(dir, 'reused.lock');
    writeFileSync(reused, `${bystander.pid}\nstart=${Number(realStart) - 7}\nboot=${boot}\n`);
    assert.deepEqual(PidLock.inspect(reused), { pid: bystander.pid, alive: false, stale: true });
    const lock = await PidLock.acquire(reused);
    assert.equal(PidLock.inspect(reused).pid, process.pid);
    lock.release();

    const genuine = join(dir, 'genuine.lock');
    writeFileSync(genuine, `${bystander.pid}\nstart=${realStart}\nboot=${boot}\n`);
    const err = await PidLock.acquire(genuine).catch((e) => e);
    assert.equal(err.code, 'LOCK_HELD');
    assert.equal(err.holderPid, bystander.pid);

    const otherBoot = join(dir, 'other-boot.lock');
    writeFileSync(otherBoot, `${bystander.pid}\nstart=${realStart}\nboot=00000000-0000-0000-0000-000000000000\n`);
    assert.equal(PidLock.inspect(otherBoot).stale, true, 'a record from another boot is stale');
  });

  test('pid 1 is never taken; pid 0 and negatives name no holder', async (t) => {
    const dir = tempDir(t);
    const init = join(dir, 'init.lock');
    writeFileSync(init, '1\n');
    ageFile(init, 3600);
    const err = await PidLock.acquire(init).catch((e) => e);
    assert.equal(err.code, 'LOCK_HELD');
    assert.equal(err.holderPid, 1);
    assert.equal(err.holderAlive, true);
    assert.match(err.message, new RegExp(`rm -f '${init.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}'`));
    assert.equal(readFileSync(init, 'utf8'), '1\n', 'untouched');

    for (const content of ['0\n', '-1\n']) {
      const path = join(dir, `group${content.trim()}.lock`);
      writeFileSync(path, content);
      const held = await PidLock.acquire(path).catch((e) => e);
      assert.equal(held.code, 'LOCK_HELD');
      assert.equal(held.holderPid, null);
    }
  });

  test('EPERM from kill(pid, 0) means alive: an unprivileged process does not take pid 1\'s lock', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'eperm.lock');
    writeFileSync(path, '1\n');
    chmodSync(dir, 0o777);
    // As root kill(1, 0) succeeds, so run the attempt as nobody to get a real EPERM.
    noteNotRoot(t, 'the probe runs as this user, not as nobody');
    const probe = spawnFixture(t, 'lock-probe.mjs', ['pid', path], isRoot ? { uid: 65534, gid: 65534 } : {});
    const result = await probe.next(() => true);
    if (isRoot) assert.equal(result.uid, 65534, 'the probe ran unprivileged');
    assert.equal(result.event, 'failed', JSON.stringify(result));
    assert.equal(result.code, 'LOCK_HELD');
    assert.equal(result.holderPid, 1);
    assert.equal(result.holderAlive, true);
    assert.equal(readFileSync(path, 'utf8'), '1\n');
  });

  test('empty and garbage files are held until 30 s old, then taken; the message says how to clear', async (t) => {
    const dir = tempDir(t);
    for (const [name, content] of [['empty', ''], ['garbage', '\u0000\u0000xx not a pid'], ['whitespace', '  \n\n']]) {
      const path = join(dir, `${name}.lock`);
      writeFileSync(path, content);
      assert.deepEqual(PidLock.inspect(path), { pid: null, alive: false, stale: false });
      const err = await PidLock.acquire(path).catch((e) => e);
      assert.equal(err.code, 'LOCK_HELD', name);
      assert.equal(err.holderPid, null);
      assert.equal(err.holderAlive, false);
      assert.match(err.message, /rm -f '/);
      ageFile(path, 31);
      assert.equal(PidLock.inspect(path).stale, true);
      const lock = await PidLock.acquire(path);
      assert.equal(PidLock.inspect(path).pid, process.pid);
      lock.release();
    }
  });

  test('50 racers over one stale lock: exactly one owner, and a live owner is never taken', async (t) => {
    const dir = tempDir(t);
    const path = join(dir, 'race.lock');
    writeFileSync(path, `${await deadPid()}\n`);
    const go = join(dir, 'go');
    const racers = Array.from({ length: 50 }, () => spawnFixture(t, 'lock-racer.mjs', [path, go]));
    await Promise.all(racers.map((r) => r.next(event('ready'), 60_000)));
    writeFileSync(go, '');
    const outcomes = await Promise.all(racers.map((r) => r.next((e) => e.event === 'won' || e.event === 'lost', 60_000)));
    const winners = outcomes.filter((o) => o.event === 'won');
    assert.equal(winners.length, 1, JSON.stringify(outcomes));
    assert.equal(PidLock.inspect(path).pid, winners[0].pid);
    for (const lost of outcomes.filter((o) => o.event === 'lost')) assert.equal(lost.code, 'LOCK_HELD');

    // With the winner alive, a second wave takes nothing.
    const go2 = join(dir, 'go2');
    const wave = Array.from({ length: 10 }, () => spawnFixture(t, 'lock-racer.mjs', [path, go2]));
    await Promise.all(wave.map((r) => r.next(event('ready'), 60_000)));
    writeFileSync(go2, '');
    const second = await Promise.all(wave.map((r) => r.next((e) => e.event === 'won' || e.event === 'lost', 60_000)));
    assert.ok(second.every((o) => o.event === 'lost' && o.holderPid === winners[0].pid), JSON.stringify(second));
    await Promise.all(racers.map((r) => r.finish()));
    await Promise.all(wave.map((r) => r.exited));
    assert.equal(existsSync(path), false, 'winner released on exit');
    assert.deepEqual(readdirSync(dir).sort(), ['go', 'go2'], 'no temp files left behind');
  });

  test('unwritable directory: LOCK_IO naming the path, no crash', async (t) => {
    const err = await PidLock.acquire('/dev/null/qvac.lock').catch((e) => e);
    assert.equal(err.code, 'LOCK_IO');
    assert.match(err.message, /\/dev\/null\/qvac\.lock/);

    const dir = tempDir(t);
    const locked = join(dir, 'ro');
    mkdirSync(locked, { mode: 0o555 });
    chmodSync(locked, 0o555);
    noteNotRoot(t, 'the probe runs as this user, not as nobody');
    const probe = spawnFixture(t, 'lock-probe.mjs', ['pid', join(locked, 'x.lock')], isRoot ? { uid: 65534, gid: 65534 } : {});
    const result = await probe.next(() => true);
    if (isRoot) assert.equal(result.uid, 65534, 'the probe ran unprivileged');
    assert.equal(result.event, 'failed');
    assert.equal(result.code, 'LOCK_IO');
    assert.match(result.message, /permission denied|Permission denied/i);
    assert.match(result.message, /x\.lock/);
  });

  test('AbortSignal ends a wait at once with an AbortError', async (t) => {
    const path = join(tempDir(t), 'abort.lock');
    const holder = spawnFixture(t, 'lock-holder.mjs', ['pid', path]);
    await holder.next(event('acquired'));
    const controller = new AbortController();
    const started = Date.now();
    setTimeout(() => controller.abort(), 50);
    const err = await PidLock.acquire(path, { wait: { attempts: 100, baseDelayMs: 30_000, deadlineMs: 120_000 }, signal: controller.signal }).catch((e) => e);
    assert.equal(err.name, 'AbortError');
    // The pending delay was 15-30 s: ending before it proves the wait was interrupted.
    assert.ok(Date.now() - started < 10_000, `took ${Date.now() - started} ms`);
    const pre = await PidLock.acquire(path, { wait: {}, signal: AbortSignal.abort() }).catch((e) => e);
    assert.equal(pre.name, 'AbortError');
  });

  test('bad input is refused before anything is written', async (t) => {
    const dir = tempDir(t);
    for (const bad of ['', undefined, 42]) {
      const err = await PidLock.acquire(bad).catch((e) => e);
      assert.equal(err.code, 'INVALID_OPTION');
    }
    for (const wait of [{ attempts: 0 }, { attempts: 1.5 }, { deadlineMs: Number.NaN }, { baseDelayMs: -1 }, { jitter: 2 }]) {
      const err = await PidLock.acquire(join(dir, 'x.lock'), { wait }).catch((e) => e);
      assert.equal(err.code, 'INVALID_OPTION', JSON.stringify(wait));
      assert.match(err.message, new RegExp(`\`${Object.keys(wait)[0]}\``));
    }
    assert.deepEqual(readdirSync(dir), []);
  });

  test('a lock held at normal exit or process.exit() is released', async (t) => {
    const dir = tempDir(t);
    for (const flags of [[], ['--exit=process-exit']]) {
      const path = join(dir, `exit${flags.length}.lock`);
      const holder = spawnFixture(t, 'lock-holder.mjs', ['pid', path, ...flags]);
      await holder.next(event('acquired'));
      if (flags.length === 0) holder.child.stdin.destroy(); // closes stdin: fixture exits after release
      const { code } = await holder.exited;
      assert.equal(code, 0);
      assert.equal(existsSync(path), false, `released on ${flags[0] ?? 'normal exit'}`);
    }
  });
});
