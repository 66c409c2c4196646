// The measurements behind `npm run bench`: qvac-managed against @qvac/ai-sdk-provider@0.7.0 in the
// same run, on the same fake serve and machine, both imported by package name from a project where
// bench/run.mjs installed them from tarballs. Prints a table (median, p95, ratio ours/theirs) and
// writes latest.json / latest.md to $BENCH_RESULTS. It measures and reports; it asserts nothing.
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { cpus, totalmem, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import lockfile from 'proper-lockfile';

import * as ours from 'qvac-managed';
import * as theirs from '@qvac/ai-sdk-provider';

import { runnerCpuWithOpenConnection } from './runner-cpu.mjs';

const project = fileURLToPath(new URL('..', import.meta.url));
const fixtures = join(project, 'fixtures');
const resultsDir = process.env.BENCH_RESULTS ?? join(project, 'results');
const fakeServe = join(fixtures, 'fake-serve.mjs');
const upstreamServe = await import(new URL('../node_modules/@qvac/ai-sdk-provider/dist/managed/serve-process.js', import.meta.url).href);
const QUICK = process.env.QUICK === '1';
const reps = (n) => (QUICK ? Math.max(2, Math.ceil(n / 3)) : n);
const MODEL = 'QWEN3_600M_INST_Q4';
const work = mkdtempSync(join(tmpdir(), 'qvac-managed-bench-'));
process.env.HOME = join(work, 'home'); // both implementations use $HOME/.qvac/managed-serves
mkdirSync(process.env.HOME);
const impls = { ours: ours.createQvac, upstream: theirs.createQvac };
const now = () => performance.now();
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
let nonce = 0;
const options = (extra = {}) => ({ mode: 'managed', models: [{ name: MODEL, config: { bench: `${process.pid}-${nonce++}` } }], serveBinPath: fakeServe, ...extra });

function running(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}
async function until(check, timeoutMs = 60_000) {
  const deadline = now() + timeoutMs;
  while (!check()) {
    if (now() > deadline) throw new Error('bench: timed out');
    await sleep(1);
  }
}
const quantile = (xs, q) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.floor(q * s.length))];
};
const stats = (xs) => ({ n: xs.length, median: quantile(xs, 0.5), p95: quantile(xs, 0.95), p99: quantile(xs, 0.99), min: Math.min(...xs), max: Math.max(...xs) });

const freePort = () =>
  new Promise((resolve) => {
    const server = createNetServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });

/** The fake serve's own boot: spawn it directly and poll /v1/models every millisecond. */
async function fakeBoot() {
  const dir = mkdtempSync(join(work, 'boot-'));
  writeFileSync(join(dir, 'c.json'), JSON.stringify({ serve: { models: { [MODEL]: { model: MODEL, preload: true } } } }));
  const port = freePort();
  const t0 = now();
  const child = spawn(fakeServe, ['serve', '--openai', '--no-default', '--config', join(dir, 'c.json'), '--port', String(await port), '--host', '127.0.0.1'], { stdio: 'ignore' });
  const deadline = t0 + 30_000;
  for (;;) {
    if (now() > deadline) throw new Error('bench: the fake serve did not boot within 30 s');
    try {
      if ((await fetch(`http://127.0.0.1:${await port}/v1/models`)).ok) break;
    } catch {
      // not listening yet
    }
    await sleep(1);
  }
  const t = now() - t0;
  child.kill('SIGKILL');
  return t;
}

const results = {};
const record = (metric, impl, values, extra = {}) => {
  results[metric] ??= {};
  results[metric][impl] = { ...stats(values), ...extra };
  process.stderr.write(`  ${metric} / ${impl}: median ${stats(values).median.toFixed(2)}\n`);
};

process.stderr.write(`bench: ${QUICK ? 'quick' : 'full'} run under Node ${process.version}\n`);
// The bare serve's boot, measured just before each cold start (below); its row comes first.
const boots = [];
results['fake serve boot (ms)'] = {};
await fakeBoot(); // warm-up: the first boot reads everything from disk

