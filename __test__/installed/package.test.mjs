// The package as npm users get it: installed from the `npm run pack:local` tarballs into a fresh
// project with no Rust toolchain on PATH (scripts/test-installed.mjs sets that up and runs this file
// there under Node 20, Node 22 and Bun). Everything is imported by package name.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { event, fixtures, running, spawnFixture, tempDir, waitFor } from './helpers.mjs';

const project = join(dirname(fileURLToPath(import.meta.url)), '..');
const fakeServe = join(fixtures, 'fake-serve.mjs');
const platformPackage = join(project, 'node_modules', 'qvac-managed-linux-x64-gnu');
const model = 'QWEN3_600M_INST_Q4';

/** `qvac-managed <args>` through the installed bin shim, as `npx qvac-managed` runs it. */
function cli(args, env = process.env) {
  const result = spawnSync(join(project, 'node_modules', '.bin', 'qvac-managed'), args, { cwd: project, env, encoding: 'utf8' });
  return { status: result.status, stdout: result.stdout, stderr: result.stderr };
}

test('no Rust toolchain is reachable here: the install could not have built anything', () => {
  for (const tool of ['cargo', 'rustc']) {
    const found = spawnSync('sh', ['-c', `command -v ${tool}`], { encoding: 'utf8' });
    assert.notEqual(found.status, 0, `${tool} is on PATH (${found.stdout.trim()})`);
  }
  assert.ok(!existsSync(join(project, 'node_modules', 'qvac-managed', 'target')), 'no cargo target dir in the installed package');
});

test('the platform package holds the addon and an executable runner', () => {
  const files = readdirSync(platformPackage).sort();
  assert.deepEqual(files, ['README.md', 'package.json', 'qvac-managed', 'qvac-managed.linux-x64-gnu.node']);
  assert.ok(statSync(join(platformPackage, 'qvac-managed')).mode & 0o100, 'runner lost its run bit');
  // The main package ships no binary of its own.
  assert.ok(!readdirSync(join(project, 'node_modules', 'qvac-managed')).some((f) => f.endsWith('.node')));
});

test('ESM import by package name gives the whole API and finds the runner in the platform package', async () => {
  const m = await import('qvac-managed');
  for (const name of ['createQvac', 'ensureServe', 'PidLock', 'FileLock', 'retry', 'singleFlight', 'spawnSupervised', 'installShutdownHandlers', 'ManagedRegistry']) {
    assert.equal(typeof m[name], 'function', name);
  }
  assert.equal(realpathSync(m.resolveRunnerPath()), realpathSync(join(platformPackage, 'qvac-managed')));
});

test('CommonJS require by package name: createQvac + generateText', async (t) => {
  const home = tempDir(t);
  const child = spawnFixture(t, 'consumer.cjs', [fakeServe], { env: { ...process.env, HOME: home } });
  const result = await child.next((e) => e.event !== undefined, 60_000);
  assert.equal(result.event, 'done', result.message);
  assert.equal(result.text, 'echo: from commonjs');
  assert.equal(result.hasPidLock, true);
  assert.equal(result.errorBase, 'function');
  assert.equal(realpathSync(result.runner), realpathSync(join(platformPackage, 'qvac-managed')));
});

