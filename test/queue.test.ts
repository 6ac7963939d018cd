// Scale-out over BullMQ on Redis (lib/queue): `latte-flow worker` processes (1 thread each) behind an
// API server whose model is the queue (createServer over createQueueClient, as `serve --redis`), on a
// redis-server of the test's own (test/helpers/redis.ts). A worker SIGKILLed mid-run loses no job;
// Redis restarted mid-run fails requests cleanly (503) or completes them, and the next ones succeed;
// bad input is the local server's 400 and is not retried; SSE through the queue brings progress and
// tokens in order, the same as the local server's. Results are byte-identical to the library's run
// alone: the workers take one job at a time (--concurrency 1), since a batched run equals a solo one
// only within one grey level (the scheduler's guarantee), and which jobs share a batch is up to timing.
// Without redis-server this is skipped, unless LATTE_REQUIRE_REDIS=1 (CI), where that is a failure.
import test from 'ava';
import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Queue, QueueEvents } from 'bullmq';
import { createQueueClient, createServer, LatteFlow, SHIPPED_MODEL, type LatteServer, type QueueClient } from '../lib/index.ts';
import { json, parseSse, post } from './helpers/serve.ts';
import { REDIS_SERVER, redisRequired, TestRedis } from './helpers/redis.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PROMPT = 'a red circle to the left of a blue square';
const QUESTION = 'what colour is the circle?';
const STEPS = 8;
const PREFIX = 'latte-flow'; // the default, shared by workers and the client

let redis: TestRedis;
let lf: LatteFlow; // the local run the queue's results must equal
let local: LatteServer; // the local server, for error bodies and SSE
let localUrl: string;
let client: QueueClient;
let api: LatteServer;
let url: string;
const workers: { child: ChildProcess; log: string[] }[] = [];
const expected = new Map<number, string>(); // seed -> base64 PNG from the local run
let pngB64: string;

