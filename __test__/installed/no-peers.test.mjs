// The package installed without its AI SDK peers (`ai`, `@ai-sdk/openai-compatible`), as an SDK
// worker or Electron main process that uses only the primitives and ensureServe: everything
// imports, createQvac attaches, and a model call says which peer to install.
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { fixtures, running, tempDir, waitFor, withEnv } from './helpers.mjs';

const project = join(dirname(fileURLToPath(import.meta.url)), '..');
const model = 'QWEN3_600M_INST_Q4';

test('the AI SDK peers really are absent', () => {
  assert.ok(!existsSync(join(project, 'node_modules', 'ai')));
  assert.ok(!existsSync(join(project, 'node_modules', '@ai-sdk', 'openai-compatible')));
});

test('createQvac attaches without the peers; a model call throws PEER_DEPENDENCY_MISSING; close releases', async (t) => {
  withEnv(t, { HOME: tempDir(t) });
  const { createQvac, PidLock, spawnSupervised } = await import('qvac-managed');
  assert.equal(typeof PidLock, 'function');
  assert.equal(typeof spawnSupervised, 'function');
  const provider = await createQvac({ mode: 'managed', models: [model], serveBinPath: join(fixtures, 'fake-serve.mjs'), serveIdleTimeout: 100 });
  assert.ok(running(provider.pid));
  assert.throws(
    () => provider(model),
    (e) => e.code === 'PEER_DEPENDENCY_MISSING' && /npm install @ai-sdk\/openai-compatible@3/.test(e.message)
  );
  await provider.close();
  await waitFor(() => !running(provider.pid), 10_000, 'serve reaped after close');
});
