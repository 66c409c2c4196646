// Bundles the TypeScript layer's output (dist/*.js and the CommonJS dist/platform.cjs and
// dist/error-base.cjs, from tsc) into one ES module, dist/index.js: `import('qvac-managed')`
// evaluates one module, loads the addon through one lookup (loadAddon in platform.cjs), and needs
// no CommonJS interop (the first CommonJS module an ES module imports costs ~2 ms). Only the AI
// SDK peers (loaded on first use) stay outside. dist/platform.cjs and dist/error-base.cjs also stay
// as tsc wrote them, for the CLI shim, which loads nothing else.
import { build } from 'esbuild';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const outfile = join(root, 'dist', 'index.js');
const external = ['ai', '@ai-sdk/*'];
// A builtin `import`ed by an ES module becomes an ES module exporting just the names imported
// from it (plain bindings in the bundle); one `require`d by the bundled CommonJS stays a CommonJS
// module. An ES module importing a CommonJS one would get esbuild's interop copy of every export
// as a getter (some 0.3 ms at import for fs, os, path and timers/promises). A name that is not a
// data property of the builtin here (a lazy getter, or missing) fails the build.
const importedNames = new Map();
for (const file of await readdir(join(root, 'dist'), { recursive: true })) {
  if (!file.endsWith('.js')) continue;
  const source = await readFile(join(root, 'dist', file), 'utf8');
  for (const [, names, from] of source.matchAll(/import\s*\{([^}]*)\}\s*from\s*['"](node:[^'"]+)['"]/g)) {
    const set = importedNames.get(from) ?? new Set();
    for (const name of names.split(',').map((n) => n.trim().split(/\s+as\s+/)[0]).filter(Boolean)) set.add(name);
    importedNames.set(from, set);
  }
}
const builtinsWithoutImports = {
  name: 'builtins-without-imports',
  setup(build) {
    build.onResolve({ filter: /^node:/ }, ({ path, kind }) => ({ path, namespace: kind === 'require-call' ? 'builtin-cjs' : 'builtin-esm' }));
    build.onLoad({ filter: /.*/, namespace: 'builtin-cjs' }, ({ path }) => ({
      contents: `module.exports = process.getBuiltinModule(${JSON.stringify(path)});`,
      loader: 'js'
    }));
    build.onLoad({ filter: /.*/, namespace: 'builtin-esm' }, ({ path }) => {
      const builtin = process.getBuiltinModule(path);
      const names = [...(importedNames.get(path) ?? [])];
      const notData = names.filter((name) => !('value' in (Object.getOwnPropertyDescriptor(builtin, name) ?? {})));
      if (notData.length) throw new Error(`bundle.mjs: ${path} has no data propert${notData.length > 1 ? 'ies' : 'y'} ${notData.join(', ')}`);
      const source = JSON.stringify(path);
      return { contents: `const builtin = process.getBuiltinModule(${source});\nexport const { ${names.join(', ')} } = builtin;\n`, loader: 'js' };
    });
  }
};
const result = await build({
  entryPoints: [outfile],
  outfile,
  allowOverwrite: true,
  bundle: true,
  platform: 'node',
  format: 'esm',
  target: 'node20',
  // Class names are part of the API (`error.name`, upstream's error classes).
  keepNames: true,
  external,
  // Node's builtins through process.getBuiltinModule, not `import`: a builtin imported into an ES
  // module is one more module for the loader to resolve, link and wrap, and the bundled CommonJS
  // needs no `require`.
  plugins: [builtinsWithoutImports],
  // The bundled CommonJS (platform.cjs, error-base.cjs) uses `__dirname`: this module's own
  // (dist/, where those files sit).
  banner: { js: 'const __dirname = import.meta.dirname;' },
  metafile: true,
  logLevel: 'warning'
});
// Nothing of this package may stay a separate module (a second evaluation, or CommonJS interop).
const imports = Object.values(result.metafile.outputs).flatMap((output) => output.imports);
const stray = imports.filter(({ path }) => !external.some((e) => (e.endsWith('*') ? path.startsWith(e.slice(0, -1)) : path === e)));
if (stray.length) throw new Error(`bundle.mjs: dist/index.js still imports ${stray.map((i) => i.path).join(', ')}`);
// A bare `require` would have no definition in an ES module.
if ((await readFile(outfile, 'utf8')).includes('var __require =')) throw new Error('bundle.mjs: dist/index.js calls require(), which an ES module does not have');

// The Bare entry (package.json exports' `bare` condition): dist/bare.js with the host modules
// swapped for Bare's (runtime.ts -> runtime-bare.ts, platform.cts's loadAddon -> addon-bare.ts).
// It may import nothing but Bare's own modules, and no Node builtin or `process` may remain.
const bareOutfile = join(root, 'dist', 'bare.js');
const bareExternal = ['bare-signals'];
const bareHost = {
  name: 'bare-host',
  setup(build) {
    const swap = { './runtime.js': './runtime-bare.js', './platform.cjs': './addon-bare.js' };
    build.onResolve({ filter: /^\.\/(runtime\.js|platform\.cjs)$/ }, ({ path, resolveDir }) => ({ path: join(resolveDir, swap[path]) }));
    build.onResolve({ filter: /^node:/ }, ({ path, importer }) => ({ errors: [{ text: `${path} (imported by ${importer}) is not available in Bare` }] }));
  }
};
const bare = await build({
  entryPoints: [bareOutfile],
  outfile: bareOutfile,
  allowOverwrite: true,
  bundle: true,
  platform: 'neutral',
  format: 'esm',
  target: 'es2022',
  keepNames: true,
  external: bareExternal,
  plugins: [bareHost],
  metafile: true,
  logLevel: 'warning'
});
const bareImports = Object.values(bare.metafile.outputs).flatMap((output) => output.imports);
const bareStray = bareImports.filter(({ path }) => !bareExternal.includes(path));
if (bareStray.length) throw new Error(`bundle.mjs: dist/bare.js imports ${bareStray.map((i) => i.path).join(', ')}`);
const bareSource = await readFile(bareOutfile, 'utf8');
if (/\bprocess\.|__dirname|var __require =/.test(bareSource)) throw new Error('bundle.mjs: dist/bare.js uses process, __dirname or require, which Bare does not have');
