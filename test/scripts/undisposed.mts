// An engine that is never disposed must not keep the process alive or crash it at exit.
import { Engine } from '../../lib/index.ts';
const e = new Engine({ backend: 'cpu', threads: 2 });
const x = e.tensor(new Float32Array([1, 2, 3]), [3]);
const y = await e.silu(x).readFloat32();
for (let i = 0; i < 100; i++) e.add(x, x); // still queued at exit
console.log(`ok ${y.length}`);
