/**
 * The README's example prompts as people type them: capitalised, and with a final full stop, on seeds
 * 0-3 at the model's defaults; prints how many ShapesEval accepts (issue 17's check; for the shipped
 * model, test/shipped-wording.test.ts holds it to the target).
 *   THREADS=1 node --import=tsx tools/shapes/readme-wording.ts [model dir]
 */
import { LatteFlow } from '../../lib/index.ts';
import { scorePrompt, type EvalPrompt } from '../../lib/shapes/detect.ts';

export const README_PROMPTS: EvalPrompt[] = [
  { caption: 'a red circle to the left of a blue square', kind: 'two', objects: [{ shape: 'circle', colour: 'red' }, { shape: 'square', colour: 'blue' }], relation: 'to the left of' },
  { caption: 'a large green triangle on the left', kind: 'one', objects: [{ shape: 'triangle', colour: 'green', size: 'large', place: 'left' }] },
  { caption: 'a small yellow square in the center', kind: 'one', objects: [{ shape: 'square', colour: 'yellow', size: 'small', place: 'center' }] },
  { caption: 'a purple circle above a yellow triangle', kind: 'two', objects: [{ shape: 'circle', colour: 'purple' }, { shape: 'triangle', colour: 'yellow' }], relation: 'above' },
];

/** The three ways of saying a README prompt: as written, capitalised, with a final full stop. */
export const surfaces = (c: string) => ({ written: c, capitalised: c[0].toUpperCase() + c.slice(1), 'full stop': `${c}.` });

/** What ShapesEval checks of a README picture: the one object's shape, colour and place, or the relation. */
export const accepted = (p: EvalPrompt, data: Uint8Array) => {
  const s = scorePrompt(p, data);
  return p.kind === 'two' ? s.relation === true : s.single === true && s.colour === true && s.position === true;
};

if (import.meta.url === `file://${process.argv[1]}`) {
  const lf = await LatteFlow.load(process.argv[2] ?? 'models/shapes', { backend: 'cpu', threads: Number(process.env.THREADS ?? 2) });
  for (const p of README_PROMPTS) {
    const row: string[] = [];
    for (const [name, caption] of Object.entries(surfaces(p.caption))) {
      let ok = 0;
      for (let seed = 0; seed < 4; seed++) if (accepted(p, (await lf.generateImage({ prompt: caption, seed }))[0].data)) ok++;
      row.push(`${name} ${ok}/4`);
    }
    console.log(`${p.caption}: ${row.join(', ')}`);
  }
  lf.dispose();
}
