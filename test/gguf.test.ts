// The bench's GGUF writer (lib/bench/gguf.ts, gguf-qwen2.ts), read back by a minimal GGUF reader written
// here from the format's definition: header, typed KVs (arrays of strings too), tensor infos with dims
// in GGML order (PyTorch's reversed), 32-byte alignment, and the data: F32 exact, BF16 / F16 rounded to
// nearest even, Q8_0 blocks (f16 scale, 32 int8) decoding to the q8 rule's weights exactly. Then the
// tiny fixture's decoder as llama.cpp's qwen2. No node-llama-cpp needed; where it is installed, one more
// test runs llama.cpp on those GGUFs and checks its greedy tokens against ours.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { GGUF_ALIGNMENT, kv, writeGguf, type GgmlTypeName } from '../lib/bench/gguf.ts';
import { writeQwen2Gguf, type DecoderWeights } from '../lib/bench/gguf-qwen2.ts';
import { findLlamaModule } from '../lib/bench/peer-llama.ts';
import { Qwen2VL } from '../lib/index.ts';
import { dequantiseQ8, roundF16 } from './helpers/q8-reference.ts';
import { fromBf16Bits, randn, roundBf16 } from './helpers/reference.ts';

const TINY = fileURLToPath(new URL('fixtures/tiny-model/vlm/', import.meta.url));

// ---- a minimal GGUF reader ----

interface Info {
  name: string;
  dims: number[];
  type: number;
  offset: number;
}
interface Gguf {
  version: number;
  kv: Map<string, unknown>;
  tensors: Info[];
  dataStart: number;
  bytes: Buffer;
}

const f16 = (h: number): number => {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 31;
  const m = h & 1023;
  return e === 0 ? s * m * 2 ** -24 : s * (1 + m / 1024) * 2 ** (e - 15);
};

function readGguf(file: string): Gguf {
  const b = fs.readFileSync(file);
  let p = 0;
  const u32 = () => ((p += 4), b.readUInt32LE(p - 4));
  const u64 = () => ((p += 8), Number(b.readBigUInt64LE(p - 8)));
  const str = () => {
    const n = u64();
    return ((p += n), b.toString('utf8', p - n, p));
  };
  const value = (t: number): unknown => {
    switch (t) {
      case 4: return u32();
      case 5: return ((p += 4), b.readInt32LE(p - 4));
      case 6: return ((p += 4), b.readFloatLE(p - 4));
      case 7: return ((p += 1), b[p - 1] === 1);
      case 8: return str();
      case 10: return u64();
      case 9: {
        const et = u32();
        return Array.from({ length: u64() }, () => value(et));
      }
      default: throw new Error(`value type ${t} at ${p}`);
    }
  };
  if (b.toString('latin1', 0, 4) !== 'GGUF') throw new Error('magic');
  p = 4;
  const version = u32();
  const nt = u64();
  const nkv = u64();
  const kvs = new Map<string, unknown>();
  for (let i = 0; i < nkv; i++) {
    const k = str();
    kvs.set(k, value(u32()));
  }
  const tensors: Info[] = [];
  for (let i = 0; i < nt; i++) {
    const name = str();
    const nd = u32();
    const dims = Array.from({ length: nd }, u64);
    tensors.push({ name, dims, type: u32(), offset: u64() });
  }
  const align = (kvs.get('general.alignment') as number) ?? 32;
  return { version, kv: kvs, tensors, dataStart: Math.ceil(p / align) * align, bytes: b };
}

