/**
 * One Qwen2 decoder layer, twice: op by op on our engine and as an ONNX graph for onnxruntime, with the
 * same weights, at any shape (the developers' benchmark uses Qwen2-0.5B's, `latte-flow bench` Qwen2-VL-2B's).
 *
 *   q/k/v with bias, o without, GQA, SwiGLU, RMSNorm, RoPE (rotate_half form), causal mask.
 *
 * Ours: rmsNorm, linear on packLinear weights, rope, attention(causal, GQA), add, swiglu, concat; the KV
 * cache and positions already live in the engine (as in a generation loop).
 * ORT: a plain ONNX graph (opset 17, ./onnx.ts) with the weights as initializers (so ORT pre-packs them,
 * as for an exported checkpoint); cos/sin and the additive mask are inputs, as a model computes them
 * once for all layers.
 */
import type { Engine, Tensor } from '../index.js';
import { GraphBuilder } from './onnx.js';
import { randn } from './stats.js';

export interface LayerShape {
  hidden: number;
  heads: number;
  kvHeads: number;
  headDim: number;
  ffn: number;
  eps: number;
  theta: number;
}

export const QWEN2_05B: LayerShape = { hidden: 896, heads: 14, kvHeads: 2, headDim: 64, ffn: 4864, eps: 1e-6, theta: 1e6 };
export const QWEN2_VL_2B: LayerShape = { hidden: 1536, heads: 12, kvHeads: 2, headDim: 128, ffn: 8960, eps: 1e-6, theta: 1e6 };

export type LayerDtype = 'f32' | 'bf16';

export interface LayerWeights {
  shape: LayerShape;
  ln1: Float32Array;
  ln2: Float32Array;
  wq: Float32Array; // [out, in] like nn.Linear
  bq: Float32Array;
  wk: Float32Array;
  bk: Float32Array;
  wv: Float32Array;
  bv: Float32Array;
  wo: Float32Array;
  wg: Float32Array;
  wu: Float32Array;
  wd: Float32Array;
}

export function makeWeights(shape: LayerShape, seed = 7): LayerWeights {
  const { hidden: D, ffn: F } = shape;
  const KVD = shape.kvHeads * shape.headDim;
  const lin = (o: number, i: number, s: number): Float32Array => randn(o * i, seed * 100 + s, 1 / Math.sqrt(i));
  const norm = (s: number): Float32Array => randn(D, seed * 100 + s, 0.1).map((v) => 1 + v);
  return {
    shape,
    ln1: norm(1),
    ln2: norm(2),
    wq: lin(D, D, 3),
    bq: randn(D, seed * 100 + 4, 0.1),
    wk: lin(KVD, D, 5),
    bk: randn(KVD, seed * 100 + 6, 0.1),
    wv: lin(KVD, D, 7),
    bv: randn(KVD, seed * 100 + 8, 0.1),
    wo: lin(D, D, 9),
    wg: lin(F, D, 10),
    wu: lin(F, D, 11),
    wd: lin(D, F, 12),
  };
}

// ---- our engine ----------------------------------------------------------------------------------
export interface EngineParams {
  shape: LayerShape;
  ln1: Tensor;
  ln2: Tensor;
  bq: Tensor;
  bk: Tensor;
  bv: Tensor;
  q: Tensor;
  k: Tensor;
  v: Tensor;
  o: Tensor;
  g: Tensor;
  u: Tensor;
  d: Tensor;
}

/** Uploads the layer once and packs its linear weights for each compute dtype. */
export function uploadLayer(e: Engine, w: LayerWeights, dtypes: LayerDtype[]): Record<LayerDtype, EngineParams> {
  const { hidden: D, ffn: F } = w.shape;
  const KVD = w.shape.kvHeads * w.shape.headDim;
  const plain = {
    q: e.tensor(w.wq, [D, D]),
    k: e.tensor(w.wk, [KVD, D]),
    v: e.tensor(w.wv, [KVD, D]),
    o: e.tensor(w.wo, [D, D]),
    g: e.tensor(w.wg, [F, D]),
    u: e.tensor(w.wu, [F, D]),
    d: e.tensor(w.wd, [D, F]),
  };
  const shared = {
    shape: w.shape,
    ln1: e.tensor(w.ln1, [D]),
    ln2: e.tensor(w.ln2, [D]),
    bq: e.tensor(w.bq, [D]),
    bk: e.tensor(w.bk, [KVD]),
    bv: e.tensor(w.bv, [KVD]),
  };
  const out = {} as Record<LayerDtype, EngineParams>;
  for (const dt of dtypes) {
    const p = (t: Tensor): Tensor => e.packLinear(t, dt);
    out[dt] = { ...shared, q: p(plain.q), k: p(plain.k), v: p(plain.v), o: p(plain.o), g: p(plain.g), u: p(plain.u), d: p(plain.d) };
  }
  for (const t of Object.values(plain)) t.dispose(); // freed once the packs have run
  return out;
}

