import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, readdirSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { ManagedRegistry, validateManagedOptions } from '../dist/index.js';
import { deadPid, event, isRoot, noteNotRoot, spawnFixture, spawnUpstream, tempDir } from './helpers.mjs';

const KEY = 'a1b2c3d4e5f60718';

/** A process that just stays alive, to stand in for a serve or runner. */
function sleeper(t) {
  const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 60000)'], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  return child.pid;
}

function record(overrides = {}) {
  return {
    fleetKey: KEY,
    apiKey: 'secret-key',
    servePid: process.pid,
    runnerPid: process.pid,
    port: 40111,
    host: '127.0.0.1',
    baseURL: 'http://127.0.0.1:40111/v1',
    configPath: '',
    startedAt: '2026-11-24T09:00:00.000Z',
    idleTimeoutMs: 300000,
    models: ['qwen3.5-9b'],
    ...overrides
  };
}

/** A registry under a fresh fake HOME, as upstream would find it. */
function freshRegistry(t) {
  const home = tempDir(t);
  return { home, registry: new ManagedRegistry(join(home, '.qvac', 'managed-serves')) };
}

describe('ManagedRegistry', () => {
  test('the default location honours $HOME', () => {
    assert.equal(ManagedRegistry.defaultDir(), join(process.env.HOME, '.qvac', 'managed-serves'));
  });

  test('records are written 0600 in a 0700 directory and read back trusted', (t) => {
    const { registry } = freshRegistry(t);
    registry.writeRecord(record());
    assert.equal(statSync(registry.dir).mode & 0o777, 0o700);
    assert.equal(statSync(join(registry.dir, `${KEY}.json`)).mode & 0o777, 0o600);
    const read = registry.readRecord(KEY);
    assert.equal(read.state, 'trusted');
    assert.equal(read.record.apiKey, 'secret-key');
    assert.deepEqual(readdirSync(registry.dir), [`${KEY}.json`], 'no temp file left');
    const [serve] = registry.listServes();
    assert.deepEqual(
      { ...serve },
      { fleetKey: KEY, models: ['qwen3.5-9b'], baseURL: 'http://127.0.0.1:40111/v1', host: '127.0.0.1', port: 40111, servePid: process.pid, runnerPid: process.pid, consumers: 0, startedAt: '2026-11-24T09:00:00.000Z', idleTimeoutMs: 300000 }
    );
  });

  test('corrupt, truncated and tampered records are ignored, not trusted, not deleted', async (t) => {
    const { registry } = freshRegistry(t);
    registry.writeRecord(record());
    const path = join(registry.dir, `${KEY}.json`);
    const good = readFileSync(path, 'utf8');
    const cases = [
      ['truncated', good.slice(0, good.length / 2), 'corrupt'],
      ['empty', '', 'corrupt'],
      ['garbage', '\u0000\u0001not json', 'corrupt'],
      ['wrong types', JSON.stringify({ ...record(), servePid: String(process.pid) }), 'corrupt'],
      ['redirected baseURL', JSON.stringify(record({ baseURL: 'http://10.0.0.8:40111/v1' })), 'untrusted'],
      ['other key inside', JSON.stringify(record({ fleetKey: 'ffffffffffffffff' })), 'untrusted'],
      ['dead serve', JSON.stringify(record({ servePid: await deadPid() })), 'untrusted'],
      ['pid 1', JSON.stringify(record({ runnerPid: 1 })), 'untrusted'],
      ['reused pid', JSON.stringify(record({ serveStartTime: 1 })), 'untrusted'],
      ['no api key', JSON.stringify(record({ apiKey: '' })), 'untrusted']
    ];
    for (const [name, content, state] of cases) {
      writeFileSync(path, content);
      assert.equal(registry.readRecord(KEY).state, state, name);
      assert.deepEqual(registry.listServes(), [], `${name}: not listed`);
      assert.equal(existsSync(path), true, `${name}: reading never deletes`);
    }
  });

  test('an unsafe registry directory is refused with REGISTRY_UNSAFE and the fix', (t) => {
    const { registry } = freshRegistry(t);
    mkdirSync(registry.dir, { recursive: true });
    chmodSync(registry.dir, 0o755);
    assert.throws(() => registry.writeRecord(record()), (e) => e.code === 'REGISTRY_UNSAFE' && /chmod 700/.test(e.message) && e.path === registry.dir);
    assert.throws(() => registry.addConsumer(KEY), { code: 'REGISTRY_UNSAFE' });
    assert.equal(statSync(registry.dir).mode & 0o777, 0o755, 'left as it was');
    assert.deepEqual(readdirSync(registry.dir), []);
    noteNotRoot(t, 'the foreign-owner case needs chown');
    if (isRoot) {
      chmodSync(registry.dir, 0o700);
      chownSync(registry.dir, 65534, 65534);
      assert.throws(() => registry.writeRecord(record()), (e) => e.code === 'REGISTRY_UNSAFE' && /owned by uid 65534/.test(e.message));
    }
  });

  test('consumer markers: <pid>.<8 hex>, 0600, live count, removed on release and at exit', async (t) => {
    const { registry } = freshRegistry(t);
    const marker = registry.addConsumer(KEY);
    assert.match(marker.id, new RegExp(`^${process.pid}\\.[0-9a-f]{8}$`));
    const markerPath = join(registry.dir, `${KEY}.consumers`, marker.id);
    assert.equal(statSync(markerPath).mode & 0o777, 0o600);
    assert.deepEqual(registry.liveConsumers(KEY), [process.pid]);
    writeFileSync(join(registry.dir, `${KEY}.consumers`, `${await deadPid()}.deadbeef`), '');
    assert.equal(registry.liveConsumers(KEY).length, 1);
    assert.equal(readdirSync(join(registry.dir, `${KEY}.consumers`)).length, 2);
    registry.liveConsumers(KEY, { prune: true });
    assert.equal(readdirSync(join(registry.dir, `${KEY}.consumers`)).length, 1, 'dead marker pruned');
    marker.release();
    marker.release();
    assert.equal(existsSync(markerPath), false);
  });

  test('start failures keep code, message, exit status and output; upstream text reads as SERVE_SPAWN_FAILED', (t) => {
    const { registry } = freshRegistry(t);
    const exited = { code: 'SERVE_EXITED', message: 'qvac serve exited before becoming healthy (code=3, signal=null).', outputTail: 'error: bad model\n', exitCode: 3, signal: null };
    registry.writeStartFailure(KEY, exited);
    assert.deepEqual({ ...registry.readStartFailure(KEY) }, exited);
    const killed = { code: 'SERVE_EXITED', message: 'qvac serve exited before becoming healthy (code=null, signal=SIGKILL).', outputTail: '', exitCode: null, signal: 'SIGKILL' };
    registry.writeStartFailure(KEY, killed);
    assert.deepEqual({ ...registry.readStartFailure(KEY) }, killed);
    // Without an exit status (as other codes are written): both null.
    registry.writeStartFailure(KEY, { code: 'CLI_NOT_FOUND', message: 'no qvac', outputTail: '' });
    assert.deepEqual({ ...registry.readStartFailure(KEY) }, { code: 'CLI_NOT_FOUND', message: 'no qvac', outputTail: '', exitCode: null, signal: null });
    writeFileSync(join(registry.dir, `${KEY}.error`), 'spawn qvac ENOENT');
    assert.equal(registry.readStartFailure(KEY).code, 'SERVE_SPAWN_FAILED');
    assert.equal(registry.readStartFailure('0000000000000000'), null);
  });

  test('processes racing to publish one record: one writes, every other reads that record', async (t) => {
    const { home, registry } = freshRegistry(t);
    const go = join(home, 'go');
    const racers = Array.from({ length: 8 }, () => spawnFixture(t, 'registry-racer.mjs', [registry.dir, KEY, go]));
    await Promise.all(racers.map((r) => r.next(event('ready'), 30_000)));
    writeFileSync(go, '');
    const outcomes = await Promise.all(racers.map((r) => r.next((e) => e.event !== 'ready', 30_000)));
    const writers = outcomes.filter((o) => o.event === 'wrote');
    assert.equal(writers.length, 1, JSON.stringify(outcomes));
    for (const o of outcomes) assert.equal(o.apiKey, writers[0].apiKey, JSON.stringify(o));
    assert.equal(registry.readRecord(KEY).record.servePid, writers[0].pid);
    assert.equal(existsSync(join(registry.dir, `${KEY}.lock`)), false, 'spawn lock released');
    await Promise.all(racers.map((r) => r.finish()));
  });

  test('sweep removes what is provably dead and never a live serve\'s files', async (t) => {
    const { registry } = freshRegistry(t);
    const serve = sleeper(t);
    const runner = sleeper(t);
    registry.writeRecord(record({ servePid: serve, runnerPid: runner }));
    const consumer = registry.addConsumer(KEY);
    const liveLock = registry.trySpawnLock(KEY);
    const deadKey = 'dddddddddddddddd';
    registry.writeRecord(record({ fleetKey: deadKey, servePid: await deadPid(), runnerPid: await deadPid() }));
    const deadConsumers = join(registry.dir, `${deadKey}.consumers`);
    mkdirSync(deadConsumers);
    writeFileSync(join(deadConsumers, `${await deadPid()}.12345678`), '');
    writeFileSync(join(registry.dir, `eeeeeeeeeeeeeeee.lock`), `${await deadPid()}\n`);
    writeFileSync(join(registry.dir, `ffffffffffffffff.json`), '{ torn');

    const report = await registry.sweep();
    assert.equal(registry.readRecord(KEY).state, 'trusted', 'live serve kept');
    assert.deepEqual(registry.liveConsumers(KEY), [process.pid]);
    assert.equal(existsSync(join(registry.dir, `${KEY}.lock`)), true, 'live spawn lock kept');
    assert.equal(existsSync(join(registry.dir, `${deadKey}.json`)), false);
    assert.equal(existsSync(deadConsumers), false);
    assert.equal(existsSync(join(registry.dir, 'eeeeeeeeeeeeeeee.lock')), false);
    assert.equal(existsSync(join(registry.dir, 'ffffffffffffffff.json')), true, 'corrupt record reported, not removed');
    assert.deepEqual(report.corrupt, [join(registry.dir, 'ffffffffffffffff.json')]);
    assert.ok(report.removed.includes(join(registry.dir, `${deadKey}.json`)));
    consumer.release();
    liveLock.release();
  });
});

