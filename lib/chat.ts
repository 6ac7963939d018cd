/**
 * The Qwen2-VL chat template (fixed; rendered without Jinja, as the reference does) and the one
 * place that owns the image-token arithmetic: an image of grid (t, h, w) patches becomes
 * t*h*w / merge^2 <|image_pad|> tokens.
 */
import { ensure } from './errors.js';

export type ChatPart = { type: 'image' } | { type: 'text'; text: string };
export interface ChatMessage {
  role: 'system' | 'user' | 'assistant';
  content: string | ChatPart[];
}

export const DEFAULT_SYSTEM = 'You are a helpful assistant.';
export const IMAGE_PAD = '<|image_pad|>';
export const IMAGE_PLACEHOLDER = `<|vision_start|>${IMAGE_PAD}<|vision_end|>`;
export const STOP_TOKENS = ['<|im_end|>', '<|endoftext|>'] as const;

/** Renders messages; a default system message leads when the first message is not one. */
export function renderChat(messages: ChatMessage[], addGenerationPrompt = true): string {
  ensure(Array.isArray(messages) && messages.length > 0, 'chat: at least one message is required');
  let out = '';
  messages.forEach((m, i) => {
    ensure(['system', 'user', 'assistant'].includes(m?.role), `chat: message ${i} has an unknown role ${String(m?.role)}`);
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
