// The bare lane (a step of `npm test`): the package as a QVAC SDK worker gets it. Packs the
// tarballs (`npm run pack:local`), installs them into a fresh project with `bare-runtime@1.31.0`
// (what @qvac/sdk 0.19.1 resolves) and bare-pipe (the worker's socket), with no Rust on PATH; adds
// the newest Bare binary on npm beside it; reports the threadsafe-function finalizer order each
// host uses (the probe addon, so a Bare that fixes it is seen); then runs __test__/bare/bare.test.mjs
// (worker-side API in Bare processes, under both Bares) and prints `N passed, N failed`.
// Linux x64 only here (the Bare binaries run natively); elsewhere it says so and passes nothing.
import { spawnSync } from 'node:child_process';
import { chmodSync, cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { installProject, machineNode, packLocal, root, userEnv } from './installed-project.mjs';

const SDK_BARE = '1.31.0';
if (process.platform !== 'linux' || process.arch !== 'x64') {
  console.log(`bare lane: runs on Linux x64 only (this is ${process.platform}-${process.arch}); 0 passed, 0 failed`);
  process.exit(0);
}
const keep = process.argv.includes('--keep');
const base = mkdtempSync(join(tmpdir(), 'qvac-managed-bare-lane-'));
let status = 1;
try {
  const tarballs = packLocal();
  const project = join(base, 'worker');
  console.log(`--- npm install ${tarballs.all.join(' ')} bare-runtime@${SDK_BARE} bare-pipe`);
  if (!installProject(project, [...tarballs.all, `bare-runtime@${SDK_BARE}`, 'bare-pipe@4'])) throw new Error('npm install failed');
  const bins = [{ version: SDK_BARE, path: join(project, 'node_modules', 'bare-runtime-linux-x64', 'bin', 'bare') }];
  // The newest Bare binary on npm (bare-runtime itself lags behind its platform packages).
  const latest = spawnSync('npm', ['view', 'bare-runtime-linux-x64', 'version'], { encoding: 'utf8', env: userEnv() }).stdout.trim();
  if (latest && latest !== SDK_BARE) {
    const dir = join(base, `bare-${latest}`);
    mkdirSync(dir);
    const packed = spawnSync('npm', ['pack', '--silent', `bare-runtime-linux-x64@${latest}`], { cwd: dir, encoding: 'utf8', env: userEnv() });
    if (packed.status !== 0) throw new Error(`npm pack bare-runtime-linux-x64@${latest} failed: ${packed.stderr}`);
    spawnSync('tar', ['xzf', packed.stdout.trim().split('\n').pop()], { cwd: dir, stdio: 'inherit' });
    bins.push({ version: latest, path: join(dir, 'package', 'bin', 'bare') });
  }
  // npm may leave the binary without its run bit.
  for (const { path } of bins) chmodSync(path, 0o755);
  for (const { version, path } of bins) {
    const reported = spawnSync(path, ['--version'], { encoding: 'utf8' }).stdout.trim();
    console.log(`--- Bare ${version}: ${path} (--version: ${reported})`);
  }
  mkdirSync(join(project, 'test'));
  for (const file of ['worker.mjs', 'sdk-parent.mjs']) cpSync(join(root, '__test__', 'bare', file), join(project, 'test', file));
  const probe = join(root, '__test__', 'bare', 'probe', 'run.mjs');
  console.log('--- the threadsafe-function finalizer order each host uses (probe addon)');
  const probed = spawnSync(machineNode, [probe, '--json', ...bins.map((b) => b.path)], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'], env: userEnv() });
  if (probed.status !== 0) throw new Error('the probe addon failed');
  const report = JSON.parse(probed.stdout);
  for (const r of report) console.log(`${r.host} ${r.version}: tsfn-finalize-order=${r.tsfnFinalizeOrder} remove-unknown-cleanup-hook=${r.removeUnknownCleanupHook}`);
  for (const bin of bins) bin.tsfnFinalizeOrder = report.find((r) => r.bin === bin.path)?.tsfnFinalizeOrder;
  console.log('--- node --test __test__/bare/bare.test.mjs');
  const env = { ...userEnv(), QVAC_BARE_PROJECT: project, QVAC_BARE_BINS: JSON.stringify(bins) };
  const result = spawnSync(machineNode, ['--test', '--test-concurrency=1', join(root, '__test__', 'bare', 'bare.test.mjs')], { env, encoding: 'utf8', stdio: ['ignore', 'pipe', 'inherit'] });
  process.stdout.write(result.stdout);
  const count = (name) => Number(result.stdout.match(new RegExp(`^# ${name} (\\d+)$`, 'm'))?.[1] ?? 0);
  const passed = count('pass');
  const failed = count('fail') + (result.status !== 0 && count('fail') === 0 ? 1 : 0);
  console.log(`bare lane: ${passed} passed, ${failed} failed`);
  status = result.status === 0 && passed > 0 ? 0 : 1;
} catch (error) {
  console.error(`bare lane: ${error.message}`);
  console.log('bare lane: 0 passed, 1 failed');
} finally {
  if (keep) console.log(`kept ${base}`);
  else rmSync(base, { recursive: true, force: true });
}
process.exit(status);
