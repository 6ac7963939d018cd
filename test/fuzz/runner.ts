/**
 * The fuzz suite's parent side (used by test/fuzz.test.ts and tools/fuzz.ts): runs the cases of each
 * target in batches, each batch in a child process (test/fuzz/child.ts), a pool of them at a time.
 * A child that dies (a signal, a non-zero exit) is a crash; one killed by the harness (no progress
 * within the hang bound, RSS above the memory bound) is slow. Either way the case it was running is
 * rerun alone, and if it survives alone the
 * batch is bisected to the earliest case that must run before it for the process to die. The
 * batch then resumes after that case in a new child.
 *
 * Light on purpose: it does not import latte-flow (no addon in the parent).
 */
import { spawn } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const CHILD = path.join(ROOT, 'test/fuzz/child.ts');

// kept in step with targets.ts (which loads the addon, so it is not imported here)
export const TARGETS = [
  'safetensors', 'config-vlm', 'config-preprocessor', 'config-generator', 'config-vae', 'config-manifest', 'config-tokenizer', 'config-tokenizer_config', 'png', 'jpeg',
] as const;
export type Target = (typeof TARGETS)[number];
export type Outcome = 'ok' | 'coded' | 'bad' | 'slow' | 'crash';
export const OUTCOMES: readonly Outcome[] = ['ok', 'coded', 'bad', 'crash', 'slow'];

export interface StepResult {
  step: string;
  outcome: 'ok' | 'coded' | 'bad';
  code?: string;
  message?: string;
  ms: number;
}
export interface CaseResult {
  target: string;
  seed: number;
  index: number;
  desc: string;
  outcome: Outcome;
  steps: StepResult[];
  ms: number;
  memMb: number;
  suspicious: string[];
  detail?: string;
  crash?: string;
  /** A crash that needs earlier cases in the same process: the first of them. */
  after?: number;
}

export function replayCommand(target: string, seed: number, index: number, count = 1): string {
  return `npm run fuzz -- --target ${target} --seed ${seed} --index ${index}${count > 1 ? ` --count ${count}` : ''}`;
}
export function replayOf(r: CaseResult): string {
  return r.after !== undefined ? replayCommand(r.target, r.seed, r.after, r.index - r.after + 1) : replayCommand(r.target, r.seed, r.index);
}

/** `safetensors`, `config` (every config-*), `png,jpeg`, `all`. */
export function resolveTargets(spec: string | undefined): Target[] {
  if (!spec || spec === 'all') return [...TARGETS];
  const out = new Set<Target>();
  for (const s of spec.split(',').map((x) => x.trim()).filter(Boolean)) {
    const hit = TARGETS.filter((t) => t === s || t.startsWith(`${s}-`));
    if (!hit.length) throw new Error(`unknown target '${s}' (targets: ${TARGETS.join(', ')}; 'config' means every config-*)`);
    hit.forEach((t) => out.add(t));
  }
  return [...out];
}

export interface RunOptions {
  seed: number;
  targets: readonly Target[];
  /** Cases per target (a number, or per target); with `seconds`, a cap (default unlimited). */
  count?: number | Partial<Record<Target, number>>;
  /** The first case index (default 0). */
  from?: number;
  /** Keep starting batches until this many seconds have passed. */
  seconds?: number;
  /** Child processes at a time (default 2). */
  workers?: number;
  /** Cases per child (default 100; 50 with `seconds`). */
  batch?: number;
  /** A case above this is slow (default 5000 ms). */
  slowMs?: number;
  /** A case that raises the child's peak RSS by more than this is slow (default 1024 MiB). */
  memMb?: number;
  /** A child with no progress for this long is killed: the case is slow (default 20000 ms). */
  hangMs?: number;
  /** A child above this RSS is killed: the case is slow (default 3072 MiB). */
  rssLimitMb?: number;
  /** Write each case's inputs under this directory. */
  write?: string;
  /** Extra environment for the children. */
  env?: Record<string, string>;
  log?: (line: string) => void;
  onCase?: (r: CaseResult) => void;
}

export interface TargetSummary {
  cases: number;
  counts: Record<Outcome, number>;
  suspicious: number;
  /** Codes of coded cases (their first coded step). */
  codes: Record<string, number>;
  ms: number;
}

