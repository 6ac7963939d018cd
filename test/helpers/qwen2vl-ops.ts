/**
 * Qwen2-VL parts composed from engine ops, for the parity tests (the engine's own model code for
 * issue 4 will live in native/model; these check that the op layer covers every part).
 */
import type { Checkpoint, Engine, Tensor } from '../../lib/index.ts';

export interface TextConfig {
  hidden_size: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rms_norm_eps: number;
  rope_theta: number;
  rope_scaling: { mrope_section: number[] };
}

/**
 * One decoder layer over h [B, S, D] with M-RoPE positions [3, B, S]. With `past` (the layer's cached
 * k/v) the new tokens attend to it too; the returned k, v are the whole cache.
 */
export function decoderLayer(e: Engine, ck: Checkpoint, prefix: string, cfg: TextConfig, h: Tensor, pos: Tensor, past?: { k: Tensor; v: Tensor }) {
  const [D, H, G] = [cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads];
  const d = D / H;
  const [B, S] = h.shape;
  const W = (n: string) => e.load(ck, prefix + n);
  const lin = (x: Tensor, n: string, bias = false) => e.linear(x, e.packLinear(W(`${n}.weight`)), bias ? W(`${n}.bias`) : null);
  const a = e.rmsNorm(h, W('input_layernorm.weight'), { eps: cfg.rms_norm_eps });
  const rope = { theta: cfg.rope_theta, sections: cfg.rope_scaling.mrope_section };
  const q = e.rope(e.reshape(lin(a, 'self_attn.q_proj', true), [B, S, H, d]), pos, rope);
  const kNew = e.rope(e.reshape(lin(a, 'self_attn.k_proj', true), [B, S, G, d]), pos, rope);
  const vNew = e.reshape(lin(a, 'self_attn.v_proj', true), [B, S, G, d]);
  const k = past ? e.concat(past.k, kNew, 1) : kNew;
  const v = past ? e.concat(past.v, vNew, 1) : vNew;
  const { out } = e.attention(q, k, v, { mask: 'causal' });
  const h1 = e.add(h, lin(e.reshape(out, [B, S, D]), 'self_attn.o_proj'));
  const m = e.rmsNorm(h1, W('post_attention_layernorm.weight'), { eps: cfg.rms_norm_eps });
  const h2 = e.add(h1, lin(e.swiglu(lin(m, 'mlp.gate_proj'), lin(m, 'mlp.up_proj')), 'mlp.down_proj'));
  return { hidden: h2, k, v };
}

export interface VisionConfig {
  embed_dim: number;
  num_heads: number;
  spatial_merge_size: number;
  depth: number;
  rope_theta?: number;
}

/** Patch (row, col) positions in the processor's order: 2x2 merge windows contiguous. */
export function visionPositions(h: number, w: number, m: number): Int32Array {
  const pos = new Int32Array(2 * h * w);
  let n = 0;
  for (let by = 0; by < h / m; by++)
    for (let bx = 0; bx < w / m; bx++)
      for (let y = 0; y < m; y++)
        for (let x = 0; x < m; x++, n++) {
          pos[n] = by * m + y;
          pos[h * w + n] = bx * m + x;
        }
  return pos;
}

/** Rows [i*n, (i+1)*n) of a [k*n, in] weight and its bias, as separate tensors (qkv -> q, k, v). */
export async function splitRows(e: Engine, w: Tensor, b: Tensor, parts: number): Promise<[Tensor, Tensor][]> {
  const [out, inp] = w.shape;
  const [wh, bh] = [await w.readFloat32(), await b.readFloat32()];
  const n = out / parts;
  return Array.from({ length: parts }, (_, i) => [e.tensor(wh.slice(i * n * inp, (i + 1) * n * inp), [n, inp]), e.tensor(bh.slice(i * n, (i + 1) * n), [n])]);
}

