// What scripts/pack-local.mjs and scripts/pack-targets.mjs share: running a command, and packing
// the main package from a staged copy of what it publishes.
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export const root = join(dirname(fileURLToPath(import.meta.url)), '..');
export const artifacts = join(root, 'artifacts');
export const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

/** Runs a command to completion and returns its stdout; on failure prints its output and throws. */
export function run(cmd, args, cwd = root) {
  const result = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (result.status !== 0) {
    process.stdout.write(result.stdout ?? '');
    process.stderr.write(result.stderr ?? '');
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${result.status ?? result.signal})`);
  }
  return result.stdout;
}

/**
 * A temp copy of what the main package publishes (removed when the process exits), without the
 * `prepare` script: it builds from source in a clone; npm users' installs must never try it.
 */
export function stageMainPackage() {
  const stage = mkdtempSync(join(tmpdir(), 'qvac-managed-pack-'));
  const published = { ...pkg, scripts: { ...pkg.scripts } };
  delete published.scripts.prepare;
  writeFileSync(join(stage, 'package.json'), `${JSON.stringify(published, null, 2)}\n`);
  for (const entry of [...pkg.files, 'README.md']) cpSync(join(root, entry), join(stage, entry), { recursive: true });
  process.on('exit', () => rmSync(stage, { recursive: true, force: true }));
  return stage;
}

/**
 * `npm pack` of `dir` into `destination`; returns npm's --json record (filename, size, entryCount,
 * files with their modes). --ignore-scripts: the callers have just built everything.
 */
export function npmPack(dir, destination = artifacts) {
  const [packed] = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', destination], dir));
  return packed;
}

/** Throws unless the packed main package holds what an install from the tarball needs. */
export function checkMainPackage(packed) {
  const files = new Set(packed.files.map((f) => f.path));
  for (const want of ['dist/index.js', 'dist/platform.cjs', 'bin/qvac-managed.cjs', 'index.js', 'index.d.ts']) {
    if (!files.has(want)) throw new Error(`${packed.filename} lacks ${want}`);
  }
}
