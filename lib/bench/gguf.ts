/**
 * A small GGUF v3 writer (llama.cpp's model format), enough for the bench to hand llama.cpp the same
 * decoder it times on our engine. Layout, all little-endian: "GGUF", version 3, tensor count (u64), KV
 * count (u64); the KV pairs (string key, u32 value type, value; arrays: u32 element type, u64 count,
 * elements); the tensor infos (name, u32 n_dims, u64 dims in GGML order = PyTorch's reversed, u32 type,
 * u64 offset into the data section); padding to the alignment; the data, each tensor aligned.
 *
 * Tensors are streamed a slab of rows at a time (a 2B vocabulary's f32 embedding is ~0.9 GB), so the
 * writer never holds more than one slab.
 */
import fs from 'node:fs';
import { Q8_BLOCK, quantiseQ8Block, roundF16 } from './q8-rule.js';

export const GGUF_ALIGNMENT = 32;

/** GGUF metadata value types (gguf.h). */
export const GgufValueType = { U8: 0, I8: 1, U16: 2, I16: 3, U32: 4, I32: 5, F32: 6, BOOL: 7, STRING: 8, ARRAY: 9, U64: 10, I64: 11, F64: 12 } as const;
/** GGML tensor types (ggml.h): the ones this writer encodes. */
export const GgmlType = { F32: 0, F16: 1, Q8_0: 8, BF16: 30 } as const;
export type GgmlTypeName = keyof typeof GgmlType;

export type GgufValue =
  | { type: 'u32' | 'i32' | 'f32' | 'u64'; value: number }
  | { type: 'bool'; value: boolean }
  | { type: 'string'; value: string }
  | { type: 'strings'; value: string[] }
  | { type: 'i32s'; value: ArrayLike<number> };

export const kv = {
  u32: (value: number): GgufValue => ({ type: 'u32', value }),
  f32: (value: number): GgufValue => ({ type: 'f32', value }),
  bool: (value: boolean): GgufValue => ({ type: 'bool', value }),
  str: (value: string): GgufValue => ({ type: 'string', value }),
  strs: (value: string[]): GgufValue => ({ type: 'strings', value }),
  i32s: (value: ArrayLike<number>): GgufValue => ({ type: 'i32s', value }),
};

export interface GgufTensor {
  name: string;
  /** PyTorch order (row-major, the last dimension contiguous); written reversed. */
  shape: number[];
  type: GgmlTypeName;
  /** rows [row0, row0 + rows) of the tensor viewed as [rows, last dim], as f32 values */
  read(row0: number, rows: number): Promise<Float32Array>;
}

const align = (n: number, a = GGUF_ALIGNMENT): number => Math.ceil(n / a) * a;

/** Bytes of one row of `n` values of `type` (Q8_0: 34 bytes per block of 32; n must be a multiple). */
export function rowBytes(type: GgmlTypeName, n: number): number {
  if (type === 'Q8_0') {
    if (n % Q8_BLOCK) throw new Error(`Q8_0 needs a last dimension that is a multiple of ${Q8_BLOCK}, got ${n}`);
    return (n / Q8_BLOCK) * (2 + Q8_BLOCK);
  }
  return n * (type === 'F32' ? 4 : 2);
}

/** The IEEE half bit pattern of a value that is already an f16 value (roundF16's output). */
export function f16Bits(v: number): number {
  const sign = v < 0 || Object.is(v, -0) ? 0x8000 : 0;
  const a = Math.abs(v);
  if (a === 0) return sign;
  if (a < 2 ** -14) return sign | Math.round(a / 2 ** -24); // subnormal
  let e = Math.floor(Math.log2(a));
  if (2 ** e > a) e--;
  if (2 ** (e + 1) <= a) e++;
  return sign | ((e + 15) << 10) | Math.round((a / 2 ** e - 1) * 1024);
}

/** bf16 bits of f32 bits `u`, rounded to nearest even (what the engine does to f32 weights loaded as bf16). */
export const bf16FromBits = (u: number): number => ((u + 0x7fff + ((u >>> 16) & 1)) >>> 16) & 0xffff;

/** Encodes `rows` rows of `n` values as `type`. */
export function encodeRows(type: GgmlTypeName, x: Float32Array, n: number): Buffer {
  const rows = x.length / n;
  // an ArrayBuffer of its own: typed views on it are aligned (a pooled Buffer's offset may be odd)
  const out = Buffer.from(new ArrayBuffer(rows * rowBytes(type, n)));
  if (type === 'F32') {
    Buffer.from(x.buffer, x.byteOffset, x.byteLength).copy(out);
  } else if (type === 'BF16') {
    const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
    const o = new Uint16Array(out.buffer);
    for (let i = 0; i < x.length; i++) o[i] = bf16FromBits(u[i]);
  } else if (type === 'F16') {
    const o = new Uint16Array(out.buffer);
    for (let i = 0; i < x.length; i++) o[i] = f16Bits(roundF16(x[i]));
  } else {
    const q = new Int8Array(out.buffer);
    let p = 0;
    for (let i = 0; i < x.length; i += Q8_BLOCK) {
      out.writeUInt16LE(f16Bits(quantiseQ8Block(x, i, Q8_BLOCK, q, p + 2)), p);
      p += 2 + Q8_BLOCK;
    }
  }
  return out;
}

