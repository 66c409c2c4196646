// Where the native parts are found (dist/platform.js): env override, platform package, source
// checkout, Electron's app.asar.unpacked, musl; and NATIVE_BINARY_MISSING when nothing is there.
// (dist/platform.cjs is CommonJS so the CLI shim can load it cheaply.)
// Each layout is built for real in a temp directory.
import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

import { asarUnpackedPath, assertAddonInstalled, isMusl, loadAddon, platformId, resolveRunner } from '../dist/platform.cjs';
import { tempDir } from './helpers.mjs';

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const linux = { platform: 'linux', arch: 'x64', musl: false, env: {} };

function file(path, content = '') {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
  chmodSync(path, 0o755);
  return path;
}

/** node_modules/qvac-managed (the package root) and, if `withPlatform`, its platform package beside it. */
function installedLayout(base, { withPlatform = true, id = 'linux-x64-gnu' } = {}) {
  const root = join(base, 'node_modules', 'qvac-managed');
  file(join(root, 'package.json'), '{"name":"qvac-managed","version":"0.1.0"}');
  if (withPlatform) {
    file(join(base, 'node_modules', `qvac-managed-${id}`, 'package.json'), `{"name":"qvac-managed-${id}","version":"0.1.0"}`);
    file(join(base, 'node_modules', `qvac-managed-${id}`, 'qvac-managed'), '#!/bin/sh\n');
  }
  return root;
}

function assertMissing(fn, { platform, supported = true }) {
  assert.throws(fn, (err) => {
    assert.equal(err.code, 'NATIVE_BINARY_MISSING');
    assert.equal(err.platform, platform);
    assert.equal(err.packageName, `qvac-managed-${platform}`);
    assert.ok(err.supported.includes('linux-x64-gnu') && err.supported.includes('darwin-arm64'), 'lists the supported platforms');
    assert.match(err.message, new RegExp(`qvac-managed-${platform}`));
    assert.match(err.message, /Supported platforms: /);
    if (supported) assert.match(err.message, new RegExp(`npm install qvac-managed-${platform}@`));
    else assert.match(err.message, /ships no prebuilt binary .*QVAC_MANAGED_RUNNER/);
    return true;
  });
}

test('QVAC_MANAGED_RUNNER wins over everything; a missing target is NATIVE_BINARY_MISSING', (t) => {
  const base = tempDir(t);
  const root = installedLayout(base);
  const custom = file(join(base, 'custom', 'qvac-managed'));
  assert.equal(resolveRunner({ ...linux, root, env: { QVAC_MANAGED_RUNNER: custom } }), custom);
  assert.throws(
    () => resolveRunner({ ...linux, root, env: { QVAC_MANAGED_RUNNER: join(base, 'nope') } }),
    (err) => err.code === 'NATIVE_BINARY_MISSING' && err.message.includes('QVAC_MANAGED_RUNNER points at')
  );
});

test('the platform package is found by resolving its package.json from the main package', (t) => {
  const base = tempDir(t);
  const root = installedLayout(base);
  assert.equal(resolveRunner({ ...linux, root }), join(base, 'node_modules', 'qvac-managed-linux-x64-gnu', 'qvac-managed'));
  // Hoisting: a project's node_modules one level further up is found too.
  const nested = join(base, 'node_modules', 'app', 'node_modules', 'qvac-managed');
  file(join(nested, 'package.json'), '{"name":"qvac-managed","version":"0.1.0"}');
  assert.equal(resolveRunner({ ...linux, root: nested }), join(base, 'node_modules', 'qvac-managed-linux-x64-gnu', 'qvac-managed'));
  assert.doesNotThrow(() => assertAddonInstalled({ ...linux, root }));
  // A copy nested in the package wins over its sibling, in the order require.resolve looks.
  const inner = join(root, 'node_modules', 'qvac-managed-linux-x64-gnu');
  file(join(inner, 'package.json'), '{"name":"qvac-managed-linux-x64-gnu","version":"0.1.0"}');
  file(join(inner, 'qvac-managed'), '#!/bin/sh\n');
  assert.equal(createRequire(join(root, 'package.json')).resolve('qvac-managed-linux-x64-gnu/package.json'), join(inner, 'package.json'));
  assert.equal(resolveRunner({ ...linux, root }), join(inner, 'qvac-managed'));
});

