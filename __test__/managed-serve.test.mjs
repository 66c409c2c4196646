import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { ensureServe, ManagedRegistry, resolveRunnerPath } from '../dist/index.js';
import { assertRegistryClean, event, fixtures, privateTmp, spawnFixture, tempConfigDirs, tempDir, waitFor, withEnv, running } from './helpers.mjs';

const fakeServe = join(fixtures, 'fake-serve.mjs');
const alive = running;

/** A fresh registry and options for the fake serve; FAKE_* knobs go through `env`. */
function setup(t, { idle = 200, env = {}, ...extra } = {}) {
  const registryDir = join(tempDir(t), 'managed-serves');
  const events = join(tempDir(t), 'events.jsonl');
  // A private TMPDIR (inherited by runners): only this test's temp config dirs are counted.
  privateTmp(t);
  withEnv(t, { FAKE_SERVE_EVENTS: events, ...env });
  const options = { mode: 'managed', models: ['qwen3.5-9b'], serveBinPath: fakeServe, serveIdleTimeout: idle, ...extra };
  const readEvents = () => (existsSync(events) ? readFileSync(events, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);
  return { registryDir, options, readEvents, registry: new ManagedRegistry(registryDir), attach: () => ensureServe(options, { registryDir, graceMs: 300 }) };
}

/** After a serve is gone: nothing of it is left (record, markers, lock, params, temp config). */
async function assertNothingLeft(registryDir, fleetKey, tempBefore) {
  await waitFor(() => !existsSync(join(registryDir, `${fleetKey}.json`)), 10_000, 'record removed');
  await waitFor(() => !existsSync(join(registryDir, `${fleetKey}.lock`)), 10_000, 'lock removed');
  await assertRegistryClean(registryDir, tempBefore, 0);
}

describe('managed serve lifecycle (runner + fake serve)', () => {
  test('cold start, warm attach to the same serve, key via file not argv, reap after the last release', async (t) => {
    const { registryDir, attach, readEvents, registry, options } = setup(t);
    const tempBefore = tempConfigDirs();
    const first = await attach();
    assert.equal(first.spawned, true);
    assert.match(first.baseURL, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
    const second = await attach();
    assert.equal(second.spawned, false);
    assert.equal(second.pid, first.pid);
    assert.equal(Object.keys(first).includes('apiKey'), false);
    assert.equal(JSON.stringify(first).includes(first.apiKey), false);
    const res = await fetch(`${first.baseURL}/models`, { headers: { authorization: `Bearer ${first.apiKey}` } });
    assert.equal(res.status, 200);
    const [started] = readEvents().filter((e) => e.event === 'started');
    assert.equal(started.apiKeyOnArgv, false, 'the API key is never on argv');
    assert.ok(started.argv.includes('--api-key-file'));
    assert.deepEqual(started.argv.slice(0, 3), ['serve', '--openai', '--no-default']);
    assert.equal(registry.listServes()[0].consumers, 2);
    // A reference fleet with a longer idle timeout, released just after `first`: once its serve is
    // reaped, this fleet's runner has had its idle timeout and more since `first` left, so a
    // runner that counted the one left consumer wrong would have reaped by then.
    const refOptions = { ...options, serveIdleTimeout: 600, models: [{ name: 'qwen3.5-9b', config: { referenceFleet: true } }] };
    const reference = await ensureServe(refOptions, { registryDir, graceMs: 300 });
    assert.notEqual(reference.fleetKey, first.fleetKey);
    first.release();
    reference.release();
    await waitFor(() => !alive(reference.pid), 10_000, 'the reference fleet reaped');
    assert.ok(alive(second.pid), 'one consumer left: not reaped');
    assert.equal(registry.listServes().find((s) => s.fleetKey === first.fleetKey)?.consumers, 1);
    second.release();
    await waitFor(() => !alive(second.pid), 10_000, 'serve reaped');
    await assertNothingLeft(registryDir, first.fleetKey, tempBefore);
  });

  test('200 concurrent consumers in 5 processes and this one: exactly one spawn', async (t) => {
    const { registryDir, options, readEvents } = setup(t, { idle: 300 });
    const go = join(tempDir(t), 'go');
    const env = { ...process.env, CONSUMER_OPTIONS: JSON.stringify(options) };
    const children = Array.from({ length: 5 }, () => spawnFixture(t, 'consumer.mjs', [registryDir, '30', go], { env }));
    await Promise.all(children.map((c) => c.next(event('ready'), 30_000)));
    writeFileSync(go, '');
    const local = Promise.all(Array.from({ length: 50 }, () => ensureServe(options, { registryDir, graceMs: 300 })));
    // Awaited below; handled here so an early rejection fails this test at `await local` (and its
    // fixtures are killed) instead of as an unhandled rejection that left them running.
    local.catch(() => {});
    const outcomes = await Promise.all(children.map((c) => c.next(event('attached'), 60_000)));
    const mine = await local;
    for (const o of outcomes) assert.deepEqual(o.errors, []);
    const pids = new Set([...outcomes.flatMap((o) => o.servePids), ...mine.map((s) => s.pid)]);
    assert.equal(pids.size, 1, `one serve for all: ${[...pids]}`);
    assert.equal(outcomes.flatMap((o) => o.servePids).length + mine.length, 200);
    assert.equal(readEvents().filter((e) => e.event === 'started').length, 1, 'the serve binary ran once');
    assert.equal(outcomes.reduce((n, o) => n + o.spawned, 0) + mine.filter((s) => s.spawned).length, 1);
    for (const s of mine) s.release();
    await Promise.all(children.map((c) => c.finish()));
    await waitFor(() => !alive([...pids][0]), 10_000, 'reaped');
  });

  test('consumers waiting on the lock while a runner exits: one start, every consumer served (many rounds)', async (t) => {
    const { registryDir, options, readEvents } = setup(t, { idle: 50 });
    const env = { ...process.env, CONSUMER_OPTIONS: JSON.stringify(options) };
    for (let round = 0; round < 10; round++) {
      const go = join(tempDir(t), `go-${round}`);
      const waiters = Array.from({ length: 4 }, () => spawnFixture(t, 'consumer.mjs', [registryDir, '1', go], { env }));
      await Promise.all(waiters.map((w) => w.next(event('ready'), 30_000)));
      const first = await ensureServe(options, { registryDir, graceMs: 300 });
      const key = first.fleetKey;
      const startsBefore = readEvents().filter((e) => e.event === 'started').length;
      first.release();
      // The runner is reaping (record gone, the lock held until its serve is gone): the waiters
      // arrive now and wait on the lock through the runner's exit.
      await waitFor(() => !existsSync(join(registryDir, `${key}.json`)), 10_000, 'the reap began');
      writeFileSync(go, '');
      const outcomes = await Promise.all(waiters.map((w) => w.next(event('attached'), 60_000)));
      for (const o of outcomes) assert.deepEqual(o.errors, [], `round ${round}`);
      const pids = new Set(outcomes.flatMap((o) => o.servePids));
      assert.equal(pids.size, 1, `round ${round}: one serve for all waiters: ${[...pids]}`);
      assert.ok(!pids.has(first.pid), 'a fresh serve, not the reaped one');
      assert.equal(readEvents().filter((e) => e.event === 'started').length, startsBefore + 1, `round ${round}: one start`);
      await Promise.all(waiters.map((w) => w.finish()));
      await waitFor(() => !alive([...pids][0]) && !existsSync(join(registryDir, `${key}.lock`)), 10_000, 'reaped');
    }
  });
  test('a consumer killed with SIGKILL is noticed (pidfd) and the serve is reaped', async (t) => {
    const { registryDir, options } = setup(t);
    const consumer = spawnFixture(t, 'consumer.mjs', [registryDir, '1'], { env: { ...process.env, CONSUMER_OPTIONS: JSON.stringify(options) } });
    const { servePids } = await consumer.next(event('attached'), 30_000);
    assert.ok(alive(servePids[0]));
    consumer.child.kill('SIGKILL');
    await consumer.exited;
    await waitFor(() => !alive(servePids[0]), 10_000, 'serve reaped after consumer SIGKILL');
  });

  test('a SIGTERM-ignoring serve with a grandchild: the whole group is gone after teardown', async (t) => {
    const { registryDir, attach, readEvents } = setup(t, { idle: 100, env: { FAKE_SERVE_IGNORE_SIGTERM: '1', FAKE_SERVE_GRANDCHILD: '1' } });
    const tempBefore = tempConfigDirs();
    const serve = await attach();
    const { grandchildPid } = readEvents().find((e) => e.event === 'grandchild');
    assert.ok(alive(grandchildPid));
    serve.release();
    await waitFor(() => !alive(serve.pid) && !alive(grandchildPid), 10_000, 'serve and grandchild gone');
    await assertNothingLeft(registryDir, serve.fleetKey, tempBefore);
  });

  test('a serve that exits at start: SERVE_EXITED with its output, nothing left', async (t) => {
    const { registryDir, attach } = setup(t, { env: { FAKE_SERVE_EXIT_AT_START: '3' } });
    const tempBefore = tempConfigDirs();
    const err = await attach().catch((e) => e);
    assert.equal(err.code, 'SERVE_EXITED', err.message);
    assert.equal(err.name, 'ServeExitedError');
    assert.match(err.message, /code=3, signal=null/);
    assert.equal(err.exitCode, 3);
    assert.equal(err.signal, null);
    assert.match(err.outputTail, /fatal: model blob not found/);
    const key = readdirSync(registryDir).find((f) => f.endsWith('.error')).replace('.error', '');
    await assertNothingLeft(registryDir, key, tempBefore);
  });

  // The serve's pid comes from the runner's log ("serve spawned pid=N"), not from the serve
  // itself: a serve killed at the timeout before it ran its first line (a slow machine, emulation)
  // never says it started.
  const spawnedServePid = (registryDir) => {
    const key = readdirSync(registryDir).find((f) => f.endsWith('.error')).replace('.error', '');
    const pid = Number(/serve spawned pid=(\d+)/.exec(readFileSync(join(registryDir, `${key}.log`), 'utf8'))?.[1]);
    assert.ok(pid > 0, 'the runner logged the serve it spawned');
    return { key, pid };
  };

  test('a serve that never gets ready: SERVE_START_TIMEOUT, killed, nothing left', async (t) => {
    const { registryDir, attach } = setup(t, { serveStartTimeout: 300, env: { FAKE_SERVE_START_DELAY_MS: '30000' } });
    const tempBefore = tempConfigDirs();
    const err = await attach().catch((e) => e);
    assert.equal(err.code, 'SERVE_START_TIMEOUT', err.message);
    assert.match(err.message, /within 300ms/);
    const { key, pid } = spawnedServePid(registryDir);
    await waitFor(() => !alive(pid), 5_000, 'timed-out serve killed');
    await assertNothingLeft(registryDir, key, tempBefore);
  });

  test('a serve that hangs without answering is a start timeout too', async (t) => {
    const { registryDir, attach } = setup(t, { serveStartTimeout: 400, env: { FAKE_SERVE_HANG: '1' } });
    const err = await attach().catch((e) => e);
    assert.equal(err.code, 'SERVE_START_TIMEOUT');
    const { pid } = spawnedServePid(registryDir);
    await waitFor(() => !alive(pid), 5_000, 'hung serve killed');
  });

  test('a missing serve binary is CLI_NOT_FOUND with the install hint', async (t) => {
    const { registryDir } = setup(t);
    const err = await ensureServe({ models: ['qwen3.5-9b'], serveBinPath: '/nonexistent/qvac' }, { registryDir }).catch((e) => e);
    assert.equal(err.code, 'CLI_NOT_FOUND');
    assert.match(err.message, /npm i @qvac\/cli/);
  });

  test('bad options are refused before the registry is touched', async (t) => {
    const { registryDir } = setup(t);
    const err = await ensureServe({ models: ['qwen3.5-9b'], servePort: 0 }, { registryDir }).catch((e) => e);
    assert.equal(err.code, 'INVALID_OPTION');
    assert.equal(existsSync(registryDir), false);
  });

  test('a pinned port that another program holds: PORT_ALLOCATION_FAILED naming it', async (t) => {
    const { registryDir, options } = setup(t);
    const holder = spawnFixture(t, 'port-holder.mjs', []);
    const { port } = await holder.next(event('listening'));
    const err = await ensureServe({ ...options, servePort: port }, { registryDir }).catch((e) => e);
    assert.equal(err.code, 'PORT_ALLOCATION_FAILED', err.message);
    assert.match(err.message, new RegExp(`port ${port} is in use by pid ${holder.pid}`));
  });

  test('reuse: false gives each provider a private serve, reaped as soon as it is released', async (t) => {
    const { registryDir, options } = setup(t, { idle: 60_000 });
    const a = await ensureServe({ ...options, reuse: false }, { registryDir, graceMs: 300 });
    const b = await ensureServe({ ...options, reuse: false }, { registryDir, graceMs: 300 });
    assert.notEqual(a.pid, b.pid);
    assert.match(a.fleetKey, /^[0-9a-f]{16}-priv-\d+-[0-9a-f]{8}$/);
    a.release();
    await waitFor(() => !alive(a.pid), 5_000, 'private serve reaped at once (idle 0)');
    assert.ok(alive(b.pid));
    b.release();
    await waitFor(() => !alive(b.pid), 5_000);
  });

  test('after a crash the runner cleans up and the next attach respawns', async (t) => {
    const { attach, registryDir } = setup(t, { env: { FAKE_SERVE_CRASH_AFTER_MS: '300' } });
    const first = await attach();
    await waitFor(() => !alive(first.pid), 10_000, 'crashed');
    await waitFor(() => !alive(first.runnerPid), 10_000, 'runner exited');
    assert.equal(existsSync(join(registryDir, `${first.fleetKey}.json`)), false, 'record removed');
    assert.ok(existsSync(join(registryDir, `${first.fleetKey}.consumers`, '')), 'live marker kept for the respawn');
    const second = await attach();
    assert.notEqual(second.pid, first.pid);
    assert.equal(second.spawned, true);
    first.release();
    second.release();
  });

  test('runner SIGKILL: its serve dies with it, and gc clears the leftovers', async (t) => {
    const { attach, registryDir, registry } = setup(t, { idle: 60_000 });
    const serve = await attach();
    process.kill(serve.runnerPid, 'SIGKILL');
    await waitFor(() => !alive(serve.pid), 5_000, 'serve died with its runner');
    assert.equal(registry.readRecord(serve.fleetKey).state, 'untrusted');
    serve.release();
    const run = spawnSync(resolveRunnerPath(), ['gc', '--registry', registryDir], { encoding: 'utf8' });
    assert.equal(run.status, 0, run.stderr);
    assert.match(run.stdout, new RegExp(`removed .*${serve.fleetKey}\\.json`));
    assert.equal(registry.readRecord(serve.fleetKey).state, 'missing');
  });
});

describe('qvac-managed CLI on a live fleet', () => {
  const cli = (args) => spawnSync(resolveRunnerPath(), args, { encoding: 'utf8' });

  test('a runner launch that never answers is bounded by serveStartTimeout, and the launcher is killed', async (t) => {
    const { registryDir, options } = setup(t, { serveStartTimeout: 500 });
    const pidFile = join(tempDir(t), 'launcher.pid');
    const hung = join(tempDir(t), 'hung-runner.sh');
    writeFileSync(hung, `#!/bin/sh\necho $$ > '${pidFile}'\nexec sleep 60\n`, { mode: 0o755 });
    withEnv(t, { QVAC_MANAGED_RUNNER: hung });
    const err = await ensureServe(options, { registryDir }).catch((e) => e);
    assert.equal(err.code, 'SERVE_SPAWN_FAILED', err.message);
    assert.match(err.message, /did not report the runner's pid within 500 ms/);
    const launcher = Number(readFileSync(pidFile, 'utf8'));
    await waitFor(() => !alive(launcher), 5_000, 'the hung launcher killed');
  });

  test('a spawn lock replaced by a directory does not stop the idle reap', async (t) => {
    const { registryDir, attach } = setup(t, { idle: 200 });
    const serve = await attach();
    const lock = join(registryDir, `${serve.fleetKey}.lock`);
    rmSync(lock, { force: true });
    mkdirSync(lock);
    serve.release();
    await waitFor(() => !alive(serve.pid), 10_000, 'serve reaped despite the broken lock path');
    await waitFor(() => !existsSync(join(registryDir, `${serve.fleetKey}.json`)), 5_000, 'record removed');
    const log = readFileSync(join(registryDir, `${serve.fleetKey}.log`), 'utf8');
    // The runner holds its lock through one handle for the serve's life: the reap does not take
    // it again (nor, finding a directory at the path, remove what is not the file it wrote).
    assert.match(log, /idle timeout passed with no consumers; reaping/);
    assert.ok(existsSync(lock), 'the directory is not ours to remove');
    assert.ok(log.length < 64 * 1024, `log grew to ${log.length} bytes`);
  });

  test('ps, ps --json, logs, doctor, stop, gc --dry-run', async (t) => {
    const { attach, registryDir } = setup(t, { idle: 60_000 });
    const serve = await attach();
    const ps = cli(['ps', '--registry', registryDir]);
    assert.equal(ps.status, 0, ps.stderr);
    assert.match(ps.stdout, /FLEET\s+SERVE\s+RUNNER\s+PORT\s+CONSUMERS/);
    assert.match(ps.stdout, new RegExp(`${serve.fleetKey}\\s+${serve.pid}\\s+${serve.runnerPid}\\s+${serve.port}\\s+1\\s`));
    const json = JSON.parse(cli(['ps', '--json', '--registry', registryDir]).stdout);
    assert.equal(json[0].fleetKey, serve.fleetKey);
    assert.deepEqual(json[0].models, ['qwen3.5-9b']);
    assert.equal(json[0].consumers, 1);

    const logs = cli(['logs', serve.fleetKey.slice(0, 6), '--registry', registryDir]);
    assert.equal(logs.status, 0, logs.stderr);
    assert.match(logs.stdout, /serve is healthy; record published/);

    const doctor = cli(['doctor', '--registry', registryDir, '--serve-bin-path', fakeServe]);
    assert.equal(doctor.status, 0, doctor.stdout);
    assert.match(doctor.stdout, /ok\s+serve binary: .*qvac 0\.0\.0-fake/);
    assert.match(doctor.stdout, /ok\s+exit events: available \(pidfd/);

    const dry = cli(['gc', '--dry-run', '--registry', registryDir]);
    assert.match(dry.stdout, /nothing to remove/);

    const stop = cli(['stop', serve.fleetKey, '--registry', registryDir]);
    assert.equal(stop.status, 0, stop.stdout + stop.stderr);
    assert.match(stop.stdout, /stopped in \d+ ms/);
    assert.equal(alive(serve.pid), false);
    assert.equal(alive(serve.runnerPid), false);
    assert.match(cli(['ps', '--registry', registryDir]).stdout, /no managed serves running/);
    serve.release();
  });

  test('doctor exits 1 with the fix when the registry is unsafe; stop of an unknown fleet fails', (t) => {
    const { registryDir } = setup(t);
    const fs = spawnSync('mkdir', ['-m', '755', '-p', registryDir]);
    assert.equal(fs.status, 0);
    const doctor = cli(['doctor', '--registry', registryDir, '--serve-bin-path', fakeServe]);
    assert.equal(doctor.status, 1);
    assert.match(doctor.stdout, /FAIL registry: .*chmod 700/);
    const stop = cli(['stop', 'ffff', '--registry', registryDir]);
    assert.notEqual(stop.status, 0);
  });
});

describe('self-healing: the runner owns its record and its serve', () => {
  const tamperings = [
    ['changed (another process as serve)', (path, record) => writeFileSync(path, JSON.stringify({ ...record, servePid: process.pid }))],
    ['garbage', (path) => writeFileSync(path, 'not json at all')],
    ['empty', (path) => writeFileSync(path, '')],
    ['deleted', (path) => rmSync(path)],
    ['naming pid 1', (path, record) => writeFileSync(path, JSON.stringify({ ...record, servePid: 1, runnerPid: 1 }))]
  ];
  for (const [what, tamper] of tamperings) {
    test(`a record ${what} while the serve lives is restored; the next consumer attaches, never a start timeout`, async (t) => {
      const { registryDir, attach, registry, readEvents } = setup(t, { idle: 60_000, serveStartTimeout: 20_000 });
      const first = await attach();
      t.after(() => first.release());
      const path = join(registryDir, `${first.fleetKey}.json`);
      const record = JSON.parse(readFileSync(path, 'utf8'));
      tamper(path, record);
      await waitFor(() => registry.readRecord(first.fleetKey).state === 'trusted', 5_000, 'record restored by the runner');
      assert.deepEqual(registry.readRecord(first.fleetKey).record, record, 'the true record, exactly');
      const second = await attach();
      t.after(() => second.release());
      assert.equal(second.pid, first.pid, 'the same live serve');
      assert.equal(readEvents().filter((e) => e.event === 'started').length, 1, 'no second serve');
      // The runner logs the restore just after writing the record back.
      const log = () => readFileSync(join(registryDir, `${first.fleetKey}.log`), 'utf8');
      await waitFor(() => /restored it/.test(log()), 5_000, 'the restore logged');
    });
  }

  test('a serve that lives but stops listening is treated as crashed: the next attach gets a new serve', async (t) => {
    const { attach, registryDir } = setup(t, { idle: 200, env: { FAKE_SERVE_STOP_LISTENING_AFTER_MS: '300' } });
    const first = await attach();
    t.after(() => first.release());
    await waitFor(() => !alive(first.pid), 10_000, 'the deaf serve stopped by its runner');
    const log = readFileSync(join(registryDir, `${first.fleetKey}.log`), 'utf8');
    assert.match(log, /stopped listening/);
    withEnv(t, { FAKE_SERVE_STOP_LISTENING_AFTER_MS: undefined });
    const second = await attach();
    t.after(() => second.release());
    assert.notEqual(second.pid, first.pid);
    const res = await fetch(`${second.baseURL}/models`, { headers: { authorization: `Bearer ${second.apiKey}` } });
    assert.equal(res.status, 200);
  });

  test('re-resolving after a refused connection never returns the serve that refused', async (t) => {
    const { attach, options, registryDir } = setup(t, { idle: 200, env: { FAKE_SERVE_STOP_LISTENING_AFTER_MS: '400' } });
    const first = await attach();
    t.after(() => first.release());
    await waitFor(async () => {
      try {
        await fetch(`${first.baseURL}/models`);
        return false;
      } catch (err) {
        return (err.cause?.code ?? err.code) === 'ECONNREFUSED'; // Node puts the code on the cause, Bun on the error
      }
    }, 10_000, 'connection refused');
    withEnv(t, { FAKE_SERVE_STOP_LISTENING_AFTER_MS: undefined });
    const next = await ensureServe(options, { registryDir, graceMs: 300, avoidServePid: first.pid });
    t.after(() => next.release());
    assert.notEqual(next.pid, first.pid);
  });

  test('a serve that daemonizes (new session, leader exits): the daemon is stopped, not left listening', async (t) => {
    const { attach, readEvents, registryDir, registry } = setup(t, { idle: 60_000, env: { FAKE_SERVE_DAEMONIZE: '1' } });
    // The leader stays until the daemon answers and 300 ms more, so the start succeeds: the
    // record names the leader, the one process the runner started.
    const first = await attach();
    t.after(() => first.release());
    const daemon = await waitFor(() => readEvents().find((e) => e.event === 'daemon'), 10_000, 'daemon started');
    t.after(() => {
      if (alive(daemon.daemonPid)) process.kill(daemon.daemonPid, 'SIGKILL');
    });
    assert.equal(first.spawned, true);
    assert.equal(first.pid, daemon.pid, 'the serve pid is the leader the runner started');
    await waitFor(() => !alive(daemon.daemonPid), 15_000, 'the daemonized serve stopped by the runner');
    await waitFor(() => !alive(first.runnerPid), 10_000, 'the runner done');
    assert.equal(registry.readRecord(first.fleetKey).state, 'missing', 'no record names the gone serve');
    const log = readFileSync(join(registryDir, `${first.fleetKey}.log`), 'utf8');
    assert.match(log, /daemonized/, 'the runner says why it stopped the daemon');
  });
});
