/**
 * Qwen2-VL's M-RoPE positions (transformers' `get_rope_index` for images; our reference is
 * tools/reference/latte_ref/rope.py). The decoder rotates each token by three positions (time, row,
 * column) so that image tokens keep their 2-D layout: text counts on 1-D from the previous maximum + 1,
 * and each image's merged tokens get their (t, h/merge, w/merge) grid coordinates offset by where the
 * image starts. Computed on the host because it is pure index arithmetic over the prompt's token ids.
 */
import { imageTokenCount } from './chat.js';
import { ensure } from './errors.js';

export interface RopeIndexConfig {
  imageTokenId: number;
  visionStartTokenId: number;
  mergeSize: number;
}

/**
 * positions [3, S] row-major (t, h, w axes) as Int32Array of length 3*S, and delta = max position + 1 - S
 * (transformers' rope_deltas: a new token at sequence index i gets position i + delta on all three
 * axes; the engine's sequence derives the same from the positions at its prefill and owns it after).
 * The k-th run of image tokens uses grids[k]; each run must follow <|vision_start|> and hold exactly
 * imageTokenCount(grids[k]) tokens.
 */
export function ropePositions(
  ids: ArrayLike<number>,
  grids: readonly (readonly [number, number, number])[],
  cfg: RopeIndexConfig,
): { positions: Int32Array; delta: number } {
  const S = ids.length;
  const m = cfg.mergeSize;
  ensure(Number.isInteger(m) && m > 0, `rope positions: merge size ${m} must be a positive integer`);
  const pos = new Int32Array(3 * S);
  let cur = 0; // next start position = max position so far + 1
  let img = 0;
  for (let i = 0; i < S; ) {
    if (ids[i] !== cfg.imageTokenId) {
      pos[i] = pos[S + i] = pos[2 * S + i] = cur++;
      i++;
      continue;
    }
    ensure(img < grids.length, `rope positions: more image blocks than the ${grids.length} grids given`);
    ensure(i > 0 && ids[i - 1] === cfg.visionStartTokenId, `rope positions: image ${img} at token ${i} does not follow <|vision_start|>`);
    const [t, h, w] = grids[img];
    ensure([t, h, w].every((x) => Number.isInteger(x) && x > 0), `rope positions: image ${img} has a bad grid ${[t, h, w]}`);
    const n = imageTokenCount([t, h, w], m);
    let run = 0;
    while (i + run < S && ids[i + run] === cfg.imageTokenId) run++;
    ensure(run === n, `rope positions: image ${img} has ${run} tokens but its grid ${[t, h, w]} needs ${n}`);
    const [gh, gw] = [h / m, w / m];
    for (let k = 0; k < n; k++) {
      pos[i + k] = cur + Math.floor(k / (gh * gw));
      pos[S + i + k] = cur + (Math.floor(k / gw) % gh);
      pos[2 * S + i + k] = cur + (k % gw);
    }
    cur += Math.max(t, gh, gw);
    i += n;
    img++;
  }
  ensure(img === grids.length, `rope positions: ${img} image blocks for ${grids.length} grids`);
  return { positions: pos, delta: cur - S };
}
