// The AI SDK packages are loaded on first use, not at import: users of the primitives alone
// (an SDK worker, an Electron main process) need neither `ai` nor `@ai-sdk/*` installed.
// `require` of these ESM packages works in Node >= 20.19 and in Bun.
import { createRequire } from 'node:module';

import type * as OpenAICompatible from '@ai-sdk/openai-compatible';
import type * as ProviderUtils from '@ai-sdk/provider-utils';
import type * as Ai from 'ai';

const load = createRequire(import.meta.url);

export const openaiCompatible = (): typeof OpenAICompatible => load('@ai-sdk/openai-compatible') as typeof OpenAICompatible;
export const providerUtils = (): typeof ProviderUtils => load('@ai-sdk/provider-utils') as typeof ProviderUtils;
export const ai = (): typeof Ai => load('ai') as typeof Ai;
