// The `latte-flow eval` table: ShapesEval and VQA per category, template and held-out wording side by
// side, with the targets of the shipped model (issue 17's).
import type { ShapesEvalReport, VqaReport } from './evaluate.js';
import { QUESTION_FAMILIES } from './language.js';

const f = (v: number | undefined) => (v === undefined || Number.isNaN(v) ? '–' : v.toFixed(3));
const frac = (k?: { right: number; questions: number }) => (k && k.questions > 0 ? `${k.right}/${k.questions}` : '–');

export function evalTable(se: { template: ShapesEvalReport; heldout: ShapesEvalReport; bare: ShapesEvalReport }, vqa: { template: VqaReport; heldout: VqaReport }): string {
  const { template: t, heldout: h, bare: b } = se;
  const rows: string[] = ['| ShapesEval | template | held-out | bare prompt | target |', '|---|---|---|---|---|'];
  const cat = (name: string, key: 'single' | 'colour' | 'position' | 'count' | 'relation' | 'overall', target: string) => rows.push(`| ${name} | ${f(t[key])} | ${f(h[key])} | ${key === 'position' || key === 'relation' ? '–' : f(b[key])} | ${target} |`);
  cat('single object', 'single', '');
  cat('colour', 'colour', '');
  cat('position', 'position', '');
  cat('count', 'count', '');
  cat('two-object relation', 'relation', '>= 0.85');
  cat('overall', 'overall', '>= 0.93 / >= 0.90 / bare >= 0.90');
  rows.push('', '| VQA (exact match) | template | held-out | target |', '|---|---|---|---|');
  for (const fam of QUESTION_FAMILIES) {
    if (!vqa.template.byKind[fam] && !vqa.heldout.byKind[fam]) continue;
    rows.push(`| ${fam} | ${frac(vqa.template.byKind[fam])} | ${frac(vqa.heldout.byKind[fam])} | |`);
  }
  rows.push(`| blank image | ${frac(vqa.template.blank)} | ${frac(vqa.heldout.blank)} | |`);
  rows.push(`| accuracy (rendered images) | ${f(vqa.template.accuracy)} | ${f(vqa.heldout.accuracy)} | >= 0.90 / >= 0.85 |`);
  rows.push(`| of which the converse caption of two shapes | ${vqa.template.converse} | ${vqa.heldout.converse} | |`);
  rows.push('', `ShapesEval: ${t.prompts} + ${h.prompts} + ${b.prompts} prompts, ${t.secondsPerImage.toFixed(3)} s/image; VQA: ${vqa.template.questions} + ${vqa.heldout.questions} questions, ${vqa.template.secondsPerAnswer.toFixed(3)} s/answer`);
  const misses = [...vqa.template.misses, ...vqa.heldout.misses].slice(0, 6);
  if (misses.length > 0) rows.push(`some misses: ${misses.map((m) => `"${m.question}" -> "${m.answer}" (want "${m.expected}")`).join('; ')}`);
  return rows.join('\n');
}