function startWorker(): Promise<{ child: ChildProcess; log: string[] }> {
  const child = spawn(process.execPath, ['--import=tsx', path.join(root, 'lib/cli.ts'), 'worker', '--redis', redis.url, '--threads', '1', '--concurrency', '1'], {
    cwd: root,
    env: { ...process.env, LATTE_QUEUE_LOCK_MS: '2000', LATTE_QUEUE_STALLED_MS: '1000' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const w = { child, log: [] as string[] };
  workers.push(w);
  child.stderr!.on('data', (d) => w.log.push(String(d)));
  return new Promise((resolve, reject) => {
    child.stdout!.on('data', (d) => {
      w.log.push(String(d));
      if (String(d).includes('taking jobs')) resolve(w);
    });
    child.once('exit', (code) => reject(new Error(`worker exited (${code}): ${w.log.join('')}`)));
  });
}

const imageBody = (seed: number, extra: Record<string, unknown> = {}) => ({ prompt: PROMPT, seed, steps: STEPS, ...extra });
const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const chatBody = (extra: Record<string, unknown> = {}) => ({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${pngB64}` } }, { type: 'text', text: QUESTION }] }], max_tokens: 16, ...extra });

async function expectedImage(seed: number): Promise<string> {
  if (!expected.has(seed)) expected.set(seed, b64((await lf.generateImage({ prompt: PROMPT, seed, steps: STEPS }))[0].toPNG()));
  return expected.get(seed)!;
}

if (!REDIS_SERVER && !redisRequired) {
  test.skip('scale-out over BullMQ on Redis (skipped: redis-server is not installed; apt-get install redis-server)', () => {});
} else {
  test.before(async () => {
    if (!REDIS_SERVER) throw new Error('LATTE_REQUIRE_REDIS=1 but redis-server is not installed (apt-get install redis-server)');
    const t0 = Date.now();
    redis = await TestRedis.start();
    const started = Promise.all([startWorker(), startWorker(), startWorker()]);
    lf = await LatteFlow.load(SHIPPED_MODEL, { threads: 1 });
    local = await createServer({ model: lf, modelId: 'latte-flow-shapes', log: () => {} });
    localUrl = await local.listen({ port: 0, host: '127.0.0.1' });
    pngB64 = await expectedImage(1000);
    for (let seed = 0; seed < 30; seed++) await expectedImage(seed);
    await started;
    client = await createQueueClient({ redis: redis.url });
    api = await createServer({ model: client.ready(), modelId: 'latte-flow-shapes', log: () => {} });
    url = await api.listen({ port: 0, host: '127.0.0.1' });
    await api.latte.loaded;
    console.log(`# queue tests: set up in ${Date.now() - t0} ms (redis, 3 workers, the local run's 31 images)`);
  });

  test.after.always(async () => {
    await api?.close().catch(() => {});
    await client?.close().catch(() => {});
    for (const w of workers) if (w.child.exitCode === null && w.child.signalCode === null) w.child.kill('SIGKILL');
    await local?.close().catch(() => {});
    await lf?.dispose();
    await redis?.stop();
  });

  test.serial('30 jobs on 3 workers, one SIGKILLed mid-run: all complete, each once, byte-identical to a local run', async (t) => {
    const events = new QueueEvents('image', { connection: { host: '127.0.0.1', port: redis.port }, prefix: PREFIX });
    t.teardown(() => events.close());
    await events.waitUntilReady();
    const completed: string[] = [];
    let stalled = 0;
    events.on('completed', ({ jobId }) => completed.push(jobId));
    events.on('stalled', () => stalled++);
    let answered = 0;
    let killed = false;
    const victim = workers[0];
    const results = await Promise.all(
      Array.from({ length: 30 }, async (_, seed) => {
        const r = await post(`${url}/v1/images/generations`, imageBody(seed));
        const body = await json(r);
        if (++answered >= 3 && !killed) {
          killed = true;
          victim.child.kill('SIGKILL');
        }
        return { seed, status: r.status, body };
      }),
    );
    t.true(killed);
    for (const r of results) {
      t.is(r.status, 200, `seed ${r.seed}: ${JSON.stringify(r.body).slice(0, 200)}`);
      t.is(r.body.data?.[0]?.b64_json, expected.get(r.seed), `seed ${r.seed}: not the local run's bytes`);
    }
    await new Promise((r) => setTimeout(r, 200)); // the last completed events
    t.is(completed.length, 30, 'one completion per job');
    t.is(new Set(completed).size, 30, 'no job completed twice');
    t.true(stalled >= 1, 'the killed worker held a job that was handed on');
    t.log(`${stalled} job(s) taken over from the killed worker`);
  });

  test.serial('bad input through the queue: the local server\'s 400, not retried', async (t) => {
    await startWorker(); // back to three
    const queue = new Queue('image', { connection: { host: '127.0.0.1', port: redis.port }, prefix: PREFIX });
    t.teardown(() => queue.close());
    const bad = imageBody(1, { guidance: [1, 2] }); // the worker's library refuses it (E_ARG)
    const [viaQueue, viaLocal] = await Promise.all([post(`${url}/v1/images/generations`, bad), post(`${localUrl}/v1/images/generations`, bad)]);
    t.is(viaQueue.status, 400);
    t.deepEqual(await json(viaQueue), await json(viaLocal));
    const failed = await queue.getJobs(['failed', 'delayed', 'wait']);
    t.is(failed.length, 1);
    t.is(failed[0].attemptsMade, 1, 'bad input is not retried');
    // and a schema refusal never reaches the queue
    const [s1, s2] = await Promise.all([post(`${url}/v1/images/generations`, { prompt: PROMPT, steps: 0 }), post(`${localUrl}/v1/images/generations`, { prompt: PROMPT, steps: 0 })]);
    t.is(s1.status, 400);
    t.deepEqual(await json(s1), await json(s2));
    // a broken image is the worker's E_BAD_IMAGE: the same 400
    const broken = chatBody({ messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'data:image/png;base64,AAAA' } }, { type: 'text', text: QUESTION }] }] });
    const [c1, c2] = await Promise.all([post(`${url}/v1/chat/completions`, broken), post(`${localUrl}/v1/chat/completions`, broken)]);
    t.is(c1.status, 400);
    t.deepEqual(await json(c1), await json(c2));
  });

  test.serial('SSE through the queue: progress and previews, then tokens, in order and as the local server sends them', async (t) => {
    const body = imageBody(7, { stream: true, preview_every: 2 });
    const [q, l] = await Promise.all([post(`${url}/v1/images/generations`, body), post(`${localUrl}/v1/images/generations`, body)]);
    t.is(q.status, 200);
    const qm = parseSse(await q.text());
    const lm = parseSse(await l.text());
    t.deepEqual(qm, lm, 'the same events, in the same order, with the same bytes');
    t.deepEqual(qm.filter((m) => m.event === 'progress').map((m) => JSON.parse(m.data).step), Array.from({ length: STEPS }, (_, i) => i + 1));
    t.true(qm.some((m) => m.event === 'image_generation.partial_image'));
    t.is(qm.at(-1)!.data, '[DONE]');

    const chat = chatBody({ stream: true });
    const [qc, lc] = await Promise.all([post(`${url}/v1/chat/completions`, chat), post(`${localUrl}/v1/chat/completions`, chat)]);
    const deltas = (text: string) => parseSse(text).flatMap((m) => (m.data === '[DONE]' ? [] : [JSON.parse(m.data).choices[0]?.delta?.content ?? '']));
    const [qd, ld] = [deltas(await qc.text()), deltas(await lc.text())];
    t.deepEqual(qd, ld);
    const whole = await json(await post(`${url}/v1/chat/completions`, chatBody()));
    t.is(qd.join(''), whole.choices[0].message.content);
    t.true(whole.choices[0].message.content.length > 0);
  });

  test.serial('a client that disconnects cancels its job', async (t) => {
    const queue = new Queue('image', { connection: { host: '127.0.0.1', port: redis.port }, prefix: PREFIX });
    t.teardown(() => queue.close());
    const ac = new AbortController();
    const r = await post(`${url}/v1/images/generations`, imageBody(11, { steps: 200, stream: true, preview_every: 0 }), { signal: ac.signal });
    const reader = r.body!.getReader();
    await reader.read(); // the first progress event: the job runs on a worker
    ac.abort();
    let state = '';
    for (let i = 0; i < 100 && state !== 'failed'; i++) {
      await new Promise((res) => setTimeout(res, 100));
      const jobs = await queue.getJobs(['active', 'failed']);
      const job = jobs.find((j) => j.data.seed === 11);
      state = job ? await job.getState() : 'removed';
      if (state === 'failed') t.regex(job!.failedReason, /E_ABORTED/);
    }
    t.is(state, 'failed', 'the running job was cancelled');
  });

  test.serial('Redis restarted mid-run: requests in flight fail cleanly (503) or complete; new ones succeed', async (t) => {
    const inflight = Promise.all(
      Array.from({ length: 12 }, async (_, i) => {
        const r = await post(`${url}/v1/images/generations`, imageBody(20 + i));
        return { seed: 20 + i, status: r.status, body: await json(r) };
      }),
    );
    await new Promise((r) => setTimeout(r, 300)); // 12 jobs on 3 workers, one at a time: most are still waiting or running
    await redis.restart(300);
    const results = await Promise.race([inflight, new Promise<never>((_, reject) => setTimeout(() => reject(new Error('requests hung after Redis restarted')), 30_000))]);
    for (const r of results) {
      if (r.status === 200) t.is(r.body.data[0].b64_json, await expectedImage(r.seed));
      else {
        t.is(r.status, 503, JSON.stringify(r.body));
        t.is(r.body.error.code, 'queue_unavailable');
      }
    }
    t.log(`in flight: ${results.filter((r) => r.status === 200).length} completed, ${results.filter((r) => r.status === 503).length} failed with 503`);
    // new requests: 503 at most until the connections are back, then served
    let last: { status: number; body: { data?: { b64_json: string }[] } } | undefined;
    for (let i = 0; i < 60; i++) {
      const r = await post(`${url}/v1/images/generations`, imageBody(3));
      last = { status: r.status, body: await json(r) };
      if (r.status === 200) break;
      t.is(r.status, 503);
      await new Promise((res) => setTimeout(res, 250));
    }
    t.is(last?.status, 200);
    t.is(last?.body.data?.[0].b64_json, expected.get(3));
  });
}
