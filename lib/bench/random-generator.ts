/**
 * A LaTtE-Flow generation stream (docs/checkpoint-format.md section 2) with random weights at any
 * shape, for benchmarks (e.g. Qwen2-VL-2B widths, 28 layers, K = 4) and tests.
 */
import fs from 'node:fs';
import path from 'node:path';
import { writeRandomSafetensors, type Spec } from './random-safetensors.js';

export interface RandomGeneratorOptions {
  hidden: number;
  heads: number;
  kvHeads: number;
  intermediate: number;
  layers: number;
  groups: number;
  latentChannels: number;
  latentSize: [number, number];
  patchSize?: number;
  mropeSection: [number, number, number];
  dtype?: 'bf16' | 'f32';
  seed?: number;
}

/** Qwen2-VL-2B widths with a 64-token latent (8 x 8 x 32 channels, patch 1). */
export const REAL_SCALE: Omit<RandomGeneratorOptions, 'layers' | 'groups'> = {
  hidden: 1536,
  heads: 12,
  kvHeads: 2,
  intermediate: 8960,
  latentChannels: 32,
  latentSize: [8, 8],
  mropeSection: [16, 24, 24],
};

export async function writeRandomGenerator(dir: string, o: RandomGeneratorOptions): Promise<object> {
  const p = o.patchSize ?? 1;
  const [D, F, H, G] = [o.hidden, o.intermediate, o.heads, o.kvHeads];
  const d = D / H;
  const patch = o.latentChannels * p * p;
  const w = (name: string, shape: number[]): Spec => ({ name, shape, std: 0.02, mean: 0 });
  const norm = (name: string, n: number): Spec => ({ name, shape: [n], std: 0.01, mean: 1 });
  const specs: Spec[] = [
    w('time_embedder.linear_1.weight', [D, 256]), w('time_embedder.linear_1.bias', [D]),
    w('time_embedder.linear_2.weight', [D, D]), w('time_embedder.linear_2.bias', [D]),
    w('patch_embed.weight', [D, patch]), w('patch_embed.bias', [D]),
  ];
  for (let l = 0; l < o.layers; l++) {
    const q = `layers.${l}.`;
    specs.push(
      norm(`${q}input_layernorm.weight`, D),
      w(`${q}self_attn.q_proj.weight`, [H * d, D]), w(`${q}self_attn.q_proj.bias`, [H * d]),
      w(`${q}self_attn.k_proj.weight`, [G * d, D]), w(`${q}self_attn.k_proj.bias`, [G * d]),
      w(`${q}self_attn.v_proj.weight`, [G * d, D]), w(`${q}self_attn.v_proj.bias`, [G * d]),
      w(`${q}self_attn.o_proj.weight`, [D, H * d]),
      norm(`${q}attn_out_norm.weight`, D), norm(`${q}post_attention_layernorm.weight`, D),
      w(`${q}mlp.gate_proj.weight`, [F, D]), w(`${q}mlp.up_proj.weight`, [F, D]), w(`${q}mlp.down_proj.weight`, [D, F]),
      norm(`${q}ffn_out_norm.weight`, D),
      w(`${q}modulation.weight`, [4 * D, D]), w(`${q}modulation.bias`, [4 * D]),
      w(`${q}tcra_gate.weight`, [H, D]), w(`${q}tcra_gate.bias`, [H]),
    );
  }
  specs.push(norm('norm.weight', D), w('head_modulation.weight', [2 * D, D]), w('head_modulation.bias', [2 * D]), w('proj_out.weight', [patch, D]), w('proj_out.bias', [patch]));
  await fs.promises.mkdir(dir, { recursive: true });
  await writeRandomSafetensors(path.join(dir, 'model.safetensors'), specs, o.seed ?? 0, (o.dtype ?? 'bf16') === 'bf16');
  const config = {
    format: 'latte-flow-generator', format_version: 1,
    hidden_size: D, num_attention_heads: H, num_key_value_heads: G, intermediate_size: F,
    num_layers: o.layers, num_groups: o.groups, latent_channels: o.latentChannels, latent_size: o.latentSize, patch_size: p,
    mrope_section: o.mropeSection, rope_theta: 1e6, guidance_scale: 2, num_steps: 40,
  };
  await fs.promises.writeFile(path.join(dir, 'config.json'), JSON.stringify(config, null, 2) + '\n');
  return config;
}