for (const [impl, createQvac] of Object.entries(impls)) {
  // Cold start: a usable provider for a fleet nobody runs, minus the serve's own boot measured
  // just before it (paired: the machine's speed drifts between runs by more than the overhead).
  const cold = [];
  for (let i = 0; i < reps(9); i++) {
    const pairedBoot = await fakeBoot();
    boots.push(pairedBoot);
    const t0 = now();
    const p = await createQvac(options({ serveIdleTimeout: 100 }));
    cold.push(now() - t0 - pairedBoot);
    await p.close();
  }
  record('cold start overhead (ms)', impl, cold);

  // Warm attach to a running serve.
  const warmOptions = options({ serveIdleTimeout: 60_000 });
  const keep = await createQvac(warmOptions);
  const warm = [];
  for (let i = 0; i < reps(30); i++) {
    const t0 = now();
    const p = await createQvac(warmOptions);
    warm.push(now() - t0);
    await p.close();
  }
  record('warm attach (ms)', impl, warm);

  if (impl === 'ours') {
    // A memory budget (issue 27): a warm attach never looks at it; a cold start decides under
    // memory-budget.lock (the need, every fleet's memory, the reservation). Paired, alternating
    // with the same start without a budget, with this warm serve (another fleet) in the registry.
    const BUDGET = { memoryBudget: '1TiB' }; // always fits: the decision's cost, no eviction
    const warmPlain = [];
    const warmBudget = [];
    for (let i = 0; i < reps(30); i++) {
      for (const [list, extra] of [[warmPlain, {}], [warmBudget, BUDGET]]) {
        const t0 = now();
        const p = await createQvac({ ...warmOptions, ...extra });
        list.push(now() - t0);
        await p.close();
      }
    }
    record('warm attach, no budget (ms)', impl, warmPlain);
    record('warm attach with a memory budget (ms)', impl, warmBudget);
    const coldPlain = [];
    const coldBudget = [];
    for (let i = 0; i < reps(9); i++) {
      for (const [list, extra] of [[coldPlain, {}], [coldBudget, BUDGET]]) {
        const pairedBoot = await fakeBoot();
        const t0 = now();
        const p = await createQvac(options({ serveIdleTimeout: 100, ...extra }));
        list.push(now() - t0 - pairedBoot);
        const pid = p.pid;
        await p.close();
        await until(() => !running(pid));
      }
    }
    record('cold start overhead, no budget (ms)', impl, coldPlain);
    record('cold start overhead under a memory budget (ms)', impl, coldBudget);
    record('warm attach: with a budget minus without (ms)', impl, [stats(warmBudget).median - stats(warmPlain).median]);
    record('cold start: under a budget minus without (ms)', impl, [stats(coldBudget).median - stats(coldPlain).median]);
  }

  // Runner RSS.
  const registryDir = join(process.env.HOME, '.qvac', 'managed-serves');
  const rec = new ours.ManagedRegistry(registryDir).listServes().find((s) => s.servePid === keep.pid);
  const rss = Number(readFileSync(`/proc/${rec.runnerPid}/status`, 'utf8').match(/VmRSS:\s+(\d+)/)[1]) / 1024;
  record('runner RSS (MiB)', impl, [rss]);
  await keep.close();

  // 200 concurrent consumers on a cold fleet: spawns and attach latency.
  const events = join(work, `events-${impl}.jsonl`);
  process.env.FAKE_SERVE_EVENTS = events;
  const herdOptions = options({ serveIdleTimeout: 300 });
  const attach = await Promise.all(
    Array.from({ length: 200 }, async () => {
      const t0 = now();
      const p = await createQvac(herdOptions);
      return { t: now() - t0, p };
    })
  );
  delete process.env.FAKE_SERVE_EVENTS;
  const spawns = readFileSync(events, 'utf8').trim().split('\n').filter((l) => JSON.parse(l).event === 'started').length;
  const pids = new Set(attach.map((a) => a.p.pid));
  record('200 concurrent: attach (ms)', impl, attach.map((a) => a.t), { spawns, serves: pids.size });
  await Promise.all(attach.map((a) => a.p.close()));
  for (const pid of pids) await until(() => !running(pid));

  // Reap latency after the last consumer closes, minus serveIdleTimeout.
  const IDLE = 300;
  const reapClose = [];
  for (let i = 0; i < reps(3); i++) {
    const p = await createQvac(options({ serveIdleTimeout: IDLE }));
    const pid = p.pid;
    const t0 = now();
    await p.close();
    await until(() => !running(pid));
    reapClose.push(now() - t0 - IDLE);
  }
  record('reap after close, minus idle (ms)', impl, reapClose);

  // Reap latency after the last consumer is SIGKILLed.
  const reapKill = [];
  for (let i = 0; i < reps(3); i++) {
    const child = spawn(process.execPath, [join(project, 'bench', 'consumer.mjs'), impl, JSON.stringify(options({ serveIdleTimeout: IDLE }))], { stdio: ['ignore', 'pipe', 'inherit'] });
    const { pid } = JSON.parse(await new Promise((r) => createInterface({ input: child.stdout }).once('line', r)));
    const t0 = now();
    child.kill('SIGKILL');
    await until(() => !running(pid));
    reapKill.push(now() - t0 - IDLE);
  }
  record('reap after SIGKILL, minus idle (ms)', impl, reapKill);

  // Start-timeout detection delay.
  process.env.FAKE_SERVE_START_DELAY_MS = '60000';
  const timeouts = [];
  const codes = new Set();
  for (let i = 0; i < reps(3); i++) {
    const t0 = now();
    const err = await createQvac(options({ serveStartTimeout: 300 })).catch((e) => e);
    codes.add(err?.code ?? 'no error');
    timeouts.push(now() - t0 - 300);
  }
  delete process.env.FAKE_SERVE_START_DELAY_MS;
  // Upstream reports its own start timeout as SERVE_SPAWN_FAILED (the runner's message).
  record('start timeout reported, minus timeout (ms)', impl, timeouts, { codes: [...codes] });
}
record('fake serve boot (ms)', 'serve', boots);

