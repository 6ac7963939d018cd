// Parity: one LaTtE-Flow generation layer (docs/model.md section 3: modulation, attention over
// [prompt K/V ; image K/V], the TCRA residual on the image-key logits, the returned logits)
// composed from engine ops, against the PyTorch reference's fixture at two timesteps, with and
// without the residual. The time embedding c comes from the fixture (the embedder is issue 5's).
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../../lib/index.ts';
import { BACKENDS, backendTest, engineOn } from '../helpers/cuda.ts';
import { assertClose } from '../helpers/reference.ts';
import { genLayer } from '../helpers/qwen2vl-ops.ts';

const fixture = fileURLToPath(new URL('../fixtures/gen_layer.safetensors', import.meta.url));

for (const backend of BACKENDS) {
  backendTest(backend, 'generation layer with and without TCRA at two timesteps matches the reference (fp32, 1e-4)', async (t) => {
    const ck = openCheckpoint(fixture);
    const cfg = JSON.parse(ck.metadata().config);
    const e = engineOn(backend);
    t.teardown(() => e.dispose());
    const p = `layers.${cfg.layer}.`;

    const h0 = e.load(ck, 'in.hidden'); // [B, N, D] image tokens
    const pos = e.load(ck, 'in.position_ids');
    const pk = e.load(ck, 'in.prompt_k');
    const pv = e.load(ck, 'in.prompt_v');
    const rPrev = e.load(ck, 'in.r_prev');
    for (const step of ['t0', 't1']) {
      const sc = e.silu(e.load(ck, `out.${step}.c`)); // [B, D]
      for (const res of ['nores', 'res'] as const) {
        const r = await genLayer(e, ck, p, cfg, h0, sc, pos, pk, pv, res === 'res' ? rPrev : undefined);
        assertClose(t, await r.logits.readFloat32(), await e.load(ck, `out.${step}.${res}.r`).readFloat32(), 1e-4, `${step} ${res} logits`);
        assertClose(t, await r.hidden.readFloat32(), await e.load(ck, `out.${step}.${res}.hidden`).readFloat32(), 1e-4, `${step} ${res} hidden`);
      }
    }
  });
}
