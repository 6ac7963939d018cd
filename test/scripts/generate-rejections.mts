// generateImage failing mid-run, in a process with the default --unhandled-rejections=throw: the
// caller must see each rejection, no progress may come after it, and the process must live on.
// Prints one JSON line: case -> { error, late } (late: onProgress calls after the rejection).
// Usage: node --import=tsx test/scripts/generate-rejections.mts [case ...]
import { fileURLToPath } from 'node:url';
import { LatteFlow, type GenerateOptions, type GenerateProgress, type StepFunction } from '../../lib/index.ts';

const lf = await LatteFlow.load(fileURLToPath(new URL('../fixtures/tiny-model', import.meta.url)), { backend: 'cpu', threads: 1 });
const steps = 6;
const euler: StepFunction = ({ engine, x, t0, dt, velocity }) => engine.axpby(1, x, dt, velocity(x, t0));
const fail = (what: string): never => {
  throw new Error(what);
};
type Case = (onProgress: (p: GenerateProgress) => void) => Partial<GenerateOptions>;
// a stateful multistep sampler (two-step Adams-Bashforth) keeps the previous velocity across steps
let previous: ReturnType<StepFunction> | undefined;
const ab2: StepFunction = ({ engine, x, t0, dt, step, velocity }) => {
  const v = velocity(x, t0);
  const next = step === 0 || !previous ? engine.axpby(1, x, dt, v) : engine.axpby(1, x, dt, engine.axpby(1.5, v, -0.5, previous));
  previous = v;
  return next;
};
const cases: Record<string, Case> = {
  // throws from step 1 on: the step queued behind it must not reject unheard
  progressFirst: (rec) => ({ onProgress: (p) => (rec(p), fail(`progress ${p.step}`)) }),
  progressLast: (rec) => ({ onProgress: (p) => (rec(p), p.step === steps && fail(`progress ${p.step}`)) }),
  samplerThrows: (rec) => ({ onProgress: rec, sampler: (c) => (c.step === 3 ? fail('sampler 3') : euler(c)) }),
  // an async onProgress that rejects: its promise is the call's, not an orphan
  progressAsync: (rec) => ({ onProgress: async (p) => (rec(p), p.step === 2 && fail(`async progress ${p.step}`)) }),
  // an async step function: refused (E_ARG), and its rejected promise observed
  samplerAsyncRejects: (rec) => ({ onProgress: rec, sampler: (async () => fail('async sampler')) as unknown as StepFunction }),
  // an op that fails while it runs (an id out of range): the error surfaces at that step's fence
  engineFails: (rec) => ({
    onProgress: rec,
    sampler: (c) => {
      if (c.step === 2) c.engine.embedding(c.engine.tensor([1, 2], [2, 1]), c.engine.tensor(new Int32Array([7]), [1], 'i32'));
      return euler(c);
    },
  }),
};
const results: Record<string, { error: string; late: number }> = {};
const only = process.argv.slice(2);
for (const [name, make] of Object.entries(cases).filter(([n]) => only.length === 0 || only.includes(n))) {
  let settled = false;
  let late = 0;
  const rec = () => void (settled && late++);
  let error = 'resolved';
  try {
    await lf.generateImage({ prompt: 'a circle', steps, ...make(rec) });
  } catch (e) {
    const err = e as { code?: string; message?: string };
    error = err.code ?? err.message ?? String(e);
  }
  settled = true;
  await new Promise((r) => setTimeout(r, 100)); // an orphaned rejection would end the process here
  results[name] = { error, late };
}
const [img] = await lf.generateImage({ prompt: 'a circle', steps: 2 });
const [multistep] = await lf.generateImage({ prompt: 'a circle', steps: 4, sampler: ab2 });
results.multistep = { error: multistep.data.length > 0 ? 'resolved' : 'empty', late: 0 };
await lf.dispose();
console.log(JSON.stringify({ ...results, after: img.data.length > 0 ? 'ok' : 'empty' }));
