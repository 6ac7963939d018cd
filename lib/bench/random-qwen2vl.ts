/**
 * Writes a Qwen2-VL-2B-shaped checkpoint (real hidden sizes, head counts and vocabulary) with
 * random weights and few layers, for smoke tests and benchmarks at real shapes. The tensor names
 * follow the Hugging Face layout of test/fixtures/tiny-model/vlm (no lm_head: embeddings are tied).
 *
 * The safetensors file is streamed tensor by tensor (the header's offsets are computed first); values
 * come from a per-tensor deterministic PRNG (seeded from opts.seed and the tensor's name, so a model
 * with more layers shares its first layers with one with fewer), generated in chunks into two reused
 * buffers so that generation overlaps the writes. Never more than ~8 MB is held in memory.
 *
 * It lives under lib/ (not test/) because `latte-flow bench` ships it: the tokenizer and preprocessor
 * are therefore the shipped model's (models/shapes/vlm), whose ids (< 409) index valid rows of any
 * vocabulary this writer accepts.
 */
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { writeRandomSafetensors, type Spec } from './random-safetensors.js';

export interface RandomQwen2VLOptions {
  layers: number;
  visionDepth: number;
  dtype?: 'bf16' | 'f32';
  seed?: number;
  vocabSize?: number;
}

// from dist/bench/ or lib/bench/ alike: two levels up is the package root
const TOKENIZER_DIR = fileURLToPath(new URL('../../models/shapes/vlm/', import.meta.url));

/** Qwen2-VL-2B-Instruct dimensions. */
const HIDDEN = 1536;
const INTERMEDIATE = 8960;
const HEADS = 12;
const KV_HEADS = 2;
const HEAD_DIM = HIDDEN / HEADS; // 128
const VOCAB = 151936;
const V_EMBED = 1280;
const V_HEADS = 16;
const V_MLP_RATIO = 4;
const IN_CH = 3;
export const PATCH = 14;
const T_PATCH = 2;
export const MERGE = 2;
/** Qwen2-VL-2B-Instruct's pixel budget. */
export const MIN_PIXELS = 56 * 56;
export const MAX_PIXELS = 28 * 28 * 1280;

/** The shipped tokenizer's ids are all below this. */
export const MIN_VOCAB = 409;

const W_STD = 0.02; // linear weights, biases and embeddings (HF's initializer_range)
const NORM_NOISE = 0.01; // norm weights: 1 + small noise

function tensorSpecs(layers: number, visionDepth: number, vocab: number): Spec[] {
  const specs: Spec[] = [];
  const w = (name: string, ...shape: number[]): void => void specs.push({ name, shape, std: W_STD, mean: 0 });
  const norm = (name: string, n: number): void => void specs.push({ name, shape: [n], std: NORM_NOISE, mean: 1 });

  w('model.embed_tokens.weight', vocab, HIDDEN);
  for (let i = 0; i < layers; i++) {
    const p = `model.layers.${i}.`;
    norm(p + 'input_layernorm.weight', HIDDEN);
    w(p + 'mlp.down_proj.weight', HIDDEN, INTERMEDIATE);
    w(p + 'mlp.gate_proj.weight', INTERMEDIATE, HIDDEN);
    w(p + 'mlp.up_proj.weight', INTERMEDIATE, HIDDEN);
    norm(p + 'post_attention_layernorm.weight', HIDDEN);
    w(p + 'self_attn.k_proj.bias', KV_HEADS * HEAD_DIM);
    w(p + 'self_attn.k_proj.weight', KV_HEADS * HEAD_DIM, HIDDEN);
    w(p + 'self_attn.o_proj.weight', HIDDEN, HIDDEN);
    w(p + 'self_attn.q_proj.bias', HIDDEN);
    w(p + 'self_attn.q_proj.weight', HIDDEN, HIDDEN);
    w(p + 'self_attn.v_proj.bias', KV_HEADS * HEAD_DIM);
    w(p + 'self_attn.v_proj.weight', KV_HEADS * HEAD_DIM, HIDDEN);
  }
  norm('model.norm.weight', HIDDEN);

  const vMlp = V_EMBED * V_MLP_RATIO;
  for (let i = 0; i < visionDepth; i++) {
    const p = `visual.blocks.${i}.`;
    w(p + 'attn.proj.bias', V_EMBED);
    w(p + 'attn.proj.weight', V_EMBED, V_EMBED);
    w(p + 'attn.qkv.bias', 3 * V_EMBED);
    w(p + 'attn.qkv.weight', 3 * V_EMBED, V_EMBED);
    w(p + 'mlp.fc1.bias', vMlp);
    w(p + 'mlp.fc1.weight', vMlp, V_EMBED);
    w(p + 'mlp.fc2.bias', V_EMBED);
    w(p + 'mlp.fc2.weight', V_EMBED, vMlp);
    w(p + 'norm1.bias', V_EMBED);
    norm(p + 'norm1.weight', V_EMBED);
    w(p + 'norm2.bias', V_EMBED);
    norm(p + 'norm2.weight', V_EMBED);
  }
  const merged = V_EMBED * MERGE * MERGE; // 5120
  w('visual.merger.ln_q.bias', V_EMBED);
  norm('visual.merger.ln_q.weight', V_EMBED);
  w('visual.merger.mlp.0.bias', merged);
  w('visual.merger.mlp.0.weight', merged, merged);
  w('visual.merger.mlp.2.bias', HIDDEN);
  w('visual.merger.mlp.2.weight', HIDDEN, merged);
  w('visual.patch_embed.proj.weight', V_EMBED, IN_CH, T_PATCH, PATCH, PATCH);
  return specs;
}

