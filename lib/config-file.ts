/** Reading a model part's JSON config: a missing, unreadable or non-object file is a coded error naming it. */
import fs from 'node:fs';
import { ensure, LatteError, type ErrorCode } from './errors.js';

export function readJsonObject(file: string, code: ErrorCode = 'E_BAD_CONFIG'): { text: string; value: Record<string, unknown> } {
  let text: string;
  try {
    text = fs.readFileSync(file, 'utf8');
  } catch (e) {
    throw new LatteError(code, `${file}: cannot read (${(e as NodeJS.ErrnoException).code ?? (e as Error).message})`, { cause: e });
  }
  try {
    const value = JSON.parse(text);
    ensure(value && typeof value === 'object' && !Array.isArray(value), 'not an object', code);
    return { text, value };
  } catch (e) {
    throw new LatteError(code, `${file}: not a JSON object (${(e as Error).message})`, { cause: e });
  }
}