export interface FailureClass {
  target: string;
  outcome: Outcome;
  signature: string;
  count: number;
  example: CaseResult;
  replay: string;
}

export interface Summary {
  seed: number;
  wallMs: number;
  targets: Record<string, TargetSummary>;
  total: TargetSummary;
  failures: CaseResult[];
  suspicious: CaseResult[];
  classes: FailureClass[];
  suspiciousClasses: FailureClass[];
  /** Every result, in target and index order. */
  results: CaseResult[];
}

interface ChildRun {
  results: Map<number, CaseResult>;
  current?: { index: number; desc: string };
  code: number | null;
  signal: NodeJS.Signals | null;
  killedFor?: string;
  fatal?: string;
  stderr: string;
  started: boolean;
  /** The child's scratch directory (removed here when the child could not). */
  tmp?: string;
}

function readRssMb(pid: number): number {
  try {
    const m = fs.readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)/m);
    return m ? Number(m[1]) / 1024 : 0;
  } catch {
    return 0;
  }
}

function runChild(o: Required<Pick<RunOptions, 'seed' | 'slowMs' | 'memMb' | 'hangMs' | 'rssLimitMb'>> & Pick<RunOptions, 'write' | 'onCase' | 'env'>, target: Target, from: number, count: number, report: boolean): Promise<ChildRun> {
  return new Promise((resolve) => {
    const args = ['--unhandled-rejections=strict', '--import=tsx', CHILD, target, String(o.seed), String(from), String(count), '--slow-ms', String(o.slowMs), '--mem-mb', String(o.memMb)];
    if (o.write) args.push('--write', o.write);
    const child = spawn(process.execPath, args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...o.env } });
    const run: ChildRun = { results: new Map(), code: null, signal: null, stderr: '', started: false };
    let buf = '';
    let lastProgress = Date.now();
    const kill = (why: string) => {
      if (run.killedFor) return;
      run.killedFor = why;
      child.kill('SIGKILL');
    };
    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (d: string) => {
      buf += d;
      let nl;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        if (!line.startsWith('@@FUZZ ')) continue;
        let m: { t: string; [k: string]: unknown };
        try {
          m = JSON.parse(line.slice(7));
        } catch {
          continue;
        }
        lastProgress = Date.now();
        if (m.t === 'ready') {
          run.started = true;
          run.tmp = typeof m.tmp === 'string' ? m.tmp : undefined;
        }
        else if (m.t === 'begin') run.current = { index: m.index as number, desc: m.desc as string };
        else if (m.t === 'case') {
          const { t: _t, ...r } = m;
          void _t;
          const cr = r as unknown as CaseResult;
          run.results.set(cr.index, cr);
          run.current = undefined;
          if (report) o.onCase?.(cr);
        } else if (m.t === 'late') {
          const r = run.results.get(m.index as number);
          if (r) {
            r.outcome = 'bad';
            r.steps.push({ step: 'late', outcome: 'bad', message: String(m.message).split('\n')[0], ms: 0 });
            r.detail ??= String(m.message);
          }
        } else if (m.t === 'fatal') run.fatal = String(m.message);
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (d: string) => {
      run.stderr = (run.stderr + d).slice(-6000);
    });
    const timer = setInterval(() => {
      const idle = Date.now() - lastProgress;
      if (idle > (run.started ? o.hangMs : Math.max(o.hangMs, 60_000))) kill(`timeout: no progress for ${Math.round(idle / 1000)} s`);
      const rss = child.pid ? readRssMb(child.pid) : 0;
      if (rss > o.rssLimitMb) kill(`memory: RSS ${Math.round(rss)} MiB above the ${o.rssLimitMb} MiB bound`);
    }, 200);
    child.on('close', (code, signal) => {
      clearInterval(timer);
      if (run.tmp && /latte-fuzz-/.test(run.tmp)) fs.rmSync(run.tmp, { recursive: true, force: true });
      run.code = code;
      run.signal = signal;
      resolve(run);
    });
  });
}

function died(run: ChildRun): boolean {
  return !!run.killedFor || run.signal !== null || run.code !== 0;
}

function howDied(run: ChildRun): string {
  if (run.killedFor) return `killed (${run.killedFor})`;
  if (run.signal) return `signal ${run.signal}`;
  return `exit code ${run.code}`;
}