// The runner's CPU while a client holds a connection to the serve and no consumer is attached:
// ours counts the serve's connections then (serveIdleCountsConnections), every recount interval
// for as long as the connection lives. Upstream's runner counts none (it reaps regardless), so
// the row is ours only. CPU time is read in clock ticks (10 ms each here).
{
  const r = await runnerCpuWithOpenConnection({
    createQvac: ours.createQvac,
    ManagedRegistry: ours.ManagedRegistry,
    registryDir: join(process.env.HOME, '.qvac', 'managed-serves'),
    options: options({ serveIdleTimeout: 2000 }),
    seconds: 10
  });
  if (!r.kept) process.stderr.write('  runner CPU: the open connection did not keep the serve, so nothing was counted\n');
  record('runner CPU per 10 s, a client connection open, no consumer (ms)', 'ours', [r.cpuMs], { kept: r.kept });
}

// Attach as an app does at start-up: a fresh process imports the package and calls createQvac on
// a warm serve (one at a time, then 30 at once).
{
  const attachOnce = (impl, json) =>
    new Promise((resolve, reject) => {
      const child = spawn(process.execPath, [join(project, 'bench', 'attach.mjs'), impl, json], { stdio: ['ignore', 'pipe', 'inherit'] });
      let out = '';
      child.stdout.on('data', (d) => (out += d));
      child.once('close', (code) => (code === 0 ? resolve(JSON.parse(out)) : reject(new Error(`bench: attach.mjs ${impl} exited ${code}`))));
    });
  for (const [impl, createQvac] of Object.entries(impls)) {
    const warm = options({ serveIdleTimeout: 60_000 });
    const keep = await createQvac(warm);
    const json = JSON.stringify({ models: warm.models, serveBinPath: warm.serveBinPath, serveIdleTimeout: warm.serveIdleTimeout });
    const runs = [];
    for (let i = 0; i < reps(15); i++) runs.push(await attachOnce(impl, json));
    record('first attach in a fresh process: import + createQvac (ms)', impl, runs.map((r) => r.firstAttachMs));
    record('of which import (ms)', impl, runs.map((r) => r.importMs));
    record('of which createQvac (ms)', impl, runs.map((r) => r.createMs));
    record('a second createQvac in the same process (ms)', impl, runs.map((r) => r.secondCreateMs));
    record('RSS added by importing the package (MiB)', impl, runs.map((r) => r.addonRssMiB));
    const herd = await Promise.all(Array.from({ length: 30 }, () => attachOnce(impl, json)));
    record('30 fresh processes attaching at once: import + createQvac (ms)', impl, herd.map((r) => r.firstAttachMs), { serves: new Set(herd.map((r) => r.pid)).size });
    await keep.close();
  }
}

