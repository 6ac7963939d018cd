/**
 * `npm run fuzz`: the long fuzz run (test/fuzz/), or one case replayed.
 *
 *   npm run fuzz                                      every target, 500 cases each, seed 1
 *   npm run fuzz -- --seconds 240                     as many cases as fit in 4 minutes
 *   npm run fuzz -- --target config --count 2000      every config-* target
 *   npm run fuzz -- --target png --seed 7 --index 42  replay one case, in full (--count N: N cases from it)
 *   npm run fuzz -- --json fuzz.json                  also write the summary (and failing cases) as JSON
 *
 * Options: --seed S, --count N (cases per target), --seconds S, --target a,b (prefixes: 'config'),
 * --index I / --from I, --workers N (child processes, default 2), --batch N (cases per child),
 * --slow-ms, --mem-mb (a case above either is slow), --hang-ms (a child without progress is killed),
 * --rss-mb (a child above it is killed), --write DIR (save each case's inputs), --quiet.
 * Exit status 1 when any case is bad, crash or slow (the long run counts slow as a failure).
 */
import fs from 'node:fs';
import { caseReport, failureReport, resolveTargets, runFuzz, table, type CaseResult } from '../test/fuzz/runner.ts';

const argv = process.argv.slice(2);
const opts: Record<string, string | true> = {};
for (let i = 0; i < argv.length; i++) {
  const a = argv[i];
  if (!a.startsWith('--')) {
    console.error(`unexpected argument ${a}`);
    process.exit(2);
  }
  const [k, v] = a.slice(2).split('=', 2);
  if (v !== undefined) opts[k] = v;
  else if (i + 1 < argv.length && !argv[i + 1].startsWith('--')) opts[k] = argv[++i];
  else opts[k] = true;
}
const known = ['seed', 'count', 'seconds', 'target', 'index', 'from', 'workers', 'batch', 'slow-ms', 'mem-mb', 'hang-ms', 'rss-mb', 'write', 'json', 'quiet', 'help'];
for (const k of Object.keys(opts))
  if (!known.includes(k)) {
    console.error(`unknown option --${k} (options: ${known.map((x) => `--${x}`).join(' ')})`);
    process.exit(2);
  }
if (opts.help) {
  console.log(fs.readFileSync(new URL(import.meta.url), 'utf8').split('*/')[0].replace(/^\/\*\*?|^ \* ?/gm, ''));
  process.exit(0);
}
const num = (k: string, dflt?: number): number | undefined => {
  const v = opts[k];
  if (v === undefined) return dflt;
  const n = Number(v);
  if (v === true || !Number.isFinite(n) || n < 0) {
    console.error(`--${k} needs a non-negative number`);
    process.exit(2);
  }
  return n;
};

const replay = opts.index !== undefined;
const seed = num('seed', 1)!;
const seconds = num('seconds');
const count = num('count', replay ? 1 : seconds ? undefined : 500);
let targets;
try {
  targets = resolveTargets(typeof opts.target === 'string' ? opts.target : undefined);
} catch (e) {
  console.error((e as Error).message);
  process.exit(2);
}
if (replay && targets.length !== 1) {
  console.error('--index replays one target: give --target');
  process.exit(2);
}
const quiet = opts.quiet === true;
const log = (s: string) => {
  if (!quiet) console.error(s);
};

const t0 = Date.now();
let done = 0;
let lastLog = Date.now();
const summary = await runFuzz({
  seed,
  targets,
  count,
  seconds,
  from: num('index') ?? num('from', 0),
  workers: num('workers', replay ? 1 : 2),
  batch: num('batch'),
  slowMs: num('slow-ms'),
  memMb: num('mem-mb'),
  hangMs: num('hang-ms'),
  rssLimitMb: num('rss-mb'),
  write: typeof opts.write === 'string' ? opts.write : undefined,
  log,
  onCase: (r: CaseResult) => {
    done++;
    if (replay) console.log(caseReport(r));
    else if (r.outcome === 'bad' || r.outcome === 'crash' || r.outcome === 'slow') log(`# ${r.outcome}: ${r.target} #${r.index}: ${r.desc.slice(0, 160)}`);
    if (Date.now() - lastLog > 15_000) {
      lastLog = Date.now();
      log(`# ${done} cases, ${Math.round((Date.now() - t0) / 1000)} s`);
    }
  },
});

console.log(table(summary));
console.log(failureReport(summary));
if (typeof opts.json === 'string') {
  const results = summary.results.map((r) => ({ ...r, desc: r.desc.slice(0, 300) }));
  fs.writeFileSync(opts.json, JSON.stringify({ ...summary, results }, null, 1));
  console.log(`summary written to ${opts.json}`);
}
process.exit(summary.failures.length ? 1 : 0);