/** The informative tail of a crashed child's stderr. */
function stderrTail(s: string): string {
  const lines = s.split('\n').map((l) => l.trimEnd()).filter((l) => l && !/^\s+at /.test(l) && !/^Node\.js v/.test(l));
  return lines.slice(-6).join('\n');
}

function normalize(s: string): string {
  return s
    .replace(/\/[\w./+-]*\/[\w.+-]+/g, '<path>')
    .replace(/'[^']*'/g, "'…'")
    .replace(/"[^"]*"/g, '"…"')
    .replace(/\d+(\.\d+)?(e[+-]?\d+)?/gi, '#')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 140);
}

function signatureOf(r: CaseResult): string {
  if (r.crash) {
    const tail = (r.detail ?? '').split('\n').filter(Boolean);
    const key = tail.find((l) => /terminate|Segmentation|Aborted|FATAL|Assertion|Error|error|Bus/.test(l)) ?? tail[tail.length - 1] ?? '';
    return normalize(`${r.crash?.replace(/ \(.*\)$/, (m) => (m.includes('timeout') ? ' (timeout)' : m.includes('memory') ? ' (memory)' : m))}: ${key}`);
  }
  if (r.outcome === 'slow') {
    const s = [...r.steps].sort((a, b) => b.ms - a.ms)[0];
    return normalize(`${(r.detail ?? '').startsWith('raised') ? 'memory' : 'time'} in ${s?.step ?? '?'}`);
  }
  const b = r.steps.find((s) => s.outcome === 'bad');
  return normalize(`${b?.step ?? '?'}: ${b?.code ?? ''} ${(b?.message ?? '').split('\n')[0]}`);
}

function emptySummary(): TargetSummary {
  return { cases: 0, counts: { ok: 0, coded: 0, bad: 0, crash: 0, slow: 0 }, suspicious: 0, codes: {}, ms: 0 };
}

function add(s: TargetSummary, r: CaseResult): void {
  s.cases++;
  s.counts[r.outcome]++;
  if (r.suspicious.length) s.suspicious++;
  s.ms += r.ms;
  if (r.outcome === 'coded') {
    const c = r.steps.find((x) => x.outcome === 'coded')?.code ?? '?';
    s.codes[c] = (s.codes[c] ?? 0) + 1;
  }
}

function classes(rs: CaseResult[], sig: (r: CaseResult) => string): FailureClass[] {
  const m = new Map<string, FailureClass>();
  for (const r of rs) {
    const signature = sig(r);
    const key = `${r.target}|${r.outcome}|${signature}`;
    const c = m.get(key);
    if (c) c.count++;
    else m.set(key, { target: r.target, outcome: r.outcome, signature, count: 1, example: r, replay: replayOf(r) });
  }
  return [...m.values()].sort((a, b) => a.target.localeCompare(b.target) || b.count - a.count);
}

export function summarize(seed: number, results: CaseResult[], wallMs: number): Summary {
  const sorted = [...results].sort((a, b) => TARGETS.indexOf(a.target as Target) - TARGETS.indexOf(b.target as Target) || a.index - b.index);
  const targets: Record<string, TargetSummary> = {};
  const total = emptySummary();
  for (const r of sorted) {
    add((targets[r.target] ??= emptySummary()), r);
    add(total, r);
  }
  const failures = sorted.filter((r) => r.outcome === 'bad' || r.outcome === 'crash' || r.outcome === 'slow');
  const suspicious = sorted.filter((r) => r.suspicious.length);
  return {
    seed,
    wallMs,
    targets,
    total,
    failures,
    suspicious,
    classes: classes(failures, signatureOf),
    suspiciousClasses: classes(suspicious, (r) => normalize(r.suspicious[0])),
    results: sorted,
  };
}