/** Releases what uploadLayer made (the shared tensors once). */
export function disposeLayer(params: Record<string, EngineParams>): void {
  const seen = new Set<Tensor>();
  for (const p of Object.values(params))
    for (const [k, t] of Object.entries(p)) if (k !== 'shape' && !seen.has(t as Tensor)) (seen.add(t as Tensor), (t as Tensor).dispose());
}

export type Profiler = (op: string) => Promise<void>;

/** One decoder layer: x [1,S,D], positions i32 [1,1,S], past K/V [1,P,G,HD] or null. */
export async function engineLayer(
  e: Engine,
  p: EngineParams,
  x: Tensor,
  pos: Tensor,
  past: { k: Tensor; v: Tensor } | null,
  prof?: Profiler,
): Promise<{ out: Tensor; k: Tensor; v: Tensor; temps: Tensor[] }> {
  const { hidden: D, heads: H, kvHeads: G, headDim: HD, eps, theta } = p.shape;
  const S = x.shape[1];
  const temps: Tensor[] = [];
  const T = (t: Tensor): Tensor => (temps.push(t), t);
  const mark = async (op: string): Promise<void> => {
    if (prof) await prof(op);
  };
  const h = T(e.rmsNorm(x, p.ln1, { eps }));
  await mark('rms_norm');
  const q = T(e.linear(h, p.q, p.bq));
  const k = T(e.linear(h, p.k, p.bk));
  const v = T(e.linear(h, p.v, p.bv));
  await mark('linear q/k/v');
  const qr = T(e.rope(T(e.reshape(q, [1, S, H, HD])), pos, { theta })); // [1,S,H,HD]
  const kr = T(e.rope(T(e.reshape(k, [1, S, G, HD])), pos, { theta })); // [1,S,G,HD]
  const v4 = T(e.reshape(v, [1, S, G, HD]));
  await mark('rope');
  const kc = past ? T(e.concat(past.k, kr, 1)) : kr; // [1,P+S,G,HD]
  const vc = past ? T(e.concat(past.v, v4, 1)) : v4;
  if (past) await mark('concat kv');
  const att = T(e.attention(qr, kc, vc, { mask: 'causal' }).out); // [1,S,H,HD]
  await mark('attention');
  const o = T(e.linear(T(e.reshape(att, [1, S, D])), p.o));
  await mark('linear o');
  const h1 = T(e.add(x, o));
  await mark('add');
  const h2 = T(e.rmsNorm(h1, p.ln2, { eps }));
  await mark('rms_norm');
  const g = T(e.linear(h2, p.g));
  const u = T(e.linear(h2, p.u));
  await mark('linear gate/up');
  const a = T(e.swiglu(g, u));
  await mark('swiglu');
  const dn = T(e.linear(a, p.d));
  await mark('linear down');
  const out = e.add(h1, dn);
  await mark('add');
  return { out, k: kc, v: vc, temps };
}

// ---- the same layer in ONNX ------------------------------------------------------------------------
function transpose(w: Float32Array, rows: number, cols: number): Float32Array {
  const t = new Float32Array(w.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) t[c * rows + r] = w[r * cols + c];
  return t;
}

