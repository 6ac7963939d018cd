// Parity: one Qwen2-VL decoder layer (M-RoPE, GQA, q/k/v bias, SwiGLU) composed from the engine's
// ops on the weights and inputs of the reference fixture, against the PyTorch reference's output
// (which itself matches Hugging Face transformers: tools/reference/HF_PARITY.md).
import { fileURLToPath } from 'node:url';
import { openCheckpoint } from '../../lib/index.ts';
import { BACKENDS, backendTest, engineOn } from '../helpers/cuda.ts';
import { assertClose } from '../helpers/reference.ts';
import { decoderLayer } from '../helpers/qwen2vl-ops.ts';

const fixture = fileURLToPath(new URL('../fixtures/vlm_decoder_layer.safetensors', import.meta.url));

for (const backend of BACKENDS) {
  backendTest(backend, 'Qwen2-VL decoder layer from engine ops matches the reference fixture (fp32, 1e-4 relative)', async (t) => {
    const ck = openCheckpoint(fixture);
    const cfg = JSON.parse(ck.metadata().config);
    const e = engineOn(backend);
    t.teardown(() => e.dispose());
    const { hidden: h2, k, v } = decoderLayer(e, ck, 'model.layers.0.', cfg, e.load(ck, 'in.hidden'), e.load(ck, 'in.position_ids'));

    assertClose(t, await k.readFloat32(), await e.load(ck, 'out.k').readFloat32(), 1e-4, 'k (post-RoPE)');
    assertClose(t, await v.readFloat32(), await e.load(ck, 'out.v').readFloat32(), 1e-4, 'v');
    assertClose(t, await h2.readFloat32(), await e.load(ck, 'out.hidden').readFloat32(), 1e-4, 'hidden');
  });
}
