/**
 * The flow ODE sampler (docs/model.md section 4; tools/reference/latte_ref/flow.py), as TypeScript over
 * the engine's stream: x_t = t x1 + (1 - t) x0 from noise at t = 0 to data at t = 1. A step only
 * enqueues native ops (the guided velocity of the expert group that owns its time, and axpby
 * updates), so latents never leave the engine.
 *
 * Schedule: t_i = shift(i / steps) in float64, with the SD3 time shift acting on sigma = 1 - t
 * (sigma' = s sigma / (1 + (s - 1) sigma)); step i uses dt = float32(t_{i+1} - t_i).
 * Routing: group k owns [b_k, b_{k+1}) of the boundaries; the last group also owns t = 1.
 */
import { describe, ensure } from './errors.js';
import type { Engine } from './engine.js';
import type { Tensor } from './tensor.js';

/** The guided velocity at time t (routing and CFG included): enqueues and returns v like x. */
export type VelocityFn = (x: Tensor, t: number) => Tensor;

export interface StepContext {
  engine: Engine;
  x: Tensor;
  t0: number;
  t1: number;
  /** float32(t1 - t0), as the reference computes it */
  dt: number;
  step: number;
  velocity: VelocityFn;
}

/** One integration step from t0 to t1: returns the new latent (enqueued, not computed yet). */
export type StepFunction = (ctx: StepContext) => Tensor;

/**
 * A built-in sampler written once, as a generator: it yields each velocity it needs as [x, t] and
 * receives v, then returns the next latent. Driven synchronously it is a StepFunction (eulerStep,
 * heunStep); driven asynchronously the scheduler batches concurrent requests' evaluations.
 */
export type SamplerProgram = (ctx: Omit<StepContext, 'velocity'>) => Generator<[Tensor, number], Tensor, Tensor>;

/** x + dt v(x, t0) */
export function* eulerProgram({ engine, x, t0, dt }: Omit<StepContext, 'velocity'>): Generator<[Tensor, number], Tensor, Tensor> {
  const v = yield [x, t0];
  return engine.axpby(1, x, dt, v);
}

/** Heun: v1 = v(x, t0), v2 = v(x + dt v1, t1), x + dt (v1 + v2) / 2 (every step, the last included). */
export function* heunProgram({ engine, x, t0, t1, dt }: Omit<StepContext, 'velocity'>): Generator<[Tensor, number], Tensor, Tensor> {
  const v1 = yield [x, t0];
  const v2 = yield [engine.axpby(1, x, dt, v1), t1];
  return engine.axpby(1, x, dt, engine.axpby(0.5, v1, 0.5, v2));
}

/** A sampler program driven by a synchronous velocity: a StepFunction. */
export function stepFunction(program: SamplerProgram): StepFunction {
  return (ctx) => {
    const it = program(ctx);
    let r = it.next();
    while (!r.done) r = it.next(ctx.velocity(r.value[0], r.value[1]));
    return r.value;
  };
}

export const eulerStep: StepFunction = stepFunction(eulerProgram);
export const heunStep: StepFunction = stepFunction(heunProgram);

export const SAMPLER_PROGRAMS: Record<'euler' | 'heun', SamplerProgram> = { euler: eulerProgram, heun: heunProgram };
export const STEP_FUNCTIONS: Record<'euler' | 'heun', StepFunction> = { euler: eulerStep, heun: heunStep };

export function shiftTime(t: number, shift: number): number {
  if (shift === 1) return t;
  const sigma = 1 - t;
  return 1 - (shift * sigma) / (1 + (shift - 1) * sigma);
}

/** steps + 1 times from 0 to 1. */
export function timeSchedule(steps: number, shift = 1): number[] {
  ensure(Number.isInteger(steps) && steps >= 1, `steps must be an integer >= 1, got ${describe(steps)}`);
  ensure(Number.isFinite(shift) && shift > 0, `shift must be a finite number > 0, got ${describe(shift)}`);
  return Array.from({ length: steps + 1 }, (_, i) => shiftTime(i / steps, shift));
}

/** The most integration steps one request may take (a schedule lists at most MAX_STEPS + 1 times). */
export const MAX_STEPS = 10_000;

/** A user schedule must start at 0, end at 1 and increase; at most MAX_STEPS steps. */
export function checkSchedule(ts: readonly number[]): number[] {
  ensure(Array.isArray(ts) && ts.length >= 2, 'schedule must list at least two times');
  // the same cap as steps: a long schedule is as many steps
  ensure(ts.length - 1 <= MAX_STEPS, `schedule has ${ts.length - 1} steps; at most ${MAX_STEPS} are allowed`);
  ensure(ts.every((t) => typeof t === 'number' && Number.isFinite(t)), 'schedule times must be finite numbers');
  ensure(ts[0] === 0 && ts[ts.length - 1] === 1, 'schedule must start at 0 and end at 1');
  ensure(ts.every((t, i) => i === 0 || t > ts[i - 1]), 'schedule times must increase');
  return [...ts];
}

/** The expert group that owns time t (float64 comparisons, as the reference). */
export function groupOf(t: number, boundaries: readonly number[]): number {
  const K = boundaries.length - 1;
  let k = 0;
  while (k + 1 < K && t >= boundaries[k + 1]) k++;
  return k;
}
