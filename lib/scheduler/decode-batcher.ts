/**
 * Continuous batching of answers: every answer in its decode loop asks for its next token; each tick
 * runs ONE decode step for the waiting sequences (up to maxBatch), whatever their lengths: the linear
 * layers and the LM head see all of them, attention and the draw stay per sequence. A new answer's
 * prefill runs between ticks, and it joins the next one.
 */
import { LatteError } from '../errors.js';
import type { NativeSequence } from '../native.js';
import type { Qwen2VL } from '../qwen2vl.js';
import type { Tensor } from '../tensor.js';
import { TickLoop, type Waiter } from './tick-loop.js';

interface Waiting extends Waiter<Tensor> {
  seq: NativeSequence;
  token: Tensor;
}

export class DecodeBatcher extends TickLoop<Waiting, Qwen2VL> {
  /** The sequence's next token (i32 [1], not computed yet) after `token`, once a tick has enqueued it. */
  decode(seq: NativeSequence, token: Tensor): Promise<Tensor> {
    return new Promise((resolve, reject) => this.push({ seq, token, resolve, reject }));
  }

  protected take(): Waiting[] {
    return this.waiting.splice(0, this.maxBatch);
  }

  protected tick(taken: Waiting[]): void {
    const made: Tensor[] = [];
    try {
      if (taken.length === 1) {
        // alone: the sequence's own recorded step, exactly as unbatched
        taken[0].resolve(this.model.decode(taken[0].seq, taken[0].token));
      } else {
        const e = this.engine;
        let tokens = taken[0].token;
        for (const w of taken.slice(1)) made.push((tokens = e.concat(tokens, w.token, 0)));
        const next = this.model.decodeBatch(taken.map((w) => w.seq), tokens);
        made.push(next);
        taken.forEach((w, r) => w.resolve(e.slice(next, 0, r, 1)));
      }
      this.onBatch({ kind: 'answer', rows: taken.length });
    } catch (err) {
      for (const w of taken) w.reject(LatteError.from(err));
    } finally {
      for (const t of made) t.dispose();
    }
  }
}
