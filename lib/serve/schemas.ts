/**
 * JSON schemas of the request bodies (Fastify validates them before a handler runs: a clear 400 that
 * names the field) and their TypeScript types. Unknown fields are ignored, as OpenAI clients send
 * many (`model`, `user`, `quality`, ...); known ones with values this server cannot honour are refused.
 * The library checks the rest (prompt length in tokens, guidance per group, count x steps).
 */
import { MAX_ANSWER_TOKENS, MAX_HISTORY_MESSAGES, MAX_QUESTION_CHARS, MAX_STOPS } from '../answer.js';
import { MAX_COUNT, MAX_PROMPT_CHARS, MAX_STEPS } from '../latte-flow.js';

export interface ImagesRequest {
  prompt: string;
  n?: number;
  size?: string;
  response_format?: 'b64_json';
  seed?: number;
  steps?: number;
  guidance?: number | number[];
  sampler?: 'euler' | 'heun';
  stream?: boolean;
  /** previews every this many steps when streaming (0: none; default about 6 per image) */
  preview_every?: number;
}

const seed = { type: 'integer', minimum: 0, maximum: Number.MAX_SAFE_INTEGER };

export const imagesSchema = {
  type: 'object',
  required: ['prompt'],
  properties: {
    prompt: { type: 'string', minLength: 1, maxLength: MAX_PROMPT_CHARS },
    n: { type: 'integer', minimum: 1, maximum: MAX_COUNT },
    size: { type: 'string', maxLength: 32 },
    response_format: { type: 'string', enum: ['b64_json'] },
    seed,
    steps: { type: 'integer', minimum: 1, maximum: MAX_STEPS },
    guidance: { anyOf: [{ type: 'number' }, { type: 'array', items: { type: 'number' }, minItems: 1, maxItems: 1024 }] },
    sampler: { type: 'string', enum: ['euler', 'heun'] },
    stream: { type: 'boolean' },
    preview_every: { type: 'integer', minimum: 0, maximum: MAX_STEPS },
  },
} as const;

export type ChatContentPart = { type: 'text'; text: string } | { type: 'image_url'; image_url: string | { url: string; detail?: string } };

export interface ChatRequestMessage {
  role: 'system' | 'developer' | 'user' | 'assistant';
  content: string | ChatContentPart[];
}

export interface ChatRequest {
  messages: ChatRequestMessage[];
  max_tokens?: number;
  max_completion_tokens?: number;
  temperature?: number;
  top_p?: number;
  seed?: number;
  stop?: string | string[];
  stream?: boolean;
  stream_options?: { include_usage?: boolean };
  n?: number;
}

const stopString = { type: 'string', minLength: 1, maxLength: 1024 };
const maxTokens = { type: 'integer', minimum: 1, maximum: MAX_ANSWER_TOKENS };

const part = {
  type: 'object',
  required: ['type'],
  properties: {
    type: { type: 'string', enum: ['text', 'image_url'] },
    text: { type: 'string', maxLength: MAX_QUESTION_CHARS },
    image_url: { anyOf: [{ type: 'string' }, { type: 'object', required: ['url'], properties: { url: { type: 'string' } } }] },
  },
};

export const chatSchema = {
  type: 'object',
  required: ['messages'],
  properties: {
    messages: {
      type: 'array',
      minItems: 1,
      maxItems: MAX_HISTORY_MESSAGES + 1,
      items: {
        type: 'object',
        required: ['role', 'content'],
        properties: {
          role: { type: 'string', enum: ['system', 'developer', 'user', 'assistant'] },
          // the string branch first: with type coercion on, an array branch would wrap strings
          content: { anyOf: [{ type: 'string', maxLength: MAX_QUESTION_CHARS }, { type: 'array', maxItems: 4096, items: part }] },
        },
      },
    },
    max_tokens: maxTokens,
    max_completion_tokens: maxTokens,
    temperature: { type: 'number', minimum: 0 },
    top_p: { type: 'number', exclusiveMinimum: 0, maximum: 1 },
    seed,
    stop: { anyOf: [stopString, { type: 'array', maxItems: MAX_STOPS, items: stopString }] },
    stream: { type: 'boolean' },
    stream_options: { type: 'object', properties: { include_usage: { type: 'boolean' } } },
    n: { type: 'integer', minimum: 1, maximum: 1 },
  },
} as const;
