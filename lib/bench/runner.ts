/**
 * Runs the measures: for each measure and backend, sets up our side, its baselines and the peers that
 * can run it, warms each up, then runs N repetitions in which the sides alternate (the order rotates
 * each repetition, so drift on a shared machine falls on every side alike). Records every sample; min
 * and median per side, and each other side's median over ours. Never judges a time: a side that fails
 * is recorded with its error and the run goes on. Each sample starts after a short quiet gap: other
 * runtimes' thread pools spin for tens of ms after a call (onnxruntime ~50 ms, OpenMP a few ms), and on
 * a 2-core machine that spinning halved the speed of whichever side ran next.
 */
import type { BenchBackend, BenchContext, Measure, MeasureResult, Peer, SideResult, Timed } from './types.js';
import { median, nowMs } from './stats.js';

export interface RunPlan {
  measures: Measure[];
  backends: BenchBackend[];
  peers: Peer[];
}

const fmtEta = (s: number): string => (s >= 90 ? `${Math.round(s / 60)} min` : `${Math.max(1, Math.round(s))} s`);
/** The gap before each sample (see above): measured on 2 cores, 50 ms of spinning, so three times that. */
const QUIET_MS = 150;
const quiet = () => new Promise<void>((resolve) => setTimeout(resolve, QUIET_MS));
const errText = (e: unknown): string => (e instanceof Error ? e.message : String(e)).split('\n')[0];

export async function runMeasures(ctx: BenchContext, plan: RunPlan): Promise<MeasureResult[]> {
  const jobs = plan.measures.flatMap((m) => plan.backends.filter((b) => m.backends.includes(b)).map((b) => ({ m, b })));
  const results: MeasureResult[] = [];
  const t0 = nowMs();
  const { reps, warmup } = ctx.options;
  for (const [i, { m, b }] of jobs.entries()) {
    const label = `[${i + 1}/${jobs.length}] ${m.id} (${b})`;
    let rep = 0;
    const eta = () => {
      // the time so far over the share of repetitions done: crude, but it tells minutes from hours
      const done = (i + rep / (reps + 1)) / jobs.length;
      return done > 0 ? `, about ${fmtEta(((nowMs() - t0) / 1e3) * (1 / done - 1))} left` : '';
    };
    ctx.log(`${label}: setting up${eta()}`);
    const started = nowMs();
    const sides: { result: SideResult; timed?: Timed }[] = [];
    const add = async (name: string, kind: SideResult['kind'], setup: () => Promise<Timed>) => {
      const result: SideResult = { name, kind, samples: [] };
      try {
        const timed = await setup();
        result.note = timed.note;
        sides.push({ result, timed });
      } catch (e) {
        result.error = errText(e);
        sides.push({ result });
      }
    };
    await add('ours', 'ours', () => m.setup(ctx, b));
    for (const [name, setup] of Object.entries(m.baselines ?? {})) await add(name, 'baseline', () => setup(ctx, b));
    // peers run on the CPU pass only (they are CPU runtimes here): on CUDA ours stands alone
    if (b === 'cpu') for (const p of plan.peers) if (p.status.available && m.peers?.includes(p.id)) await add(p.title, 'peer', () => p.prepare(m, ctx));
    const live = sides.filter((s) => s.timed);
    const once = async (s: (typeof live)[number]) => {
      await quiet();
      try {
        s.result.samples.push(await s.timed!.run());
      } catch (e) {
        s.result.error = errText(e);
        s.timed = undefined;
      }
    };
    for (let w = 0; w < warmup; w++) for (const s of live) if (s.timed) await once(s);
    for (const s of live) s.result.samples.length = 0; // warm-up runs are not samples
    for (let r = 0; r < reps; r++) {
      rep = r + 1;
      ctx.log(`${label}: repetition ${r + 1}/${reps}${eta()}`);
      for (let k = 0; k < live.length; k++) {
        const s = live[(k + r) % live.length];
        if (s.timed) await once(s);
      }
    }
    for (const s of sides) await s.timed?.teardown().catch(() => undefined);
    const ours = sides[0].result;
    for (const { result } of sides) {
      if (result.samples.length === 0) continue;
      result.min = Math.min(...result.samples);
      result.median = median(result.samples);
    }
    for (const { result } of sides.slice(1)) if (result.median !== undefined && ours.median) result.ratio = result.median / ours.median;
    results.push({ id: m.id, title: m.title, what: m.what, unit: m.unit, backend: b, peers: m.peers ?? [], sides: sides.map((s) => s.result), seconds: (nowMs() - started) / 1e3 });
  }
  return results;
}
