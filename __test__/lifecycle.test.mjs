// What no peer does well, tested with real processes against the fake serve: the hang watchdog,
// idle that counts live connections, lifecycle events (exit, respawn, output), the crash-loop
// cap, and stopping a shared serve from code.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { generateText } from 'ai';

import { ManagedRegistry, computeFleetKey, createQvac, ensureServe, resolveRunnerPath, stopServe } from '../dist/index.js';
import { event, fixtures, privateTmp, running, spawnFixture, tempDir, waitFor, withEnv } from './helpers.mjs';

const fakeServe = join(fixtures, 'fake-serve.mjs');
const MODEL = 'QWEN3_600M_INST_Q4';
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
/** The pid on line 1 of a lock file, or null when there is none. */
const lockHolder = (path) => (existsSync(path) ? Number(readFileSync(path, 'utf8').split('\n')[0]) : null);

function setup(t, env = {}) {
  const home = tempDir(t);
  const events = join(tempDir(t), 'events.jsonl');
  privateTmp(t);
  withEnv(t, { HOME: home, FAKE_SERVE_EVENTS: events, ...env });
  const registryDir = join(home, '.qvac', 'managed-serves');
  const options = { mode: 'managed', models: [MODEL], serveBinPath: fakeServe, serveIdleTimeout: 200 };
  const readEvents = () => (existsSync(events) ? readFileSync(events, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)) : []);
  const cli = (...args) => spawnSync(resolveRunnerPath(), [...args, '--registry', registryDir], { encoding: 'utf8' });
  const ps = () => JSON.parse(cli('ps', '--json').stdout);
  // Whatever a test leaves warm is stopped when it ends.
  t.after(() => cli('stop', '--all'));
  return { home, registryDir, options, readEvents, cli, ps };
}

/**
 * Resolves with the first event `name` of `emitter` (a provider or ManagedServe). Listeners do not
 * keep a process alive, so the wait holds a timer of its own, as a program waiting on them would.
 */
const once = (emitter, name) => new Promise((resolve) => {
  const alive = setInterval(() => {}, 1_000);
  const listener = (e) => {
    clearInterval(alive);
    emitter.off(name, listener);
    resolve(e);
  };
  emitter.on(name, listener);
});

describe('hang watchdog', () => {
  test('a serve that lives and accepts but never answers is stopped as hung; the next request gets a fresh serve', async (t) => {
    const { options, ps } = setup(t, { FAKE_SERVE_HANG_AFTER_MS: '2500' });
    const exits = [];
    const qvac = await createQvac({ ...options, serveHangTimeout: 1500, on: { exit: (e) => exits.push(e) } });
    t.after(() => qvac.close());
    const hungPid = qvac.pid;
    // Probed and answered before it wedges: `ps` shows the last probe.
    await waitFor(() => ps()[0]?.lastProbe?.lastProbeStatus === 200, 5_000, 'a probe answered');
    const listed = ps()[0];
    assert.equal(listed.lastProbe.hangTimeoutMs, 1500);
    assert.match(listed.lastProbe.lastAnswerAt, /^\d{4}-\d\d-\d\dT/);
    const exit = await waitFor(() => exits[0], 15_000, 'the exit event');
    assert.equal(exit.kind, 'hung');
    assert.equal(exit.pid, hungPid);
    assert.match(exit.outputTail, /wedged/);
    assert.equal(running(hungPid), false, 'the hung serve was stopped');
    const respawned = once(qvac, 'respawn');
    const { text } = await generateText({ model: qvac(MODEL), prompt: 'after the hang' });
    assert.equal(text, 'echo: after the hang');
    const respawn = await respawned;
    assert.equal(respawn.reason, 'hung');
    assert.equal(respawn.oldPid, hungPid);
    assert.equal(respawn.newPid, qvac.pid);
    assert.notEqual(qvac.pid, hungPid);
  });

  test('a slow serve that answers within serveHangTimeout is never stopped', async (t) => {
    const { options, ps, readEvents } = setup(t, { FAKE_SERVE_MODELS_DELAY_MS: '700' });
    const qvac = await createQvac({ ...options, serveHangTimeout: 2000 });
    t.after(() => qvac.close());
    // Several probes, each answered after 700 ms of a 2000 ms budget (margin for emulation).
    await waitFor(() => (ps()[0]?.lastProbe?.lastProbeMs ?? 0) >= 600, 10_000, 'a slow probe answered');
    await new Promise((r) => setTimeout(r, 3_000));
    assert.ok(running(qvac.pid), 'still running');
    assert.equal(readEvents().filter((e) => e.event === 'started').length, 1);
    const probe = ps()[0].lastProbe;
    assert.equal(probe.lastProbeStatus, 200);
    assert.equal(probe.lastProbeError, null);
  });

  test('serveHangTimeout: 0 turns the watchdog off (no probes)', async (t) => {
    const { options, ps } = setup(t, { FAKE_SERVE_HANG_AFTER_MS: '200' });
    const qvac = await createQvac({ ...options, serveHangTimeout: 0 });
    t.after(() => qvac.close());
    await new Promise((r) => setTimeout(r, 2_500));
    assert.ok(running(qvac.pid), 'a wedged serve is left alone without the watchdog');
    const { lastProbe } = ps()[0];
    assert.equal(lastProbe.hangTimeoutMs, 0, 'ps says the watchdog is off');
    assert.equal(lastProbe.lastProbeAt, null, 'and that nothing was probed');
  });
});

