// Token sampling on the engine against the reference's exact algorithm (docs/reference.md).
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { LatteError, openCheckpoint } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { BACKENDS, backendTest, engineOn } from '../helpers/cuda.ts';

const fixture = fileURLToPath(new URL('../fixtures/sampling.safetensors', import.meta.url));

for (const backend of BACKENDS) {
  backendTest(backend, 'greedy / temperature / top-k / top-p choices equal the reference for seeded draws', async (t) => {
    const ck = openCheckpoint(fixture);
    const cfg = JSON.parse(ck.metadata().config) as { settings: [number, number, number][]; cases: [number, number][] };
    const e = engineOn(backend);
    t.teardown(() => e.dispose());
    const logits = e.load(ck, 'in.logits'); // [12, 97]
    const want = (await e.load(ck, 'out.ids').read()) as Int32Array; // [settings, 12, cases]
    const rows = logits.shape[0];
    let compared = 0;
    for (const [s, [temperature, topK, topP]] of cfg.settings.entries()) {
      for (const [c, [seed, step]] of cfg.cases.entries()) {
        const ids = (await e.sample(logits, { temperature, topK, topP, seed, step }).read()) as Int32Array;
        for (let r = 0; r < rows; r++) {
          t.is(ids[r], want[(s * rows + r) * cfg.cases.length + c], `setting ${s} (T=${temperature} k=${topK} p=${topP}) row ${r} seed ${seed} step ${step}`);
          compared++;
        }
      }
    }
    t.is(compared, 6 * 12 * 3);
  });
}

test('sampling validates its options', (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const l = e.tensor(new Float32Array(10), [2, 5]);
  const code = (f: () => unknown) => t.throws(f, { instanceOf: LatteError })?.code;
  t.deepEqual(e.sample(l).shape, [2]);
  t.is(code(() => e.sample(l, { temperature: -1 })), 'E_ARG');
  t.is(code(() => e.sample(l, { temperature: Number.POSITIVE_INFINITY })), 'E_ARG');
  t.is(code(() => e.sample(l, { topK: -2 })), 'E_ARG');
  t.is(code(() => e.sample(l, { topP: 0 })), 'E_ARG');
  t.is(code(() => e.sample(l, { topP: 1.5 })), 'E_ARG');
  t.is(code(() => e.sample(e.tensor(new Int32Array(4), [4], 'i32'))), 'E_DTYPE');
});
