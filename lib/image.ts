/**
 * Qwen2-VL image preprocessing, numerically identical to Hugging Face's PIL-based
 * Qwen2VLImageProcessor (and to tools/reference/latte_ref/preprocess.py, which hf_parity.py checks
 * against Pillow): smart resize to multiples of patch*merge within [min_pixels, max_pixels], Pillow's
 * bicubic (a = -0.5, antialiased, 22-bit fixed point, horizontal pass then vertical, each rounded to
 * uint8), rescale, normalise, and patchify into [grid_t*grid_h*grid_w, C*T*P*P] in HF's order.
 * imageToPixels runs decoding (image-decode.ts, image-png.ts) and this preprocessing in a worker
 * thread (image-worker.ts) under size limits checked before decoding.
 */
import { types } from 'node:util';
import { ensure, LatteError } from './errors.js';
import { checkBytes, checkRgbImage, readImageFile, resolveLimits, type ImageLimits } from './image-decode.js';
import type { ImageTask } from './image-task.js';
import { runInWorker } from './image-worker.js';

export { DEFAULT_IMAGE_LIMITS, type ImageLimits } from './image-decode.js';

export interface RgbImage {
  width: number;
  height: number;
  /** Row-major 8-bit pixels, 3 (RGB) or 4 (RGBA, alpha dropped) channels. */
  data: Uint8Array | Uint8ClampedArray;
}

export interface PreprocessorConfig {
  min_pixels: number;
  max_pixels: number;
  patch_size: number;
  temporal_patch_size: number;
  merge_size: number;
  rescale_factor: number;
  image_mean: number[];
  image_std: number[];
}

export interface PixelValues {
  data: Float32Array; // [rows, C*T*P*P]
  shape: [number, number];
  grid: [number, number, number]; // (t, h, w) in patches
}

/** A path or encoded bytes as a fresh buffer the worker may take. */
async function encodedBytes(input: unknown, limits: ImageLimits): Promise<Uint8Array> {
  if (typeof input === 'string') return readImageFile(input, limits);
  if (!types.isUint8Array(input)) throw new LatteError('E_BAD_IMAGE', 'image must be a path, the bytes of a PNG/JPEG file, or {width, height, data}');
  checkBytes(input.length, limits.maxBytes);
  const copy = new Uint8Array(input.length); // the caller keeps its own buffer
  copy.set(input);
  return copy;
}

/**
 * Decodes a PNG or JPEG (a path or the file's bytes) to 8-bit RGB, in the image worker. The size the
 * header declares is checked against `limits` (default DEFAULT_IMAGE_LIMITS) before decoding. Grey,
 * palette, low-bit and 16-bit PNGs are converted; alpha is dropped. Failures are E_BAD_IMAGE.
 */
export async function decodeImage(input: string | Uint8Array, limits?: Partial<ImageLimits>): Promise<RgbImage> {
  const l = resolveLimits(limits);
  const bytes = await encodedBytes(input, l);
  return (await runInWorker({ op: 'decode', bytes, limits: l }, [bytes.buffer as ArrayBuffer])) as RgbImage;
}

/**
 * The one entry point from an image to the model's pixel values: a path, PNG/JPEG bytes or an RGB(A)
 * image is checked against `limits`, decoded and preprocessed (preprocessImage) in the image worker,
 * off the event loop. `source` is the original (width, height). Failures are E_BAD_IMAGE.
 */
export async function imageToPixels(input: string | Uint8Array | RgbImage, cfg: PreprocessorConfig, limits?: Partial<ImageLimits>): Promise<PixelValues & { source: [number, number] }> {
  const l = resolveLimits(limits);
  let task: ImageTask;
  if (typeof input === 'string' || types.isUint8Array(input)) task = { op: 'pixels', bytes: await encodedBytes(input, l), limits: l, cfg };
  else {
    if (!input || typeof input !== 'object') throw new LatteError('E_BAD_IMAGE', 'image must be a path, the bytes of a PNG/JPEG file, or {width, height, data}');
    checkRgbImage(input, l.maxPixels);
    const data = new Uint8Array(input.data.length); // a copy the worker may take
    data.set(input.data);
    task = { op: 'pixels', rgb: { width: input.width, height: input.height, data }, limits: l, cfg };
  }
  const buf = 'rgb' in task ? task.rgb.data.buffer : task.bytes.buffer;
  return (await runInWorker(task, [buf as ArrayBuffer])) as PixelValues & { source: [number, number] };
}

/** Python's round(): halves go to the even neighbour (HF computes the target size with it). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

export function smartResize(height: number, width: number, factor: number, minPixels: number, maxPixels: number): [number, number] {
  ensure(Math.max(height, width) / Math.min(height, width) <= 200, `image aspect ratio ${width}x${height} is above 200`);
  let h = roundHalfEven(height / factor) * factor;
  let w = roundHalfEven(width / factor) * factor;
  if (h * w > maxPixels) {
    const beta = Math.sqrt((height * width) / maxPixels);
    h = Math.max(factor, Math.floor(height / beta / factor) * factor);
    w = Math.max(factor, Math.floor(width / beta / factor) * factor);
  } else if (h * w < minPixels) {
    const beta = Math.sqrt(minPixels / (height * width));
    h = Math.ceil((height * beta) / factor) * factor;
    w = Math.ceil((width * beta) / factor) * factor;
  }
  return [h, w];
}

const PRECISION_BITS = 22;
const ONE = 2 ** PRECISION_BITS;

function cubic(x: number): number {
  const a = -0.5;
  x = Math.abs(x);
  if (x < 1) return ((a + 2) * x - (a + 3)) * x * x + 1;
  if (x < 2) return (((x - 5) * x + 8) * x - 4) * a;
  return 0;
}

/** Pillow's precompute_coeffs + normalize_coeffs_8bpc: first input index and integer taps per output. */
function coeffs(inSize: number, outSize: number): { xmin: Int32Array; taps: Float64Array[] } {
  const scale = inSize / outSize;
  const fscale = Math.max(scale, 1);
  const support = 2 * fscale;
  const xmin = new Int32Array(outSize);
  const taps: Float64Array[] = [];
  for (let xx = 0; xx < outSize; xx++) {
    const center = (xx + 0.5) * scale;
    const lo = Math.max(Math.trunc(center - support + 0.5), 0);
    const n = Math.min(Math.trunc(center + support + 0.5), inSize) - lo;
    const ss = 1 / fscale;
    const w = Array.from({ length: n }, (_, x) => cubic((x + lo - center + 0.5) * ss));
    const ww = w.reduce((s, v) => s + v, 0);
    taps.push(Float64Array.from(w, (v) => {
      const k = ww !== 0 ? v / ww : v;
      return k < 0 ? Math.trunc(-0.5 + k * ONE) : Math.trunc(0.5 + k * ONE);
    }));
    xmin[xx] = lo;
  }
  return { xmin, taps };
}

