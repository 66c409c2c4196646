// Where this platform's native parts are: the addon (`.node`) and the `qvac-managed` binary,
// from an env override, the per-platform npm package, or a source checkout. CommonJS and loads
// nothing native unless `loadAddon()` is called, so the CLI shim (bin/qvac-managed.cjs) uses it
// cheaply; the library bundles it into dist/index.js (scripts/bundle.mjs).
import { existsSync, readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { basename, dirname, join, toNamespacedPath } from 'node:path';

import { NativeBinaryMissingError } from './error-base.cjs';

/** The package root (the directory holding package.json), from dist/. */
const packageRoot = join(__dirname, '..');

interface PackageFacts {
  name: string;
  version: string;
  /** `<os>-<arch>[-<abi>]` of every platform package the main package depends on. */
  supported: string[];
}

let facts: PackageFacts | undefined;
function packageFacts(): PackageFacts {
  if (facts) return facts;
  const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as {
    name: string;
    version: string;
    optionalDependencies?: Record<string, string>;
  };
  const prefix = `${pkg.name}-`;
  const supported = Object.keys(pkg.optionalDependencies ?? {})
    .filter((dep) => dep.startsWith(prefix))
    .map((dep) => dep.slice(prefix.length));
  facts = { name: pkg.name, version: pkg.version, supported };
  return facts;
}

/** What decides which platform package applies; defaults to this process. */
export interface HostFacts {
  platform?: NodeJS.Platform;
  arch?: string;
  /** Linux only: is the C library musl? Default: detected as napi-rs's generated loader does. */
  musl?: boolean;
}

/**
 * The platform id used in package and file names (`linux-x64-gnu`, `linux-x64-musl`,
 * `darwin-arm64`, `win32-x64-msvc`), as napi-rs names them.
 */
export function platformId(host: HostFacts = {}): string {
  const platform = host.platform ?? process.platform;
  const arch = host.arch ?? process.arch;
  if (platform === 'linux') return `linux-${arch}-${(host.musl ?? isMusl()) ? 'musl' : 'gnu'}`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

let muslCache: boolean | undefined;
/** musl or glibc, in the order napi-rs's generated `index.js` asks: ldd's text, the process report, `ldd --version`. */
export function isMusl(): boolean {
  if (process.platform !== 'linux') return false;
  if (muslCache !== undefined) return muslCache;
  muslCache = muslFromFilesystem() ?? muslFromReport() ?? muslFromChildProcess();
  return muslCache;
}

function muslFromFilesystem(): boolean | null {
  try {
    return readFileSync('/usr/bin/ldd', 'utf8').includes('musl');
  } catch {
    return null;
  }
}

function muslFromReport(): boolean | null {
  const report = process.report?.getReport?.() as
    | { header?: { glibcVersionRuntime?: string }; sharedObjects?: string[] }
    | undefined;
  if (!report) return null;
  if (report.header?.glibcVersionRuntime) return false;
  return (report.sharedObjects ?? []).some((f) => f.includes('libc.musl-') || f.includes('ld-musl-'));
}

function muslFromChildProcess(): boolean {
  try {
    // Loaded only here, the last resort: child_process costs milliseconds to load.
    const { execSync } = require('node:child_process') as typeof import('node:child_process');
    return execSync('ldd --version', { encoding: 'utf8' }).includes('musl');
  } catch {
    return false;
  }
}

/** The per-platform package's name, e.g. `qvac-managed-linux-x64-gnu`. */
export function platformPackageName(id: string = platformId()): string {
  return `${packageFacts().name}-${id}`;
}

/**
 * Electron: files inside `app.asar` cannot be executed; electron-builder's `asarUnpack` puts
 * them beside it in `app.asar.unpacked`, at the same relative path. Either separator is
 * recognised (Windows paths use backslashes, and may mix in forward slashes), and kept as given.
 */
export function asarUnpackedPath(path: string): string {
  return path.replace(/([\\/])app\.asar([\\/])/, '$1app.asar.unpacked$2');
}

/** Where to look, for tests and tools; defaults to this process and this installed package. */
export interface RunnerLookup extends HostFacts {
  /** Environment to read `QVAC_MANAGED_RUNNER` from (default `process.env`). */
  env?: Record<string, string | undefined>;
  /** The package root the lookup starts from (default: this package's root). */
  root?: string;
}

/**
 * The `qvac-managed` binary (runner and CLI) for this platform: `QVAC_MANAGED_RUNNER`, else the
 * platform package `qvac-managed-<platform>` (found by resolving its package.json from this
 * package), else `npm/<platform>/` of a source checkout. A path inside `app.asar` is mapped to
 * `app.asar.unpacked`. Throws `NativeBinaryMissingError` (NATIVE_BINARY_MISSING) naming the
 * platform, the package looked for and the fix.
 */
export function resolveRunner(lookup: RunnerLookup = {}): string {
  const env = lookup.env ?? process.env;
  const root = lookup.root ?? packageRoot;
  const override = env['QVAC_MANAGED_RUNNER'];
  if (override) {
    if (!existsSync(override)) {
      throw new NativeBinaryMissingError(
        `QVAC_MANAGED_RUNNER points at ${override}, which does not exist. Point it at a qvac-managed binary, or unset it to use the one from the platform package.`,
        { platform: platformId(lookup), packageName: platformPackageName(platformId(lookup)), supported: packageFacts().supported }
      );
    }
    return asarUnpackedPath(override);
  }
  const id = platformId(lookup);
  const exe = (lookup.platform ?? process.platform) === 'win32' ? 'qvac-managed.exe' : 'qvac-managed';
  const packageName = platformPackageName(id);
  const looked: string[] = [];
  const packageDir = resolvePackageDir(packageName, root);
  if (packageDir) looked.push(join(packageDir, exe));
  // A source checkout (npm/ is not in the published package).
  if (existsSync(join(root, 'npm'))) looked.push(join(root, 'npm', id, exe));
  const candidates = looked.map(asarUnpackedPath);
  const found = candidates.find((candidate) => existsSync(candidate));
  if (found) return found;
  throw missing(id, packageName, 'the qvac-managed binary', candidates);
}

/**
 * Throws NATIVE_BINARY_MISSING unless the addon napi-rs's loader would look for is there: the
 * checkout's `qvac-managed.<platform>.node` or the platform package. `loadAddon` makes this check
 * before it loads, so a user gets the fix instead of "Cannot find native binding".
 */
export function assertAddonInstalled(lookup: RunnerLookup = {}): void {
  findAddon(lookup);
}

/**
 * Loads the native addon the way napi-rs's generated loader (the package root's index.js) does for
 * the targets this package builds, looking once: `NAPI_RS_NATIVE_LIBRARY_PATH` (resolved from the
 * package root), else the checkout's `qvac-managed.<platform>.node`, else the platform package's
 * (its version checked when `NAPI_RS_ENFORCE_VERSION_CHECK` is set). Neither there: throws
 * NATIVE_BINARY_MISSING (see `assertAddonInstalled`). One that is there but fails to load throws
 * the generated loader's "Cannot find native binding" error with the reason as its cause. The
 * library loads the addon through this function only (dist/index.js bundles it).
 */
export function loadAddon(lookup: RunnerLookup = {}): unknown {
  const env = lookup.env ?? process.env;
  const { file, packageDir, override } = findAddon(lookup);
  try {
    const enforce = env['NAPI_RS_ENFORCE_VERSION_CHECK'];
    if (packageDir && enforce && enforce !== '0') {
      const expected = packageFacts().version;
      const { version } = JSON.parse(readFileSync(join(packageDir, 'package.json'), 'utf8')) as { version: string };
      if (version !== expected) {
        throw new Error(`Native binding package version mismatch, expected ${expected} but got ${version}. You can reinstall dependencies to fix this issue.`);
      }
    }
    // The override is a module request, resolved as `require` resolves it; a file we found is
    // loaded as `require` loads a `.node` file, without the module loader.
    if (override) return requireFrom(lookup.root ?? packageRoot)(file);
    const loaded = loadedAddons();
    if (!loaded.has(file)) {
      const addonModule = { exports: {} };
      process.dlopen(addonModule, toNamespacedPath(file));
      loaded.set(file, addonModule.exports);
    }
    return loaded.get(file);
  } catch (cause) {
    throw new Error(
      'Cannot find native binding. npm has a bug related to optional dependencies (https://github.com/npm/cli/issues/4828). ' +
        'Please try `npm i` again after removing both package-lock.json and node_modules directory.',
      { cause }
    );
  }
}

/** The addon to load (and the platform package holding it, if one does); NATIVE_BINARY_MISSING if none. */
function findAddon(lookup: RunnerLookup): { file: string; packageDir: string | null; override: boolean } {
  const env = lookup.env ?? process.env;
  const override = env['NAPI_RS_NATIVE_LIBRARY_PATH'];
  if (override) return { file: override, packageDir: null, override: true };
  const root = lookup.root ?? packageRoot;
  const id = platformId(lookup);
  const local = join(root, `qvac-managed.${id}.node`);
  if (existsSync(local)) return { file: local, packageDir: null, override: false };
  const packageName = platformPackageName(id);
  const packageDir = resolvePackageDir(packageName, root);
  if (!packageDir) throw missing(id, packageName, 'the native addon');
  return { file: join(packageDir, `qvac-managed.${id}.node`), packageDir, override: false };
}

const requireFrom = (root: string): NodeJS.Require => createRequire(join(root, 'package.json'));

/**
 * The addons loaded in this realm (this thread), by file: this module evaluated again (a test
 * runner's fresh module registry, an import under a second URL) gets the same exports back, as
 * `require`'s cache would give, instead of registering the addon a second time.
 */
function loadedAddons(): Map<string, unknown> {
  const realm = globalThis as unknown as Record<symbol, Map<string, unknown> | undefined>;
  return (realm[Symbol.for('qvac-managed.loaded-addons')] ??= new Map());
}

/** This package's own lookups, made once: the addon's at import, then every ensureServe's runner. */
const ownPackageDirs = new Map<string, string | null>();

/**
 * Where `require.resolve` from `root` finds the package `packageName`. Its first two candidates
 * are looked at directly, without the module loader (the addon's lookup is on every app's start-up
 * path): a copy nested in `root/node_modules`, then a sibling in the `node_modules` directory
 * `root` sits in (npm's and pnpm's layouts). Anything else goes through Node's own resolution.
 */
function resolvePackageDir(packageName: string, root: string): string | null {
  const own = root === packageRoot;
  const known = own ? ownPackageDirs.get(packageName) : undefined;
  if (known !== undefined) return known;
  const parent = dirname(root);
  const direct = [join(root, 'node_modules', packageName), ...(basename(parent) === 'node_modules' ? [join(parent, packageName)] : [])];
  let dir = direct.find((candidate) => existsSync(join(candidate, 'package.json'))) ?? null;
  if (dir === null) {
    try {
      dir = dirname(requireFrom(root).resolve(`${packageName}/package.json`));
    } catch {
      // not installed: null
    }
  }
  if (own) ownPackageDirs.set(packageName, dir);
  return dir;
}

function missing(id: string, packageName: string, what: string, looked: string[] = []): NativeBinaryMissingError {
  const { name, version, supported } = packageFacts();
  const fix = supported.includes(id)
    ? `Install it with \`npm install ${packageName}@${version}\` (or reinstall ${name} without --omit=optional / --no-optional: npm installs the package for your platform as an optional dependency).`
    : `${name} ships no prebuilt binary for ${id}; build it from source (git clone, then \`npm install\`, which needs Rust) and set QVAC_MANAGED_RUNNER and NAPI_RS_NATIVE_LIBRARY_PATH to what it built.`;
  return new NativeBinaryMissingError(
    `${name}: ${what} for ${id} is missing: the package ${packageName} is not installed` +
      `${looked.length ? ` (looked in ${looked.join(', ')})` : ''}. Supported platforms: ${supported.join(', ')}. ${fix}`,
    { platform: id, packageName, supported }
  );
}
