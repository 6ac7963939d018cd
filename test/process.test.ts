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
