// Argument checks for the exported functions: a bad argument is refused with INVALID_OPTION
// (`.option` names it) before anything is spawned, written or handed to the addon.
import { InvalidOptionError } from './errors.js';

/** The longest duration anything accepts: what a JS timer holds (2^31-1 ms, about 24.8 days). */
export const MAX_TIMER_MS = 2_147_483_647;
const MILLIS = 'a number of milliseconds from 0 to 2147483647';

/** How a bad value is named in an INVALID_OPTION message (never its whole content). */
export function received(value: unknown): string {
  if (value === null) return 'null';
  if (typeof value === 'string') return JSON.stringify(value.length > 80 ? `${value.slice(0, 80)}...` : value);
  if (typeof value === 'number' || typeof value === 'boolean' || typeof value === 'undefined') return String(value);
  return typeof value === 'function' ? 'a function' : Array.isArray(value) ? 'an array' : typeof value;
}

/** An options object; `undefined` is allowed when `optional` (and then gives `{}`). */
export function optionsArg<T extends object>(option: string, value: unknown, optional = true, expected = 'an options object'): T {
  if (value === undefined && optional) return {} as T;
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw InvalidOptionError.because(option, received(value), expected);
  }
  return value as T;
}

export function booleanArg(option: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'boolean') {
    throw InvalidOptionError.because(option, received(value), 'true or false');
  }
}

/** A number (range checks are the native side's); `undefined` is allowed. */
export function numberArg(option: string, value: unknown): void {
  if (value !== undefined && typeof value !== 'number') {
    throw InvalidOptionError.because(option, received(value), 'a number');
  }
}

export function functionArg(option: string, value: unknown): void {
  if (typeof value !== 'function') throw InvalidOptionError.because(option, received(value), 'a function');
}

export function optionalFunctionArg(option: string, value: unknown): void {
  if (value !== undefined) functionArg(option, value);
}

export function stringArg(option: string, value: unknown, optional = false): void {
  if (value === undefined && optional) return;
  if (typeof value !== 'string' || value.length === 0 || value.includes('\0')) {
    throw InvalidOptionError.because(option, received(value), 'a non-empty string without NUL bytes');
  }
}

export function stringArrayArg(option: string, value: unknown): void {
  if (value === undefined) return;
  if (!Array.isArray(value) || value.some((v) => typeof v !== 'string' || v.includes('\0'))) {
    throw InvalidOptionError.because(option, received(value), 'an array of strings without NUL bytes');
  }
}

export function signalArg(option: string, value: unknown): void {
  if (value === undefined) return;
  const s = value as { aborted?: unknown; addEventListener?: unknown; removeEventListener?: unknown };
  if (
    typeof value !== 'object' ||
    value === null ||
    typeof s.aborted !== 'boolean' ||
    typeof s.addEventListener !== 'function' ||
    typeof s.removeEventListener !== 'function'
  ) {
    throw InvalidOptionError.because(option, received(value), 'an AbortSignal');
  }
}

/** Milliseconds a JS timer can hold; `fallback` when undefined. */
export function millisArg(option: string, value: unknown, fallback: number): number {
  if (value === undefined) return fallback;
  if (typeof value !== 'number' || !(value >= 0 && value <= MAX_TIMER_MS)) {
    throw InvalidOptionError.because(option, received(value), MILLIS);
  }
  return value;
}
