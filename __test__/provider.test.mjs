import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';

import { APICallError } from '@ai-sdk/provider';
import { generateText, streamText, embed } from 'ai';

import { spawnSync } from 'node:child_process';

import { createQvac, qvac, ManagedRegistry, resolveRunnerPath } from '../dist/index.js';
import { retarget } from '../dist/provider/managed.js';
import { event, fixtures, freePort, running, spawnFixture, spawnUpstream, tempDir, waitFor } from './helpers.mjs';

const fakeServe = join(fixtures, 'fake-serve.mjs');
const MODEL = 'QWEN3_600M_INST_Q4';
const savedHome = process.env.HOME;
// createQvac has upstream's options only, so the registry is $HOME's: point HOME at a temp dir.
const homeRoot = mkdtempSync(join(tmpdir(), 'qvac-managed-test-'));
const home = join(homeRoot, 'home');
before(() => {
  process.env.HOME = home;
});
after(() => {
  process.env.HOME = savedHome;
  // Serves kept warm by a long idle timeout are stopped, so no test leaves a process behind.
  spawnSync(resolveRunnerPath(), ['stop', '--all', '--registry', join(home, '.qvac', 'managed-serves')]);
  rmSync(homeRoot, { recursive: true, force: true });
});
const registry = () => new ManagedRegistry(join(home, '.qvac', 'managed-serves'));
const managed = (extra = {}) => createQvac({ mode: 'managed', models: [MODEL], serveBinPath: fakeServe, serveIdleTimeout: 200, ...extra });

