// Compiles probe.c into a fresh temporary directory and returns the addon's path.
//   node __test__/bare/probe/build.mjs      prints the path
// Needs a C compiler (`cc`, or $CC) and nothing else: the probe declares the Node-API functions
// it calls, so no Node headers are needed. Linux and macOS only.
import { spawnSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));

export function buildProbe() {
  if (process.platform === 'win32') throw new Error('the Node-API probe builds on Linux and macOS only');
  const out = join(mkdtempSync(join(tmpdir(), 'qvac-napi-probe-')), 'probe.node');
  // Node-API symbols are resolved from the host at load time.
  const undefinedOk = process.platform === 'darwin' ? ['-undefined', 'dynamic_lookup'] : [];
  const cc = process.env.CC || 'cc';
  const args = ['-shared', '-fPIC', '-O1', '-Wall', '-Werror', ...undefinedOk, '-o', out, join(here, 'probe.c')];
  const run = spawnSync(cc, args, { encoding: 'utf8' });
  if (run.status !== 0) {
    throw new Error(`${cc} ${args.join(' ')} failed (${run.error?.message ?? `exit ${run.status}`}):\n${run.stderr}`);
  }
  return out;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) console.log(buildProbe());
