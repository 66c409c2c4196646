// The linux-arm64 lane of `npm test`, run on this Linux x64 machine under qemu-user:
//   1. build the aarch64 addon and `qvac-managed` binary (release, Debian's rustc-web with
//      -Zbuild-std, into the toolchain cache's target dir that check-targets and pack-targets use);
//   2. `cargo test -p qvac-managed-core -p qvac-managed-cli` for aarch64-unknown-linux-gnu, each
//      test binary run by qemu-aarch64-static (cargo's target runner);
//   3. every __test__/*.test.mjs under Node 22 for linux-arm64, from a staged copy of the package
//      (package.json, README.md, index.js, dist/, bin/, scripts/, __test__/, the aarch64 addon at the
//      root and the binary in npm/linux-arm64-gnu/), so nothing of aarch64 lands in the clone and the
//      native suites of the same checkout are undisturbed. Every process of the suite is aarch64:
//      Node, the runner, the fake serves, the upstream package's processes (node_modules/node there
//      is the aarch64 Node).
// Node 22 is the only aarch64 runtime here (no aarch64 Node 20 or Bun is installed); the fault
// suite and the installed-tarball suite run natively only.
//
// Needs `npm run setup:toolchains` (run here first, as scripts/check-targets.mjs does; as root it
// registers qemu-aarch64 with binfmt_misc so aarch64 programs can spawn aarch64 programs).
//   node scripts/test-arm64.mjs [--only=build,cargo,node] [--files=<name>[,<name>...]] [--strict] [--keep]
//     --strict  every test must pass, also those listed in EXPECTED_UNDER_QEMU below
//
// qemu-user is not an arm64 machine. Each difference that bites is proven by a probe on every run
// (an aarch64 C program) and then either worked around here or named as an expected failure; the
// lane prints both lists. The workarounds (see the shims below):
// - binfmt_misc hands every aarch64 ELF to qemu-aarch64-static (a kernel setting, made by the setup
//   script); QEMU_LD_PREFIX=/usr/aarch64-linux-gnu is in every process's environment, because the
//   aarch64 loader and libc live there (on arm64 they are in /lib).
// - posix_spawn cannot report exec errors under qemu (it emulates vfork with fork); a preloaded shim
//   makes Rust's std take its fork+exec path, which reports them through its own pipe. The only shim.
// What qemu gets wrong that the product copes with itself (no shim; the probe shows it on every run):
// - /proc/self/stat and /proc/<own pid>/stat: qemu answers them itself, wrongly; the product reads
//   its own identity from /proc/<pid>/task/<pid>/stat, which qemu passes to the kernel
//   (crates/core/src/platform/linux.rs; crates/core/tests/identity_across_processes.rs proves it).
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, closeSync, copyFileSync, cpSync, existsSync, linkSync, mkdirSync, mkdtempSync, openSync, readFileSync, readdirSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { delimiter, dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const TARGET = 'aarch64-unknown-linux-gnu';
const PLATFORM_ID = 'linux-arm64-gnu';
const LIB_NAME = 'qvac_managed_node'; // the root crate's cdylib
const PARTS = ['build', 'cargo', 'node'];
// Read by __test__/managed-options.test.mjs through scripts/gen-catalog.mjs --check.
const CATALOG_DATA = 'crates/core/src/managed/catalog/data.rs';

const t0 = Date.now();
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
const log = (msg) => console.log(`[test-arm64 ${secs(Date.now() - t0).padStart(7)}] ${msg}`);
class LaneError extends Error {}
const fail = (msg) => {
  throw new LaneError(msg);
};

// ---- arguments ----------------------------------------------------------------------------------
let only = PARTS;
let files = null;
let keep = false;
let strict = false;
for (const arg of process.argv.slice(2)) {
  if (arg.startsWith('--only=')) only = arg.slice('--only='.length).split(',').filter(Boolean);
  else if (arg.startsWith('--files=')) files = arg.slice('--files='.length).split(',').filter(Boolean);
  else if (arg === '--keep') keep = true;
  else if (arg === '--strict') strict = true;
  else {
    console.error(`test-arm64: unknown argument ${arg} (use --only=${PARTS.join(',')}, --files=<test file names>, --strict, --keep)`);
    process.exit(2);
  }
}
for (const p of only) {
  if (!PARTS.includes(p)) {
    console.error(`test-arm64: --only: unknown part ${p} (${PARTS.join(', ')})`);
    process.exit(2);
  }
}

// ---- tests that cannot pass under this emulation ------------------------------------------------
// Each is run like every other test; its failure is accepted only when it fails with the symptom
// named here and, for a qemu limitation, when this run's probe shows that limitation. Any other
// failure, or one of these failing otherwise, fails the lane. `--strict` accepts none of them.
const EXPECTED_UNDER_QEMU = [
  {
    file: 'managed-serve.test.mjs',
    name: 'a serve that daemonizes (new session, leader exits): the daemon is stopped, not left listening',
    error: /timed out waiting for the daemonized serve stopped by the runner/,
    applies: (q) => q.subreaper !== 'ok',
    why: (q) =>
      `qemu-user ${q.qemu} refuses prctl(PR_SET_CHILD_SUBREAPER) (${q.subreaper}; linux-user's do_prctl lists it as TODO, later qemu passes it through), ` +
      'so the runner is no subreaper (it logs a warning) and the daemon is re-parented to init instead of to it',
  },
  {
    file: 'managed-serve.test.mjs',
    name: 'consumers waiting on the lock while a runner exits: one start, every consumer served (many rounds)',
    error: /a fresh serve, not the reaped one/,
    applies: (q) => q.nodeImportMs > 500,
    why: (q) =>
      `emulation speed (${q.nodeImportMs} ms to start Node and load the package): the test releases its waiters once the record is gone, but the runner ` +
      're-checks consumers just after removing the record (lifecycle.rs try_reap), and a waiter whose marker lands in that gap keeps the live serve — ' +
      "the documented outcome of an attach at the idle deadline, which this assertion does not allow; under qemu the gap is wide enough (3 of 4 runs on 2026-12-07; " +
      'never natively). The assertions before it (no errors, one serve for all waiters) held',
  },
  {
    file: 'pid-lock.test.mjs',
    name: '50 racers over one stale lock: exactly one owner, and a live owner is never taken',
    error: /lock-racer\.mjs: no matching event within 60000 ms/,
    applies: (q) => q.nodeImportMs > 500,
    why: (q) =>
      `emulation speed: 50 aarch64 Node processes that each need about ${q.nodeImportMs} ms here to start and load the package ` +
      "(about 100 ms natively) share this machine's 2 cores, and not all are ready within the test's 60 s; passes on some runs",
  },
];

// ---- the toolchain ------------------------------------------------------------------------------
function toolchain() {
  if (process.platform !== 'linux' || process.arch !== 'x64') fail(`the qemu lane runs on Linux x64 only (this is ${process.platform}-${process.arch})`);
  const setup = spawnSync(process.execPath, [join(root, 'scripts', 'setup-toolchains.mjs')], { cwd: root, stdio: 'inherit' });
  const fix = 'Run `npm run setup:toolchains` (as root: it apt-installs qemu-user-static and the aarch64 gcc, and registers qemu-aarch64 with binfmt_misc), then re-run.';
  if (setup.status !== 0) fail(`the cross toolchain could not be set up (see above). ${fix}`);
  const env = JSON.parse(spawnSync(process.execPath, [join(root, 'scripts', 'setup-toolchains.mjs'), '--env'], { cwd: root, encoding: 'utf8' }).stdout);
  const spec = env.targets?.[TARGET];
  if (!spec?.cargoArgs) fail(`scripts/setup-toolchains.mjs has no ${TARGET} environment. ${fix}`);
  const node = env.node?.linuxArm64;
  const cc = spec.env.CC_aarch64_unknown_linux_gnu ?? 'aarch64-linux-gnu-gcc';
  const missing = [
    [node, 'Node for linux-arm64'],
    ['/usr/bin/qemu-aarch64-static', 'qemu-aarch64-static (qemu-user-static)'],
    [join(spec.env.QEMU_LD_PREFIX ?? '/nonexistent', 'lib', 'ld-linux-aarch64.so.1'), 'the aarch64 loader (libc6-dev-arm64-cross)'],
  ].filter(([file]) => !file || !existsSync(file));
  if (spawnSync(cc, ['--version']).status !== 0) missing.push([cc, 'the aarch64 C compiler (gcc-aarch64-linux-gnu)']);
  if (spawnSync('gcc', ['--version']).status !== 0) missing.push(['gcc', "this machine's C compiler"]);
  if (missing.length) fail(`missing: ${missing.map(([file, what]) => `${what} (${file})`).join(', ')}. ${fix}`);
  const binfmt = binfmtEntry();
  if (!binfmt) {
    fail(
      'no enabled binfmt_misc entry runs aarch64 executables, so an aarch64 process cannot spawn another one ' +
        `(the suite spawns Node, the runner and serves). ${fix}`,
    );
  }
  const qemu = /version (\S+)/.exec(spawnSync('/usr/bin/qemu-aarch64-static', ['--version'], { encoding: 'utf8' }).stdout)?.[1] ?? '?';
  return { env, spec, node, cc, binfmt, qemu, targetDir: join(env.cache, 'qvac-target') };
}

/** The enabled binfmt_misc entry for aarch64 ELF files (magic ...b700), as `<name>: <interpreter> (<flags>)`. */
function binfmtEntry() {
  const dir = '/proc/sys/fs/binfmt_misc';
  let names = [];
  try {
    names = readdirSync(dir).filter((n) => n !== 'register' && n !== 'status');
  } catch {
    return null;
  }
  for (const name of names) {
    let text = '';
    try {
      text = readFileSync(join(dir, name), 'utf8');
    } catch {
      continue;
    }
    if (/^magic 7f454c460201010000000000000000000200b700$/m.test(text) && /^enabled$/m.test(text)) {
      return `${name}: ${/^interpreter (.*)$/m.exec(text)?.[1]} (flags ${/^flags: ?(.*)$/m.exec(text)?.[1] ?? ''})`;
    }
  }
  return null;
}

/** Cargo's environment for the aarch64 target. */
function cargoEnv(tc) {
  return {
    ...process.env,
    ...tc.env.common,
    ...tc.spec.env,
    PATH: [...tc.env.pathPrepend, process.env.PATH].join(delimiter),
    CARGO_TARGET_DIR: tc.targetDir,
    CARGO_TERM_COLOR: 'never',
  };
}

/** Runs a command with its output in `logPath` and a progress line every 30 s; resolves { ok, ms, log }. */
function runLogged(what, cmd, args, { env, cwd = root, logPath }) {
  const fd = openSync(logPath, 'w');
  writeFileSync(fd, `$ ${cmd} ${args.join(' ')}\n`);
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, stdio: ['ignore', fd, fd] });
    const beat = setInterval(() => log(`  ... ${what} still running (${secs(Date.now() - started)}; log: ${logPath})`), 30000);
    const done = (ok, why) => {
      clearInterval(beat);
      closeSync(fd);
      resolve({ ok, why, ms: Date.now() - started, log: readFileSync(logPath, 'utf8') });
    };
    child.on('error', (e) => done(false, `could not start (${e.message})`));
    child.on('exit', (code, signal) => done(code === 0, code === 0 ? '' : signal ?? `exit ${code}`));
  });
}

