// Every exported function refuses bad arguments with INVALID_OPTION and `.option` naming the
// argument, before anything is spawned or written; durations are bounded by what a JS timer holds
// (2^31-1 ms), so no value can panic the addon or wrap a timer to ~0.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import * as m from '../dist/index.js';
import { fixtures, tempDir, withEnv } from './helpers.mjs';

const fakeServe = join(fixtures, 'fake-serve.mjs');
const MODEL = 'QWEN3_600M_INST_Q4';
const managed = (extra) => ({ mode: 'managed', models: [MODEL], serveBinPath: fakeServe, ...extra });
const deep = (n) => {
  const root = {};
  let o = root;
  for (let i = 0; i < n; i++) o = o.a = {};
  return root;
};

// [name, call, option] — call may throw or reject.
const cases = [
  ['createQvac(null)', () => m.createQvac(null), 'options'],
  ['createQvac with a 5000-deep model config', () => m.createQvac(managed({ models: [{ name: MODEL, config: deep(5000) }] })), /^models\[0\]\.config/],
  ['serveHost with a NUL byte', () => m.createQvac(managed({ serveHost: 'a\0b' })), 'serveHost'],
  ['serveHost "not a host!"', () => m.createQvac(managed({ serveHost: 'not a host!' })), 'serveHost'],
  ['serveBinPath with a NUL byte', () => m.createQvac(managed({ serveBinPath: '/bin/q\0vac' })), 'serveBinPath'],
  ['serveStartTimeout 1e22', () => m.createQvac(managed({ serveStartTimeout: 1e22 })), 'serveStartTimeout'],
  ['serveStartTimeout 2^31', () => m.createQvac(managed({ serveStartTimeout: 2 ** 31 })), 'serveStartTimeout'],
  ['serveIdleTimeout 1e22', () => m.createQvac(managed({ serveIdleTimeout: 1e22 })), 'serveIdleTimeout'],
  ['a header value with CR/LF', () => m.createQvac(managed({ headers: { 'x-a': 'a\r\nb' } })), 'headers.x-a'],
  ['ensureServe(null)', () => m.ensureServe(null), 'options'],
  ['spawnSupervised(undefined)', () => m.spawnSupervised(undefined), 'options'],
  ["readiness: 'x'", () => m.spawnSupervised({ command: '/bin/true', readiness: 'x' }), 'readiness'],
  ["readiness: { http: 'not a url' }", () => m.spawnSupervised({ command: '/bin/sleep', args: ['5'], readiness: { http: 'not a url' } }), 'readiness.http'],
  ['command: 42', () => m.spawnSupervised({ command: 42 }), 'command'],
  ['startTimeoutMs 1e22', () => m.spawnSupervised({ command: '/bin/true', startTimeoutMs: 1e22 }), 'startTimeoutMs'],
  ['graceMs 1e22', () => m.spawnSupervised({ command: '/bin/true', graceMs: 1e22 }), 'graceMs'],
  ['installShutdownHandlers(null)', () => m.installShutdownHandlers(null), 'options'],
  ['safetyNetMs 2^31', () => m.installShutdownHandlers({ safetyNetMs: 2 ** 31 }), 'safetyNetMs'],
  ['resourceTimeoutMs 2^31', () => m.installShutdownHandlers({ resourceTimeoutMs: 2 ** 31 }), 'resourceTimeoutMs'],
  ["retry signal: 'x'", () => m.retry(() => 1, { signal: 'x' }), 'signal'],
  ["retry retryIf: 'x'", () => m.retry(() => 1, { retryIf: 'x' }), 'retryIf'],
  ['retry(42)', () => m.retry(42), 'fn'],
  ['retry baseDelayMs 3e9', () => m.retry(() => 1, { baseDelayMs: 3e9 }), 'baseDelayMs'],
  ['retry deadlineMs 1e22', () => m.retry(() => 1, { deadlineMs: 1e22 }), 'deadlineMs'],
  ['FileLock deadlineMs 1e22', (dir) => m.FileLock.acquire(join(dir, 'f.lock'), { deadlineMs: 1e22 }), 'deadlineMs'],
  ['PidLock wait maxDelayMs 1e22', (dir) => m.PidLock.acquire(join(dir, 'p.lock'), { wait: { maxDelayMs: 1e22 } }), 'maxDelayMs'],
  ['singleFlight(42)', () => m.singleFlight(42), 'fn'],
  ['new ManagedRegistry(42)', () => new m.ManagedRegistry(42), 'dir'],
  ['requestCleanup(null)', () => m.requestCleanup(null), 'worker'],
  ['unloadAll(null)', () => m.unloadAll(null), 'models'],
  // createQvac, external mode: wrong types refused at creation, not at the first request.
  ['createQvac({ baseURL: 42 })', () => m.createQvac({ baseURL: 42 }), 'baseURL'],
  ["createQvac({ baseURL: 'not a url' })", () => m.createQvac({ baseURL: 'not a url' }), 'baseURL'],
  ["createQvac({ baseURL: 'file:///x' })", () => m.createQvac({ baseURL: 'file:///x' }), 'baseURL'],
  ['createQvac({ apiKey: 42 })', () => m.createQvac({ apiKey: 42 }), 'apiKey'],
  ['createQvac apiKey with a newline', () => m.createQvac({ apiKey: 'a\nb' }), 'apiKey'],
  ["createQvac({ mode: 'other' })", () => m.createQvac({ mode: 'other' }), 'mode'],
  ["createQvac({ headers: 'x' })", () => m.createQvac({ headers: 'x' }), 'headers'],
  ['createQvac({ fetch: 42 })', () => m.createQvac({ fetch: 42 }), 'fetch'],
  ['external header value above U+00FF', () => m.createQvac({ headers: { 'x-a': '\u2603' } }), 'headers.x-a'],
  ['external header value 42', () => m.createQvac({ headers: { 'x-a': 42 } }), 'headers.x-a'],
  ['external header name with a space', () => m.createQvac({ headers: { 'x a': 'v' } }), 'headers.x a'],
  // createQvac, managed mode.
  ['managed header value above U+00FF', () => m.createQvac(managed({ headers: { 'x-a': '\u2603' } })), 'headers.x-a'],
  ['managed header value with NUL', () => m.createQvac(managed({ headers: { 'x-a': 'a\0b' } })), 'headers.x-a'],
  ['managed registryDir: 42', () => m.createQvac(managed({ registryDir: 42 })), 'registryDir'],
  ["managed registryDir: ''", () => m.createQvac(managed({ registryDir: '' })), 'registryDir'],
  ["managed signal: 'x'", () => m.createQvac(managed({ signal: 'x' })), 'signal'],
  ["managed closeOnParentExit: 'yes'", () => m.createQvac(managed({ closeOnParentExit: 'yes' })), 'closeOnParentExit'],
  ["managed fetch: 'x'", () => m.createQvac(managed({ fetch: 'x' })), 'fetch'],
  // ensureServe: both arguments.
  ['ensureServe attach { registryDir: 42 }', () => m.ensureServe(managed(), { registryDir: 42 }), 'registryDir'],
  ['ensureServe({ registryDir: 42 })', () => m.ensureServe({ registryDir: 42 }), 'registryDir'],
  ['ensureServe options { registryDir: 42 }', () => m.ensureServe(managed({ registryDir: 42 })), 'registryDir'],
  ["ensureServe attach { signal: 'x' }", () => m.ensureServe(managed(), { signal: 'x' }), 'signal'],
  ['ensureServe attach null', () => m.ensureServe(managed(), null), 'attach'],
  ['ensureServe graceMs -1', () => m.ensureServe(managed(), { graceMs: -1 }), 'graceMs'],
  ['ensureServe projectDir 42', () => m.ensureServe(managed(), { projectDir: 42 }), 'projectDir'],
  ['ensureServe avoidServePid 1.5', () => m.ensureServe(managed(), { avoidServePid: 1.5 }), 'avoidServePid'],
  ['validateManagedOptions registryDir 42', () => m.validateManagedOptions(managed({ registryDir: 42 })), 'registryDir'],
  ['computeFleetKey(null)', () => m.computeFleetKey(null), 'options'],
  // Locks.
  ["PidLock.acquire { signal: 'x' }", (dir) => m.PidLock.acquire(join(dir, 'p.lock'), { signal: 'x' }), 'signal'],
  ["PidLock.acquire { wait: 'x' }", (dir) => m.PidLock.acquire(join(dir, 'p.lock'), { wait: 'x' }), 'wait'],
  ['PidLock.acquire { wait: true }', (dir) => m.PidLock.acquire(join(dir, 'p.lock'), { wait: true }), 'wait'],
  ["PidLock.acquire wait attempts 'x'", (dir) => m.PidLock.acquire(join(dir, 'p.lock'), { wait: { attempts: 'x' } }), 'attempts'],
  ['PidLock.acquire(path, null)', (dir) => m.PidLock.acquire(join(dir, 'p.lock'), null), 'options'],
  ['PidLock.acquire(42)', () => m.PidLock.acquire(42), 'path'],
  ['PidLock.acquire path with NUL', (dir) => m.PidLock.acquire(join(dir, 'p\0.lock')), 'path'],
  ['PidLock.inspect(42)', () => m.PidLock.inspect(42), 'path'],
  ['FileLock.acquire(path, null)', (dir) => m.FileLock.acquire(join(dir, 'f.lock'), null), 'options'],
  ["FileLock.acquire { shared: 'yes' }", (dir) => m.FileLock.acquire(join(dir, 'f.lock'), { shared: 'yes' }), 'shared'],
  ['FileLock.acquire { signal: {} }', (dir) => m.FileLock.acquire(join(dir, 'f.lock'), { signal: {} }), 'signal'],
  ["FileLock.acquire { attempts: '3' }", (dir) => m.FileLock.acquire(join(dir, 'f.lock'), { attempts: '3' }), 'attempts'],
  ['FileLock.tryAcquire(path, null)', (dir) => m.FileLock.tryAcquire(join(dir, 'f.lock'), null), 'options'],
  ['FileLock.tryAcquire { shared: 1 }', (dir) => m.FileLock.tryAcquire(join(dir, 'f.lock'), { shared: 1 }), 'shared'],
  // retry, spawnSupervised, shutdown.
  ['retry(fn, null)', () => m.retry(() => 1, null), 'options'],
  ["retry jitter 'x'", () => m.retry(() => 1, { jitter: 'x' }), 'jitter'],
  ["startTimeoutMs '5'", () => m.spawnSupervised({ command: '/bin/true', startTimeoutMs: '5' }), 'startTimeoutMs'],
  ["outputTailBytes 'x'", () => m.spawnSupervised({ command: '/bin/true', outputTailBytes: 'x' }), 'outputTailBytes'],
  ["dieWithParent 'yes'", () => m.spawnSupervised({ command: '/bin/true', dieWithParent: 'yes' }), 'dieWithParent'],
  ['installShutdownHandlers logger null', () => m.installShutdownHandlers({ logger: null }), 'logger'],
  ["installShutdownHandlers logger.warn 'x'", () => m.installShutdownHandlers({ logger: { warn: 'x' } }), 'logger.warn'],
  ["installShutdownHandlers ipc 'no'", () => m.installShutdownHandlers({ ipc: 'no' }), 'ipc'],
  ['installShutdownHandlers resources [null]', () => m.installShutdownHandlers({ resources: [null] }), 'resources[0]'],
  // The registry.
  ["registry.readRecord('../x')", (dir) => new m.ManagedRegistry(join(dir, 'reg')).readRecord('../x'), 'fleetKey'],
  ['registry.addConsumer(42)', (dir) => new m.ManagedRegistry(join(dir, 'reg')).addConsumer(42), 'fleetKey'],
  ["registry.liveConsumers prune 'yes'", (dir) => new m.ManagedRegistry(join(dir, 'reg')).liveConsumers('abc', { prune: 'yes' }), 'prune'],
  ['registry.writeRecord(null)', (dir) => new m.ManagedRegistry(join(dir, 'reg')).writeRecord(null), 'record'],
  ['registry.writeStartFailure message 1', (dir) => new m.ManagedRegistry(join(dir, 'reg')).writeStartFailure('abc', { code: 'X', message: 1, outputTail: '' }), 'failure.message'],
  // Platform lookups.
  ['platformId({ platform: 42 })', () => m.platformId({ platform: 42 }), 'platform'],
  ['platformPackageName(42)', () => m.platformPackageName(42), 'id'],
  ['asarUnpackedPath(42)', () => m.asarUnpackedPath(42), 'path'],
  ["resolveRunner({ env: 'x' })", () => m.resolveRunner({ env: 'x' }), 'env']
];

