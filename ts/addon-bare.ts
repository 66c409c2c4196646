// platform.cts's loadAddon for Bare: the same addon from the same platform package
// (`qvac-managed-<platform>`, installed by npm as an optional dependency), found with Bare's module
// resolution and loaded with `import.meta.addon`. NATIVE_BINARY_MISSING when it is not installed.
import { NativeBinaryMissingError } from './error-base.cjs';

/** The platform id as napi-rs names it (Bare runs on glibc Linux here: musl has no package). */
function platformId(): string {
  const { platform, arch } = Bare;
  if (platform === 'linux') return `linux-${arch}-gnu`;
  if (platform === 'win32') return `win32-${arch}-msvc`;
  return `${platform}-${arch}`;
}

let loaded: unknown;

export function loadAddon(): unknown {
  if (loaded) return loaded;
  const id = platformId();
  const packageName = `qvac-managed-${id}`;
  let manifest: string;
  try {
    manifest = import.meta.resolve!(`${packageName}/package.json`);
  } catch {
    throw new NativeBinaryMissingError(
      `qvac-managed: the native addon for ${id} is missing: the package ${packageName} is not installed next to qvac-managed. ` +
        `Install it with \`npm install ${packageName}\` (npm installs it as an optional dependency of qvac-managed unless --omit=optional is used).`,
      { platform: id, packageName, supported: [] }
    );
  }
  loaded = import.meta.addon!(new URL(`qvac-managed.${id}.node`, manifest).href);
  return loaded;
}
