/** Errors thrown by latte-flow. `code` is stable; messages may change. */
export type ErrorCode =
  | 'E_SHAPE' // operand shapes do not fit the op
  | 'E_DTYPE' // unsupported dtype
  | 'E_ARG' // a bad option or attribute
  | 'E_INDEX' // an id or position out of range (found while running)
  | 'E_OOM' // an allocation failed
  | 'E_DISPOSED' // the engine or tensor was disposed
  | 'E_BACKEND_UNAVAILABLE' // the requested backend cannot be used
  | 'E_ABORTED' // work was aborted or dropped before it ran
  | 'E_NOT_COMPUTED' // an input's producing op failed or was dropped
  | 'E_BAD_WEIGHTS' // a checkpoint is missing, corrupt or mis-shaped
  | 'E_BAD_CONFIG' // a model config that is malformed or unsupported
  | 'E_BAD_IMAGE' // an image file or buffer that cannot be decoded
  | 'E_NATIVE_LOAD' // the native addon could not be loaded
  | 'E_BUSY' // the model's request queue is full: retry after `retryAfterMs`
  | 'E_INTERNAL';

export class LatteError extends Error {
  readonly code: ErrorCode;
  /** E_BUSY: a hint of when a retry may be admitted, in milliseconds. */
  readonly retryAfterMs?: number;
  constructor(code: ErrorCode, message: string, options?: { cause?: unknown; retryAfterMs?: number }) {
    super(message, options);
    this.name = 'LatteError';
    this.code = code;
    if (options?.retryAfterMs !== undefined) this.retryAfterMs = options.retryAfterMs;
  }

  /** Turns anything thrown by the native layer into a LatteError with its code. */
  static from(e: unknown): LatteError {
    if (e instanceof LatteError) return e;
    const err = e as { code?: unknown; message?: unknown };
    const code = typeof err?.code === 'string' && err.code.startsWith('E_') ? (err.code as ErrorCode) : 'E_INTERNAL';
    const message = typeof err?.message === 'string' ? err.message : String(e);
    return new LatteError(code, message, { cause: e });
  }
}

/**
 * A caller's value, shortly, for an error message. Never throws and never recurses: String() throws
 * on symbols and null-prototype objects and overflows the stack on deeply nested arrays.
 */
export function describe(v: unknown): string {
  switch (typeof v) {
    case 'string':
      return JSON.stringify(v.length > 60 ? `${v.slice(0, 57)}...` : v);
    case 'number':
    case 'bigint':
    case 'boolean':
    case 'undefined':
      return String(v);
    case 'symbol':
      return 'a symbol';
    case 'function':
      return 'a function';
    default:
      if (v === null) return 'null';
      if (Array.isArray(v)) return `an array of ${v.length}`;
      return ArrayBuffer.isView(v) ? `a ${Object.getPrototypeOf(v)?.constructor?.name ?? 'typed array'}` : 'an object';
  }
}

/** The one validation helper: throws E_ARG (or the given code) unless `ok`. */
export function ensure(ok: unknown, message: string, code: ErrorCode = 'E_ARG'): asserts ok {
  if (!ok) throw new LatteError(code, message);
}

/** Calls a native function, rethrowing its errors as LatteError. */
export function native<T>(f: () => T): T {
  try {
    return f();
  } catch (e) {
    throw LatteError.from(e);
  }
}

export async function nativeAsync<T>(p: () => Promise<T>): Promise<T> {
  try {
    return await p();
  } catch (e) {
    throw LatteError.from(e);
  }
}
