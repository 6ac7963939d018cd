// Engine threads: 0 is every core; more threads than cores is refused (they only time-slice).
import test from 'ava';
import os from 'node:os';
import { Engine, LatteError } from '../lib/index.ts';

test('threads above the machine\'s cores are E_ARG naming the cores; 0 and all cores are fine', async (t) => {
  const cores = os.availableParallelism();
  for (const threads of [cores + 1, 1024]) {
    const err = t.throws(() => new Engine({ backend: 'cpu', threads }), { instanceOf: LatteError });
    t.is(err?.code, 'E_ARG');
    t.regex(err?.message ?? '', new RegExp(`this machine has ${cores} cores`));
  }
  for (const threads of [0, cores]) {
    const e = new Engine({ backend: 'cpu', threads });
    t.is(e.backend.threads, cores);
    await e.dispose();
  }
});