// Teardown of a SIGTERM-ignoring serve with a grandchild, minus grace: until the whole group is gone.
const GRACE = 500;
for (const impl of ['ours', 'upstream']) {
  const times = [];
  for (let i = 0; i < reps(3); i++) {
    const events = join(work, `teardown-${impl}-${i}.jsonl`);
    const env = { FAKE_SERVE_IGNORE_SIGTERM: '1', FAKE_SERVE_GRANDCHILD: '1', FAKE_SERVE_EVENTS: events };
    const dir = mkdtempSync(join(work, 'td-'));
    const configPath = join(dir, 'qvac.config.json');
    writeFileSync(configPath, JSON.stringify({ serve: { models: { [MODEL]: { model: MODEL, preload: true } } } }));
    const port = await freePort();
    let leader;
    let stop;
    if (impl === 'ours') {
      const child = ours.spawnSupervised({
        command: fakeServe,
        args: ['serve', '--openai', '--no-default', '--config', configPath, '--port', String(port), '--host', '127.0.0.1'],
        env,
        readiness: { http: `http://127.0.0.1:${port}/v1/models` },
        graceMs: GRACE
      });
      await child.ready;
      leader = child.pid;
      stop = () => child.stop();
    } else {
      Object.assign(process.env, env);
      const served = await upstreamServe.spawnServe({ apiKey: 'k', configPath, port, serveBinPath: fakeServe });
      for (const k of Object.keys(env)) delete process.env[k];
      leader = served.pid;
      stop = () => upstreamServe.stopServe(served.child, GRACE);
    }
    await until(() => existsSync(events) && readFileSync(events, 'utf8').includes('grandchild'));
    const grandchild = JSON.parse(readFileSync(events, 'utf8').trim().split('\n').find((l) => l.includes('grandchild'))).grandchildPid;
    const t0 = now();
    await stop();
    const resolved = now() - t0;
    await until(() => !running(leader) && !running(grandchild), 20_000).catch(() => {});
    const groupGone = !running(grandchild);
    times.push(now() - t0 - GRACE);
    if (!groupGone) {
      process.kill(grandchild, 'SIGKILL');
      process.stderr.write(`  ${impl}: grandchild ${grandchild} survived teardown (killed by the bench)\n`);
    }
    results.teardownDetail ??= {};
    (results.teardownDetail[impl] ??= []).push({ resolvedMs: resolved, groupGone });
  }
  record('teardown to group gone, minus grace (ms)', impl, times);
}

// Lock primitives against proper-lockfile.
const lockDir = mkdtempSync(join(work, 'locks-'));
const opsPerSecond = async (label, impl, fn, n = reps(2000)) => {
  const t0 = now();
  for (let i = 0; i < n; i++) await fn(i);
  record(label, impl, [(n / (now() - t0)) * 1000]);
};
await opsPerSecond('lock acquire+release (ops/s)', 'ours PidLock', async () => (await ours.PidLock.acquire(join(lockDir, 'pid.lock'))).release());
await opsPerSecond('lock acquire+release (ops/s)', 'ours FileLock', async () => ours.FileLock.tryAcquire(join(lockDir, 'flock.lock')).release());
writeFileSync(join(lockDir, 'pl'), '');
await opsPerSecond('lock acquire+release (ops/s)', 'proper-lockfile', async () => (await lockfile.lock(join(lockDir, 'pl')))());

