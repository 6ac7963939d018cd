/**
 * The node-llama-cpp peer (llama.cpp on the CPU): greedy decode after the same prompt, on a GGUF of the
 * random checkpoint's text decoder that the bench writes into the run's temporary folder, one per weight
 * type the measure pairs (vlm.decode-f32 / -bf16 / -q8: F32 / BF16 / Q8_0, lib/bench/gguf-qwen2.ts).
 * --gguf FILE replaces the written GGUF (then the ratio means something only when FILE is the same
 * decoder at the same depth). Before timing, the peer's greedy tokens are checked against ours on the
 * same prompt and weights; the agreement goes into the report's note (a disagreement is said, not fatal).
 *
 * node-llama-cpp is found where latte-flow is installed, or else from the current folder (its
 * node_modules or a parent's): `cd <a folder with node-llama-cpp> && latte-flow bench`; NODE_PATH works
 * too (the lookup is require's). Imported dynamically and typed locally: the package does not depend on it.
 */
import fs from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';
import { writeQwen2Gguf } from './gguf-qwen2.js';
import { nowMs } from './stats.js';
import { oursGreedy, textIds, vlmWorkload } from './understanding.js';
import type { BenchContext, Measure, Peer, PeerStatus, Timed } from './types.js';

/** The GGUF tensor type llama.cpp computes with for each of our weight options. */
export const GGUF_TYPE = { f32: 'F32', bf16: 'BF16', q8: 'Q8_0' } as const;

interface LlamaSequence {
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  evaluate(tokens: number[]): AsyncGenerator<number>;
  clearHistory(): Promise<void>;
}
interface LlamaModel {
  createContext(o: object): Promise<{ getSequence(): LlamaSequence; dispose(): Promise<void> }>;
  dispose(): Promise<void>;
}
interface Llama {
  loadModel(o: { modelPath: string }): Promise<LlamaModel>;
}
interface LlamaModule {
  getLlama(o?: object): Promise<Llama>;
}

const NAME = 'node-llama-cpp';

/** Where node-llama-cpp resolves: beside this package first, then from the current folder. */
export function findLlamaModule(cwd = process.cwd()): { entry: string; version: string } | undefined {
  for (const from of [import.meta.url, pathToFileURL(path.join(cwd, 'noop.js')).href]) {
    try {
      const entry = createRequire(from).resolve(NAME);
      // its package.json is not exported: found by walking up from the entry point
      let dir = path.dirname(entry);
      while (!fs.existsSync(path.join(dir, 'package.json')) && path.dirname(dir) !== dir) dir = path.dirname(dir);
      const version = (JSON.parse(fs.readFileSync(path.join(dir, 'package.json'), 'utf8')) as { version?: string }).version ?? '?';
      return { entry, version };
    } catch {
      // not there
    }
  }
  return undefined;
}

/** Greedy tokens: the one the prompt's last position gives, then `n` more. */
async function greedy(seq: LlamaSequence, prompt: number[], n: number): Promise<number[]> {
  await seq.clearHistory();
  const out: number[] = [];
  for await (const t of seq.evaluate(prompt)) if (out.push(t) > n) break;
  return out;
}

function agreement(ours: number[], theirs: number[]): string {
  const first = ours.findIndex((t, i) => t !== theirs[i]);
  if (first < 0) return `greedy tokens identical to ours (${ours.length} of ${ours.length})`;
  return `greedy tokens DIFFER from ours from token ${first + 1} of ${ours.length} (ours ${ours.slice(first, first + 4).join(' ')}..., llama.cpp ${theirs.slice(first, first + 4).join(' ')}...)`;
}

export async function llamaPeer(gguf: string | undefined): Promise<Peer> {
  const found = findLlamaModule();
  const status: PeerStatus = found
    ? { available: true, version: `${NAME} ${found.version}`, detail: gguf ?? 'GGUFs written from the random checkpoint' }
    : { available: false, reason: 'not installed', install: `npm install ${NAME} (beside latte-flow, or in the folder you run the bench from)` };
  let llama: Promise<Llama> | undefined;
  return {
    id: 'llama.cpp',
    title: NAME,
    status,
    async prepare(measure: Measure, ctx: BenchContext): Promise<Timed> {
      if (!found) throw new Error('not installed');
      const weights = measure.weights;
      if (!measure.id.startsWith('vlm.decode') || !weights) throw new Error(`llama.cpp has no ${measure.id}`);
      llama ??= (import(pathToFileURL(found.entry).href) as Promise<LlamaModule>).then((m) => m.getLlama({ gpu: false, build: 'never', logLevel: 'error' }));
      let file = gguf;
      if (!file) {
        const dir = await ctx.randomVlm();
        file = ctx.tempFile(`decoder-${weights}.gguf`);
        const t0 = nowMs();
        ctx.log(`writing the decoder as a ${GGUF_TYPE[weights]} GGUF to ${file}`);
        await writeQwen2Gguf(dir, file, weights);
        ctx.log(`  written in ${((nowMs() - t0) / 1e3).toFixed(1)} s`);
      }
      const model = await (await llama).loadModel({ modelPath: file });
      const context = await model.createContext({ contextSize: 512, threads: ctx.options.threads }).catch(async (e: unknown) => {
        await model.dispose();
        throw e;
      });
      const release = async () => {
        await context.dispose();
        await model.dispose();
        if (!gguf) await fs.promises.rm(file, { force: true }); // up to ~2 GB each: not kept to the end
      };
      const seq = context.getSequence();
      const w = vlmWorkload(ctx.options.quick);
      const ids = textIds(w.decodePrompt, 2);
      const prompt = [...ids];
      let check: string;
      try {
        // the check: the same prompt and weights, greedy, against ours (loaded for it and released)
        const theirs = await greedy(seq, prompt, w.decodeTokens);
        check = agreement(await oursGreedy(ctx, weights, ids, w.decodeTokens), theirs);
      } catch (e) {
        await release();
        throw e;
      }
      ctx.log(`llama.cpp ${GGUF_TYPE[weights]}: ${check}`);
      return {
        run: async () => {
          await seq.clearHistory();
          await seq.evaluateWithoutGeneratingNewTokens(prompt.slice(0, -1));
          let n = 0;
          let t0 = 0;
          // the first token comes from the prompt's last position (prefill); then one decode step each
          for await (const _ of seq.evaluate(prompt.slice(-1))) {
            if (n === 0) t0 = nowMs();
            if (++n > w.decodeTokens) break;
          }
          return (nowMs() - t0) / w.decodeTokens;
        },
        teardown: release,
        note: `${gguf ? path.basename(gguf) : `${GGUF_TYPE[weights]} GGUF of the same decoder`}, ${w.decodeTokens} tokens after ${w.decodePrompt}; ${check}`,
      };
    },
    async close() {},
  };
}