/** Runs the cases; resolves to their summary. Rejects only when children cannot start at all. */
export async function runFuzz(opts: RunOptions): Promise<Summary> {
  const o = {
    seed: opts.seed,
    slowMs: opts.slowMs ?? 5000,
    memMb: opts.memMb ?? 1024,
    hangMs: opts.hangMs ?? 20_000,
    rssLimitMb: opts.rssLimitMb ?? 3072,
    write: opts.write,
    env: opts.env,
    onCase: opts.onCase,
  };
  const log = opts.log ?? (() => {});
  const workers = Math.max(1, opts.workers ?? 2);
  const batch = Math.max(1, opts.batch ?? (opts.seconds ? 50 : 100));
  const from = opts.from ?? 0;
  const cap = (t: Target) => (typeof opts.count === 'number' ? opts.count : (opts.count?.[t] ?? (opts.seconds ? Infinity : 100)));
  const t0 = Date.now();
  const deadline = opts.seconds ? t0 + opts.seconds * 1000 : Infinity;
  const results = new Map<string, CaseResult>();
  const record = (r: CaseResult) => results.set(`${r.target}#${r.index}`, r);

  // units: batches of each target, handed out round-robin (by fewest cases started)
  const next = new Map<Target, number>(opts.targets.map((t) => [t, from]));
  const nextUnit = (): { target: Target; from: number; count: number } | undefined => {
    if (Date.now() >= deadline) return undefined;
    let best: Target | undefined;
    for (const t of opts.targets) {
      const n = next.get(t)!;
      if (n - from >= cap(t)) continue;
      if (best === undefined || n < next.get(best)!) best = t;
    }
    if (best === undefined) return undefined;
    const start = next.get(best)!;
    const count = Math.min(batch, from + cap(best) - start);
    next.set(best, start + count);
    return { target: best, from: start, count };
  };

  let infraFailures = 0;
  const child = async (target: Target, a: number, n: number, report: boolean): Promise<ChildRun> => {
    for (;;) {
      const run = await runChild(o, target, a, n, report);
      if (run.started) return run;
      // the harness could not start (e.g. the addon is being rebuilt): no case's fault; wait and retry
      const why = run.fatal ?? `${howDied(run)}: ${stderrTail(run.stderr)}`;
      if (++infraFailures > 4) throw new Error(`fuzz children cannot start: ${why}\n${stderrTail(run.stderr)}`);
      log(`# fuzz: a child could not start (${why.split('\n')[0]}); retrying in 20 s`);
      await new Promise((r) => setTimeout(r, 20_000));
    }
  };

  const crashResult = (target: Target, index: number, desc: string, run: ChildRun, note = ''): CaseResult => ({
    target,
    seed: o.seed,
    index,
    desc,
    // killed by the harness for no progress or too much memory: slow; died on its own: crash
    outcome: run.killedFor ? 'slow' : 'crash',
    steps: [],
    ms: run.killedFor?.startsWith('timeout') ? o.hangMs : 0,
    memMb: 0,
    suspicious: [],
    crash: howDied(run) + note,
    detail: stderrTail(run.stderr),
  });

  /** Names the case behind a child that died while running `k` (batch began at `a`). */
  const isolate = async (target: Target, a: number, k: number, first: ChildRun, desc: string): Promise<CaseResult> => {
    const alone = await child(target, k, 1, false);
    if (died(alone)) return crashResult(target, k, desc, alone);
    if (k === a) return crashResult(target, k, desc, first, ' (did not reproduce when rerun alone)');
    const again = await child(target, a, k - a + 1, false);
    if (!died(again)) return crashResult(target, k, desc, first, ` (did not reproduce alone or in cases ${a}..${k} again)`);
    let lo = a;
    let hi = k;
    let lastDeath = again;
    while (hi - lo > 1) {
      const mid = Math.floor((lo + hi) / 2);
      const r = await child(target, mid, k - mid + 1, false);
      if (died(r)) {
        lo = mid;
        lastDeath = r;
      } else hi = mid;
    }
    const r = crashResult(target, k, desc, lastDeath, ` (only when case ${lo} ran first in the same process)`);
    r.after = lo;
    return r;
  };

  const worker = async () => {
    for (let u = nextUnit(); u; u = nextUnit()) {
      let a = u.from;
      const end = u.from + u.count;
      while (a < end) {
        const run = await child(u.target, a, end - a, true);
        for (const r of run.results.values()) record(r);
        if (!died(run) && run.results.size === end - a) {
          a = end;
          break;
        }
        // which case was running when it died
        let k: number;
        let desc = '';
        if (run.current) {
          k = run.current.index;
          desc = run.current.desc;
        } else {
          let i = a;
          while (run.results.has(i)) i++;
          k = Math.min(i, end - 1); // past the last case: it died on the way out, after case end-1
          desc = run.results.get(k)?.desc ?? '(died after this case)';
        }
        const cr = await isolate(u.target, a, k, run, desc);
        record(cr);
        o.onCase?.(cr);
        log(`# fuzz: ${u.target} case ${k} ended its child: ${cr.crash}`);
        a = k + 1;
        if (Date.now() >= deadline) break; // out of time: the rest of this batch is not run
      }
      log(`# fuzz: ${u.target} ${u.from}..${a - 1} done (${Math.round((Date.now() - t0) / 1000)} s)`);
    }
  };
  await Promise.all(Array.from({ length: workers }, worker));
  return summarize(o.seed, [...results.values()], Date.now() - t0);
}

