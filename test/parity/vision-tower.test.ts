// Parity: the Qwen2-VL vision tower (patch embed, 2-D RoPE blocks with full attention, quick-GELU
// MLP, 2x2 patch merger) composed from engine ops on the tiny model's weights, against the reference
// fixture. It checks that the op layer covers the tower; the tower as engine model code is issue 4's.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../../lib/index.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { visionTower } from '../helpers/qwen2vl-ops.ts';
import { assertClose } from '../helpers/reference.ts';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));

test('Qwen2-VL vision tower from engine ops matches the reference (fp32, 1e-4)', async (t) => {
  const fx = openCheckpoint(`${fixtures}vlm_vision_tower.safetensors`);
  const ck = openCheckpoint(`${fixtures}tiny-model/vlm`);
  const vc = JSON.parse(fx.metadata().config).vision_config;
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const [, gh, gw] = Array.from((await e.load(fx, 'in.grid_thw').read()) as Int32Array);
  const r = await visionTower(e, ck, vc, e.load(fx, 'in.pixel_values'), gh, gw);
  assertClose(t, await r.patchEmbed.readFloat32(), await e.load(fx, 'out.patch_embed').readFloat32(), 1e-5, 'patch embed');
  assertClose(t, await r.preMerger.readFloat32(), await e.load(fx, 'out.pre_merger').readFloat32(), 1e-4, 'blocks');
  assertClose(t, await r.embeds.readFloat32(), await e.load(fx, 'out.image_embeds').readFloat32(), 1e-4, 'merger');
});
