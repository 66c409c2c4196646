// The package installed with `--omit=optional` (so without its platform package), as a user who
// disabled optional dependencies gets it: every way in fails with NATIVE_BINARY_MISSING and the fix.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { test } from 'node:test';
import { fileURLToPath } from 'node:url';

const project = join(dirname(fileURLToPath(import.meta.url)), '..');

function assertNamesTheFix(message) {
  assert.match(message, /linux-x64-gnu/, 'names the platform');
  assert.match(message, /qvac-managed-linux-x64-gnu/, 'names the package looked for');
  assert.match(message, /Supported platforms: .*darwin-arm64.*linux-x64-gnu.*win32-x64-msvc/, 'lists what is supported');
  assert.match(message, /npm install qvac-managed-linux-x64-gnu@\d+\.\d+\.\d+/, 'gives the command that fixes it');
  assert.match(message, /--omit=optional/);
}

test('the platform package really is absent', () => {
  assert.ok(existsSync(join(project, 'node_modules', 'qvac-managed', 'package.json')));
  assert.ok(!existsSync(join(project, 'node_modules', 'qvac-managed-linux-x64-gnu')));
});

test('import fails with NATIVE_BINARY_MISSING, not "Cannot find native binding"', async () => {
  await assert.rejects(import('qvac-managed'), (err) => {
    assert.equal(err.code, 'NATIVE_BINARY_MISSING');
    assert.equal(err.name, 'NativeBinaryMissingError');
    assert.equal(err.platform, 'linux-x64-gnu');
    assert.equal(err.packageName, 'qvac-managed-linux-x64-gnu');
    assertNamesTheFix(err.message);
    return true;
  });
});

test('require() fails the same way', () => {
  const script = "try { require('qvac-managed'); console.log('loaded') } catch (e) { console.log(JSON.stringify({ code: e.code, message: e.message })) }";
  const result = spawnSync(process.execPath, ['-e', script], { cwd: project, encoding: 'utf8' });
  const out = JSON.parse(result.stdout.trim());
  assert.equal(out.code, 'NATIVE_BINARY_MISSING');
  assertNamesTheFix(out.message);
});

test('the CLI shim fails with the same message and exit 127', () => {
  const result = spawnSync(join(project, 'node_modules', '.bin', 'qvac-managed'), ['ps'], { cwd: project, encoding: 'utf8' });
  assert.equal(result.status, 127);
  assert.match(result.stderr, /^qvac-managed: the qvac-managed binary for linux-x64-gnu is missing/);
  assertNamesTheFix(result.stderr);
});
