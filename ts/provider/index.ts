// createQvac and qvac: picks managed or external mode from the options.
import { optionsArg } from '../args.js';
import { createExternalQvac, type QvacExternalOptions, type QvacProvider } from './external.js';
import { createManagedQvac, type ManagedQvacProvider, type QvacManagedOptions } from './managed.js';

export type { QvacExternalOptions, QvacProvider } from './external.js';
export type { ManagedQvacProvider, QvacManagedOptions } from './managed.js';
export { DEFAULT_API_KEY, DEFAULT_BASE_URL } from './external.js';
export type QvacOptions = QvacExternalOptions | QvacManagedOptions;

/**
 * `@qvac/ai-sdk-provider`'s `createQvac`: external mode returns a provider for a serve you run;
 * `{ mode: 'managed', models }` returns a Promise of a provider over a shared, supervised serve.
 */
export function createQvac(options: QvacManagedOptions): Promise<ManagedQvacProvider>;
export function createQvac(options?: QvacExternalOptions): QvacProvider;
export function createQvac(options?: QvacOptions): QvacProvider | Promise<ManagedQvacProvider> {
  const checked = optionsArg<QvacOptions>('options', options);
  // Managed mode reports every problem as a rejection, as upstream's async createQvac does.
  if (checked.mode === 'managed') return createManagedQvac(checked);
  return createExternalQvac(checked);
}

let defaultProvider: QvacProvider | undefined;
const instance = (): QvacProvider => (defaultProvider ??= createExternalQvac());

/**
 * The default external provider (`http://127.0.0.1:11435/v1`), created on first use so that
 * importing this package never loads the AI SDK for users who do not need it.
 */
export const qvac: QvacProvider = new Proxy(function qvac() {} as unknown as QvacProvider, {
  apply: (_target, _this, args: [string]) => (instance() as unknown as (id: string) => unknown)(...args),
  get: (_target, key) => Reflect.get(instance() as object, key),
  has: (_target, key) => Reflect.has(instance() as object, key),
  ownKeys: () => Reflect.ownKeys(instance() as object),
  getOwnPropertyDescriptor: (_target, key) => {
    const d = Reflect.getOwnPropertyDescriptor(instance() as object, key);
    return d ? { ...d, configurable: true } : undefined;
  }
});