/** Runs a command with its output on ours; resolves { ok, ms }. */
function runInherit(cmd, args, { env, cwd = root }) {
  const started = Date.now();
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd, env, stdio: 'inherit' });
    child.on('error', (e) => resolve({ ok: false, why: `could not start (${e.message})`, ms: Date.now() - started }));
    child.on('exit', (code, signal) => resolve({ ok: code === 0, why: code === 0 ? '' : signal ?? `exit ${code}`, ms: Date.now() - started }));
  });
}

const tail = (text, n = 40) => text.split('\n').slice(-n).join('\n');

/** ELF e_machine of `file` (183 = aarch64), or null if it is not an ELF file. */
function elfMachine(file) {
  const b = readFileSync(file);
  if (b.readUInt32BE(0) !== 0x7f454c46) return null;
  return b.readUInt16LE(18);
}

// ---- qemu-user: probes and shims ----------------------------------------------------------------
// An aarch64 program that asks what this lane depends on. Under qemu-user (7.2 here):
// - /proc/self/stat and /proc/<own pid>/stat are answered by qemu itself (linux-user's
//   open_self_stat): state "0", process group 0, and as start time the calling *thread's* creation
//   (a forked child: its parent's start), where the kernel gives every thread the process's start.
//   The code proves identities by that start time (PidLock's start=, a record's runner, consumer
//   markers), so it never reads its own through those paths: it reads /proc/<pid>/task/<pid>/stat,
//   which qemu passes to the kernel. The probe still reports the difference (no shim covers it).
// - prctl(PR_SET_CHILD_SUBREAPER) fails with EINVAL.
// - posix_spawn of a missing program returns 0 and the child exits 127: qemu runs clone(CLONE_VFORK)
//   as a fork, so glibc's child cannot hand the exec error back (rust-lang/rust#90825).
const PROBE_C = `#define _GNU_SOURCE
#include <errno.h>
#include <gnu/libc-version.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>
extern char **environ;

struct stat_fields { char state; long pgrp; unsigned long long start; };
static struct stat_fields parse(const char *text) {
  struct stat_fields f = { '?', -1, 0 };
  const char *p = strrchr(text, ')');
  long ppid;
  if (p) sscanf(p + 2, "%c %ld %ld %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %*s %llu", &f.state, &ppid, &f.pgrp, &f.start);
  return f;
}
static void *own_stat(void *out) {
  char text[2048] = "";
  FILE *f = fopen("/proc/self/stat", "r");
  if (f) { size_t n = fread(text, 1, sizeof text - 1, f); text[n] = 0; fclose(f); }
  *(struct stat_fields *)out = parse(text);
  return NULL;
}
int main(void) {
  usleep(300000); /* a thread made now starts well after the process */
  struct stat_fields own;
  pthread_t thread;
  pthread_create(&thread, NULL, own_stat, &own);
  pthread_join(thread, NULL);
  char cmd[64], text[2048] = "";
  snprintf(cmd, sizeof cmd, "/bin/cat /proc/%d/stat", (int)getpid()); /* a native program: the kernel's answer */
  FILE *cat = popen(cmd, "r");
  if (cat) { size_t n = fread(text, 1, sizeof text - 1, cat); text[n] = 0; pclose(cat); }
  struct stat_fields kernel = parse(text);
  const char *subreaper = prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 ? "ok" : strerrorname_np(errno);
  pid_t pid;
  char *argv[] = { "/nonexistent/qvac-managed-probe", NULL };
  int spawned = posix_spawn(&pid, argv[0], NULL, NULL, argv, environ);
  int status = 0;
  if (spawned == 0) waitpid(pid, &status, 0);
  printf("{\\"own\\":{\\"state\\":\\"%c\\",\\"pgrp\\":%ld,\\"start\\":%llu},\\"kernel\\":{\\"state\\":\\"%c\\",\\"pgrp\\":%ld,\\"start\\":%llu},"
         "\\"subreaper\\":\\"%s\\",\\"posixSpawnMissing\\":\\"%s\\",\\"glibc\\":\\"%s\\"}\\n",
         own.state, own.pgrp, own.start, kernel.state, kernel.pgrp, kernel.start, subreaper,
         spawned ? strerrorname_np(spawned) : (WIFEXITED(status) ? "0, child exited 127" : "0"), gnu_get_libc_version());
  return 0;
}
`;

