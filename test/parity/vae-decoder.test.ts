// Parity of the engine's own DC-AE decoder (native/model/dcae.cc, loaded from the tiny model's
// diffusers directory) against the reference fixture (test/fixtures/vae_decoder.safetensors: the
// latent z and its decoded image), the latent -> RGB conversion, and its load / input errors.
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LatteError, openCheckpoint, type ErrorCode } from '../../lib/index.ts';
import { DcaeDecoder, latentToRgb } from '../../lib/dcae.ts';
import { cpuEngine } from '../helpers/engine.ts';
import { BACKENDS, backendTest, engineOn } from '../helpers/cuda.ts';
import { assertClose } from '../helpers/reference.ts';
import { writeSt, type StTensor } from '../helpers/safetensors.ts';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
const vaeDir = `${fixtures}tiny-model/vae`;
const WEIGHTS = 'diffusion_pytorch_model.safetensors';

type Json = Record<string, unknown>;
const tinyConfig = (): Json => JSON.parse(fs.readFileSync(path.join(vaeDir, 'config.json'), 'utf8'));

/** A temp copy of the tiny VAE: `config` replaces config.json, `tensors` the safetensors file. */
function vaeCopy(t: ExecutionContext, opts: { config?: Json; tensors?: Record<string, StTensor> } = {}): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-vae-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  fs.writeFileSync(path.join(dir, 'config.json'), JSON.stringify(opts.config ?? tinyConfig(), null, 2));
  if (opts.tensors) writeSt(path.join(dir, WEIGHTS), opts.tensors);
  else fs.copyFileSync(path.join(vaeDir, WEIGHTS), path.join(dir, WEIGHTS));
  return dir;
}

/** The tensors of a safetensors file with their raw bytes. */
function readSt(file: string): Record<string, StTensor> {
  const buf = fs.readFileSync(file);
  const n = Number(buf.readBigUInt64LE(0));
  const header = JSON.parse(buf.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; shape: number[]; data_offsets: [number, number] }>;
  const out: Record<string, StTensor> = {};
  for (const [name, e] of Object.entries(header))
    if (name !== '__metadata__') out[name] = { dtype: e.dtype, shape: e.shape, data: new Uint8Array(buf.subarray(8 + n + e.data_offsets[0], 8 + n + e.data_offsets[1])) };
  return out;
}

function throwsCode(t: ExecutionContext, f: () => unknown, code: ErrorCode, what: string, message?: RegExp): void {
  const err = t.throws(f, { instanceOf: LatteError }, what);
  t.is(err?.code, code, `${what}: ${err?.message}`);
  if (message && err) t.regex(err.message, message, what);
}

for (const backend of BACKENDS) {
  backendTest(backend, 'decode: the image equals the reference (fp32, 1e-4 relative)', async (t) => {
    const e = engineOn(backend);
    t.teardown(() => e.dispose());
    const vae = DcaeDecoder.load(vaeDir, e);
    t.teardown(() => vae.dispose());
    t.deepEqual(vae.config, { latentChannels: 4, factor: 4, scalingFactor: 0.75, outChannels: 3 });
    const fx = openCheckpoint(`${fixtures}vae_decoder.safetensors`);
    // the fixture is the decoder network's image of z itself: decode() divides by scaling_factor
    const x = e.axpby(0.75, e.load(fx, 'in.latent'), 0, e.load(fx, 'in.latent'));
    const img = vae.decode(x);
    t.deepEqual(img.shape, [1, 3, 16, 16]);
    assertClose(t, await img.readFloat32(), await e.load(fx, 'out.image').readFloat32(), 1e-4, 'image');
    // a batch decodes each latent alone
    const xh = await x.readFloat32();
    const two = new Float32Array(xh.length * 2);
    two.set(xh);
    two.set(xh.map((v) => -v), xh.length);
    const both = await vae.decode(e.tensor(two, [2, 4, 4, 4])).readFloat32();
    const one = await img.readFloat32();
    assertClose(t, both.subarray(0, one.length), one, 1e-5, 'batch item 0');
  });
}

test('decode: a raw latent decodes exactly as the network did on latent * (1 / scaling_factor), the division the pipeline used to make', async (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const vae = DcaeDecoder.load(vaeDir, e); // scaling_factor 0.75
  t.teardown(() => vae.dispose());
  const unscaled = DcaeDecoder.load(vaeCopy(t, { config: { ...tinyConfig(), scaling_factor: 1 } }), e);
  t.teardown(() => unscaled.dispose());
  const fx = openCheckpoint(`${fixtures}vae_decoder.safetensors`);
  const x = e.axpby(1.7, e.load(fx, 'in.latent'), 0, e.load(fx, 'in.latent'));
  const sf = vae.config.scalingFactor;
  t.is(sf, 0.75);
  const before = await unscaled.decode(e.axpby(1 / sf, x, 0, x)).readFloat32();
  t.deepEqual(await vae.decode(x).readFloat32(), before);
});