/** A tensor's values, decoded from its type (0 F32, 1 F16, 8 Q8_0, 30 BF16), in PyTorch order. */
function values(g: Gguf, name: string): Float32Array {
  const t = g.tensors.find((x) => x.name === name);
  if (!t) throw new Error(`no tensor ${name}`);
  const n = t.dims.reduce((a, c) => a * c, 1);
  const at = g.dataStart + t.offset;
  const out = new Float32Array(n);
  const b = g.bytes;
  if (t.type === 0) for (let i = 0; i < n; i++) out[i] = b.readFloatLE(at + 4 * i);
  else if (t.type === 1) for (let i = 0; i < n; i++) out[i] = f16(b.readUInt16LE(at + 2 * i));
  else if (t.type === 30) for (let i = 0; i < n; i++) out[i] = fromBf16Bits(b.readUInt16LE(at + 2 * i));
  else if (t.type === 8)
    for (let blk = 0; blk < n / 32; blk++) {
      const d = f16(b.readUInt16LE(at + 34 * blk));
      for (let j = 0; j < 32; j++) out[32 * blk + j] = b.readInt8(at + 34 * blk + 2 + j) * d;
    }
  else throw new Error(`type ${t.type}`);
  return out;
}

const tmpDir = (t: { teardown(f: () => void): void }) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-gguf-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
};

// ---- the format ----

test('writeGguf: header, typed KVs, tensor infos (dims reversed, aligned offsets) and each type\'s data', async (t) => {
  const file = path.join(tmpDir(t), 'small.gguf');
  // shapes in PyTorch order; rows of 64 and 96 (Q8_0 wants a multiple of 32), a 1-D and a 3-D tensor
  const specs: { name: string; shape: number[]; type: GgmlTypeName }[] = [
    { name: 'a.f32', shape: [3, 5], type: 'F32' },
    { name: 'b.bf16', shape: [7, 64], type: 'BF16' },
    { name: 'c.f16', shape: [2, 3, 4], type: 'F16' },
    { name: 'd.q8', shape: [5, 96], type: 'Q8_0' },
    { name: 'e.norm', shape: [13], type: 'F32' },
  ];
  const data = new Map(specs.map((s, i) => [s.name, randn(s.shape.reduce((a, c) => a * c, 1), 11 + i, 0.5)]));
  data.get('d.q8')!.fill(0, 32, 64); // an all-zero block: scale 0
  const tokens = ['a', 'bc', 'ĠĊ', '<|x|>'];
  await writeGguf(
    file,
    [
      ['general.architecture', kv.str('test')],
      ['test.count', kv.u32(7)],
      ['test.eps', kv.f32(1e-6)],
      ['test.flag', kv.bool(true)],
      ['test.tokens', kv.strs(tokens)],
      ['test.types', kv.i32s([1, -3, 5, 6])],
    ],
    // rows of the flattened [rows, last dim] view, as the writer reads them
    specs.map((s) => ({ ...s, read: async (r, k) => data.get(s.name)!.slice(r * s.shape.at(-1)!, (r + k) * s.shape.at(-1)!) })),
  );
  const g = readGguf(file);
  t.is(g.version, 3);
  t.deepEqual([...g.kv.keys()], ['general.architecture', 'test.count', 'test.eps', 'test.flag', 'test.tokens', 'test.types', 'general.alignment']);
  t.is(g.kv.get('test.count'), 7);
  t.is(g.kv.get('test.eps'), Math.fround(1e-6));
  t.is(g.kv.get('test.flag'), true);
  t.deepEqual(g.kv.get('test.tokens'), tokens);
  t.deepEqual(g.kv.get('test.types'), [1, -3, 5, 6]);
  t.is(g.kv.get('general.alignment'), GGUF_ALIGNMENT);
  t.is(g.dataStart % GGUF_ALIGNMENT, 0);
  t.deepEqual(g.tensors.map((x) => x.name), specs.map((s) => s.name));
  for (const [i, s] of specs.entries()) {
    const info = g.tensors[i];
    t.deepEqual(info.dims, [...s.shape].reverse(), `${s.name}: dims in GGML order`);
    t.is(info.offset % GGUF_ALIGNMENT, 0, `${s.name}: aligned`);
  }
  t.is(g.bytes.length, g.dataStart + g.tensors.at(-1)!.offset + 64, 'the file ends with the last tensor, padded to the alignment');
  t.deepEqual(values(g, 'a.f32'), data.get('a.f32'));
  t.deepEqual(values(g, 'e.norm'), data.get('e.norm'));
  t.deepEqual(values(g, 'b.bf16'), roundBf16(data.get('b.bf16')!));
  t.deepEqual(values(g, 'c.f16'), Float32Array.from(data.get('c.f16')!, roundF16));
  // Q8_0: the q8 rule's weights bit for bit (q * d, d an f16 value), the zero block included
  t.deepEqual(values(g, 'd.q8'), dequantiseQ8(data.get('d.q8')!, 5, 96));
});