describe('idle counts live connections', () => {
  test('an open connection to baseURL keeps the serve past its last consumer; it is reaped once that closes', async (t) => {
    const { options, ps } = setup(t);
    const qvac = await createQvac(options);
    const { pid, port } = qvac;
    // An agent talking to baseURL directly: a plain TCP connection, no consumer marker.
    const socket = connect(port, '127.0.0.1');
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    await qvac.close();
    await waitFor(() => ps()[0]?.consumers === 0, 5_000, 'no consumer left');
    await new Promise((r) => setTimeout(r, 1_500));
    assert.ok(running(pid), 'kept while the connection is open');
    await waitFor(() => ps()[0]?.connections >= 1, 5_000, 'ps shows the connection');
    socket.destroy();
    await waitFor(() => !running(pid), 10_000, 'reaped after the connection closed');
  });

  test('a reap called off at the idle deadline leaves the runner holding its spawn lock', async (t) => {
    const { registryDir, options: base } = setup(t);
    const options = { ...base, serveIdleTimeout: 1_000 };
    const serve = await ensureServe(options, { registryDir });
    const lockPath = join(registryDir, `${serve.fleetKey}.lock`);
    assert.equal(lockHolder(lockPath), serve.runnerPid, 'the runner holds the lock while its serve lives');
    serve.release();
    // After the runner counted no connection (it counts when the last consumer goes), a client
    // connects: nothing looks again before the idle deadline, where the reap is called off.
    await sleep(300);
    const socket = connect(serve.port, '127.0.0.1');
    t.after(() => socket.destroy());
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    await sleep(1_500);
    assert.ok(running(serve.pid), 'kept for the connection');
    assert.equal(lockHolder(lockPath), serve.runnerPid, 'the lock is still there, naming the live runner');
    // A second start is refused the lock (no double start beside the live runner).
    const attached = await ensureServe(options, { registryDir });
    assert.equal(attached.pid, serve.pid, 'the live serve, not a second one');
    attached.release();
    socket.destroy();
    await waitFor(() => !running(serve.pid) && !running(serve.runnerPid), 10_000, 'reaped once the connection closed');
    assert.equal(existsSync(lockPath), false, 'released when the runner ended');
  });

  test('serveIdleCountsConnections: false reaps on consumers alone (upstream rule)', async (t) => {
    const { options } = setup(t);
    const qvac = await createQvac({ ...options, serveIdleCountsConnections: false });
    const { pid, port } = qvac;
    const socket = connect(port, '127.0.0.1');
    t.after(() => socket.destroy());
    await new Promise((resolve, reject) => socket.once('connect', resolve).once('error', reject));
    await qvac.close();
    await waitFor(() => !running(pid), 10_000, 'reaped despite the open connection');
  });
});