describe('interop with @qvac/ai-sdk-provider 0.7.0 on disk', () => {
  test('a registry written by upstream is listed, with its models and consumers', async (t) => {
    const { home, registry } = freshRegistry(t);
    const serve = sleeper(t);
    const configDir = join(tempDir(t), 'qvac-managed-cfg');
    mkdirSync(configDir);
    const configPath = join(configDir, 'qvac.config.json');
    const options = validateManagedOptions({ models: ['qwen3.5-9b', 'WHISPER_Q8_0'] });
    writeFileSync(configPath, JSON.stringify(options.config, null, 2));
    // The record names a live stand-in for serve and runner; the upstream process adds its marker.
    const runner = spawnUpstream(t, ['publish', JSON.stringify({
      fleetKey: options.fleetKey,
      apiKey: 'upstream-key',
      servePid: serve,
      runnerPid: serve,
      port: 40222,
      host: '127.0.0.1',
      baseURL: 'http://127.0.0.1:40222/v1',
      configPath,
      startedAt: new Date().toISOString(),
      idleTimeoutMs: 300000
    })], home);
    await runner.next(event('published'));
    const [listed] = registry.listServes();
    assert.equal(listed.fleetKey, options.fleetKey);
    assert.deepEqual(listed.models, ['qwen3.5-9b', 'WHISPER_Q8_0']);
    assert.equal(listed.consumers, 1, 'upstream\'s consumer marker counts');
    assert.equal(listed.baseURL, 'http://127.0.0.1:40222/v1');
    assert.equal(registry.readRecord(options.fleetKey).record.apiKey, 'upstream-key');
    await runner.finish();
    assert.equal(registry.listServes()[0].consumers, 0, 'upstream removed its marker');
  });

  test('the spawn lock excludes across implementations, both ways', async (t) => {
    const { home, registry } = freshRegistry(t);
    const theirs = spawnUpstream(t, ['lock', KEY], home);
    const got = await theirs.next(event('lock'));
    assert.equal(got.got, true);
    assert.equal(got.dir, registry.dir);
    assert.throws(() => registry.trySpawnLock(KEY), (e) => e.code === 'LOCK_HELD' && e.holderPid === theirs.pid && e.holderAlive === true);
    await theirs.finish();

    const ours = registry.trySpawnLock(KEY);
    assert.equal(statSync(join(registry.dir, `${KEY}.lock`)).mode & 0o777, 0o600);
    const refused = spawnUpstream(t, ['lock', KEY], home);
    assert.equal((await refused.next(event('lock'))).got, false, 'upstream sees our lock as held');
    ours.release();
    const after = spawnUpstream(t, ['lock', KEY], home);
    assert.equal((await after.next(event('lock'))).got, true);
    await after.finish();
  });

  test('upstream reads a record we wrote, and counts our consumer', async (t) => {
    const { home, registry } = freshRegistry(t);
    registry.writeRecord(record({ serveStartTime: undefined }));
    const marker = registry.addConsumer(KEY);
    const reader = spawnUpstream(t, ['read', KEY], home);
    const { record: theirs, consumers } = await reader.next(event('read'));
    assert.equal(theirs.apiKey, 'secret-key');
    assert.equal(theirs.servePid, process.pid);
    assert.deepEqual(consumers, [process.pid]);
    marker.release();
  });
});
