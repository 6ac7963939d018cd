/**
 * OpenAI chat messages -> the library's answer options: the last message (the user's) is the
 * question and its images; earlier messages are the history. Images come only as data: URLs, decoded
 * here to bytes: the server fetches no URLs, and never passes a client's string on as an image (the
 * library reads a string as a file path).
 */
import type { AnswerOptions } from '../answer.js';
import type { ChatMessage, ChatPart } from '../chat.js';
import { LatteError } from '../errors.js';
import type { ChatContentPart, ChatRequestMessage } from './schemas.js';

const DATA_URL = /^data:image\/[\w.+-]+(?:;[\w.+-]+=[^;,]*)*;base64,/i;

/** A `data:image/...;base64,` URL -> the image file's bytes. */
export function imageFromDataUrl(url: string, where: string): Uint8Array {
  const m = DATA_URL.exec(url);
  if (!m) throw new LatteError('E_BAD_IMAGE', `${where}: image_url must be a data URL (data:image/png;base64,... or data:image/jpeg;base64,...); this server fetches no URLs`);
  const bytes = Buffer.from(url.slice(m[0].length), 'base64');
  if (bytes.length === 0) throw new LatteError('E_BAD_IMAGE', `${where}: the data URL holds no image`);
  return new Uint8Array(bytes.buffer, bytes.byteOffset, bytes.length);
}

function toPart(p: ChatContentPart, where: string): ChatPart {
  if (p.type === 'text') {
    if (typeof p.text !== 'string') throw new LatteError('E_ARG', `${where}: a text part needs its text`);
    return { type: 'text', text: p.text };
  }
  const url = typeof p.image_url === 'string' ? p.image_url : p.image_url?.url;
  if (typeof url !== 'string') throw new LatteError('E_ARG', `${where}: an image_url part needs image_url.url`);
  return { type: 'image', image: imageFromDataUrl(url, where) };
}

/** The question, its images and the history for `answer` / `answerStream`. */
export function toAnswerOptions(messages: ChatRequestMessage[]): Pick<AnswerOptions, 'question' | 'images' | 'history'> {
  const last = messages[messages.length - 1];
  if (last.role !== 'user') throw new LatteError('E_ARG', `the last message must be the user's (the question), not ${last.role}`);
  const history: ChatMessage[] = messages.slice(0, -1).map((m, i) => ({
    role: m.role === 'developer' ? 'system' : m.role,
    content: typeof m.content === 'string' ? m.content : m.content.map((p, j) => toPart(p, `messages[${i}].content[${j}]`)),
  }));
  const at = messages.length - 1;
  const parts = typeof last.content === 'string' ? [{ type: 'text', text: last.content } as ChatPart] : last.content.map((p, j) => toPart(p, `messages[${at}].content[${j}]`));
  const question = parts.flatMap((p) => (p.type === 'text' ? [p.text] : [])).join('\n');
  const images = parts.flatMap((p) => (p.type === 'image' && p.image !== undefined ? [p.image] : []));
  return { question, images, history };
}