describe('createQvac managed mode', () => {
  test('generateText, streamText and embeddings end to end; getters; apiKey hidden', async () => {
    const provider = await managed();
    try {
      const { text } = await generateText({ model: provider(MODEL), prompt: 'Write a haiku about local-first AI.' });
      assert.equal(text, 'echo: Write a haiku about local-first AI.');
      const stream = streamText({ model: provider.chatModel(MODEL), prompt: 'one two three' });
      let streamed = '';
      for await (const delta of stream.textStream) streamed += delta;
      assert.equal(streamed, 'echo: one two three');
      const { embedding } = await embed({ model: provider.embeddingModel(MODEL), value: 'abcd' });
      assert.deepEqual(embedding, [4, 0.5, -0.5]);
      assert.match(provider.baseURL, /^http:\/\/127\.0\.0\.1:\d+\/v1$/);
      assert.equal(provider.baseURL, `http://127.0.0.1:${provider.port}/v1`);
      assert.ok(running(provider.pid));
      assert.equal(typeof provider.apiKey, 'string');
      assert.ok(provider.apiKey.length >= 40);
      assert.equal(Object.keys(provider).includes('apiKey'), false);
      assert.equal(JSON.stringify({ ...provider }).includes(provider.apiKey), false);
      assert.equal(Object.getOwnPropertyDescriptor(provider, 'apiKey').enumerable, false);
      for (const surface of ['languageModel', 'chatModel', 'completionModel', 'embeddingModel', 'textEmbeddingModel', 'imageModel', 'transcriptionModel', 'speechModel', 'files']) {
        assert.equal(typeof provider[surface], 'function', surface);
      }
      assert.equal(provider.transcriptionModel('WHISPER_Q8_0').provider, 'qvac.transcription');
    } finally {
      await provider.close();
    }
  });

  test('two consumers with the same models share a serve; a different config does not', async () => {
    const a = await managed();
    const b = await managed();
    const c = await createQvac({ mode: 'managed', models: [{ name: MODEL, config: { ctx_size: 4096 } }], serveBinPath: fakeServe, serveIdleTimeout: 200 });
    try {
      assert.equal(a.pid, b.pid);
      assert.notEqual(a.pid, c.pid);
      assert.equal(registry().listServes().find((s) => s.servePid === a.pid).consumers, 2);
    } finally {
      await Promise.all([a.close(), b.close(), c.close()]);
    }
    await waitFor(() => !running(a.pid) && !running(c.pid), 10_000, 'both reaped');
  });

  test('reuse: false and a pinned port give private serves', async () => {
    const a = await managed({ reuse: false });
    const b = await managed({ reuse: false });
    // A port the OS found free just now (a fixed one can be any client socket's local port).
    const port = await freePort();
    let pinned;
    try {
      pinned = await managed({ servePort: port });
      assert.notEqual(a.pid, b.pid);
      assert.equal(pinned.port, port);
      const shared = await managed();
      assert.notEqual(shared.pid, pinned.pid, 'a pinned serve is not shared with an unpinned request');
      await shared.close();
    } finally {
      await Promise.all([a.close(), b.close(), pinned?.close()]);
    }
    await waitFor(() => ![a.pid, b.pid, pinned.pid].some(running), 10_000, 'private serves reaped at once');
  });

  test('a crashed serve is respawned transparently; the getters follow', async (t) => {
    process.env.FAKE_SERVE_CRASH_AFTER_MS = '400';
    t.after(() => delete process.env.FAKE_SERVE_CRASH_AFTER_MS);
    // Its own config, so it gets its own fleet (not a serve another test left warm).
    const provider = await managed({ serveIdleTimeout: 60_000, models: [{ name: MODEL, config: { crashTest: true } }] });
    try {
      const first = { pid: provider.pid, port: provider.port, key: provider.apiKey };
      delete process.env.FAKE_SERVE_CRASH_AFTER_MS; // the respawned serve stays up
      await waitFor(() => !running(first.pid), 10_000, 'crash');
      await waitFor(() => registry().readRecord(registry().listServes()[0]?.fleetKey ?? 'x').state !== 'trusted', 10_000, 'record gone');
      const { text } = await generateText({ model: provider(MODEL), prompt: 'after the crash' });
      assert.equal(text, 'echo: after the crash');
      assert.notEqual(provider.pid, first.pid);
      assert.notEqual(provider.apiKey, first.key);
      assert.equal(provider.baseURL, `http://127.0.0.1:${provider.port}/v1`);
    } finally {
      await provider.close();
    }
  });

  test('close() twice and concurrently; Symbol.asyncDispose; closed providers do not respawn', async () => {
    const provider = await managed();
    const closedBaseURL = provider.baseURL;
    const [x, y] = [provider.close(), provider.close()];
    assert.equal(x, y, 'concurrent close() calls share one promise');
    await x;
    await provider.close();
    await waitFor(() => !running(provider.pid), 10_000, 'reaped after close');
    const failed = await generateText({ model: provider(MODEL), prompt: 'x', maxRetries: 0 }).catch((e) => e);
    // No silent respawn after close: the request goes to the closed serve's address and fails to
    // connect there — refused, or (Bun, whose pool may still hold a keep-alive socket to the dead
    // serve) reset.
    assert.ok(APICallError.isInstance(failed), `an APICallError, got ${failed?.name}: ${failed?.message}`);
    assert.equal(failed.url, `${closedBaseURL}/chat/completions`, 'sent to the closed serve, not a new one');
    assert.ok(['ECONNREFUSED', 'ECONNRESET'].includes(failed.cause?.code), `a failed connection: ${failed.cause?.code} ${failed.cause?.message}`);
    assert.equal(provider.baseURL, closedBaseURL, 'the getters still name the closed serve');
    assert.equal(registry().listServes().some((s) => s.servePid === provider.pid), false);

    const disposable = await managed();
    await disposable[Symbol.asyncDispose]();
    await waitFor(() => !running(disposable.pid), 10_000);
  });

  test('await using closes at the end of the scope', { skip: !supportsAwaitUsing() && 'this runtime has no `await using` syntax (Node < 24)' }, async () => {
    const AsyncFunction = (async () => {}).constructor;
    const scope = new AsyncFunction('createQvac', 'opts', 'await using p = await createQvac(opts); return p.pid;');
    const pid = await scope(createQvac, { mode: 'managed', models: [MODEL], serveBinPath: fakeServe, serveIdleTimeout: 100 });
    await waitFor(() => !running(pid), 10_000, 'disposed and reaped');
  });

  test('bad input: typed errors, nothing spawned or written', async () => {
    const cases = [
      [{ models: [] }, 'UNKNOWN_MODEL', 'UnknownManagedModelError'],
      [{ models: ['NOT_A_MODEL'] }, 'UNKNOWN_MODEL', 'UnknownManagedModelError'],
      [{ models: [MODEL, MODEL] }, 'DUPLICATE_MODEL', 'DuplicateManagedModelError'],
      [{ models: [{ name: MODEL, default: true }, { name: 'WHISPER_Q8_0', default: true }] }, 'MULTIPLE_DEFAULTS', 'MultipleDefaultManagedModelsError'],
      [{ models: [MODEL], servePort: 70000 }, 'INVALID_OPTION', 'InvalidOptionError'],
      [{ models: [MODEL], serveStartTimeout: -1 }, 'INVALID_OPTION', 'InvalidOptionError'],
      [{ models: [MODEL], serveHost: '' }, 'INVALID_OPTION', 'InvalidOptionError'],
      [{ models: [MODEL], serveBinPath: '/nonexistent/qvac' }, 'CLI_NOT_FOUND', 'CliNotFoundError']
    ];
    // Runner logs, start-failure notes and the exits and watchdog files (with their temp files
    // while a runner rewrites them) of earlier tests' serves in this home are not leftovers.
    const registryFiles = () =>
      existsSync(join(home, '.qvac', 'managed-serves'))
        ? readdirSync(join(home, '.qvac', 'managed-serves')).filter((f) => !f.endsWith('.error') && !f.endsWith('.log') && !/\.(exits|health)(\.\d+\.[0-9a-f]+\.tmp)?$/.test(f)).sort()
        : [];
    const before = registryFiles();
    for (const [options, code, name] of cases) {
      const err = await createQvac({ mode: 'managed', ...options }).catch((e) => e);
      assert.equal(err.code, code, JSON.stringify(options));
      assert.equal(err.name, name);
    }
    // Earlier tests' serves may finish their reaps meanwhile; what matters is that nothing was added.
    assert.deepEqual(registryFiles().filter((f) => !before.includes(f)), [], 'nothing left behind');
  });

  test('closeOnParentExit: when the parent dies the consumer closes and exits; the serve is reaped', async (t) => {
    const options = JSON.stringify({ models: [MODEL], serveBinPath: fakeServe, serveIdleTimeout: 200, closeOnParentExit: true });
    const parent = spawnFixture(t, 'provider-parent.mjs', [options], { env: { ...process.env, HOME: home } });
    const { consumerPid, servePid } = await parent.next(event('child'), 30_000);
    t.after(() => {
      if (running(consumerPid)) process.kill(consumerPid, 'SIGKILL');
    });
    parent.child.kill('SIGKILL');
    await waitFor(() => !running(consumerPid), 10_000, 'consumer exited after its parent died');
    await waitFor(() => !running(servePid), 10_000, 'serve reaped');
  });
});

