// The engine's stream contract on the CUDA backend: selection and its reason, long op chains with
// intermediates freed on the way, fences, device-side errors surfacing at the next fence, drop and
// dispose. Skipped without a usable CUDA device.
import { Engine, LatteError } from '../../lib/index.ts';
import { cudaDryRun, cudaEngine, cudaTest } from '../helpers/cuda.ts';

cudaTest("backend selection: 'cuda' is honoured; 'auto' picks it and names the device", (t) => {
  if (cudaDryRun) {
    t.pass('dry run: no device to select');
    return;
  }
  const e = cudaEngine();
  t.is(e.backend.name, 'cuda');
  t.is(e.backend.reason, 'requested');
  void e.dispose();
  if (process.env.LATTE_BACKEND) {
    t.pass('LATTE_BACKEND overrides auto here');
    return;
  }
  const auto = new Engine();
  t.is(auto.backend.name, 'cuda');
  t.regex(auto.backend.reason, /^auto: .*sm_\d+/);
  void auto.dispose();
});

cudaTest('10,000 chained ops: exact result, intermediates freed as the stream goes', async (t) => {
  const e = cudaEngine();
  t.teardown(() => e.dispose());
  const n = 1 << 18;
  let x = e.tensor(new Float32Array(n).fill(0.5), [n]);
  const one = e.tensor(new Float32Array(n).fill(0.5), [n]);
  for (let i = 0; i < 10_000; i++) {
    const y = e.add(x, one);
    x.dispose();
    x = y;
  }
  const v = await x.readFloat32();
  t.is(v[0], 10_001 * 0.5);
  t.is(v[n - 1], 10_001 * 0.5);
  t.is(e.stats().pending, 0);
  t.is(e.stats().bytesInUse, 2 * n * 4);
});

cudaTest('fences resolve in order after real work', async (t) => {
  const e = cudaEngine();
  t.teardown(() => e.dispose());
  const big = e.tensor(new Float32Array(512 * 512).fill(1), [512, 512]);
  const order: number[] = [];
  const fences: Promise<void>[] = [];
  for (let i = 0; i < 5; i++) {
    e.linear(big, big);
    fences.push(e.fence().then(() => void order.push(i)));
  }
  await Promise.all(fences);
  t.deepEqual(order, [0, 1, 2, 3, 4]);
});

cudaTest('an id out of range found on the device surfaces at the next fence once; the stream recovers', async (t) => {
  const e = cudaEngine();
  t.teardown(() => e.dispose());
  const table = e.tensor(new Float32Array(8), [4, 2]);
  e.embedding(table, e.tensor(Int32Array.from([9]), [1], 'i32'));
  const err = await t.throwsAsync(() => e.fence(), { instanceOf: LatteError });
  t.is(err?.code, 'E_INDEX');
  await t.notThrowsAsync(() => e.fence(), 'the error was reported once');
  t.deepEqual(Array.from(await e.add(table, table).readFloat32()), new Array(8).fill(0));
});

cudaTest('dropPending and dispose: queued reads reject E_ABORTED, memory is returned', async (t) => {
  const e = cudaEngine();
  const big = e.tensor(new Float32Array(1024 * 1024).fill(1e-3), [1024, 1024]);
  let x = big;
  for (let i = 0; i < 40; i++) x = e.linear(x, big);
  const pending = x.read();
  e.dropPending();
  // on CUDA the worker only launches kernels, so it may already have passed the read: either the
  // read completes or it was dropped with E_ABORTED, never anything else
  const [r] = await Promise.allSettled([pending]);
  if (r.status === 'rejected') t.is((r.reason as LatteError).code, 'E_ABORTED');
  const y = e.add(e.tensor([1, 2], [2]), e.tensor([3, 4], [2]));
  t.deepEqual(Array.from(await y.readFloat32()), [4, 6]);
  await e.dispose();
  t.true(e.disposed);
  t.is(t.throws(() => e.tensor([1], [1]), { instanceOf: LatteError })?.code, 'E_DISPOSED');
});
