/**
 * CUDA test plumbing: a CUDA test runs when getBackendInfo() reports a usable device, is reported as
 * SKIPPED (with the reason in its title) when there is none, and FAILS when LATTE_REQUIRE_CUDA=1
 * (npm run test:gpu sets it: on the GPU machine a missing device is an error, not a skip).
 *
 * LATTE_CUDA_DRY_RUN=1 checks the tests themselves on a machine without a GPU: every "CUDA" engine
 * is then a CPU engine and the tests run as `cuda(dry run on cpu): ...`. It proves the references,
 * tolerances and plumbing, nothing about the CUDA kernels.
 */
import test, { type ExecutionContext } from 'ava';
import { Engine, getBackendInfo, type Tensor } from '../../lib/index.ts';
import { maxAbs, maxAbsDiff, worstDiff } from './reference.ts';

const info = getBackendInfo();
export const cudaAvailable = info.cuda.available;
export const cudaRequired = process.env.LATTE_REQUIRE_CUDA === '1';
export const cudaReason = info.cuda.reason;
export const cudaDryRun = process.env.LATTE_CUDA_DRY_RUN === '1' && !info.cuda.available;

type Body = (t: ExecutionContext) => Promise<void> | void;

/** A test titled `cuda: <title>` that needs a usable CUDA device. */
export function cudaTest(title: string, body: Body): void {
  if (cudaAvailable) test(`cuda: ${title}`, body);
  else if (cudaDryRun) test(`cuda(dry run on cpu): ${title}`, body);
  else if (cudaRequired) test(`cuda: ${title}`, (t) => t.fail(`LATTE_REQUIRE_CUDA=1 but CUDA is not usable: ${cudaReason}`));
  else test.skip(`cuda: ${title} [skipped: CUDA not usable: ${cudaReason}]`, body);
}

export type BackendName = 'cpu' | 'cuda';
export const BACKENDS: readonly BackendName[] = ['cpu', 'cuda'];

/** `title` on the CPU (unchanged) and as a CUDA test (see cudaTest): for parity tests per backend. */
export function backendTest(backend: BackendName, title: string, body: Body): void {
  if (backend === 'cpu') test(title, body);
  else cudaTest(title, body);
}

export function cudaEngine(): Engine {
  return new Engine({ backend: cudaDryRun ? 'cpu' : 'cuda', threads: 2 });
}

/** The same op on a CPU and a CUDA engine from the same host data: [cpu, cuda] results. */
export class Pair {
  readonly cpu = new Engine({ backend: 'cpu', threads: 2 });
  readonly cuda = cudaEngine();
  async dispose(): Promise<void> {
    await this.cpu.dispose();
    await this.cuda.dispose();
  }
  /** runs `f` on both engines and reads the first output as f32 (or the raw host array) */
  async run(f: (e: Engine) => Tensor): Promise<[Float32Array, Float32Array]> {
    const a = f(this.cpu);
    const b = f(this.cuda);
    return [await a.readFloat32(), await b.readFloat32()];
  }
  async raw(f: (e: Engine) => Tensor): Promise<[ArrayLike<number>, ArrayLike<number>]> {
    const a = f(this.cpu);
    const b = f(this.cuda);
    return [(await a.read()) as ArrayLike<number>, (await b.read()) as ArrayLike<number>];
  }
}

/**
 * Tolerance relative to a same-precision baseline: |cuda - ref| <= k |base - ref| + floor max|ref|,
 * where `base` is an f32 computation of the same thing (the CPU backend, or a float32 loop) and
 * `ref` a float64 reference. The floor covers the few-ulp rounding of an exact-looking baseline.
 */
export function assertBaseline(t: ExecutionContext, got: ArrayLike<number>, base: ArrayLike<number>, ref: ArrayLike<number>, label: string, k = 4, floor = 2e-6): void {
  t.is(got.length, ref.length, `${label}: length`);
  const bound = k * maxAbsDiff(base, ref) + floor * maxAbs(ref);
  const { worst, at } = worstDiff(got, ref);
  t.true(worst <= bound, `${label}: max error ${worst} at ${at} (got ${got[at]}, want ${ref[at]}) exceeds ${bound} (${k} x the f32 baseline's ${maxAbsDiff(base, ref)} + ${floor} x ${maxAbs(ref)})`);
}

/** Bit-for-bit equality of two arrays (NaN equals NaN), naming the first difference. */
export function assertSame(t: ExecutionContext, got: ArrayLike<number>, want: ArrayLike<number>, label: string): void {
  t.is(got.length, want.length, `${label}: length`);
  for (let i = 0; i < want.length; i++) {
    if (!Object.is(got[i], want[i]) && !(Number.isNaN(got[i]) && Number.isNaN(want[i]))) {
      t.fail(`${label}: first difference at ${i}: got ${got[i]}, want ${want[i]}`);
      return;
    }
  }
  t.pass();
}

/** An engine on `backend` (2 CPU threads), for tests parametrized by backend. */
export function engineOn(backend: BackendName): Engine {
  return backend === 'cuda' ? cudaEngine() : new Engine({ backend, threads: 2 });
}

/** The backend to ask for in load options (the dry run maps 'cuda' to the CPU). */
export function backendFor(backend: BackendName): BackendName {
  return backend === 'cuda' && cudaDryRun ? 'cpu' : backend;
}

/** Attention outputs: finite entries within assertBaseline's bound; masked (-inf) entries exactly -inf. */
export function compareAttention(t: ExecutionContext, got: Float32Array, base: ArrayLike<number>, ref: Float64Array, label: string): void {
  const fin: number[] = [];
  for (let i = 0; i < ref.length; i++) {
    if (ref[i] === -Infinity) {
      if (got[i] !== -Infinity) return void t.fail(`${label}: masked entry ${i} is ${got[i]}, not -inf`);
    } else fin.push(i);
  }
  assertBaseline(t, fin.map((i) => got[i]), fin.map((i) => base[i]), fin.map((i) => ref[i]), label);
}
