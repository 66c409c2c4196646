// `npm run pack:targets`: builds the addon and the qvac-managed binary for every target in
// package.json `napi.targets` and writes every platform package's tarball into artifacts/ beside
// the main package's, as they would be published. Each file is checked in the tarball itself: its
// format by magic bytes (ELF / Mach-O / PE machine, library or executable), the binary's run bit,
// and on darwin a valid ad-hoc code signature (Apple Silicon kills unsigned executables).
//   node scripts/pack-targets.mjs [--only=<triple>[,<triple>...]]
//
// - x86_64-unknown-linux-gnu is this machine: `npm run build` (napi build + build-runner, which
//   also build the main package's dist/).
// - The others are cross-built with scripts/setup-toolchains.mjs's toolchain (Debian's rustc-web,
//   -Zbuild-std, cargo-zigbuild for darwin), into its cache target dir (the one check-targets
//   uses), so nothing big lands in the clone and warm runs are incremental.
// - x86_64-pc-windows-msvc is packed from the x86_64-pc-windows-gnu build: the MSVC SDK cannot be
//   had here. A Node-API addon is C ABI and looks napi_* up in the host executable (napi-sys
//   dyn-symbols), so the gnu DLL loads in Node for Windows; the release workflow builds the real MSVC one on Windows runners.
// - darwin: zig's linker ad-hoc signs arm64 output but not x86_64 (and has no flag to make it).
//   Unsigned Mach-O files are ad-hoc signed in the staging dir with rcodesign (crates.io
//   `apple-codesign`, a pure-Rust codesign; built once into the toolchain cache, ~5 min), which
//   needs header room that zig leaves only when asked (-headerpad_max_install_names). Every darwin
//   file's signature is then verified here, page hashes included; nothing is stripped after it.
import { spawn, spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { chmodSync, closeSync, copyFileSync, cpSync, existsSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';
import { gunzipSync } from 'node:zlib';

import { artifacts, checkMainPackage, npmPack, pkg, root, run, stageMainPackage } from './pack-common.mjs';

const NATIVE = 'x86_64-unknown-linux-gnu';
// What each target is built as here, its platform id (index.js's file and package names) and the
// format every file must have.
const TARGETS = {
  'x86_64-unknown-linux-gnu': { id: 'linux-x64-gnu', format: 'elf', arch: 'x86-64' },
  'aarch64-unknown-linux-gnu': { id: 'linux-arm64-gnu', format: 'elf', arch: 'aarch64' },
  'x86_64-apple-darwin': { id: 'darwin-x64', format: 'macho', arch: 'x86_64' },
  'aarch64-apple-darwin': { id: 'darwin-arm64', format: 'macho', arch: 'arm64' },
  'x86_64-pc-windows-msvc': { id: 'win32-x64-msvc', format: 'pe', arch: 'x86-64', buildAs: 'x86_64-pc-windows-gnu' },
};
const LIB_NAME = 'qvac_managed_node'; // the root crate's cdylib
const RCODESIGN = { crate: 'apple-codesign', version: '0.29.0' };

const t0 = Date.now();
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
const log = (msg) => console.log(`[pack-targets ${secs(Date.now() - t0).padStart(7)}] ${msg}`);
class TargetError extends Error {
  constructor(target, message) {
    super(`${target}: ${message}`);
    this.target = target;
  }
}

// ---- arguments ----------------------------------------------------------------------------------
let only = null;
for (const arg of process.argv.slice(2)) {
  if (arg.startsWith('--only=')) only = arg.slice('--only='.length).split(',').filter(Boolean);
  else fail(`unknown argument ${arg} (use --only=<triple>[,<triple>...])`);
}
const targets = pkg.napi.targets.filter((t) => !only || only.includes(t));
for (const t of pkg.napi.targets) if (!TARGETS[t]) fail(`package.json lists ${t}, which scripts/pack-targets.mjs does not know how to build`);
for (const t of only ?? []) if (!pkg.napi.targets.includes(t)) fail(`--only: ${t} is not in package.json napi.targets (${pkg.napi.targets.join(', ')})`);

function fail(message) {
  console.error(`pack-targets: FAILED: ${message}`);
  process.exit(1);
}

// ---- building -----------------------------------------------------------------------------------
/** Runs a long build with its output in `logPath`, a progress line every 30 s; rejects naming `target`. */
function runLogged(target, cmd, args, { env, logPath }) {
  const fd = openSync(logPath, 'w');
  writeFileSync(fd, `$ ${cmd} ${args.join(' ')}\n`);
  const started = Date.now();
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { cwd: root, env, stdio: ['ignore', fd, fd] });
    const beat = setInterval(() => log(`  ... ${target} still building (${secs(Date.now() - started)}; log: ${logPath})`), 30000);
    const done = (error) => {
      clearInterval(beat);
      closeSync(fd);
      if (!error) return resolve(Date.now() - started);
      const tail = readFileSync(logPath, 'utf8').split('\n').slice(-40).join('\n');
      reject(new TargetError(target, `\`${cmd} ${args.join(' ')}\` ${error}; last lines of ${logPath}:\n${tail}`));
    };
    child.on('error', (e) => done(`could not start (${e.message})`));
    child.on('exit', (code, signal) => done(code === 0 ? null : `failed (${signal ?? `exit ${code}`})`));
  });
}

