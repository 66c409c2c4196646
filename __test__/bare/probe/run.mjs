// Builds the probe (in a temporary directory, removed after) and reports, for this Node and for
// each host binary given (Bare, Bun, another Node), how the host calls the two Node-API
// functions Bare gets wrong (issue 26; src/host/ works around them only where they are seen):
//   node __test__/bare/probe/run.mjs [path/to/bare ...]
// One line per host (named by its file name), e.g.
//   node v20.20.2: tsfn-finalize-order=node-api remove-unknown-cleanup-hook=status 0
//   bare v1.31.0: tsfn-finalize-order=swapped remove-unknown-cleanup-hook=aborts (signal SIGABRT)
// `--json` prints the same as one JSON array. Exits 1 if a host could not be probed (no answer
// to the order probe); the answers themselves are reported, not judged.
import { spawnSync } from 'node:child_process';
import { rmSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildProbe } from './build.mjs';

const host = join(dirname(fileURLToPath(import.meta.url)), 'host.cjs');
const json = process.argv.includes('--json');
const bins = process.argv.slice(2).filter((a) => a !== '--json');
const probe = buildProbe();

function ask(bin, what) {
  const run = spawnSync(bin, [host, probe, what], { encoding: 'utf8', timeout: 15000 });
  const line = run.stdout.split('\n').find((l) => l.startsWith('probe '));
  if (line) return line.slice(line.indexOf('=') + 1);
  const how = run.error ? run.error.message : run.signal ? `signal ${run.signal}` : `exit ${run.status}`;
  return what === 'remove-hook' && (run.signal === 'SIGABRT' || run.status === 134) ? `aborts (${how})` : `no answer (${how}): ${run.stderr.trim().split('\n').slice(-3).join(' | ')}`;
}

function version(bin) {
  const run = spawnSync(bin, ['--version'], { encoding: 'utf8', timeout: 15000 });
  return (run.stdout || '').trim() || `(${run.error?.message ?? `exit ${run.status}`})`;
}

const hosts = [process.execPath, ...bins].map((bin) => ({ name: basename(bin).replace(/\.exe$/, ''), bin }));
const report = hosts.map(({ name, bin }) => ({
  host: name,
  bin,
  version: version(bin),
  tsfnFinalizeOrder: ask(bin, 'order'),
  removeUnknownCleanupHook: ask(bin, 'remove-hook')
}));
rmSync(dirname(probe), { recursive: true, force: true });

if (json) console.log(JSON.stringify(report, null, 2));
else {
  for (const r of report) {
    console.log(`${r.host} ${r.version}: tsfn-finalize-order=${r.tsfnFinalizeOrder} remove-unknown-cleanup-hook=${r.removeUnknownCleanupHook}`);
  }
}
const unanswered = report.filter((r) => !['node-api', 'swapped'].includes(r.tsfnFinalizeOrder));
if (unanswered.length) {
  console.error(`probe: no finalize order from ${unanswered.map((r) => `${r.host} ${r.bin}`).join(', ')}`);
  process.exit(1);
}
