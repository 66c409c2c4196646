// Tagged JSON for arbitrary JS values (undefined, non-finite numbers, key order) sent to the addon.
/**
 * Encodes any JS value as tagged JSON for the native side, keeping what plain JSON loses:
 * `undefined`, non-finite numbers, functions, and object key order. Pure marshalling; the
 * native side decodes it into the same value model the checks and the fleet key work on.
 */
export function encodeValue(value: unknown): string {
  return JSON.stringify(tag(value, new Set(), 0));
}

/** Deeper values are reported as unsupported (the native side refuses them with INVALID_OPTION). */
const MAX_DEPTH = 32;

function tag(value: unknown, seen: Set<object>, depth: number): unknown {
  switch (typeof value) {
    case 'undefined':
      return { $u: 1 };
    case 'number':
      return Number.isFinite(value) ? value : { $n: String(value) };
    case 'function':
      return { $f: 1 };
    case 'symbol':
    case 'bigint':
      return { $x: typeof value };
    case 'object': {
      if (value === null) return null;
      // A cycle cannot be JSON; report it as an unsupported value rather than overflow.
      if (seen.has(value)) return { $x: 'cyclic object' };
      if (depth >= MAX_DEPTH) return { $x: 'too deeply nested' };
      seen.add(value);
      const out = Array.isArray(value)
        ? value.map((item) => tag(item, seen, depth + 1))
        : { $o: Object.keys(value).map((k) => [k, tag((value as Record<string, unknown>)[k], seen, depth + 1)]) };
      seen.delete(value);
      return out;
    }
    default:
      return value;
  }
}