// ---------------------------------------------------------------------------------------------
// reports

export function table(s: Summary): string {
  const head = ['target', 'cases', ...OUTCOMES, 'susp', 'case-s'];
  const rows: string[][] = [];
  const row = (name: string, t: TargetSummary) => [name, String(t.cases), ...OUTCOMES.map((k) => String(t.counts[k])), String(t.suspicious), (t.ms / 1000).toFixed(1)];
  for (const [name, t] of Object.entries(s.targets)) rows.push(row(name, t));
  rows.push(row('total', s.total));
  const w = head.map((h, i) => Math.max(h.length, ...rows.map((r) => r[i].length)));
  const fmt = (r: string[]) => r.map((c, i) => (i === 0 ? c.padEnd(w[i]) : c.padStart(w[i]))).join('  ');
  const lines = [fmt(head), ...rows.map(fmt)];
  lines.push(`seed ${s.seed}, ${(s.wallMs / 1000).toFixed(1)} s wall`);
  const codes = Object.entries(s.targets)
    .map(([n, t]) => `${n}: ${Object.entries(t.codes).sort((a, b) => b[1] - a[1]).map(([c, k]) => `${c} ${k}`).join(', ') || '-'}`)
    .join('\n  ');
  lines.push(`codes of coded cases:\n  ${codes}`);
  return lines.join('\n');
}

export function failureReport(s: Summary, max = 60): string {
  const out: string[] = [];
  if (s.classes.length) {
    out.push(`${s.failures.length} failing case(s) in ${s.classes.length} class(es):`);
    for (const c of s.classes.slice(0, max)) {
      out.push(`- [${c.target}] ${c.outcome} x${c.count}: ${c.signature}`);
      out.push(`    replay: ${c.replay}`);
      out.push(`    case:   ${c.example.desc.slice(0, 240)}`);
      const d = (c.example.crash ? `${c.example.crash}\n${c.example.detail ?? ''}` : c.example.detail ?? '').trim();
      if (d) out.push(d.split('\n').slice(0, 6).map((l) => `    | ${l.slice(0, 240)}`).join('\n'));
    }
    if (s.classes.length > max) out.push(`... and ${s.classes.length - max} more classes`);
  } else out.push('no failing cases');
  if (s.suspiciousClasses.length) {
    out.push(`${s.suspicious.length} suspicious case(s) in ${s.suspiciousClasses.length} class(es) (reported, not failed):`);
    for (const c of s.suspiciousClasses.slice(0, max)) {
      out.push(`- [${c.target}] x${c.count}: ${c.signature}`);
      out.push(`    replay: ${c.replay}`);
      out.push(`    case:   ${c.example.desc.slice(0, 200)}`);
    }
  }
  return out.join('\n');
}

/** One case in full (for --index replays). */
export function caseReport(r: CaseResult): string {
  const lines = [`${r.target} seed ${r.seed} index ${r.index}: ${r.outcome.toUpperCase()} (${r.ms} ms, +${r.memMb} MiB peak)`, `  case: ${r.desc}`];
  for (const s of r.steps) lines.push(`  ${s.step}: ${s.outcome}${s.code ? ` ${s.code}` : ''}${s.message ? ` - ${s.message}` : ''} (${s.ms} ms)`);
  if (r.crash) lines.push(`  crash: ${r.crash}`);
  if (r.detail) lines.push(r.detail.split('\n').map((l) => `  | ${l}`).join('\n'));
  for (const s of r.suspicious) lines.push(`  suspicious: ${s}`);
  lines.push(`  replay: ${replayOf(r)}`);
  return lines.join('\n');
}