/** Builds the cdylib and the binary for a cross target; returns their paths. */
async function crossBuild(target, toolchain) {
  const triple = TARGETS[target].buildAs ?? target;
  const spec = toolchain.targets[triple];
  if (!spec?.cargoArgs) throw new TargetError(target, `scripts/setup-toolchains.mjs has no build environment for ${triple}`);
  const darwin = triple.endsWith('-apple-darwin');
  // cargo-zigbuild links darwin with zig (its linker writes the arm64 signature); spec.env sets
  // CARGO_PROFILE_RELEASE_STRIP=false for darwin (strip would need rust-objcopy, and stripping
  // after signing would break the signature).
  const [cmd, sub] = darwin ? ['cargo-zigbuild', 'zigbuild'] : ['cargo', 'build'];
  const args = [sub, '--release', '--locked', '-p', 'qvac-managed-node', '-p', 'qvac-managed-cli', ...spec.cargoArgs];
  const env = {
    ...process.env,
    ...toolchain.common,
    ...spec.env,
    PATH: [...toolchain.pathPrepend, process.env.PATH].join(':'),
    CARGO_TARGET_DIR: targetDir,
    CARGO_TERM_COLOR: 'never',
  };
  // zig leaves no room after the load commands; a signer adding LC_CODE_SIGNATURE afterwards
  // needs some ("insufficient room to write code signature load command"), as ld64 leaves.
  if (darwin) env[`CARGO_TARGET_${triple.toUpperCase().replace(/-/g, '_')}_RUSTFLAGS`] = '-Clink-arg=-Wl,-headerpad_max_install_names';
  mkdirSync(logDir, { recursive: true });
  log(`${target}: ${cmd} ${args.join(' ')}${triple !== target ? `  (${target} is packed from the ${triple} build)` : ''}`);
  const ms = await runLogged(target, cmd, args, { env, logPath: join(logDir, `pack-${triple}.log`) });
  const out = join(targetDir, triple, 'release');
  const lib = triple.includes('windows') ? `${LIB_NAME}.dll` : darwin ? `lib${LIB_NAME}.dylib` : `lib${LIB_NAME}.so`;
  const exe = triple.includes('windows') ? 'qvac-managed.exe' : 'qvac-managed';
  return { node: join(out, lib), exe: join(out, exe), ms };
}

// ---- formats ------------------------------------------------------------------------------------
const ELF_MACHINES = { 0x3e: 'x86-64', 0xb7: 'aarch64' };
const MACHO_CPUS = { 0x01000007: 'x86_64', 0x0100000c: 'arm64' };
const MACHO_FILETYPES = { 2: 'executable', 6: 'dylib', 8: 'bundle' };
const PE_MACHINES = { 0x8664: 'x86-64', 0xaa64: 'arm64', 0x14c: 'i386' };

/**
 * What a file is, from its headers: { format, arch, kind ('library' | 'executable'), detail }.
 * Throws on anything that is none of ELF64, 64-bit Mach-O, PE32+.
 */
