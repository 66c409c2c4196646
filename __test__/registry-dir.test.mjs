// Moving the registry: `registryDir` on createQvac (managed mode), and QVAC_MANAGED_REGISTRY as the
// default everywhere the TS layer resolves it (createQvac, ensureServe, ManagedRegistry,
// listServes), e.g. for a HOME shared by several machines.
import assert from 'node:assert/strict';
import { existsSync, readdirSync } from 'node:fs';
import { join, relative } from 'node:path';
import { describe, test } from 'node:test';

import { ManagedRegistry, computeFleetKey, createQvac, ensureServe, listServes } from '../dist/index.js';
import { fixtures, privateTmp, running, tempDir, waitFor, withEnv } from './helpers.mjs';

const fakeServe = join(fixtures, 'fake-serve.mjs');
const options = { mode: 'managed', models: ['qwen3.5-9b'], serveBinPath: fakeServe, serveIdleTimeout: 200 };

function setup(t) {
  const home = tempDir(t);
  privateTmp(t);
  withEnv(t, { HOME: home, QVAC_MANAGED_REGISTRY: undefined, FAKE_SERVE_EVENTS: join(tempDir(t), 'events.jsonl') });
  return { home, homeRegistry: join(home, '.qvac', 'managed-serves') };
}

async function closeAndReaped(provider) {
  await provider.close();
  await waitFor(() => !running(provider.pid), 15_000, 'serve reaped');
}

describe('registry location', () => {
  test('createQvac({ registryDir }) keeps the record, lock and marker there, not under HOME', async (t) => {
    const { home } = setup(t);
    const registryDir = join(tempDir(t), 'moved');
    const provider = await createQvac({ ...options, registryDir });
    const key = computeFleetKey(options);
    assert.ok(existsSync(join(registryDir, `${key}.json`)), 'record in registryDir');
    assert.equal(readdirSync(join(registryDir, `${key}.consumers`)).filter((m) => m.startsWith(`${process.pid}.`)).length, 1);
    assert.equal(existsSync(join(home, '.qvac')), false, 'nothing under HOME');
    const listed = new ManagedRegistry(registryDir).listServes();
    assert.deepEqual(listed.map((s) => s.servePid), [provider.pid]);
    // A second provider with the same registryDir shares the serve.
    const again = await createQvac({ ...options, registryDir });
    assert.equal(again.pid, provider.pid);
    await again.close();
    await closeAndReaped(provider);
    await waitFor(() => !existsSync(join(registryDir, `${key}.json`)), 10_000, 'record removed');
  });

  test('QVAC_MANAGED_REGISTRY is the default registry (relative to the working directory when relative)', async (t) => {
    const { home } = setup(t);
    const moved = join(tempDir(t), 'from-env');
    withEnv(t, { QVAC_MANAGED_REGISTRY: relative(process.cwd(), moved) });
    assert.equal(ManagedRegistry.defaultDir(), moved);
    assert.equal(new ManagedRegistry().dir, moved);

    const provider = await createQvac(options);
    const key = computeFleetKey(options);
    assert.ok(existsSync(join(moved, `${key}.json`)), 'record in $QVAC_MANAGED_REGISTRY');
    assert.equal(existsSync(join(home, '.qvac')), false, 'nothing under HOME');
    assert.deepEqual(listServes().map((s) => s.servePid), [provider.pid]);
    const attached = await ensureServe(options);
    assert.equal(attached.pid, provider.pid);
    attached.release();
    // An explicit registryDir still wins over the variable.
    const explicit = join(tempDir(t), 'explicit');
    const other = await createQvac({ ...options, registryDir: explicit });
    assert.notEqual(other.pid, provider.pid);
    assert.ok(existsSync(join(explicit, `${key}.json`)));
    await closeAndReaped(other);
    await closeAndReaped(provider);
  });

  test('an empty QVAC_MANAGED_REGISTRY means the default under HOME', (t) => {
    const { homeRegistry } = setup(t);
    withEnv(t, { QVAC_MANAGED_REGISTRY: '' });
    assert.equal(ManagedRegistry.defaultDir(), homeRegistry);
  });
});
