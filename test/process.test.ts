// The engine inside a host process: exit without dispose, and use from worker threads.
import test from 'ava';
import { execFile } from 'node:child_process';
import { fileURLToPath } from 'node:url';

function runScript(name: string): Promise<{ code: number | null; out: string }> {
  const script = fileURLToPath(new URL(`./scripts/${name}`, import.meta.url));
  return new Promise((resolve) => {
    const args = name.endsWith('.mts') ? ['--import=tsx', script] : [script];
    execFile(process.execPath, args, { timeout: 60_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? ((err as { code?: number }).code ?? null) : 0, out: stdout + stderr });
    });
  });
}

test('a process that never disposes its engine exits cleanly, with work still queued', async (t) => {
  const r = await runScript('undisposed.mts');
  t.is(r.code, 0, r.out);
  t.regex(r.out, /^ok 3$/m);
});

test('engines in worker threads and the main thread at once', async (t) => {
  const r = await runScript('worker.mjs'); // runs on dist/ (npm run build)
  t.is(r.code, 0, r.out);
  t.regex(r.out, /^ok 4,6,8$/m);
});

test('worker threads terminated mid generateImage / answer never take the host process down', async (t) => {
  // Before NODE_API_SWALLOW_UNTHROWABLE_EXCEPTIONS this aborted the process in about 4 runs of 10:
  // N-API cannot throw into a terminating worker, and node-addon-api made that a C++ exception.
  const script = fileURLToPath(new URL('./scripts/terminate-worker.mjs', import.meta.url));
  const model = fileURLToPath(new URL('../models/shapes', import.meta.url));
  const r = await new Promise<{ code: number | null; signal: string | null; out: string }>((resolve) => {
    execFile(process.execPath, [script, model, '30'], { timeout: 120_000 }, (err, stdout, stderr) => {
      const e = err as { code?: number; signal?: string } | null;
      resolve({ code: e ? (e.code ?? null) : 0, signal: e?.signal ?? null, out: stdout + stderr });
    });
  });
  t.is(r.signal, null, r.out);
  t.is(r.code, 0, r.out);
  t.regex(r.out, /^ok 30$/m);
});