describe('bad input: INVALID_OPTION before anything is spawned or written', () => {
  for (const [name, call, option] of cases) {
    test(name, async (t) => {
      const home = tempDir(t);
      const scratch = tempDir(t);
      withEnv(t, { HOME: home, QVAC_MANAGED_REGISTRY: undefined, FAKE_SERVE_EVENTS: join(scratch, 'events.jsonl') });
      let error;
      try {
        await call(scratch);
      } catch (e) {
        error = e;
      }
      assert.ok(error, 'no error');
      assert.equal(error.code, 'INVALID_OPTION', `${error.name}: ${error.message}`);
      assert.equal(error.name, 'InvalidOptionError');
      if (option instanceof RegExp) assert.match(error.option, option);
      else assert.equal(error.option, option);
      assert.match(error.message, /invalid option|could not be read/);
      assert.equal(existsSync(join(home, '.qvac')), false, 'no registry written');
      assert.equal(existsSync(join(scratch, 'events.jsonl')), false, 'no serve started');
      assert.deepEqual(readdirSync(scratch), [], 'no lock file written');
    });
  }

  test('a stopped child refuses graceMs 1e22 instead of panicking', async () => {
    const child = m.spawnSupervised({ command: '/bin/sleep', args: ['5'] });
    await assert.rejects(child.stop({ graceMs: 1e22 }), (e) => e.code === 'INVALID_OPTION' && e.option === 'graceMs');
    const exit = await child.stop({ graceMs: 100 });
    assert.equal(exit.kind, 'stopped');
  });

  test('the largest accepted duration works (no wrap-around to ~0)', async () => {
    const started = Date.now();
    const controller = new AbortController();
    const waiting = m.retry(() => Promise.reject(new Error('again')), { baseDelayMs: 2 ** 31 - 1, maxDelayMs: 2 ** 31 - 1, jitter: 0, signal: controller.signal });
    setTimeout(() => controller.abort(), 100);
    await assert.rejects(waiting, (e) => e.name === 'AbortError');
    assert.ok(Date.now() - started >= 90, 'the retry waited instead of firing at once');
  });
});
