// QVAC's native surfaces beyond the OpenAI-compatible ones: transcription, speech, the local
// ephemeral file store, and file references in prompts. Wire formats as `qvac serve --openai`
// speaks them (the same as @qvac/ai-sdk-provider 0.7.0 sends).
import type { FilesV4, LanguageModelV4, SpeechModelV4, TranscriptionModelV4 } from '@ai-sdk/provider';

import { providerUtils } from './ai-sdk.js';
import { endpoint, mergeHeaders, withoutContentType } from './headers.js';

export interface LocalOptions {
  baseURL: string;
  headers: Record<string, string>;
  fetch?: typeof fetch;
}

type Warning = { type: 'unsupported'; feature: string; details: string };

const toBytes = (data: string | Uint8Array): Uint8Array =>
  typeof data === 'string' ? Uint8Array.from(Buffer.from(data, 'base64')) : data;

function jsonWithHeaders<T>() {
  return async ({ response }: { response: Response }) => {
    const body = (await response.json()) as T;
    const headers = Object.fromEntries(response.headers.entries());
    return { value: { body, headers }, rawValue: body, responseHeaders: headers };
  };
}

export function transcriptionModel(modelId: string, options: LocalOptions): TranscriptionModelV4 {
  const utils = providerUtils();
  return {
    specificationVersion: 'v4',
    provider: 'qvac.transcription',
    modelId,
    async doGenerate({ audio, mediaType, providerOptions, abortSignal, headers }) {
      const qvac = (providerOptions?.['qvac'] ?? {}) as Record<string, unknown>;
      const form = new FormData();
      form.append('file', new Blob([toBytes(audio).slice().buffer], { type: mediaType }), 'audio-input');
      form.append('model', modelId);
      form.append('response_format', 'json');
      const warnings: Warning[] = [];
      if (typeof qvac['prompt'] === 'string') form.append('prompt', qvac['prompt']);
      if (typeof qvac['language'] === 'string') form.append('language', qvac['language']);
      if (typeof qvac['temperature'] === 'number') form.append('temperature', String(qvac['temperature']));
      if (qvac['language'] !== undefined) {
        warnings.push({ type: 'unsupported', feature: 'providerOptions.qvac.language', details: 'QVAC configures transcription language when the model is loaded.' });
      }
      if (qvac['temperature'] !== undefined) {
        warnings.push({ type: 'unsupported', feature: 'providerOptions.qvac.temperature', details: 'The local transcription runtime does not use per-request temperature.' });
      }
      const timestamp = new Date();
      const { value } = await utils.postFormDataToApi({
        url: endpoint(options.baseURL, '/audio/transcriptions'),
        headers: withoutContentType(mergeHeaders(options.headers, headers as Record<string, string | undefined>)),
        formData: form,
        failedResponseHandler: utils.createStatusCodeErrorResponseHandler(),
        successfulResponseHandler: jsonWithHeaders<{ text?: unknown }>(),
        ...(abortSignal && { abortSignal }),
        ...(options.fetch && { fetch: options.fetch })
      });
      if (typeof value.body.text !== 'string') throw new Error('QVAC transcription returned no text');
      return {
        text: value.body.text,
        segments: [],
        language: undefined,
        durationInSeconds: undefined,
        warnings,
        response: { timestamp, modelId, headers: value.headers, body: value.body },
        providerMetadata: { qvac: { local: true } }
      };
    }
  } as TranscriptionModelV4;
}

export function speechModel(modelId: string, options: LocalOptions): SpeechModelV4 {
  const utils = providerUtils();
  const binary = utils.createBinaryResponseHandler();
  return {
    specificationVersion: 'v4',
    provider: 'qvac.speech',
    modelId,
    async doGenerate({ text, voice, outputFormat, instructions, speed, language, abortSignal, headers }) {
      const warnings: Warning[] = Object.entries({ instructions, speed, language })
        .filter(([, v]) => v !== undefined)
        .map(([feature]) => ({ type: 'unsupported' as const, feature, details: `QVAC local speech synthesis does not use per-request ${feature}.` }));
      const body = {
        model: modelId,
        input: text,
        ...(voice !== undefined && { voice }),
        ...(outputFormat !== undefined && { response_format: outputFormat })
      };
      const timestamp = new Date();
      const { value, responseHeaders } = await utils.postJsonToApi({
        url: endpoint(options.baseURL, '/audio/speech'),
        headers: withoutContentType(mergeHeaders(options.headers, headers as Record<string, string | undefined>)),
        body,
        failedResponseHandler: utils.createStatusCodeErrorResponseHandler(),
        successfulResponseHandler: binary,
        ...(abortSignal && { abortSignal }),
        ...(options.fetch && { fetch: options.fetch })
      });
      const responseHeadersRecord = responseHeaders ?? {};
      return {
        audio: value,
        warnings,
        request: { body },
        response: { timestamp, modelId, headers: responseHeadersRecord },
        providerMetadata: { qvac: { local: true, mediaType: responseHeadersRecord['content-type'] ?? 'application/octet-stream' } }
      };
    }
  } as SpeechModelV4;
}