// The one shim left, because qemu cannot do it and the product should not work around it: preloaded
// when the probe shows posix_spawn unable to report exec errors. Rust's std uses
// posix_spawn only on glibc >= 2.24 (the first whose posix_spawn reports ENOENT), which it asks
// gnu_get_libc_version(); answering 2.23 sends it down its fork+exec path, whose child writes the
// exec error into a close-on-exec pipe, and that works under qemu. (Node's libuv never uses
// posix_spawn on Linux.) Nothing else in these processes asks for the glibc version but Node's
// process.report, whose answer only tells glibc from musl.
const SPAWN_SHIM_C = `// scripts/test-arm64.mjs: Rust's std then spawns with fork+exec, not posix_spawn (whose
// exec errors are lost under qemu-user).
const char *gnu_get_libc_version(void) { return "2.23"; }
`;

const SHIMS = {
  spawn: { file: 'libqvac-qemu-spawn.so', source: SPAWN_SHIM_C, libs: [] },
};

/**
 * Builds the probe and the shims into `<dir>/qemu/`: each shim for aarch64 into lib/aarch64-linux-gnu/
 * and as an empty library of the same name into lib/x86_64-linux-gnu/. LD_PRELOAD names them by
 * `$LIB`, which the aarch64 loader expands to the first and this machine's loader (for the native
 * programs the tests run: sh, sleep, cat) to the second, so neither complains.
 */
