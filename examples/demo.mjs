// The main job: a managed serve through the AI SDK, exactly as an app would use it.
// Uses the real `qvac` (node_modules/@qvac/cli or on PATH) when installed, otherwise the fake
// serve from __test__/fixtures (same argv, same OpenAI routes), and says which.
// Run: npm install && npm run demo
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';

import { generateText, streamText } from 'ai';

import { createQvac, resolveRunnerPath } from '../dist/index.js';

const realQvac =
  existsSync(join(process.cwd(), 'node_modules', '@qvac', 'cli', 'package.json')) ||
  (process.env.PATH ?? '').split(delimiter).some((dir) => existsSync(join(dir, 'qvac')));
const fakeServe = fileURLToPath(new URL('../__test__/fixtures/fake-serve.mjs', import.meta.url));
const MODEL = 'QWEN3_600M_INST_Q4';
const IDLE_MS = 1000;
const cli = (...args) => spawnSync(resolveRunnerPath(), args, { encoding: 'utf8' }).stdout.trimEnd();
const step = (text) => console.log(`\n> ${text}`);

if (realQvac) {
  console.log('Using the real qvac serve.');
} else {
  console.log('=================================================================================');
  console.log(' The real `qvac serve` (@qvac/cli) is not installed here: this demo runs the FAKE');
  console.log(' serve from __test__/fixtures/fake-serve.mjs (same flags, same OpenAI routes; it');
  console.log(' echoes prompts). Install @qvac/cli or put `qvac` on PATH to use the real one.');
  console.log('=================================================================================');
}

step(`createQvac({ mode: 'managed', models: ['${MODEL}'] })`);
const started = Date.now();
const qvac = await createQvac({
  mode: 'managed',
  models: [MODEL],
  serveIdleTimeout: IDLE_MS,
  ...(realQvac ? {} : { serveBinPath: fakeServe })
});
console.log(`  ready in ${Date.now() - started} ms: ${qvac.baseURL} (serve pid ${qvac.pid})`);

step('generateText');
const { text } = await generateText({ model: qvac(MODEL), prompt: 'Write a haiku about local-first AI.' });
console.log(`  ${text}`);

step('streamText');
process.stdout.write('  ');
for await (const delta of streamText({ model: qvac(MODEL), prompt: 'Stream these words back to me' }).textStream) {
  process.stdout.write(delta);
}
console.log();

step('qvac-managed ps (another terminal would see the same)');
console.log(cli('ps').replace(/^/gm, '  '));

step(`close(): this process detaches; the runner reaps the serve ${IDLE_MS} ms later`);
const pid = qvac.pid;
const closedAt = Date.now();
await qvac.close();
const alive = () => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};
while (alive() && Date.now() - closedAt < 30_000) await new Promise((r) => setTimeout(r, 10));
console.log(`  serve pid ${pid} ${alive() ? 'STILL RUNNING' : `gone ${Date.now() - closedAt} ms after close()`}`);
console.log(cli('ps').replace(/^/gm, '  '));
if (alive()) process.exit(1);
