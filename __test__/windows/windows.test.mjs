// The package as a Windows user gets it: installed from the win32 tarballs into a fresh project
// and run by Node 22 for Windows (scripts/test-windows.mjs runs this file under Wine here; the
// release workflow's Windows leg can run it on Windows). Everything is imported by package name;
// the fake serve is the project's `node_modules/@qvac/cli`, run by node.exe as the real CLI is.
//
// Under Wine 8 two things differ from Windows, and the tests say where they lean on neither:
// - GenerateConsoleCtrlEvent fails (ERROR_INVALID_HANDLE even with a console), so the graceful
//   CTRL_BREAK step never reaches a process: every stop here ends with the kill after the grace.
// - undici's fetch (the global fetch) cannot connect by itself (`connect UNKNOWN`, every request,
//   the first included): it asks for TCP keep-alive before the connect, and Wine 8.0 lacks the
//   TCP_KEEPALIVE socket option libuv then sets. The lane preloads wine-keepalive.mjs (Wine only),
//   which defers that keep-alive to the connect, so these tests use the global fetch as users do.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { event, fixtures, running, spawnFixture, tempDir, waitFor } from './helpers.mjs';


const project = join(dirname(fileURLToPath(import.meta.url)), '..');
const platformPackage = join(project, 'node_modules', 'qvac-managed-win32-x64-msvc');
const model = 'QWEN3_600M_INST_Q4';