test('createQvac + generateText + streamText against the fake serve, then close and reap', async (t) => {
  const home = tempDir(t);
  const previousHome = process.env.HOME;
  process.env.HOME = home;
  t.after(() => {
    process.env.HOME = previousHome;
  });
  const { createQvac } = await import('qvac-managed');
  const { generateText, streamText } = await import('ai');
  const provider = await createQvac({ mode: 'managed', models: [model], serveBinPath: fakeServe, serveIdleTimeout: 200 });
  const servePid = provider.pid;
  assert.ok(running(servePid));
  assert.match(provider.baseURL, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
  const { text } = await generateText({ model: provider(model), prompt: 'installed' });
  assert.equal(text, 'echo: installed');
  let streamed = '';
  for await (const delta of streamText({ model: provider(model), prompt: 'streamed' }).textStream) streamed += delta;
  assert.equal(streamed, 'echo: streamed');
  const registry = join(home, '.qvac', 'managed-serves');
  assert.equal(readdirSync(registry).filter((f) => f.endsWith('.json')).length, 1);
  await provider.close();
  await waitFor(() => !running(servePid), 10_000, 'serve reaped after close');
  await waitFor(() => readdirSync(registry).every((f) => f.endsWith('.log') || f.endsWith('.exits')), 5_000, 'registry left with only the runner log and the exit history');
});

test('two processes share one serve; it is reaped after both leave', async (t) => {
  const home = tempDir(t);
  const env = { ...process.env, HOME: home };
  const options = JSON.stringify({ models: [model], serveBinPath: fakeServe, serveIdleTimeout: 200 });
  const a = spawnFixture(t, 'consumer.mjs', [options], { env });
  const b = spawnFixture(t, 'consumer.mjs', [options], { env });
  const [ea, eb] = await Promise.all([a.next(event('attached'), 60_000), b.next(event('attached'), 60_000)]);
  assert.equal(ea.servePid, eb.servePid, 'one serve for both');
  assert.equal(ea.port, eb.port);
  assert.equal(ea.text, `echo: from ${a.pid}`);
  assert.equal(eb.text, `echo: from ${b.pid}`);
  await a.finish();
  // One consumer left: the serve must still be up past the idle timeout.
  await new Promise((r) => setTimeout(r, 400));
  assert.ok(running(ea.servePid), 'reaped while a consumer was still attached');
  await b.finish();
  await waitFor(() => !running(ea.servePid), 10_000, 'serve reaped after the last consumer left');
});

test('the CLI from the bin shim: ps --json, doctor, stop', async (t) => {
  const home = tempDir(t);
  const registry = join(home, '.qvac', 'managed-serves');
  const env = { ...process.env, HOME: home };
  const empty = cli(['ps', '--json', '--registry', registry], env);
  assert.equal(empty.status, 0, empty.stderr);
  assert.deepEqual(JSON.parse(empty.stdout), []);

  const consumer = spawnFixture(t, 'consumer.mjs', [JSON.stringify({ models: [model], serveBinPath: fakeServe, serveIdleTimeout: 60_000 })], { env });
  const attached = await consumer.next(event('attached'), 60_000);
  const ps = cli(['ps', '--json', '--registry', registry], env);
  assert.equal(ps.status, 0, ps.stderr);
  const serves = JSON.parse(ps.stdout);
  assert.equal(serves.length, 1);
  assert.equal(serves[0].servePid, attached.servePid);
  assert.equal(serves[0].consumers, 1);
  assert.deepEqual(serves[0].models, [model]);

  const doctor = cli(['doctor', '--registry', registry, '--serve-bin-path', fakeServe], env);
  assert.equal(doctor.status, 0, doctor.stdout + doctor.stderr);
  assert.match(doctor.stdout, /all checks passed/);

  const stop = cli(['stop', serves[0].fleetKey.slice(0, 8), '--registry', registry], env);
  assert.equal(stop.status, 0, stop.stdout + stop.stderr);
  assert.match(stop.stdout, /stopped/);
  assert.ok(!running(attached.servePid), 'serve still running after stop');
  const after = cli(['ps', '--json', '--registry', registry], env);
  assert.deepEqual(JSON.parse(after.stdout), []);
});

test('the main package pins every platform package, exact version, as an optional dependency', async () => {
  const { readFileSync } = await import('node:fs');
  const main = JSON.parse(readFileSync(join(project, 'node_modules', 'qvac-managed', 'package.json'), 'utf8'));
  const platform = JSON.parse(readFileSync(join(platformPackage, 'package.json'), 'utf8'));
  assert.deepEqual(Object.keys(main.optionalDependencies).sort(), [
    'qvac-managed-darwin-arm64',
    'qvac-managed-darwin-x64',
    'qvac-managed-linux-arm64-gnu',
    'qvac-managed-linux-x64-gnu',
    'qvac-managed-win32-x64-msvc'
  ]);
  for (const version of Object.values(main.optionalDependencies)) assert.equal(version, main.version);
  assert.equal(platform.version, main.version);
  assert.equal(main.scripts?.prepare, undefined, 'the published package must not build from source');
});
