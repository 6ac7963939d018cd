// Contract tests for the engine's stream: enqueue returns at once, results only through reads and
// fences, errors surface with their code, abort and dispose behave.
import test from 'ava';
import { setImmediate as tick } from 'node:timers/promises';
import { Engine, LatteError, getBackendInfo } from '../lib/index.ts';
import { cpuEngine } from './helpers/engine.ts';

test('getBackendInfo reports backends, CUDA status with a reason, and CPU features', (t) => {
  const info = getBackendInfo();
  t.true(info.compiled.includes('cpu'));
  t.is(typeof info.cuda.available, 'boolean');
  t.true(info.cuda.reason.length > 0);
  t.is(info.cuda.compiled, info.compiled.includes('cuda'));
  t.true(info.cpu.cores >= 1);
  t.regex(info.cpu.gemm, /oneDNN \d+\.\d+/);
  for (const f of ['avx2', 'fma', 'avx512f', 'avx512bf16', 'amxBf16', 'amxPermitted'] as const) t.is(typeof info.cpu[f], 'boolean');
});

test('backend selection: cpu is honoured, auto reports why, cuda without a usable GPU throws', (t) => {
  const cpu = new Engine({ backend: 'cpu', threads: 1 });
  t.is(cpu.backend.name, 'cpu');
  t.is(cpu.backend.threads, 1);
  void cpu.dispose();
  const auto = new Engine();
  t.true(auto.backend.reason.length > 0);
  if (auto.backend.name === 'cpu') t.regex(auto.backend.reason, /CUDA/);
  void auto.dispose();
  if (!getBackendInfo().cuda.available) {
    const err = t.throws(() => new Engine({ backend: 'cuda' }), { instanceOf: LatteError });
    t.is(err?.code, 'E_BACKEND_UNAVAILABLE');
  } else {
    t.pass('a usable GPU is present: the CUDA tests cover it');
  }
  t.is(t.throws(() => new Engine({ backend: 'tpu' as 'cpu' }), { instanceOf: LatteError })?.code, 'E_ARG');
  t.is(t.throws(() => new Engine({ threads: -1 }), { instanceOf: LatteError })?.code, 'E_ARG');
  t.is(t.throws(() => new Engine({ threads: 1.5 }), { instanceOf: LatteError })?.code, 'E_ARG');
});

test('10,000 enqueued ops return at once and the event loop runs while the stream works', async (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const n = 1 << 18;
  let x = e.tensor(new Float32Array(n).fill(0.5), [n]);
  const one = e.tensor(new Float32Array(n).fill(0.5), [n]);
  // a timer that notes whether the engine still had queued work each time it fired
  let ticksWhileBusy = 0;
  const timer = setInterval(() => {
    if (e.stats().pending > 0) ticksWhileBusy++;
  }, 1);
  const t0 = performance.now();
  for (let i = 0; i < 10_000; i++) {
    const y = e.add(x, one);
    x.dispose(); // the queued op keeps its input alive until it has run
    x = y;
  }
  const enqueueMs = performance.now() - t0;
  t.true(e.stats().pending > 0, 'enqueueing returned before the work was done');
  const v = await x.readFloat32();
  clearInterval(timer);
  t.is(v[0], 10_001 * 0.5); // exact in f32
  t.is(v[n - 1], 10_001 * 0.5);
  t.true(ticksWhileBusy > 0, 'the timer fired while the stream was still working');
  t.log(`enqueue 10k ops: ${enqueueMs.toFixed(1)} ms (${((enqueueMs * 1000) / 10_000).toFixed(2)} us/op); ticks while busy ${ticksWhileBusy}`);
  t.is(e.stats().pending, 0);
  t.is(e.stats().bytesInUse, 2 * n * 4, 'intermediates were freed as the stream went');
});