const handoff = async (impl, hold, wait) => {
  const times = [];
  for (let i = 0; i < reps(30); i++) {
    const release = await hold();
    const waiting = wait();
    await sleep(20);
    const t0 = now();
    await release();
    const released = await waiting;
    times.push(now() - t0);
    await released();
  }
  record('contended hand-off (ms)', impl, times);
};
const fastWait = { attempts: 100_000, baseDelayMs: 1, maxDelayMs: 2, deadlineMs: 30_000, jitter: 0 };
await handoff('ours PidLock', async () => {
  const l = await ours.PidLock.acquire(join(lockDir, 'h1.lock'));
  return async () => l.release();
}, async () => {
  const l = await ours.PidLock.acquire(join(lockDir, 'h1.lock'), { wait: fastWait });
  return async () => l.release();
});
await handoff('ours FileLock', async () => {
  const l = ours.FileLock.tryAcquire(join(lockDir, 'h2.lock'));
  return async () => l.release();
}, async () => {
  const l = await ours.FileLock.acquire(join(lockDir, 'h2.lock'), fastWait);
  return async () => l.release();
});
writeFileSync(join(lockDir, 'h3'), '');
await handoff('proper-lockfile', async () => lockfile.lock(join(lockDir, 'h3')), async () => lockfile.lock(join(lockDir, 'h3'), { retries: { retries: 100_000, minTimeout: 1, maxTimeout: 2, factor: 1 } }));

// Abort latency: a FileLock wait cancelled by an AbortSignal (target: within 10 ms).
{
  const held = ours.FileLock.tryAcquire(join(lockDir, 'abort.lock'));
  const times = [];
  for (let i = 0; i < reps(30); i++) {
    const controller = new AbortController();
    const waiting = ours.FileLock.acquire(join(lockDir, 'abort.lock'), { attempts: 1000, baseDelayMs: 5000, deadlineMs: 60_000, signal: controller.signal }).catch(() => now());
    await sleep(5);
    const t0 = now();
    controller.abort();
    times.push((await waiting) - t0);
  }
  held.release();
  record('FileLock wait aborted: rejection after abort() (ms)', 'ours', times);
}

// Shutdown: a worker whose IPC parent is SIGKILLed exits and releases its lock (target: 200 ms).
{
  const times = [];
  for (let i = 0; i < reps(5); i++) {
    const dir = mkdtempSync(join(work, 'worker-'));
    const parent = spawn(process.execPath, [join(fixtures, 'ipc-parent.mjs'), 'idle'], {
      stdio: ['ignore', 'pipe', 'inherit'],
      env: { ...process.env, QVAC_MANAGED_MODULE: 'qvac-managed', WORKER_LOCK: join(dir, 'w.lock'), WORKER_EVENTS: join(dir, 'e.jsonl') }
    });
    const { workerPid } = JSON.parse(await new Promise((r) => createInterface({ input: parent.stdout }).once('line', r)));
    const t0 = now();
    parent.kill('SIGKILL');
    await until(() => !running(workerPid) && !existsSync(join(dir, 'w.lock')));
    times.push(now() - t0);
  }
  record('worker gone after its parent is SIGKILLed (ms)', 'ours', times);
}

// The CLI through the installed bin shim, on an empty registry, against Node's own start-up.
{
  const wall = (cmd, args) => {
    const t0 = now();
    const r = spawnSync(cmd, args, { stdio: 'ignore' });
    if (r.status !== 0) throw new Error(`bench: ${cmd} ${args.join(' ')} exited ${r.status}`);
    return now() - t0;
  };
  const emptyRegistry = mkdtempSync(join(work, 'empty-registry-'));
  const nodeStart = [];
  const ps = [];
  for (let i = 0; i < reps(20); i++) {
    nodeStart.push(wall(process.execPath, ['-e', '0']));
    ps.push(wall(join(project, 'node_modules', '.bin', 'qvac-managed'), ['ps', '--registry', emptyRegistry]));
  }
  record('node -e 0 (ms)', 'node', nodeStart);
  record('qvac-managed ps, empty registry (ms)', 'ours', ps);
  const overhead = ps.map((t, i) => t - nodeStart[i]);
  record('qvac-managed ps minus Node start-up (ms)', 'ours', overhead);
}

