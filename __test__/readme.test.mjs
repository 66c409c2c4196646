// Every README code block fenced as ```js run is run as a user would run it, so the docs cannot
// drift from the package: saved as a module in a fresh project that has `qvac-managed` and `ai`
// in node_modules and a stand-in `@qvac/cli` (the fake serve) there, which the runner finds above
// the working directory as it finds the real one. The blocks themselves stay as users write them.
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { describe, test } from 'node:test';

import { resolveRunnerPath } from '../dist/index.js';
import { fixtures, tempDir } from './helpers.mjs';

const root = fileURLToPath(new URL('..', import.meta.url));
const readme = readFileSync(join(root, 'README.md'), 'utf8');

/** The README's fenced blocks: info string, body and the line the body starts on. */
const blocks = [...readme.matchAll(/^```([^\n]*)\n([\s\S]*?)^```\s*$/gm)].map((m) => ({
  info: m[1].trim(),
  body: m[2],
  line: readme.slice(0, m.index).split('\n').length + 1
}));
const runnable = blocks.filter((b) => /^js\s+run$/.test(b.info));

/** A project directory as `npm install qvac-managed ai @qvac/cli` would leave it (the CLI faked). */
function project(t) {
  const dir = tempDir(t);
  const modules = join(dir, 'node_modules');
  mkdirSync(join(modules, '@qvac', 'cli'), { recursive: true });
  symlinkSync(root, join(modules, 'qvac-managed'), 'dir');
  symlinkSync(join(root, 'node_modules', 'ai'), join(modules, 'ai'), 'dir');
  writeFileSync(join(modules, '@qvac', 'cli', 'package.json'), JSON.stringify({ name: '@qvac/cli', type: 'module', bin: { qvac: 'cli.js' } }));
  writeFileSync(join(modules, '@qvac', 'cli', 'cli.js'), `import ${JSON.stringify(pathToFileURL(join(fixtures, 'fake-serve.mjs')).href)};\n`);
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'readme-example', private: true, type: 'module' }));
  return dir;
}

/** Runs `file` with this runtime in `cwd`; resolves its exit and output (killed, by pid, after `timeoutMs`). */
function run(t, file, cwd, env, timeoutMs = 60_000) {
  const child = spawn(process.execPath, [file], { cwd, env, stdio: ['ignore', 'pipe', 'pipe'] });
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  let stdout = '';
  let stderr = '';
  child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
  child.stderr.setEncoding('utf8').on('data', (d) => (stderr += d));
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs);
  return new Promise((resolve) =>
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    })
  );
}

describe('README code blocks', () => {
  test('the first example is one of the blocks that run, and there are blocks to run', () => {
    const firstJs = blocks.find((b) => /^js\b/.test(b.info));
    assert.ok(firstJs, 'the README has a js block');
    assert.equal(firstJs.info, 'js run', `the first example (README line ${firstJs.line}) is fenced as \`\`\`js run`);
    assert.ok(runnable.length >= 2, `blocks to run: ${runnable.length}`);
  });

  for (const block of runnable) {
    test(`README line ${block.line} runs against the serve a user would get`, async (t) => {
      const dir = project(t);
      const home = join(dir, 'home');
      const registryDir = join(home, '.qvac', 'managed-serves');
      const events = join(dir, 'serve-events.jsonl');
      // The serve outlives the example by its idle timeout (5 min by default): stopped here.
      t.after(() => spawnSync(resolveRunnerPath(), ['stop', '--all', '--registry', registryDir]));
      const file = join(dir, `readme-line-${block.line}.mjs`);
      writeFileSync(file, block.body);
      const tmp = join(dir, 'tmp');
      mkdirSync(tmp);
      const env = { ...process.env, HOME: home, TMPDIR: tmp, FAKE_SERVE_EVENTS: events };
      delete env.QVAC_MANAGED_REGISTRY;
      const result = await run(t, file, dir, env);
      assert.equal(result.code, 0, `README line ${block.line} exited ${result.code ?? result.signal}:\n${result.stderr}\n${result.stdout}`);
      const started = existsSync(events)
        ? readFileSync(events, 'utf8').trim().split('\n').filter(Boolean).map((l) => JSON.parse(l)).filter((e) => e.event === 'started')
        : [];
      assert.equal(started.length, 1, 'the example started one serve: the @qvac/cli of its project');
      if (block.body.includes('generateText(')) {
        assert.match(result.stdout, /echo: Write a haiku\./, 'generateText answered');
        assert.match(result.stdout, /echo: Hi/, 'streamText streamed');
      }
    });
  }
});
