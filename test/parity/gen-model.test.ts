// Parity of the engine's generation stream (native/model/generator.cc) and the TypeScript sampler
// (lib/sampler.ts) against the reference: prompt K/V from the engine's VLM, one expert group's
// velocity, routing over schedules, a 4-step Euler run with CFG and a 2-step Heun run.
import test from 'ava';
import { fileURLToPath } from 'node:url';
import { Engine, LatteError, openCheckpoint, Qwen2VL, type Tensor } from '../../lib/index.ts';
import { GenerationStream } from '../../lib/generator.ts';
import { eulerStep, groupOf, heunStep, timeSchedule, type StepFunction } from '../../lib/sampler.ts';
import { assertClose } from '../helpers/reference.ts';
import { BACKENDS, backendFor, backendTest, type BackendName } from '../helpers/cuda.ts';

const fixtures = fileURLToPath(new URL('../fixtures/', import.meta.url));
const PROMPT = 'a small red circle on the left';

async function setup(backend: BackendName = 'cpu') {
  const engine = new Engine({ backend: backendFor(backend), threads: 2 });
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

for (const backend of BACKENDS) {
  backendTest(backend, 'an expert group: velocity from the engine-encoded prompt equals the reference (fp32, 1e-4)', async (t) => {
    const s = await setup(backend);
    t.teardown(s.dispose);
    const fx = openCheckpoint(`${fixtures}gen_group.safetensors`);
    t.is((await s.engine.load(fx, 'in.t').readFloat32())[0], Math.fround(0.7)); // the fixture's t
    const group = ((await s.engine.load(fx, 'out.group').read()) as Int32Array)[0];
    t.is(s.gen.groupOf(0.7), group);
    const v = s.gen.velocity(s.engine.load(fx, 'in.x'), 0.7, group, s.cond, null, 1);
    assertClose(t, await v.readFloat32(), await s.engine.load(fx, 'out.v').readFloat32(), 1e-4, 'v');
  });
}

test('routing has one owner: GenerationStream maps t -> group (the sampler rule) -> its layers, and the engine runs those layers', async (t) => {
  const s = await setup();
  t.teardown(s.dispose);
  const { numGroups: K, numLayers: L, boundaries } = s.gen.config;
  for (const time of [0, 0.25, 0.5, 0.7, 0.999, 1]) t.is(s.gen.groupOf(time), groupOf(time, boundaries), `t = ${time}`);
  t.deepEqual(Array.from({ length: K }, (_, k) => s.gen.layersOf(k)), Array.from({ length: K }, (_, k) => [(k * L) / K, ((k + 1) * L) / K]));
  const x = s.engine.load(openCheckpoint(`${fixtures}gen_group.safetensors`), 'in.x');
  const k = s.gen.groupOf(0.7);
  const [first, last] = s.gen.layersOf(k);
  const byGroup = await s.gen.velocity(x, 0.7, k, s.cond, s.nul, 2).readFloat32();
  t.deepEqual(byGroup, await s.gen.velocityLayers(x, 0.7, first, last, s.cond, s.nul, 2).readFloat32());
  for (const bad of [-1, K, 0.5, Number.NaN]) t.is(t.throws(() => s.gen.velocity(x, 0.7, bad, s.cond, null, 1), { instanceOf: LatteError })?.code, 'E_ARG', `group ${bad}`);
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

for (const backend of BACKENDS) {
  backendTest(backend, 'sampling: 4 Euler steps with CFG (w = 2) and 2 Heun steps (w = 1) from the reference noise match step by step', async (t) => {
    const s = await setup(backend);
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
}

test("the reference's own prompt K/V, assigned to a sequence, give the same group velocity", async (t) => {
  const s = await setup();
  t.teardown(s.dispose);
  const fx = openCheckpoint(`${fixtures}gen_group.safetensors`);
  const L = s.gen.config.numLayers;
  const seq = s.vlm.newSequence();
  const ks = Array.from({ length: L }, (_, l) => s.engine.own(s.engine.load(fx, `in.prompt.${l}.k`)));
  const vs = Array.from({ length: L }, (_, l) => s.engine.own(s.engine.load(fx, `in.prompt.${l}.v`)));
  seq.assign(ks, vs);
  t.is(seq.length, s.engine.load(fx, 'in.prompt.0.k').shape[1]);
  const group = ((await s.engine.load(fx, 'out.group').read()) as Int32Array)[0];
  const v = s.gen.velocity(s.engine.load(fx, 'in.x'), 0.7, group, seq, null, 1);
  assertClose(t, await v.readFloat32(), await s.engine.load(fx, 'out.v').readFloat32(), 1e-4, 'v');
  t.is(t.throws(() => seq.assign([ks[0]], []))?.message.includes('one key and one value'), true);
});

for (const backend of BACKENDS) {
  backendTest(backend, 'end to end: generateImage equals the reference pipeline (latent 1e-4; pixels within 1 of the reference uint8)', async (t) => {
    const { LatteFlow } = await import('../../lib/index.ts');
    const lf = await LatteFlow.load(`${fixtures}tiny-model`, { backend: backendFor(backend), threads: 2 });
    t.teardown(() => lf.dispose());
    const fx = openCheckpoint(`${fixtures}pipeline.safetensors`);
    const cases = JSON.parse(fx.metadata().config).cases;
    for (const [name, c] of Object.entries(cases as Record<string, { prompt: string; seed: number; steps: number; sampler: 'euler' | 'heun'; guidance: number | number[]; shift: number }>)) {
      const [img] = await lf.generateImage({ prompt: c.prompt, seed: c.seed, steps: c.steps, sampler: c.sampler, guidance: c.guidance, shift: c.shift });
      const want = (await lf.engine.load(fx, `out.${name}`).read()) as Int32Array;
      t.is(img.data.length, want.length);
      const worst = img.data.reduce((m, x, i) => Math.max(m, Math.abs(x - want[i])), 0);
      const off = img.data.reduce((n, x, i) => n + (x !== want[i] ? 1 : 0), 0);
      t.true(worst <= 1 && off <= want.length / 50, `${name}: ${off} values differ, by up to ${worst}`);
    }
  });
}

for (const backend of BACKENDS) {
  backendTest(backend, 'programs: recorded group steps replay to exactly the eager numbers (Heun, CFG, every group), and release their memory', async (t) => {
    const s = await setup(backend);
    t.teardown(s.dispose);
    const e = s.engine;
    const g = s.gen.config;
    const steps = 8; // 8 Heun steps visit every group several times, two velocities per step
    const run = async () => {
      const made: Tensor[] = [];
      const keep = (x: Tensor) => (made.push(x), x);
      let x = keep(e.noise([2, g.latentChannels, ...g.latentSize], 11));
      const ts = timeSchedule(steps);
      const velocity = (xx: Tensor, tt: number) => keep(s.gen.velocity(xx, tt, groupOf(tt, g.boundaries), s.cond, s.nul, 2.5));
      for (let i = 0; i < steps; i++) {
        // Heun, spelled out so every tensor is disposed: v1 must survive the replay that makes v2
        const dt = Math.fround(ts[i + 1] - ts[i]);
        const v1 = velocity(x, ts[i]);
        const v2 = velocity(keep(e.axpby(1, x, dt, v1)), ts[i + 1]);
        x = keep(e.axpby(1, x, dt, keep(e.axpby(0.5, v1, 0.5, v2))));
      }
      const out = await x.readFloat32();
      for (const m of made) m.dispose();
      return out;
    };
    s.gen.usePrograms(false);
    const eager = await run();
    const before = e.stats();
    s.gen.usePrograms(true);
    const replayed = await run();
    const after = e.stats();
    t.deepEqual(replayed, eager);
    t.is(after.programsRecorded - before.programsRecorded, g.numGroups, 'one program per group');
    t.is(after.replays - before.replays, 2 * steps, 'every velocity a replay');
    if (e.backend.name === 'cuda') t.true(after.capturedLaunches > 0, 'later replays launch a captured graph');
    await e.fence();
    const held = e.stats().bytesInUse;
    s.gen.releasePrograms(s.cond, s.nul);
    await e.fence();
    t.true(e.stats().bytesInUse < held && e.stats().bytesInUse <= before.bytesInUse, 'released programs give their buffers back');
  });
}