/** The vision tower on one image's pixel values [N, C*T*P*P] with grid (1, gh, gw). */
export async function visionTower(e: Engine, ck: Checkpoint, vc: VisionConfig, pv: Tensor, gh: number, gw: number) {
  const [E, H, m] = [vc.embed_dim, vc.num_heads, vc.spatial_merge_size];
  const d = E / H;
  const N = pv.shape[0];
  const W = (n: string) => e.load(ck, `visual.${n}`);
  const lin = (x: Tensor, n: string) => e.linear(x, e.packLinear(W(`${n}.weight`)), W(`${n}.bias`));
  const pw = W('patch_embed.proj.weight'); // Conv3d [E, C, T, P, P] with stride = kernel: a linear
  const patchEmbed = e.linear(pv, e.reshape(pw, [E, pw.size / E]));
  let x = patchEmbed;
  const pos = e.tensor(visionPositions(gh, gw, m), [2, 1, N], 'i32');
  const rope = { theta: vc.rope_theta ?? 10000, sections: [d / 4, d / 4], restart: true };
  for (let i = 0; i < vc.depth; i++) {
    const b = `blocks.${i}.`;
    const a = e.layerNorm(x, W(`${b}norm1.weight`), W(`${b}norm1.bias`), 1e-6);
    const [[wq, bq], [wk, bk], [wv, bv]] = await splitRows(e, W(`${b}attn.qkv.weight`), W(`${b}attn.qkv.bias`), 3);
    const q = e.rope(e.reshape(e.linear(a, wq, bq), [1, N, H, d]), pos, rope);
    const k = e.rope(e.reshape(e.linear(a, wk, bk), [1, N, H, d]), pos, rope);
    const v = e.reshape(e.linear(a, wv, bv), [1, N, H, d]);
    const { out } = e.attention(q, k, v); // full attention within the one image
    x = e.add(x, lin(e.reshape(out, [N, E]), `${b}attn.proj`));
    const f = e.gelu(lin(e.layerNorm(x, W(`${b}norm2.weight`), W(`${b}norm2.bias`), 1e-6), `${b}mlp.fc1`), 'quick');
    x = e.add(x, lin(f, `${b}mlp.fc2`));
  }
  const merged = e.reshape(e.layerNorm(x, W('merger.ln_q.weight'), W('merger.ln_q.bias'), 1e-6), [N / (m * m), E * m * m]);
  const embeds = lin(e.gelu(lin(merged, 'merger.mlp.0'), 'erf'), 'merger.mlp.2');
  return { patchEmbed, preMerger: x, embeds };
}

export interface GenConfig {
  hidden_size: number;
  num_attention_heads: number;
  num_key_value_heads: number;
  rms_norm_eps: number;
  rope_theta: number;
  mrope_section: number[];
}

/**
 * One LaTtE-Flow generation layer (docs/model.md section 3) over image tokens h [B, N, D], given
 * sc = SiLU(c) [B, D], the prompt K/V of this layer and, except at a group's first layer, the
 * previous layer's image-key logits. Returns the new h and this layer's logits.
 */
export async function genLayer(e: Engine, ck: Checkpoint, prefix: string, cfg: GenConfig, h: Tensor, sc: Tensor, pos: Tensor, pk: Tensor, pv: Tensor, rPrev?: Tensor) {
  const [D, H, G] = [cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads];
  const d = D / H;
  const [B, N] = h.shape;
  const eps = cfg.rms_norm_eps;
  const W = (n: string) => e.load(ck, prefix + n);
  const lin = (x: Tensor, n: string, bias = false) => e.linear(x, e.packLinear(W(`${n}.weight`)), bias ? W(`${n}.bias`) : null);
  const [s1, s2, b2, s3] = (await splitRows(e, W('modulation.weight'), W('modulation.bias'), 4)).map(([w, b]) => e.linear(sc, w, b));
  const a = e.rmsNorm(h, W('input_layernorm.weight'), { eps });
  const rope = { theta: cfg.rope_theta, sections: cfg.mrope_section };
  const q = e.rope(e.reshape(lin(a, 'self_attn.q_proj', true), [B, N, H, d]), pos, rope);
  const k = e.rope(e.reshape(lin(a, 'self_attn.k_proj', true), [B, N, G, d]), pos, rope);
  const v = e.reshape(lin(a, 'self_attn.v_proj', true), [B, N, G, d]);
  const residual = rPrev ? { residual: rPrev, gate: e.tanh(lin(sc, 'tcra_gate', true)) } : {};
  const { out, logits } = e.attention(q, e.concat(pk, k, 1), e.concat(pv, v, 1), { imageCol0: pk.shape[1], returnLogits: true, ...residual });
  const o = lin(e.reshape(out, [B, N, D]), 'self_attn.o_proj');
  const h1 = e.gatedAdd(h, s1, e.rmsNorm(o, W('attn_out_norm.weight'), { eps }));
  const y = e.modulate(e.rmsNorm(h1, W('post_attention_layernorm.weight'), { eps }), b2, s2);
  const mlp = lin(e.swiglu(lin(y, 'mlp.gate_proj'), lin(y, 'mlp.up_proj')), 'mlp.down_proj');
  return { hidden: e.gatedAdd(h1, s3, e.rmsNorm(mlp, W('ffn_out_norm.weight'), { eps })), logits: logits! };
}