/** One pass along x (horizontal) or y; integer sums stay exact in doubles (< 2^53). */
function pass(src: Uint8Array, h: number, w: number, c: number, horizontal: boolean, outSize: number): Uint8Array {
  const inSize = horizontal ? w : h;
  const { xmin, taps } = coeffs(inSize, outSize);
  const oh = horizontal ? h : outSize;
  const ow = horizontal ? outSize : w;
  const out = new Uint8Array(oh * ow * c);
  for (let y = 0; y < oh; y++)
    for (let x = 0; x < ow; x++) {
      const o = horizontal ? x : y;
      const t = taps[o];
      for (let ch = 0; ch < c; ch++) {
        let acc = ONE / 2;
        for (let j = 0; j < t.length; j++) {
          const i = xmin[o] + j;
          acc += t[j] * src[horizontal ? (y * w + i) * c + ch : (i * w + x) * c + ch];
        }
        const v = Math.floor(acc / ONE);
        out[(y * ow + x) * c + ch] = v < 0 ? 0 : v > 255 ? 255 : v;
      }
    }
  return out;
}

/** uint8 [h, w, c] -> uint8 [outH, outW, c], the same bytes as PIL Image.resize(BICUBIC). */
export function resizeBicubic(src: Uint8Array, h: number, w: number, c: number, outH: number, outW: number): Uint8Array {
  let x = src;
  if (outW !== w) x = pass(x, h, w, c, true, outW);
  if (outH !== h) x = pass(x, h, outW, c, false, outH);
  return x;
}

/**
 * The processor's patch order, the one place it is defined: [2, gh*gw] row-major, the grid row of
 * every pixel-value row, then its grid column. Windows of M x M patches (what the vision merger joins
 * into one token) are contiguous, windows row-major, patches row-major within a window, as in HF's
 * Qwen2VLImageProcessor. preprocessImage lays the pixels out in it; the vision tower rotates each row
 * by these coordinates (Qwen2VL.encodeImage).
 */
export function patchOrder(gh: number, gw: number, M: number): Int32Array {
  const n = gh * gw;
  const at = new Int32Array(2 * n);
  let r = 0;
  for (let by = 0; by < gh / M; by++)
    for (let bx = 0; bx < gw / M; bx++)
      for (let my = 0; my < M; my++)
        for (let mx = 0; mx < M; mx++, r++) {
          at[r] = by * M + my;
          at[n + r] = bx * M + mx;
        }
  return at;
}

export function preprocessImage(img: RgbImage, cfg: PreprocessorConfig): PixelValues {
  checkRgbImage(img); // E_BAD_IMAGE unless 8-bit RGB or RGBA bytes of the exact length
  const { width, height, data } = img;
  const channels = data.length / (width * height);
  let rgb = data instanceof Uint8Array ? data : new Uint8Array(data.buffer, data.byteOffset, data.length);
  if (channels === 4) rgb = rgb.filter((_, i) => i % 4 !== 3);
  const P = cfg.patch_size;
  const T = cfg.temporal_patch_size;
  const M = cfg.merge_size;
  const [h, w] = smartResize(height, width, P * M, cfg.min_pixels, cfg.max_pixels);
  const resized = resizeBicubic(rgb, height, width, 3, h, w);
  const mean = cfg.image_mean.map(Math.fround);
  const std = cfg.image_std.map(Math.fround);
  // [H, W, C] uint8 -> normalised f32 in the reference's order of operations
  const norm = new Float32Array(resized.length);
  for (let i = 0; i < resized.length; i++) {
    const ch = i % 3;
    norm[i] = Math.fround(Math.fround(Math.fround(resized[i] * cfg.rescale_factor) - mean[ch]) / std[ch]);
  }
  const gh = h / P;
  const gw = w / P;
  const row = 3 * T * P * P;
  const out = new Float32Array(gh * gw * row);
  // patches in the processor's order (patchOrder); inside a patch (channel, frame, y, x)
  const n = gh * gw;
  const order = patchOrder(gh, gw, M);
  for (let r = 0; r < n; r++) {
    const py0 = order[r] * P;
    const px0 = order[n + r] * P;
    let k = r * row;
    for (let ch = 0; ch < 3; ch++)
      for (let f = 0; f < T; f++) // a still image repeated over the temporal patch
        for (let y = 0; y < P; y++)
          for (let x = 0; x < P; x++) out[k++] = norm[((py0 + y) * w + px0 + x) * 3 + ch];
  }
  return { data: out, shape: [gh * gw, row], grid: [1, gh, gw] };
}
