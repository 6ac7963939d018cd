/**
 * The CPU attention op (issue 21) vs PyTorch's scaled_dot_product_attention (its CPU flash kernel),
 * and vs an older build of ours, in one run: Qwen2-VL-2B's vision block (1024 tokens x 16 heads x
 * d 80), prefill and generator rows, the shipped model's shapes, and a decode step. Per thread count
 * the three are sampled in turn, case by case, for several rounds (the order rotated each round), so
 * a noisy neighbour slows all of them alike; a sample is `inner` back-to-back calls (~50 ms).
 * Figures: min and median ms per call; ratios min/min and median/median (> 1: ours is faster).
 *
 *   node --import=tsx benchmarks/attention.ts [--threads 1,2] [--quick] [--rounds 7]
 *        [--old /work/main] [--python /tmp/hfvenv/bin/python]
 *
 * --old DIR: a checkout holding the old kernel, built (its lib/ and build/Release/latte_flow.node are
 * loaded into this process beside ours). --python: a python with torch >= 2.5 (default: the
 * transformers venv at /tmp/hfvenv, else python3); without one the torch column is left out.
 */
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { Engine, type Tensor } from '../lib/index.ts';
import type { AttentionCase } from '../test/helpers/naive-ops.ts';
import { median, nowMs, randn, runAsScript, type Row } from './common.ts';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const args = process.argv.slice(2);
const opt = (name: string): string | undefined => (args.includes(name) ? args[args.indexOf(name) + 1] : undefined);

type Case = AttentionCase & { key: string; mask: 'none' | 'causal' };

const CASES: Case[] = [
  { key: 'vision 2B (1024 tok, 16 h, d 80)', B: 1, Sq: 1024, Skv: 1024, H: 16, G: 16, d: 80, mask: 'none' },
  { key: 'prefill 2B (256 tok, 12/2 h, d 128, causal)', B: 1, Sq: 256, Skv: 256, H: 12, G: 2, d: 128, mask: 'causal' },
  { key: 'generator 2B (2 x 64 img + 32 prompt, TCRA)', B: 2, Sq: 64, Skv: 96, H: 12, G: 2, d: 128, mask: 'none', imageCol0: 32, residual: true },
  { key: 'decode 2B (1 x 512 keys)', B: 1, Sq: 1, Skv: 512, H: 12, G: 2, d: 128, mask: 'none' },
  { key: 'vision shipped (256 tok, 4 h, d 16)', B: 1, Sq: 256, Skv: 256, H: 4, G: 4, d: 16, mask: 'none' },
  { key: 'prefill shipped (96 tok, 4/2 h, d 32, causal)', B: 1, Sq: 96, Skv: 96, H: 4, G: 2, d: 32, mask: 'causal' },
  { key: 'generator shipped (2 x 16 img + 16 prompt, TCRA)', B: 2, Sq: 16, Skv: 32, H: 4, G: 2, d: 32, mask: 'none', imageCol0: 16, residual: true },
];

type EngineLike = Pick<Engine, 'tensor' | 'attention' | 'fence' | 'dispose'>;

/** A case's operands on one engine and a sampler: ms per call over `inner` calls. */
function ourCall(e: EngineLike, c: Case): (inner: number) => Promise<number> {
  const { B, Sq, Skv, H, G, d } = c;
  const q = e.tensor(randn(B * Sq * H * d, 1), [B, Sq, H, d]);
  const k = e.tensor(randn(B * Skv * G * d, 2), [B, Skv, G, d]);
  const v = e.tensor(randn(B * Skv * G * d, 3), [B, Skv, G, d]);
  const Ni = c.imageCol0 === undefined ? 0 : Skv - c.imageCol0;
  const residual = c.residual ? e.tensor(randn(B * H * Sq * Ni, 4), [B, H, Sq, Ni]) : undefined;
  const gate = c.residual ? e.tensor(randn(B * H, 5), [B, H]) : undefined;
  const opts = { mask: c.mask, imageCol0: c.imageCol0, returnLogits: c.imageCol0 !== undefined, residual, gate };
  return async (inner) => {
    const made: Tensor[] = [];
    const t0 = nowMs();
    for (let i = 0; i < inner; i++) {
      const { out, logits } = e.attention(q, k, v, opts);
      made.push(out, ...(logits ? [logits] : []));
    }
    await e.fence();
    const ms = (nowMs() - t0) / inner;
    for (const t of made) t.dispose();
    return ms;
  };
}