test('fences resolve in enqueue order and after the ops before them', async (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const order: number[] = [];
  const big = e.tensor(new Float32Array(256 * 256).fill(1), [256, 256]);
  const fences: Promise<void>[] = [];
  for (let i = 0; i < 5; i++) {
    e.linear(big, big); // real work between fences
    fences.push(e.fence().then(() => void order.push(i)));
  }
  await Promise.all(fences);
  t.deepEqual(order, [0, 1, 2, 3, 4]);
  t.is(e.stats().opsRun, e.stats().opsEnqueued);
});

test('an error inside the queue surfaces at the next fence with its code; the stream recovers', async (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const table = e.tensor(new Float32Array(8), [4, 2]);
  const bad = e.embedding(table, e.tensor(Int32Array.from([9]), [1], 'i32')); // runs, then fails
  const after = e.add(bad, bad); // depends on the failed op: skipped
  const err = await t.throwsAsync(() => e.fence(), { instanceOf: LatteError });
  t.is(err?.code, 'E_INDEX');
  await t.notThrowsAsync(() => e.fence(), 'the error was reported once');
  const again = await t.throwsAsync(() => after.read(), { instanceOf: LatteError });
  t.is(again?.code, 'E_NOT_COMPUTED');
  const ok = e.add(table, table);
  t.deepEqual(Array.from(await ok.readFloat32()), new Array(8).fill(0));
});

test('abort between enqueues: the loop stops, pending work is dropped, its fences reject E_ABORTED', async (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const ac = new AbortController();
  const w = e.tensor(new Float32Array(384 * 384).fill(0.001), [384, 384]);
  let x = e.tensor(new Float32Array(384 * 384).fill(1), [384, 384]);
  const fences: Promise<void>[] = [];
  let resolved = 0;
  let enqueued = 0;
  const err = await t.throwsAsync(
    async () => {
      for (let step = 0; step < 100_000; step++) {
        if (ac.signal.aborted) throw new LatteError('E_ABORTED', 'aborted');
        x = e.linear(x, w);
        enqueued++;
        if (step % 20 === 19) {
          // the user aborts once the third progress fence has come back; 20 ops (~20 ms of work) per
          // tick keep a backlog queued even when a loaded machine slows the JS side down
          fences.push(e.fence().then(() => void (++resolved === 3 && ac.abort())));
          await tick();
        }
      }
    },
    { instanceOf: LatteError },
  );
  t.is(err?.code, 'E_ABORTED');
  const dropped = e.dropPending();
  const settled = await Promise.allSettled(fences);
  const aborted = settled.filter((s) => s.status === 'rejected' && (s.reason as LatteError).code === 'E_ABORTED').length;
  t.true(enqueued < 100_000, 'the loop stopped');
  t.true(dropped > 0, 'queued work was dropped');
  t.true(aborted > 0, 'fences behind the drop rejected with E_ABORTED');
  t.log(`enqueued ${enqueued}, dropped ${dropped}, fences aborted ${aborted}`);
  // the engine stays usable after a drop
  const y = e.add(e.tensor([1, 2], [2]), e.tensor([3, 4], [2]));
  t.deepEqual(Array.from(await y.readFloat32()), [4, 6]);
});

test('dropPending rejects queued reads with E_ABORTED and their tensors with E_NOT_COMPUTED', async (t) => {
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const big = e.tensor(new Float32Array(512 * 512).fill(1), [512, 512]);
  let x = big;
  for (let i = 0; i < 40; i++) x = e.linear(x, big);
  const pending = x.read();
  const dropped = e.dropPending();
  t.true(dropped > 0);
  const err = await t.throwsAsync(() => pending, { instanceOf: LatteError });
  t.is(err?.code, 'E_ABORTED');
  const later = await t.throwsAsync(() => x.read(), { instanceOf: LatteError });
  t.is(later?.code, 'E_NOT_COMPUTED');
});

