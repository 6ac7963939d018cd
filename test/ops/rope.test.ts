import test from 'ava';
import { LatteError } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { assertClose, randn } from '../helpers/reference.ts';

/**
 * Rotary embeddings written the way Hugging Face's Qwen2-VL code builds them: a cos/sin table of
 * width d per position axis (freqs duplicated), chosen per frequency section, then rotate_half.
 * `invFreq[f]` for f < d/2; `axisOf[f]` is the position axis that frequency reads.
 */
function ropeRef(x: Float32Array, pos: Int32Array, B: number, S: number, H: number, d: number, invFreq: number[], axisOf: number[]): Float64Array {
  const y = new Float64Array(x.length);
  const half = d / 2;
  for (let b = 0; b < B; b++)
    for (let s = 0; s < S; s++)
      for (let h = 0; h < H; h++) {
        const base = ((b * S + s) * H + h) * d;
        const emb: number[] = [];
        for (let i = 0; i < d; i++) {
          const f = i % half;
          emb.push(Math.fround(pos[(axisOf[f] * B + b) * S + s] * invFreq[f]));
        }
        for (let i = 0; i < d; i++) {
          const rot = i < half ? -x[base + i + half] : x[base + i - half];
          y[base + i] = x[base + i] * Math.cos(emb[i]) + rot * Math.sin(emb[i]);
        }
      }
  return y;
}

const inv = (theta: number, idx: number, dim: number) => Math.fround(1 / Math.fround(theta ** (idx / dim)));

test('1-D RoPE (Qwen2 text) at large positions', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const [B, S, H, d] = [2, 7, 3, 64];
  const x = randn(B * S * H * d, 1);
  const pos = Int32Array.from({ length: B * S }, (_, i) => (i * 37) % 3000);
  const invFreq = Array.from({ length: d / 2 }, (_, f) => inv(1e6, 2 * f, d));
  const got = await e.rope(e.tensor(x, [B, S, H, d]), e.tensor(pos, [1, B, S], 'i32'), { theta: 1e6 }).readFloat32();
  assertClose(t, got, ropeRef(x, pos, B, S, H, d, invFreq, invFreq.map(() => 0)), 2e-6, 'rope 1-D');
});

test('M-RoPE with sections [16, 24, 24] reads (t, row, col) per section', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const [B, S, H, d] = [1, 9, 2, 128];
  const sections = [16, 24, 24];
  const x = randn(B * S * H * d, 2);
  const pos = new Int32Array(3 * B * S);
  for (let s = 0; s < S; s++) {
    pos[s] = 5; // t
    pos[S + s] = 5 + Math.floor(s / 3); // row
    pos[2 * S + s] = 5 + (s % 3); // col
  }
  const invFreq = Array.from({ length: d / 2 }, (_, f) => inv(1e6, 2 * f, d));
  const axisOf = invFreq.map((_, f) => (f < 16 ? 0 : f < 40 ? 1 : 2));
  const got = await e.rope(e.tensor(x, [B, S, H, d]), e.tensor(pos, [3, B, S], 'i32'), { theta: 1e6, sections }).readFloat32();
  assertClose(t, got, ropeRef(x, pos, B, S, H, d, invFreq, axisOf), 2e-6, 'mrope');
  // text tokens (all three axes equal) must reduce to 1-D RoPE
  const same = new Int32Array(3 * S).map((_, i) => 100 + (i % S));
  const a = await e.rope(e.tensor(x, [B, S, H, d]), e.tensor(same, [3, B, S], 'i32'), { theta: 1e6, sections }).readFloat32();
  const b = await e.rope(e.tensor(x, [B, S, H, d]), e.tensor(same.subarray(0, S), [1, B, S], 'i32'), { theta: 1e6 }).readFloat32();
  assertClose(t, a, b, 0, 'mrope on text == 1-D');
});

test('vision 2-D RoPE: row and column halves each restart their frequencies', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const [B, S, H, d] = [1, 12, 4, 80]; // Qwen2-VL vision head dim is 80
  const x = randn(B * S * H * d, 3);
  const pos = new Int32Array(2 * S);
  for (let s = 0; s < S; s++) {
    pos[s] = Math.floor(s / 4);
    pos[S + s] = s % 4;
  }
  // HF VisionRotaryEmbedding(dim = d/2): inv_freq over arange(0, d/2, 2) / (d/2), h then w
  const q = d / 4;
  const invFreq = Array.from({ length: d / 2 }, (_, f) => inv(10000, 2 * (f % q), d / 2));
  const axisOf = invFreq.map((_, f) => (f < q ? 0 : 1));
  const got = await e.rope(e.tensor(x, [B, S, H, d]), e.tensor(pos, [2, B, S], 'i32'), { theta: 10000, sections: [q, q], restart: true }).readFloat32();
  assertClose(t, got, ropeRef(x, pos, B, S, H, d, invFreq, axisOf), 2e-6, 'vision rope');
});

test('rope validates positions, sections and theta', (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const x = e.tensor(new Float32Array(2 * 3 * 8), [1, 2, 3, 8]);
  const pos = e.tensor(new Int32Array(2), [1, 1, 2], 'i32');
  t.is(t.throws(() => e.rope(x, e.tensor(new Int32Array(3), [1, 1, 3], 'i32')), { instanceOf: LatteError })?.code, 'E_SHAPE');
  t.is(t.throws(() => e.rope(x, e.tensor(new Float32Array(2), [1, 1, 2])), { instanceOf: LatteError })?.code, 'E_DTYPE');
  t.is(t.throws(() => e.rope(x, pos, { sections: [1, 2] }), { instanceOf: LatteError })?.code, 'E_ARG');
  t.is(t.throws(() => e.rope(x, pos, { theta: 0 }), { instanceOf: LatteError })?.code, 'E_ARG');
  t.is(t.throws(() => e.rope(e.tensor(new Float32Array(6), [1, 2, 1, 3]), pos), { instanceOf: LatteError })?.code, 'E_SHAPE');
});