/** benchmarks/attention-torch.py as a child that times on request. */
class TorchPeer {
  #child: ChildProcessWithoutNullStreams;
  #lines: AsyncIterator<string>;
  version = '';
  constructor(python: string) {
    this.#child = spawn(python, [path.join(root, 'benchmarks', 'attention-torch.py')], { cwd: root });
    this.#child.stderr.setEncoding('utf8').on('data', (s: string) => process.stderr.write(s));
    this.#lines = createInterface({ input: this.#child.stdout })[Symbol.asyncIterator]();
  }
  async #next(): Promise<Record<string, unknown>> {
    const r = await this.#lines.next();
    if (r.done) throw new Error('attention-torch.py exited');
    return JSON.parse(r.value) as Record<string, unknown>;
  }
  async start(): Promise<void> {
    const hello = await this.#next();
    this.version = `torch ${hello.torch} (${hello.capability})`;
  }
  async sample(c: Case, threads: number, inner: number): Promise<number> {
    const { key: _, ...shape } = c;
    this.#child.stdin.write(JSON.stringify({ case: shape, threads, inner }) + '\n');
    const r = await this.#next();
    if (typeof r.ms !== 'number') throw new Error(`attention-torch.py: ${String(r.error)}`);
    return r.ms;
  }
  close(): void {
    this.#child.stdin.end();
  }
}

async function loadOld(dir: string | undefined): Promise<(new (o: { backend: 'cpu'; threads: number }) => EngineLike) | undefined> {
  if (!dir) return undefined;
  const lib = (await import(pathToFileURL(path.join(path.resolve(dir), 'lib', 'index.ts')).href)) as { Engine: new (o: { backend: 'cpu'; threads: number }) => EngineLike };
  return lib.Engine;
}

const fmt = (x: number): string => (x >= 10 ? x.toFixed(1) : x.toFixed(2));

export async function runAttentionBench(threads: number[], quick: boolean): Promise<Row[]> {
  const rounds = Number(opt('--rounds') ?? (quick ? 3 : 7));
  const python = opt('--python') ?? (existsSync('/tmp/hfvenv/bin/python') ? '/tmp/hfvenv/bin/python' : 'python3');
  const OldEngine = await loadOld(opt('--old'));
  let torch: TorchPeer | undefined = new TorchPeer(python);
  try {
    await torch.start();
    console.log(`peer: ${torch.version} (${python}); old: ${opt('--old') ?? 'none'}; rounds ${rounds}`);
  } catch (e) {
    console.log(`no PyTorch peer (${python}): ${(e as Error).message}`);
    torch = undefined;
  }
  const rows: Row[] = [];
  for (const t of threads) {
    const ours = new Engine({ backend: 'cpu', threads: t });
    const old = OldEngine ? new OldEngine({ backend: 'cpu', threads: t }) : undefined;
    for (const c of CASES) {
      const impls: [string, (inner: number) => Promise<number>][] = [['ours', ourCall(ours, c)]];
      if (old) impls.push(['old', ourCall(old, c)]);
      if (torch) impls.push(['sdpa', (inner) => torch.sample(c, t, inner)]);
      // warm-up (first touch of scratch, torch's kernels), then ~50 ms (quick: 20) per sample
      for (const [, f] of impls) await f(1);
      const inner = Math.max(1, Math.min(500, Math.round((quick ? 20 : 50) / (await impls[0][1](1)))));
      const got = new Map<string, number[]>(impls.map(([n]) => [n, []]));
      for (let r = 0; r < rounds; r++)
        for (let i = 0; i < impls.length; i++) {
          const [name, f] = impls[(i + r) % impls.length];
          got.get(name)!.push(await f(inner));
        }
      const stat = (n: string) => ({ min: Math.min(...got.get(n)!), med: median(got.get(n)!) });
      const o = stat('ours');
      const parts = [`ours ${fmt(o.min)} / ${fmt(o.med)} ms`];
      for (const n of ['old', 'sdpa'].filter((x) => got.has(x))) {
        const s = stat(n);
        parts.push(`${n} ${fmt(s.min)} / ${fmt(s.med)} ms (${n}/ours ${(s.min / o.min).toFixed(2)}x / ${(s.med / o.med).toFixed(2)}x)`);
      }
      const row: Row = { bench: 'cpu attention', case: `${c.key}, ${t}t`, figure: parts.join('; ') };
      if (c.key.startsWith('vision 2B')) row.target = 'sdpa/ours >= 1.0x';
      rows.push(row);
      console.log(`${row.case}: ${row.figure}`);
    }
    await ours.dispose();
    await old?.dispose();
  }
  torch?.close();
  return rows;
}

await runAsScript(import.meta.url, (o) => runAttentionBench(o.threads ?? [1, 2], o.quick));
