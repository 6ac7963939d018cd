import { LatteFlow } from './lib/index.ts';
import { example } from './lib/shapes/world.ts';
import { preprocessImage } from './lib/image.ts';
const lf = await LatteFlow.load('models/shapes', { backend: 'cpu', threads: 1 });
const ex = example(31337, 0);
const now = () => Number(process.hrtime.bigint()) / 1e6;
const tk = lf.vlm.tokenizer;
const text = '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n<|vision_start|>' + '<|image_pad|>'.repeat(64) + '<|vision_end|>what colour is the triangle?<|im_end|>\n<|im_start|>assistant\n';
for (let r = 0; r < 3; r++) {
  let t0 = now(); for (let i = 0; i < 100; i++) tk.encode(text); const enc = (now() - t0) / 100;
  t0 = now(); for (let i = 0; i < 100; i++) preprocessImage({ width: 64, height: 64, data: ex.image }, (lf.vlm as any).preprocessor ?? (lf.vlm as any).config.preprocessor ?? {patch_size:4,temporal_patch_size:2,merge_size:2,min_pixels:1024,max_pixels:4096,rescale_factor:1/255,image_mean:[0.5,0.5,0.5],image_std:[0.5,0.5,0.5]}); const pre = (now() - t0) / 100;
  const ids = tk.encode('purple<|im_end|>');
  t0 = now(); for (let i = 0; i < 100; i++) tk.decode(ids); const dec = (now() - t0) / 100;
  console.log(`encode ${enc.toFixed(3)} ms, preprocess ${pre.toFixed(3)} ms, decode ${dec.toFixed(3)} ms, tokens ${tk.encode(text).length}`);
}
await lf.dispose();
