import test from 'ava';
import { LatteError } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { conv2dRef } from '../helpers/naive-ops.ts';
import { assertClose, fromBf16Bits, randn, toBf16Bits } from '../helpers/reference.ts';

test('conv2d: 3x3 padded, 1x1, strided, grouped and depthwise', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const cases: { x: number[]; w: number[]; stride: number; pad: number; groups: number; bias: boolean }[] = [
    { x: [1, 3, 9, 7], w: [5, 3, 3, 3], stride: 1, pad: 1, groups: 1, bias: true },
    { x: [2, 33, 4, 4], w: [17, 33, 1, 1], stride: 1, pad: 0, groups: 1, bias: true },
    { x: [1, 4, 9, 9], w: [6, 4, 3, 3], stride: 2, pad: 1, groups: 1, bias: false },
    { x: [1, 8, 5, 6], w: [4, 4, 3, 3], stride: 1, pad: 1, groups: 2, bias: true },
    { x: [2, 12, 7, 5], w: [12, 1, 5, 5], stride: 1, pad: 2, groups: 12, bias: true }, // depthwise 5x5 (LiteMLA aggregation)
  ];
  let seed = 1;
  for (const c of cases) {
    const x = randn(c.x.reduce((a, b) => a * b), seed++);
    const w = randn(c.w.reduce((a, b) => a * b), seed++);
    const b = c.bias ? randn(c.w[0], seed++) : null;
    const want = conv2dRef(x, w, b, c.x, c.w, c.stride, c.pad, c.groups);
    const y = e.conv2d(e.tensor(x, c.x), e.tensor(w, c.w), b ? e.tensor(b, [c.w[0]]) : null, { stride: c.stride, padding: c.pad, groups: c.groups });
    t.deepEqual(y.shape, want.shape);
    assertClose(t, await y.readFloat32(), want.y, 1e-5, JSON.stringify(c));
  }
  const code = (f: () => unknown) => t.throws(f, { instanceOf: LatteError })?.code;
  const x = e.tensor(new Float32Array(2 * 4 * 4), [1, 2, 4, 4]);
  t.is(code(() => e.conv2d(x, e.tensor(new Float32Array(27), [1, 3, 3, 3]), null)), 'E_SHAPE');
  t.is(code(() => e.conv2d(x, e.tensor(new Float32Array(50), [1, 2, 5, 5]), null)), 'E_SHAPE');
  t.is(code(() => e.conv2d(x, e.tensor(new Float32Array(18), [1, 2, 3, 3]), null, { stride: 0 })), 'E_ARG');
});

test('pixel_shuffle and nearest upsampling follow PyTorch', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const [N, C, r, H, W] = [2, 3, 2, 3, 5];
  const x = Float32Array.from({ length: N * C * r * r * H * W }, (_, i) => i);
  const got = await e.pixelShuffle(e.tensor(x, [N, C * r * r, H, W]), r).readFloat32();
  const want: number[] = [];
  for (let n = 0; n < N; n++)
    for (let c = 0; c < C; c++)
      for (let ho = 0; ho < H * r; ho++)
        for (let wo = 0; wo < W * r; wo++) want.push(x[((n * C * r * r + c * r * r + (ho % r) * r + (wo % r)) * H + Math.floor(ho / r)) * W + Math.floor(wo / r)]);
  t.deepEqual(Array.from(got), want);
  const up = await e.upsampleNearest(e.tensor(x.subarray(0, 2 * 3 * 5), [1, 2, 3, 5]), 3).readFloat32();
  t.is(up.length, 2 * 9 * 15);
  t.is(up[0 * 135 + 4 * 15 + 7], x[1 * 5 + 2]);
  t.is(up[1 * 135 + 8 * 15 + 14], x[15 + 2 * 5 + 4]);
  t.is(t.throws(() => e.pixelShuffle(e.tensor(x.subarray(0, 30), [1, 6, 1, 5]), 2), { instanceOf: LatteError })?.code, 'E_SHAPE');
});

test('embedding gathers f32 and bf16 rows; an id out of range surfaces as E_INDEX at the read', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const [V, D] = [11, 33];
  const table = randn(V * D, 4);
  const ids = Int32Array.from([3, 0, 10, 3, 7]);
  const got = await e.embedding(e.tensor(table, [V, D]), e.tensor(ids, [5], 'i32')).readFloat32();
  const want = Array.from(ids).flatMap((i) => Array.from(table.subarray(i * D, (i + 1) * D)));
  t.deepEqual(Array.from(got), want);
  const bits = Uint16Array.from(table, toBf16Bits);
  const got16 = await e.embedding(e.tensor(bits, [V, D], 'bf16'), e.tensor(ids, [5], 'i32')).readFloat32();
  t.deepEqual(Array.from(got16), Array.from(ids).flatMap((i) => Array.from(bits.subarray(i * D, (i + 1) * D), fromBf16Bits)));
  const bad = e.embedding(e.tensor(table, [V, D]), e.tensor(Int32Array.from([1, 11]), [2], 'i32'));
  const err = await t.throwsAsync(() => bad.read(), { instanceOf: LatteError });
  t.is(err?.code, 'E_INDEX');
});
