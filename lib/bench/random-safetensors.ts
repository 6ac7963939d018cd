/**
 * Deterministic random safetensors files for tests and benchmarks at real shapes: streamed tensor
 * by tensor (never the whole file in memory), bf16 or f32, each tensor's values a function of
 * (seed, tensor name) only.
 */
import fs from 'node:fs';

/** How a tensor is filled: uniform with the given std around `mean`. */
export interface Spec {
  name: string;
  shape: number[];
  std: number;
  mean: number;
}

/** 32-bit FNV-1a of a string, for per-tensor seeds. */
function fnv1a(s: string): number {
  let h = 0x811c9dc5;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

/** One splitmix32 step, used only to derive a non-zero xorshift state from (seed, name). */
function splitmix32(x: number): number {
  x = (x + 0x9e3779b9) | 0;
  x = Math.imul(x ^ (x >>> 16), 0x85ebca6b);
  x = Math.imul(x ^ (x >>> 13), 0xc2b2ae35);
  return (x ^ (x >>> 16)) >>> 0;
}

const CHUNK = 1 << 20; // values per chunk (even)

/**
 * Fills a tensor chunk by chunk. Each xorshift32 draw (state never 0) yields two values: each 16-bit
 * half indexes a 65536-level table of the uniform distribution on [mean - a, mean + a), a = std*sqrt(3),
 * already in the output encoding (bf16 rounded to nearest even, or f32 bits). 65536 levels are far finer
 * than bf16's resolution, and a table lookup is ~3x faster than computing and converting each value.
 */
class Filler {
  private state: number;
  private readonly table: Uint16Array | Uint32Array;
  constructor(seed: number, spec: Spec, bf16: boolean) {
    this.state = splitmix32((seed ^ fnv1a(spec.name)) >>> 0) || 0x6d2b79f5;
    const a = spec.std * Math.sqrt(3);
    const f = new Float32Array(65536);
    for (let k = 0; k < 65536; k++) f[k] = spec.mean - a + ((k + 0.5) * 2 * a) / 65536;
    const bits = new Uint32Array(f.buffer);
    if (bf16) {
      // f32 -> bf16, round to nearest even (the values are finite).
      const t = new Uint16Array(65536);
      for (let k = 0; k < 65536; k++) t[k] = (bits[k]! + 0x7fff + ((bits[k]! >>> 16) & 1)) >>> 16;
      this.table = t;
    } else {
      this.table = bits;
    }
  }
  /** Writes the next n (<= CHUNK) values into out (4-byte aligned) and returns their bytes. */
  next(n: number, out: Uint8Array): Uint8Array {
    const t = this.table;
    const half = n >>> 1;
    let x = this.state;
    if (t instanceof Uint16Array) {
      const o = new Uint32Array(out.buffer, out.byteOffset, half + (n & 1));
      for (let i = 0; i < half; i++) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        o[i] = t[x & 0xffff]! | (t[x >>> 16]! << 16); // little-endian: the low half comes first
      }
      if (n & 1) {
        x ^= x << 13;
        x ^= x >>> 17;
        x ^= x << 5;
        new Uint16Array(out.buffer, out.byteOffset, n)[n - 1] = t[x >>> 16]!;
      }
      this.state = x;
      return out.subarray(0, n * 2);
    }
    const o = new Uint32Array(out.buffer, out.byteOffset, n);
    for (let i = 0; i < n; i += 2) {
      x ^= x << 13;
      x ^= x >>> 17;
      x ^= x << 5;
      o[i] = t[x & 0xffff]!;
      if (i + 1 < n) o[i + 1] = t[x >>> 16]!;
    }
    this.state = x;
    return out.subarray(0, n * 4);
  }
}

/** Writes `specs` into `file` (via a temporary name, so an interrupted run leaves no plausible file). */
export async function writeRandomSafetensors(file: string, specs: Spec[], seed: number, bf16: boolean): Promise<void> {
  const elt = bf16 ? 2 : 4;
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  let off = 0;
  for (const s of specs) {
    const bytes = s.shape.reduce((a, b) => a * b, 1) * elt;
    header[s.name] = { dtype: bf16 ? 'BF16' : 'F32', shape: s.shape, data_offsets: [off, off + bytes] };
    off += bytes;
  }
  let json = JSON.stringify(header);
  json += ' '.repeat((8 - (Buffer.byteLength(json) % 8)) % 8);
  const head = Buffer.alloc(8 + Buffer.byteLength(json));
  head.writeBigUInt64LE(BigInt(Buffer.byteLength(json)), 0);
  head.write(json, 8, 'utf8');

  // Write to a temporary name and rename, so an interrupted run never leaves a plausible file.
  const stPath = file;
  const tmpPath = stPath + '.tmp';
  const fh = await fs.promises.open(tmpPath, 'w');
  try {
    await fh.write(head);
    const bufs = [new Uint8Array(CHUNK * 4), new Uint8Array(CHUNK * 4)];
    let which = 0;
    let pending: Promise<unknown> = Promise.resolve();
    for (const s of specs) {
      const filler = new Filler(seed, s, bf16);
      let left = s.shape.reduce((a, b) => a * b, 1);
      while (left > 0) {
        const n = Math.min(left, CHUNK);
        // bufs[which] was last handed to the write before `pending`, which has completed.
        const bytes = filler.next(n, bufs[which]!);
        await pending;
        pending = fh.write(bytes);
        which ^= 1;
        left -= n;
      }
    }
    await pending;
  } finally {
    await fh.close();
  }
  await fs.promises.rename(tmpPath, stPath);
}
