// Parity: Qwen2-VL prefill + KV-cached decode + on-engine sampling, composed from engine ops, emit
// the reference's tokens (greedy and seeded temperature/top-k/top-p). Only token ids cross to JS.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { openCheckpoint, type Tensor } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { decoderLayer, visionTower } from '../helpers/qwen2vl-ops.ts';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));

test('greedy and seeded sampled tokens equal the reference (prefill, then one decode step per token)', async (t) => {
  const fx = openCheckpoint(`${fixtures}vlm_generate.safetensors`);
  const ck = openCheckpoint(`${fixtures}tiny-model/vlm`);
  const meta = JSON.parse(fx.metadata().config);
  // the same prompt's prefill fixture carries the model config and its M-RoPE positions / delta
  const pos0 = openCheckpoint(`${fixtures}vlm_logits.safetensors`);
  const cfg = JSON.parse(pos0.metadata().config);
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const ids = Array.from((await e.load(fx, 'in.input_ids').read()) as Int32Array);
  const [, gh, gw] = Array.from((await e.load(fx, 'in.grid_thw').read()) as Int32Array);
  const { embeds } = await visionTower(e, ck, cfg.vision_config, e.load(fx, 'in.pixel_values'), gh, gw);
  const table = e.load(ck, 'model.embed_tokens.weight');
  const norm = e.load(ck, 'model.norm.weight');
  const embed = (part: number[]) => e.embedding(table, e.tensor(Int32Array.from(part), [part.length], 'i32'));
  const start = ids.indexOf(cfg.image_token_id);
  const S = ids.length;
  const positions = e.reshape(e.load(pos0, 'out.position_ids'), [3, 1, S]);
  const delta = ((await e.load(pos0, 'out.rope_delta').read()) as Int32Array)[0];
  const L = cfg.num_hidden_layers;

  async function generate(opts: { temperature?: number; topK?: number; topP?: number; seed?: number }): Promise<number[]> {
    let h = e.concat(e.concat(embed(ids.slice(0, start)), embeds, 0), embed(ids.slice(start + embeds.shape[0])), 0);
    h = e.reshape(h, [1, S, cfg.hidden_size]);
    const cache: { k: Tensor; v: Tensor }[] = [];
    let pos = positions;
    const out: number[] = [];
    for (let step = 0; step < meta.max_new_tokens; step++) {
      for (let l = 0; l < L; l++) {
        const r = decoderLayer(e, ck, `model.layers.${l}.`, cfg, h, pos, cache[l]);
        cache[l] = { k: r.k, v: r.v };
        h = r.hidden;
      }
      const rows = h.shape[1];
      // every row is sampled with the same draw; the last position's choice is the next token
      const logits = e.linear(e.rmsNorm(e.reshape(h, [rows, cfg.hidden_size]), norm, { eps: cfg.rms_norm_eps }), table);
      const tok = ((await e.sample(logits, { ...opts, step }).read()) as Int32Array)[rows - 1];
      out.push(tok);
      h = e.reshape(embed([tok]), [1, 1, cfg.hidden_size]);
      const p = S + delta + step;
      pos = e.tensor(Int32Array.from([p, p, p]), [3, 1, 1], 'i32');
    }
    return out;
  }

  const greedy = Array.from((await e.load(fx, 'out.greedy').read()) as Int32Array);
  t.deepEqual(await generate({}), greedy);
  const sw = meta.sampled_with;
  const sampled = Array.from((await e.load(fx, 'out.sampled').read()) as Int32Array);
  t.deepEqual(await generate({ temperature: sw.temperature, topK: sw.top_k, topP: sw.top_p, seed: sw.seed }), sampled);
});
