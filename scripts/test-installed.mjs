// The installed-package suite (a step of `npm test`): packs the tarballs (`npm run pack:local`),
// installs them into fresh projects with the Rust toolchain removed from PATH, and runs
// __test__/installed/ there under Node 20, Node 22 and Bun, importing the package by name:
//   project "full":           npm install <both tarballs> ai@7 @ai-sdk/openai-compatible@3
//   project "omit-optional":  npm install --omit=optional <main tarball>   (no platform package)
//   project "no-peers":       npm install <both tarballs>                  (no ai, no @ai-sdk/openai-compatible)
//                             + tsc --strict of a primitives-only TypeScript file, skipLibCheck off
// Usage: node scripts/test-installed.mjs [--runtimes=node20,node22,bun] [--keep]
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { installProject, machineNode, packLocal, root, userEnv } from './installed-project.mjs';

const suite = join(root, '__test__', 'installed');
const runtimes = {
  node20: [machineNode, ['--test', '--test-concurrency=1']],
  node22: [join(root, 'node_modules', 'node', 'bin', 'node'), ['--test', '--test-concurrency=1']],
  bun: [join(root, 'node_modules', 'bun', 'bin', 'bun.exe'), ['test', '--timeout', '60000']]
};
const only = process.argv.find((a) => a.startsWith('--runtimes='))?.slice('--runtimes='.length).split(',') ?? Object.keys(runtimes);
const keep = process.argv.includes('--keep');

function step(what, run) {
  const started = Date.now();
  console.log(`--- ${what}`);
  const ok = run();
  console.log(`--- ${what}: ${ok ? 'ok' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  return ok;
}

const tarballs = packLocal();
const projects = {
  full: { specs: [...tarballs.all, 'ai@7', '@ai-sdk/openai-compatible@3'], flags: [], tests: ['package.test.mjs'] },
  'omit-optional': { specs: [tarballs.main], flags: ['--omit=optional'], tests: ['omit-optional.test.mjs'] },
  'no-peers': { specs: tarballs.all, flags: [], tests: ['no-peers.test.mjs'], types: true }
};
const base = mkdtempSync(join(tmpdir(), 'qvac-managed-installed-'));
const failed = [];
try {
  for (const [name, project] of Object.entries(projects)) {
    const dir = join(base, name);
    if (!step(`${name}: npm install ${project.flags.join(' ')} ${project.specs.join(' ')}`, () => installProject(dir, project.specs, project.flags))) {
      failed.push(`${name}: install`);
      continue;
    }
    mkdirSync(join(dir, 'test', 'fixtures'), { recursive: true });
    for (const file of project.tests) cpSync(join(suite, file), join(dir, 'test', file));
    cpSync(join(root, '__test__', 'helpers.mjs'), join(dir, 'test', 'helpers.mjs'));
    cpSync(join(suite, 'fixtures'), join(dir, 'test', 'fixtures'), { recursive: true });
    for (const file of ['fake-serve.mjs', 'common.mjs']) cpSync(join(root, '__test__', 'fixtures', file), join(dir, 'test', 'fixtures', file));
    if (project.types) {
      // The package's types as a TypeScript user of the primitives alone sees them: no peer may be
      // needed to check them (@types/node from this checkout stands in for the user's own).
      cpSync(join(suite, 'types'), join(dir, 'types'), { recursive: true });
      const tsc = [join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', join('types', 'tsconfig.json'), '--typeRoots', join(root, 'node_modules', '@types')];
      const checked = () => {
        if (spawnSync(machineNode, tsc, { cwd: dir, env: userEnv(), stdio: 'inherit' }).status !== 0) return false;
        // TypeScript stays quiet about an unresolved peer inside node_modules: the types must not
        // even try to resolve one.
        const trace = spawnSync(machineNode, [...tsc, '--traceResolution'], { cwd: dir, env: userEnv(), encoding: 'utf8' }).stdout;
        const peers = ['@ai-sdk/openai-compatible', 'ai'].filter((peer) => trace.includes(`Resolving module '${peer}'`));
        if (peers.length) console.error(`the package's types import ${peers.join(' and ')} (optional peers)`);
        return peers.length === 0;
      };
      if (!step(`${name}: types: tsc --strict, skipLibCheck off, without the AI SDK peers`, checked)) failed.push(`${name}: types`);
    }
    for (const runtime of only) {
      const [cmd, args] = runtimes[runtime];
      const files = project.tests.map((f) => `./test/${f}`);
      const env = { ...userEnv(), TMPDIR: dir };
      const ran = () => spawnSync(cmd, [...args, ...files], { cwd: dir, env, stdio: 'inherit' }).status === 0;
      if (!step(`${name}: ${runtime}: ${[cmd, ...args, ...files].join(' ')}`, ran)) failed.push(`${name}: ${runtime}`);
    }
  }
} finally {
  if (keep) console.log(`projects kept in ${base}`);
  else rmSync(base, { recursive: true, force: true });
}
console.log(`installed-package suite: ${failed.length ? `FAILED (${failed.join(', ')})` : 'ok'}`);
process.exit(failed.length ? 1 : 0);
