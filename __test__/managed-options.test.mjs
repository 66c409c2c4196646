import assert from 'node:assert/strict';
import { readdirSync } from 'node:fs';
import { describe, test } from 'node:test';

import {
  computeFleetKey,
  synthesizeServeConfig,
  validateManagedOptions,
  QvacManagedModeError,
  UnknownManagedModelError
} from '../dist/index.js';
import { prng, spawnFixture, tempDir, upstreamManaged } from './helpers.mjs';

const upstream = {
  ...(await import(upstreamManaged('fleet-key.js'))),
  ...(await import(upstreamManaged('config-synthesizer.js')))
};
const { allModels, qvacCatalog } = await import('@qvac/ai-sdk-provider/models');

// Keys chosen to trip naive implementations: UTF-16 vs code-point order (U+FF5E vs U+1F600),
// combining marks, escapes, integer-like keys, '__proto__'-free but odd punctuation.
const KEYS = ['a', 'B', 'z', 'é', 'e\u0301', '\uff5e', '\u{1f600}', '日本', 'n\u0000ul', 'quote"', 'back\\slash', '10', '9', 'ctx_size', 'temperature', ''];
const STRINGS = ['', 'plain', 'tab\tnew\nline', '\u2028sep', 'emoji \u{1f680}', '"quoted"', '\\', 'ünïcödé', '\u001f'];
const NUMBERS = [0, -0, 1, -1, 42, 0.1, 0.5, 1e21, 1e-7, 123456.789, 2 ** 53, -3.14159, 5e-324, 1.7976931348623157e308];

function value(rand, depth) {
  const r = rand();
  if (depth > 2 || r < 0.45) {
    const pick = rand();
    if (pick < 0.3) return NUMBERS[Math.floor(rand() * NUMBERS.length)];
    if (pick < 0.55) return STRINGS[Math.floor(rand() * STRINGS.length)];
    if (pick < 0.7) return rand() < 0.5;
    if (pick < 0.8) return null;
    return Math.round(rand() * 1e6) / (rand() < 0.5 ? 1 : 1000);
  }
  if (r < 0.7) return Array.from({ length: Math.floor(rand() * 4) }, () => value(rand, depth + 1));
  return object(rand, depth + 1);
}

function object(rand, depth) {
  const out = {};
  const n = Math.floor(rand() * 5);
  for (let i = 0; i < n; i++) out[KEYS[Math.floor(rand() * KEYS.length)]] = value(rand, depth);
  return out;
}

function options(rand, names) {
  const count = 1 + Math.floor(rand() * 4);
  const chosen = new Set();
  while (chosen.size < count) chosen.add(names[Math.floor(rand() * names.length)]);
  let defaultGiven = false;
  const models = [...chosen].map((name) => {
    if (rand() < 0.35) return name;
    const m = { name };
    if (rand() < 0.5) m.preload = rand() < 0.5;
    if (rand() < 0.3) {
      m.default = !defaultGiven && rand() < 0.7;
      defaultGiven ||= m.default;
    }
    if (rand() < 0.7) m.config = object(rand, 0);
    return m;
  });
  const o = { mode: 'managed', models };
  if (rand() < 0.5) o.serveHost = ['127.0.0.1', '::1', 'localhost', '0.0.0.0', 'höst.local'][Math.floor(rand() * 5)];
  if (rand() < 0.3) o.serveBinPath = ['/usr/local/bin/qvac', '/opt/qvác/bin/qvac', 'C:\\qvac\\qvac.exe', '/tmp/\u{1f600}/qvac'][Math.floor(rand() * 4)];
  if (rand() < 0.3) o.servePort = 1 + Math.floor(rand() * 65535);
  return o;
}

