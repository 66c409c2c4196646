#!/usr/bin/env node
// `qvac-managed` on the PATH of npm users: runs the platform's native binary with the same
// arguments, stdio and exit status. CommonJS, and it loads only the binary lookup
// (dist/platform.cjs), never the addon or the rest of the library, so `qvac-managed ps` costs
// little more than Node's own start-up.
'use strict';
const { spawnSync } = require('node:child_process');
const { resolveRunner } = require('../dist/platform.cjs');

let binary;
try {
  binary = resolveRunner();
} catch (err) {
  // NATIVE_BINARY_MISSING messages already start with the package name.
  console.error(err.code === 'NATIVE_BINARY_MISSING' ? err.message : `qvac-managed: ${err.message}`);
  process.exit(err.code === 'NATIVE_BINARY_MISSING' ? 127 : 1);
}
const result = spawnSync(binary, process.argv.slice(2), { stdio: 'inherit' });
if (result.error) {
  console.error(`qvac-managed: cannot run ${binary}: ${result.error.message}`);
  process.exit(1);
}
if (result.signal) process.kill(process.pid, result.signal);
process.exit(result.status ?? 1);
