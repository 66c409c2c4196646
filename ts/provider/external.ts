// createQvac in external mode: an OpenAI-compatible provider for a serve someone else runs.
import type { OpenAICompatibleProvider } from '@ai-sdk/openai-compatible';
import type {
  EmbeddingModelV4,
  FilesV4,
  ImageModelV4,
  LanguageModelV4,
  ProviderV4,
  SpeechModelV4,
  TranscriptionModelV4
} from '@ai-sdk/provider';

import { optionalFunctionArg, optionsArg, received } from '../args.js';
import { InvalidOptionError } from '../errors.js';
import { ai, openaiCompatible } from './ai-sdk.js';
import { mergeHeaders } from './headers.js';
import { files, speechModel, transcriptionModel, withFileReferences, type LocalOptions } from './local.js';

/** Upstream's external-mode defaults. */
export const DEFAULT_BASE_URL = 'http://127.0.0.1:11435/v1';
export const DEFAULT_API_KEY = 'qvac';

export interface QvacExternalOptions {
  readonly mode?: 'external';
  readonly baseURL?: string;
  readonly apiKey?: string;
  readonly headers?: Record<string, string>;
  readonly fetch?: typeof fetch;
}

/**
 * The OpenAI-compatible surface (what `OpenAICompatibleProvider` of `@ai-sdk/openai-compatible`
 * offers), spelled with `@ai-sdk/provider` types, a dependency of ours: the package's types never
 * need the optional AI SDK peers, so a TypeScript user of the primitives alone type-checks
 * without them.
 */
export interface QvacCompatibleProvider extends ProviderV4 {
  (modelId: string): LanguageModelV4;
  languageModel(modelId: string, config?: Record<string, unknown>): LanguageModelV4;
  chatModel(modelId: string): LanguageModelV4;
  completionModel(modelId: string): LanguageModelV4;
  embeddingModel(modelId: string): EmbeddingModelV4;
  /** @deprecated Use `embeddingModel` instead. */
  textEmbeddingModel(modelId: string): EmbeddingModelV4;
  imageModel(modelId: string): ImageModelV4;
}

// Checked at compile time: the real provider has every member the spelling above promises.
void ((real: OpenAICompatibleProvider): QvacCompatibleProvider => real);

export type QvacProvider = QvacCompatibleProvider & {
  readonly _brand: 'qvac';
  files(): FilesV4;
  transcriptionModel(modelId: string): TranscriptionModelV4;
  speechModel(modelId: string): SpeechModelV4;
};

/**
 * A provider for a `qvac serve --openai` someone else runs: the OpenAI-compatible surfaces
 * (chat, completion, embedding, image) plus transcription, speech, files and file references.
 */
export function createExternalQvac(options: QvacExternalOptions = {}): QvacProvider {
  checkExternalOptions(options);
  const apiKey = options.apiKey ?? DEFAULT_API_KEY;
  const headers = mergeHeaders(options.headers);
  if (apiKey && headers['authorization'] === undefined) headers['authorization'] = `Bearer ${apiKey}`;
  const baseURL = options.baseURL ?? DEFAULT_BASE_URL;
  const local: LocalOptions = { baseURL, headers, ...(options.fetch && { fetch: options.fetch }) };
  // The AI SDK (some 40-70 ms to load in a fresh process) is loaded on the first model call, not
  // here: creating a provider stays cheap, and a first call loads it exactly once.
  let built: { compatible: Compatible; composed: Composed } | undefined;
  const real = (): { compatible: Compatible; composed: Composed } =>
    (built ??= build(baseURL, headers, local, options.fetch));
  const provider = ((id: string) => real().composed.languageModel(id)) as unknown as Record<string, unknown>;
  Object.defineProperty(provider, 'specificationVersion', { value: 'v4', enumerable: true });
  provider['languageModel'] = (id: string) => real().composed.languageModel(id);
  provider['chatModel'] = (id: string) => real().composed.languageModel(id);
  provider['completionModel'] = (id: string) => real().compatible.completionModel(id);
  provider['embeddingModel'] = (id: string) => real().composed.embeddingModel(id);
  provider['textEmbeddingModel'] = (id: string) => real().composed.embeddingModel(id);
  provider['imageModel'] = (id: string) => real().composed.imageModel(id);
  provider['transcriptionModel'] = (id: string) => real().composed.transcriptionModel(id);
  provider['speechModel'] = (id: string) => real().composed.speechModel(id);
  provider['files'] = () => real().composed.files();
  return provider as unknown as QvacProvider;
}

/** Wrong-typed external options are INVALID_OPTION at creation, not a TypeError on the first request. */
function checkExternalOptions(options: QvacExternalOptions): void {
  const { mode, baseURL, apiKey, headers } = options as Record<string, unknown>;
  if (mode !== undefined && mode !== 'external') throw InvalidOptionError.because('mode', received(mode), '"external" or "managed"');
  if (baseURL !== undefined && !isHttpUrl(baseURL)) {
    throw InvalidOptionError.because('baseURL', received(baseURL), 'an http(s) URL such as "http://127.0.0.1:11435/v1"');
  }
  // The key goes into the authorization header: what fetch would refuse there is refused here.
  if (apiKey !== undefined && (typeof apiKey !== 'string' || /[\r\n\0]|[^\u0000-\u00ff]/.test(apiKey))) {
    throw InvalidOptionError.because('apiKey', typeof apiKey === 'string' ? 'a key with characters a header cannot carry' : received(apiKey), 'a string of Latin-1 characters without CR, LF or NUL');
  }
  if (headers !== undefined) optionsArg('headers', headers, false, 'an object of header names to string values');
  optionalFunctionArg('fetch', options.fetch);
}

function isHttpUrl(value: unknown): boolean {
  if (typeof value !== 'string') return false;
  try {
    const { protocol } = new URL(value);
    return protocol === 'http:' || protocol === 'https:';
  } catch {
    return false;
  }
}

type Compatible = OpenAICompatibleProvider;
interface Composed {
  specificationVersion: string;
  languageModel(id: string): unknown;
  embeddingModel(id: string): unknown;
  imageModel(id: string): unknown;
  transcriptionModel(id: string): unknown;
  speechModel(id: string): unknown;
  files(): FilesV4;
}

/** The real providers: OpenAI-compatible surfaces plus QVAC's own, composed with `customProvider`. */
function build(
  baseURL: string,
  headers: Record<string, string>,
  local: LocalOptions,
  fetchImpl: typeof fetch | undefined
): { compatible: Compatible; composed: Composed } {
  const compatible = openaiCompatible().createOpenAICompatible({
    name: 'qvac',
    baseURL,
    headers,
    ...(fetchImpl && { fetch: fetchImpl })
  });
  const composed = ai().customProvider({
    files: files(local),
    fallbackProvider: {
      specificationVersion: 'v4',
      languageModel: (id: string) => withFileReferences(compatible.languageModel(id), local),
      embeddingModel: (id: string) => compatible.embeddingModel(id),
      imageModel: (id: string) => compatible.imageModel(id),
      transcriptionModel: (id: string) => transcriptionModel(id, local),
      speechModel: (id: string) => speechModel(id, local)
    }
  } as Parameters<ReturnType<typeof ai>['customProvider']>[0]) as unknown as Composed;
  return { compatible, composed };
}
