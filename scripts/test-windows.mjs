// The Windows suite (__test__/windows/): the package as a Windows user gets it, installed from
// tarballs into a fresh project with ai@7 and @ai-sdk/openai-compatible@3 and the fake serve as
// the project's `node_modules/@qvac/cli` (run by node.exe as `qvac` would be), run by Node for
// Windows.
//   node scripts/test-windows.mjs [--keep]
// - Here (Linux x64), the Windows lane of `npm test`, under Wine: the win32 platform package is
//   packed by `pack-targets --only=x86_64-pc-windows-msvc` (the GNU build, see that script),
//   installed as npm on Windows would (`--os=win32 --cpu=x64`), and run by Node 22 for Windows.
// - On Windows (the release workflow's leg), natively: `npm run pack:local` (the MSVC build) and
//   the machine's Node.
// Wine is not Windows: what this lane proves and what it cannot is in the README ("Platforms").
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { installProject, machineNode, packLocal, root, userEnv } from './installed-project.mjs';

const keep = process.argv.includes('--keep');
const onWindows = process.platform === 'win32';
const started = Date.now();
const log = (msg) => console.log(`[windows ${((Date.now() - started) / 1000).toFixed(1).padStart(6)} s] ${msg}`);
const fail = (msg) => {
  console.error(`test-windows: ${msg}`);
  process.exit(1);
};

/** How node.exe is run: directly on Windows, through bin/wine-run here. */
let runNode = (args, options) => spawnSync(machineNode, args, options);
let nodeEnv = {};
let nativePath = (p) => p;
let tarballs;
let installFlags = [];
if (onWindows) {
  log('packing the main and the win32 platform package (npm run pack:local)');
  tarballs = packLocal().all;
} else {
  const env = JSON.parse(spawnSync(machineNode, [join(root, 'scripts', 'setup-toolchains.mjs'), '--env'], { cwd: root, encoding: 'utf8' }).stdout || 'null');
  const windows = env?.targets?.['x86_64-pc-windows-gnu'];
  if (!windows?.node || !windows?.run?.length) fail('the cross toolchain is not set up: run `npm run setup:toolchains`');
  const [wineRun] = windows.run;
  runNode = (args, options) => spawnSync(wineRun, [windows.node, ...args], options);
  nodeEnv = { WINEPREFIX: windows.env.WINEPREFIX, WINEDEBUG: windows.env.WINEDEBUG };
  nativePath = (p) => `Z:${p.replaceAll('/', '\\')}`;
  // --os/--cpu choose optional dependencies as npm on Windows would; --force lets npm (on Linux)
  // install the win32 tarball named on the command line, which it otherwise refuses (EBADPLATFORM).
  installFlags = ['--os=win32', '--cpu=x64', '--force'];
  log('packing the win32 platform package and the main package (scripts/pack-targets.mjs)');
  const packed = spawnSync(machineNode, [join(root, 'scripts', 'pack-targets.mjs'), '--only=x86_64-pc-windows-msvc'], { cwd: root, stdio: 'inherit' });
  if (packed.status !== 0) fail('pack-targets failed (see above)');
  const artifacts = join(root, 'artifacts');
  tarballs = readdirSync(artifacts)
    .filter((f) => /^qvac-managed-(\d|win32-x64-msvc-)/.test(f) && f.endsWith('.tgz'))
    .map((f) => join(artifacts, f));
}
if (tarballs.length !== 2) fail(`expected the main and the win32 tarball, found ${tarballs.join(', ') || 'none'}`);

const project = mkdtempSync(join(tmpdir(), 'qvac-managed-wine-'));
try {
  const specs = [...tarballs, 'ai@7', '@ai-sdk/openai-compatible@3'];
  log(`npm install ${[...installFlags, ...specs].join(' ')} (in ${project})`);
  if (!installProject(project, specs, installFlags)) fail('npm install failed');
  // The fake serve where the runner looks for the real CLI, run by node.exe as `qvac` would be.
  const cli = join(project, 'node_modules', '@qvac', 'cli');
  mkdirSync(cli, { recursive: true });
  cpSync(join(root, '__test__', 'fixtures', 'fake-serve.mjs'), join(cli, 'cli.js'));
  writeFileSync(join(cli, 'package.json'), `${JSON.stringify({ name: '@qvac/cli', version: '0.0.0-fake', type: 'module', bin: { qvac: 'cli.js' } })}\n`);
  const tests = join(project, 'test');
  mkdirSync(join(tests, 'fixtures'), { recursive: true });
  cpSync(join(root, '__test__', 'windows'), tests, { recursive: true });
  cpSync(join(root, '__test__', 'helpers.mjs'), join(tests, 'helpers.mjs'));
  for (const file of ['fake-serve.mjs', 'common.mjs']) cpSync(join(root, '__test__', 'fixtures', file), join(tests, 'fixtures', file));

  // Under Wine only: undici's connect fails there (`connect UNKNOWN`: Wine 8.0 lacks the
  // TCP_KEEPALIVE socket option libuv sets for undici's early setKeepAlive); the preload defers
  // it to the connect, so the suite uses the global fetch as users do (see wine-keepalive.mjs).
  if (!onWindows) nodeEnv.NODE_OPTIONS = `--import=file:///${nativePath(join(tests, 'wine-keepalive.mjs')).replaceAll('\\', '/')}`;
  const files = readdirSync(tests).filter((f) => f.endsWith('.test.mjs'));
  log(`node --test ${files.join(' ')}${onWindows ? '' : ' (node.exe under Wine)'}`);
  const ran = runNode(['--test', '--test-concurrency=1', ...files.map((f) => nativePath(join(tests, f)))], {
    cwd: project,
    env: { ...userEnv(), ...nodeEnv },
    stdio: 'inherit',
    timeout: 10 * 60_000
  });
  log(`the Windows suite: ${ran.status === 0 ? 'ok' : `FAILED (exit ${ran.status ?? ran.signal ?? ran.error})`}`);
  if (ran.status !== 0) process.exitCode = 1;
} finally {
  if (keep) log(`project kept in ${project}`);
  else rmSync(project, { recursive: true, force: true, maxRetries: 5, retryDelay: 200 });
}
