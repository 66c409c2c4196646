// The qvac-managed CLI against records as upstream 0.7.0 writes them (no start times) and with
// odd values: it never panics, and `stop` never signals a process it cannot prove is the runner.
// `doctor` resolves the serve as the runner does, `logs --follow` survives a rotation, and `gc`
// ages out what finished fleets leave behind.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { appendFileSync, existsSync, mkdirSync, readdirSync, renameSync, utimesSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { resolveRunnerPath } from '../dist/index.js';
import { fixtures, running, tempDir, waitFor } from './helpers.mjs';

const cli = (args, options = {}) => spawnSync(resolveRunnerPath(), args, { encoding: 'utf8', ...options });

/** A process of the test's own that is neither a serve nor a runner. */
function bystander(t) {
  const child = spawn('sleep', ['60'], { stdio: 'ignore' });
  t.after(() => child.kill('SIGKILL'));
  return child.pid;
}

function upstreamRecord(dir, fleetKey, extra) {
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  const record = {
    fleetKey, apiKey: 'k'.repeat(43), port: 41999, host: '127.0.0.1', baseURL: 'http://127.0.0.1:41999/v1',
    configPath: '/nonexistent/qvac.config.json', startedAt: new Date().toISOString(), idleTimeoutMs: 300000, ...extra
  };
  writeFileSync(join(dir, `${fleetKey}.json`), JSON.stringify(record), { mode: 0o600 });
}