function identify(b) {
  if (b.length >= 64 && b.readUInt32BE(0) === 0x7f454c46) {
    if (b[4] !== 2 || b[5] !== 1) throw new Error(`ELF class ${b[4]} data ${b[5]}: not a little-endian ELF64`);
    const type = b.readUInt16LE(16);
    const machine = b.readUInt16LE(18);
    // A PIE executable is ET_DYN as well; it is told from a library by its PT_INTERP.
    const phoff = Number(b.readBigUInt64LE(32));
    const phentsize = b.readUInt16LE(54);
    let interp = false;
    for (let i = 0; i < b.readUInt16LE(56); i++) if (b.readUInt32LE(phoff + i * phentsize) === 3) interp = true;
    const kind = type === 2 || (type === 3 && interp) ? 'executable' : type === 3 ? 'library' : `e_type ${type}`;
    const arch = ELF_MACHINES[machine] ?? `e_machine 0x${machine.toString(16)}`;
    return { format: 'elf', arch, kind, detail: `ELF64 ${arch} ${type === 2 ? 'EXEC' : 'DYN'}${interp ? ' +PT_INTERP' : ''}` };
  }
  if (b.length >= 32 && b.readUInt32LE(0) === 0xfeedfacf) {
    const cpu = b.readUInt32LE(4);
    const filetype = b.readUInt32LE(12);
    const arch = MACHO_CPUS[cpu] ?? `cputype 0x${cpu.toString(16)}`;
    const kind = filetype === 2 ? 'executable' : filetype === 6 || filetype === 8 ? 'library' : `filetype ${filetype}`;
    return { format: 'macho', arch, kind, detail: `Mach-O ${arch} ${MACHO_FILETYPES[filetype] ?? filetype}` };
  }
  if (b.length >= 0x40 && b.toString('latin1', 0, 2) === 'MZ') {
    const pe = b.readUInt32LE(0x3c);
    if (b.toString('latin1', pe, pe + 4) !== 'PE\0\0') throw new Error('MZ header without a PE signature');
    const machine = b.readUInt16LE(pe + 4);
    const characteristics = b.readUInt16LE(pe + 22);
    const optMagic = b.readUInt16LE(pe + 24);
    if (optMagic !== 0x20b) throw new Error(`PE optional header magic 0x${optMagic.toString(16)}: not PE32+`);
    const arch = PE_MACHINES[machine] ?? `machine 0x${machine.toString(16)}`;
    const dll = (characteristics & 0x2000) !== 0;
    return { format: 'pe', arch, kind: dll ? 'library' : 'executable', detail: `PE32+ ${machine === 0x8664 ? 'AMD64' : arch} ${dll ? 'DLL' : 'EXE'}` };
  }
  throw new Error(`unknown format (first bytes ${b.subarray(0, 8).toString('hex')})`);
}

/** The Mach-O load commands of a 64-bit file: [{ cmd, offset }]. */
function loadCommands(b) {
  const cmds = [];
  let off = 32;
  for (let i = 0; i < b.readUInt32LE(16); i++) {
    cmds.push({ cmd: b.readUInt32LE(off), offset: off });
    off += b.readUInt32LE(off + 4);
  }
  return cmds;
}

/**
 * Verifies a Mach-O file's embedded code signature as the kernel checks it on load: the
 * LC_CODE_SIGNATURE load command (0x1d), its SuperBlob, every CodeDirectory's page hashes over
 * the file up to the signature, and the special-slot hashes of the blobs present. Returns a
 * one-line description; throws naming what is missing or wrong.
 */