function buildQemuAids(dir, cc) {
  const base = join(dir, 'qemu');
  const aarch64 = join(base, 'lib', 'aarch64-linux-gnu');
  const native = join(base, 'lib', 'x86_64-linux-gnu');
  mkdirSync(aarch64, { recursive: true });
  mkdirSync(native, { recursive: true });
  const compile = (compiler, args) => {
    const r = spawnSync(compiler, ['-O2', '-Wall', '-Werror', ...args], { encoding: 'utf8' });
    if (r.status !== 0) fail(`${compiler} ${args.join(' ')} failed:\n${r.stderr || r.error?.message}`);
  };
  writeFileSync(join(base, 'probe.c'), PROBE_C);
  compile(cc, ['-o', join(base, 'probe'), join(base, 'probe.c'), '-lpthread']);
  writeFileSync(join(base, 'empty.c'), '');
  for (const shim of Object.values(SHIMS)) {
    const src = join(base, shim.file.replace(/\.so$/, '.c'));
    writeFileSync(src, shim.source);
    compile(cc, ['-shared', '-fPIC', '-o', join(aarch64, shim.file), src, ...shim.libs]);
    compile('gcc', ['-shared', '-fPIC', '-o', join(native, shim.file), join(base, 'empty.c')]);
  }
  return { probe: join(base, 'probe'), preload: (names) => names.map((n) => join(base, '$LIB', SHIMS[n].file)).join(' ') };
}