test('decode: a latent of the wrong shape or dtype is E_SHAPE', (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const vae = DcaeDecoder.load(vaeDir, e);
  t.teardown(() => vae.dispose());
  throwsCode(t, () => vae.decode(e.tensor(new Float32Array(48), [1, 3, 4, 4])), 'E_SHAPE', 'wrong channels', /\[B, 4, h, w\]/);
  throwsCode(t, () => vae.decode(e.tensor(new Float32Array(64), [4, 4, 4])), 'E_SHAPE', '3-D latent');
  throwsCode(t, () => vae.decode(e.tensor(new Int32Array(64), [1, 4, 4, 4], 'i32')), 'E_SHAPE', 'i32 latent');
});

test('load: an unsupported or malformed config is E_BAD_CONFIG naming the field', (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const bad: [Json, RegExp][] = [
    [{ ...tinyConfig(), decoder_block_types: ['ResBlock', 'ResBlock', 'AttnBlock'] }, /decoder_block_types\[2\]/],
    [{ ...tinyConfig(), decoder_norm_types: 'layer_norm' }, /decoder_norm_types/],
    [{ ...tinyConfig(), decoder_act_fns: ['relu', 'silu'] }, /decoder_act_fns/],
    [{ ...tinyConfig(), upsample_block_type: 'bilinear' }, /upsample_block_type/],
    [{ ...tinyConfig(), decoder_layers_per_block: [1, 1] }, /decoder_layers_per_block/],
    [{ ...tinyConfig(), latent_channels: undefined }, /latent_channels/],
    [{ ...tinyConfig(), scaling_factor: -1 }, /scaling_factor/],
  ];
  for (const [config, field] of bad) throwsCode(t, () => DcaeDecoder.load(vaeCopy(t, { config }), e), 'E_BAD_CONFIG', field.source, field);
  const dir = vaeCopy(t);
  fs.writeFileSync(path.join(dir, 'config.json'), '{"latent_channels": 4,');
  throwsCode(t, () => DcaeDecoder.load(dir, e), 'E_BAD_CONFIG', 'truncated JSON');
  fs.rmSync(path.join(dir, 'config.json'));
  throwsCode(t, () => DcaeDecoder.load(dir, e), 'E_BAD_CONFIG', 'no config.json');
});

test('load: a missing or mis-shaped tensor is E_BAD_WEIGHTS naming it', (t) => {
  const e = cpuEngine();
  t.teardown(() => e.dispose());
  const all = readSt(path.join(vaeDir, WEIGHTS));
  for (const name of ['decoder.up_blocks.2.1.attn.to_v.weight', 'decoder.up_blocks.0.1.norm.running_var', 'decoder.conv_out.bias']) {
    const tensors = { ...all };
    delete tensors[name];
    throwsCode(t, () => DcaeDecoder.load(vaeCopy(t, { tensors }), e), 'E_BAD_WEIGHTS', `without ${name}`, new RegExp(name.replaceAll('.', '\\.')));
  }
  // a config whose channel counts differ from the checkpoint's
  throwsCode(t, () => DcaeDecoder.load(vaeCopy(t, { config: { ...tinyConfig(), decoder_block_out_channels: [8, 16, 64] } }), e), 'E_BAD_WEIGHTS', 'mis-shaped', /shape/);
});

test('latentToRgb: clamp, (x + 1) * 127.5 + 0.5, floor, in float32, HWC per image', (t) => {
  // 2 images of 1x2 pixels: planes R, G, B of each
  const x = Float32Array.from([-2, -1, 0, 1, 2, 0.5, /* image 2 */ -0.9960784316062927, 0.003921568859368563, 0.999, 1e-8, -1e-8, Number.NaN]);
  const [a, b] = latentToRgb(x, 2, 1, 2);
  t.deepEqual(Array.from(a), [0, 128, 255, 0, 255, 191]);
  const f = Math.fround;
  const want = (v: number) => (Number.isNaN(v) ? 0 : Math.min(255, Math.max(0, Math.floor(f(f(f(Math.min(1, Math.max(-1, f(v))) + 1) * 127.5) + 0.5)))));
  t.deepEqual(Array.from(b), [want(x[6]), want(x[8]), want(x[10]), want(x[7]), want(x[9]), 0]);
  t.throws(() => latentToRgb(new Float32Array(5), 1, 1, 2), { instanceOf: LatteError });
});
