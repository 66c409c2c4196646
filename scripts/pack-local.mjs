// `npm run pack:local`: builds, then writes installable tarballs of the main package and of this
// host's platform package (the .node and the qvac-managed binary) into artifacts/, as npm users
// get them: `npm install artifacts/*.tgz ai@7 @ai-sdk/openai-compatible@3` needs no Rust.
//   node scripts/pack-local.mjs [--no-build]
import { spawnSync } from 'node:child_process';
import { copyFileSync, cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const artifacts = join(root, 'artifacts');
const pkg = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8'));

function run(cmd, args, cwd = root) {
  const result = spawnSync(cmd, args, { cwd, stdio: ['ignore', 'pipe', 'pipe'], encoding: 'utf8' });
  if (result.status !== 0) {
    process.stdout.write(result.stdout ?? '');
    process.stderr.write(result.stderr ?? '');
    throw new Error(`${cmd} ${args.join(' ')} failed (exit ${result.status ?? result.signal})`);
  }
  return result.stdout;
}

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
// The main package is packed from a copy of what it publishes, without the `prepare` script
// (it builds from source in a clone; npm users' installs must never try it).
const mainStage = mkdtempSync(join(tmpdir(), 'qvac-managed-pack-'));
const published = { ...pkg, scripts: { ...pkg.scripts } };
delete published.scripts.prepare;
writeFileSync(join(mainStage, 'package.json'), `${JSON.stringify(published, null, 2)}\n`);
for (const entry of [...pkg.files, 'README.md']) cpSync(join(root, entry), join(mainStage, entry), { recursive: true });
process.on('exit', () => rmSync(mainStage, { recursive: true, force: true }));

// --ignore-scripts: everything was just built.
for (const dir of [platformDir, mainStage]) {
  const [packed] = JSON.parse(run('npm', ['pack', '--json', '--ignore-scripts', '--pack-destination', artifacts], dir));
  const files = new Map(packed.files.map((f) => [f.path, f]));
  if (dir === platformDir) {
    for (const want of [nodeFile, exe]) if (!files.has(want)) throw new Error(`${packed.filename} lacks ${want}`);
    if (!(files.get(exe).mode & 0o111)) throw new Error(`${packed.filename}: ${exe} lost its run bit`);
  } else {
    for (const want of ['dist/index.js', 'dist/platform.cjs', 'bin/qvac-managed.cjs', 'index.js', 'index.d.ts']) {
      if (!files.has(want)) throw new Error(`${packed.filename} lacks ${want}`);
    }
  }
  console.log(`${join('artifacts', packed.filename)}  ${(packed.size / 1024).toFixed(0)} KiB packed, ${packed.entryCount} files`);
}
console.log(`install with: npm install ${readdirSync(artifacts).map((f) => join('artifacts', f)).join(' ')} ai@7 @ai-sdk/openai-compatible@3`);