function verifyCodeSignature(b) {
  const lc = loadCommands(b).find((c) => c.cmd === 0x1d);
  if (!lc) throw new Error('no LC_CODE_SIGNATURE load command: unsigned (Apple Silicon kills unsigned executables)');
  const dataoff = b.readUInt32LE(lc.offset + 8);
  const datasize = b.readUInt32LE(lc.offset + 12);
  if (dataoff + datasize > b.length) throw new Error(`LC_CODE_SIGNATURE points past the end of the file (${dataoff}+${datasize} > ${b.length})`);
  const sig = b.subarray(dataoff, dataoff + datasize);
  if (sig.readUInt32BE(0) !== 0xfade0cc0) throw new Error(`code signature SuperBlob magic 0x${sig.readUInt32BE(0).toString(16)}`);
  const blobs = [];
  for (let i = 0; i < sig.readUInt32BE(8); i++) {
    const type = sig.readUInt32BE(12 + i * 8);
    const offset = sig.readUInt32BE(16 + i * 8);
    blobs.push({ type, offset, bytes: sig.subarray(offset, offset + sig.readUInt32BE(offset + 4)) });
  }
  // CodeDirectories: slot 0, and 0x1000.. for alternates (e.g. SHA-1 beside SHA-256).
  const cds = blobs.filter((x) => x.type === 0 || (x.type >= 0x1000 && x.type < 0x1005));
  if (cds.length === 0) throw new Error('code signature has no CodeDirectory');
  const described = [];
  for (const { bytes: cd } of cds) {
    if (cd.readUInt32BE(0) !== 0xfade0c02) throw new Error(`CodeDirectory magic 0x${cd.readUInt32BE(0).toString(16)}`);
    const flags = cd.readUInt32BE(12);
    const hashOffset = cd.readUInt32BE(16);
    const identOffset = cd.readUInt32BE(20);
    const nSpecial = cd.readUInt32BE(24);
    const nCode = cd.readUInt32BE(28);
    const codeLimit = cd.readUInt32BE(32);
    const hashSize = cd[36];
    const hashType = cd[37];
    const pageSize = 2 ** cd[39];
    const algorithm = { 1: 'sha1', 2: 'sha256' }[hashType];
    if (!algorithm) throw new Error(`CodeDirectory hash type ${hashType} is not SHA-1 or SHA-256`);
    if (codeLimit !== dataoff) throw new Error(`CodeDirectory codeLimit ${codeLimit} != signature offset ${dataoff}`);
    if (nCode !== Math.ceil(codeLimit / pageSize)) throw new Error(`CodeDirectory has ${nCode} page hashes for ${codeLimit} bytes in ${pageSize}-byte pages`);
    for (let i = 0; i < nCode; i++) {
      const page = b.subarray(i * pageSize, Math.min((i + 1) * pageSize, codeLimit));
      const want = cd.subarray(hashOffset + i * hashSize, hashOffset + (i + 1) * hashSize);
      const got = createHash(algorithm).update(page).digest().subarray(0, hashSize);
      if (!got.equals(want)) throw new Error(`page ${i} (bytes ${i * pageSize}..) does not match its ${algorithm} hash: the file changed after signing`);
    }
    // Special slots: slot n (1 = Info.plist, 2 = requirements, 5 = entitlements, ...) holds the
    // hash of the SuperBlob entry of type n, stored at hashOffset - n * hashSize.
    for (const blob of blobs.filter((x) => x.type >= 1 && x.type <= nSpecial)) {
      const want = cd.subarray(hashOffset - blob.type * hashSize, hashOffset - (blob.type - 1) * hashSize);
      const got = createHash(algorithm).update(blob.bytes).digest().subarray(0, hashSize);
      if (!got.equals(want)) throw new Error(`special slot ${blob.type} does not match its blob`);
    }
    const ident = cd.toString('utf8', identOffset, cd.indexOf(0, identOffset));
    const kinds = [flags & 0x2 ? 'ad-hoc' : null, flags & 0x20000 ? 'linker-signed' : null].filter(Boolean);
    if (!(flags & 0x2)) throw new Error(`CodeDirectory flags 0x${flags.toString(16)} lack CS_ADHOC (an ad-hoc signature is expected here)`);
    described.push(`${kinds.join(' ')} ${algorithm} ${nCode}x${pageSize / 1024}K pages ok, identifier ${ident}`);
  }
  return `LC_CODE_SIGNATURE ${described.join('; ')}`;
}

