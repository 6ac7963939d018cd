import { LatteFlow } from './lib/index.ts';
import { examples } from './lib/shapes/world.ts';
import { questionKind } from './lib/shapes/evaluate.ts';
const lf = await LatteFlow.load(process.argv[2] ?? 'models/shapes', { backend: 'cpu', threads: 1 });
let n = 0;
for (const ex of examples(777, 0, 60)) {
  for (const [q, a] of ex.qa) {
    const k = questionKind(q);
    if (k !== 'shape' && k !== 'describe') continue;
    const got = await lf.answer({ image: { width: 64, height: 64, data: ex.image }, question: q, maxTokens: 24 });
    if (got.trim() !== a) console.log(`${k} | ${q} | want ${a} | got ${got} | caption: ${ex.caption}`);
    if (++n >= 40) break;
  }
  if (n >= 40) break;
}
await lf.dispose();