// ---- the tiny fixture's decoder as llama.cpp's qwen2 ----

function safetensorsF32(file: string): Map<string, Float32Array> {
  const b = fs.readFileSync(file);
  const n = Number(b.readBigUInt64LE(0));
  const header = JSON.parse(b.toString('utf8', 8, 8 + n)) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const out = new Map<string, Float32Array>();
  for (const [name, e] of Object.entries(header)) {
    if (name === '__metadata__' || e.dtype !== 'F32') continue;
    out.set(name, new Float32Array(b.buffer.slice(b.byteOffset + 8 + n + e.data_offsets[0], b.byteOffset + 8 + n + e.data_offsets[1])));
  }
  return out;
}

test('writeQwen2Gguf: qwen2 metadata, the tokenizer padded to the vocabulary, tensors and types per weights option', async (t) => {
  const dir = tmpDir(t);
  const config = JSON.parse(fs.readFileSync(path.join(TINY, 'config.json'), 'utf8'));
  const tok = JSON.parse(fs.readFileSync(path.join(TINY, 'tokenizer.json'), 'utf8'));
  const st = safetensorsF32(path.join(TINY, 'model.safetensors'));
  const emb = st.get('model.embed_tokens.weight')!;
  const [V, H, L] = [config.vocab_size, config.hidden_size, config.num_hidden_layers];
  for (const weights of ['f32', 'bf16', 'q8'] as DecoderWeights[]) {
    const file = path.join(dir, `${weights}.gguf`);
    await writeQwen2Gguf(TINY, file, weights);
    const g = readGguf(file);
    const m = (k: string) => g.kv.get(k);
    t.is(m('general.architecture'), 'qwen2');
    t.is(m('qwen2.block_count'), L);
    t.is(m('qwen2.embedding_length'), H);
    t.is(m('qwen2.feed_forward_length'), config.intermediate_size);
    t.is(m('qwen2.attention.head_count'), config.num_attention_heads);
    t.is(m('qwen2.attention.head_count_kv'), config.num_key_value_heads);
    t.is(m('qwen2.context_length'), config.max_position_embeddings);
    t.is(m('qwen2.rope.freq_base'), Math.fround(config.rope_theta));
    t.is(m('qwen2.attention.layer_norm_rms_epsilon'), Math.fround(config.rms_norm_eps));
    t.is(m('tokenizer.ggml.model'), 'gpt2');
    t.is(m('tokenizer.ggml.pre'), 'qwen2');
    const tokens = m('tokenizer.ggml.tokens') as string[];
    const types = m('tokenizer.ggml.token_type') as number[];
    t.is(tokens.length, V, 'one token per embedding row');
    for (const [text, id] of Object.entries(tok.model.vocab as Record<string, number>)) if (tokens[id] !== text || types[id] !== 1) t.fail(`token ${id}`);
    for (const a of tok.added_tokens) t.deepEqual([tokens[a.id], types[a.id]], [a.content, 3], `${a.content}: a control token`);
    t.is(types.filter((x) => x === 5).length, V - Object.keys(tok.model.vocab).length - tok.added_tokens.length, 'the rest unused padding');
    t.deepEqual(m('tokenizer.ggml.merges'), tok.model.merges.map((x: string | string[]) => (typeof x === 'string' ? x : x.join(' '))));
    t.is(m('tokenizer.ggml.eos_token_id'), tok.added_tokens.find((a: { content: string }) => a.content === '<|im_end|>').id);

    const names = g.tensors.map((x) => x.name);
    t.is(names.length, 2 + 12 * L + (weights === 'q8' ? 1 : 0), `${weights}: tensor count`);
    t.true(names.includes('blk.3.attn_q.bias') && names.includes('blk.0.ffn_down.weight') && names.includes('output_norm.weight'));
    const type = (name: string) => g.tensors.find((x) => x.name === name)!.type;
    const linear = { f32: 0, bf16: 30, q8: 8 }[weights];
    t.is(type('blk.1.attn_k.weight'), linear);
    t.is(type('blk.1.ffn_up.weight'), linear);
    t.is(type('blk.1.attn_k.bias'), 0, 'biases stay f32');
    t.is(type('blk.1.ffn_norm.weight'), 0, 'norms stay f32');
    t.is(type('token_embd.weight'), weights === 'f32' ? 0 : 30);
    t.deepEqual(g.tensors.find((x) => x.name === 'blk.0.ffn_gate.weight')!.dims, [H, config.intermediate_size], 'dims reversed');
    const down = st.get('model.layers.2.mlp.down_proj.weight')!;
    const want = { f32: down, bf16: roundBf16(down), q8: dequantiseQ8(down, H, config.intermediate_size) }[weights];
    t.deepEqual(values(g, 'blk.2.ffn_down.weight'), want, `${weights}: the weights ours computes with`);
    if (weights === 'q8') t.deepEqual(values(g, 'output.weight'), dequantiseQ8(roundBf16(emb), V, H), 'the tied head, quantised from the bf16 embedding');
    else t.false(names.includes('output.weight'), 'tied: llama.cpp uses token_embd');
  }
});

