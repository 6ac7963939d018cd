/**
 * Chat messages, their validation, the fixed Qwen2-VL chat template (rendered without Jinja: the
 * fallback when a checkpoint ships no template of its own, see chat-template.ts) and the one place
 * that owns the image-token arithmetic: an image of grid (t, h, w) patches becomes t*h*w / merge^2
 * <|image_pad|> tokens.
 */
import { describe, ensure } from './errors.js';
import type { RgbImage } from './image.js';

/** A path, the bytes of a PNG/JPEG file, or RGB/RGBA pixels with width and height. */
export type ImageInput = string | Uint8Array | RgbImage;

/** An image part carries its image when it is answered about (answer's history); renderChat ignores it. */
export type ChatPart = { type: 'image'; image?: ImageInput } | { type: 'text'; text: string };
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string | ChatPart[];
}

export const DEFAULT_SYSTEM = 'You are a helpful assistant.';
export const IMAGE_PAD = '<|image_pad|>';
export const IMAGE_PLACEHOLDER = `<|vision_start|>${IMAGE_PAD}<|vision_end|>`;
/** The stop tokens when the checkpoint has no generation_config.json with an eos_token_id. */
export const STOP_TOKENS = ['<|im_end|>', '<|endoftext|>'] as const;
const ROLES = ['system', 'user', 'assistant'];

/**
 * Checks every message: an object with a known role and content that is a string or an array of
 * text/image parts. Errors are E_ARG and name the message as `${label}[i]`.
 */
export function checkMessages(messages: unknown, label = 'messages'): asserts messages is ChatMessage[] {
  ensure(Array.isArray(messages), `${label} must be an array of chat messages`);
  messages.forEach((m: unknown, i) => {
    const at = `${label}[${i}]`;
    ensure(!!m && typeof m === 'object' && !Array.isArray(m), `${at} must be an object with role and content`);
    const { role, content } = m as Record<string, unknown>;
    ensure(typeof role === 'string' && ROLES.includes(role), `${at} has an unknown role ${describe(role)} (expected ${ROLES.join(', ')})`);
    if (typeof content === 'string') return;
    ensure(Array.isArray(content), `${at}.content must be a string or an array of parts, got ${content === null ? 'null' : typeof content}`);
    content.forEach((p: unknown, j) => {
      const part = p as Record<string, unknown> | null;
      ensure(!!part && typeof part === 'object', `${at}.content[${j}] must be a {type: 'text', text} or {type: 'image'} part`);
      if (part.type === 'text') ensure(typeof part.text === 'string', `${at}.content[${j}].text must be a string`);
      else ensure(part.type === 'image', `${at}.content[${j}] has an unknown type ${describe(part.type)} (expected 'text' or 'image')`);
    });
  });
}

/** Renders messages with the fixed template; a default system message leads when the first message is not one. */
export function renderChat(messages: ChatMessage[], addGenerationPrompt = true): string {
  checkMessages(messages, 'chat: messages');
  ensure(messages.length > 0, 'chat: at least one message is required');
  let out = '';
  messages.forEach((m, i) => {
    if (i === 0 && m.role !== 'system') out += `<|im_start|>system\n${DEFAULT_SYSTEM}<|im_end|>\n`;
    out += `<|im_start|>${m.role}\n`;
    if (typeof m.content === 'string') out += m.content;
    else for (const part of m.content) out += part.type === 'image' ? IMAGE_PLACEHOLDER : part.text;
    out += '<|im_end|>\n';
  });
  if (addGenerationPrompt) out += '<|im_start|>assistant\n';
  return out;
}

/** Merged image tokens for a vision grid of (t, h, w) patches. */
export function imageTokenCount([t, h, w]: readonly [number, number, number], mergeSize: number): number {
  ensure(h % mergeSize === 0 && w % mergeSize === 0, `image grid ${h}x${w} is not a multiple of the merge size ${mergeSize}`);
  return (t * h * w) / (mergeSize * mergeSize);
}

/** Repeats the k-th <|image_pad|> once per merged token of image k. */
export function expandImagePads(text: string, grids: readonly (readonly [number, number, number])[], mergeSize: number): string {
  const parts = text.split(IMAGE_PAD);
  ensure(parts.length - 1 === grids.length, `${parts.length - 1} image placeholders for ${grids.length} images`);
  return parts.reduce((acc, rest, k) => (k === 0 ? rest : acc + IMAGE_PAD.repeat(imageTokenCount(grids[k - 1], mergeSize)) + rest), '');
}