function runProbe(aids, env) {
  const r = spawnSync(aids.probe, [], { env, encoding: 'utf8', timeout: 60000 });
  if (r.status !== 0 || r.stderr) fail(`the qemu probe failed (exit ${r.status ?? r.signal}; LD_PRELOAD=${env.LD_PRELOAD ?? ''}):\n${r.stderr}${r.stdout}`);
  const p = JSON.parse(r.stdout);
  // The state is read at two moments (R running, S waiting): a letter is what counts.
  p.selfStatTrue = /^[A-Z]$/.test(p.own.state) && p.own.pgrp === p.kernel.pgrp && p.own.start === p.kernel.start;
  p.spawnReports = p.posixSpawnMissing === 'ENOENT';
  return p;
}

/** Wall time of `node <args>` under qemu, the median of three runs. */
function nodeMs(node, env, args, cwd) {
  const runs = [0, 1, 2].map(() => {
    const started = Date.now();
    const r = spawnSync(node, args, { env, cwd, encoding: 'utf8', timeout: 120000 });
    if (r.status !== 0) fail(`aarch64 Node failed (${args.join(' ')}): ${r.stderr}`);
    return Date.now() - started;
  });
  return runs.sort((a, b) => a - b)[1];
}

/**
 * Probes qemu-user, picks the shims this qemu needs and proves they work. Returns the LD_PRELOAD
 * value ('' for none), the facts, and the workarounds in words.
 */
function qemuQuirks(tc, aids, env) {
  const show = (f) => `state ${f.state}, pgrp ${f.pgrp}, start ${f.start}`;
  const bare = runProbe(aids, env);
  log(
    `qemu probe: own /proc/self/stat from a thread: ${show(bare.own)}; the kernel's: ${show(bare.kernel)}` +
      (bare.selfStatTrue ? '' : ' (qemu answers it itself; the product reads /proc/<pid>/task/<pid>/stat instead, so no shim)'),
  );
  log(`qemu probe: prctl(PR_SET_CHILD_SUBREAPER): ${bare.subreaper}; posix_spawn of a missing program: ${bare.posixSpawnMissing}`);
  const needed = bare.spawnReports ? [] : ['spawn'];
  const workarounds = [
    `binfmt_misc entry for aarch64 ELF (${tc.binfmt}), made by scripts/setup-toolchains.mjs as root: aarch64 processes spawn aarch64 processes`,
    `QEMU_LD_PREFIX=${tc.spec.env.QEMU_LD_PREFIX} in every process's environment: the aarch64 loader and libc are not in /lib here`,
  ];
  if (!needed.length) return { preload: '', probe: bare, workarounds };
  const preload = aids.preload(needed);
  const shimmed = runProbe(aids, { ...env, LD_PRELOAD: preload });
  log(`qemu probe with LD_PRELOAD=${preload}: glibc reported to Rust's std: ${shimmed.glibc}`);
  if (needed.includes('spawn')) {
    if (shimmed.glibc !== '2.23') fail(`the spawn shim is not in effect (gnu_get_libc_version() = ${shimmed.glibc})`);
    workarounds.push(
      `LD_PRELOAD ${SHIMS.spawn.file}: gnu_get_libc_version() answers 2.23, so Rust's std spawns with fork+exec instead of posix_spawn, ` +
        `whose exec errors qemu-user loses (posix_spawn of a missing program here: ${bare.posixSpawnMissing}; natively: ENOENT)`,
    );
  }
  const host = spawnSync('/bin/sh', ['-c', 'exec /bin/true'], { env: { ...env, LD_PRELOAD: preload }, encoding: 'utf8' });
  if (host.status !== 0 || host.stderr) fail(`native programs do not run cleanly with LD_PRELOAD=${preload}: ${host.stderr}`);
  return { preload, probe: bare, workarounds };
}

