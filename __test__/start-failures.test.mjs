// One start per failure: consumers waiting on a start that fails all get its typed error and none
// starts it again; a consumer arriving after the failure starts a fresh attempt. And a spawn lock
// that names no holder is taken over when it turns stealable (30 s), as upstream does, while a
// consumer waits on it.
import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { ensureServe, validateManagedOptions } from '../dist/index.js';
import { deadPid, event, fixtures, privateTmp, spawnFixture, tempDir, waitFor, withEnv } from './helpers.mjs';

const fakeServe = join(fixtures, 'fake-serve.mjs');

function setup(t, env = {}, extra = {}) {
  const registryDir = join(tempDir(t), 'managed-serves');
  const events = join(tempDir(t), 'events.jsonl');
  privateTmp(t);
  withEnv(t, { FAKE_SERVE_EVENTS: events, ...env });
  const options = { mode: 'managed', models: ['qwen3.5-9b'], serveBinPath: fakeServe, serveIdleTimeout: 200, ...extra };
  const starts = () =>
    existsSync(events)
      ? readFileSync(events, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.event === 'started').length
      : 0;
  return { registryDir, options, starts };
}

describe('one start per failure', () => {
  test('six processes waiting on a start that fails: one start, the same SERVE_EXITED for all, promptly', async (t) => {
    const { registryDir, options, starts } = setup(t, { FAKE_SERVE_EXIT_AT_START: '3', FAKE_SERVE_EXIT_AT_START_DELAY_MS: '1000' });
    const go = join(tempDir(t), 'go');
    const env = { ...process.env, CONSUMER_OPTIONS: JSON.stringify(options) };
    const children = Array.from({ length: 6 }, () => spawnFixture(t, 'consumer.mjs', [registryDir, '1', go], { env }));
    await Promise.all(children.map((c) => c.next(event('ready'), 30_000)));
    writeFileSync(go, '');
    const outcomes = await Promise.all(children.map((c) => c.next(event('attached'), 60_000)));
    const errors = outcomes.flatMap((o) => o.errors);
    assert.equal(errors.length, 6, `every consumer failed: ${JSON.stringify(outcomes)}`);
    for (const e of errors) {
      assert.match(e, /^SERVE_EXITED: /, 'the start failure itself, not a second start or a spawn error');
      assert.match(e, /model blob not found/, "with the serve's output");
    }
    assert.equal(starts(), 1, 'the failing serve was started once, not once per waiter');
    await Promise.all(children.map((c) => c.finish()));
  });

  test('a consumer arriving after the failure starts a fresh attempt (and gets that attempt\'s outcome)', async (t) => {
    const { registryDir, options, starts } = setup(t, { FAKE_SERVE_EXIT_AT_START: '3' });
    await assert.rejects(ensureServe(options, { registryDir, graceMs: 300 }), { code: 'SERVE_EXITED' });
    assert.equal(starts(), 1);
    await assert.rejects(ensureServe(options, { registryDir, graceMs: 300 }), { code: 'SERVE_EXITED' });
    assert.equal(starts(), 2, 'an old failure is not handed to a consumer that came later');
    // Once the serve can start, the next consumer gets it despite the failure left on disk.
    withEnv(t, { FAKE_SERVE_EXIT_AT_START: '' });
    const serve = await ensureServe(options, { registryDir, graceMs: 300 });
    t.after(() => serve.release());
    assert.equal(starts(), 3);
    assert.equal(existsSync(join(registryDir, `${serve.fleetKey}.error`)), false, 'a healthy start clears the failure');
  });
});

describe('interop while a start runs', () => {
  test("the previous start's failure does not outlive the next start's first moments (upstream waiters spin while one exists)", async (t) => {
    const { registryDir, options, starts } = setup(t, { FAKE_SERVE_START_DELAY_MS: '4000' });
    const key = validateManagedOptions(options).fleetKey;
    mkdirSync(registryDir, { recursive: true, mode: 0o700 });
    const error = join(registryDir, `${key}.error`);
    writeFileSync(error, 'SERVE_EXITED: an earlier start failed\n--- attempt ---\n1.0000000000000001', { mode: 0o600 });
    const attach = ensureServe(options, { registryDir, graceMs: 300 });
    attach.catch(() => {});
    await waitFor(() => starts() === 1, 20_000, 'the new start is under way');
    await waitFor(() => !existsSync(error), 10_000, 'the old failure removed');
    assert.equal(existsSync(join(registryDir, `${key}.json`)), false, 'while the start is still running');
    const serve = await attach;
    t.after(() => serve.release());
    assert.equal(starts(), 1);
  });

  test("another machine's record (a shared network home) fails at once with what to do; nothing is started", async (t) => {
    const { registryDir, options, starts } = setup(t);
    const key = validateManagedOptions(options).fleetKey;
    mkdirSync(registryDir, { recursive: true, mode: 0o700 });
    const record = {
      fleetKey: key, apiKey: 'k'.repeat(43), servePid: await deadPid(), runnerPid: await deadPid(), port: 41999, host: '127.0.0.1',
      baseURL: 'http://127.0.0.1:41999/v1', configPath: '/nonexistent/qvac.config.json', startedAt: new Date().toISOString(),
      idleTimeoutMs: 300000, machineId: 'another-machine-0000'
    };
    writeFileSync(join(registryDir, `${key}.json`), JSON.stringify(record), { mode: 0o600 });
    await assert.rejects(ensureServe(options, { registryDir, graceMs: 300 }), (e) => e.code === 'SERVE_SPAWN_FAILED' && /another machine/.test(e.message) && /QVAC_MANAGED_REGISTRY/.test(e.message));
    assert.equal(starts(), 0, 'no serve started');
    assert.equal(JSON.parse(readFileSync(join(registryDir, `${key}.json`), 'utf8')).machineId, 'another-machine-0000', 'its record left alone');
  });
});

describe('a spawn lock that names no holder', () => {
  test('an empty lock 26 s old is taken over when it turns 30 s old, and the serve starts', async (t) => {
    const { registryDir, options, starts } = setup(t, {}, { serveStartTimeout: 30000 });
    const key = validateManagedOptions(options).fleetKey;
    mkdirSync(registryDir, { recursive: true, mode: 0o700 });
    const lock = join(registryDir, `${key}.lock`);
    writeFileSync(lock, '', { mode: 0o600 });
    const aged = (Date.now() - 26_000) / 1000;
    utimesSync(lock, aged, aged);
    const began = Date.now();
    const serve = await ensureServe(options, { registryDir, graceMs: 300 });
    t.after(() => serve.release());
    const waited = Date.now() - began;
    assert.equal(starts(), 1);
    assert.ok(waited >= 3000, `it waited for the lock to age (${waited} ms)`);
    const res = await fetch(`${serve.baseURL}/models`, { headers: { authorization: `Bearer ${serve.apiKey}` } });
    assert.equal(res.status, 200);
  });
});
