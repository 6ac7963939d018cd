// `latte-flow serve` as a child process: it logs one line when listening, serves the shipped model
// (the README's command), and on SIGTERM stops accepting, finishes the request in flight (or aborts it
// after --grace-ms) and exits 0. Requests are never logged. Bad usage exits 2, a model that does not
// load exits 1 with its code.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { isOpenAIError, json, post, readSse } from './helpers/serve.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const SECRET_PROMPT = 'a purple circle above a yellow triangle, do not log me';

interface Served {
  child: ChildProcess;
  url: string;
  out: () => string;
  /** resolves with the exit code (or the signal's name) */
  exited: Promise<number | string>;
}

/** Starts `latte-flow serve --port 0 ...` and waits for its listening line. */
function serveCli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Served> {
  const child = spawn(process.execPath, ['--import=tsx', path.join(root, 'lib/cli.ts'), 'serve', '--port', '0', '--threads', '1', ...args], {
    cwd: root,
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (out += d));
  const exited = new Promise<number | string>((r) => child.once('exit', (code, signal) => r(code ?? signal ?? -1)));
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no listening line within 120 s:\n${out}`)), 120_000);
    const onData = () => {
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (!m) return;
      clearTimeout(timer);
      child.stdout!.off('data', onData);
      resolve({ child, url: m[1], out: () => out, exited });
    };
    child.stdout!.on('data', onData);
    void exited.then((code) => reject(new Error(`serve exited (${code}) before listening:\n${out}`)));
  });
}

async function ready(url: string): Promise<void> {
  for (let i = 0; i < 1200; i++) {
    const r = await fetch(`${url}/health`).catch(() => undefined);
    if (r?.status === 200) return;
    await new Promise((res) => setTimeout(res, 100));
  }
  throw new Error('the server was not ready within 120 s');
}

test('serve: one line when listening, the shipped model served; SIGTERM finishes the request in flight and exits 0', async (t) => {
  const s = await serveCli([]);
  t.teardown(() => s.child.kill('SIGKILL'));
  t.regex(s.out(), /^latte-flow serve: listening on http:\/\/127\.0\.0\.1:\d+ \(model latte-flow-shapes/);
  await ready(s.url);
  t.like(await json(await fetch(`${s.url}/v1/models`)), { data: [{ id: 'latte-flow-shapes' }] });
  const r = await post(`${s.url}/v1/images/generations`, { prompt: SECRET_PROMPT, steps: 1000, stream: true });
  t.is(r.status, 200);
  const messages: string[] = [];
  await readSse(r, (m) => {
    if (messages.length === 0) s.child.kill('SIGTERM');
    messages.push(m.data);
  });
  t.is(messages.at(-1), '[DONE]');
  t.is(messages.filter((d) => d.includes('"type":"progress"')).length, 1000, 'drained: every step ran');
  t.is(messages.filter((d) => d.includes('image_generation.completed')).length, 1);
  t.is(await s.exited, 0);
  await t.throwsAsync(fetch(`${s.url}/health`), undefined, 'nothing listens any more');
  t.regex(s.out(), /SIGTERM: stopping/);
  t.false(s.out().includes('purple'), `the prompt was logged:\n${s.out()}`);
  t.is(s.out().trim().split('\n').filter((l) => !l.startsWith('latte-flow serve: ')).length, 0, s.out());
});

test('serve: after --grace-ms, SIGTERM aborts the request in flight (an SSE error event) and still exits 0', async (t) => {
  const s = await serveCli(['--grace-ms', '200']);
  t.teardown(() => s.child.kill('SIGKILL'));
  await ready(s.url);
  const r = await post(`${s.url}/v1/images/generations`, { prompt: SECRET_PROMPT, steps: 10_000, stream: true });
  let signalled = false;
  const messages: string[] = [];
  await readSse(r, (m) => {
    if (!signalled) s.child.kill('SIGTERM');
    signalled = true;
    messages.push(m.data);
  });
  const last = JSON.parse(messages.at(-1)!);
  t.true(isOpenAIError(last), messages.at(-1));
  t.is(last.error.code, 'server_draining');
  t.true(messages.filter((d) => d.includes('"type":"progress"')).length < 10_000);
  t.is(await s.exited, 0);
});

test('serve --api-key (or LATTE_FLOW_API_KEY), --max-queue and --max-batch reach the server', async (t) => {
  const s = await serveCli(['--max-queue', '0', '--max-batch', '1'], { LATTE_FLOW_API_KEY: 'k3y' });
  t.teardown(() => s.child.kill('SIGKILL'));
  await ready(s.url);
  t.is((await post(`${s.url}/v1/images/generations`, { prompt: 'x', steps: 2 })).status, 401);
  const auth = { headers: { authorization: 'Bearer k3y' } };
  // one running (a long stream), none may wait: the next is 429
  const ac = new AbortController();
  const long = await post(`${s.url}/v1/images/generations`, { prompt: 'x', steps: 10_000, stream: true }, { ...auth, signal: ac.signal });
  // keep reading: a reader that stopped would disconnect, and the server would free the slot
  let running!: () => void;
  const progressing = new Promise<void>((r) => (running = r));
  const reading = readSse(long, (m) => void (m.event === 'progress' && running())).catch(() => {});
  await progressing;
  const busy = await post(`${s.url}/v1/images/generations`, { prompt: 'x', steps: 2 }, auth);
  t.is(busy.status, 429);
  t.like(await json(busy), { error: { code: 'E_BUSY' } });
  ac.abort();
  await reading;
  s.child.kill('SIGINT');
  t.is(await s.exited, 0);
});

test('serve: a model that does not load exits 1 with its code; bad options exit 2', async (t) => {
  // it listens first (/health says 503 while the model loads), then the load fails: exit 1
  const bad = await serveCli(['--model', path.join(root, 'no-such-model')]);
  t.is(await bad.exited, 1);
  t.regex(bad.out(), /latte-flow: E_BAD_CONFIG: .*no such model directory/);
  for (const args of [['--port', '-1'], ['--port', 'x'], ['--max-batch', '0'], ['--grace-ms', '-5'], ['--backend', 'tpu']]) {
    const code = await new Promise<number | null>((resolve) => {
      const c = spawn(process.execPath, ['--import=tsx', path.join(root, 'lib/cli.ts'), 'serve', ...args], { cwd: root, stdio: 'ignore' });
      c.once('exit', resolve);
    });
    t.is(code, 2, args.join(' '));
  }
});

test('serve --help lists its options', async (t) => {
  const out = await new Promise<string>((resolve) => {
    const c = spawn(process.execPath, ['--import=tsx', path.join(root, 'lib/cli.ts'), 'serve', '--help'], { cwd: root });
    let s = '';
    c.stdout.on('data', (d) => (s += d));
    c.once('exit', () => resolve(s));
  });
  for (const o of ['--model', '--host', '--port', '--threads', '--backend', '--max-queue', '--max-batch', '--api-key', '--body-limit', '--grace-ms']) t.true(out.includes(o), o);
});
