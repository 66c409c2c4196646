// Lints the Rust workspace for the other targets in package.json `napi.targets` (a step of
// `npm test`): `cargo clippy -D warnings` with `-Zbuild-std` and Debian's rustc-web, whose
// toolchain scripts/setup-toolchains.mjs installs into a cache outside the clone (see
// ../shared/PLATFORMS.md). Linux x64 is linted natively by `npm run check`.
//   node scripts/check-targets.mjs                 every target that is expected to build
//   node scripts/check-targets.mjs --only=<triple> one target
// The target dir lives in the toolchain cache too (std is built from source per target: minutes
// cold, seconds warm).
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const targets = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).napi.targets;
const native = 'x86_64-unknown-linux-gnu';
// The Windows package is built here from the GNU target (the MSVC SDK cannot be had here; a
// Node-API addon is C ABI, so the GNU DLL loads in Node for Windows): it is linted beside the
// MSVC target the release workflow builds. Clippy is a check, so MSVC needs no SDK for it.
const extra = ['x86_64-pc-windows-gnu'];
const only = process.argv.find((a) => a.startsWith('--only='))?.slice('--only='.length);

const setup = spawnSync(process.execPath, [join(root, 'scripts', 'setup-toolchains.mjs')], { cwd: root, stdio: 'inherit' });
if (setup.status !== 0) {
  console.error('check-targets: the cross toolchain could not be set up (see above)');
  process.exit(1);
}
const env = JSON.parse(spawnSync(process.execPath, [join(root, 'scripts', 'setup-toolchains.mjs'), '--env'], { cwd: root, encoding: 'utf8' }).stdout);

const failed = [];
for (const target of [...targets, ...extra].filter((t) => t !== native && (!only || t === only))) {
  const spec = env.targets[target];
  if (!spec) {
    console.error(`--- ${target}: no toolchain entry in scripts/setup-toolchains.mjs`);
    failed.push(target);
    continue;
  }
  const started = Date.now();
  const run = spawnSync(env.clippy, ['clippy', '--workspace', '--locked', ...spec.cargoArgs, '--', '-D', 'warnings'], {
    cwd: root,
    stdio: 'inherit',
    env: {
      ...process.env,
      ...env.common,
      ...spec.env,
      PATH: [...env.pathPrepend, process.env.PATH].join(':'),
      CARGO_TARGET_DIR: join(env.cache, 'qvac-target')
    }
  });
  const ok = run.status === 0;
  console.log(`--- ${target}: clippy -D warnings ${ok ? 'ok' : 'FAILED'} in ${((Date.now() - started) / 1000).toFixed(1)} s`);
  if (!ok) failed.push(target);
}
if (failed.length) {
  console.error(`check-targets: FAILED for ${failed.join(', ')}`);
  process.exit(1);
}
console.log('check-targets: ok');
