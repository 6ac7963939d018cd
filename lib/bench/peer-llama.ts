/**
 * The node-llama-cpp peer (llama.cpp): decode, greedy, after the same prompt length, on a GGUF the user
 * gives with --gguf. Writing a GGUF of the random checkpoint (with a tokenizer llama.cpp accepts) is not
 * implemented yet, so without --gguf the peer is skipped with that reason. The ratio is meaningful only
 * when the GGUF is Qwen2-VL-2B's text decoder and --layers matches its depth (28); the report says so.
 * Imported dynamically and typed locally: the package does not depend on node-llama-cpp.
 */
import { packageVersion } from './machine.js';
import { nowMs } from './stats.js';
import { textIds, vlmWorkload } from './understanding.js';
import type { BenchContext, Measure, Peer, Timed } from './types.js';

interface LlamaSequence {
  evaluateWithoutGeneratingNewTokens(tokens: number[]): Promise<void>;
  evaluate(tokens: number[]): AsyncGenerator<number>;
  clearHistory(): Promise<void>;
}
interface LlamaModule {
  getLlama(o?: object): Promise<{ loadModel(o: { modelPath: string }): Promise<{ createContext(o: object): Promise<{ getSequence(): LlamaSequence; dispose(): Promise<void> }>; dispose(): Promise<void> }> }>;
}

export async function llamaPeer(gguf: string | undefined): Promise<Peer> {
  let mod: LlamaModule | undefined;
  const name = 'node-llama-cpp'; // a variable: no compile-time resolution of an optional package
  try {
    mod = (await import(name)) as LlamaModule;
  } catch {
    // not installed
  }
  const status = !mod
    ? { available: false as const, reason: 'not installed', install: 'npm install node-llama-cpp, and pass --gguf FILE (a GGUF of Qwen2-VL-2B\'s text decoder)' }
    : !gguf
      ? { available: false as const, reason: 'installed, but no --gguf given (writing a GGUF of the random checkpoint is not implemented yet)', install: 'pass --gguf FILE, a GGUF of Qwen2-VL-2B\'s text decoder, with --layers 28' }
      : { available: true as const, version: `node-llama-cpp ${packageVersion(name) ?? '?'}`, detail: gguf };
  let loaded: Promise<{ seq: LlamaSequence; dispose(): Promise<void> }> | undefined;
  const load = async (ctx: BenchContext) => {
    const llama = await mod!.getLlama();
    const model = await llama.loadModel({ modelPath: gguf! });
    const context = await model.createContext({ contextSize: 512, threads: ctx.options.threads });
    return { seq: context.getSequence(), dispose: async () => (await context.dispose(), await model.dispose()) };
  };
  return {
    id: 'llama.cpp',
    title: 'node-llama-cpp',
    status,
    async prepare(measure: Measure, ctx: BenchContext): Promise<Timed> {
      if (!status.available) throw new Error(status.reason);
      if (measure.id !== 'vlm.decode') throw new Error(`llama.cpp has no ${measure.id}`);
      loaded ??= load(ctx);
      const { seq } = await loaded;
      const w = vlmWorkload(ctx.options.quick);
      const prompt = [...textIds(w.decodePrompt, 2)];
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
        teardown: async () => {},
        note: `${gguf}, ${w.decodeTokens} tokens after ${w.decodePrompt}`,
      };
    },
    async close() {
      if (loaded) await (await loaded.catch(() => undefined))?.dispose();
    },
  };
}