describe('qvac-managed CLI', () => {
  test('ps and ps --json do not panic on idleTimeoutMs -1 or 1e300 (upstream accepts both)', (t) => {
    const dir = join(tempDir(t), 'reg');
    upstreamRecord(dir, 'eeeeeeeeeeeeeee1', { servePid: bystander(t), runnerPid: bystander(t), idleTimeoutMs: -1 });
    upstreamRecord(dir, 'eeeeeeeeeeeeeee2', { servePid: bystander(t), runnerPid: bystander(t), idleTimeoutMs: 1e300 });
    const table = cli(['ps', '--registry', dir]);
    assert.equal(table.status, 0, table.stderr);
    assert.match(table.stdout, /eeeeeeeeeeeeeee1/);
    assert.match(table.stdout, /eeeeeeeeeeeeeee2/);
    const json = cli(['ps', '--json', '--registry', dir]);
    assert.equal(json.status, 0, json.stderr);
    assert.deepEqual(JSON.parse(json.stdout).map((s) => s.idleTimeoutMs).sort(), [-1, 1e300].sort());
  });

  test('stop never signals a runner pid it cannot prove (no start time, command line without the fleet)', (t) => {
    const dir = join(tempDir(t), 'reg');
    const runner = bystander(t);
    const serve = bystander(t);
    upstreamRecord(dir, 'eeeeeeeeeeeeeee3', { servePid: serve, runnerPid: runner });
    const stop = cli(['stop', 'eeeeeeeeeeeeeee3', '--registry', dir]);
    assert.equal(stop.status, 1, stop.stdout + stop.stderr);
    assert.match(stop.stdout, /cannot be proven to be this fleet's runner/);
    assert.ok(running(runner), 'the bystander named as runner was not signalled');
    assert.ok(running(serve), 'the bystander named as serve was not signalled');
  });

  test('doctor finds node_modules/@qvac/cli above the working directory, as the runner does', (t) => {
    const project = tempDir(t);
    const pkg = join(project, 'node_modules', '@qvac', 'cli');
    mkdirSync(join(pkg, 'dist'), { recursive: true });
    writeFileSync(join(pkg, 'package.json'), JSON.stringify({ name: '@qvac/cli', bin: { qvac: 'dist/cli.js' } }));
    // Run by `node` as the runner runs it; answers --version like the real CLI.
    writeFileSync(join(pkg, 'dist', 'cli.js'), "if (process.argv.includes('--version')) console.log('qvac 9.9.9-project'); else process.exit(64);\n");
    const cwd = join(project, 'app', 'src');
    mkdirSync(cwd, { recursive: true });
    const registry = join(tempDir(t), 'reg');
    const found = cli(['doctor', '--registry', registry], { cwd });
    const entry = join(pkg, 'dist', 'cli.js');
    assert.match(found.stdout, new RegExp(`^ok {3}serve binary: ${entry.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(run by node\\) \\(qvac 9\\.9\\.9-project\\)$`, 'm'), found.stdout + found.stderr);

    // Without the package (and no qvac on PATH): FAIL, naming where it looked.
    const bare = tempDir(t);
    const missing = cli(['doctor', '--registry', registry], { cwd: bare, env: { ...process.env, PATH: '/nonexistent' } });
    assert.equal(missing.status, 1, missing.stdout + missing.stderr);
    assert.match(missing.stdout, /^FAIL serve binary: .*no node_modules\/@qvac\/cli above .*npm i @qvac\/cli/m);
    assert.ok(missing.stdout.includes(bare), missing.stdout);
  });

  test('logs --follow follows the runner log across a rotation (rename + new file): new lines arrive, none repeated', async (t) => {
    const dir = join(tempDir(t), 'reg');
    mkdirSync(dir, { mode: 0o700 });
    const key = 'f0f0f0f0f0f0f0f0-priv-123-abcd';
    const log = join(dir, `${key}.log`);
    writeFileSync(log, 'line 1\n');
    const child = spawn(resolveRunnerPath(), ['logs', key, '--follow', '--registry', dir], { stdio: ['ignore', 'pipe', 'pipe'] });
    t.after(() => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (d) => (out += d));
    child.stderr.setEncoding('utf8').on('data', (d) => (err += d));
    const printed = (text) =>
      waitFor(() => out.includes(text), 10_000, `${JSON.stringify(text)} printed`).catch((e) => {
        throw new Error(`${e.message}; printed (last 500 chars): ${JSON.stringify(out.slice(-500))}; stderr: ${err}`);
      });
    await printed('line 1\n');
    appendFileSync(log, 'line 2\n');
    await printed('line 2\n');
    // Rotate as the runner does: the old file is renamed (after a last line) and a new one begun.
    appendFileSync(log, 'line 3 (last of the old file)\n');
    renameSync(log, join(dir, `${key}.log.1`));
    writeFileSync(log, 'line 4 (new file)\n');
    await printed('line 4 (new file)\n');
    appendFileSync(log, 'line 5\n');
    await printed('line 5\n');
    // Rotated again, and this time the new file is longer than the old one was.
    renameSync(log, join(dir, `${key}.log.1`));
    writeFileSync(log, `${'x'.repeat(200)}\nline 6\n`);
    await printed('line 6\n');
    // Truncated in place (same file, shorter than what was read): read again from its start.
    writeFileSync(log, 'line 7\n');
    await printed('line 7\n');
    assert.equal(out, `line 1\nline 2\nline 3 (last of the old file)\nline 4 (new file)\nline 5\n${'x'.repeat(200)}\nline 6\nline 7\n`, 'every line once, in order');
    assert.equal(child.exitCode, null, `still following: ${err}`);
    child.kill('SIGTERM');
  });

  test('gc ages out logs and start errors of fleets with no record and no start under way (--dry-run lists them)', (t) => {
    const dir = join(tempDir(t), 'reg');
    mkdirSync(dir, { mode: 0o700 });
    const dayAndAnHourAgo = Date.now() / 1000 - 25 * 3600;
    const file = (name, old = true) => {
      writeFileSync(join(dir, name), 'x\n', { mode: 0o600 });
      if (old) utimesSync(join(dir, name), dayAndAnHourAgo, dayAndAnHourAgo);
      return name;
    };
    const aged = [
      file('a1a1a1a1a1a1a1a1.log'),
      file('a1a1a1a1a1a1a1a1.log.1'),
      file('a1a1a1a1a1a1a1a1.error'),
      file('b2b2b2b2b2b2b2b2-priv-4242-0badf00d.log'),
      file('b2b2b2b2b2b2b2b2-priv-4242-0badf00d.error')
    ].sort();
    const kept = [
      file('c3c3c3c3c3c3c3c3.log', false), // written within the last day
      file('d4d4d4d4d4d4d4d4.log'), // its fleet has a live record
      file('e5e5e5e5e5e5e5e5.log'), // a start is under way (spawn lock held by a live process)
      file('notes.txt')
    ];
    upstreamRecord(dir, 'd4d4d4d4d4d4d4d4', { servePid: bystander(t), runnerPid: bystander(t) });
    writeFileSync(join(dir, 'e5e5e5e5e5e5e5e5.lock'), `${bystander(t)}\n`, { mode: 0o600 });
    const entries = () => readdirSync(dir).sort();
    const before = entries();

    const dry = cli(['gc', '--dry-run', '--registry', dir]);
    assert.equal(dry.status, 0, dry.stderr);
    for (const name of aged) assert.ok(dry.stdout.includes(`would remove ${join(dir, name)}\n`), `${name} listed: ${dry.stdout}`);
    for (const name of kept) assert.ok(!dry.stdout.includes(name), `${name} not listed: ${dry.stdout}`);
    assert.deepEqual(entries(), before, 'a dry run removes nothing');

    const json = cli(['gc', '--dry-run', '--json', '--registry', dir]);
    assert.deepEqual(JSON.parse(json.stdout).removed.sort(), aged.map((n) => join(dir, n)).sort());

    const doctor = cli(['doctor', '--registry', dir, '--serve-bin-path', join(fixtures, 'fake-serve.mjs')]);
    assert.match(doctor.stdout, /^ok {3}stale files: none \(5 log or error file\(s\) of finished fleets older than 24 h; `qvac-managed gc` removes them\)$/m, doctor.stdout);

    const gc = cli(['gc', '--registry', dir]);
    assert.equal(gc.status, 0, gc.stderr);
    for (const name of aged) {
      assert.ok(gc.stdout.includes(`removed ${join(dir, name)}\n`), `${name} reported: ${gc.stdout}`);
      assert.equal(existsSync(join(dir, name)), false, `${name} removed`);
    }
    for (const name of kept) assert.equal(existsSync(join(dir, name)), true, `${name} kept`);
  });
});
