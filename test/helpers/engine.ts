import { Engine, getBackendInfo } from '../../lib/index.ts';

/** A CPU engine for a test; the caller disposes it (t.teardown). */
export function cpuEngine(threads = 2): Engine {
  return new Engine({ backend: 'cpu', threads });
}

/**
 * Whether the CPU backend's bf16 GEMM also rounds activations to bf16: oneDNN takes its native bf16
 * kernels on AMX and on AVX512-BF16 (e.g. Zen 4), so products are then bf16-precise, not f32-tight.
 */
export function cpuRoundsBf16Activations(): boolean {
  const c = getBackendInfo().cpu;
  return c.amxPermitted || c.avx512bf16;
}
