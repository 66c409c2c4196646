// A private fleet (`reuse: false`) is used by one provider once: when its runner ends it leaves
// nothing behind, not even its log.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { test } from 'node:test';

import { ensureServe } from '../dist/index.js';
import { fixtures, privateTmp, running, tempDir, waitFor } from './helpers.mjs';

test('a private fleet leaves no log, rotated log or start failure once its runner ends', async (t) => {
  const registryDir = join(tempDir(t), 'managed-serves');
  privateTmp(t);
  const options = { mode: 'managed', models: ['qwen3.5-9b'], serveBinPath: join(fixtures, 'fake-serve.mjs'), reuse: false };
  const serve = await ensureServe(options, { registryDir, graceMs: 300 });
  assert.match(serve.fleetKey, /-priv-/);
  assert.ok(existsSync(join(registryDir, `${serve.fleetKey}.log`)), 'the runner logs while it runs');
  serve.release();
  await waitFor(() => !running(serve.pid), 10_000, 'private serve stopped on release');
  await waitFor(() => readdirSync(registryDir).every((f) => !f.startsWith(serve.fleetKey)), 10_000, 'nothing of the private fleet left');
});