test('loadAddon (what the library loads the addon with) looks where napi-rs\'s generated loader looks', (t) => {
  const base = tempDir(t);
  // No platform package: NATIVE_BINARY_MISSING with the fix, before anything is loaded.
  assertMissing(() => loadAddon({ ...linux, root: installedLayout(join(base, 'none'), { withPlatform: false }) }), { platform: 'linux-x64-gnu' });
  // The platform package's addon, or the checkout's, is the one loaded: here a file that is not a
  // library, so the load fails with the generated loader's message and the dlopen error as cause.
  const root = installedLayout(join(base, 'installed'));
  const broken = file(join(base, 'installed', 'node_modules', 'qvac-managed-linux-x64-gnu', 'qvac-managed.linux-x64-gnu.node'), 'not an addon');
  const cannotLoad = (path) => (err) => {
    assert.match(err.message, /^Cannot find native binding/);
    assert.ok(String(err.cause?.message).includes(path), `${err.cause?.message} names ${path}`);
    return true;
  };
  assert.throws(() => loadAddon({ ...linux, root }), cannotLoad(broken));
  const local = file(join(root, 'qvac-managed.linux-x64-gnu.node'), 'not an addon either');
  assert.throws(() => loadAddon({ ...linux, root }), cannotLoad(local));
  // NAPI_RS_NATIVE_LIBRARY_PATH wins, resolved from the package root, as the generated loader does.
  const custom = file(join(root, 'custom.node'), 'not an addon');
  assert.throws(() => loadAddon({ ...linux, root, env: { NAPI_RS_NATIVE_LIBRARY_PATH: './custom.node' } }), cannotLoad(custom));
  // NAPI_RS_ENFORCE_VERSION_CHECK compares the platform package's version with this package's.
  const other = installedLayout(join(base, 'mismatch'));
  file(join(base, 'mismatch', 'node_modules', 'qvac-managed-linux-x64-gnu', 'package.json'), '{"name":"qvac-managed-linux-x64-gnu","version":"0.0.9"}');
  assert.throws(
    () => loadAddon({ ...linux, root: other, env: { NAPI_RS_ENFORCE_VERSION_CHECK: '1' } }),
    (err) => /expected 0\.1\.0 but got 0\.0\.9/.test(err.cause?.message)
  );
});

test('a source checkout: npm/<platform>/qvac-managed beside package.json', (t) => {
  const base = tempDir(t);
  file(join(base, 'package.json'), '{"name":"qvac-managed","version":"0.1.0"}');
  const binary = file(join(base, 'npm', 'linux-x64-gnu', 'qvac-managed'));
  assert.equal(resolveRunner({ ...linux, root: base }), binary);
  // This checkout's own build is what the tests run.
  assert.equal(resolveRunner({ env: {} }), join(repo, 'npm', platformId(), 'qvac-managed'));
  // The addon check accepts the checkout's built .node.
  file(join(base, 'qvac-managed.linux-x64-gnu.node'));
  assert.doesNotThrow(() => assertAddonInstalled({ ...linux, root: base }));
});

test('Electron: a binary inside app.asar is run from app.asar.unpacked', (t) => {
  const base = tempDir(t);
  const asar = join(base, 'resources', 'app.asar');
  const root = installedLayout(asar);
  const unpacked = file(join(base, 'resources', 'app.asar.unpacked', 'node_modules', 'qvac-managed-linux-x64-gnu', 'qvac-managed'));
  assert.equal(resolveRunner({ ...linux, root }), unpacked);
  assert.equal(asarUnpackedPath('/x/app.asar/node_modules/a'), '/x/app.asar.unpacked/node_modules/a');
  assert.equal(asarUnpackedPath('/x/app.asar.unpacked/node_modules/a'), '/x/app.asar.unpacked/node_modules/a');
  assert.equal(asarUnpackedPath('/x/my-app.asar/a'), '/x/my-app.asar/a');
  // Windows paths, whatever the host's separator.
  assert.equal(
    asarUnpackedPath('C:\\Program Files\\App\\resources\\app.asar\\node_modules\\qvac-managed-win32-x64-msvc\\qvac-managed.exe'),
    'C:\\Program Files\\App\\resources\\app.asar.unpacked\\node_modules\\qvac-managed-win32-x64-msvc\\qvac-managed.exe'
  );
  assert.equal(asarUnpackedPath('C:\\App\\resources\\app.asar/node_modules/a'), 'C:\\App\\resources\\app.asar.unpacked/node_modules/a');
  assert.equal(asarUnpackedPath('C:\\App\\my-app.asar\\a'), 'C:\\App\\my-app.asar\\a');
});

