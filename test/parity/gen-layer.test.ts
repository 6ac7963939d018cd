// Parity: one LaTtE-Flow generation layer (model.md section 3: modulation, attention over
// [prompt K/V ; image K/V], the TCRA residual on the image-key logits, the returned logits)
// composed from engine ops, against the PyTorch reference's fixture at two timesteps, with and
// without the residual. The time embedding c comes from the fixture (the embedder is issue 5's).
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { openCheckpoint, type Tensor } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { assertClose } from '../helpers/reference.ts';
import { splitRows } from '../helpers/qwen2vl-ops.ts';

const fixture = fileURLToPath(new URL('../fixtures/gen_layer.safetensors', import.meta.url));

test('generation layer with and without TCRA at two timesteps matches the reference (fp32, 1e-4)', async (t) => {
  const ck = openCheckpoint(fixture);
  const cfg = JSON.parse(ck.metadata().config);
  const [D, H, G] = [cfg.hidden_size, cfg.num_attention_heads, cfg.num_key_value_heads];
  const d = D / H;
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const p = `layers.${cfg.layer}.`;
  const W = (n: string) => e.load(ck, p + n);
  const lin = (x: Tensor, n: string, bias = false) => e.linear(x, e.packLinear(W(`${n}.weight`)), bias ? W(`${n}.bias`) : null);
  const eps = cfg.rms_norm_eps;

  const h0 = e.load(ck, 'in.hidden'); // [B, N, D] image tokens
  const [B, N] = h0.shape;
  const pos = e.load(ck, 'in.position_ids');
  const pk = e.load(ck, 'in.prompt_k');
  const pv = e.load(ck, 'in.prompt_v');
  const P = pk.shape[1];
  const rPrev = e.load(ck, 'in.r_prev');
  const mod = await splitRows(e, W('modulation.weight'), W('modulation.bias'), 4); // s1, s2, b2, s3

  for (const step of ['t0', 't1']) {
    const sc = e.silu(e.load(ck, `out.${step}.c`)); // [B, D]
    const [s1, s2, b2, s3] = mod.map(([w, b]) => e.linear(sc, w, b));
    const gate = e.tanh(lin(sc, 'tcra_gate', true)); // [B, H]
    for (const res of ['nores', 'res'] as const) {
      const a = e.rmsNorm(h0, W('input_layernorm.weight'), { eps });
      const rope = { theta: cfg.rope_theta, sections: cfg.mrope_section };
      const q = e.rope(e.reshape(lin(a, 'self_attn.q_proj', true), [B, N, H, d]), pos, rope);
      const k = e.rope(e.reshape(lin(a, 'self_attn.k_proj', true), [B, N, G, d]), pos, rope);
      const v = e.reshape(lin(a, 'self_attn.v_proj', true), [B, N, G, d]);
      const { out, logits } = e.attention(q, e.concat(pk, k, 1), e.concat(pv, v, 1), {
        imageCol0: P,
        returnLogits: true,
        ...(res === 'res' ? { residual: rPrev, gate } : {}),
      });
      const o = lin(e.reshape(out, [B, N, D]), 'self_attn.o_proj');
      const h1 = e.gatedAdd(h0, s1, e.rmsNorm(o, W('attn_out_norm.weight'), { eps }));
      const y = e.modulate(e.rmsNorm(h1, W('post_attention_layernorm.weight'), { eps }), b2, s2);
      const mlp = lin(e.swiglu(lin(y, 'mlp.gate_proj'), lin(y, 'mlp.up_proj')), 'mlp.down_proj');
      const h2 = e.gatedAdd(h1, s3, e.rmsNorm(mlp, W('ffn_out_norm.weight'), { eps }));
      assertClose(t, await logits!.readFloat32(), await e.load(ck, `out.${step}.${res}.r`).readFloat32(), 1e-4, `${step} ${res} logits`);
      assertClose(t, await h2.readFloat32(), await e.load(ck, `out.${step}.${res}.hidden`).readFloat32(), 1e-4, `${step} ${res} hidden`);
    }
  }
});