// ---- parts --------------------------------------------------------------------------------------
async function build(tc, logDir) {
  const args = ['build', '--release', '--locked', '-p', 'qvac-managed-node', '-p', 'qvac-managed-cli', ...tc.spec.cargoArgs];
  log(`build: cargo ${args.join(' ')}  (CARGO_TARGET_DIR=${tc.targetDir})`);
  const r = await runLogged('the aarch64 build', 'cargo', args, { env: cargoEnv(tc), logPath: join(logDir, 'arm64-build.log') });
  if (!r.ok) fail(`cargo build for ${TARGET} failed (${r.why}); last lines of ${join(logDir, 'arm64-build.log')}:\n${tail(r.log)}`);
  const compiled = (r.log.match(/^\s*Compiling /gm) || []).length;
  const out = join(tc.targetDir, TARGET, 'release');
  const artefacts = { addon: join(out, `lib${LIB_NAME}.so`), runner: join(out, 'qvac-managed') };
  for (const [what, file] of Object.entries(artefacts)) {
    if (!existsSync(file)) fail(`the build wrote no ${what} at ${file}`);
    if (elfMachine(file) !== 183) fail(`${file} is not an aarch64 ELF file (e_machine ${elfMachine(file)})`);
  }
  log(`build: ok in ${secs(r.ms)} (${compiled ? `${compiled} crates compiled` : 'up to date'}); ${artefacts.addon}, ${artefacts.runner}`);
  return { ...artefacts, ms: r.ms, compiled };
}

async function cargoTest(tc, logDir, quirks) {
  const args = ['test', '--locked', '--no-fail-fast', '-p', 'qvac-managed-core', '-p', 'qvac-managed-cli', ...tc.spec.cargoArgs];
  const env = cargoEnv(tc);
  // The shims go to the aarch64 test binaries only: qemu puts QEMU_SET_ENV into its guest's
  // environment, so cargo and rustc never see them.
  if (quirks.preload) env.QEMU_SET_ENV = `LD_PRELOAD=${quirks.preload}`;
  log(`cargo: cargo ${args.join(' ')}  (runner: ${tc.spec.env.CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER}${quirks.preload ? `; QEMU_SET_ENV=${env.QEMU_SET_ENV}` : ''})`);
  const r = await runLogged('cargo test under qemu', 'cargo', args, { env, logPath: join(logDir, 'arm64-cargo-test.log') });
  const results = [...r.log.matchAll(/^test result: (\w+)\. (\d+) passed; (\d+) failed; (\d+) ignored/gm)];
  const sum = (i) => results.reduce((n, m) => n + Number(m[i]), 0);
  const failures = [...r.log.matchAll(/^test (\S+) \.\.\. FAILED$/gm)].map((m) => m[1]);
  const compiled = (r.log.match(/^\s*Compiling /gm) || []).length;
  const summary = `${sum(2)} passed, ${sum(3)} failed, ${sum(4)} ignored in ${results.length} test binaries${compiled ? ` (${compiled} crates compiled)` : ''}`;
  if (!r.ok) {
    console.log(tail(r.log, 80));
    log(`cargo: FAILED (${r.why}) in ${secs(r.ms)}: ${summary}${failures.length ? `; failed: ${failures.join(', ')}` : ''} (log: ${join(logDir, 'arm64-cargo-test.log')})`);
  } else {
    log(`cargo: ok in ${secs(r.ms)}: ${summary} (log: ${join(logDir, 'arm64-cargo-test.log')})`);
  }
  return { ok: r.ok, ms: r.ms, summary };
}

/** A copy of the package as a linux-arm64 checkout: the aarch64 addon at the root, the binary in npm/<id>/. */
function stage(tc, built, dir) {
  for (const need of ['dist/index.js', 'index.js']) {
    if (!existsSync(join(root, need))) fail(`${need} is missing: run \`npm install\` (or \`npm run build\`) first`);
  }
  for (const entry of ['package.json', 'README.md', 'index.js', 'index.d.ts', 'dist', 'bin', '__test__', 'scripts', CATALOG_DATA]) {
    cpSync(join(root, entry), join(dir, entry), { recursive: true });
  }
  cpSync(built.addon, join(dir, `qvac-managed.${PLATFORM_ID}.node`));
  mkdirSync(join(dir, 'npm', PLATFORM_ID), { recursive: true });
  cpSync(join(root, 'npm', PLATFORM_ID, 'package.json'), join(dir, 'npm', PLATFORM_ID, 'package.json'));
  cpSync(built.runner, join(dir, 'npm', PLATFORM_ID, 'qvac-managed'));
  chmodSync(join(dir, 'npm', PLATFORM_ID, 'qvac-managed'), 0o755);
  // The checkout's dev dependencies (ai, the provider, @qvac/ai-sdk-provider, ...: plain JS), one
  // link each, but `node` (Node 22, which the tests use for the upstream package) is the aarch64
  // Node and no .bin/ (whose node and bun are x64).
  const modules = join(dir, 'node_modules');
  mkdirSync(modules);
  for (const name of readdirSync(join(root, 'node_modules'))) {
    if (name === '.bin' || name === 'node' || name === 'bun' || name.startsWith('.')) continue;
    symlinkSync(join(root, 'node_modules', name), join(modules, name), 'dir');
  }
  // The aarch64 Node itself lives in the stage too (a hard link where it can be): the toolchain
  // cache under root's home is out of reach of the tests' `nobody` processes.
  const nodeDir = join(modules, 'node');
  mkdirSync(join(nodeDir, 'bin'), { recursive: true });
  cpSync(join(dirname(dirname(tc.node)), 'package.json'), join(nodeDir, 'package.json'));
  const node = join(nodeDir, 'bin', 'node');
  try {
    linkSync(tc.node, node);
  } catch {
    copyFileSync(tc.node, node);
    chmodSync(node, 0o755);
  }
  return node;
}

