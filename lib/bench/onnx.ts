/**
 * A minimal ONNX writer: just enough protobuf to build a model in memory (nodes, float/int64
 * initializers, typed inputs/outputs with symbolic dims) and hand the bytes to onnxruntime.
 * Field numbers follow onnx/onnx.proto (IR version 8, opset 17). Weights become initializers
 * (raw_data), so onnxruntime can pre-pack them exactly as it would for an exported checkpoint, and
 * nothing large is ever written to the repository.
 */

// ---- protobuf wire format ----------------------------------------------------------------------
class Writer {
  #chunks: Uint8Array[] = [];
  #len = 0;

  #push(b: Uint8Array): void {
    this.#chunks.push(b);
    this.#len += b.length;
  }
  #varint(v: bigint | number): void {
    let n = BigInt.asUintN(64, BigInt(v));
    const out: number[] = [];
    while (n >= 0x80n) {
      out.push(Number(n & 0x7fn) | 0x80);
      n >>= 7n;
    }
    out.push(Number(n));
    this.#push(Uint8Array.from(out));
  }
  #tag(field: number, wire: number): void {
    this.#varint((field << 3) | wire);
  }
  int(field: number, v: number | bigint): this {
    this.#tag(field, 0);
    this.#varint(v);
    return this;
  }
  float(field: number, v: number): this {
    this.#tag(field, 5);
    const b = new Uint8Array(4);
    new DataView(b.buffer).setFloat32(0, v, true);
    this.#push(b);
    return this;
  }
  bytes(field: number, b: Uint8Array): this {
    this.#tag(field, 2);
    this.#varint(b.length);
    this.#push(b);
    return this;
  }
  string(field: number, s: string): this {
    return this.bytes(field, new TextEncoder().encode(s));
  }
  message(field: number, m: Writer): this {
    return this.bytes(field, m.finish());
  }
  finish(): Uint8Array {
    const out = new Uint8Array(this.#len);
    let o = 0;
    for (const c of this.#chunks) {
      out.set(c, o);
      o += c.length;
    }
    return out;
  }
}

// ---- ONNX messages -----------------------------------------------------------------------------
const FLOAT = 1;
const INT64 = 7;
type Attr = number | number[] | string;
export type Dim = number | string;

export interface Node {
  op: string;
  inputs: string[];
  outputs: string[];
  attrs?: Record<string, Attr>;
}

function attribute(name: string, v: Attr): Writer {
  const w = new Writer().string(1, name);
  if (typeof v === 'string') return w.bytes(4, new TextEncoder().encode(v)).int(20, 3);
  if (Array.isArray(v)) {
    for (const x of v) w.int(8, x);
    return w.int(20, 7); // INTS
  }
  if (Number.isInteger(v)) return w.int(3, v).int(20, 2); // INT
  return w.float(2, v).int(20, 1); // FLOAT
}

function tensorProto(name: string, dims: number[], type: number, raw: Uint8Array): Writer {
  const w = new Writer();
  for (const d of dims) w.int(1, d);
  return w.int(2, type).string(8, name).bytes(9, raw);
}

function valueInfo(name: string, dims: Dim[]): Writer {
  const shape = new Writer();
  for (const d of dims) shape.message(1, typeof d === 'number' ? new Writer().int(1, d) : new Writer().string(2, d));
  const tensorType = new Writer().int(1, FLOAT).message(2, shape);
  return new Writer().string(1, name).message(2, new Writer().message(1, tensorType));
}

/** Builds a graph node by node; `build()` returns a serialized ModelProto. */
export class GraphBuilder {
  #nodes: Writer[] = [];
  #inits: Writer[] = [];
  #inputs: Writer[] = [];
  #outputs: Writer[] = [];
  #n = 0;

  input(name: string, dims: Dim[]): string {
    this.#inputs.push(valueInfo(name, dims));
    return name;
  }
  output(name: string, dims: Dim[]): void {
    this.#outputs.push(valueInfo(name, dims));
  }
  /** A float32 initializer (copied as raw little-endian bytes). */
  weight(name: string, data: Float32Array, dims: number[]): string {
    const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
    this.#inits.push(tensorProto(name, dims, FLOAT, raw));
    return name;
  }
  scalar(v: number): string {
    return this.weight(`c${this.#n++}`, Float32Array.of(v), []);
  }
  ints(v: number[]): string {
    const name = `i${this.#n++}`;
    const raw = new Uint8Array(new BigInt64Array(v.map((x) => BigInt(x))).buffer);
    this.#inits.push(tensorProto(name, [v.length], INT64, raw));
    return name;
  }
  /** Adds a node; returns its (first) output name, fresh unless `out` is given. */
  op(op: string, inputs: string[], attrs?: Record<string, Attr>, out?: string): string {
    const o = out ?? `t${this.#n++}_${op}`;
    const w = new Writer();
    for (const i of inputs) w.string(1, i);
    w.string(2, o).string(3, `n${this.#n++}`).string(4, op);
    for (const [k, v] of Object.entries(attrs ?? {})) w.message(5, attribute(k, v));
    this.#nodes.push(w);
    return o;
  }
  build(graphName: string): Uint8Array {
    const g = new Writer();
    for (const n of this.#nodes) g.message(1, n);
    g.string(2, graphName);
    for (const t of this.#inits) g.message(5, t);
    for (const i of this.#inputs) g.message(11, i);
    for (const o of this.#outputs) g.message(12, o);
    return new Writer()
      .int(1, 8) // ir_version
      .string(2, 'latte-flow benchmarks')
      .message(7, g)
      .message(8, new Writer().string(1, '').int(2, 17)) // opset_import: ai.onnx 17
      .finish();
  }
}
