import assert from 'node:assert/strict';
import { join } from 'node:path';
import { test } from 'node:test';

import { fixtures, spawnFixture, tempDir } from './helpers.mjs';

test('the package works from CommonJS (require) as well as ESM', async (t) => {
  const home = tempDir(t);
  const child = spawnFixture(t, 'cjs-consumer.cjs', [join(fixtures, 'fake-serve.mjs')], { env: { ...process.env, HOME: home } });
  const result = await child.next((e) => e.event !== undefined, 60_000);
  assert.equal(result.event, 'done', result.message);
  assert.equal(result.text, 'echo: from commonjs');
  assert.equal(result.hasPidLock, true);
  assert.equal(result.errorBase, 'function');
});