// ---- llama.cpp itself, where node-llama-cpp is installed ----

const llama = findLlamaModule();
if (!llama) {
  // not registered (so never counted as a pass): CI has no node-llama-cpp
  console.log('gguf.test.ts: node-llama-cpp not found (beside latte-flow or from the current folder): the llama.cpp token check is not run');
} else {
  test(`node-llama-cpp ${llama.version}: greedy tokens on the tiny fixture's GGUFs equal ours (f32, bf16, q8)`, async (t) => {
    const dir = tmpDir(t);
    interface Ctx {
      getSequence(): { evaluate(tokens: number[]): AsyncGenerator<number> };
      dispose(): Promise<void>;
    }
    interface Model {
      createContext(o: object): Promise<Ctx>;
      dispose(): Promise<void>;
    }
    const { getLlama } = (await import(pathToFileURL(llama.entry).href)) as { getLlama(o: object): Promise<{ loadModel(o: object): Promise<Model> }> };
    const lib = await getLlama({ gpu: false, build: 'never', logLevel: 'error' });
    const prompt = Array.from({ length: 12 }, (_, i) => (7 + i * 37) % 290);
    const n = 10;
    for (const weights of ['f32', 'bf16', 'q8'] as DecoderWeights[]) {
      const file = path.join(dir, `${weights}.gguf`);
      await writeQwen2Gguf(TINY, file, weights);
      const model = await lib.loadModel({ modelPath: file });
      const ctx = await model.createContext({ contextSize: 64, threads: 1 });
      const theirs: number[] = [];
      for await (const tok of ctx.getSequence().evaluate(prompt)) if (theirs.push(tok) >= n) break;
      await ctx.dispose();
      await model.dispose();

      const m = await Qwen2VL.load(TINY, { backend: 'cpu', threads: 1, weights });
      const seq = m.newSequence();
      const pos = new Int32Array(3 * prompt.length).map((_, i) => i % prompt.length);
      let tok = m.sample(seq, m.prefill(seq, Int32Array.from(prompt), [], pos));
      const ours: number[] = [];
      for (let i = 0; i < n; i++) {
        ours.push(Number((await tok.read())[0]));
        if (i + 1 < n) tok = m.decode(seq, tok);
      }
      seq.release();
      await m.dispose();
      t.deepEqual(theirs, ours, `${weights}: llama.cpp ${theirs.join(' ')} vs ours ${ours.join(' ')}`);
    }
  });
}
