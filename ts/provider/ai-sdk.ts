// The AI SDK packages are loaded on first use, not at import: users of the primitives alone
// (an SDK worker, an Electron main process) need neither `ai` nor `@ai-sdk/*` installed.
// `require` of these ESM packages works in Node >= 20.19 and in Bun.
import { createRequire } from 'node:module';

import type * as OpenAICompatible from '@ai-sdk/openai-compatible';
import type * as ProviderUtils from '@ai-sdk/provider-utils';
import type * as Ai from 'ai';

import { QvacError } from '../errors.js';

// Made on the first load: `createRequire` costs some 0.3 ms, on every app's start-up path if made at import.
let requireFromHere: NodeJS.Require | undefined;

/** Loads a peer dependency; a missing one is PEER_DEPENDENCY_MISSING with the install command. */
function load(name: string, range: string): unknown {
  try {
    requireFromHere ??= createRequire(import.meta.url);
    return requireFromHere(name);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (code !== 'MODULE_NOT_FOUND' && code !== 'ERR_MODULE_NOT_FOUND') throw error;
    throw new QvacError(
      'PEER_DEPENDENCY_MISSING',
      `createQvac needs the peer dependency ${name}, which is not installed. Install it with \`npm install ${name}@${range}\`.`,
      { cause: error }
    );
  }
}

export const openaiCompatible = (): typeof OpenAICompatible => load('@ai-sdk/openai-compatible', '3') as typeof OpenAICompatible;
export const providerUtils = (): typeof ProviderUtils => load('@ai-sdk/provider-utils', '5') as typeof ProviderUtils;
export const ai = (): typeof Ai => load('ai', '7') as typeof Ai;