function tokenId(tokenizer: { added_tokens?: { id: number; content: string }[] }, content: string): number {
  const t = tokenizer.added_tokens?.find((a) => a.content === content);
  if (!t) throw new Error(`the shipped tokenizer has no added token ${content}`);
  return t.id;
}

function buildConfig(opts: RandomQwen2VLOptions, vocab: number, tokenizer: Parameters<typeof tokenId>[0]): object {
  return {
    architectures: ['Qwen2VLForConditionalGeneration'],
    model_type: 'qwen2_vl',
    hidden_act: 'silu',
    torch_dtype: (opts.dtype ?? 'bf16') === 'bf16' ? 'bfloat16' : 'float32',
    attention_dropout: 0.0,
    max_position_embeddings: 32768,
    use_sliding_window: false,
    rope_scaling: { type: 'mrope', mrope_section: [16, 24, 24] },
    hidden_size: HIDDEN,
    num_hidden_layers: opts.layers,
    num_attention_heads: HEADS,
    num_key_value_heads: KV_HEADS,
    intermediate_size: INTERMEDIATE,
    // The vocabulary (embedding rows, logits) is real-sized, but the tokenizer is the shipped model's
    // (its ids are all < 409, so they index valid rows). The special ids below therefore come from
    // that tokenizer's added_tokens, not Qwen2-VL's 151652..151656: the prompt the tokenizer produces
    // must carry the same ids the model looks for.
    vocab_size: vocab,
    rms_norm_eps: 1e-6,
    rope_theta: 1000000.0,
    tie_word_embeddings: true,
    image_token_id: tokenId(tokenizer, '<|image_pad|>'),
    video_token_id: tokenId(tokenizer, '<|video_pad|>'),
    vision_start_token_id: tokenId(tokenizer, '<|vision_start|>'),
    vision_end_token_id: tokenId(tokenizer, '<|vision_end|>'),
    vision_config: {
      depth: opts.visionDepth,
      embed_dim: V_EMBED,
      num_heads: V_HEADS,
      hidden_size: HIDDEN,
      mlp_ratio: V_MLP_RATIO,
      in_channels: IN_CH,
      in_chans: IN_CH,
      patch_size: PATCH,
      temporal_patch_size: T_PATCH,
      spatial_merge_size: MERGE,
      hidden_act: 'quick_gelu',
      rope_theta: 10000.0,
    },
  };
}