test('musl is detected as the generated index.js detects it, and picks the -musl package', (t) => {
  const lddSaysMusl = (() => {
    try {
      return readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
    } catch {
      return null;
    }
  })();
  if (lddSaysMusl !== null) assert.equal(isMusl(), lddSaysMusl);
  assert.equal(platformId({ platform: 'linux', arch: 'x64', musl: true }), 'linux-x64-musl');
  assert.equal(platformId({ platform: 'linux', arch: 'arm64', musl: false }), 'linux-arm64-gnu');
  assert.equal(platformId({ platform: 'darwin', arch: 'arm64' }), 'darwin-arm64');
  assert.equal(platformId({ platform: 'win32', arch: 'x64' }), 'win32-x64-msvc');
  // Only a gnu package installed: a musl host gets NATIVE_BINARY_MISSING for linux-x64-musl, which has no build.
  const base = tempDir(t);
  const root = installedLayout(base);
  assertMissing(() => resolveRunner({ ...linux, musl: true, root }), { platform: 'linux-x64-musl', supported: false });
  assertMissing(() => assertAddonInstalled({ ...linux, musl: true, root }), { platform: 'linux-x64-musl', supported: false });
});

test('no platform package (--omit=optional): NATIVE_BINARY_MISSING from the runner lookup and the addon check', (t) => {
  const base = tempDir(t);
  const root = installedLayout(base, { withPlatform: false });
  assertMissing(() => resolveRunner({ ...linux, root }), { platform: 'linux-x64-gnu' });
  assertMissing(() => assertAddonInstalled({ ...linux, root }), { platform: 'linux-x64-gnu' });
  // A platform with no build at all.
  assertMissing(() => resolveRunner({ platform: 'freebsd', arch: 'x64', env: {}, root }), { platform: 'freebsd-x64', supported: false });
});

test('the CLI shim loads only the binary lookup: never the addon or the rest of the TS layer', () => {
  const seen = new Set();
  const visit = (path) => {
    if (seen.has(path)) return;
    seen.add(path);
    const source = readFileSync(path, 'utf8');
    for (const [, spec] of source.matchAll(/(?:import|from|require)\s*(?:\(\s*)?['"]([^'"]+)['"]/g)) {
      if (spec.startsWith('.')) visit(join(dirname(path), spec));
      else assert.match(spec, /^node:/, `${path} imports ${spec}`);
    }
  };
  visit(join(repo, 'bin', 'qvac-managed.cjs'));
  const loaded = [...seen].map((p) => p.slice(repo.length + 1)).sort();
  assert.deepEqual(loaded, ['bin/qvac-managed.cjs', 'dist/error-base.cjs', 'dist/platform.cjs']);
});

test('nodeApiHostReport: threadsafe functions go through the host workaround (src/host/), and Node and Bun call their finalizers in Node-API order', async (t) => {
  const { FileLock, nodeApiHostReport } = await import('../dist/index.js');
  const before = nodeApiHostReport();
  const path = join(tempDir(t), 'host.lock');
  for (let i = 0; i < 5; i++) (await FileLock.acquire(path, { timeoutMs: 5_000 })).release();
  await new Promise((r) => setTimeout(r, 100));
  const after = nodeApiHostReport();
  assert.ok(after.threadsafeFunctionsCreated - before.threadsafeFunctionsCreated >= 5, JSON.stringify({ before, after }));
  assert.ok(after.finalizedInNodeApiOrder - before.finalizedInNodeApiOrder >= 5, JSON.stringify({ before, after }));
  assert.equal(after.finalizedInSwappedOrder, 0);
});
