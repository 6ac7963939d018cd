/**
 * The native contract of the DC-AE decoder (bindings/dcae_wrap.cc): NativeDcae, typed. Kept apart
 * from native.ts; `loadAddon()` returns an object that also carries `NativeDcae`.
 */
import type { NativeAddon, NativeCheckpoint, NativeEngine, NativeTensor } from './native.js';

/** The config fields the TypeScript side needs, as the engine parsed and checked them. */
export interface NativeDcaeConfig {
  /** Channels of the latent the decoder takes. */
  latentChannels: number;
  /** Image side / latent side: 2^(stages - 1). */
  factor: number;
  /** The latent is divided by this before decoding. */
  scalingFactor: number;
  /** Channels of the image (config in_channels, usually 3). */
  outChannels: number;
}

export interface NativeDcae {
  readonly config: NativeDcaeConfig;
  /** latent z f32 [B, latentChannels, h, w] (already divided by scalingFactor) -> image f32 [B, outChannels, h*factor, w*factor] */
  decode(latent: NativeTensor): NativeTensor;
  dispose(): void;
}

export interface NativeDcaeAddon extends NativeAddon {
  NativeDcae: new (engine: NativeEngine, ck: NativeCheckpoint, configJson: string, configPath?: string) => NativeDcae;
}
