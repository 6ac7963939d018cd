// Parity: one Qwen2-VL decoder layer (M-RoPE, GQA, q/k/v bias, SwiGLU) composed from the engine's
// ops on the weights and inputs of the reference fixture, against the PyTorch reference's output
// (which itself matches Hugging Face transformers: tools/reference/HF_PARITY.md).
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { assertClose } from '../helpers/reference.ts';

const fixture = fileURLToPath(new URL('../fixtures/vlm_decoder_layer.safetensors', import.meta.url));

test('Qwen2-VL decoder layer from engine ops matches the reference fixture (fp32, 1e-4 relative)', async (t) => {
  const ck = openCheckpoint(fixture);
  const cfg = JSON.parse(ck.metadata().config);
  const [D, H, G] = [cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads];
  const d = D / H;
  const sections: number[] = cfg.rope_scaling.mrope_section;
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const p = 'model.layers.0.';
  const W = (n: string) => e.load(ck, p + n);
  const lin = (x: ReturnType<typeof W>, n: string, bias = false) => e.linear(x, e.packLinear(W(`${n}.weight`)), bias ? W(`${n}.bias`) : null);

  const h0 = e.load(ck, 'in.hidden'); // [B, S, D]
  const [B, S] = h0.shape;
  const pos = e.load(ck, 'in.position_ids'); // I64 [3, B, S] -> i32
  const a = e.rmsNorm(h0, W('input_layernorm.weight'), { eps: cfg.rms_norm_eps });
  const rope = { theta: cfg.rope_theta, sections };
  const q = e.rope(e.reshape(lin(a, 'self_attn.q_proj', true), [B, S, H, d]), pos, rope);
  const k = e.rope(e.reshape(lin(a, 'self_attn.k_proj', true), [B, S, G, d]), pos, rope);
  const v = e.reshape(lin(a, 'self_attn.v_proj', true), [B, S, G, d]);
  const { out } = e.attention(q, k, v, { mask: 'causal' });
  const h1 = e.add(h0, lin(e.reshape(out, [B, S, D]), 'self_attn.o_proj'));
  const m = e.rmsNorm(h1, W('post_attention_layernorm.weight'), { eps: cfg.rms_norm_eps });
  const h2 = e.add(h1, lin(e.swiglu(lin(m, 'mlp.gate_proj'), lin(m, 'mlp.up_proj')), 'mlp.down_proj'));

  assertClose(t, await k.readFloat32(), await e.load(ck, 'out.k').readFloat32(), 1e-4, 'k (post-RoPE)');
  assertClose(t, await v.readFloat32(), await e.load(ck, 'out.v').readFloat32(), 1e-4, 'v');
  assertClose(t, await h2.readFloat32(), await e.load(ck, 'out.hidden').readFloat32(), 1e-4, 'hidden');
});