type UploadData = { type: 'text'; text: string } | { type: 'data'; data: string | Uint8Array } | { type: 'stream'; stream: ReadableStream<Uint8Array> };

async function uploadBytes(data: UploadData): Promise<Uint8Array> {
  switch (data.type) {
    case 'text':
      return new TextEncoder().encode(data.text);
    case 'data':
      return toBytes(data.data);
    case 'stream':
      // POST /v1/files buffers the whole upload; streaming the body would only add duplex demands.
      return new Uint8Array(await new Response(data.stream).arrayBuffer());
    default: {
      const { UnsupportedFunctionalityError } = await import('@ai-sdk/provider');
      throw new UnsupportedFunctionalityError({ functionality: `file upload data type '${(data as { type: string }).type}'` });
    }
  }
}

/** The AI SDK files interface over the serve's local ephemeral store (`POST /v1/files`). */
export function files(options: LocalOptions): FilesV4 {
  const utils = providerUtils();
  return {
    specificationVersion: 'v4',
    provider: 'qvac',
    async uploadFile({ data, mediaType, filename, providerOptions, abortSignal, headers }) {
      const form = new FormData();
      const bytes = await uploadBytes(data as UploadData);
      form.append('file', new Blob([bytes.slice().buffer], { type: mediaType }), filename ?? 'upload.bin');
      const purpose = (providerOptions?.['qvac'] as Record<string, unknown> | undefined)?.['purpose'];
      if (typeof purpose === 'string' && purpose.length > 0) form.append('purpose', purpose);
      const { value } = await utils.postFormDataToApi({
        url: endpoint(options.baseURL, '/files'),
        headers: withoutContentType(mergeHeaders(options.headers, headers as Record<string, string | undefined>)),
        formData: form,
        failedResponseHandler: utils.createStatusCodeErrorResponseHandler(),
        successfulResponseHandler: jsonWithHeaders<{ id?: unknown }>(),
        ...(abortSignal && { abortSignal }),
        ...(options.fetch && { fetch: options.fetch })
      });
      if (typeof value.body.id !== 'string') throw new Error('QVAC file upload returned no id');
      return {
        warnings: [],
        providerReference: { qvac: value.body.id },
        mediaType,
        ...(filename !== undefined && { filename }),
        providerMetadata: { qvac: { ...(value.body as Record<string, unknown>) } }
      };
    }
  } as FilesV4;
}

/** Resolves `qvac` file references in a prompt to bytes (`GET /v1/files/<id>/content`) first. */
export function withFileReferences(model: LanguageModelV4, options: LocalOptions): LanguageModelV4 {
  const utils = providerUtils();
  type Call = Parameters<LanguageModelV4['doGenerate']>[0];
  const resolve = async (call: Call): Promise<Call> => {
    const prompt = await Promise.all(
      call.prompt.map(async (message) => {
        if (message.role === 'system' || message.role === 'tool') return message;
        const content = await Promise.all(
          (message.content as { type: string; data?: { type: string; reference?: unknown } }[]).map(async (part) => {
            if (part.type !== 'file' || part.data?.type !== 'reference') return part;
            const id = utils.resolveProviderReference({ reference: part.data.reference as never, provider: 'qvac' });
            const response = await utils.getFromApi({
              url: endpoint(options.baseURL, `/files/${encodeURIComponent(id)}/content`),
              headers: mergeHeaders(options.headers, call.headers as Record<string, string | undefined>),
              failedResponseHandler: utils.createStatusCodeErrorResponseHandler(),
              successfulResponseHandler: utils.createBinaryResponseHandler(),
              ...(call.abortSignal && { abortSignal: call.abortSignal }),
              ...(options.fetch && { fetch: options.fetch }),
              validateUrl: false
            } as Parameters<typeof utils.getFromApi>[0]);
            return { ...part, data: { type: 'data', data: response.value } };
          })
        );
        return { ...message, content } as typeof message;
      })
    );
    return { ...call, prompt };
  };
  return {
    specificationVersion: 'v4',
    provider: model.provider,
    modelId: model.modelId,
    supportedUrls: model.supportedUrls,
    doGenerate: async (call) => model.doGenerate(await resolve(call)),
    doStream: async (call) => model.doStream(await resolve(call))
  } as LanguageModelV4;
}
