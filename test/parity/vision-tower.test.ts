// Parity: the Qwen2-VL vision tower (patch embed, 2-D RoPE blocks with full attention, quick-GELU
// MLP, 2x2 patch merger) composed from engine ops on the tiny model's weights, against the reference
// fixture. It checks that the op layer covers the tower; the tower as engine model code is issue 4's.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { openCheckpoint, type Engine, type Tensor } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { assertClose } from '../helpers/reference.ts';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));

/** Patch (row, col) positions in the processor's order: 2x2 merge windows contiguous. */
function visionPositions(h: number, w: number, m: number): Int32Array {
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
async function splitRows(e: Engine, w: Tensor, b: Tensor, parts: number): Promise<[Tensor, Tensor][]> {
  const [out, inp] = w.shape;
  const [wh, bh] = [await w.readFloat32(), await b.readFloat32()];
  const n = out / parts;
  return Array.from({ length: parts }, (_, i) => [e.tensor(wh.slice(i * n * inp, (i + 1) * n * inp), [n, inp]), e.tensor(bh.slice(i * n, (i + 1) * n), [n])]);
}

test('Qwen2-VL vision tower from engine ops matches the reference (fp32, 1e-4)', async (t) => {
  const fx = openCheckpoint(`${fixtures}vlm_vision_tower.safetensors`);
  const ck = openCheckpoint(`${fixtures}tiny-model/vlm`);
  const vc = JSON.parse(fx.metadata().config).vision_config;
  const [E, H, m] = [vc.embed_dim, vc.num_heads, vc.spatial_merge_size];
  const d = E / H;
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const W = (n: string) => e.load(ck, `visual.${n}`);
  const lin = (x: Tensor, n: string) => e.linear(x, e.packLinear(W(`${n}.weight`)), W(`${n}.bias`));

  const [, gh, gw] = Array.from((await e.load(fx, 'in.grid_thw').read()) as Int32Array);
  const pv = e.load(fx, 'in.pixel_values'); // [N, C*T*P*P]
  const N = pv.shape[0];
  const pw = W('patch_embed.proj.weight'); // Conv3d [E, C, T, P, P] with stride = kernel: a linear
  let x = e.linear(pv, e.reshape(pw, [E, pw.size / E]));
  assertClose(t, await x.readFloat32(), await e.load(fx, 'out.patch_embed').readFloat32(), 1e-5, 'patch embed');

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
  assertClose(t, await x.readFloat32(), await e.load(fx, 'out.pre_merger').readFloat32(), 1e-4, 'blocks');
  const merged = e.reshape(e.layerNorm(x, W('merger.ln_q.weight'), W('merger.ln_q.bias'), 1e-6), [N / (m * m), E * m * m]);
  const embeds = lin(e.gelu(lin(merged, 'merger.mlp.0'), 'erf'), 'merger.mlp.2');
  assertClose(t, await embeds.readFloat32(), await e.load(fx, 'out.image_embeds').readFloat32(), 1e-4, 'merger');
});
