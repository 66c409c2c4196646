// Orphaned serves (their runner is dead, the serve still runs), swept as upstream 0.7.0 sweeps
// them: one proven ours — its command line names its record's config and port, or it answers on
// its recorded URL with its record's key (keyless: anonymously) — is stopped (its pid, and its
// group when it leads one) and its record and temp config dropped; anything else is never
// signalled, its record is moved aside and its fleet starts afresh. On attach, in
// `ManagedRegistry.sweep()` and in `qvac-managed gc`.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { ensureServe, ManagedRegistry, resolveRunnerPath, validateManagedOptions } from '../dist/index.js';
import { deadPid, fixtures, freePort, running, tempDir, waitFor } from './helpers.mjs';
import { createInterface } from 'node:readline';

const fakeServe = join(fixtures, 'fake-serve.mjs');
const MODEL = 'QWEN3_600M_INST_Q4';

/**
 * A serve left behind by a runner that died: started detached (its own session and group), with a
 * record naming it and a dead runner pid, its config in a runner-style temp directory.
 */
async function orphan(t, registry, fleetKey, { keyless = false, leader = true, hang = false, recordKey, recordConfigPath, runnerPid } = {}) {
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
  const events = join(configDir, 'events.jsonl');
  const env = { ...process.env, FAKE_SERVE_EVENTS: events, FAKE_SERVE_HANG: hang ? '1' : '' };
  // A leader has its own session and group (as a runner starts it). A non-leader is started in
  // the background of a detached shell that then exits: it runs in a group it does not lead.
  const pid = leader ? spawn(fakeServe, args, { detached: true, stdio: 'ignore', env }).pid : await backgrounded(fakeServe, args, env);
  t.after(() => {
    if (running(pid)) process.kill(pid, 'SIGKILL');
  });
  await waitFor(() => existsSync(events) && readFileSync(events, 'utf8').includes('"listening"'), 20_000, 'orphan listening');
  const record = {
    fleetKey,
    servePid: pid,
    runnerPid: runnerPid ?? (await deadPid()),
    port,
    host: '127.0.0.1',
    baseURL: `http://127.0.0.1:${port}/v1`,
    configPath: recordConfigPath ?? configPath,
    startedAt: new Date().toISOString(),
    idleTimeoutMs: 300000
  };
  if (!keyless) record.apiKey = recordKey ?? apiKey;
  mkdirSync(registry.dir, { recursive: true, mode: 0o700 });
  writeFileSync(join(registry.dir, `${fleetKey}.json`), JSON.stringify(record), { mode: 0o600 });
  return { pid, configDir, record };
}

/** Starts `cmd args` in the background of a detached shell that exits at once; its pid. */
async function backgrounded(cmd, args, env) {
  const sh = spawn('sh', ['-c', '"$0" "$@" </dev/null >/dev/null 2>&1 & echo $!', cmd, ...args], { detached: true, stdio: ['ignore', 'pipe', 'ignore'], env });
  const [line] = await new Promise((resolve) => {
    const lines = [];
    createInterface({ input: sh.stdout }).on('line', (l) => lines.push(l)).on('close', () => resolve(lines));
  });
  const pid = Number(line);
  assert.ok(pid > 1, `background pid: ${line}`);
  return pid;
}

