// The main job until the managed-serve provider lands: two real processes contend for a PID
// lock and an flock, one is SIGKILLed, and the survivor takes over only what is provably free.
// Run: npm install && npm run demo
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

import { FileLock, PidLock, retry } from '../dist/index.js';

const holderScript = fileURLToPath(new URL('../__test__/fixtures/lock-holder.mjs', import.meta.url));
const dir = mkdtempSync(join(tmpdir(), 'qvac-managed-demo-'));
const step = (text) => console.log(`\n> ${text}`);

function startHolder(kind, path) {
  const child = spawn(process.execPath, [holderScript, kind, path], { stdio: ['pipe', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    createInterface({ input: child.stdout }).once('line', (line) => {
      const event = JSON.parse(line);
      event.event === 'acquired' ? resolve(child) : reject(new Error(line));
    });
  });
}
const exited = (child) => new Promise((r) => child.once('close', r));

try {
  const pidPath = join(dir, '.worker.lock');
  step(`another process takes the PID lock ${pidPath}`);
  const holder = await startHolder('pid', pidPath);
  console.log(`  holder pid ${holder.pid}; inspect:`, PidLock.inspect(pidPath));

  step('we try to take it');
  await PidLock.acquire(pidPath).catch((err) => console.log(`  ${err.code}: ${err.message}`));

  step('the holder is SIGKILLed (no cleanup runs); its file stays behind');
  holder.kill('SIGKILL');
  await exited(holder);
  console.log('  inspect:', PidLock.inspect(pidPath));

  step('we take it over, because the holder is provably dead');
  const lock = await PidLock.acquire(pidPath);
  console.log('  inspect:', PidLock.inspect(pidPath), `(we are pid ${process.pid})`);
  lock.release();

  step('a damaged lock file is not trusted, and the error says how to clear it');
  writeFileSync(pidPath, '');
  await PidLock.acquire(pidPath).catch((err) => console.log(`  ${err.code}: ${err.message}`));
  rmSync(pidPath, { force: true });

  const flockPath = join(dir, 'registry.lock');
  step(`flock: another process holds ${flockPath}; we wait with bounded backoff`);
  const flocker = await startHolder('file', flockPath);
  const started = Date.now();
  await FileLock.acquire(flockPath, { attempts: 4, baseDelayMs: 50 }).catch((err) =>
    console.log(`  ${err.code} after ${Date.now() - started} ms: ${err.message}`)
  );

  step('we wait again and abort after 100 ms');
  const controller = new AbortController();
  setTimeout(() => controller.abort(), 100);
  await FileLock.acquire(flockPath, { deadlineMs: 60_000, signal: controller.signal }).catch((err) =>
    console.log(`  ${err.name}: ${err.message}`)
  );

  step('the holder is SIGKILLed; the kernel frees the flock at once');
  flocker.kill('SIGKILL');
  await exited(flocker);
  const flock = await FileLock.acquire(flockPath);
  console.log(`  acquired: held=${flock.held}`);
  flock.release();

  step('retry(): a flaky operation under the same backoff policy');
  const value = await retry((attempt) => {
    console.log(`  attempt ${attempt}`);
    if (attempt < 3) throw new Error('not ready');
    return 'ready';
  }, { attempts: 5, baseDelayMs: 20 });
  console.log(`  -> ${value}`);
  console.log('\ndemo finished: no lock, file or process left behind.');
} finally {
  rmSync(dir, { recursive: true, force: true });
}
