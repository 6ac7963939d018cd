// Parity: a 4-step Euler run with classifier-free guidance (w = 2) of the tiny generation stream,
// composed from engine ops: time embedding, patchify, the expert group of each t (TCRA chained
// inside the group), head, CFG combine and the Euler update, from the reference's seeded noise.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { openCheckpoint, type Tensor } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { genLayer, splitRows } from '../helpers/qwen2vl-ops.ts';
import { assertClose } from '../helpers/reference.ts';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));

/** DiT sinusoid of (scale * t), cos then sin, in float32 like the reference (host side: 256 numbers). */
function sinusoid(t: number, dim: number, scale: number, maxPeriod: number): Float32Array {
  const half = dim / 2;
  const out = new Float32Array(dim);
  const a0 = Math.fround(t * scale);
  for (let j = 0; j < half; j++) {
    const f = Math.fround(Math.exp(Math.fround((-Math.log(maxPeriod) * j) / half)));
    const a = Math.fround(a0 * f);
    out[j] = Math.cos(a);
    out[half + j] = Math.sin(a);
  }
  return out;
}

test('Euler x 4 with CFG from fixed noise matches the reference step by step (fp32, 1e-4)', async (t) => {
  const fx = openCheckpoint(`${fixtures}gen_sample.safetensors`);
  const ck = openCheckpoint(`${fixtures}tiny-model/generator`);
  const cfg = JSON.parse(fx.metadata().config);
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const [C, [gh, gw]] = [cfg.latent_channels, cfg.latent_size];
  const [L, K] = [cfg.num_layers, cfg.num_groups];
  const N = gh * gw;
  const W = (n: string) => e.load(ck, n);
  const lin = (x: Tensor, n: string) => e.linear(x, e.packLinear(W(`${n}.weight`)), W(`${n}.bias`));
  const [[shiftW, shiftB], [scaleW, scaleB]] = await splitRows(e, W('head_modulation.weight'), W('head_modulation.bias'), 2);
  const branches = ['prompt', 'null'].map((b) => {
    const kv = Array.from({ length: L }, (_, l) => ({ k: e.load(fx, `in.${b}.${l}.k`), v: e.load(fx, `in.${b}.${l}.v`) }));
    const P = kv[0].k.shape[1];
    const pos = new Int32Array(3 * N); // image grid right after this branch's prompt: (P, P + i, P + j)
    for (let n = 0; n < N; n++) [pos[n], pos[N + n], pos[2 * N + n]] = [P, P + Math.floor(n / gw), P + (n % gw)];
    return { kv, pos: e.tensor(pos, [3, 1, N], 'i32') };
  });

  async function velocity(x: Tensor, time: number, branch: (typeof branches)[number]): Promise<Tensor> {
    const c = lin(e.silu(lin(e.tensor(sinusoid(time, cfg.time_embed_dim, cfg.time_scale, cfg.time_max_period), [1, cfg.time_embed_dim]), 'time_embedder.linear_1')), 'time_embedder.linear_2');
    const sc = e.silu(c);
    let h = lin(e.reshape(e.permute(x, [0, 2, 3, 1]), [1, N, C]), 'patch_embed'); // patchify (p = 1)
    const k = Math.min(Math.floor(time * K), K - 1); // uniform groups; the last owns t = 1
    let r: Tensor | undefined;
    for (let l = k * (L / K); l < (k + 1) * (L / K); l++) {
      const out = await genLayer(e, ck, `layers.${l}.`, cfg, h, sc, branch.pos, branch.kv[l].k, branch.kv[l].v, r);
      [h, r] = [out.hidden, out.logits];
    }
    const y = e.modulate(e.rmsNorm(h, W('norm.weight'), { eps: cfg.rms_norm_eps }), e.linear(sc, shiftW, shiftB), e.linear(sc, scaleW, scaleB));
    return e.permute(e.reshape(lin(y, 'proj_out'), [1, gh, gw, C]), [0, 3, 1, 2]); // unpatchify
  }
  const full = (v: number) => e.tensor(new Float32Array(C * N).fill(v), [1, C, gh, gw]);

  const steps = cfg.euler.steps;
  const w = cfg.euler.guidance;
  let x = e.load(fx, 'in.noise');
  t.deepEqual(Array.from(await x.readFloat32()), Array.from(await e.noise([1, C, gh, gw], cfg.seed).readFloat32()), 'the noise is the engine generator');
  for (let i = 0; i < steps; i++) {
    const ti = i / steps;
    const vc = await velocity(x, ti, branches[0]);
    const vn = await velocity(x, ti, branches[1]);
    if (i === 0) {
      assertClose(t, await vc.readFloat32(), await e.load(fx, 'out.step0.v_cond').readFloat32(), 1e-4, 'v_cond');
      assertClose(t, await vn.readFloat32(), await e.load(fx, 'out.step0.v_null').readFloat32(), 1e-4, 'v_null');
    }
    const v = e.add(vn, e.mul(e.add(vc, e.mul(vn, full(-1))), full(w))); // v_null + w (v_c - v_null)
    x = e.add(x, e.mul(v, full(Math.fround((i + 1) / steps - ti))));
    assertClose(t, await x.readFloat32(), await e.load(fx, `out.euler.step${i}.x`).readFloat32(), 1e-4, `x after step ${i}`);
  }
});
