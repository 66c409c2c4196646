// Header merging for the providers (case-insensitive, later sources win).
/** Merges header records case-insensitively; later sources win, `undefined` values are skipped. */
export function mergeHeaders(...sources: (Record<string, string | undefined> | undefined)[]): Record<string, string> {
  const merged = new Headers();
  for (const source of sources) {
    for (const [name, value] of Object.entries(source ?? {})) {
      if (value !== undefined) merged.set(name, value);
    }
  }
  return Object.fromEntries(merged.entries());
}

/** The same headers without `content-type` (multipart bodies set their own). */
export function withoutContentType(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== 'content-type'));
}

/** `<baseURL><path>` without a doubled slash. */
export const endpoint = (baseURL: string, path: string): string => `${baseURL.replace(/\/+$/, '')}${path}`;
