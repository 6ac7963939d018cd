/**
 * A Qwen2-VL checkpoint's text decoder as a GGUF for llama.cpp's `qwen2` architecture, so the bench can
 * time llama.cpp on the same decoder and weights as ours. Text-only decode needs no M-RoPE: its three
 * position axes are equal, and M-RoPE with equal positions is the plain rotate-half ("neox") RoPE that
 * llama.cpp applies to qwen2, with the same theta. The vision tower is left out.
 *
 * Weight types mirror what our engine computes with for each `weights` option, so both sides do the
 * same arithmetic on the same values:
 *   - f32:  every tensor F32 (tied LM head: no output.weight).
 *   - bf16: linear weights BF16 (round to nearest even, as our load does); norms, biases F32.
 *   - q8:   linear weights and the LM head Q8_0, quantised by our q8 rule (lib/bench/q8-rule.ts), so the
 *           int8 values and scales are ours bit for bit; the embedding table BF16, as ours keeps it.
 * The tokenizer comes from the checkpoint's tokenizer.json (byte-level BPE, "gpt2" in llama.cpp),
 * padded with unused tokens to the embedding's rows, as llama.cpp wants one token per row.
 */
import fs from 'node:fs';
import path from 'node:path';
import { bf16FromBits, kv, writeGguf, type GgmlTypeName, type GgufTensor, type GgufValue } from './gguf.js';

export type DecoderWeights = 'f32' | 'bf16' | 'q8';

/** llama.cpp's token types (llama_token_type). */
const TOKEN = { NORMAL: 1, CONTROL: 3, USER_DEFINED: 4, UNUSED: 5 } as const;
/** llama.cpp's file types (llama_ftype), shown by its loader. */
const FILE_TYPE: Record<DecoderWeights, number> = { f32: 0, bf16: 32, q8: 7 };

interface StEntry {
  dtype: string;
  shape: number[];
  data_offsets: [number, number];
}