function checkOptions(opts: RandomQwen2VLOptions): void {
  const int = (v: unknown, min: number): boolean => Number.isInteger(v) && (v as number) >= min;
  if (!int(opts.layers, 1)) throw new Error(`layers must be an integer >= 1, got ${opts.layers}`);
  if (!int(opts.visionDepth, 1)) throw new Error(`visionDepth must be an integer >= 1, got ${opts.visionDepth}`);
  if (opts.vocabSize !== undefined && !int(opts.vocabSize, MIN_VOCAB))
    throw new Error(`vocabSize must be an integer >= ${MIN_VOCAB} (the shipped tokenizer's ids), got ${opts.vocabSize}`);
  if (opts.dtype !== undefined && opts.dtype !== 'bf16' && opts.dtype !== 'f32') throw new Error(`bad dtype ${opts.dtype}`);
}

/** Writes config.json, model.safetensors, preprocessor_config.json and tokenizer.json into dir. Returns the config object written. */
export async function writeRandomQwen2VL(dir: string, opts: RandomQwen2VLOptions): Promise<object> {
  checkOptions(opts);
  const bf16 = (opts.dtype ?? 'bf16') === 'bf16';
  const seed = (opts.seed ?? 0) >>> 0;
  const vocab = opts.vocabSize ?? VOCAB;
  await fs.promises.mkdir(dir, { recursive: true });

  const tokenizerText = await fs.promises.readFile(path.join(TOKENIZER_DIR, 'tokenizer.json'), 'utf8');
  const config = buildConfig(opts, vocab, JSON.parse(tokenizerText));
  const pre = JSON.parse(await fs.promises.readFile(path.join(TOKENIZER_DIR, 'preprocessor_config.json'), 'utf8'));
  // Qwen2-VL-2B-Instruct's own patch and pixel budget (the shipped model's are far smaller)
  Object.assign(pre, { patch_size: PATCH, temporal_patch_size: T_PATCH, merge_size: MERGE });
  Object.assign(pre, { min_pixels: MIN_PIXELS, max_pixels: MAX_PIXELS });

  // Header: offsets first, padded with spaces to a multiple of 8 (as HF does) so data is aligned.
  const specs = tensorSpecs(opts.layers, opts.visionDepth, vocab);
  await writeRandomSafetensors(path.join(dir, 'model.safetensors'), specs, seed, bf16);

  await fs.promises.writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  await fs.promises.writeFile(path.join(dir, 'preprocessor_config.json'), JSON.stringify(pre, null, 2) + '\n');
  await fs.promises.writeFile(path.join(dir, 'tokenizer.json'), tokenizerText);
  return config;
}

const STAMP = 'random-qwen2vl.json';

/**
 * Like writeRandomQwen2VL, but skips the work when dir already holds a model written with the same
 * options (recorded in a stamp file written last). Returns the config object in either case.
 */
export async function writeRandomQwen2VLIfMissing(dir: string, opts: RandomQwen2VLOptions): Promise<object> {
  const norm = {
    layers: opts.layers,
    visionDepth: opts.visionDepth,
    dtype: opts.dtype ?? 'bf16',
    seed: (opts.seed ?? 0) >>> 0,
    vocabSize: opts.vocabSize ?? VOCAB,
    version: 4, // 4: the shipped tokenizer
  };
  const stampPath = path.join(dir, STAMP);
  try {
    const stamp = JSON.parse(await fs.promises.readFile(stampPath, 'utf8'));
    if (JSON.stringify(stamp) === JSON.stringify(norm)) {
      const [config] = await Promise.all([
        fs.promises.readFile(path.join(dir, 'config.json'), 'utf8'),
        fs.promises.access(path.join(dir, 'model.safetensors')),
        fs.promises.access(path.join(dir, 'tokenizer.json')),
        fs.promises.access(path.join(dir, 'preprocessor_config.json')),
      ]);
      return JSON.parse(config) as object;
    }
  } catch {
    // no stamp, a different one, or missing files: (re)write
  }
  await fs.promises.rm(stampPath, { force: true });
  const config = await writeRandomQwen2VL(dir, opts);
  await fs.promises.writeFile(stampPath, JSON.stringify(norm) + '\n');
  return config;
}