test('dispose drains, frees all memory, is idempotent, and use after dispose throws E_DISPOSED', async (t) => {
  const e = cpuEngine(1);
  const a = e.tensor(new Float32Array(1 << 20), [1024, 1024]);
  const b = e.add(a, a);
  await e.fence();
  t.true(e.stats().bytesInUse >= 8 << 20);
  const r = b.read(); // queued before dispose: still answered
  await e.dispose();
  t.is((await r).length, 1 << 20);
  t.is(e.stats().bytesInUse, 0);
  t.true(e.disposed);
  await t.notThrowsAsync(() => e.dispose());
  const code = (f: () => unknown) => t.throws(f, { instanceOf: LatteError })?.code;
  t.is(code(() => e.add(a, a)), 'E_DISPOSED');
  t.is(code(() => e.tensor([1], [1])), 'E_DISPOSED');
  t.is((await t.throwsAsync(() => e.fence(), { instanceOf: LatteError }))?.code, 'E_DISPOSED');
  t.is((await t.throwsAsync(() => b.read(), { instanceOf: LatteError }))?.code, 'E_DISPOSED');
  t.is(code(() => e.dropPending()), 'E_DISPOSED');
});

test('dispose({drop}) drops queued work and frees memory; Symbol.asyncDispose disposes', async (t) => {
  const e = cpuEngine(1);
  const big = e.tensor(new Float32Array(512 * 512).fill(1), [512, 512]);
  let x = big;
  for (let i = 0; i < 50; i++) x = e.linear(x, big);
  const pending = e.fence();
  await e.dispose({ drop: true });
  t.is((await t.throwsAsync(() => pending, { instanceOf: LatteError }))?.code, 'E_ABORTED');
  t.is(e.stats().bytesInUse, 0);
  let kept: Engine | undefined;
  {
    await using scoped = cpuEngine(1);
    scoped.tensor([1, 2, 3], [3]);
    kept = scoped;
    t.false(scoped.disposed);
  }
  t.true(kept.disposed);
  t.is(kept.stats().bytesInUse, 0);
});

test('tensor dispose releases memory; a disposed tensor or one from another engine is refused', async (t) => {
  const e = cpuEngine(1);
  const other = cpuEngine(1);
  t.teardown(async () => {
    await e.dispose();
    await other.dispose();
  });
  const a = e.tensor(new Float32Array(1 << 18), [1 << 18]);
  await e.fence();
  const before = e.stats().bytesInUse;
  a.dispose();
  t.true(a.disposed);
  t.is(e.stats().bytesInUse, before - (1 << 20));
  t.is(t.throws(() => e.add(a, a), { instanceOf: LatteError })?.code, 'E_DISPOSED');
  const b = other.tensor([1], [1]);
  t.is(t.throws(() => e.add(b, b), { instanceOf: LatteError })?.code, 'E_ARG');
  t.is(t.throws(() => e.tensor([1, 2], [2], 'q8' as 'f32'), { instanceOf: LatteError })?.code, 'E_DTYPE');
  t.is(t.throws(() => e.tensor(new Float32Array(2), [2], 'i32'), { instanceOf: LatteError })?.code, 'E_DTYPE');
  t.is(t.throws(() => e.tensor([1, 2], [-2]), { instanceOf: LatteError })?.code, 'E_ARG');
  t.is(t.throws(() => e.reshape(e.tensor([1, 2, 3], [3]), [2, 2]), { instanceOf: LatteError })?.code, 'E_SHAPE');
  const empty = e.tensor(new Float32Array(0), [2, 0]);
  t.is(t.throws(() => e.softmax(empty), { instanceOf: LatteError })?.code, 'E_SHAPE');
  const img = e.tensor(new Float32Array(4), [1, 1, 2, 2]);
  t.is(t.throws(() => e.upsampleNearest(img, 2 ** 30), { instanceOf: LatteError })?.code, 'E_OOM');
  t.is(t.throws(() => e.upsampleNearest(img, 2 ** 31), { instanceOf: LatteError })?.code, 'E_ARG');
});
