/**
 * The DC-AE decoder (diffusers AutoencoderDC, decoder only) loaded from its model directory
 * (config.json + diffusion_pytorch_model.safetensors). The engine reads the config, binds and
 * checks every weight and applies the config's scaling_factor (native/model/dcae.cc); this file
 * adds the latent -> RGB conversion of the reference pipeline.
 */
import path from 'node:path';
import { Engine } from './engine.js';
import { describe, ensure, native } from './errors.js';
import { openCheckpoint } from './checkpoint.js';
import { loadAddon, type NativeDcae, type NativeDcaeConfig } from './native.js';
import { Tensor } from './tensor.js';

export class DcaeDecoder {
  readonly engine: Engine;
  readonly config: NativeDcaeConfig;
  readonly #native: NativeDcae;

  private constructor(engine: Engine, nat: NativeDcae) {
    this.engine = engine;
    this.#native = nat;
    this.config = nat.config;
  }

  /**
   * Opens `dir` (config.json + safetensors), checks the config and every weight's name and shape,
   * and enqueues the weights' loads on `engine` (which the decoder does not own).
   * Errors: E_BAD_CONFIG, E_BAD_WEIGHTS (a conversion error while loading surfaces at the next fence/read).
   */
  static load(dir: string, engine: Engine): DcaeDecoder {
    ensure(typeof dir === 'string' && dir.length > 0, 'the VAE directory must be a non-empty string');
    ensure(engine instanceof Engine, 'engine must be an Engine');
    const { NativeDcae } = loadAddon();
    const config = native(() => NativeDcae.readConfig(path.join(dir, 'config.json')));
    const ck = openCheckpoint(dir);
    try {
      return new DcaeDecoder(engine, native(() => new NativeDcae(engine.handle, ck.handle, config)));
    } finally {
      ck.close(); // the engine keeps the mapping alive while its loads are queued
    }
  }

  /**
   * A latent f32 [B, latentChannels, h, w] as the flow makes it (the decoder divides it by
   * scalingFactor) -> image f32 [B, outChannels, h*factor, w*factor] in about [-1, 1].
   */
  decode(latent: Tensor): Tensor {
    return this.engine.wrap(native(() => this.#native.decode(this.engine.own(latent))));
  }

  /** Frees the weights (not the engine). */
  dispose(): void {
    this.#native.dispose();
  }
  [Symbol.dispose](): void {
    this.dispose();
  }
}

/**
 * Decoder output [B, 3, H, W] in [-1, 1] -> one uint8 RGB image (H*W*3, HWC) per batch item, as the
 * reference's latent_to_uint8: clamp(-1, 1), (x + 1) * 127.5 + 0.5, floor, clamp(0, 255), each step
 * rounded to float32 like torch.
 */
export function latentToRgb(image: Float32Array, B: number, H: number, W: number): Uint8Array[] {
  for (const [v, name] of [[B, 'B'], [H, 'H'], [W, 'W']] as const) ensure(Number.isInteger(v) && v > 0, `${name} must be a positive integer, got ${describe(v)}`);
  const plane = H * W;
  ensure(image.length === B * 3 * plane, `the image has ${image.length} values, not B*3*H*W = ${B * 3 * plane}`, 'E_SHAPE');
  const f = Math.fround;
  const out: Uint8Array[] = [];
  for (let b = 0; b < B; b++) {
    const rgb = new Uint8Array(plane * 3);
    for (let c = 0; c < 3; c++) {
      const src = (b * 3 + c) * plane;
      for (let p = 0; p < plane; p++) {
        const x = image[src + p];
        const clamped = Number.isNaN(x) ? x : Math.min(Math.max(x, -1), 1);
        const v = Math.floor(f(f(f(clamped + 1) * 127.5) + 0.5));
        rgb[p * 3 + c] = Number.isNaN(v) ? 0 : Math.min(Math.max(v, 0), 255);
      }
    }
    out.push(rgb);
  }
  return out;
}
