/**
 * Untrusted image input: size limits, the declared size read from the header before any decoding,
 * safe file reads and checks on caller-made RGB images. Every failure is an E_BAD_IMAGE LatteError.
 */
import { constants } from 'node:fs';
import fs from 'node:fs/promises';
import { createRequire } from 'node:module';
import { types } from 'node:util';
import { describe, ensure, LatteError } from './errors.js';
import { decodePng, isPng, readPngHeader } from './image-png.js';
import type { RgbImage } from './image.js';

export interface ImageLimits {
  /** The most pixels (width * height) an image may have or declare. */
  maxPixels: number;
  /** The largest encoded image, as a file or as bytes. */
  maxBytes: number;
}

/** 36 megapixels admits a 4000x3000 photo and a 6000x6000 scan; 64 MiB is far above either as JPEG. */
export const DEFAULT_IMAGE_LIMITS: Readonly<ImageLimits> = Object.freeze({ maxPixels: 36_000_000, maxBytes: 64 * 1024 * 1024 });

/** The defaults overridden by `l`; a bad limit is E_ARG (a caller's mistake, not a bad image). */
export function resolveLimits(l?: Partial<ImageLimits>): ImageLimits {
  ensure(l === undefined || (typeof l === 'object' && l !== null), 'image limits must be an object');
  const out = { ...DEFAULT_IMAGE_LIMITS };
  for (const k of ['maxPixels', 'maxBytes'] as const) {
    const v = l?.[k];
    if (v === undefined) continue;
    ensure(Number.isSafeInteger(v) && v > 0, `limits.${k} must be a positive integer, got ${describe(v)}`);
    out[k] = v;
  }
  return out;
}

const bad = (message: string, cause?: unknown): LatteError => new LatteError('E_BAD_IMAGE', message, cause === undefined ? undefined : { cause });

export function checkPixels(width: number, height: number, maxPixels: number): void {
  if (width * height > maxPixels)
    throw bad(`image is ${width}x${height} (${width * height} pixels), above the limit of ${maxPixels} pixels (limits.maxPixels)`);
}

export function checkBytes(n: number, maxBytes: number, what = 'image'): void {
  if (n > maxBytes) throw bad(`${what} has ${n} bytes, above the limit of ${maxBytes} bytes (limits.maxBytes)`);
}

/** The size a JPEG's frame header (SOFn) declares, found by walking the segments before it. */
function jpegSize(b: Uint8Array): { width: number; height: number } {
  for (let p = 2; ; ) {
    while (p < b.length && b[p] !== 0xff) p++; // libjpeg too skips stray bytes before a marker
    while (p < b.length && b[p] === 0xff) p++; // fill bytes
    if (p + 1 > b.length) throw new Error('JPEG ends before its frame header');
    const m = b[p++];
    if (m === 0x00 || m === 0x01 || m === 0xd8 || (m >= 0xd0 && m <= 0xd7)) continue; // no length field
    if (m === 0xd9 || m === 0xda) throw new Error('JPEG has no frame header before its image data');
    if (p + 2 > b.length) throw new Error('JPEG ends inside a segment header');
    const len = (b[p] << 8) | b[p + 1];
    if (len < 2) throw new Error(`JPEG segment 0x${m.toString(16)} has a bad length ${len}`);
    if (m >= 0xc0 && m <= 0xcf && m !== 0xc4 && m !== 0xc8 && m !== 0xcc) {
      if (p + 7 > b.length) throw new Error('JPEG ends inside its frame header');
      const height = (b[p + 3] << 8) | b[p + 4];
      const width = (b[p + 5] << 8) | b[p + 6];
      if (m > 0xc2) throw new Error(`JPEG coding SOF${m - 0xc0} is not supported (only baseline and progressive Huffman)`);
      if (width === 0 || height === 0) throw new Error(`JPEG declares a size of ${width}x${height}`);
      return { width, height };
    }
    p += len;
  }
}

/** Format and declared size, read from the header alone. */
export function imageHeader(b: Uint8Array): { format: 'png' | 'jpeg'; width: number; height: number } {
  if (isPng(b)) return { format: 'png', ...readPngHeader(b) };
  if (b[0] === 0xff && b[1] === 0xd8) return { format: 'jpeg', ...jpegSize(b) };
  throw bad('not a PNG or JPEG image');
}