// Report.
const targets = {
  'cold start overhead (ms)': '<= 15',
  'first attach in a fresh process: import + createQvac (ms)': '<= 10',
  'of which createQvac (ms)': '<= 3',
  'a second createQvac in the same process (ms)': '<= 1',
  '30 fresh processes attaching at once: import + createQvac (ms)': '<= 1/3 of upstream',
  'warm attach (ms)': '<= 3',
  'warm attach: with a budget minus without (ms)': '<= 0.1',
  'cold start: under a budget minus without (ms)': '<= 2',
  'reap after close, minus idle (ms)': '<= 150',
  'reap after SIGKILL, minus idle (ms)': '<= 150',
  'teardown to group gone, minus grace (ms)': '<= 300',
  'runner RSS (MiB)': '<= 4',
  'start timeout reported, minus timeout (ms)': '<= 100',
  'FileLock wait aborted: rejection after abort() (ms)': '<= 10',
  'worker gone after its parent is SIGKILLed (ms)': '<= 200',
  'qvac-managed ps minus Node start-up (ms)': '<= 10'
};
const fmt = (x) => (x === undefined ? '—' : Math.abs(x) >= 100 ? x.toFixed(0) : x.toFixed(2));
const lines = [
  '| metric | ours median | ours p95 | upstream 0.7.0 median | upstream p95 | ratio ours/theirs | target |',
  '|---|---|---|---|---|---|---|'
];
for (const [metric, byImpl] of Object.entries(results)) {
  if (metric === 'teardownDetail') continue;
  if (metric.startsWith('lock') || metric.startsWith('contended')) {
    for (const [impl, s] of Object.entries(byImpl)) lines.push(`| ${metric}: ${impl} | ${fmt(s.median)} | ${fmt(s.p95)} | | | | |`);
    continue;
  }
  const o = byImpl.ours ?? byImpl.serve ?? byImpl.node;
  const u = byImpl.upstream;
  const extra = (s) =>
    s?.spawns !== undefined
      ? ` (p99 ${fmt(s.p99)}; ${s.spawns} spawn${s.spawns === 1 ? '' : 's'})`
      : s?.codes
        ? ` (${s.codes.join(', ')})`
        : '';
  const ratio = u && o && u.median !== 0 ? (o.median / u.median).toFixed(2) : '';
  lines.push(`| ${metric} | ${fmt(o?.median)}${extra(o)} | ${fmt(o?.p95)} | ${fmt(u?.median)}${extra(u)} | ${fmt(u?.p95)} | ${ratio} | ${targets[metric] ?? ''} |`);
}
// Which targets the medians meet.
const verdicts = [];
for (const [metric, target] of Object.entries(targets)) {
  const o = results[metric]?.ours ?? results[metric]?.node;
  if (!o) continue;
  const u = results[metric]?.upstream;
  const bound = target.includes('of upstream') ? (u ? u.median / 3 : undefined) : Number(target.replace(/[^\d.]/g, ''));
  if (bound === undefined) continue;
  verdicts.push(`${o.median <= bound ? 'met' : 'NOT MET'}: ${metric} ${fmt(o.median)} (target ${target}${target.includes('of upstream') ? ` = ${fmt(bound)}` : ''})`);
}
lines.push('', ...verdicts.map((v) => `- ${v}`));
const machine = `${cpus().length} × ${cpus()[0]?.model ?? 'cpu'}, ${(totalmem() / 2 ** 30).toFixed(0)} GiB, ${process.platform} ${process.arch}, Node ${process.version}`;
const table = `${lines.join('\n')}\n\nMeasured through the package installed from \`npm run pack:local\` tarballs (qvac-managed ${JSON.parse(readFileSync(join(project, 'node_modules', 'qvac-managed', 'package.json'), 'utf8')).version}) and @qvac/ai-sdk-provider 0.7.0 in one project.`;
console.log(`\nqvac-managed vs @qvac/ai-sdk-provider@0.7.0 — ${new Date().toISOString()}\nmachine: ${machine}${QUICK ? ' (QUICK run)' : ''}\n\n${table}\n`);
mkdirSync(resultsDir, { recursive: true });
writeFileSync(join(resultsDir, 'latest.json'), `${JSON.stringify({ date: new Date().toISOString(), machine, quick: QUICK, fakeServeBootMs: stats(boots).median, results }, null, 2)}\n`);
writeFileSync(join(resultsDir, 'latest.md'), `machine: ${machine}\n\n${table}\n`);
rmSync(work, { recursive: true, force: true });
process.exit(0);
