// package.json `engines.node` says where the package works: it is ESM, and CommonJS users load it
// with require(esm), which Node runs without a flag from 20.19 (20.x line) and 22.12 (23.0 on).
// The range must admit exactly those versions, the running Node must be one of them, and
// require() must be what breaks below the floor.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { describe, test } from 'node:test';

import { isBun } from './helpers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const { engines } = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'));

/**
 * Whether `version` satisfies an npm range made of `||`-joined `^X.Y[.Z]` and `>=X.Y[.Z]` terms
 * (the forms engines.node uses here); any other form fails the test rather than guessing.
 */
function satisfies(range, version) {
  const parse = (v) => v.replace(/^v/, '').split('.').map(Number).concat([0, 0]).slice(0, 3);
  const cmp = (a, b) => a[0] - b[0] || a[1] - b[1] || a[2] - b[2];
  const v = parse(version);
  return range.split('||').some((term) => {
    const m = /^\s*(\^|>=)\s*(\d+(?:\.\d+){0,2})\s*$/.exec(term);
    assert.ok(m, `engines.node term ${JSON.stringify(term)} is not ^X.Y or >=X.Y`);
    const floor = parse(m[2]);
    return cmp(v, floor) >= 0 && (m[1] === '>=' || v[0] === floor[0]);
  });
}

// The Node releases where require(esm) works without a flag (Node's changelogs: unflagged in
// v23.0.0, backported to v22.12.0 and v20.19.0; never in 21.x or 18.x).
const requireEsmByDefault = [
  ['18.20.8', false],
  ['20.0.0', false],
  ['20.18.3', false],
  ['20.19.0', true],
  ['20.20.2', true],
  ['21.7.3', false],
  ['22.11.0', false],
  ['22.12.0', true],
  ['22.23.3', true],
  ['23.0.0', true],
  ['24.0.0', true]
];

describe('engines.node', () => {
  test('admits exactly the Node versions whose require() loads ES modules without a flag', () => {
    assert.equal(typeof engines?.node, 'string', 'package.json has engines.node');
    for (const [version, works] of requireEsmByDefault) {
      assert.equal(satisfies(engines.node, version), works, `engines.node ${JSON.stringify(engines.node)} on Node ${version}`);
    }
  });

  test('the running Node is in range, runs require(esm) by default, and require() of the package works', { skip: isBun && 'Bun is not Node: its require(esm) is always on (the CommonJS test runs under it)' }, () => {
    assert.ok(satisfies(engines.node, process.version), `Node ${process.version} is within engines.node ${engines.node}`);
    assert.equal(process.features.require_module, true, 'require(esm) is on without a flag');
    const script = "const m = require(process.argv[1]); console.log(JSON.stringify({ createQvac: typeof m.createQvac, PidLock: typeof m.PidLock }));";
    const loaded = spawnSync(process.execPath, ['-e', script, `${root}dist/index.js`], { encoding: 'utf8' });
    assert.equal(loaded.status, 0, loaded.stderr);
    assert.deepEqual(JSON.parse(loaded.stdout), { createQvac: 'function', PidLock: 'function' });
  });

  test('below the floor (require(esm) off, as on Node < 20.19 / < 22.12) require() of the package fails', { skip: isBun && 'Bun has no switch for require(esm)' }, () => {
    const off = spawnSync(process.execPath, ['--no-experimental-require-module', '-e', 'require(process.argv[1])', `${root}dist/index.js`], { encoding: 'utf8' });
    assert.notEqual(off.status, 0, 'require() without require(esm) must fail, or the floor is not needed');
    assert.match(off.stderr, /ERR_REQUIRE_ESM/);
  });
});
