// HTTP helpers for the serve tests: JSON posts, a strict SSE parser (it checks the framing as it
// reads: every message is `event:`/`data:` lines closed by a blank line), and a PNG header check.
import { decode as decodePng } from 'fast-png';

export interface SseMessage {
  event?: string;
  /** the data line(s), joined; '[DONE]' or JSON text */
  data: string;
}

/** A response's JSON body, untyped (the tests check its shape). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export const json = (r: Response): Promise<any> => r.json();

export function post(url: string, body: unknown, init: Omit<RequestInit, 'headers'> & { headers?: Record<string, string> } = {}): Promise<Response> {
  return fetch(url, { method: 'POST', ...init, headers: { 'content-type': 'application/json', ...init.headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

/** Parses a complete SSE body; throws on a framing error (a line that is neither event: nor data:, a body not ending in a blank line). */
export function parseSse(text: string): SseMessage[] {
  if (!text.endsWith('\n\n')) throw new Error(`the SSE body does not end with a blank line: ${JSON.stringify(text.slice(-40))}`);
  return text
    .slice(0, -2)
    .split('\n\n')
    .map((block) => {
      const m: SseMessage = { data: '' };
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) m.event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
        else throw new Error(`an SSE line that is neither event: nor data:: ${JSON.stringify(line)}`);
      }
      m.data = data.join('\n');
      return m;
    });
}

/** Reads SSE messages as they arrive; `onMessage` may return true to stop reading (the body is then cancelled). */
export async function readSse(res: Response, onMessage: (m: SseMessage) => boolean | void): Promise<void> {
  const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = '';
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    for (let i; (i = buffer.indexOf('\n\n')) >= 0; ) {
      const [m] = parseSse(buffer.slice(0, i + 2));
      buffer = buffer.slice(i + 2);
      if (onMessage(m)) {
        await reader.cancel();
        return;
      }
    }
  }
}

/** The width and height of a base64 PNG (throws if it is not one). */
export function pngSize(b64: string): [number, number] {
  const png = decodePng(Buffer.from(b64, 'base64'));
  return [png.width, png.height];
}

/** An OpenAI-shaped error body: { error: { message, type, code } }. */
export function isOpenAIError(body: unknown): body is { error: { message: string; type: string; code: string; param: string | null } } {
  const e = (body as { error?: Record<string, unknown> })?.error;
  return !!e && typeof e.message === 'string' && e.message.length > 0 && typeof e.type === 'string' && typeof e.code === 'string';
}
