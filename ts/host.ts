// The platform lookups as the package exports them: arguments checked (INVALID_OPTION) before the
// CommonJS lookups in platform.cts run (that file stays dependency-free for the CLI shim).
import { booleanArg, optionsArg, stringArg } from './args.js';
import * as platform from './platform.cjs';
import type { HostFacts, RunnerLookup } from './platform.cjs';

function hostArg(option: string, value: unknown): void {
  const host = optionsArg<HostFacts>(option, value);
  stringArg('platform', host.platform, true);
  stringArg('arch', host.arch, true);
  booleanArg('musl', host.musl);
}

/** See `platformId` in platform.cts. */
export function platformId(host?: HostFacts): string {
  hostArg('host', host);
  return platform.platformId(host);
}

/** See `platformPackageName` in platform.cts. */
export function platformPackageName(id?: string): string {
  stringArg('id', id, true);
  return platform.platformPackageName(id);
}

/** See `asarUnpackedPath` in platform.cts. */
export function asarUnpackedPath(path: string): string {
  stringArg('path', path);
  return platform.asarUnpackedPath(path);
}

/** See `resolveRunner` in platform.cts. */
export function resolveRunner(lookup?: RunnerLookup): string {
  hostArg('lookup', lookup);
  const { env, root } = lookup ?? {};
  if (env !== undefined) optionsArg('env', env, false, 'an object of environment variables');
  stringArg('root', root, true);
  return platform.resolveRunner(lookup);
}