describe('lifecycle events', () => {
  test('output: the start\'s lines by stream while createQvac waits; exit and respawn after a crash', async (t) => {
    const { options } = setup(t, { FAKE_SERVE_PROGRESS: '1', FAKE_SERVE_START_DELAY_MS: '800' });
    const lines = [];
    const qvac = await createQvac({ ...options, on: { output: (e) => lines.push(e) } });
    t.after(() => qvac.close());
    assert.ok(lines.some((l) => l.stream === 'stderr' && /no GPU found/.test(l.line)), JSON.stringify(lines));
    for (const pct of [0, 25, 50, 75, 100]) {
      assert.ok(lines.some((l) => l.stream === 'stdout' && l.line === `fake-serve: downloading ${pct}%`), `${pct}%: ${JSON.stringify(lines)}`);
    }
    assert.ok(lines.every((l) => !l.line.includes('\r') && !l.line.includes('\n')));
  });

  test('exit fires as soon as the serve exits (no request needed), with code and output; ensureServe handles have on/off', async (t) => {
    const { options, registryDir } = setup(t, { FAKE_SERVE_CRASH_AFTER_MS: '500' });
    const serve = await ensureServe(options, { registryDir });
    t.after(() => serve.release());
    const exit = await once(serve, 'exit');
    assert.equal(exit.kind, 'crashed');
    assert.equal(exit.code, 70);
    assert.equal(exit.signal, null);
    assert.equal(exit.pid, serve.pid);
    assert.match(exit.outputTail, /crashing/);
    assert.deepEqual(serve.exit, exit);
  });

  test('listeners never keep the process alive', async (t) => {
    const { options } = setup(t);
    const consumer = spawnFixture(t, 'listening-consumer.mjs', [], { env: { ...process.env, CONSUMER_OPTIONS: JSON.stringify(options) } });
    const attached = await consumer.next(event('attached'));
    assert.ok(running(attached.pid));
    const { code } = await consumer.exited;
    assert.equal(code, 0, 'exited by itself with listeners and a watch armed');
  });
});

describe('crash-loop cap', () => {
  test('more than serveMaxRestarts crashes within 60 s: SERVE_CRASH_LOOP across processes, reported by gc, cleared by reset', async (t) => {
    const { options, registryDir, cli } = setup(t, { FAKE_SERVE_CRASH_AFTER_MS: '600' }); // time for the health check under emulation
    // The default cap (5): six crashes after becoming healthy.
    for (let i = 0; i < 6; i++) {
      const serve = await ensureServe(options, { registryDir });
      const exit = serve.exit ?? (await once(serve, 'exit'));
      assert.equal(exit.kind, 'crashed');
      serve.release();
    }
    const error = await ensureServe(options, { registryDir }).then(() => null, (e) => e);
    assert.equal(error?.code, 'SERVE_CRASH_LOOP', String(error));
    assert.equal(error.name, 'ServeCrashLoopError');
    assert.equal(error.restarts, 6);
    assert.equal(error.windowMs, 60_000);
    assert.ok(error.retryAfterMs > 0 && error.retryAfterMs <= 60_000);
    assert.match(error.outputTail, /crashing/);
    assert.match(error.message, /qvac-managed reset/);
    // Another process is refused as well (the count lives beside the record).
    const other = spawnFixture(t, 'consumer.mjs', [registryDir, '1'], { env: { ...process.env, CONSUMER_OPTIONS: JSON.stringify(options) } });
    const attempt = await other.next(event('attached'));
    assert.equal(attempt.errors.length, 1);
    assert.match(attempt.errors[0], /^SERVE_CRASH_LOOP: /);
    // A higher cap lets it start.
    const tolerant = await ensureServe({ ...options, serveMaxRestarts: 10 }, { registryDir });
    await once(tolerant, 'exit');
    tolerant.release();
    const gc = JSON.parse(cli('gc', '--json').stdout);
    const key = computeFleetKey(options);
    assert.deepEqual(gc.crashLoops.map((c) => c.fleetKey), [key]);
    assert.equal(gc.crashLoops[0].restarts, 7);
    const reset = cli('reset', key.slice(0, 8));
    assert.equal(reset.status, 0, reset.stderr);
    assert.match(reset.stdout, /crash loop cleared/);
    const again = await ensureServe(options, { registryDir });
    assert.ok(again.pid > 0);
    again.release();
  });
  test('reuse: false — every start draws a new key, and the crashes still count toward serveMaxRestarts', async (t) => {
    const { registryDir, options } = setup(t, { FAKE_SERVE_CRASH_AFTER_MS: '150' });
    const priv = { ...options, reuse: false, serveMaxRestarts: 1 };
    const keys = new Set();
    for (let i = 0; i < 2; i++) {
      const serve = await ensureServe(priv, { registryDir });
      keys.add(serve.fleetKey);
      await waitFor(() => !running(serve.pid) && !running(serve.runnerPid), 10_000, 'crashed and its runner ended');
      serve.release();
    }
    assert.equal(keys.size, 2, 'two private keys');
    const error = await ensureServe(priv, { registryDir }).then(() => null, (e) => e);
    assert.equal(error?.code, 'SERVE_CRASH_LOOP', String(error));
    assert.equal(error.restarts, 2);
    assert.match(error.outputTail, /crashing/);
    // The ledger is the shared key's, so a private provider's respawns meet the same cap.
    assert.ok(existsSync(join(registryDir, `${computeFleetKey(options)}.exits`)));
  });

  test("a private provider's respawns count: the request after the cap fails with SERVE_CRASH_LOOP", async (t) => {
    setup(t, { FAKE_SERVE_CRASH_AFTER_MS: '300' });
    const qvac = await createQvac({ mode: 'managed', models: [MODEL], serveBinPath: fakeServe, reuse: false, serveMaxRestarts: 1 });
    t.after(() => qvac.close());
    const crashed = async () => {
      const pid = qvac.pid;
      await waitFor(() => !running(pid), 10_000, 'the serve crashed');
      await sleep(300);
    };
    await crashed();
    const { text } = await generateText({ model: qvac(MODEL), prompt: 'respawned once', maxRetries: 0 });
    assert.equal(text, 'echo: respawned once');
    await crashed();
    const error = await generateText({ model: qvac(MODEL), prompt: 'again', maxRetries: 0 }).then(() => null, (e) => e);
    assert.ok(error, 'refused');
    const cause = error.code ? error : (error.cause ?? error.lastError ?? error);
    assert.equal(cause.code, 'SERVE_CRASH_LOOP', String(error));
  });
});

