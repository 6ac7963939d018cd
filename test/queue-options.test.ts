// The scale-out entry points refuse bad options before they touch Redis: a bad URL is E_ARG from the
// library, and `latte-flow worker` exits 2 on bad usage and 1 on a bad URL, with one line naming it.
import test from 'ava';
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { createQueueClient, createWorker, LatteError } from '../lib/index.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

test('createWorker / createQueueClient: a malformed or non-redis URL is E_ARG', async (t) => {
  for (const redis of ['', 'not a url', 'http://127.0.0.1:6379', 'redis://127.0.0.1:6379/x']) {
    const a = await t.throwsAsync(createQueueClient({ redis }), { instanceOf: LatteError });
    t.is(a?.code, 'E_ARG', `client ${JSON.stringify(redis)}`);
    const b = await t.throwsAsync(createWorker({ redis, model: path.join(root, 'models/shapes') }), { instanceOf: LatteError });
    t.is(b?.code, 'E_ARG', `worker ${JSON.stringify(redis)}`);
  }
});

test('latte-flow worker: no --redis or a bad --concurrency exits 2; a bad URL exits 1 with its code', async (t) => {
  const run = (args: string[]) =>
    new Promise<{ code: number | null; err: string }>((resolve) => {
      const c = spawn(process.execPath, ['--import=tsx', path.join(root, 'lib/cli.ts'), 'worker', ...args], { cwd: root });
      let err = '';
      c.stderr.on('data', (d) => (err += d));
      c.once('exit', (code) => resolve({ code, err }));
    });
  t.is((await run([])).code, 2, 'no --redis');
  t.is((await run(['--redis', 'redis://127.0.0.1:6379', '--concurrency', '0'])).code, 2, '--concurrency 0');
  const bad = await run(['--redis', 'http://127.0.0.1:6379']);
  t.is(bad.code, 1);
  t.regex(bad.err, /E_ARG/);
});
