import { Engine } from '../../lib/index.ts';

/** A CPU engine for a test; the caller disposes it (t.teardown). */
export function cpuEngine(threads = 2): Engine {
  return new Engine({ backend: 'cpu', threads });
}