class HeaderBytes {
  readonly parts: Buffer[] = [];
  u32(v: number) {
    const b = Buffer.alloc(4);
    b.writeUInt32LE(v);
    this.parts.push(b);
  }
  u64(v: number) {
    const b = Buffer.alloc(8);
    b.writeBigUInt64LE(BigInt(v));
    this.parts.push(b);
  }
  str(s: string) {
    const b = Buffer.from(s, 'utf8');
    this.u64(b.length);
    this.parts.push(b);
  }
  value(v: GgufValue) {
    const T = GgufValueType;
    const scalar = (t: number, write: (b: Buffer) => void, size: number) => {
      this.u32(t);
      const b = Buffer.alloc(size);
      write(b);
      this.parts.push(b);
    };
    switch (v.type) {
      case 'u32': return scalar(T.U32, (b) => b.writeUInt32LE(v.value), 4);
      case 'i32': return scalar(T.I32, (b) => b.writeInt32LE(v.value), 4);
      case 'f32': return scalar(T.F32, (b) => b.writeFloatLE(v.value), 4);
      case 'u64': return scalar(T.U64, (b) => b.writeBigUInt64LE(BigInt(v.value)), 8);
      case 'bool': return scalar(T.BOOL, (b) => b.writeUInt8(v.value ? 1 : 0), 1);
      case 'string':
        this.u32(T.STRING);
        return this.str(v.value);
      case 'strings':
        this.u32(T.ARRAY);
        this.u32(T.STRING);
        this.u64(v.value.length);
        for (const s of v.value) this.str(s);
        return;
      case 'i32s': {
        this.u32(T.ARRAY);
        this.u32(T.I32);
        this.u64(v.value.length);
        const b = Buffer.alloc(4 * v.value.length);
        for (let i = 0; i < v.value.length; i++) b.writeInt32LE(v.value[i], 4 * i);
        this.parts.push(b);
      }
    }
  }
}

/** ~8 MB of f32 per slab. */
const SLAB_VALUES = 2 << 20;

/** Writes `file`: general.alignment is added to `kvs`; tensors in the order given. */
export async function writeGguf(file: string, kvs: [string, GgufValue][], tensors: GgufTensor[]): Promise<void> {
  const h = new HeaderBytes();
  h.parts.push(Buffer.from('GGUF', 'latin1'));
  h.u32(3);
  h.u64(tensors.length);
  const all: [string, GgufValue][] = [...kvs.filter(([k]) => k !== 'general.alignment'), ['general.alignment', kv.u32(GGUF_ALIGNMENT)]];
  h.u64(all.length);
  for (const [k, v] of all) {
    h.str(k);
    h.value(v);
  }
  let offset = 0;
  const sizes = tensors.map((t) => {
    const n = t.shape[t.shape.length - 1];
    const rows = t.shape.slice(0, -1).reduce((a, b) => a * b, 1);
    return { n, rows, bytes: rows * rowBytes(t.type, n) };
  });
  tensors.forEach((t, i) => {
    h.str(t.name);
    h.u32(t.shape.length);
    for (const d of [...t.shape].reverse()) h.u64(d);
    h.u32(GgmlType[t.type]);
    h.u64(offset);
    offset = align(offset + sizes[i].bytes);
  });
  const header = Buffer.concat(h.parts);
  const fh = await fs.promises.open(file, 'w');
  try {
    let pos = 0;
    const write = async (b: Buffer) => {
      await fh.write(b, 0, b.length, pos);
      pos += b.length;
    };
    const pad = () => write(Buffer.alloc(align(pos) - pos));
    await write(header);
    await pad();
    for (const [i, t] of tensors.entries()) {
      const { n, rows } = sizes[i];
      const slab = Math.max(1, Math.floor(SLAB_VALUES / n));
      for (let r = 0; r < rows; r += slab) {
        const k = Math.min(slab, rows - r);
        const x = await t.read(r, k);
        if (x.length !== k * n) throw new Error(`${t.name}: read ${x.length} values for ${k} rows of ${n}`);
        await write(encodeRows(t.type, x, n));
      }
      await pad();
    }
  } finally {
    await fh.close();
  }
}