/** The layer as an ONNX model; withPast adds past_k/past_v inputs concatenated before attention. */
export function buildOnnxLayer(w: LayerWeights, withPast: boolean): Uint8Array {
  const { hidden: D, heads: H, kvHeads: G, headDim: HD, ffn: F } = w.shape;
  const KVD = G * HD;
  const b = new GraphBuilder();
  const x = b.input('x', [1, 'S', D]);
  const cos = b.input('cos', [1, 'S', 1, HD]);
  const sin = b.input('sin', [1, 'S', 1, HD]);
  const mask = b.input('mask', ['S', 'T']);
  const pastK = withPast ? b.input('past_k', [1, 'P', G, HD]) : '';
  const pastV = withPast ? b.input('past_v', [1, 'P', G, HD]) : '';

  const two = b.scalar(2);
  const eps = b.scalar(w.shape.eps);
  // HF's Qwen2RMSNorm pattern (ORT fuses it into SimplifiedLayerNormalization)
  const rms = (t: string, weight: Float32Array, name: string): string => {
    const ms = b.op('ReduceMean', [b.op('Pow', [t, two])], { axes: [-1], keepdims: 1 });
    const d = b.op('Div', [t, b.op('Sqrt', [b.op('Add', [ms, eps])])]);
    return b.op('Mul', [d, b.weight(name, weight, [D])]);
  };
  const linear = (t: string, wt: Float32Array, out: number, inp: number, name: string, bias?: Float32Array): string => {
    const y = b.op('MatMul', [t, b.weight(name, transpose(wt, out, inp), [inp, out])]);
    return bias ? b.op('Add', [y, b.weight(`${name}.bias`, bias, [out])]) : y;
  };
  const lo = b.ints([0]);
  const mid = b.ints([HD / 2]);
  const hi = b.ints([HD]);
  const ax3 = b.ints([3]);
  const rope = (t: string, out?: string): string => {
    const x1 = b.op('Slice', [t, lo, mid, ax3]);
    const x2 = b.op('Slice', [t, mid, hi, ax3]);
    const rot = b.op('Concat', [b.op('Neg', [x2]), x1], { axis: 3 });
    return b.op('Add', [b.op('Mul', [t, cos]), b.op('Mul', [rot, sin])], undefined, out);
  };

  const h = rms(x, w.ln1, 'input_layernorm.weight');
  const q = b.op('Reshape', [linear(h, w.wq, D, D, 'q_proj', w.bq), b.ints([0, 0, H, HD])]);
  const k = b.op('Reshape', [linear(h, w.wk, KVD, D, 'k_proj', w.bk), b.ints([0, 0, G, HD])]);
  const v = b.op('Reshape', [linear(h, w.wv, KVD, D, 'v_proj', w.bv), b.ints([0, 0, G, HD])]);
  const qr = rope(q);
  const kAll = withPast ? b.op('Concat', [pastK, rope(k)], { axis: 1 }, 'present_k') : rope(k, 'present_k');
  const vAll = withPast ? b.op('Concat', [pastV, v], { axis: 1 }, 'present_v') : b.op('Identity', [v], undefined, 'present_v');

  // GQA without copying K/V: queries grouped [1,G,rep,S,HD] against K^T [1,G,1,HD,T] (broadcast)
  const rep = H / G;
  const qs = b.op('Mul', [qr, b.scalar(1 / Math.sqrt(HD))]);
  const qg = b.op('Transpose', [b.op('Reshape', [qs, b.ints([0, 0, G, rep, HD])])], { perm: [0, 2, 3, 1, 4] });
  const kt = b.op('Reshape', [b.op('Transpose', [kAll], { perm: [0, 2, 3, 1] }), b.ints([1, G, 1, HD, -1])]);
  const vg = b.op('Reshape', [b.op('Transpose', [vAll], { perm: [0, 2, 1, 3] }), b.ints([1, G, 1, -1, HD])]);
  const probs = b.op('Softmax', [b.op('Add', [b.op('MatMul', [qg, kt]), mask])], { axis: -1 }); // [1,G,rep,S,T]
  const ctx = b.op('Transpose', [b.op('MatMul', [probs, vg])], { perm: [0, 3, 1, 2, 4] }); // [1,S,G,rep,HD]
  const att = b.op('Reshape', [ctx, b.ints([0, 0, D])]);

  const h1 = b.op('Add', [x, linear(att, w.wo, D, D, 'o_proj')]);
  const h2 = rms(h1, w.ln2, 'post_attention_layernorm.weight');
  const g = linear(h2, w.wg, F, D, 'gate_proj');
  const u = linear(h2, w.wu, F, D, 'up_proj');
  const act = b.op('Mul', [b.op('Mul', [g, b.op('Sigmoid', [g])]), u]);
  b.op('Add', [h1, linear(act, w.wd, D, F, 'down_proj')], undefined, 'out');

  b.output('out', [1, 'S', D]);
  b.output('present_k', [1, 'T', G, HD]);
  b.output('present_v', [1, 'T', G, HD]);
  return b.build(withPast ? 'qwen2_layer_decode' : 'qwen2_layer_prefill');
}

/** HF-style cos/sin [1,S,1,HD] for positions p0..p0+S-1 (emb = cat(freqs, freqs)). */
export function cosSin(shape: LayerShape, p0: number, S: number): { cos: Float32Array; sin: Float32Array } {
  const HD = shape.headDim;
  const cos = new Float32Array(S * HD);
  const sin = new Float32Array(S * HD);
  for (let s = 0; s < S; s++)
    for (let f = 0; f < HD / 2; f++) {
      const a = (p0 + s) * Math.pow(shape.theta, -(2 * f) / HD);
      cos[s * HD + f] = cos[s * HD + f + HD / 2] = Math.cos(a);
      sin[s * HD + f] = sin[s * HD + f + HD / 2] = Math.sin(a);
    }
  return { cos, sin };
}

/** The additive causal mask [S, P+S] for S new tokens after P past ones. */
export function causalMask(S: number, P: number): Float32Array {
  const T = P + S;
  const mask = new Float32Array(S * T);
  for (let i = 0; i < S; i++) for (let j = 0; j < T; j++) mask[i * T + j] = j <= P + i ? 0 : -Infinity;
  return mask;
}
