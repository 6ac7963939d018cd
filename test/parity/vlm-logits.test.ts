// Parity: the whole Qwen2-VL forward for a prompt with an image (vision tower, image embeddings in
// place of the <|image_pad|> tokens, M-RoPE positions, 4 decoder layers, final norm, tied head)
// composed from engine ops, against the reference's logits (which match Hugging Face's).
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { decoderLayer, visionTower } from '../helpers/qwen2vl-ops.ts';
import { assertClose } from '../helpers/reference.ts';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));

test('Qwen2-VL logits for an image prompt from engine ops match the reference (fp32, 1e-4)', async (t) => {
  const fx = openCheckpoint(`${fixtures}vlm_logits.safetensors`);
  const ck = openCheckpoint(`${fixtures}tiny-model/vlm`);
  const cfg = JSON.parse(fx.metadata().config);
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const ids = Array.from((await e.load(fx, 'in.input_ids').read()) as Int32Array);
  const [, gh, gw] = Array.from((await e.load(fx, 'in.grid_thw').read()) as Int32Array);
  const { embeds } = await visionTower(e, ck, cfg.vision_config, e.load(fx, 'in.pixel_values'), gh, gw);

  // text embeddings with the image's rows spliced in where the pad tokens stand
  const start = ids.indexOf(cfg.image_token_id);
  const n = embeds.shape[0];
  t.deepEqual(ids.slice(start, start + n), new Array(n).fill(cfg.image_token_id));
  const table = e.load(ck, 'model.embed_tokens.weight');
  const embed = (part: number[]) => e.embedding(table, e.tensor(Int32Array.from(part), [part.length], 'i32'));
  const S = ids.length;
  let h = e.concat(e.concat(embed(ids.slice(0, start)), embeds, 0), embed(ids.slice(start + n)), 0);
  h = e.reshape(h, [1, S, cfg.hidden_size]);
  const pos = e.reshape(e.load(fx, 'out.position_ids'), [3, 1, S]);
  for (let l = 0; l < cfg.num_hidden_layers; l++) h = decoderLayer(e, ck, `model.layers.${l}.`, cfg, h, pos).hidden;
  const logits = e.linear(e.rmsNorm(h, e.load(ck, 'model.norm.weight'), { eps: cfg.rms_norm_eps }), table); // tied head
  assertClose(t, await logits.readFloat32(), await e.load(fx, 'out.logits').readFloat32(), 1e-4, 'logits');
});
