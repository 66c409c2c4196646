// A fresh npm project with this package installed from its `npm run pack:local` tarballs, as a
// user without Rust gets it. Shared by the installed-package suite and the benchmarks.
import { spawnSync } from 'node:child_process';
import { accessSync, constants, mkdirSync, readdirSync, writeFileSync } from 'node:fs';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
/** The machine's Node (npm puts this checkout's node_modules/.bin, holding Node 22, first on PATH). */
export const machineNode = process.env.npm_node_execpath ?? process.execPath;

const isExecutable = (file) => {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
};

/**
 * The environment of a user without Rust: every PATH directory holding cargo, rustc or rustup
 * dropped, no node_modules/.bin of this checkout, the machine's Node first, and nothing of this
 * checkout's npm run, cargo or runner overrides.
 */
export function userEnv(base = process.env) {
  const path = [dirname(machineNode), ...(base.PATH ?? '').split(delimiter)]
    .filter((dir) => dir && !dir.includes('node_modules') && !['cargo', 'rustc', 'rustup'].some((tool) => isExecutable(join(dir, tool))))
    .filter((dir, i, all) => all.indexOf(dir) === i)
    .join(delimiter);
  const env = { ...base, PATH: path };
  for (const key of Object.keys(env)) {
    if (/^(npm_|CARGO|RUSTUP)/.test(key) || ['INIT_CWD', 'QVAC_MANAGED_RUNNER', 'NAPI_RS_NATIVE_LIBRARY_PATH'].includes(key)) delete env[key];
  }
  return env;
}

/** Runs `npm run pack:local` (which builds); returns the tarballs it wrote. */
export function packLocal() {
  const result = spawnSync(machineNode, [join(root, 'scripts', 'pack-local.mjs')], { cwd: root, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`pack:local failed (exit ${result.status ?? result.signal})`);
  const dir = join(root, 'artifacts');
  const tarballs = readdirSync(dir).filter((f) => f.endsWith('.tgz')).map((f) => join(dir, f));
  return { all: tarballs, main: tarballs.find((f) => /qvac-managed-\d/.test(f)) };
}

/** `npm install <specs>` into a new project at `dir` (ESM), as a user would; true when it worked. */
export function installProject(dir, specs, flags = []) {
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, 'package.json'), `${JSON.stringify({ name: 'qvac-managed-user-project', private: true, type: 'module' }, null, 2)}\n`);
  // --prefer-offline: third-party packages come from the cache the checkout's install filled.
  const args = ['install', '--no-audit', '--no-fund', '--prefer-offline', '--loglevel=error', ...flags, ...specs];
  // npm is npm.cmd on Windows, which only a shell runs.
  const result = spawnSync('npm', args, { cwd: dir, env: userEnv(), stdio: 'inherit', shell: process.platform === 'win32' });
  return result.status === 0;
}
