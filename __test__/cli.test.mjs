// The qvac-managed CLI against records as upstream 0.7.0 writes them (no start times) and with
// odd values: it never panics, and `stop` never signals a process it cannot prove is the runner.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, test } from 'node:test';

import { resolveRunnerPath } from '../dist/index.js';
import { running, tempDir } from './helpers.mjs';

const cli = (args) => spawnSync(resolveRunnerPath(), args, { encoding: 'utf8' });

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
});
