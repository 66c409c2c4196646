// Header merging for the providers (case-insensitive, later sources win).
import { received } from '../args.js';
import { InvalidOptionError } from '../errors.js';

/** Merges header records case-insensitively; later sources win, `undefined` values are skipped. */
export function mergeHeaders(...sources: (Record<string, string | undefined> | undefined)[]): Record<string, string> {
  // What `new Headers()` does (lower-case names, trimmed values, names in order), without it:
  // the first `Headers` in a process loads fetch's implementation, some 13 ms on the attach path.
  const merged = new Map<string, string>();
  for (const source of sources) {
    for (const [name, value] of Object.entries(source ?? {})) {
      if (value === undefined) continue;
      if (typeof value !== 'string') throw InvalidOptionError.because(`headers.${name}`, received(value), 'a string header value');
      const text = value.replace(/^[\t\n\r ]+|[\t\n\r ]+$/g, '');
      // What fetch's Headers refuses (a TypeError on the first request): a name that is not a
      // token, and a value with CR, LF or NUL or a character outside Latin-1 (not a ByteString).
      if (!TOKEN.test(name) || /[\r\n\0]|[^\u0000-\u00ff]/.test(text)) {
        throw InvalidOptionError.because(`headers.${name}`, received(value), 'a header name of token characters and a value of Latin-1 characters without CR, LF or NUL');
      }
      merged.set(name.toLowerCase(), text);
    }
  }
  return Object.fromEntries([...merged].sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0)));
}

/** RFC 9110 token: what a header name may be made of. */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** The same headers without `content-type` (multipart bodies set their own). */
export function withoutContentType(headers: Record<string, string>): Record<string, string> {
  return Object.fromEntries(Object.entries(headers).filter(([name]) => name.toLowerCase() !== 'content-type'));
}

/** `<baseURL><path>` without a doubled slash. */
export const endpoint = (baseURL: string, path: string): string => `${baseURL.replace(/\/+$/, '')}${path}`;