describe('stopping a shared serve from code', () => {
  test('stopServe stops the serve and runner for everyone; open consumers get an exit event and a fresh serve', async (t) => {
    const { options, registryDir, ps } = setup(t);
    const keep = { ...options, serveIdleTimeout: 60_000 };
    const qvac = await createQvac(keep);
    t.after(() => qvac.close());
    const other = spawnFixture(t, 'consumer.mjs', [registryDir, '1'], { env: { ...process.env, CONSUMER_OPTIONS: JSON.stringify(keep) } });
    const attached = await other.next(event('attached'));
    assert.deepEqual(attached.servePids, [qvac.pid]);
    const { pid, port } = qvac;
    const runnerPid = ps()[0].runnerPid;
    const exited = once(qvac, 'exit');
    const result = await stopServe(keep, { graceMs: 2_000 });
    assert.deepEqual(result, { stopped: true, pid, runnerPid, forced: false });
    assert.equal(running(pid), false);
    assert.equal(running(runnerPid), false);
    const exit = await exited;
    assert.equal(exit.kind, 'stopped');
    assert.equal(exit.port, port);
    // Nothing to stop now.
    assert.deepEqual(await stopServe(keep), { stopped: false, pid: null, runnerPid: null, forced: false });
    // The next request starts a fresh serve.
    const { text } = await generateText({ model: qvac(MODEL), prompt: 'again' });
    assert.equal(text, 'echo: again');
    assert.notEqual(qvac.pid, pid);
    // And qvac.stopServe() stops that one.
    const second = qvac.pid;
    assert.equal((await qvac.stopServe()).stopped, true);
    assert.equal(running(second), false);
    await other.finish();
  });
  test('stops the start another process is making; every waiter gets SERVE_STOPPED; nothing runs after', async (t) => {
    const { registryDir, options, readEvents } = setup(t, { FAKE_SERVE_START_DELAY_MS: '4000' });
    const env = { ...process.env, CONSUMER_OPTIONS: JSON.stringify(options) };
    const starter = spawnFixture(t, 'consumer.mjs', [registryDir, '1'], { env });
    const key = computeFleetKey(options);
    await waitFor(() => readEvents().some((e) => e.event === 'started'), 20_000, 'the serve is starting');
    const waiting = ensureServe(options, { registryDir }).then(() => null, (e) => e);
    await sleep(100);
    const servePid = readEvents().find((e) => e.event === 'started').pid;
    const runnerPid = lockHolder(join(registryDir, `${key}.lock`));
    const result = await stopServe(options, { registryDir, graceMs: 1_000 });
    assert.deepEqual(result, { stopped: true, pid: null, runnerPid, forced: false });
    assert.equal(running(servePid), false, 'the starting serve is gone');
    assert.equal(running(runnerPid), false, 'its runner is gone');
    const waiter = await waiting;
    assert.equal(waiter?.code, 'SERVE_STOPPED', String(waiter));
    assert.match(waiter.message, /stopped while it was starting/);
    const started = await starter.next(event('attached'), 20_000);
    assert.equal(started.errors.length, 1);
    assert.match(started.errors[0], /^SERVE_STOPPED: /);
    assert.equal(readEvents().filter((e) => e.event === 'started').length, 1, 'nobody started it again');
    await sleep(500);
    assert.equal(readEvents().filter((e) => e.event === 'listening').length, 0, 'nothing listened');
  });

  test('a stop landing as the start becomes healthy: every waiter gets SERVE_STOPPED or the stopped serve, never a second start', async (t) => {
    const { registryDir, options, readEvents } = setup(t, { FAKE_SERVE_START_DELAY_MS: '300' });
    const env = { ...process.env, CONSUMER_OPTIONS: JSON.stringify(options) };
    for (let round = 0; round < 8; round++) {
      const go = join(tempDir(t), `go-${round}`);
      const consumers = Array.from({ length: 3 }, () => spawnFixture(t, 'consumer.mjs', [registryDir, '1', go], { env }));
      await Promise.all(consumers.map((c) => c.next(event('ready'), 30_000)));
      const started = readEvents().filter((e) => e.event === 'started').length;
      const listening = readEvents().filter((e) => e.event === 'listening').length;
      writeFileSync(go, '');
      await waitFor(() => readEvents().filter((e) => e.event === 'listening').length > listening, 20_000, 'the serve listens');
      await sleep(round);
      const result = await stopServe(options, { registryDir, graceMs: 1_000 });
      assert.equal(result.stopped, true, `round ${round}: ${JSON.stringify(result)}`);
      const outcomes = await Promise.all(consumers.map((c) => c.next(event('attached'), 30_000)));
      for (const o of outcomes) if (o.errors.length) assert.match(o.errors[0], /^SERVE_STOPPED: /, `round ${round}`);
      await sleep(200);
      const mine = readEvents().filter((e) => e.event === 'started').slice(started);
      assert.equal(mine.length, 1, `round ${round}: one start, none after the stop`);
      assert.equal(running(mine[0].pid), false, `round ${round}: nothing runs after the stop`);
      await Promise.all(consumers.map((c) => c.finish()));
    }
  });

  test('a stop right after a start began (its runner not launched yet) stops it too', async (t) => {
    const { registryDir, options, readEvents } = setup(t, { FAKE_SERVE_START_DELAY_MS: '3000' });
    const starting = ensureServe(options, { registryDir }).then(() => null, (e) => e);
    const key = computeFleetKey(options);
    await waitFor(() => existsSync(join(registryDir, `${key}.lock`)), 10_000, 'the start took the lock');
    const result = await stopServe(options, { registryDir, graceMs: 1_000 });
    assert.equal(result.stopped, true, JSON.stringify(result));
    const error = await starting;
    assert.equal(error?.code, 'SERVE_STOPPED', String(error));
    for (const e of readEvents()) assert.equal(running(e.pid), false, `serve ${e.pid} gone`);
  });
});

