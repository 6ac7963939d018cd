/** Safetensors checkpoints, memory-mapped by the engine (a JS Buffer never holds the weights). */
import { native } from './errors.js';
import { loadAddon, type NativeCheckpoint } from './native.js';

export interface TensorInfo {
  /** As written in the file: F32, BF16, F16, F64, I64, I32, ... */
  dtype: string;
  shape: number[];
  file: string;
}

export class Checkpoint {
  /** @internal */
  readonly handle: NativeCheckpoint;
  /** @internal */
  constructor(handle: NativeCheckpoint) {
    this.handle = handle;
  }
  names(): string[] {
    return native(() => this.handle.names());
  }
  has(name: string): boolean {
    return this.names().includes(name);
  }
  info(name: string): TensorInfo {
    return native(() => this.handle.info(name));
  }
  metadata(): Record<string, string> {
    return native(() => this.handle.metadata());
  }
  /** Releases this handle (engines still loading from it keep the mapping until they are done). */
  close(): void {
    this.handle.close();
  }
  [Symbol.dispose](): void {
    this.close();
  }
}

/**
 * Opens a .safetensors file, a directory of shards, or a Hugging Face `*.index.json`. Every header
 * is checked (offsets, sizes, overlaps); problems throw E_BAD_WEIGHTS naming the file and tensor.
 */
export function openCheckpoint(path: string): Checkpoint {
  return new Checkpoint(native(() => loadAddon().openCheckpoint(path)));
}
