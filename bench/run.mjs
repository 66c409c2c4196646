// `npm run bench`: measures what users get. Packs this package (`npm run pack:local`), installs the
// tarballs and @qvac/ai-sdk-provider@0.7.0 side by side into a fresh project (no Rust on PATH), and
// runs bench/measure.mjs there on the same fake serve. Results: bench/results/latest.{json,md}.
//   npm run bench            (QUICK=1 for fewer repetitions)
import { spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { installProject, machineNode, packLocal, root, userEnv } from '../scripts/installed-project.mjs';

const tarballs = packLocal();
const project = mkdtempSync(join(tmpdir(), 'qvac-managed-bench-project-'));
let status = 1;
try {
  const specs = [...tarballs.all, '@qvac/ai-sdk-provider@0.7.0', 'ai@7', '@ai-sdk/openai-compatible@3', 'proper-lockfile@4'];
  if (!installProject(project, specs)) throw new Error('bench: installing the packages failed');
  mkdirSync(join(project, 'bench'));
  for (const file of ['measure.mjs', 'runner-cpu.mjs', 'consumer.mjs', 'attach.mjs']) cpSync(join(root, 'bench', file), join(project, 'bench', file));
  mkdirSync(join(project, 'fixtures'));
  for (const file of ['fake-serve.mjs', 'ipc-parent.mjs', 'worker.mjs']) cpSync(join(root, '__test__', 'fixtures', file), join(project, 'fixtures', file));
  const env = { ...userEnv(), BENCH_RESULTS: join(root, 'bench', 'results') };
  status = spawnSync(machineNode, [join(project, 'bench', 'measure.mjs')], { cwd: project, env, stdio: 'inherit' }).status ?? 1;
} finally {
  rmSync(project, { recursive: true, force: true });
}
process.exit(status);
