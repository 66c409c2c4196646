// Runner CPU while a client holds a connection to the serve and no consumer is attached: the
// runner then counts the serve's connections (serveIdleCountsConnections, the default) every
// recount interval for as long as the connection lives. Used by bench/measure.mjs; runs alone too:
//   node bench/runner-cpu.mjs <module> <fake-serve.mjs> [seconds]
// (<module>: a path or package name exporting createQvac and ManagedRegistry; QVAC_MANAGED_RUNNER
// picks the runner binary as usual). Linux only: it reads /proc/<runner pid>/stat.
import { spawnSync } from 'node:child_process';
import { once } from 'node:events';
import { mkdtempSync, readFileSync, readlinkSync, rmSync } from 'node:fs';
import { connect } from 'node:net';
import { homedir, tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const ticksPerSecond = Number(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout.trim()) || 100;

/** utime + stime of `pid`, in ms (a tick is 10 ms where CLK_TCK is 100). */
function cpuMs(pid) {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(fields[11]) + Number(fields[12])) * 1000) / ticksPerSecond;
}

function alive(pid) {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    return !/^[ZX]/.test(stat.slice(stat.lastIndexOf(')') + 2));
  } catch {
    return false;
  }
}

/**
 * Starts a serve, opens one TCP connection to it (no request), closes the provider (its last
 * consumer), lets the runner settle for a second, then reads the runner's CPU time over `seconds`.
 * Returns { cpuMs, seconds, runnerPid, runner (its executable), kept } where `kept` says the connection kept the serve
 * (it must: otherwise the runner was not counting and the figure says nothing).
 */
export async function runnerCpuWithOpenConnection({ createQvac, ManagedRegistry, registryDir, options, seconds = 10 }) {
  const provider = await createQvac(options);
  const servePid = provider.pid;
  const runnerPid = new ManagedRegistry(registryDir).listServes().find((s) => s.servePid === servePid)?.runnerPid;
  if (!runnerPid) throw new Error('bench: no record names the serve just started');
  const client = connect(provider.port, '127.0.0.1');
  await once(client, 'connect');
  await provider.close();
  await sleep(1000);
  const before = cpuMs(runnerPid);
  await sleep(seconds * 1000);
  const after = cpuMs(runnerPid);
  const kept = alive(servePid) && alive(runnerPid);
  const runner = readlinkSync(`/proc/${runnerPid}/exe`);
  client.destroy();
  // The connection gone, the serve is reaped after its idle timeout.
  const deadline = Date.now() + 30_000;
  while (alive(servePid) && Date.now() < deadline) await sleep(50);
  return { cpuMs: after - before, seconds, runnerPid, runner, kept };
}

// Alone: node bench/runner-cpu.mjs <module> <fake-serve.mjs> [seconds]
if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  const [spec, fakeServe, seconds = '10'] = process.argv.slice(2);
  const module = await import(spec.startsWith('.') || spec.startsWith('/') ? pathToFileURL(resolve(spec)).href : spec);
  const home = mkdtempSync(join(tmpdir(), 'qvac-managed-runner-cpu-'));
  process.env.HOME = home;
  try {
    const r = await runnerCpuWithOpenConnection({
      createQvac: module.createQvac,
      ManagedRegistry: module.ManagedRegistry,
      registryDir: join(homedir(), '.qvac', 'managed-serves'),
      options: { mode: 'managed', models: [{ name: 'QWEN3_600M_INST_Q4', config: { bench: `cpu-${process.pid}` } }], serveBinPath: resolve(fakeServe), serveIdleTimeout: 2000 },
      seconds: Number(seconds),
    });
    console.log(JSON.stringify(r));
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}
