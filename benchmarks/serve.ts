/**
 * The HTTP service's cost and throughput on the shipped model.
 *  1. Overhead: one request through `latte-flow serve` (a child process; loopback; keep-alive) against
 *     the same call in-process, alternating runs, min and median. "call" is generateImage / answer
 *     alone; "call + encode" adds what the server must do to answer (PNG + base64), which is part of
 *     serving an image, not of HTTP.
 *  2. Throughput: 1 client (one request at a time), then 4 and 16 concurrent clients against the same
 *     server: images/s, tokens/s, p50/p95 latency per request.
 *
 *   npm run bench:serve -- [--threads 2] [--runs 20] [--requests 32]
 */
import { spawn } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LatteFlow, SHIPPED_MODEL } from '../lib/index.ts';
import { machineInfo, median, printMachine } from './common.ts';

const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const threads = arg('threads', 2);
const runs = arg('runs', 20);
const requests = arg('requests', 32);
const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const PROMPT = 'a red circle to the left of a blue square';
const QUESTION = 'what colour is the circle?';
const MAX_TOKENS = 16;

async function startServer(): Promise<{ url: string; stop(): Promise<void> }> {
  const child = spawn(process.execPath, ['--import=tsx', path.join(root, 'lib/cli.ts'), 'serve', '--port', '0', '--threads', String(threads), '--max-queue', '1024'], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  const url = await new Promise<string>((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (d) => {
      out += d;
      const m = /listening on (http:\/\/\S+)/.exec(out);
      if (m) resolve(m[1]);
    });
    child.once('exit', (code) => reject(new Error(`serve exited ${code}: ${out}`)));
  });
  for (let i = 0; (await fetch(`${url}/health`)).status !== 200; i++) {
    if (i > 600) throw new Error('the server never became ready');
    await new Promise((r) => setTimeout(r, 100));
  }
  return {
    url,
    stop: () =>
      new Promise<void>((r) => {
        child.once('exit', () => r());
        child.kill('SIGTERM');
      }),
  };
}

const post = async (url: string, body: unknown) => {
  const r = await fetch(url, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(body) });
  const j = (await r.json()) as { error?: { message: string }; usage?: { completion_tokens: number } };
  if (!r.ok) throw new Error(`${r.status}: ${j.error?.message}`);
  return j;
};

async function timed(f: () => Promise<unknown>): Promise<number> {
  const t0 = performance.now();
  await f();
  return performance.now() - t0;
}

const pct = (v: number[], p: number) => [...v].sort((a, b) => a - b)[Math.min(v.length - 1, Math.floor((p / 100) * v.length))];
const fmt = (ms: number) => ms.toFixed(2);

const machine = machineInfo();
printMachine(machine);
console.log(`threads ${threads} (server and in-process alike), ${runs} alternating runs, ${requests} requests per throughput row\n`);

const server = await startServer();
const lf = await LatteFlow.load(SHIPPED_MODEL, { threads });
try {
  const png = (await lf.generateImage({ prompt: PROMPT, seed: 1 }))[0].toPNG();
  const imageUrl = `data:image/png;base64,${Buffer.from(png).toString('base64')}`;
  const chatBody = { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: imageUrl } }, { type: 'text', text: QUESTION }] }], max_tokens: MAX_TOKENS };

  // ---- 1. overhead ----------------------------------------------------------------------------
  const cases: [string, () => Promise<unknown>, () => Promise<unknown>, () => Promise<unknown>][] = [
    [
      `image (default ${lf.generator.config.numSteps} steps)`,
      () => post(`${server.url}/v1/images/generations`, { prompt: PROMPT, seed: 3 }),
      () => lf.generateImage({ prompt: PROMPT, seed: 3 }),
      async () => (await lf.generateImage({ prompt: PROMPT, seed: 3 })).map((img) => Buffer.from(img.toPNG()).toString('base64')),
    ],
    [
      `answer (${MAX_TOKENS} tokens at most)`,
      () => post(`${server.url}/v1/chat/completions`, chatBody),
      () => lf.answer({ images: [png], question: QUESTION, maxTokens: MAX_TOKENS }),
      () => lf.answer({ images: [Buffer.from(imageUrl.slice(imageUrl.indexOf(',') + 1), 'base64')], question: QUESTION, maxTokens: MAX_TOKENS }),
    ],
  ];
  console.log('## HTTP overhead: a request through the server vs the same call in-process (ms)\n');
  console.log('| request | in-process call min / median | call + encode min / median | through HTTP min / median | overhead vs call (min / median) | vs call + encode |');
  console.log('|---|---|---|---|---|---|');
  for (const [name, http, call, callEncode] of cases) {
    for (let i = 0; i < 3; i++) {
      await http(); // warm both
      await call();
    }
    const t = { http: [] as number[], call: [] as number[], enc: [] as number[] };
    for (let i = 0; i < runs; i++) {
      t.http.push(await timed(http));
      t.call.push(await timed(call));
      t.enc.push(await timed(callEncode));
    }
    const over = (a: number[], b: number[], f: (v: number[]) => number) => `${(((f(a) - f(b)) / f(b)) * 100).toFixed(1)}%`;
    const min = (v: number[]) => Math.min(...v);
    console.log(
      `| ${name} | ${fmt(min(t.call))} / ${fmt(median(t.call))} | ${fmt(min(t.enc))} / ${fmt(median(t.enc))} | ${fmt(min(t.http))} / ${fmt(median(t.http))} | ` +
        `${over(t.http, t.call, min)} / ${over(t.http, t.call, median)} | ${over(t.http, t.enc, min)} / ${over(t.http, t.enc, median)} |`,
    );
  }

  // ---- 2. throughput --------------------------------------------------------------------------
  console.log(`\n## Throughput: ${requests} requests per row, N clients each sending one request at a time\n`);
  console.log('| requests | clients | wall s | images/s | tokens/s | p50 ms | p95 ms |');
  console.log('|---|---|---|---|---|---|---|');
  for (const kind of ['image', 'answer'] as const) {
    for (const clients of [1, 4, 16]) {
      const latencies: number[] = [];
      let tokens = 0;
      let next = 0;
      const t0 = performance.now();
      await Promise.all(
        Array.from({ length: clients }, async () => {
          while (next < requests) {
            const i = next++;
            latencies.push(
              await timed(async () => {
                if (kind === 'image') await post(`${server.url}/v1/images/generations`, { prompt: PROMPT, seed: i });
                else {
                  const r = await post(`${server.url}/v1/chat/completions`, { ...chatBody, temperature: 0.7, seed: i });
                  tokens += r.usage?.completion_tokens ?? 0; // after the await: `tokens += await ...` would lose concurrent adds
                }
              }),
            );
          }
        }),
      );
      const wall = (performance.now() - t0) / 1000;
      const rate = (n: number) => (n / wall).toFixed(1);
      console.log(`| ${kind} | ${clients} | ${wall.toFixed(2)} | ${kind === 'image' ? rate(requests) : ''} | ${kind === 'answer' ? rate(tokens) : ''} | ${fmt(pct(latencies, 50))} | ${fmt(pct(latencies, 95))} |`);
    }
  }
} finally {
  await lf.dispose();
  await server.stop();
}