describe('managed options', () => {
  test('fleet key and serve config equal upstream 0.7.0 on 500 generated option sets', () => {
    const rand = prng(20261124);
    const names = [...allModels.map((m) => m.name), ...qvacCatalog.map((e) => e.id)];
    const keys = new Set();
    for (let i = 0; i < 500; i++) {
      const o = options(rand, names);
      const theirsConfig = upstream.synthesizeServeConfig(o.models);
      const theirsKey = upstream.computeFleetKey(theirsConfig, o.serveHost ?? '127.0.0.1', o.serveBinPath, o.servePort);
      const ours = validateManagedOptions(o);
      assert.equal(ours.fleetKey, theirsKey, `case ${i}: ${JSON.stringify(o)}`);
      assert.equal(computeFleetKey(o), theirsKey);
      // Same object, same key order (what upstream writes to qvac.config.json).
      assert.equal(JSON.stringify(ours.config), JSON.stringify(theirsConfig), `case ${i}`);
      assert.equal(JSON.stringify(synthesizeServeConfig(o.models)), JSON.stringify(theirsConfig));
      keys.add(theirsKey);
    }
    // The generator really produced different option sets (a degenerate one would prove nothing).
    assert.ok(keys.size >= 450, `only ${keys.size} distinct fleet keys in 500 cases`);
  });

  test('upstream quirks are kept: undefined members, sparse arrays, explicit default:false', () => {
    const models = [
      { name: 'qwen3.5-9b', default: false, config: { u: undefined, arr: [1, undefined, null], nested: { z: 1, a: { y: [] } } } },
      'WHISPER_Q8_0'
    ];
    const theirs = upstream.computeFleetKey(upstream.synthesizeServeConfig(models), '127.0.0.1', undefined, undefined);
    assert.equal(computeFleetKey({ models }), theirs);
    // As JSON (what is written to qvac.config.json): undefined members drop out on both sides.
    assert.equal(JSON.stringify(synthesizeServeConfig(models)), JSON.stringify(upstream.synthesizeServeConfig(models)));
    // default:false on the first model and no other default: no default at all, as upstream.
    assert.equal(synthesizeServeConfig(models).serve.models['qwen3.5-9b'].default, undefined);
  });

  test('defaults and the shared/private decision', () => {
    const v = validateManagedOptions({ mode: 'managed', models: ['qwen3.5-9b'] });
    assert.equal(v.serveHost, '127.0.0.1');
    assert.equal(v.serveStartTimeout, 180_000);
    assert.equal(v.serveIdleTimeout, 300_000);
    assert.equal(v.reuse, true);
    assert.deepEqual(v.config, { serve: { models: { 'qwen3.5-9b': { model: 'QWEN3_5_9B_MULTIMODAL_Q4_K_M', preload: true, default: true } } } });
    assert.equal(validateManagedOptions({ models: ['qwen3.5-9b'], servePort: 8080 }).reuse, false, 'pinned port is private');
    assert.equal(validateManagedOptions({ models: ['qwen3.5-9b'], servePort: 8080, reuse: true }).reuse, true);
  });

  test('every bad option gets its code before anything is written under $HOME', async (t) => {
    const home = tempDir(t);
    const child = spawnFixture(t, 'validate-options.mjs', [], { env: { ...process.env, HOME: home } });
    const { results } = await child.next((e) => e.event === 'results');
    await child.exited;
    for (const r of results) {
      assert.equal(r.got, r.expected, `${r.name}: ${r.message}`);
      assert.equal(r.isManagedError.endsWith('Error'), true);
      if (r.expected === 'INVALID_OPTION') assert.ok(r.option, `${r.name} names the option`);
    }
    assert.equal(results.length, 26);
    // Bun creates its own ~/.bun cache at start-up; everything else must be untouched.
    assert.deepEqual(readdirSync(home).filter((f) => f !== '.bun'), [], 'nothing written under $HOME');
  });

  test('errors are the upstream classes with upstream fields', () => {
    const err = (() => {
      try {
        validateManagedOptions({ models: ['nope', 'qwen3.5-9b', 'x'] });
      } catch (e) {
        return e;
      }
    })();
    assert.ok(err instanceof UnknownManagedModelError);
    assert.ok(err instanceof QvacManagedModeError);
    assert.equal(err.name, 'UnknownManagedModelError');
    assert.deepEqual(err.unknownModels, ['nope', 'x']);
    assert.match(err.message, /nope, x/);
    assert.throws(() => validateManagedOptions({ models: ['qwen3.5-9b', 'qwen3.5-9b'] }), { name: 'DuplicateManagedModelError', duplicateModels: ['qwen3.5-9b'] });
    assert.throws(() => validateManagedOptions({ models: ['qwen3.5-9b'], serveStartTimeout: Number.NaN }), (e) => e.code === 'INVALID_OPTION' && e.option === 'serveStartTimeout' && /NaN/.test(e.message));
  });
});

test('the generated catalog is up to date with the installed upstream package', async (t) => {
  const { spawnSync } = await import('node:child_process');
  const r = spawnSync(process.execPath, ['scripts/gen-catalog.mjs', '--check'], { cwd: new URL('..', import.meta.url), encoding: 'utf8' });
  assert.equal(r.status, 0, r.stderr);
  assert.match(r.stdout, /746 constants/);
});
