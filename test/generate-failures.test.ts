// generateImage when something fails mid-run: the caller gets the first error, the process lives on
// (no promise is left to reject unheard), and a failed call leaves nothing behind in the engine.
import test from 'ava';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { Engine, LatteError, LatteFlow, type StepFunction } from '../lib/index.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const tiny = fileURLToPath(new URL('./fixtures/tiny-model', import.meta.url));
const euler: StepFunction = ({ engine, x, t0, dt, velocity }) => engine.axpby(1, x, dt, velocity(x, t0));

test('onProgress or a sampler throwing, or an engine error mid-run, rejects the call and the process survives', async (t) => {
  // a child with node's default --unhandled-rejections=throw: an orphaned rejection kills it
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
    execFile(process.execPath, ['--import=tsx', 'test/scripts/generate-rejections.mts'], { cwd: root, timeout: 120_000 }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    ),
  );
  t.is(code, 0, stderr);
  t.deepEqual(JSON.parse(stdout.trim().split('\n').pop() ?? '{}'), {
    progressFirst: { error: 'progress 1', late: 0 },
    progressLast: { error: 'progress 6', late: 0 },
    samplerThrows: { error: 'sampler 3', late: 0 },
    progressAsync: { error: 'async progress 2', late: 0 },
    samplerAsyncRejects: { error: 'E_ARG', late: 0 },
    engineFails: { error: 'E_INDEX', late: 0 },
    multistep: { error: 'resolved', late: 0 },
    after: 'ok',
  });
});

test('a sampler that returns no latent of this engine is E_ARG naming the sampler', async (t) => {
  const lf = await LatteFlow.load(tiny, { backend: 'cpu', threads: 1 });
  t.teardown(() => lf.dispose());
  const other = new Engine({ backend: 'cpu', threads: 1 });
  t.teardown(() => other.dispose());
  const returns = (v: (c: Parameters<StepFunction>[0]) => unknown): StepFunction => {
    const mySampler = ((c) => v(c)) as StepFunction;
    return mySampler;
  };
  const bad: [string, StepFunction][] = [
    ['nothing', returns(() => undefined)],
    ['a number', returns(() => 1)],
    ['a promise', returns(async (c) => euler(c))],
    ['a disposed tensor', returns((c) => (c.x.dispose(), c.x))],
    ["another engine's tensor", returns((c) => other.tensor(new Float32Array(c.x.size), c.x.shape))],
    ['a tensor of the wrong shape', returns((c) => c.engine.reshape(euler(c), [c.x.size]))],
  ];
  for (const [what, sampler] of bad) {
    const err = await t.throwsAsync(lf.generateImage({ prompt: 'a circle', steps: 3, sampler }), { instanceOf: LatteError }, what);
    t.is(err?.code, 'E_ARG', what);
    t.regex(err?.message ?? '', /sampler 'mySampler' returned .* at step 0/, what);
  }
  const [img] = await lf.generateImage({ prompt: 'a circle', steps: 2, sampler: euler });
  t.true(img.data.length > 0, 'the model still generates');
});

test('a sampler that throws rejects with its error and leaves no tensor, queued op or program behind', async (t) => {
  const lf = await LatteFlow.load(tiny, { backend: 'cpu', threads: 1 });
  t.teardown(() => lf.dispose());
  const e = lf.engine;
  await lf.generateImage({ prompt: 'a circle', steps: 4 }); // the pools' first allocations
  await e.fence(); // the first call's releases have run
  const before = e.stats().bytesInUse;
  const oops = new Error('oops');
  const throwsAtStep2: StepFunction = (c) => {
    const y = euler(c); // tensors made before the throw are the call's to free
    if (c.step === 2) throw oops;
    return y;
  };
  t.is(await t.throwsAsync(lf.generateImage({ prompt: 'a circle', steps: 4, sampler: throwsAtStep2 })), oops);
  const after = e.stats();
  t.is(after.pending, 0, 'the queued step finished before the call rejected');
  await e.fence();
  t.is(e.stats().bytesInUse, before, 'every tensor and recorded program of the call was freed');
});