describe('options are checked before anything starts', () => {
  for (const [name, value, label] of [
    ['serveHangTimeout', -1],
    ['serveHangTimeout', 'soon'],
    ['serveIdleCountsConnections', 'yes'],
    ['serveMaxRestarts', 1.5],
    ['serveMaxRestarts', 1001],
    ['on', 5],
    ['on', { exit: 'not a function' }],
    ['on', { bogus() {} }, '{ bogus() {} }']
  ]) {
    test(`${name}: ${label ?? JSON.stringify(value)} is INVALID_OPTION, nothing written`, async (t) => {
      const { home, options } = setup(t);
      const error = await createQvac({ ...options, [name]: value }).then(() => null, (e) => e);
      assert.equal(error?.code, 'INVALID_OPTION', String(error));
      assert.match(error.option, new RegExp(`^${name}`));
      assert.equal(existsSync(join(home, '.qvac')), false);
    });
  }

  test('stopServe checks its arguments', async (t) => {
    const { options } = setup(t);
    await assert.rejects(stopServe(options, { graceMs: -5 }), { code: 'INVALID_OPTION' });
    await assert.rejects(stopServe({ ...options, models: ['nope'] }), { code: 'UNKNOWN_MODEL' });
    assert.ok(new ManagedRegistry().dir);
  });
});
