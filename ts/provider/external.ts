// createQvac in external mode: an OpenAI-compatible provider for a serve someone else runs.
import type { OpenAICompatibleProvider } from '@ai-sdk/openai-compatible';
import type { FilesV4, SpeechModelV4, TranscriptionModelV4 } from '@ai-sdk/provider';

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

export type QvacProvider = OpenAICompatibleProvider & {
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
