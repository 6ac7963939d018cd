/**
 * The run's outputs: bench-report.json (everything: machine, options, peers, every sample),
 * bench-report.md (a table a person reads, the chart, what each measure times), bench-ratios.svg and the
 * summary printed to stdout. Figures are reported, never judged.
 */
import fs from 'node:fs';
import path from 'node:path';
import type { MachineInfo } from './machine.js';
import { ratioBars, ratioChart } from './svg.js';
import type { BenchOptions, MeasureResult, Peer } from './types.js';

export interface Report {
  tool: 'latte-flow bench';
  version: string;
  date: string;
  machine: MachineInfo & { cpuFlags: Record<string, boolean>; cuda: string; otherLoadCores?: number };
  options: BenchOptions & { backends: string[]; filter?: string; gguf?: string };
  peers: { id: string; title: string; available: boolean; version?: string; reason?: string; install?: string }[];
  results: MeasureResult[];
  seconds: number;
}

export const fmtMs = (v: number | undefined): string => (v === undefined ? '-' : v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v >= 1 ? v.toFixed(2) : v.toFixed(3));

export function peerSummary(peers: Peer[]): Report['peers'] {
  return peers.map((p) => (p.status.available ? { id: p.id, title: p.title, available: true, version: p.status.version } : { id: p.id, title: p.title, available: false, reason: p.status.reason, install: p.status.install }));
}

/** The column names after ours: every baseline and peer seen, in first-seen order. */
function others(results: MeasureResult[]): string[] {
  const names: string[] = [];
  for (const r of results) for (const s of r.sides.slice(1)) if (!names.includes(s.name)) names.push(s.name);
  return names;
}

function cell(r: MeasureResult, name: string, report: Report): string {
  const s = r.sides.find((x) => x.name === name);
  if (!s) {
    // a peer this measure could use that is absent here says so; otherwise the cell is empty
    const p = report.peers.find((x) => x.title === name);
    return p && !p.available && peerApplies(r, p.id) ? 'not installed' : '';
  }
  if (s.median === undefined) return `failed: ${s.error ?? 'no samples'}`;
  return `${fmtMs(s.min)} / ${fmtMs(s.median)} (**${s.ratio!.toFixed(2)}x**)${s.error ? ` (then failed: ${s.error})` : ''}`;
}

const peerApplies = (r: MeasureResult, peer: string): boolean => r.backend === 'cpu' && (r.peers as string[]).includes(peer);
const row = (cells: string[]): string => `| ${cells.join(' | ')} |`;