/** The tensors of a single-file safetensors checkpoint, read a slab of rows at a time as f32. */
class Safetensors {
  readonly entries: Record<string, StEntry>;
  readonly #fd: number;
  readonly #base: number;
  constructor(file: string) {
    this.#fd = fs.openSync(file, 'r');
    const len = Buffer.alloc(8);
    fs.readSync(this.#fd, len, 0, 8, 0);
    const n = Number(len.readBigUInt64LE());
    const json = Buffer.alloc(n);
    fs.readSync(this.#fd, json, 0, n, 8);
    const { __metadata__: _, ...entries } = JSON.parse(json.toString('utf8')) as Record<string, StEntry>;
    this.entries = entries;
    this.#base = 8 + n;
  }
  shape(name: string): number[] {
    const e = this.entries[name];
    if (!e) throw new Error(`the checkpoint has no ${name}`);
    return e.shape;
  }
  async rows(name: string, row0: number, rows: number): Promise<Float32Array> {
    const e = this.entries[name];
    const n = e.shape.length > 1 ? e.shape[e.shape.length - 1] : e.shape[0] ?? 1;
    const size = e.dtype === 'F32' ? 4 : e.dtype === 'BF16' ? 2 : 0;
    if (!size) throw new Error(`${name}: ${e.dtype} is not read (F32 and BF16 are)`);
    const buf = Buffer.from(new ArrayBuffer(rows * n * size));
    await new Promise<void>((resolve, reject) =>
      fs.read(this.#fd, buf, 0, buf.length, this.#base + e.data_offsets[0] + row0 * n * size, (err) => (err ? reject(err) : resolve())),
    );
    if (size === 4) return new Float32Array(buf.buffer);
    const src = new Uint16Array(buf.buffer);
    const out = new Uint32Array(src.length);
    for (let i = 0; i < src.length; i++) out[i] = src[i] << 16;
    return new Float32Array(out.buffer);
  }
  close(): void {
    fs.closeSync(this.#fd);
  }
}

interface Tokenizer {
  model: { type: string; vocab: Record<string, number>; merges: (string | [string, string])[] };
  added_tokens?: { id: number; content: string; special?: boolean }[];
}

function tokenizerKvs(tok: Tokenizer, vocab: number): [string, GgufValue][] {
  if (tok.model.type !== 'BPE') throw new Error(`tokenizer.json: a ${tok.model.type} model (llama.cpp's qwen2 takes byte-level BPE)`);
  const tokens: string[] = Array.from({ length: vocab }, (_, i) => `[PAD${i}]`);
  const types = new Int32Array(vocab).fill(TOKEN.UNUSED);
  const put = (id: number, text: string, type: number) => {
    if (id >= vocab) throw new Error(`tokenizer.json: token ${id} (${text}) is beyond the ${vocab} embedding rows`);
    tokens[id] = text;
    types[id] = type;
  };
  for (const [text, id] of Object.entries(tok.model.vocab)) put(id, text, TOKEN.NORMAL);
  for (const a of tok.added_tokens ?? []) put(a.id, a.content, a.special ? TOKEN.CONTROL : TOKEN.USER_DEFINED);
  const id = (content: string) => tok.added_tokens?.find((a) => a.content === content)?.id;
  const eot = id('<|endoftext|>');
  const eos = id('<|im_end|>') ?? eot;
  const ids: [string, GgufValue][] = [];
  if (eot !== undefined) ids.push(['tokenizer.ggml.bos_token_id', kv.u32(eot)], ['tokenizer.ggml.padding_token_id', kv.u32(eot)]);
  if (eos !== undefined) ids.push(['tokenizer.ggml.eos_token_id', kv.u32(eos)]);
  return [
    ['tokenizer.ggml.model', kv.str('gpt2')],
    ['tokenizer.ggml.pre', kv.str('qwen2')],
    ['tokenizer.ggml.tokens', kv.strs(tokens)],
    ['tokenizer.ggml.token_type', kv.i32s(types)],
    ['tokenizer.ggml.merges', kv.strs(tok.model.merges.map((m) => (typeof m === 'string' ? m : m.join(' '))))],
    ...ids,
    ['tokenizer.ggml.add_bos_token', kv.bool(false)],
  ];
}

/** GGUF name, checkpoint name, and whether it is a linear weight (the type `weights` picks) or f32. */
function decoderTensors(layers: number): [string, string, boolean][] {
  const t: [string, string, boolean][] = [['token_embd.weight', 'model.embed_tokens.weight', false]];
  for (let i = 0; i < layers; i++) {
    const [b, p] = [`blk.${i}.`, `model.layers.${i}.`];
    t.push(
      [`${b}attn_norm.weight`, `${p}input_layernorm.weight`, false],
      ...['q', 'k', 'v'].flatMap((x): [string, string, boolean][] => [
        [`${b}attn_${x}.weight`, `${p}self_attn.${x}_proj.weight`, true],
        [`${b}attn_${x}.bias`, `${p}self_attn.${x}_proj.bias`, false],
      ]),
      [`${b}attn_output.weight`, `${p}self_attn.o_proj.weight`, true],
      [`${b}ffn_norm.weight`, `${p}post_attention_layernorm.weight`, false],
      [`${b}ffn_gate.weight`, `${p}mlp.gate_proj.weight`, true],
      [`${b}ffn_up.weight`, `${p}mlp.up_proj.weight`, true],
      [`${b}ffn_down.weight`, `${p}mlp.down_proj.weight`, true],
    );
  }
  t.push(['output_norm.weight', 'model.norm.weight', false]);
  return t;
}

/** Rounds f32 values to bf16 in place (the bf16 embedding a tied q8 head is quantised from). */
function toBf16Values(x: Float32Array): Float32Array {
  const u = new Uint32Array(x.buffer, x.byteOffset, x.length);
  for (let i = 0; i < u.length; i++) u[i] = bf16FromBits(u[i]) << 16;
  return x;
}

const LINEAR: Record<DecoderWeights, GgmlTypeName> = { f32: 'F32', bf16: 'BF16', q8: 'Q8_0' };

/** Writes the text decoder of the Qwen2-VL checkpoint in `modelDir` (config.json, model.safetensors, tokenizer.json) to `file`. */
export async function writeQwen2Gguf(modelDir: string, file: string, weights: DecoderWeights): Promise<void> {
  const cfg = JSON.parse(await fs.promises.readFile(path.join(modelDir, 'config.json'), 'utf8')) as Record<string, number | boolean>;
  const tok = JSON.parse(await fs.promises.readFile(path.join(modelDir, 'tokenizer.json'), 'utf8')) as Tokenizer;
  const st = new Safetensors(path.join(modelDir, 'model.safetensors'));
  try {
    const layers = cfg.num_hidden_layers as number;
    const vocab = st.shape('model.embed_tokens.weight')[0];
    const tensor = (name: string, from: string, type: GgmlTypeName): GgufTensor => ({ name, shape: st.shape(from), type, read: (r, k) => st.rows(from, r, k) });
    const embedType: GgmlTypeName = weights === 'f32' ? 'F32' : 'BF16';
    const tensors = decoderTensors(layers).map(([name, from, linear]) => tensor(name, from, linear ? LINEAR[weights] : name === 'token_embd.weight' ? embedType : 'F32'));
    const tied = cfg.tie_word_embeddings !== false || !st.entries['lm_head.weight'];
    // a tied head in f32 / bf16 is the embedding itself; in q8 it is quantised from it, as ours does
    if (!tied) tensors.push(tensor('output.weight', 'lm_head.weight', LINEAR[weights]));
    else if (weights === 'q8') tensors.push({ ...tensor('output.weight', 'model.embed_tokens.weight', 'Q8_0'), read: async (r, k) => toBf16Values(await st.rows('model.embed_tokens.weight', r, k)) });
    const a = 'qwen2';
    await writeGguf(
      file,
      [
        ['general.architecture', kv.str(a)],
        ['general.name', kv.str(`Qwen2-VL text decoder (${path.basename(path.resolve(modelDir))}, ${weights})`)],
        ['general.file_type', kv.u32(FILE_TYPE[weights])],
        [`${a}.context_length`, kv.u32((cfg.max_position_embeddings as number) ?? 32768)],
        [`${a}.embedding_length`, kv.u32(cfg.hidden_size as number)],
        [`${a}.block_count`, kv.u32(layers)],
        [`${a}.feed_forward_length`, kv.u32(cfg.intermediate_size as number)],
        [`${a}.attention.head_count`, kv.u32(cfg.num_attention_heads as number)],
        [`${a}.attention.head_count_kv`, kv.u32(cfg.num_key_value_heads as number)],
        [`${a}.rope.freq_base`, kv.f32((cfg.rope_theta as number) ?? 1e6)],
        [`${a}.attention.layer_norm_rms_epsilon`, kv.f32((cfg.rms_norm_eps as number) ?? 1e-6)],
        ...tokenizerKvs(tok, vocab),
      ],
      tensors,
    );
  } finally {
    st.close();
  }
}
