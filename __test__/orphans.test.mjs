// Orphaned serves (their runner is dead, the serve still runs), swept as upstream 0.7.0 sweeps
// them: one that answers on its recorded URL with its record's key (or, keyless, anonymously) is
// stopped and its record and temp config dropped; one that does not answer as ours is left alone
// with its record kept. On attach, in `ManagedRegistry.sweep()` and in `qvac-managed gc`.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { ensureServe, ManagedRegistry, resolveRunnerPath, validateManagedOptions } from '../dist/index.js';
import { deadPid, fixtures, running, tempDir, waitFor } from './helpers.mjs';

const fakeServe = join(fixtures, 'fake-serve.mjs');
const MODEL = 'QWEN3_600M_INST_Q4';

const freePort = () =>
  new Promise((resolve) => {
    const server = createServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

/**
 * A serve left behind by a runner that died: started detached (its own session and group), with a
 * record naming it and a dead runner pid, its config in a runner-style temp directory.
 */
async function orphan(t, registry, fleetKey, { keyless = false } = {}) {
  const port = await freePort();
  const configDir = mkdtempSync(join(tmpdir(), 'qvac-managed-'));
  const configPath = join(configDir, 'qvac.config.json');
  writeFileSync(configPath, JSON.stringify({ serve: { models: { [MODEL]: { model: MODEL, preload: true } } } }));
  const apiKey = keyless ? '' : 'orphan-key-0123456789';
  const args = ['serve', '--openai', '--no-default', '--config', configPath, '--port', String(port), '--host', '127.0.0.1'];
  if (!keyless) {
    writeFileSync(join(configDir, 'serve-api-key'), apiKey);
    args.push('--api-key-file', join(configDir, 'serve-api-key'));
  }
  const child = spawn(fakeServe, args, { detached: true, stdio: 'ignore' });
  t.after(() => {
    if (running(child.pid)) process.kill(child.pid, 'SIGKILL');
  });
  await waitFor(async () => {
    try {
      return (await fetch(`http://127.0.0.1:${port}/v1/models`, { headers: { authorization: `Bearer ${apiKey}` } })).ok;
    } catch {
      return false;
    }
  }, 20_000, 'orphan listening');
  const record = {
    fleetKey,
    servePid: child.pid,
    runnerPid: await deadPid(),
    port,
    host: '127.0.0.1',
    baseURL: `http://127.0.0.1:${port}/v1`,
    configPath,
    startedAt: new Date().toISOString(),
    idleTimeoutMs: 300000
  };
  if (!keyless) record.apiKey = apiKey;
  mkdirSync(registry.dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(registry.dir, `${fleetKey}.json`), JSON.stringify(record), { mode: 0o600 });
  return { pid: child.pid, configDir, record };
}

/** A live process that is not a serve (never answers HTTP), named by a record with a dead runner. */
async function impostor(t, registry, fleetKey) {
  const port = await freePort();
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  mkdirSync(registry.dir, { recursive: true, mode: 0o700 });
  const record = {
    fleetKey, apiKey: 'k'.repeat(20), servePid: child.pid, runnerPid: await deadPid(), port, host: '127.0.0.1',
    baseURL: `http://127.0.0.1:${port}/v1`, configPath: '/nonexistent/qvac.config.json', startedAt: new Date().toISOString(), idleTimeoutMs: 1000
  };
  writeFileSync(join(registry.dir, `${fleetKey}.json`), JSON.stringify(record), { mode: 0o600 });
  return child;
}

describe('orphaned serves', () => {
  test('sweep() stops an orphan that answers with its key; its record and temp config go', async (t) => {
    const registry = new ManagedRegistry(join(tempDir(t), 'reg'));
    const o = await orphan(t, registry, 'aaaaaaaaaaaaaaa1');
    const report = await registry.sweep();
    assert.deepEqual(report.stoppedOrphans, [join(registry.dir, 'aaaaaaaaaaaaaaa1.json')]);
    await waitFor(() => !running(o.pid), 10_000, 'orphan stopped');
    assert.equal(existsSync(join(registry.dir, 'aaaaaaaaaaaaaaa1.json')), false, 'record dropped');
    assert.equal(existsSync(o.configDir), false, 'temp config dir (with its key) removed');
  });

  test('a keyless (pre-auth) orphan is probed without a key and stopped', async (t) => {
    const registry = new ManagedRegistry(join(tempDir(t), 'reg'));
    const o = await orphan(t, registry, 'aaaaaaaaaaaaaaa2', { keyless: true });
    const report = await registry.sweep();
    assert.equal(report.stoppedOrphans.length, 1);
    await waitFor(() => !running(o.pid), 10_000, 'keyless orphan stopped');
    assert.equal(existsSync(join(registry.dir, 'aaaaaaaaaaaaaaa2.json')), false);
  });

  test('a live process that does not answer as ours is never signalled; its record is kept', async (t) => {
    const registry = new ManagedRegistry(join(tempDir(t), 'reg'));
    const child = await impostor(t, registry, 'aaaaaaaaaaaaaaa3');
    const report = await registry.sweep();
    assert.deepEqual(report.stoppedOrphans, []);
    assert.ok(report.keptUntrusted.includes(join(registry.dir, 'aaaaaaaaaaaaaaa3.json')));
    assert.ok(running(child.pid), 'left alone');
    assert.equal(existsSync(join(registry.dir, 'aaaaaaaaaaaaaaa3.json')), true, 'record kept');
  });

  test('qvac-managed gc stops an orphan (and gc --dry-run only lists it)', async (t) => {
    const registry = new ManagedRegistry(join(tempDir(t), 'reg'));
    const o = await orphan(t, registry, 'aaaaaaaaaaaaaaa4');
    const dry = spawnSync(resolveRunnerPath(), ['gc', '--dry-run', '--json', '--registry', registry.dir], { encoding: 'utf8' });
    assert.equal(dry.status, 0, dry.stderr);
    assert.deepEqual(JSON.parse(dry.stdout).stoppedOrphans, [join(registry.dir, 'aaaaaaaaaaaaaaa4.json')]);
    assert.ok(running(o.pid), 'a dry run stops nothing');
    const gc = spawnSync(resolveRunnerPath(), ['gc', '--registry', registry.dir], { encoding: 'utf8' });
    assert.equal(gc.status, 0, gc.stderr);
    assert.match(gc.stdout, /stopped the orphaned serve of .*aaaaaaaaaaaaaaa4\.json/);
    await waitFor(() => !running(o.pid), 10_000, 'orphan stopped by gc');
  });

  test('attaching to a fleet whose serve is an orphan: the orphan is stopped, a fresh serve replaces it', async (t) => {
    const registryDir = join(tempDir(t), 'reg');
    const registry = new ManagedRegistry(registryDir);
    const options = { mode: 'managed', models: [{ name: MODEL, config: { orphan: `${process.pid}` } }], serveBinPath: fakeServe, serveIdleTimeout: 200 };
    const key = validateManagedOptions(options).fleetKey;
    const o = await orphan(t, registry, key);
    const serve = await ensureServe(options, { registryDir, graceMs: 300 });
    t.after(() => serve.release());
    assert.notEqual(serve.pid, o.pid);
    await waitFor(() => !running(o.pid), 10_000, 'orphan stopped on attach');
    assert.equal(existsSync(o.configDir), false, 'its temp config (and key) removed');
    assert.equal(registry.readRecord(key).record.servePid, serve.pid, 'the record points at the new serve');
    const res = await fetch(`${serve.baseURL}/models`, { headers: { authorization: `Bearer ${serve.apiKey}` } });
    assert.equal(res.status, 200);
  });
});
