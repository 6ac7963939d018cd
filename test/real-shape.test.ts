// Smoke test at Qwen2-VL-2B's real shapes (widths, heads, M-RoPE sections, vision dims, vocabulary)
// with random weights and 2 decoder layers / 2 vision blocks: the checkpoint loads, an image is
// encoded, and the model answers. Proves the real shapes work end to end; numbers are checked
// against the reference on the tiny model (test/parity/vlm-model.test.ts).
import test from 'ava';
import os from 'node:os';
import path from 'node:path';
import { Qwen2VL } from '../lib/index.ts';
import { writeRandomQwen2VLIfMissing } from '../lib/bench/random-qwen2vl.ts';

const dir = path.join(os.tmpdir(), 'latte-flow-real-shape-2l');

test('a Qwen2-VL-2B-shaped model (2 layers, random bf16 weights) loads, encodes an image and answers', async (t) => {
  const cfg = (await writeRandomQwen2VLIfMissing(dir, { layers: 2, visionDepth: 2, dtype: 'bf16' })) as { hidden_size: number; vocab_size: number };
  const m = await Qwen2VL.load(dir, { backend: 'cpu', weights: 'bf16' });
  t.teardown(() => m.dispose());
  t.is(m.config.hiddenSize, 1536);
  t.is(m.config.vocabSize, 151936);
  // a 112x140 picture: grid 8x10 patches -> 20 merged image tokens
  const [width, height] = [140, 112];
  const data = new Uint8Array(width * height * 3).map((_, i) => (i * 37) % 251);
  const e = m.engine;
  const { preprocessImage } = await import('../lib/index.ts');
  const pv = preprocessImage({ width, height, data }, m.preprocessor);
  t.deepEqual(pv.grid, [1, 8, 10]);
  const emb = m.encodeImage(e.tensor(pv.data, pv.shape), pv.grid);
  t.deepEqual(emb.shape, [20, cfg.hidden_size]);
  t.true((await emb.readFloat32()).every(Number.isFinite));
  const ids: number[] = [];
  const text = await m.answer({ image: { width, height, data }, question: 'What is shown?', maxTokens: 3, onToken: (_, id) => ids.push(id) });
  t.is(typeof text, 'string');
  t.true(ids.every((id) => id === -1 || (id >= 0 && id < cfg.vocab_size)));
  t.true(e.stats().peakBytes > 1e9, 'real-sized weights were resident');
});