export function markdown(report: Report, chartFile: string): string {
  const m = report.machine;
  const cols = others(report.results);
  const L: string[] = [];
  L.push(`# latte-flow bench`, '');
  L.push(`${report.date}; latte-flow ${report.version}; ${report.seconds.toFixed(0)} s.`, '');
  L.push(`- CPU: ${m.cpu}, ${m.cores} cores; ${m.features}; GEMM ${m.gemm}`);
  L.push(`- CUDA: ${m.cuda}`);
  L.push(`- Node ${m.node}; threads ${report.options.threads}; backends ${report.options.backends.join(', ')}; weights ${report.options.dtype}; random checkpoint ${report.options.layers} layers; ${report.options.reps} repetitions after ${report.options.warmup} warm-up${report.options.quick ? '; **--quick** (small workloads: not comparable with a full run)' : ''}`);
  if (m.otherLoadCores !== undefined) L.push(`- Other processes kept ${m.otherLoadCores.toFixed(2)} of ${m.cores} cores busy on average during the run${m.otherLoadCores > 0.2 ? ': a shared, noisy machine; trust the ratios (sides alternate) more than the times' : ''}`);
  L.push('', '## Peers', '', '| peer | status |', '|---|---|');
  for (const p of report.peers) L.push(`| ${p.title} | ${p.available ? `${p.version}` : `${p.reason} (${p.install})`} |`);
  L.push('', '## Results', '');
  L.push('Times in ms (per token or step where the unit says so), min / median over the repetitions. Ratio = the other side\'s median / ours: above 1 ours is faster.', '');
  L.push(row(['measure', 'backend', 'unit', 'ours min / median', ...cols.map((c) => `${c} min / median (ratio)`)]));
  L.push(row(Array(4 + cols.length).fill('---')));
  for (const r of report.results) {
    const ours = r.sides[0];
    const o = ours.median === undefined ? `failed: ${ours.error ?? 'no samples'}` : `${fmtMs(ours.min)} / ${fmtMs(ours.median)}`;
    L.push(row([r.id, r.backend, r.unit, o, ...cols.map((c) => cell(r, c, report))]));
  }
  L.push('', `![ratios](${chartFile})`, '', '## What each measure times', '');
  const seen = new Set<string>();
  for (const r of report.results) {
    if (seen.has(r.id)) continue;
    seen.add(r.id);
    const notes = r.sides.filter((s) => s.note).map((s) => `${s.name}: ${s.note}`);
    L.push(`- **${r.id}**, ${r.title}: ${r.what}.${notes.length ? ` (${notes.join('; ')})` : ''}`);
  }
  const llama = report.peers.find((p) => p.id === 'llama.cpp' && p.available);
  if (llama && report.options.gguf)
    L.push('', 'llama.cpp runs the GGUF given with --gguf: its ratio means something only when that GGUF is the same decoder at the same depth (Qwen2-VL-2B\'s text decoder: --layers 28).');
  else if (llama)
    L.push('', 'llama.cpp runs GGUFs of the random checkpoint\'s text decoder written for the run (same weights; Q8_0 quantised by our q8 rule); its note says whether its greedy tokens matched ours.');
  L.push('', 'Every sample is in bench-report.json. No time is judged here: this is a report, not a test.', '');
  return L.join('\n');
}

/** The summary printed to stdout: one line per measure and backend. */
export function summary(report: Report): string {
  const rows = report.results.map((r) => {
    const ours = r.sides[0];
    const vs = r.sides
      .slice(1)
      .map((s) => (s.ratio !== undefined ? `${s.name} ${fmtMs(s.median)} (${s.ratio.toFixed(2)}x)` : `${s.name} failed`))
      .join(', ');
    return [`${r.id} (${r.backend})`, ours.median === undefined ? `failed: ${ours.error ?? ''}` : `${fmtMs(ours.median)} ${r.unit}`, vs];
  });
  const head = ['measure', 'ours (median)', 'vs (median, ratio = theirs / ours)'];
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const line = (v: string[]) => v.map((s, i) => s.padEnd(w[i])).join('  ').trimEnd();
  return [line(head), line(w.map((n) => '-'.repeat(n))), ...rows.map(line)].join('\n');
}

/** Writes the three files into `dir`; returns their paths. */
export function writeReport(dir: string, report: Report): { md: string; json: string; svg: string } {
  const files = { md: path.join(dir, 'bench-report.md'), json: path.join(dir, 'bench-report.json'), svg: path.join(dir, 'bench-ratios.svg') };
  const m = report.machine;
  fs.writeFileSync(files.json, JSON.stringify(report, null, 1) + '\n');
  const t = report.options.threads;
  const busy = (m.otherLoadCores ?? 0) > 0.2 ? `; other processes busy on ${m.otherLoadCores!.toFixed(1)} of ${m.cores} cores` : '';
  const subtitle = `${m.cpu}, ${t} thread${t > 1 ? 's' : ''}${busy}; ${report.date.slice(0, 10)}${report.options.quick ? ' (--quick)' : ''}`;
  fs.writeFileSync(files.svg, ratioChart(ratioBars(report.results), subtitle));
  fs.writeFileSync(files.md, markdown(report, path.basename(files.svg)));
  return files;
}
