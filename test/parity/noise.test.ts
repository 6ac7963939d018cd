// The seeded noise generator (docs/reference.md#noise) against the PyTorch reference's fixture.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { LatteError, openCheckpoint } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { BACKENDS, backendTest, engineOn } from '../helpers/cuda.ts';

const fixture = fileURLToPath(new URL('../fixtures/noise.safetensors', import.meta.url));

/** Distance in float32 units in the last place. */
function ulps(a: number, b: number): number {
  const f = new Float32Array([a, b]);
  const i = new Int32Array(f.buffer);
  const key = (x: number) => (x < 0 ? 0x80000000 - x : x);
  return Math.abs(key(i[0]) - key(i[1]));
}

for (const backend of BACKENDS) {
  backendTest(backend, 'noise matches the reference generator (within 1 float32 ulp; bit-exact almost always)', async (t) => {
    const ck = openCheckpoint(fixture);
    const e = engineOn(backend);
    t.teardown(() => e.dispose());
    const cases: [string, number[], number | bigint][] = [
      ['out.seed42', [2, 4, 4, 4], 42],
      ['out.seed_2pow53m1', [17], 2 ** 53 - 1],
      ['out.seed_2pow53m1', [17], 2n ** 53n - 1n],
    ];
    for (const [name, shape, seed] of cases) {
      const want = await e.load(ck, name).readFloat32();
      const got = await e.noise(shape, seed).readFloat32();
      let worst = 0;
      let exact = 0;
      for (let i = 0; i < want.length; i++) {
        worst = Math.max(worst, ulps(got[i], want[i]));
        if (got[i] === want[i]) exact++;
      }
      t.true(worst <= 1, `${name}: ${worst} ulps`);
      t.true(exact >= want.length - 1, `${name}: only ${exact}/${want.length} bit-exact`);
    }
    const first = await e.noise([1], 42).readFloat32();
    t.is(new Uint32Array(first.buffer)[0], 0x3fb95a95); // docs/reference.md's hand check
  });
}

test('noise slices: an offset continues the same sequence; bad seeds and shapes are refused', async (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const all = await e.noise([64], 7).readFloat32();
  const tail = await e.noise([4, 10], 7, 24).readFloat32();
  t.deepEqual(Array.from(tail), Array.from(all.subarray(24, 64)));
  const other = await e.noise([64], 8).readFloat32();
  t.notDeepEqual(Array.from(other), Array.from(all));
  const code = (f: () => unknown) => t.throws(f, { instanceOf: LatteError })?.code;
  t.is(code(() => e.noise([4], -1)), 'E_ARG');
  t.is(code(() => e.noise([4], 1.5)), 'E_ARG');
  t.is(code(() => e.noise([4], 2 ** 60)), 'E_ARG'); // beyond a safe integer: pass a bigint
  t.is(code(() => e.noise([4], 2n ** 64n)), 'E_ARG');
  t.is(code(() => e.noise([0, 4], 1)), 'E_SHAPE');
  t.is(code(() => e.noise([], 1)), 'E_ARG');
});
