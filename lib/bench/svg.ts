/**
 * The ratio chart: one horizontal bar per comparison (a measure against a baseline or a peer), on a
 * log2 axis centred on a 1.0x line, so 2x faster and 2x slower are the same length either side. Bars to
 * the right: the other side took longer (ours is faster). Hand-written SVG: no dependency, readable as
 * text, and each bar carries data-measure / data-vs for tools and tests.
 */
import type { MeasureResult } from './types.js';

export interface Bar {
  measure: string;
  backend: string;
  vs: string;
  ratio: number;
}

export function ratioBars(results: MeasureResult[]): Bar[] {
  return results.flatMap((r) => r.sides.filter((s) => s.ratio !== undefined && Number.isFinite(s.ratio) && s.ratio > 0).map((s) => ({ measure: r.id, backend: r.backend, vs: s.name, ratio: s.ratio! })));
}

const esc = (s: string): string => s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;').replace(/"/g, '&quot;');

export function ratioChart(bars: Bar[], subtitle: string): string {
  const W = 760;
  const labelW = 300;
  const rowH = 26;
  const top = 64;
  const plotW = W - labelW - 70;
  // the axis spans the largest |log2 ratio|, at least 2x either way
  const span = Math.max(1, ...bars.map((b) => Math.ceil(Math.abs(Math.log2(b.ratio)))));
  const x = (ratio: number): number => labelW + plotW / 2 + (Math.max(-span, Math.min(span, Math.log2(ratio))) / span) * (plotW / 2);
  const H = top + Math.max(1, bars.length) * rowH + 46;
  const out: string[] = [];
  out.push(`<svg xmlns="http://www.w3.org/2000/svg" width="${W}" height="${H}" viewBox="0 0 ${W} ${H}" font-family="sans-serif" font-size="12">`);
  out.push(`<rect x="0" y="0" width="${W}" height="${H}" fill="#ffffff"/>`);
  out.push(`<text x="12" y="22" font-size="15" font-weight="bold">latte-flow bench: how much longer the other side takes (median / ours)</text>`);
  out.push(`<text x="12" y="42" fill="#555555">${esc(subtitle)}</text>`);
  // gridlines at powers of two
  for (let p = -span; p <= span; p++) {
    const gx = x(2 ** p).toFixed(1);
    out.push(`<line x1="${gx}" y1="${top - 6}" x2="${gx}" y2="${H - 36}" stroke="${p === 0 ? '#222222' : '#dddddd'}" stroke-width="${p === 0 ? 1.5 : 1}"/>`);
    out.push(`<text x="${gx}" y="${H - 20}" text-anchor="middle" fill="#333333">${2 ** p >= 1 ? 2 ** p : `1/${2 ** -p}`}x</text>`);
  }
  bars.forEach((b, i) => {
    const y = top + i * rowH;
    const x0 = x(1);
    const x1 = x(b.ratio);
    const faster = b.ratio >= 1;
    out.push(`<text x="${labelW - 8}" y="${y + rowH / 2 + 4}" text-anchor="end">${esc(`${b.measure} (${b.backend}) vs ${b.vs}`)}</text>`);
    out.push(
      `<rect class="bar" data-measure="${esc(b.measure)}" data-backend="${esc(b.backend)}" data-vs="${esc(b.vs)}" data-ratio="${b.ratio.toFixed(4)}" x="${Math.min(x0, x1).toFixed(1)}" y="${y + 4}" width="${Math.max(1, Math.abs(x1 - x0)).toFixed(1)}" height="${rowH - 8}" fill="${faster ? '#2e8b57' : '#d2691e'}"/>`,
    );
    out.push(`<text x="${(faster ? Math.max(x0, x1) + 4 : Math.min(x0, x1) - 4).toFixed(1)}" y="${y + rowH / 2 + 4}" text-anchor="${faster ? 'start' : 'end'}">${b.ratio.toFixed(2)}x</text>`);
  });
  if (bars.length === 0) out.push(`<text x="${labelW}" y="${top + 16}" fill="#555555">no comparisons ran (no baseline or peer for the measures chosen)</text>`);
  out.push(`<text x="${W - 12}" y="${H - 4}" text-anchor="end" fill="#777777" font-size="10">right of 1x: ours faster; left: ours slower (log scale)</text>`);
  out.push('</svg>');
  return out.join('\n') + '\n';
}
