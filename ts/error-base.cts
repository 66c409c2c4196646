// The error base class and the missing-binary error, as CommonJS: the `qvac-managed` CLI shim
// (bin/qvac-managed.cjs) loads these and platform.cjs only, which keeps its start-up near Node's own.
/** Base of every error this package throws; `code` is stable, `message` says what to do. */
export class QvacError extends Error {
  readonly code: string;
  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
    this.code = code;
  }
}

/**
 * The platform's native parts (the addon or the `qvac-managed` binary) are not installed: the
 * per-platform package is missing (`--omit=optional`) or this platform has none. The message names
 * the platform, the package looked for, the supported list and the command that fixes it.
 */
export class NativeBinaryMissingError extends QvacError {
  readonly platform: string;
  readonly packageName: string;
  readonly supported: string[];
  constructor(message: string, facts: { platform: string; packageName: string; supported: string[] }) {
    super('NATIVE_BINARY_MISSING', message);
    this.platform = facts.platform;
    this.packageName = facts.packageName;
    this.supported = facts.supported;
  }
}