/** The DLLs a PE file imports, by mingw's objdump. */
function peImports(file, target) {
  const r = spawnSync('x86_64-w64-mingw32-objdump', ['-p', file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  if (r.status !== 0) throw new TargetError(target, `x86_64-w64-mingw32-objdump -p failed: ${r.stderr || r.error?.message}`);
  return [...r.stdout.matchAll(/DLL Name: (\S+)/g)].map((m) => m[1]);
}

// ---- darwin signing -----------------------------------------------------------------------------
let rcodesignPath = null;
/** rcodesign from crates.io, installed once into the toolchain cache (minutes, cold). */
async function rcodesign(toolchain) {
  if (rcodesignPath) return rcodesignPath;
  const prefix = join(toolchain.cache, `${RCODESIGN.crate}-${RCODESIGN.version}`);
  const bin = join(prefix, 'bin', 'rcodesign');
  if (!existsSync(bin)) {
    // --no-default-features: without notarization (its AWS SDK); ad-hoc signing needs none of it.
    log(`installing rcodesign (cargo install ${RCODESIGN.crate}@${RCODESIGN.version} --no-default-features) into ${prefix}: once, several minutes`);
    mkdirSync(logDir, { recursive: true });
    const ms = await runLogged('rcodesign', 'cargo', ['install', `${RCODESIGN.crate}@${RCODESIGN.version}`, '--no-default-features', '--locked', '--root', prefix], {
      env: process.env,
      logPath: join(logDir, 'pack-rcodesign-install.log'),
    });
    log(`  rcodesign installed in ${secs(ms)}`);
  }
  rcodesignPath = bin;
  return bin;
}

/** Ad-hoc signs a staged Mach-O file that has no signature; returns what was done. */
async function signIfUnsigned(file, target, toolchain) {
  if (loadCommands(readFileSync(file)).some((c) => c.cmd === 0x1d)) return 'signed by the linker';
  const tool = await rcodesign(toolchain).catch((e) => {
    throw new TargetError(target, `cannot ad-hoc sign ${basename(file)}: ${e.message}`);
  });
  const r = spawnSync(tool, ['sign', file], { encoding: 'utf8' });
  if (r.status !== 0) throw new TargetError(target, `rcodesign sign ${file} failed:\n${r.stderr || r.stdout}`);
  return 'ad-hoc signed by rcodesign';
}

// ---- tarballs -----------------------------------------------------------------------------------
/** The regular files of a .tgz: Map path (without "package/") -> { mode, data }. */
function readTarball(tgz) {
  const tar = gunzipSync(readFileSync(tgz));
  const files = new Map();
  let longName = null;
  for (let off = 0; off + 512 <= tar.length; ) {
    const header = tar.subarray(off, off + 512);
    if (header.every((x) => x === 0)) break;
    const str = (start, len) => header.toString('utf8', start, start + len).replace(/\0.*$/s, '');
    const size = parseInt(str(124, 12).trim() || '0', 8);
    const type = String.fromCharCode(header[156] || 0x30);
    const data = tar.subarray(off + 512, off + 512 + size);
    if (type === 'x') {
      longName = /\d+ path=([^\n]*)\n/.exec(data.toString('utf8'))?.[1] ?? null;
    } else {
      const name = longName ?? (str(345, 155) ? `${str(345, 155)}/${str(0, 100)}` : str(0, 100));
      longName = null;
      if (type === '0') files.set(name.replace(/^package\//, ''), { mode: parseInt(str(100, 8).trim(), 8), data });
    }
    off += 512 + Math.ceil(size / 512) * 512;
  }
  return files;
}

/** Checks one platform tarball's files in the tarball itself; returns the checks' descriptions. */
function checkPlatformTarball(target, tgz, nodeFile, exe) {
  const spec = TARGETS[target];
  const files = readTarball(tgz);
  const checked = [];
  for (const [name, wantKind] of [
    [nodeFile, 'library'],
    [exe, 'executable'],
  ]) {
    const entry = files.get(name);
    if (!entry) throw new TargetError(target, `${basename(tgz)} lacks ${name}`);
    let info;
    try {
      info = identify(entry.data);
    } catch (e) {
      throw new TargetError(target, `${name} in ${basename(tgz)}: ${e.message}`);
    }
    if (info.format !== spec.format || info.arch !== spec.arch || info.kind !== wantKind) {
      throw new TargetError(target, `${name} in ${basename(tgz)} is ${info.detail}, expected a ${spec.format} ${spec.arch} ${wantKind}`);
    }
    const notes = [info.detail];
    if (wantKind === 'executable') {
      if (!(entry.mode & 0o111)) throw new TargetError(target, `${name} in ${basename(tgz)} lost its run bit (mode ${entry.mode.toString(8)})`);
      notes.push(`mode ${entry.mode.toString(8)}`);
    }
    if (spec.format === 'macho') {
      try {
        notes.push(verifyCodeSignature(entry.data));
      } catch (e) {
        throw new TargetError(target, `${name} in ${basename(tgz)}: ${e.message}`);
      }
    }
    checked.push({ name, notes, data: entry.data });
  }
  return checked;
}

// A Windows DLL or EXE from the gnu build must need nothing beyond what Windows provides: mingw's runtime DLLs are not on users' machines.
const MINGW_RUNTIME = /^(libgcc_s|libwinpthread|libstdc\+\+|libssp)/i;

// ---- main ---------------------------------------------------------------------------------------
let targetDir;
let logDir;

async function main() {
  log(`targets: ${targets.join(', ')}`);
  // The cross toolchain, as check-targets sets it up (seconds when up to date).
  const setup = spawnSync(process.execPath, [join(root, 'scripts', 'setup-toolchains.mjs')], { cwd: root, stdio: 'inherit' });
  if (setup.status !== 0) fail('the cross toolchain could not be set up (see above)');
  const toolchain = JSON.parse(run(process.execPath, [join(root, 'scripts', 'setup-toolchains.mjs'), '--env']));
  targetDir = join(toolchain.cache, 'qvac-target');
  logDir = join(toolchain.cache, 'logs');

  const built = new Map();
  const failures = [];
  // This machine's own target, and the main package's dist/, by the ordinary build.
  {
    const started = Date.now();
    log(`${targets.includes(NATIVE) ? `${NATIVE} (native) and ` : ''}the main package: npm run build (napi build --platform --release, the runner, tsc, bundle)`);
    try {
      run('npm', ['run', '--silent', 'build']);
      const host = TARGETS[NATIVE];
      built.set(NATIVE, {
        node: join(root, `${pkg.napi.binaryName}.${host.id}.node`),
        exe: join(root, 'target', NATIVE, 'release', 'qvac-managed'),
        ms: Date.now() - started,
      });
      log(`${targets.includes(NATIVE) ? NATIVE : 'npm run build'}: built in ${secs(Date.now() - started)}`);
    } catch (e) {
      failures.push(new TargetError(NATIVE, e.message));
    }
  }
  for (const target of targets.filter((t) => t !== NATIVE)) {
    try {
      const out = await crossBuild(target, toolchain);
      for (const f of [out.node, out.exe]) if (!existsSync(f)) throw new TargetError(target, `the build wrote no ${f}`);
      built.set(target, out);
      log(`${target}: built in ${secs(out.ms)}`);
    } catch (e) {
      failures.push(e instanceof TargetError ? e : new TargetError(target, e.message));
      log(`${target}: BUILD FAILED (going on with the other targets)`);
    }
  }
  if (failures.length) {
    for (const e of failures) console.error(`\n${e.message}`);
    fail(`could not build ${failures.map((e) => e.target).join(', ')}; artifacts/ left as it was`);
  }

  // Staged copies of npm/<id>/ (the repo's platform dirs never hold another target's binaries);
  // darwin files are signed there, never in the cargo target dir.
  const staged = [];
  for (const target of targets) {
    const spec = TARGETS[target];
    const { node, exe: builtExe } = built.get(target);
    const nodeFile = `${pkg.napi.binaryName}.${spec.id}.node`;
    const exe = spec.format === 'pe' ? 'qvac-managed.exe' : 'qvac-managed';
    const stage = mkdtempSync(join(tmpdir(), `qvac-managed-${spec.id}-`));
    process.on('exit', () => rmSync(stage, { recursive: true, force: true }));
    for (const f of ['package.json', 'README.md']) cpSync(join(root, 'npm', spec.id, f), join(stage, f));
    copyFileSync(node, join(stage, nodeFile));
    copyFileSync(builtExe, join(stage, exe));
    chmodSync(join(stage, nodeFile), 0o755);
    chmodSync(join(stage, exe), 0o755);
    const signing = [];
    if (spec.format === 'macho') {
      for (const f of [nodeFile, exe]) signing.push(`${f}: ${await signIfUnsigned(join(stage, f), target, toolchain)}`);
    }
    staged.push({ target, spec, stage, nodeFile, exe, signing });
  }

  // Packed and checked in a temp dir, moved to artifacts/ only when every tarball passed.
  const packDir = mkdtempSync(join(tmpdir(), 'qvac-managed-tarballs-'));
  process.on('exit', () => rmSync(packDir, { recursive: true, force: true }));
  const rows = [];
  for (const { target, spec, stage, nodeFile, exe, signing } of staged) {
    const packed = npmPack(stage, packDir);
    const tgz = join(packDir, packed.filename);
    const listed = new Map(packed.files.map((f) => [f.path, f]));
    for (const want of [nodeFile, exe]) if (!listed.has(want)) throw new TargetError(target, `${packed.filename} lacks ${want}`);
    if (!(listed.get(exe).mode & 0o111)) throw new TargetError(target, `${packed.filename}: npm pack reports ${exe} without its run bit`);
    const checked = checkPlatformTarball(target, tgz, nodeFile, exe);
    if (spec.format === 'pe') {
      for (const c of checked) {
        const tmp = join(stage, `check-${c.name}`);
        writeFileSync(tmp, c.data);
        const dlls = [...new Map(peImports(tmp, target).map((d) => [d.toLowerCase(), d])).values()];
        const runtime = dlls.filter((d) => MINGW_RUNTIME.test(d));
        if (runtime.length) throw new TargetError(target, `${c.name} imports mingw runtime DLLs (${runtime.join(', ')}), which Windows machines lack`);
        // Node-API is looked up in the running executable (napi-sys dyn-symbols, src/host/windows.rs),
        // so the addon loads in bare.exe as in node.exe: an import from node.exe would tie it to Node.
        if (c.name === nodeFile && dlls.some((d) => d.toLowerCase() === 'node.exe')) throw new TargetError(target, `${c.name} imports from node.exe: Node-API must be looked up in the host executable (src/host/windows.rs)`);
        c.notes.push(`imports ${dlls.join(' ')}`);
      }
    }
    log(`${target}: ${packed.filename}${spec.buildAs ? ` (from the ${spec.buildAs} build: the MSVC SDK cannot be had here; a Node-API addon is C ABI, so the gnu DLL loads in Node for Windows)` : ''}`);
    for (const s of signing) log(`  ${s}`);
    for (const c of checked) log(`  ${c.name}: ${c.notes.join(', ')}`);
    const summary = (c) =>
      [c.name.endsWith('.node') ? '.node' : 'bin', c.notes[0], spec.format === 'macho' ? 'sig ok' : null, spec.format === 'pe' ? 'imports ok' : null, c.name === exe ? '+x' : null]
        .filter(Boolean)
        .join(' ');
    rows.push({
      target: spec.buildAs ? `${target} (${spec.buildAs} build)` : target,
      id: spec.id,
      tarball: packed.filename,
      size: `${(packed.size / 1024).toFixed(0)} KiB`,
      formats: checked.map(summary).join('; '),
    });
  }

  const mainPacked = npmPack(stageMainPackage(), packDir);
  checkMainPackage(mainPacked);
  rmSync(artifacts, { recursive: true, force: true });
  mkdirSync(artifacts, { recursive: true });
  for (const f of readdirSync(packDir)) copyFileSync(join(packDir, f), join(artifacts, f));
  rows.push({ target: '(main package)', id: '-', tarball: mainPacked.filename, size: `${(mainPacked.size / 1024).toFixed(0)} KiB`, formats: `${mainPacked.entryCount} files, dist/ bin/ index.js` });

  const cols = ['target', 'id', 'tarball', 'size', 'formats'];
  const heads = { target: 'target', id: 'platform id', tarball: 'tarball (artifacts/)', size: 'size', formats: 'formats checked (in the tarball)' };
  const width = Object.fromEntries(cols.map((c) => [c, Math.max(heads[c].length, ...rows.map((r) => r[c].length))]));
  const line = (r) => cols.map((c) => (c === 'formats' ? r[c] : r[c].padEnd(width[c]))).join('  ');
  console.log(`\n${line(heads)}\n${cols.map((c) => '-'.repeat(c === 'formats' ? heads[c].length : width[c])).join('  ')}`);
  for (const r of rows) console.log(line(r));
  console.log(`\npack-targets: ok, ${rows.length} tarballs in artifacts/ (${secs(Date.now() - t0)})`);
}

main().catch((e) => {
  if (!(e instanceof TargetError)) console.error(e);
  fail(`${e.message}\n(artifacts/ left as it was)`);
});
