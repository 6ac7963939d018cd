/** The work the image worker does (and the main thread, if no worker can start): decode, then preprocess. */
import { decodeBytes, type ImageLimits } from './image-decode.js';
import { preprocessImage, type PixelValues, type PreprocessorConfig, type RgbImage } from './image.js';

export type ImageTask =
  | { op: 'decode'; bytes: Uint8Array; limits: ImageLimits }
  | { op: 'pixels'; bytes: Uint8Array; limits: ImageLimits; cfg: PreprocessorConfig }
  | { op: 'pixels'; rgb: RgbImage; limits: ImageLimits; cfg: PreprocessorConfig };

export type SourcedPixels = PixelValues & { source: [number, number] };

export function runImageTask(t: ImageTask): { result: RgbImage | SourcedPixels; transfer: ArrayBuffer[] } {
  if (t.op === 'decode') {
    const img = decodeBytes(t.bytes, t.limits);
    return { result: img, transfer: [img.data.buffer as ArrayBuffer] };
  }
  const img = 'rgb' in t ? t.rgb : decodeBytes(t.bytes, t.limits);
  const pv = preprocessImage(img, t.cfg);
  return { result: { ...pv, source: [img.width, img.height] }, transfer: [pv.data.buffer as ArrayBuffer] };
}
