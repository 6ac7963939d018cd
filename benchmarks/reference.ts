/**
 * The PyTorch reference's understanding-path timings: spawns Debian's /usr/bin/python3 on
 * benchmarks/reference-vlm.py (tools/reference/latte_ref on the tiny Qwen2-VL at
 * test/fixtures/tiny-model/vlm; one image + one question, greedy, exactly `tokens` new tokens) and parses
 * its JSON lines, one per thread count (1 and 2).
 *
 * Run alone: node --import=tsx benchmarks/reference.ts [--tokens 16] [--reps 7]
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { runAsScript, type Row } from './common.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
export const REFERENCE_PYTHON = '/usr/bin/python3';
const SCRIPT = path.join(root, 'benchmarks', 'reference-vlm.py');

export interface ReferenceVlmResult {
  threads: number;
  answerMs: number;
  prefillMs?: number;
  decodeMsPerToken?: number;
  tokens: number;
}

interface RawLine {
  bench?: string;
  threads?: number;
  answer_ms?: number;
  prefill_ms?: number;
  decode_ms_per_token?: number;
  tokens?: number;
}

export async function referenceVlm(opts: { tokens: number; reps: number }): Promise<ReferenceVlmResult[]> {
  if (!existsSync(REFERENCE_PYTHON))
    throw new Error(`referenceVlm: ${REFERENCE_PYTHON} not found (the reference needs Debian's python3 with python3-torch)`);
  const args = [SCRIPT, '--tokens', String(opts.tokens), '--reps', String(opts.reps), '--threads', '1,2'];
  const { code, stdout, stderr } = await new Promise<{ code: number; stdout: string; stderr: string }>((resolve, reject) => {
    const child = spawn(REFERENCE_PYTHON, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.setEncoding('utf8').on('data', (s: string) => (out += s));
    child.stderr.setEncoding('utf8').on('data', (s: string) => (err += s));
    child.on('error', (e) => reject(new Error(`referenceVlm: cannot start ${REFERENCE_PYTHON}: ${e.message}`)));
    child.on('close', (c) => resolve({ code: c ?? 1, stdout: out, stderr: err }));
  });
  if (code === 3 || /No module named '?torch/.test(stderr))
    throw new Error(`referenceVlm: PyTorch is missing for ${REFERENCE_PYTHON} (install Debian's python3-torch):\n${stderr.trim()}`);
  if (code !== 0) throw new Error(`referenceVlm: ${REFERENCE_PYTHON} ${args.join(' ')} exited with ${code}:\n${stderr.trim()}`);
  const results: ReferenceVlmResult[] = [];
  for (const line of stdout.split('\n')) {
    if (!line.startsWith('{')) continue;
    const r = JSON.parse(line) as RawLine;
    if (r.bench !== 'reference-vlm' || typeof r.threads !== 'number' || typeof r.answer_ms !== 'number' || typeof r.tokens !== 'number')
      continue;
    results.push({
      threads: r.threads,
      answerMs: r.answer_ms,
      tokens: r.tokens,
      ...(typeof r.prefill_ms === 'number' ? { prefillMs: r.prefill_ms } : {}),
      ...(typeof r.decode_ms_per_token === 'number' ? { decodeMsPerToken: r.decode_ms_per_token } : {}),
    });
  }
  if (results.length === 0) throw new Error(`referenceVlm: no result lines from ${SCRIPT}:\n${stdout}${stderr}`);
  return results;
}

await runAsScript(import.meta.url, async (o): Promise<Row[]> => {
  const args = process.argv.slice(2);
  const num = (name: string, dflt: number): number => {
    const i = args.indexOf(name);
    return i >= 0 ? Number(args[i + 1]) : dflt;
  };
  const res = await referenceVlm({ tokens: num('--tokens', 16), reps: num('--reps', o.quick ? 5 : 7) });
  return res.map((r) => ({
    bench: 'reference-vlm',
    case: `tiny Qwen2-VL, 1 image, ${r.tokens} tokens, ${r.threads}t (PyTorch)`,
    figure:
      `${r.answerMs.toFixed(1)} ms/answer` +
      (r.prefillMs !== undefined ? `; prefill ${r.prefillMs.toFixed(1)} ms` : '') +
      (r.decodeMsPerToken !== undefined ? `; decode ${r.decodeMsPerToken.toFixed(2)} ms/token` : ''),
  }));
});
