// M-RoPE positions (lib/positions.ts) against the reference's get_rope_index (tools/reference/latte_ref/rope.py).
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { LatteError, openCheckpoint } from '../lib/index.ts';
import { ropePositions } from '../lib/positions.ts';
import { cpuEngine } from './helpers/engine.ts';

const fixture = fileURLToPath(new URL('./fixtures/vlm_logits.safetensors', import.meta.url));
const cfg = { imageTokenId: 301, visionStartTokenId: 299, mergeSize: 2 };
const rows = (p: Int32Array) => [0, 1, 2].map((a) => Array.from(p.subarray((a * p.length) / 3, ((a + 1) * p.length) / 3)));

test('positions and delta equal the fixture', async (t) => {
  const ck = openCheckpoint(fixture);
  const c = JSON.parse(ck.metadata().config);
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const read = async (name: string) => Array.from((await e.load(ck, name).read()) as ArrayLike<number>, Number);
  const ids = await read('in.input_ids');
  const g = await read('in.grid_thw');
  const grids = Array.from({ length: g.length / 3 }, (_, k) => [g[3 * k], g[3 * k + 1], g[3 * k + 2]] as const);
  const { positions, delta } = ropePositions(ids, grids, {
    imageTokenId: c.image_token_id,
    visionStartTokenId: c.vision_start_token_id,
    mergeSize: c.vision_config.spatial_merge_size,
  });
  t.true(ids.includes(c.image_token_id));
  t.deepEqual(Array.from(positions), await read('out.position_ids'));
  t.deepEqual([delta], await read('out.rope_delta'));
});

test('text only: 0..S-1 on all axes, delta 0', (t) => {
  const { positions, delta } = ropePositions([5, 6, 7, 8], [], cfg);
  t.deepEqual(rows(positions), [[0, 1, 2, 3], [0, 1, 2, 3], [0, 1, 2, 3]]);
  t.is(delta, 0);
  t.deepEqual(ropePositions([], [], cfg), { positions: new Int32Array(0), delta: 0 });
});

test('two images with different grids and text between', (t) => {
  // Expected from the reference, run once with Debian's /usr/bin/python3 (torch 1.13) in tools/reference:
  //   get_rope_index(torch.tensor(ids), torch.tensor([[1,4,6],[2,2,4]]),
  //                  SimpleNamespace(image_token_id=301, vision=SimpleNamespace(spatial_merge_size=2)))
  const ids = [5, 299, ...Array(6).fill(301), 300, 7, 8, 299, ...Array(4).fill(301), 300, 9];
  const { positions, delta } = ropePositions(ids, [[1, 4, 6], [2, 2, 4]], cfg);
  t.deepEqual(rows(positions), [
    [0, 1, 2, 2, 2, 2, 2, 2, 5, 6, 7, 8, 9, 9, 10, 10, 11, 12],
    [0, 1, 2, 2, 2, 3, 3, 3, 5, 6, 7, 8, 9, 9, 9, 9, 11, 12],
    [0, 1, 2, 3, 4, 2, 3, 4, 5, 6, 7, 8, 9, 10, 9, 10, 11, 12],
  ]);
  t.is(delta, -5);
});

test('mismatched grids and wrong-size image blocks are E_ARG', (t) => {
  const ids = [5, 299, 301, 301, 301, 301, 300];
  const code = (f: () => unknown) => t.throws(f, { instanceOf: LatteError })?.code;
  t.is(code(() => ropePositions(ids, [], cfg)), 'E_ARG'); // an image block, no grid
  t.is(code(() => ropePositions(ids, [[1, 4, 4], [1, 2, 2]], cfg)), 'E_ARG'); // one block, two grids
  t.is(code(() => ropePositions(ids, [[1, 4, 6]], cfg)), 'E_ARG'); // 4 tokens, grid needs 6
  t.is(code(() => ropePositions(ids, [[1, 2, 2]], cfg)), 'E_ARG'); // 4 tokens, grid needs 1
  t.is(code(() => ropePositions(ids, [[1, 3, 4]], cfg)), 'E_ARG'); // grid not a multiple of the merge size
  t.is(code(() => ropePositions([5, 301, 301, 301, 301], [[1, 4, 4]], cfg)), 'E_ARG'); // no <|vision_start|>
  t.notThrows(() => ropePositions(ids, [[1, 4, 4]], cfg));
});
