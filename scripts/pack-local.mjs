// `npm run pack:local`: builds, then writes installable tarballs of the main package and of this
// host's platform package (the .node and the qvac-managed binary) into artifacts/, as npm users
// get them: `npm install artifacts/*.tgz ai@7 @ai-sdk/openai-compatible@3` needs no Rust.
//   node scripts/pack-local.mjs [--no-build]
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

import { artifacts, checkMainPackage, npmPack, pkg, root, run, stageMainPackage } from './pack-common.mjs';

if (!process.argv.includes('--no-build')) {
  console.log('building (napi build --platform --release, the runner, tsc)...');
  run('npm', ['run', '--silent', 'build']);
}

// The host's platform id and target triple, as `napi build --platform` named the .node it wrote.
const { platformId } = await import(join(root, 'dist', 'platform.cjs'));
const id = platformId();
const triple = spawnSync('rustc', ['-vV'], { encoding: 'utf8' }).stdout?.match(/^host: (.+)$/m)?.[1];
if (!triple || !pkg.napi.targets.includes(triple)) {
  throw new Error(`this host (${triple ?? 'unknown'}) is not one of the targets in package.json: ${pkg.napi.targets.join(', ')}`);
}
const nodeFile = `${pkg.napi.binaryName}.${id}.node`;
const platformDir = join(root, 'npm', id);

// `napi artifacts` moves built .node files into npm/<platform>/; it expects every configured
// target, so it is given a config naming this host's target only.
const staging = mkdtempSync(join(tmpdir(), 'qvac-managed-artifacts-'));
try {
  copyFileSync(join(root, nodeFile), join(staging, nodeFile));
  const config = join(staging, 'napi.json');
  writeFileSync(config, JSON.stringify({ binaryName: pkg.napi.binaryName, targets: [triple] }));
  run(process.execPath, [join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js'), 'artifacts', '-c', config, '-d', staging, '--npm-dir', 'npm']);
} finally {
  rmSync(staging, { recursive: true, force: true });
}
const exe = id.startsWith('win32') ? 'qvac-managed.exe' : 'qvac-managed';
const runnerMode = statSync(join(platformDir, exe)).mode;
if (!(runnerMode & 0o111)) throw new Error(`npm/${id}/${exe} is not executable (mode ${(runnerMode & 0o777).toString(8)})`);

rmSync(artifacts, { recursive: true, force: true });
mkdirSync(artifacts, { recursive: true });
// The main package is packed from a copy of what it publishes, without the `prepare` script.
const mainStage = stageMainPackage();

for (const dir of [platformDir, mainStage]) {
  const packed = npmPack(dir, artifacts);
  const files = new Map(packed.files.map((f) => [f.path, f]));
  if (dir === platformDir) {
    for (const want of [nodeFile, exe]) if (!files.has(want)) throw new Error(`${packed.filename} lacks ${want}`);
    if (!(files.get(exe).mode & 0o111)) throw new Error(`${packed.filename}: ${exe} lost its run bit`);
  } else {
    checkMainPackage(packed);
  }
  console.log(`${join('artifacts', packed.filename)}  ${(packed.size / 1024).toFixed(0)} KiB packed, ${packed.entryCount} files`);
}
console.log(`install with: npm install ${readdirSync(artifacts).map((f) => join('artifacts', f)).join(' ')} ai@7 @ai-sdk/openai-compatible@3`);