describe('request retargeting', () => {
  test('string, URL and Request inputs move to the live origin, path and query kept', async () => {
    const live = 'http://127.0.0.1:40002/v1';
    assert.equal(retarget('http://127.0.0.1:40001/v1/chat/completions?x=1', live), 'http://127.0.0.1:40002/v1/chat/completions?x=1');
    assert.equal(retarget(new URL('http://127.0.0.1:40001/v1/models'), live).href, 'http://127.0.0.1:40002/v1/models');
    const moved = retarget(new Request('http://127.0.0.1:40001/v1/embeddings', { method: 'POST', body: '{"a":1}', headers: { 'x-test': 'kept' } }), live);
    assert.ok(moved instanceof Request);
    assert.equal(moved.url, 'http://127.0.0.1:40002/v1/embeddings');
    assert.equal(moved.method, 'POST');
    assert.equal(moved.headers.get('x-test'), 'kept');
    assert.equal(await moved.text(), '{"a":1}');
    assert.equal(retarget('not a url', live), 'not a url');
  });
});

describe('external mode and the default instance', () => {
  test('createQvac({ baseURL, apiKey }) needs no serve; qvac is the default external provider', async () => {
    const managedServe = await managed({ serveIdleTimeout: 60_000 });
    try {
      const external = createQvac({ baseURL: managedServe.baseURL, apiKey: managedServe.apiKey });
      const { text } = await generateText({ model: external(MODEL), prompt: 'external' });
      assert.equal(text, 'echo: external');
      assert.equal(typeof qvac, 'function');
      assert.equal(typeof qvac.chatModel, 'function');
      assert.equal(qvac(MODEL).provider.startsWith('qvac'), true);
    } finally {
      await managedServe.close();
    }
  });
});

describe('interop with @qvac/ai-sdk-provider 0.7.0', () => {
  // A config of their own, so no serve another test left warm is in the way.
  const options = { models: [{ name: MODEL, config: { interop: 1 } }], serveBinPath: fakeServe, serveIdleTimeout: 500 };

  test('upstream first, then ours: one serve, reaped when both are gone', async (t) => {
    const theirs = spawnUpstream(t, [JSON.stringify(options)], home, 'upstream-consumer.mjs');
    const got = await theirs.next((e) => e.event !== undefined, 60_000);
    assert.equal(got.event, 'attached', got.message);
    assert.equal(got.text, 'echo: from upstream');
    const ours = await createQvac({ mode: 'managed', ...options });
    assert.equal(ours.pid, got.servePid, 'we attached to the serve upstream started');
    const { text } = await generateText({ model: ours(MODEL), prompt: 'ours' });
    assert.equal(registry().listServes().find((s) => s.servePid === ours.pid).consumers, 2);
    assert.equal(text, 'echo: ours');
    await ours.close();
    await theirs.finish();
    await waitFor(() => !running(got.servePid), 15_000, 'reaped (upstream runner polls every 2 s)');
  });

  test('ours first, then upstream: one serve, reaped when both are gone', async (t) => {
    const options2 = { ...options, models: [{ name: MODEL, config: { interop: 2 } }] };
    const ours = await createQvac({ mode: 'managed', ...options2 });
    const theirs = spawnUpstream(t, [JSON.stringify(options2)], home, 'upstream-consumer.mjs');
    const got = await theirs.next((e) => e.event !== undefined, 60_000);
    assert.equal(got.event, 'attached', got.message);
    assert.equal(got.servePid, ours.pid, 'upstream attached to the serve we started');
    assert.equal(registry().listServes().find((s) => s.servePid === ours.pid).consumers, 2);
    await ours.close();
    assert.ok(running(ours.pid), 'upstream still uses it');
    await theirs.finish();
    await waitFor(() => !running(ours.pid), 10_000, 'reaped after both left');
  });
});

function supportsAwaitUsing() {
  try {
    new Function('return async () => { await using x = null; }');
    return true;
  } catch {
    return false;
  }
}