/** The process group of `pid` (from /proc). */
const pgrpOf = (pid) => Number(readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ')[2]);

/** The running serve pid is never signalled: its record went to `<key>.<pid>.unverified`. */
function assertMovedAside(registry, key, pid, report) {
  const aside = join(registry.dir, `${key}.${pid}.unverified`);
  if (report) {
    assert.deepEqual(report.movedAside, [aside]);
    assert.equal(existsSync(join(registry.dir, `${key}.json`)), false, 'no longer blocks its fleet');
  } else {
    assert.notEqual(registry.readRecord(key).record?.servePid, pid, 'a fresh serve took its place');
  }
  assert.equal(existsSync(aside), true, 'kept, moved aside');
  const listed = registry.listUnverified().find((u) => u.path === aside);
  assert.ok(listed, 'listed as unverified');
  assert.equal(listed.servePid, pid);
  assert.equal(listed.serveAlive, true);
  assert.match(listed.removeWith, /^rm /);
  assert.ok(running(pid), 'never signalled');
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

  test('a keyless record whose runner pid is alive but not provably its runner: its serve is never signalled, the record is moved aside', async (t) => {
    // Upstream's scenario "keyless record, runner alive": the runner may be live (it cannot be
    // proven either way), so its serve may be in use.
    const registry = new ManagedRegistry(join(tempDir(t), 'reg'));
    const runner = spawn('sleep', ['60'], { stdio: 'ignore' });
    t.after(() => runner.kill('SIGKILL'));
    const o = await orphan(t, registry, 'aaaaaaaaaaaaaac1', { keyless: true, runnerPid: runner.pid });
    const report = await registry.sweep();
    assert.deepEqual(report.stoppedOrphans, []);
    assertMovedAside(registry, 'aaaaaaaaaaaaaac1', o.pid, report);
    assert.ok(running(runner.pid), 'the runner pid is never signalled either');
  });

  test('a live process that does not answer as ours is never signalled; its record is moved aside', async (t) => {
    const registry = new ManagedRegistry(join(tempDir(t), 'reg'));
    const child = await impostor(t, registry, 'aaaaaaaaaaaaaaa3');
    const report = await registry.sweep();
    assert.deepEqual(report.stoppedOrphans, []);
    assertMovedAside(registry, 'aaaaaaaaaaaaaaa3', child.pid, report);
    // The CLI lists it, with the pid and the command that removes it.
    const aside = join(registry.dir, `aaaaaaaaaaaaaaa3.${child.pid}.unverified`);
    const cli = (...args) => spawnSync(resolveRunnerPath(), [...args, '--registry', registry.dir], { encoding: 'utf8' });
    for (const args of [['ps'], ['gc', '--dry-run'], ['doctor']]) {
      const out = cli(...args);
      assert.match(out.stdout, new RegExp(`unverified record ${aside.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} .*pid ${child.pid} \\(running\\).*rm '`), `${args.join(' ')}: ${out.stdout}${out.stderr}`);
    }
    const dry = JSON.parse(cli('gc', '--dry-run', '--json').stdout);
    assert.deepEqual(dry.unverified.map((u) => [u.path, u.servePid, u.serveAlive]), [[aside, child.pid, true]]);
    assert.ok(running(child.pid), 'listing signals nothing');
    // Once the process is gone, a sweep removes the moved-aside record.
    child.kill('SIGKILL');
    await waitFor(() => !running(child.pid), 10_000, 'impostor gone');
    const later = await registry.sweep();
    assert.ok(later.removed.includes(join(registry.dir, `aaaaaaaaaaaaaaa3.${child.pid}.unverified`)));
  });

  test('an orphan that leads no process group is stopped by its pid, not reported stopped and left running', async (t) => {
    const registry = new ManagedRegistry(join(tempDir(t), 'reg'));
    const o = await orphan(t, registry, 'aaaaaaaaaaaaaab1', { leader: false });
    assert.notEqual(pgrpOf(o.pid), o.pid, 'the orphan does not lead its group');
    const report = await registry.sweep();
    assert.deepEqual(report.stoppedOrphans, [join(registry.dir, 'aaaaaaaaaaaaaab1.json')]);
    // A stop is reported only once the process is gone.
    assert.equal(running(o.pid), false, 'stopped before the sweep reported it');
    assert.equal(existsSync(join(registry.dir, 'aaaaaaaaaaaaaab1.json')), false);
  });

  test('a hung orphan whose command line names its record\'s config and port is stopped although it never answers', async (t) => {
    const registry = new ManagedRegistry(join(tempDir(t), 'reg'));
    const o = await orphan(t, registry, 'aaaaaaaaaaaaaab2', { leader: false, hang: true });
    const report = await registry.sweep();
    assert.deepEqual(report.stoppedOrphans, [join(registry.dir, 'aaaaaaaaaaaaaab2.json')]);
    assert.equal(running(o.pid), false);
    assert.equal(existsSync(o.configDir), false, 'its temp config went with it');
  });

  test('a serve that answers 401 to the record\'s key (another fleet\'s serve) is never signalled; moved aside', async (t) => {
    const registry = new ManagedRegistry(join(tempDir(t), 'reg'));
    const elsewhere = join(mkdtempSync(join(tmpdir(), 'qvac-other-')), 'qvac.config.json');
    const o = await orphan(t, registry, 'aaaaaaaaaaaaaab3', { recordKey: 'not-the-serve-key-000', recordConfigPath: elsewhere });
    const report = await registry.sweep();
    assert.deepEqual(report.stoppedOrphans, []);
    assertMovedAside(registry, 'aaaaaaaaaaaaaab3', o.pid, report);
    const res = await fetch(`${o.record.baseURL}/models`, { headers: { authorization: 'Bearer orphan-key-0123456789' } });
    assert.equal(res.status, 200, 'still serving whoever owns it');
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

  test('a keyless record whose pid was reused by a stranger, with some serve answering on its port: the stranger is never signalled', async (t) => {
    const registry = new ManagedRegistry(join(tempDir(t), 'reg'));
    // The serve that answers on the port lives under another pid than the record names.
    const o = await orphan(t, registry, 'aaaaaaaaaaaaaab4', { keyless: true });
    const stranger = spawn('sleep', ['60'], { stdio: 'ignore' });
    t.after(() => stranger.kill('SIGKILL'));
    const path = join(registry.dir, 'aaaaaaaaaaaaaab4.json');
    writeFileSync(path, JSON.stringify({ ...o.record, servePid: stranger.pid, configPath: '/nonexistent/qvac.config.json' }), { mode: 0o600 });
    const report = await registry.sweep();
    assert.deepEqual(report.stoppedOrphans, []);
    assertMovedAside(registry, 'aaaaaaaaaaaaaab4', stranger.pid, report);
    assert.ok(running(o.pid), 'nor is the serve that answered');
  });

  test('a record naming a silent stranger never blocks its fleet: moved aside, a fresh serve starts at once', async (t) => {
    const registryDir = join(tempDir(t), 'reg');
    const registry = new ManagedRegistry(registryDir);
    const options = { mode: 'managed', models: [{ name: MODEL, config: { stranger: `${process.pid}` } }], serveBinPath: fakeServe, serveIdleTimeout: 200 };
    const key = validateManagedOptions(options).fleetKey;
    const child = await impostor(t, registry, key);
    const serve = await ensureServe(options, { registryDir, graceMs: 300 });
    t.after(() => serve.release());
    assert.notEqual(serve.pid, child.pid);
    assertMovedAside(registry, key, child.pid);
    assert.equal(registry.readRecord(key).record.servePid, serve.pid);
  });

  test('a record whose baseURL disagrees with its host and port, naming a live stranger: moved aside, fresh serve', async (t) => {
    const registryDir = join(tempDir(t), 'reg');
    const registry = new ManagedRegistry(registryDir);
    const options = { mode: 'managed', models: [{ name: MODEL, config: { tampered: `${process.pid}` } }], serveBinPath: fakeServe, serveIdleTimeout: 200 };
    const key = validateManagedOptions(options).fleetKey;
    const child = await impostor(t, registry, key);
    const path = join(registryDir, `${key}.json`);
    const record = JSON.parse(readFileSync(path, 'utf8'));
    writeFileSync(path, JSON.stringify({ ...record, baseURL: `http://127.0.0.1:${record.port + 1}/v1` }), { mode: 0o600 });
    const serve = await ensureServe(options, { registryDir, graceMs: 300 });
    t.after(() => serve.release());
    assertMovedAside(registry, key, child.pid);
    const res = await fetch(`${serve.baseURL}/models`, { headers: { authorization: `Bearer ${serve.apiKey}` } });
    assert.equal(res.status, 200);
  });
});
