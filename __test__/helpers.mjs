// Shared by the node:test files (runs under Node and Bun). Every process a test signals is one
// it spawned itself, by pid.
import { spawn } from 'node:child_process';
import { createServer as createNetServer } from 'node:net';
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdtempSync, readFileSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

export const fixtures = join(dirname(fileURLToPath(import.meta.url)), 'fixtures');
export const isBun = typeof globalThis.Bun !== 'undefined';
export const isRoot = typeof process.getuid === 'function' && process.getuid() === 0;

/** A fresh directory, world-traversable so an unprivileged child can use it; removed by `t.after`. */
export function tempDir(t) {
  const dir = mkdtempSync(join(tmpdir(), 'qvac-managed-test-'));
  chmodSync(dir, 0o755);
  // Retries the whole removal: a runner of the test may still be finishing its cleanup in there
  // when the test ends (it records how its serve ended just after the serve is gone), and a file
  // written after rm listed the directory fails its rmdir until it is listed again.
  t.after(async () => {
    for (let attempt = 1; ; attempt++) {
      try {
        rmSync(dir, { recursive: true, force: true, maxRetries: 3, retryDelay: 20 });
        return;
      } catch (error) {
        if (attempt >= 40) throw error;
        await new Promise((r) => setTimeout(r, 50));
      }
    }
  });
  return dir;
}

/**
 * Spawns a fixture script with the current runtime (or `runtime`). Resolves lines of JSON it prints; the
 * child is killed (SIGKILL, by pid) when the test ends if it is still running.
 */
export function spawnFixture(t, script, args = [], { runtime = process.execPath, ...options } = {}) {
  const child = spawn(runtime, [join(fixtures, script), ...args], {
    stdio: ['pipe', 'pipe', 'inherit'],
    ...options
  });
  const events = [];
  const waiters = [];
  // 'close', not 'exit': only then has all of the child's output been read.
  const exited = new Promise((resolve) => child.once('close', (code, signal) => resolve({ code, signal })));
  createInterface({ input: child.stdout }).on('line', (line) => {
    let event;
    try {
      event = JSON.parse(line);
    } catch {
      return;
    }
    events.push(event);
    for (const w of [...waiters]) {
      if (w.match(event)) {
        waiters.splice(waiters.indexOf(w), 1);
        w.resolve(event);
      }
    }
  });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    child,
    pid: child.pid,
    exited,
    events,
    /** The first event (past or future) for which `match` is true; rejects if the child exits first. */
    next(match, timeoutMs = 20_000) {
      const seen = events.find(match);
      if (seen) return Promise.resolve(seen);
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`${script}: no matching event within ${timeoutMs} ms; saw ${JSON.stringify(events)}`)), timeoutMs);
        const w = {
          match,
          resolve: (e) => {
            clearTimeout(timer);
            resolve(e);
          }
        };
        waiters.push(w);
        exited.then(({ code, signal }) => {
          clearTimeout(timer);
          if (waiters.includes(w)) reject(new Error(`${script} exited (${code ?? signal}) before a matching event; saw ${JSON.stringify(events)}`));
        });
      });
    },
    /** Closes stdin: fixtures release what they hold and exit normally. */
    finish() {
      child.stdin.end();
      return exited;
    }
  };
}

export const event = (name) => (e) => e.event === name;

/** Polls `check` until it returns truthy or `timeoutMs` passes. */
export async function waitFor(check, timeoutMs = 10_000, what = 'condition') {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

/** A pid that belonged to a process that has exited (spawned and reaped here). */
export async function deadPid() {
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' });
  await new Promise((r) => child.once('exit', r));
  return child.pid;
}

/** Node 22 (devDependency) for running the upstream package, whose engines say >= 22. */
export const node22 = join(dirname(fileURLToPath(import.meta.url)), '..', 'node_modules', 'node', 'bin', 'node');

/** The upstream package's internal modules, by file path (its exports map hides them). */
export const upstreamManaged = (file) =>
  new URL(`../node_modules/@qvac/ai-sdk-provider/dist/managed/${file}`, import.meta.url).href;

/** Seeded PRNG (mulberry32), so generated cases are the same on every run. */
export function prng(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Spawns a fixture that uses the upstream package, under Node 22, with HOME at `home`. */
export function spawnUpstream(t, args, home, script = 'upstream-registry.mjs') {
  return spawnFixture(t, script, args, { runtime: node22, env: { ...process.env, HOME: home } });
}

/**
 * True while `pid` runs: it exists and is not a zombie. (An orphan's zombie waits on an init
 * that may be slow to reap it; it runs nothing.)
 */
export function running(pid) {
  try {
    process.kill(pid, 0);
  } catch (err) {
    if (err.code !== 'EPERM') return false;
  }
  // Windows has no zombies: a pid that answers runs (libuv asks for a live exit code).
  if (process.platform === 'win32') return true;
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

const savedEnv = new WeakMap();

/**
 * Sets environment variables for the rest of the test (the runner and the serve inherit them;
 * `undefined` removes one) and puts back what was there before the test when it ends, however
 * many times it is called in one test. The one way tests change process.env.
 */
export function withEnv(t, vars) {
  let saved = savedEnv.get(t);
  if (!saved) {
    saved = new Map();
    savedEnv.set(t, saved);
    t.after(() => {
      for (const [k, v] of saved) {
        if (v === undefined) delete process.env[k];
        else process.env[k] = v;
      }
    });
  }
  for (const [k, v] of Object.entries(vars)) {
    if (!saved.has(k)) saved.set(k, process.env[k]);
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
}

/** Points TMPDIR (which runners inherit) at a directory of this test's own, so only its temp config dirs count. */
export function privateTmp(t) {
  const dir = tempDir(t);
  withEnv(t, { TMPDIR: dir });
  return dir;
}

/** The runners' private serve directories (`$TMPDIR/qvac-managed-<12 hex>`) now present. */
export const tempConfigDirs = () => readdirSync(process.env.TMPDIR || tmpdir()).filter((f) => /^qvac-managed-[0-9a-f]{12}$/.test(f));

/**
 * Waits until nothing is left in the registry but runner logs, start-failure notes and exit
 * histories (`<key>.exits`, kept for the crash-loop cap and gc'd like logs), then checks
 * no temp config dir was added since `tempBefore` (from `tempConfigDirs()`).
 */
export async function assertRegistryClean(registryDir, tempBefore, timeoutMs = 15_000) {
  const leftovers = () => (existsSync(registryDir) ? readdirSync(registryDir).filter((f) => !/\.(log|log\.1|error|exits)$/.test(f) && !/\.exits\.\d+\.[0-9a-f]+\.tmp$/.test(f)) : []);
  await waitFor(() => leftovers().length === 0, timeoutMs, `a clean registry (left: ${leftovers().join(', ')})`).catch(() => {
    assert.deepEqual(leftovers(), [], 'registry leftovers');
  });
  const added = tempConfigDirs().filter((d) => !tempBefore.includes(d));
  assert.deepEqual(added, [], 'temp config dirs removed');
}

/** Says (with the test runner's diagnostics) that part of a test ran reduced because this is not root. */
export function noteNotRoot(t, what) {
  if (!isRoot) t.diagnostic(`not root: ${what} (runs fully as root)`);
}

/** A loopback port free now (the OS picked it for a listener, closed at once). */
export const freePort = () =>
  new Promise((resolve) => {
    const server = createNetServer().listen(0, '127.0.0.1', () => {
      const { port } = server.address();
      server.close(() => resolve(port));
    });
  });
