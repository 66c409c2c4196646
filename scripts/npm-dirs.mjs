// Keeps the per-platform packages (npm/<platform>/) and the main package's optionalDependencies
// in step with package.json (`napi.targets`, `version`): `napi create-npm-dirs` writes each
// platform's package.json and README, then this adds what napi-rs does not know about — the
// `qvac-managed` binary shipped beside the `.node` — and pins every platform package, exact version,
// as an optional dependency of the main package.
//   node scripts/npm-dirs.mjs           rewrite in place (also run by `npm version`)
//   node scripts/npm-dirs.mjs --check   fail if the committed files are not what this would write
import { spawnSync } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const check = process.argv.includes('--check');

const describe = {
  'linux-x64-gnu': 'Linux x64 (glibc)',
  'linux-arm64-gnu': 'Linux arm64 (glibc)',
  'darwin-x64': 'macOS x64',
  'darwin-arm64': 'macOS arm64 (Apple silicon)',
  'win32-x64-msvc': 'Windows x64'
};

function generate(dir) {
  const napi = spawnSync(process.execPath, [join(root, 'node_modules', '@napi-rs', 'cli', 'dist', 'cli.js'), 'create-npm-dirs', '--cwd', dir], {
    encoding: 'utf8'
  });
  if (napi.status !== 0) throw new Error(`napi create-npm-dirs failed:\n${napi.stdout}${napi.stderr}`);
  const pkgPath = join(dir, 'package.json');
  const pkg = JSON.parse(readFileSync(pkgPath, 'utf8'));
  const optional = {};
  for (const id of readdirSync(join(dir, 'npm')).sort()) {
    const platformPkgPath = join(dir, 'npm', id, 'package.json');
    const platformPkg = JSON.parse(readFileSync(platformPkgPath, 'utf8'));
    const exe = id.startsWith('win32') ? 'qvac-managed.exe' : 'qvac-managed';
    const what = describe[id] ?? id;
    platformPkg.description = `${pkg.name} for ${what}: the native addon and the qvac-managed binary (runner and CLI). Installed by ${pkg.name} as an optional dependency; do not depend on it directly.`;
    if (!platformPkg.files.includes(exe)) platformPkg.files.push(exe);
    writeFileSync(platformPkgPath, `${JSON.stringify(platformPkg, null, 2)}\n`);
    writeFileSync(
      join(dir, 'npm', id, 'README.md'),
      `# \`${platformPkg.name}\`\n\n` +
        `The ${what} build of [\`${pkg.name}\`](https://www.npmjs.com/package/${pkg.name}): \`${platformPkg.main}\` (the native addon) ` +
        `and \`${exe}\` (the detached runner that supervises a \`qvac serve\`, and the \`qvac-managed\` CLI).\n\n` +
        `Install \`${pkg.name}\`, not this package: npm picks the package for your platform from its optional dependencies.\n`
    );
    optional[platformPkg.name] = pkg.version;
  }
  pkg.optionalDependencies = optional;
  writeFileSync(pkgPath, `${JSON.stringify(pkg, null, 2)}\n`);
}

if (!check) {
  generate(root);
  console.log('npm/ and optionalDependencies updated');
} else {
  const scratch = mkdtempSync(join(tmpdir(), 'qvac-managed-npm-dirs-'));
  try {
    cpSync(join(root, 'package.json'), join(scratch, 'package.json'));
    cpSync(join(root, 'npm'), join(scratch, 'npm'), { recursive: true, filter: (src) => !/\.node$|qvac-managed(\.exe)?$/.test(src) });
    generate(scratch);
    const stale = [];
    const files = ['package.json', ...readdirSync(join(scratch, 'npm')).flatMap((id) => ['package.json', 'README.md'].map((f) => join('npm', id, f)))];
    for (const file of files) {
      let committed = '';
      try {
        committed = readFileSync(join(root, file), 'utf8');
      } catch {}
      if (committed !== readFileSync(join(scratch, file), 'utf8')) stale.push(file);
    }
    if (stale.length) {
      console.error(`out of step with package.json: ${stale.join(', ')}. Run \`npm run npm-dirs\` and commit the result.`);
      process.exit(1);
    }
    console.log(`platform packages in step: ${readdirSync(join(scratch, 'npm')).join(', ')} @ ${JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')).version}`);
  } finally {
    rmSync(scratch, { recursive: true, force: true });
  }
}
