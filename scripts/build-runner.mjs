// Builds the `qvac-managed` binary (runner + CLI) for this machine (or `--target <triple>`, as the
// release workflow does) and puts it in the platform package directory npm/<platform>/, where the
// library finds it in a checkout and from where the platform package is packed.
import { spawnSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, renameSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const targetFlag = process.argv.indexOf('--target');
const host = targetFlag > 0 ? process.argv[targetFlag + 1] : spawnSync('rustc', ['-vV'], { encoding: 'utf8' }).stdout?.match(/^host: (.+)$/m)?.[1];
if (!host) throw new Error('cannot tell the Rust host triple (`rustc -vV`); pass --target <triple>');
// Same --target as `napi build --platform`, so both share one target directory and one build of core.
const cargo = spawnSync('cargo', ['build', '--release', '-p', 'qvac-managed-cli', '--target', host], { cwd: root, stdio: 'inherit' });
if (cargo.status !== 0) process.exit(cargo.status ?? 1);
const platformDir = {
  'x86_64-unknown-linux-gnu': 'linux-x64-gnu',
  'aarch64-unknown-linux-gnu': 'linux-arm64-gnu',
  'x86_64-apple-darwin': 'darwin-x64',
  'aarch64-apple-darwin': 'darwin-arm64',
  'x86_64-pc-windows-msvc': 'win32-x64-msvc'
}[host];
if (!platformDir) throw new Error(`no npm platform package for ${host}`);
const exe = host.includes('windows') ? 'qvac-managed.exe' : 'qvac-managed';
const target = join(root, 'npm', platformDir, exe);
mkdirSync(dirname(target), { recursive: true });
// Copy beside it, then rename over it: a runner still executing the old binary keeps its inode
// (copying onto a running executable fails with ETXTBSY).
const staging = `${target}.${process.pid}.tmp`;
copyFileSync(join(root, 'target', host, 'release', exe), staging);
chmodSync(staging, 0o755);
renameSync(staging, target);
console.log(`qvac-managed runner: ${target}`);