/** The environment of the suite: the staged aarch64 Node first on PATH, nothing x64 of this checkout's npm run. */
function suiteEnv(tc, node) {
  const env = { ...process.env, QEMU_LD_PREFIX: tc.spec.env.QEMU_LD_PREFIX };
  env.PATH = [dirname(node), ...(process.env.PATH ?? '').split(delimiter).filter((d) => d && !d.includes('node_modules'))].join(delimiter);
  for (const key of Object.keys(env)) {
    // npm_node_execpath and NODE name the x64 Node; the overrides would bypass the staged layout.
    if (/^npm_/.test(key) || ['NODE', 'INIT_CWD', 'QVAC_MANAGED_RUNNER', 'NAPI_RS_NATIVE_LIBRARY_PATH', 'LD_PRELOAD', 'QEMU_SET_ENV'].includes(key)) delete env[key];
  }
  return env;
}

/** The failed leaf tests of a TAP report: { file, name, detail } (detail: the YAML block). */
function tapFailures(tap) {
  const failures = [];
  const lines = tap.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const m = /^(\s*)not ok \d+ - (.*?)(?: # (?:SKIP|TODO).*)?$/.exec(lines[i]);
    if (!m) continue;
    const detail = [];
    for (let j = i + 1; j < lines.length && !/^\s*\.\.\.$/.test(lines[j]); j++) detail.push(lines[j]);
    const text = detail.join('\n');
    if (/failureType: 'subtestsFailed'/.test(text)) continue; // a suite: its failed tests are listed themselves
    const location = /location: '([^']*?)(?::\d+:\d+)?'/.exec(text)?.[1] ?? '';
    failures.push({ file: location.split('/').pop(), name: m[2].replace(/\\#/g, '#').replace(/\\\\/g, '\\'), detail: text });
  }
  return failures;
}

async function nodeSuite(tc, built, quirks, workDir) {
  const dir = join(workDir, 'package');
  mkdirSync(dir);
  const node = stage(tc, built, dir);
  log(`node: staged the package as a ${PLATFORM_ID} checkout in ${dir}`);
  const env = suiteEnv(tc, node);
  if (quirks.preload) env.LD_PRELOAD = quirks.preload;
  // One probe first, so a broken emulation fails here with its own message, not as 300 tests.
  const probe = spawnSync(
    node,
    [
      '--input-type=module',
      '-e',
      "import { PidLock, resolveRunnerPath } from './dist/index.js'; import { execFileSync } from 'node:child_process'; " +
        "console.log(process.arch, typeof PidLock, execFileSync(resolveRunnerPath(), ['--version'], { encoding: 'utf8' }).trim(), resolveRunnerPath())",
    ],
    { cwd: dir, env, encoding: 'utf8', timeout: 120000 },
  );
  if (probe.status !== 0) fail(`the staged package does not load under aarch64 Node (exit ${probe.status ?? probe.signal}):\n${probe.stderr}${probe.stdout}`);
  log(`node: probe: ${probe.stdout.trim()} (Node ${spawnSync(node, ['-v'], { env, encoding: 'utf8' }).stdout.trim()}: addon loaded, runner ran)`);
  // What emulation costs, for the expected failures' reasons: Node's start, and a start that loads the package.
  quirks.probe.nodeBootMs = nodeMs(node, env, ['-e', '0'], dir);
  quirks.probe.nodeImportMs = nodeMs(node, env, ['--input-type=module', '-e', "await import('./dist/index.js')"], dir);
  log(`node: aarch64 Node under qemu: ${quirks.probe.nodeBootMs} ms to start, ${quirks.probe.nodeImportMs} ms to start and import the package (median of 3)`);

  const all = readdirSync(join(dir, '__test__')).filter((f) => f.endsWith('.test.mjs')).sort();
  const chosen = files ? all.filter((f) => files.some((want) => f === want || f === `${want}.test.mjs`)) : all;
  if (files && chosen.length !== files.length) fail(`--files: no such test file among ${all.join(', ')}`);
  const tapFile = join(workDir, 'node-test.tap');
  const args = [
    '--test',
    '--test-concurrency=1',
    '--test-reporter=spec',
    '--test-reporter-destination=stdout',
    '--test-reporter=tap',
    `--test-reporter-destination=${tapFile}`,
    ...chosen.map((f) => join('__test__', f)),
  ];
  log(`node: ${node} ${args.join(' ')}  (cwd ${dir})`);
  const r = await runInherit(node, args, { env, cwd: dir });
  const tap = existsSync(tapFile) ? readFileSync(tapFile, 'utf8') : '';
  const count = (k) => Number(new RegExp(`^# ${k} (\\d+)$`, 'm').exec(tap)?.[1] ?? 0);
  const failures = tapFailures(tap);
  const expected = [];
  const unexpected = [];
  for (const f of failures) {
    const known = EXPECTED_UNDER_QEMU.find((e) => e.file === f.file && e.name === f.name);
    if (!strict && known?.applies(quirks.probe) && known.error.test(f.detail)) expected.push({ ...f, why: known.why(quirks.probe) });
    else unexpected.push(f);
  }
  const passedAnyway = EXPECTED_UNDER_QEMU.filter((e) => chosen.includes(e.file) && !failures.some((f) => f.file === e.file && f.name === e.name));
  log(`node: ${count('tests')} tests: ${count('pass')} passed, ${count('fail')} failed, ${count('skipped')} skipped, ${count('cancelled')} cancelled in ${secs(r.ms)}`);
  for (const f of expected) log(`  expected under qemu: ${f.file}: "${f.name}": ${f.why}`);
  for (const e of passedAnyway) log(`  passed although listed as expected to fail under qemu: ${e.file}: "${e.name}"`);
  for (const f of unexpected) log(`  FAILED: ${f.file}: "${f.name}"`);
  // A runner that died, or failures the TAP report does not name, fail the lane too.
  const ok = unexpected.length === 0 && tap.length > 0 && (r.ok || failures.length > 0) && count('cancelled') === 0;
  log(`node: ${ok ? 'ok' : 'FAILED'}${r.ok ? '' : ` (node --test: ${r.why})`}`);
  return { ok, ms: r.ms, expected };
}

// ---- main ---------------------------------------------------------------------------------------
async function main() {
  const tc = toolchain();
  log(`toolchain: qemu-aarch64 ${tc.qemu}; Node ${tc.node}; binfmt_misc ${tc.binfmt}`);
  const logDir = join(tc.env.cache, 'logs');
  mkdirSync(logDir, { recursive: true });
  // Traversable: the permission tests run fixtures as nobody, from the staged package, with its Node and shims.
  const workDir = mkdtempSync(join(tmpdir(), 'qvac-managed-arm64-'));
  chmodSync(workDir, 0o755);
  const times = [];
  const failed = [];
  let quirks = null;
  try {
    const aids = buildQemuAids(workDir, tc.cc);
    quirks = qemuQuirks(tc, aids, { ...process.env, QEMU_LD_PREFIX: tc.spec.env.QEMU_LD_PREFIX });
    quirks.probe.qemu = tc.qemu;
    let built = null;
    if (only.includes('build') || only.includes('node')) {
      built = await build(tc, logDir);
      times.push([`build (${built.compiled ? `${built.compiled} crates` : 'up to date'})`, built.ms]);
    }
    if (only.includes('cargo')) {
      const r = await cargoTest(tc, logDir, quirks);
      times.push(['cargo test under qemu', r.ms]);
      if (!r.ok) failed.push('cargo');
    }
    if (only.includes('node')) {
      const r = await nodeSuite(tc, built, quirks, workDir);
      times.push(['node:test under aarch64 Node 22', r.ms]);
      if (!r.ok) failed.push('node');
    }
  } finally {
    if (keep) log(`work dir kept: ${workDir}`);
    else rmSync(workDir, { recursive: true, force: true });
  }
  log(`timings: ${times.map(([what, ms]) => `${what} ${secs(ms)}`).join(', ')}; total ${secs(Date.now() - t0)}`);
  log('what this lane does that an arm64 machine would not:');
  for (const w of quirks.workarounds) log(`  - ${w}`);
  log(failed.length ? `linux-arm64 under qemu: FAILED (${failed.join(', ')})` : 'linux-arm64 under qemu: ok');
  return failed.length ? 1 : 0;
}

main().then(
  (code) => process.exit(code),
  (e) => {
    if (e instanceof LaneError) console.error(`test-arm64: FAILED: ${e.message}`);
    else console.error(e);
    process.exit(1);
  },
);