const jpeg = createRequire(import.meta.url)('jpeg-js') as {
  decode(data: Uint8Array, opts: { useTArray: true; formatAsRGBA: boolean; maxResolutionInMP: number; maxMemoryUsageInMB: number }): { width: number; height: number; data: Uint8Array };
};

/** PNG or JPEG bytes to 8-bit RGB; the header's size is checked against the limits first. Synchronous: run it off the main thread. */
export function decodeBytes(b: Uint8Array, limits: ImageLimits): RgbImage {
  try {
    checkBytes(b.length, limits.maxBytes);
    const h = imageHeader(b);
    checkPixels(h.width, h.height, limits.maxPixels);
    if (h.format === 'png') return decodePng(b);
    // Even a flat image costs a JPEG at least one bit per 8x8 luma block (pixels / 512 bytes): a tiny
    // file declaring a large frame is forged or truncated, and jpeg-js would allocate the whole frame
    // (16384x1700 from 400 bytes: 4 s and 800 MB) before finding out.
    if (b.length * 1024 < h.width * h.height)
      throw bad(`JPEG declares ${h.width}x${h.height} but holds only ${b.length} bytes, too few for that many pixels (truncated or forged)`);
    // jpeg-js's own caps stop a later frame header that declares more than the first (it needs ~24 bytes a pixel)
    const maxMemoryUsageInMB = Math.ceil((h.width * h.height * 24) / 2 ** 20) + 64;
    const j = jpeg.decode(b, { useTArray: true, formatAsRGBA: false, maxResolutionInMP: limits.maxPixels / 1e6, maxMemoryUsageInMB });
    if (j.data.length !== j.width * j.height * 3) throw new Error('JPEG decoder returned a bad pixel buffer');
    return { width: j.width, height: j.height, data: j.data };
  } catch (e) {
    if (e instanceof LatteError) throw e;
    throw bad(`cannot decode image: ${(e as Error)?.message ?? String(e)}`, e);
  }
}

/** Reads a regular file of at most maxBytes; devices, FIFOs and directories are refused before reading. */
export async function readImageFile(path: string, limits: ImageLimits): Promise<Uint8Array> {
  let fh: fs.FileHandle;
  try {
    // O_NONBLOCK: opening a FIFO must not wait for a writer
    fh = await fs.open(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (e) {
    throw bad(`cannot read image ${path}: ${(e as Error).message}`, e);
  }
  try {
    const st = await fh.stat();
    if (!st.isFile()) throw bad(`image ${path} is not a regular file (${st.isDirectory() ? 'a directory' : st.isFIFO() ? 'a FIFO' : st.isCharacterDevice() || st.isBlockDevice() ? 'a device' : 'a socket or other special file'})`);
    checkBytes(st.size, limits.maxBytes, `image file ${path}`);
    const buf = new Uint8Array(st.size);
    let n = 0;
    while (n < buf.length) {
      const { bytesRead } = await fh.read(buf, n, buf.length - n, n);
      if (bytesRead === 0) break; // the file shrank
      n += bytesRead;
    }
    return n === buf.length ? buf : buf.slice(0, n);
  } catch (e) {
    if (e instanceof LatteError) throw e;
    throw bad(`cannot read image ${path}: ${(e as Error).message}`, e);
  } finally {
    await fh.close().catch(() => {});
  }
}

/** Checks a caller-made {width, height, data}: positive integer size within maxPixels, 8-bit RGB or RGBA bytes of the exact length. */
export function checkRgbImage(img: unknown, maxPixels = Infinity): asserts img is RgbImage {
  if (!img || typeof img !== 'object') throw bad(`an RGB image must be an object {width, height, data}, got ${describe(img)}`);
  const { width: w, height: h, data } = img as Record<string, unknown>;
  if (typeof w !== 'number' || typeof h !== 'number' || !Number.isSafeInteger(w) || !Number.isSafeInteger(h) || w <= 0 || h <= 0)
    throw bad(`bad image size ${describe(w)}x${describe(h)}: width and height must be positive integers`);
  checkPixels(w, h, maxPixels);
  if (!types.isUint8Array(data) && !types.isUint8ClampedArray(data))
    throw bad(`image data must be a Uint8Array (or Uint8ClampedArray, or Buffer) of 8-bit RGB or RGBA samples, got ${describe(data)}`);
  if (data.length !== w * h * 3 && data.length !== w * h * 4)
    throw bad(`image data has ${data.length} bytes, not RGB or RGBA for ${w}x${h} (${w * h * 3} or ${w * h * 4} bytes)`);
}
