// Runs every test: static checks, core unit tests (cargo), then the same node:test files under
// the machine's Node (20+), Node 22 (devDependency) and Bun (devDependency), the fault suite, and
// the installed-package suite (pack, install the tarballs without Rust, test there), every
// platform package packed, the Windows lane under Wine and the linux-arm64 lane under qemu-user.
// Usage: npm test            (everything)
//        npm test -- --only=node20,bun   (a subset: check, targets, cargo, node20, node22, bun, faults, installed, bare, pack, windows, arm64)
import { spawnSync } from 'node:child_process';
import { existsSync, readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const bin = (name) => join(root, 'node_modules', '.bin', name);
// npm puts node_modules/.bin (holding Node 22) first on PATH; npm's own Node is the machine's.
const machineNode = process.env.npm_node_execpath ?? process.execPath;
const testFiles = readdirSync(join(root, '__test__'))
  .filter((f) => f.endsWith('.test.mjs'))
  .sort()
  .map((f) => join('__test__', f));

const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length).split(',');
const steps = [
  ['check', 'npm', ['run', '--silent', 'check']],
  // clippy -D warnings for the other targets in package.json (the cross toolchain is installed,
  // once, into a cache outside the clone by scripts/setup-toolchains.mjs).
  ['targets', machineNode, [join('scripts', 'check-targets.mjs')]],
  ['cargo', 'cargo', ['test', '-p', 'qvac-managed-core', '-p', 'qvac-managed-cli', '--quiet']],
  ['node20', machineNode, ['--test', '--test-concurrency=1', ...testFiles]],
  ['node22', bin('node'), ['--test', '--test-concurrency=1', ...testFiles]],
  ['bun', bin('bun'), ['test', '--timeout', '60000', ...testFiles.map((f) => `./${f}`)]],
  // The fault-injection suite (real signals, real processes) runs once, under the machine's Node.
  ['faults', machineNode, ['--test', '--test-concurrency=1', 'faults/']],
  // The package as users get it: tarballs from `npm run pack:local`, installed with no Rust on PATH.
  ['installed', machineNode, [join('scripts', 'test-installed.mjs')]],
  // The worker-side API in Bare (the QVAC SDK worker's runtime): the tarballs installed with
  // bare-runtime@1.31.0 and the newest Bare binary, driven by __test__/bare/bare.test.mjs.
  ['bare', machineNode, [join('scripts', 'test-bare.mjs')]],
  // Every platform package built and packed (`npm run pack:targets`: formats, run bits, darwin
  // signatures checked in the tarballs).
  ['pack', machineNode, [join('scripts', 'pack-targets.mjs')]],
  // The win32 package installed into a project and run by Node 22 for Windows under Wine.
  ['windows', machineNode, [join('scripts', 'test-windows.mjs')]],
  // linux-arm64 under qemu-user: the aarch64 build, `cargo test` and every __test__ file under
  // Node 22 for linux-arm64.
  ['arm64', machineNode, [join('scripts', 'test-arm64.mjs')]]
].filter(([name]) => !only || only.includes(name));

if (!existsSync(join(root, 'dist', 'index.js'))) {
  console.error('dist/ is missing: run `npm install` (or `npm run build`) first.');
  process.exit(1);
}

const failed = [];
for (const [name, cmd, args] of steps) {
  console.log(`\n=== ${name}: ${[cmd, ...args].join(' ')}`);
  const started = Date.now();
  const result = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  const ok = result.status === 0;
  console.log(`=== ${name}: ${ok ? 'ok' : `FAILED (exit ${result.status ?? result.signal})`} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (!ok) failed.push(name);
}
console.log(`\nsuites: ${steps.length - failed.length} passed, ${failed.length} failed${failed.length ? ` (${failed.join(', ')})` : ''}`);
process.exit(failed.length === 0 ? 0 : 1);
