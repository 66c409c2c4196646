#!/usr/bin/env node
// `qvac-managed` on the PATH of npm users: runs the platform's native binary with the same
// arguments, stdio and exit status.
import { spawnSync } from 'node:child_process';
import { resolveRunnerPath } from '../dist/index.js';

const result = spawnSync(resolveRunnerPath(), process.argv.slice(2), { stdio: 'inherit' });
if (result.error) {
  console.error(`qvac-managed: ${result.error.message}`);
  process.exit(1);
}
if (result.signal) process.kill(process.pid, result.signal);
process.exit(result.status ?? 1);
