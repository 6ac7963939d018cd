/** A tensor that lives in an engine. Its data never crosses into JS except through read(). */
import { LatteError, nativeAsync, native } from './errors.js';
import type { DTypeName, NativeEngine, NativeTensor } from './native.js';

export type HostArray = Float32Array | Uint16Array | Int32Array;

export class Tensor {
  /** @internal */
  readonly handle: NativeTensor;
  /** @internal */
  readonly owner: NativeEngine;

  /** @internal */
  constructor(owner: NativeEngine, handle: NativeTensor) {
    this.owner = owner;
    this.handle = handle;
  }

  get shape(): number[] {
    return this.handle.shape;
  }
  get dtype(): DTypeName | 'q8' {
    return this.handle.dtype;
  }
  get disposed(): boolean {
    return this.handle.disposed;
  }
  get size(): number {
    return this.shape.reduce((a, b) => a * b, 1);
  }

  /**
   * Waits for the ops producing this tensor and copies it out: Float32Array for f32, Int32Array
   * for i32, Uint16Array (raw bits) for bf16/f16. Errors raised on the stream surface here.
   */
  async read(): Promise<HostArray> {
    const buf = await nativeAsync(() => this.owner.read(this.handle));
    switch (this.dtype) {
      case 'f32':
        return new Float32Array(buf);
      case 'i32':
        return new Int32Array(buf);
      default:
        return new Uint16Array(buf);
    }
  }

  /** Reads an f32 tensor (throws E_DTYPE for others). */
  async readFloat32(): Promise<Float32Array> {
    if (this.dtype !== 'f32') throw new LatteError('E_DTYPE', `readFloat32 on a ${this.dtype} tensor`);
    return (await this.read()) as Float32Array;
  }

  /** Releases this handle; the memory is freed once queued ops that use it have run. */
  dispose(): void {
    native(() => this.handle.dispose());
  }

  [Symbol.dispose](): void {
    this.dispose();
  }
}
