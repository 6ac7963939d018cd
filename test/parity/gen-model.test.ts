// Parity of the engine's generation stream (native/model/generator.cc) and the TypeScript sampler
// (lib/sampler.ts) against the reference: prompt K/V from the engine's VLM, one expert group's
// velocity, routing over schedules, a 4-step Euler run with CFG and a 2-step Heun run.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { Engine, openCheckpoint, Qwen2VL, type Tensor } from '../../lib/index.ts';
import { GenerationStream } from '../../lib/generator.ts';
import { eulerStep, groupOf, heunStep, timeSchedule, type StepFunction } from '../../lib/sampler.ts';
import { assertClose } from '../helpers/reference.ts';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
const PROMPT = 'a small red circle on the left';

async function setup() {
  const engine = new Engine({ backend: 'cpu', threads: 2 });
  const vlm = await Qwen2VL.load(`${fixtures}tiny-model/vlm`, { engine });
  const gen = GenerationStream.load(`${fixtures}tiny-model/generator`, engine);
  const encode = (text: string) => vlm.encodePrompt(Int32Array.from(vlm.tokenizer.encode(gen.config.promptTemplate.replace('{prompt}', text))), gen.config.numLayers);
  const dispose = async () => {
    gen.dispose();
    await vlm.dispose();
    await engine.dispose();
  };
  return { engine, vlm, gen, cond: encode(PROMPT), nul: encode(gen.config.nullPrompt), dispose };
}

test('an expert group: velocity from the engine-encoded prompt equals the reference (fp32, 1e-4)', async (t) => {
  const s = await setup();
  t.teardown(s.dispose);
  const fx = openCheckpoint(`${fixtures}gen_group.safetensors`);
  t.is((await s.engine.load(fx, 'in.t').readFloat32())[0], Math.fround(0.7)); // the fixture's t
  const group = ((await s.engine.load(fx, 'out.group').read()) as Int32Array)[0];
  t.is(groupOf(0.7, s.gen.config.boundaries), group);
  const v = s.gen.velocity(s.engine.load(fx, 'in.x'), 0.7, group, s.cond, null, 1);
  assertClose(t, await v.readFloat32(), await s.engine.load(fx, 'out.v').readFloat32(), 1e-4, 'v');
});

test('routing: schedules (with time shift, explicit boundaries) pick the reference groups', async (t) => {
  const e = new Engine({ backend: 'cpu', threads: 1 });
  t.teardown(() => e.dispose());
  const fx = openCheckpoint(`${fixtures}gen_routing.safetensors`);
  const meta = JSON.parse(fx.metadata().config);
  for (const [name, [steps, shift, bounds]] of Object.entries(meta.cases as Record<string, [number, number, number[] | null]>)) {
    const ts = timeSchedule(steps, shift);
    t.deepEqual(Array.from(Float32Array.from(ts)), Array.from(await e.load(fx, `out.${name}.t`).readFloat32()), `${name} times`);
    const K = meta.num_groups;
    const b = bounds ?? Array.from({ length: K + 1 }, (_, k) => k / K);
    t.deepEqual(ts.slice(0, -1).map((x) => groupOf(x, b)), Array.from((await e.load(fx, `out.${name}.group`).read()) as Int32Array), `${name} groups`);
  }
});

test('sampling: 4 Euler steps with CFG (w = 2) and 2 Heun steps (w = 1) from the reference noise match step by step', async (t) => {
  const s = await setup();
  t.teardown(s.dispose);
  const fx = openCheckpoint(`${fixtures}gen_sample.safetensors`);
  const meta = JSON.parse(fx.metadata().config);
  const e = s.engine;
  const run = async (stepFn: StepFunction, steps: number, w: number, check?: (i: number, x: Tensor) => Promise<void>) => {
    let x = e.noise([1, s.gen.config.latentChannels, ...s.gen.config.latentSize], meta.seed);
    const ts = timeSchedule(steps);
    const velocity = (xx: Tensor, tt: number) => s.gen.velocity(xx, tt, groupOf(tt, s.gen.config.boundaries), s.cond, w === 1 ? null : s.nul, w);
    for (let i = 0; i < steps; i++) {
      x = stepFn({ engine: e, x, t0: ts[i], t1: ts[i + 1], dt: Math.fround(ts[i + 1] - ts[i]), step: i, velocity });
      await check?.(i, x);
    }
    return x;
  };
  const ref = (n: string) => e.load(fx, n).readFloat32();
  const x = await run(eulerStep, meta.euler.steps, meta.euler.guidance, async (i, xi) => assertClose(t, await xi.readFloat32(), await ref(`out.euler.step${i}.x`), 1e-4, `euler step ${i}`));
  assertClose(t, await x.readFloat32(), await ref('out.euler.x'), 1e-4, 'euler final');
  const xh = await run(heunStep, meta.heun.steps, meta.heun.guidance);
  assertClose(t, await xh.readFloat32(), await ref('out.heun.x'), 1e-4, 'heun final');
});
