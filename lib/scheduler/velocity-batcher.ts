/**
 * Cross-request batching of a flow model by expert group (the thing LaTtE-Flow allows): every image
 * request in flight asks for the velocities its sampler needs; each tick picks ONE expert group — the
 * group of the oldest waiting evaluation, so no request waits behind newer ones — and runs a single
 * forward of that group's layers for the waiting evaluations in it (up to maxBatch images), each at
 * its own time, with its own prompts and guidance. Requests at different steps share a forward as long
 * as their times fall in the same group.
 */
import type { GenerationStream } from '../generator.js';
import { LatteError } from '../errors.js';
import type { NativeSequence } from '../native.js';
import type { Tensor } from '../tensor.js';
import { TickLoop, type Waiter } from './tick-loop.js';

export interface Evaluation {
  /** the request's latents [images, C, h, w] and their time */
  x: Tensor;
  t: number;
  images: number;
  cond: NativeSequence;
  nul: NativeSequence | null;
  guidance: number;
}

interface Waiting extends Waiter<Tensor> {
  ev: Evaluation;
  group: number;
}

export class VelocityBatcher extends TickLoop<Waiting, GenerationStream> {
  /** v(x, t) of the expert group that owns t, once a tick has enqueued it (the tensor is not computed yet). */
  velocity(ev: Evaluation): Promise<Tensor> {
    return new Promise((resolve, reject) => this.push({ ev, group: this.model.groupOf(ev.t), resolve, reject }));
  }

  /** The oldest waiting evaluation's group, and the evaluations in it, oldest first, up to maxBatch images. */
  protected take(): Waiting[] {
    const group = this.waiting[0].group;
    const taken: Waiting[] = [];
    let images = 0;
    for (const w of this.waiting) {
      if (w.group !== group) continue;
      if (taken.length > 0 && images + w.ev.images > this.maxBatch) break;
      taken.push(w);
      images += w.ev.images;
    }
    for (const w of taken) this.waiting.splice(this.waiting.indexOf(w), 1);
    return taken;
  }

  protected tick(taken: Waiting[]): void {
    const group = taken[0].group;
    const made: Tensor[] = [];
    try {
      if (taken.length === 1) {
        // alone: the request's own recorded forward (a CUDA graph on the GPU), exactly as unbatched
        const { ev } = taken[0];
        taken[0].resolve(this.model.velocity(ev.x, ev.t, group, ev.cond, ev.nul, ev.guidance));
      } else {
        const e = this.engine;
        let x = taken[0].ev.x;
        for (const w of taken.slice(1)) made.push((x = e.concat(x, w.ev.x, 0)));
        const v = this.model.velocityBatch(x, group, taken.map(({ ev }) => ({ t: ev.t, cond: ev.cond, null: ev.nul, guidance: ev.guidance, images: ev.images })));
        made.push(v);
        let at = 0;
        for (const w of taken) {
          w.resolve(e.slice(v, 0, at, w.ev.images));
          at += w.ev.images;
        }
      }
      this.onBatch({ kind: 'image', rows: taken.reduce((n, w) => n + w.ev.images, 0), group });
    } catch (err) {
      for (const w of taken) w.reject(LatteError.from(err));
    } finally {
      for (const t of made) t.dispose(); // the engine keeps what queued ops still read
    }
  }
}
