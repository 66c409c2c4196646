// Bundles the TypeScript layer's ESM output (dist/*.js, from tsc) into one dist/index.js: Node
// loads one module instead of some twenty-five, which halves the time `import('qvac-managed')`
// takes (measured: ~19 -> ~9 ms in a fresh process; see bench/). Kept as separate files: the
// napi-rs loader (../index.js), the CommonJS binary lookup and error base (shared with the CLI
// shim), the addon pre-check (it must run before the loader, and externals keep import order),
// and the AI SDK peers (loaded on first use).
import { build } from 'esbuild';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
await build({
  entryPoints: [join(root, 'dist', 'index.js')],
  outfile: join(root, 'dist', 'index.js'),
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // Class names are part of the API (`error.name`, upstream's error classes).
  keepNames: true,
  external: ['../index.js', './platform.cjs', './error-base.cjs', './addon-check.js', 'ai', '@ai-sdk/*'],
  logLevel: 'warning'
});
