/**
 * What travels through Redis between the API side (./client.ts) and the workers (./worker.ts): the
 * queue names, job data, progress messages, return values and how a LatteError crosses as a failed
 * job's reason. Everything is JSON; bytes (PNGs, the chat's images) go as base64.
 */
import type { AnswerOptions } from '../answer.js';
import type { ChatMessage, ChatPart } from '../chat.js';
import { LatteError, type ErrorCode } from '../errors.js';
import type { GenerateOptions } from '../latte-flow.js';

/** BullMQ's key prefix unless told otherwise; queues are `<prefix>:<name>:...`. */
export const DEFAULT_PREFIX = 'latte-flow';
export const IMAGE_QUEUE = 'image';
export const CHAT_QUEUE = 'chat';
/** The key under which workers announce the model they serve (the API side needs its image size and default steps). */
export const modelKey = (prefix: string) => `${prefix}:model`;
/** The channel on which the API side asks workers to cancel a running job (its client left). */
export const cancelChannel = (prefix: string) => `${prefix}:cancel`;

/** What a worker announces: the API side's stand-in for `generator.config` and `vae.config`. */
export interface ModelInfo {
  id: string;
  latentSize: [number, number];
  factor: number;
  numSteps: number;
}

export type ImageJobData = Pick<GenerateOptions, 'prompt' | 'count' | 'seed' | 'steps' | 'guidance' | 'sampler' | 'previewEvery'> & {
  /** send progress (and previews) as job progress */
  progress: boolean;
};

export interface WireImage {
  seed: number;
  /** the PNG file, base64 */
  png: string;
  /** GeneratedImage.warnings (absent from previews and from older workers) */
  warnings?: string[];
}

export interface ImageJobResult {
  images: WireImage[];
}

export type ImageProgress = { t: 'img'; step: number; steps: number; group: number; previews?: WireImage[] };

/** A run of answer pieces; `from` is the index of the first (a re-run after a stall sends them again: the client skips those it has). */
export type TokenProgress = { t: 'tok'; from: number; pieces: [text: string, id: number][] };

// AnswerOptions without callbacks and signal; images as base64
type WirePart = { type: 'text'; text: string } | { type: 'image'; b64?: string };
export interface ChatJobData {
  question: string;
  images: string[];
  history: { role: ChatMessage['role']; content: string | WirePart[] }[];
  maxTokens?: number;
  temperature?: number;
  topP?: number;
  /** a bigint seed as its decimal digits (JSON has no bigint) */
  seed?: number | string;
  stop?: string[];
  /** send pieces as job progress as they come */
  stream: boolean;
}

export interface ChatJobResult {
  text: string;
  pieces: [text: string, id: number][];
}

const toB64 = (b: Uint8Array) => Buffer.from(b.buffer, b.byteOffset, b.byteLength).toString('base64');
const fromB64 = (s: string) => {
  const b = Buffer.from(s, 'base64');
  return new Uint8Array(b.buffer, b.byteOffset, b.length);
};

/** Image inputs must be bytes to cross machines (a path names a file on the API server). */
function imageBytes(image: unknown, where: string): Uint8Array {
  if (image instanceof Uint8Array) return image;
  throw new LatteError('E_ARG', `${where}: through the queue an image must be the file's bytes (a Uint8Array), not a path or pixels`);
}

export function chatJobData(o: AnswerOptions, stream: boolean): ChatJobData {
  const history = (o.history ?? []).map((m, i) => ({
    role: m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map((p: ChatPart, j): WirePart => (p.type === 'text' ? { type: 'text', text: p.text } : p.image === undefined ? { type: 'image' } : { type: 'image', b64: toB64(imageBytes(p.image, `history[${i}].content[${j}]`)) })),
  }));
  const images = (o.images ?? []).map((img, i) => toB64(imageBytes(img, `images[${i}]`)));
  return { question: o.question, images, history, maxTokens: o.maxTokens, temperature: o.temperature, topP: o.topP, seed: typeof o.seed === 'bigint' ? o.seed.toString() : o.seed, stop: o.stop, stream };
}

export function answerOptions(d: ChatJobData): AnswerOptions {
  return {
    question: d.question,
    images: d.images.map(fromB64),
    history: d.history.map((m) => ({ role: m.role, content: typeof m.content === 'string' ? m.content : m.content.map((p): ChatPart => (p.type === 'text' ? p : p.b64 === undefined ? { type: 'image' } : { type: 'image', image: fromB64(p.b64) })) })),
    maxTokens: d.maxTokens,
    temperature: d.temperature,
    topP: d.topP,
    seed: typeof d.seed === 'string' ? BigInt(d.seed) : d.seed,
    stop: d.stop,
  };
}

export const wireImage = (img: { seed: number; toPNG(): Uint8Array; warnings?: string[] }): WireImage => ({
  seed: img.seed,
  png: toB64(img.toPNG()),
  ...(img.warnings?.length ? { warnings: img.warnings } : {}),
});
export const pngBytes = (w: WireImage): Uint8Array => fromB64(w.png);

// A failed job's reason: `latte-flow:E_CODE:message`, so the API side rethrows the same LatteError
const REASON = /^latte-flow:(E_[A-Z_]+):([\s\S]*)$/;

export function errorReason(e: LatteError): string {
  return `latte-flow:${e.code}:${e.message}`;
}

export function errorFromReason(reason: string | undefined): LatteError {
  const m = REASON.exec(reason ?? '');
  if (m) return new LatteError(m[1] as ErrorCode, m[2]);
  return new LatteError('E_INTERNAL', `the job failed on a worker: ${reason ?? 'no reason given'}`);
}

/** Failures that no retry can mend: the request itself is wrong, or it was cancelled. */
export const FINAL_CODES: ReadonlySet<ErrorCode> = new Set(['E_ARG', 'E_SHAPE', 'E_DTYPE', 'E_BAD_IMAGE', 'E_ABORTED']);
