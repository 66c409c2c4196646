// The installed-package suite (a step of `npm test`): packs the tarballs (`npm run pack:local`),
// installs them into fresh projects with the Rust toolchain removed from PATH, and runs
// __test__/installed/ there under Node 20, Node 22 and Bun, importing the package by name:
//   project "full":           npm install <both tarballs> ai@7 @ai-sdk/openai-compatible@3
//   project "omit-optional":  npm install --omit=optional <main tarball>   (no platform package)
// Usage: node scripts/test-installed.mjs [--runtimes=node20,node22,bun] [--keep]
import { spawnSync } from 'node:child_process';
import { accessSync, constants, cpSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const suite = join(root, '__test__', 'installed');
const machineNode = process.env.npm_node_execpath ?? process.execPath;
const runtimes = {
  node20: [machineNode, ['--test', '--test-concurrency=1']],
  node22: [join(root, 'node_modules', 'node', 'bin', 'node'), ['--test', '--test-concurrency=1']],
  bun: [join(root, 'node_modules', 'bun', 'bin', 'bun.exe'), ['test', '--timeout', '60000']]
};
const only = process.argv.find((a) => a.startsWith('--runtimes='))?.slice('--runtimes='.length).split(',') ?? Object.keys(runtimes);
const keep = process.argv.includes('--keep');

const isExecutable = (file) => {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};
// PATH as a user without Rust has it: every directory holding cargo or rustc is dropped, and the
// machine's Node directory comes first (npm puts this repo's node_modules/.bin on PATH, with Node 22).
const pathWithoutRust = [dirname(machineNode), ...(process.env.PATH ?? '').split(delimiter)]
  .filter((dir) => dir && !dir.includes('node_modules') && !['cargo', 'rustc', 'rustup'].some((tool) => isExecutable(join(dir, tool))))
  .filter((dir, i, all) => all.indexOf(dir) === i)
  .join(delimiter);
const userEnv = { ...process.env, PATH: pathWithoutRust };
for (const key of Object.keys(userEnv)) {
  // Nothing of this checkout's npm run or cargo may leak into the user's project.
  if (key.startsWith('npm_') || key.startsWith('CARGO') || key.startsWith('RUSTUP') || key === 'INIT_CWD' || key === 'QVAC_MANAGED_RUNNER' || key === 'NAPI_RS_NATIVE_LIBRARY_PATH') {
    delete userEnv[key];
  }
}

function step(what, cmd, args, options = {}) {
  const started = Date.now();
  console.log(`--- ${what}: ${[cmd, ...args].join(' ')}`);
  const result = spawnSync(cmd, args, { stdio: 'inherit', ...options });
  const ok = result.status === 0;
  console.log(`--- ${what}: ${ok ? 'ok' : `FAILED (exit ${result.status ?? result.signal})`} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return ok;
}

const failed = [];
if (!step('pack', machineNode, [join(root, 'scripts', 'pack-local.mjs')], { cwd: root })) process.exit(1);
const tarballs = readdirSync(join(root, 'artifacts')).filter((f) => f.endsWith('.tgz')).map((f) => join(root, 'artifacts', f));
const mainTarball = tarballs.find((f) => /qvac-managed-\d/.test(f));

const base = mkdtempSync(join(tmpdir(), 'qvac-managed-installed-'));
const projects = {
  full: { install: [...tarballs, 'ai@7', '@ai-sdk/openai-compatible@3'], flags: [], tests: ['package.test.mjs'] },
  'omit-optional': { install: [mainTarball], flags: ['--omit=optional'], tests: ['omit-optional.test.mjs'] }
};
try {
  for (const [name, project] of Object.entries(projects)) {
    const dir = join(base, name);
    mkdirSync(join(dir, 'test', 'fixtures'), { recursive: true });
    writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: `installed-${name}`, private: true, type: 'module' }, null, 2)}\n`);
    // --prefer-offline: ai and the provider come from the cache the checkout's install filled.
    const npmArgs = ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...project.flags, ...project.install];
    if (!step(`${name}: install`, 'npm', npmArgs, { cwd: dir, env: userEnv })) {
      failed.push(`${name}: install`);
      continue;
    }
    for (const file of project.tests) cpSync(join(suite, file), join(dir, 'test', file));
    cpSync(join(root, '__test__', 'helpers.mjs'), join(dir, 'test', 'helpers.mjs'));
    cpSync(join(suite, 'fixtures'), join(dir, 'test', 'fixtures'), { recursive: true });
    cpSync(join(root, '__test__', 'fixtures', 'fake-serve.mjs'), join(dir, 'test', 'fixtures', 'fake-serve.mjs'));
    for (const runtime of only) {
      const [cmd, args] = runtimes[runtime];
      const files = project.tests.map((f) => `./test/${f}`);
      if (!step(`${name}: ${runtime}`, cmd, [...args, ...files], { cwd: dir, env: { ...userEnv, TMPDIR: dir } })) failed.push(`${name}: ${runtime}`);
    }
  }
} finally {
  if (keep) console.log(`projects kept in ${base}`);
  else rmSync(base, { recursive: true, force: true });
}
console.log(`installed-package suite: ${failed.length ? `FAILED (${failed.join(', ')})` : 'ok'}`);
process.exit(failed.length ? 1 : 0);