/** `qvac-managed <args>` as the bin shim runs it (npm made Unix shims here: the install ran on Linux). */
function cli(args) {
  const shim = join(project, 'node_modules', 'qvac-managed', 'bin', 'qvac-managed.cjs');
  const result = spawnSync(process.execPath, [shim, ...args], { cwd: project, encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

/** A record file of the registry (the fleet's `<key>.json`), or undefined. */
const recordOf = (registryDir) => readdirSync(registryDir).find((f) => /^[0-9a-f]{16}\.json$/.test(f));

test('runs on Windows: the platform package holds a PE addon and a PE runner, which the loader uses', async () => {
  assert.equal(process.platform, 'win32');
  const files = readdirSync(platformPackage).sort();
  assert.deepEqual(files, ['README.md', 'package.json', 'qvac-managed.exe', 'qvac-managed.win32-x64-msvc.node']);
  for (const file of ['qvac-managed.exe', 'qvac-managed.win32-x64-msvc.node']) {
    const bytes = readFileSync(join(platformPackage, file));
    assert.equal(bytes.subarray(0, 2).toString('latin1'), 'MZ', `${file} is a PE file`);
    const pe = bytes.readUInt32LE(0x3c);
    assert.equal(bytes.readUInt16LE(pe + 4), 0x8664, `${file} is for x64`);
  }
  const m = await import('qvac-managed');
  assert.equal(m.resolveRunnerPath().toLowerCase(), join(platformPackage, 'qvac-managed.exe').toLowerCase());
  assert.equal(m.platformId(), 'win32-x64-msvc');
});

test('PidLock: a second process sees the live holder; once the holder is killed the lock is taken over', async (t) => {
  const { PidLock } = await import('qvac-managed');
  const dir = tempDir(t);
  const path = join(dir, 'worker.lock');
  const holder = spawnFixture(t, 'lock-holder.mjs', [path]);
  const held = await holder.next(event('held'), 30_000);
  assert.equal(held.pid, holder.pid);
  await assert.rejects(PidLock.acquire(path), (err) => err.code === 'LOCK_HELD' && err.holderPid === holder.pid && err.holderAlive === true);
  assert.deepEqual(PidLock.inspect(path), { pid: holder.pid, alive: true, stale: false });
  holder.child.kill(); // TerminateProcess: nothing of the holder's own cleanup runs
  await holder.exited;
  assert.equal(PidLock.inspect(path)?.stale, true, 'a dead holder is provably dead (its pid and creation time)');
  const lock = await PidLock.acquire(path);
  assert.equal(PidLock.inspect(path)?.pid, process.pid);
  lock.release();
  assert.equal(existsSync(path), false);
});

test('FileLock (LockFileEx): exclusive between processes, free again when the holder dies', async (t) => {
  const { FileLock } = await import('qvac-managed');
  const path = join(tempDir(t), 'models.lock');
  const holder = spawnFixture(t, 'lock-holder.mjs', [path, 'file']);
  await holder.next(event('held'), 30_000);
  assert.equal(FileLock.tryAcquire(path), null, 'held by the other process');
  await assert.rejects(FileLock.acquire(path, { attempts: 3, baseDelayMs: 10 }), (err) => err.code === 'LOCK_TIMEOUT');
  holder.child.kill();
  await holder.exited;
  const lock = await waitFor(() => FileLock.tryAcquire(path), 10_000, 'the lock freed by the holder’s death');
  lock.release();
});

test('Node-API host workaround: the addon imports nothing from node.exe, its lookups go through src/host/windows.rs, and Node calls finalizers in Node-API order', async (t) => {
  const { FileLock, nodeApiHostReport } = await import('qvac-managed');
  const addon = readFileSync(join(platformPackage, 'qvac-managed.win32-x64-msvc.node'));
  assert.equal(addon.includes(Buffer.from('node.exe', 'latin1')), false, 'no import from node.exe (bare.exe is not named so)');
  const path = join(tempDir(t), 'host.lock');
  for (let i = 0; i < 5; i++) (await FileLock.acquire(path, { timeoutMs: 5_000 })).release();
  await new Promise((r) => setTimeout(r, 200));
  const report = nodeApiHostReport();
  assert.ok(report.threadsafeFunctionsCreated >= 5, `created through the wrapper: ${JSON.stringify(report)}`);
  assert.ok(report.finalizedInNodeApiOrder >= 5, `finalized in Node-API order: ${JSON.stringify(report)}`);
  assert.equal(report.finalizedInSwappedOrder, 0);
});

test('spawnSupervised: stop ends the whole tree through its Job Object, a grandchild that ignores CTRL_BREAK included', async (t) => {
  const { spawnSupervised } = await import('qvac-managed');
  const dir = tempDir(t);
  const events = join(dir, 'events.jsonl');
  const config = join(dir, 'qvac.config.json');
  writeFileSync(config, JSON.stringify({ serve: { models: { [model]: {} } } }));
  const port = 20000 + (process.pid % 20000);
  const child = spawnSupervised({
    command: process.execPath,
    args: [join(fixtures, 'fake-serve.mjs'), 'serve', '--openai', '--config', config, '--port', String(port), '--host', '127.0.0.1', '--api-key', 'k'],
    env: { FAKE_SERVE_GRANDCHILD: '1', FAKE_SERVE_EVENTS: events },
    readiness: { http: `http://127.0.0.1:${port}/v1/models`, bearer: 'k' },
    graceMs: 300
  });
  await child.ready;
  const grandchild = await waitFor(() => {
    const lines = existsSync(events) ? readFileSync(events, 'utf8').trim().split('\n') : [];
    return lines.map((l) => JSON.parse(l)).find((e) => e.event === 'grandchild')?.grandchildPid;
  }, 10_000, 'the grandchild');
  assert.ok(running(grandchild));
  const exit = await child.stop();
  assert.equal(exit.kind, 'stopped');
  assert.equal(running(child.pid), false, 'the serve is gone');
  assert.equal(running(grandchild), false, 'the grandchild went with the job');
});

test('createQvac: the fake serve is found as node_modules/@qvac/cli and run by node.exe; generateText; close and reap', async (t) => {
  const { createQvac } = await import('qvac-managed');
  const { generateText } = await import('ai');
  const registryDir = tempDir(t);
  const qvac = await createQvac({ mode: 'managed', models: [model], registryDir, serveIdleTimeout: 200 });
  assert.match(qvac.baseURL, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
  // The first direct request to baseURL with the global fetch (undici), right after createQvac.
  // Another client's pooled keep-alive socket would keep the serve (it counts as a client): this
  // one asks the serve to close it, so the reap below measures the provider alone.
  const listed = await fetch(`${qvac.baseURL}/models`, { headers: { authorization: `Bearer ${qvac.apiKey}`, connection: 'close' } });
  assert.equal(listed.status, 200);
  assert.equal((await listed.json()).data.length, 1, 'the one model it serves');
  assert.ok(running(qvac.pid));
  const record = JSON.parse(readFileSync(join(registryDir, recordOf(registryDir)), 'utf8'));
  assert.equal(record.pid ?? record.servePid, qvac.pid);
  const { text } = await generateText({ model: qvac(model), prompt: 'hello from windows' });
  assert.equal(text, 'echo: hello from windows');
  const pid = qvac.pid;
  const closed = Date.now();
  await qvac.close();
  await waitFor(() => !running(pid), 30_000, 'the serve reaped after close');
  // Under Wine the reap after close still takes ~5.2 s with idle 200 (on Linux it is on the idle
  // clock, asserted by trust.test.mjs): not met here yet, cause not found (see the README's
  // Platforms). Printed, not asserted, until it is.
  console.log(`# reaped ${Date.now() - closed} ms after close (idle 200 ms)`);
  await waitFor(() => recordOf(registryDir) === undefined, 10_000, 'the record removed');
});

test('a consumer killed outright is noticed by its process handle and the serve is reaped', async (t) => {
  const registryDir = tempDir(t);
  const consumer = spawnFixture(t, 'windows-consumer.mjs', [registryDir, model]);
  const attached = await consumer.next(event('attached'), 60_000);
  assert.ok(running(attached.servePid));
  consumer.child.kill(); // TerminateProcess: no exit hook runs, its marker stays behind
  await consumer.exited;
  await waitFor(() => !running(attached.servePid), 30_000, 'the serve reaped after its only consumer was killed');
});

test('the serve dies with its runner (KILL_ON_JOB_CLOSE), even when the runner is killed outright', async (t) => {
  const { ensureServe } = await import('qvac-managed');
  const registryDir = tempDir(t);
  const serve = await ensureServe({ models: [model], serveIdleTimeout: 60_000 }, { registryDir, graceMs: 300 });
  t.after(() => serve.release());
  assert.ok(running(serve.pid) && running(serve.runnerPid));
  process.kill(serve.runnerPid); // TerminateProcess on the runner (a process this test started, by pid)
  await waitFor(() => !running(serve.pid), 10_000, 'the serve gone with its runner’s job');
});

test('CLI: ps lists the serve; stop asks its runner through its stop event and both are gone', async (t) => {
  const { ensureServe } = await import('qvac-managed');
  const registryDir = tempDir(t);
  const serve = await ensureServe({ models: [model], serveIdleTimeout: 60_000 }, { registryDir, graceMs: 300 });
  t.after(() => serve.release());
  const ps = cli(['--registry', registryDir, 'ps', '--json']);
  assert.equal(ps.status, 0, ps.stderr);
  const [listed] = JSON.parse(ps.stdout);
  assert.equal(listed.servePid ?? listed.pid, serve.pid);
  // The runner measured the serve's tree (working sets, GetProcessMemoryInfo): a Node process
  // holds tens of MiB.
  assert.ok(listed.memoryBytes > 10 * 1024 * 1024, `ps MEM ${listed.memoryBytes}`);
  assert.ok(listed.peakMemoryBytes >= listed.memoryBytes);
  const stop = cli(['--registry', registryDir, 'stop', '--all']);
  assert.equal(stop.status, 0, stop.stdout + stop.stderr);
  assert.match(stop.stdout, /stopped/);
  assert.equal(running(serve.pid), false);
  await waitFor(() => !running(serve.runnerPid), 10_000, 'the runner gone');
  const after = cli(['--registry', registryDir, 'ps', '--json']);
  assert.deepEqual(JSON.parse(after.stdout), []);
});

test('idle counts live connections (GetExtendedTcpTable); stopServe stops the serve for everyone with an exit event', async (t) => {
  const { ensureServe, stopServe } = await import('qvac-managed');
  const { connect } = await import('node:net');
  const registryDir = tempDir(t);
  const options = { models: [model], serveIdleTimeout: 200 };
  const serve = await ensureServe(options, { registryDir, graceMs: 300 });
  // A client on baseURL that is no consumer: a plain TCP connection keeps the serve.
  const socket = connect(serve.port, '127.0.0.1');
  t.after(() => socket.destroy());
  await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  serve.release();
  await new Promise((r) => setTimeout(r, 2_000));
  assert.ok(running(serve.pid), 'kept while the connection is open');
  await waitFor(() => JSON.parse(cli(['--registry', registryDir, 'ps', '--json']).stdout)[0]?.connections >= 1, 10_000, 'ps counts the connection');
  socket.destroy();
  await waitFor(() => !running(serve.pid), 30_000, 'reaped once the connection closed');

  const kept = await ensureServe({ ...options, serveIdleTimeout: 60_000 }, { registryDir, graceMs: 300 });
  t.after(() => kept.release());
  const exited = new Promise((resolve) => kept.on('exit', resolve));
  const alive = setInterval(() => {}, 1_000); // listeners keep nothing alive
  const result = await stopServe({ ...options, serveIdleTimeout: 60_000 }, { registryDir });
  assert.equal(result.stopped, true);
  assert.equal(result.pid, kept.pid);
  const exit = await exited;
  clearInterval(alive);
  assert.equal(exit.kind, 'stopped');
  assert.ok(exit.peakBytes > 10 * 1024 * 1024, `the exit carries the peak (${exit.peakBytes})`);
  assert.equal(running(kept.pid), false);
});
