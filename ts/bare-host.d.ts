// What the Bare entry uses of Bare's globals and modules (types only; tsc never runs in Bare).
declare global {
  // eslint-disable-next-line no-var
  var Bare: {
    readonly platform: string;
    readonly arch: string;
    readonly pid: number;
    readonly version: string;
    on(event: string, listener: (...args: any[]) => void): unknown;
    off(event: string, listener: (...args: any[]) => void): unknown;
    once(event: string, listener: (...args: any[]) => void): unknown;
    exit(code?: number): void;
  };
  interface ImportMeta {
    /** Bare: loads a native addon (a file path or URL, or the package's own prebuild). */
    addon?: (specifier?: string) => unknown;
  }
}

export {};
