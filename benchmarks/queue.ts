// Scale-out measurements (npm run bench:queue): throughput of `serve --redis` with 1 and 2 worker
// processes (1 thread each) against one local server with 2 threads, the queue's overhead per job
// (request -> first progress event, and end-to-end, sequential, vs the local server), and what one job
// costs Redis (commands, bytes in and out) — the numbers the 8 / 100 GPU plan in RESULTS.md uses.
import { spawn, type ChildProcess } from 'node:child_process';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Redis } from 'ioredis';
import { createQueueClient, createServer, SHIPPED_MODEL } from '../lib/index.ts';
import { TestRedis } from '../test/helpers/redis.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const JOBS = Number(process.env.JOBS ?? 30);
const STEPS = Number(process.env.STEPS ?? 8);
const CONC = Number(process.env.CONCURRENCY ?? 4);
const body = (seed: number, extra = {}) => JSON.stringify({ prompt: 'a red circle to the left of a blue square', seed, steps: STEPS, ...extra });
const post = (url: string, b: string) => fetch(`${url}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b });

async function throughput(url: string): Promise<number> {
  await (await post(url, body(999))).json(); // warm
  const t0 = performance.now();
  await Promise.all(Array.from({ length: JOBS }, async (_, i) => (await post(url, body(i))).json()));
  return (JOBS / (performance.now() - t0)) * 1000;
}

async function latency(url: string): Promise<{ firstProgress: number; total: number }> {
  const first: number[] = [];
  const total: number[] = [];
  for (let i = 0; i < 10; i++) {
    const t0 = performance.now();
    const r = await post(url, body(i, { stream: true, preview_every: 0 }));
    const reader = r.body!.getReader();
    let seen = false;
    for (;;) {
      const { done } = await reader.read();
      if (!seen) first.push(performance.now() - t0);
      seen = true;
      if (done) break;
    }
    total.push(performance.now() - t0);
  }
  const med = (a: number[]) => a.sort((x, y) => x - y)[a.length >> 1];
  return { firstProgress: med(first), total: med(total) };
}

function worker(redisUrl: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, ['--import=tsx', path.join(root, 'lib/cli.ts'), 'worker', '--redis', redisUrl, '--threads', '1', '--concurrency', String(CONC)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve) => child.stdout!.on('data', (d) => String(d).includes('taking jobs') && resolve(child)));
}

const stats = async (r: Redis) => {
  const info = await r.info();
  const n = (k: string) => Number(new RegExp(`^${k}:(\\d+)`, 'm').exec(info)![1]);
  return { cmds: n('total_commands_processed'), inBytes: n('total_net_input_bytes'), outBytes: n('total_net_output_bytes') };
};

const out: string[] = [];
const say = (s: string) => {
  console.log(s);
  out.push(s);
};
say(`# ${new Date().toISOString()} ${os.cpus().length} x ${os.cpus()[0].model}, Node ${process.version}; ${JOBS} jobs of ${STEPS} steps, 64x64, worker concurrency ${CONC}`);

const local = await createServer({ model: SHIPPED_MODEL, load: { threads: 2 }, log: () => {} });
const localUrl = await local.listen({ port: 0, host: '127.0.0.1' });
await local.latte.loaded;
say(`local server, 2 threads: ${(await throughput(localUrl)).toFixed(2)} images/s`);
const localLat = await latency(localUrl);
await local.close();

const redis = await TestRedis.start();
const client = await createQueueClient({ redis: redis.url });
const api = await createServer({ model: client.ready(), modelId: 'latte-flow-shapes', log: () => {} });
const url = await api.listen({ port: 0, host: '127.0.0.1' });
const children = [await worker(redis.url)];
await api.latte.loaded;
say(`queue, 1 worker x 1 thread: ${(await throughput(url)).toFixed(2)} images/s`);
const queueLat = await latency(url);
children.push(await worker(redis.url));
say(`queue, 2 workers x 1 thread: ${(await throughput(url)).toFixed(2)} images/s`);
say(`sequential, one at a time, median of 10 (ms): local first progress ${localLat.firstProgress.toFixed(1)}, total ${localLat.total.toFixed(1)}; queue (1 worker, 1 thread) first progress ${queueLat.firstProgress.toFixed(1)}, total ${queueLat.total.toFixed(1)}`);

const r = new Redis(redis.url);
for (const [label, extra] of [
  ['unstreamed image', {}],
  ['streamed image, no previews', { stream: true, preview_every: 0 }],
  ['streamed image, preview every 2 steps', { stream: true, preview_every: 2 }],
] as const) {
  const a = await stats(r);
  await Promise.all(Array.from({ length: 20 }, async (_, i) => (await post(url, body(i, extra))).text()));
  const b = await stats(r);
  say(`Redis per job, ${label}: ${((b.cmds - a.cmds) / 20).toFixed(1)} commands, ${((b.inBytes - a.inBytes) / 20 / 1024).toFixed(1)} KiB in, ${((b.outBytes - a.outBytes) / 20 / 1024).toFixed(1)} KiB out`);
}
r.disconnect();
for (const c of children) c.kill('SIGTERM');
await api.close();
await client.close();
await redis.stop();
