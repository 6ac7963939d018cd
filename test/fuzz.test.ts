// The bounded fuzz suite (the long run is `npm run fuzz`): a fixed seed and a few hundred cases,
// each batch in a child process (test/fuzz/). Mutated safetensors files (opened, every tensor read,
// then loaded as part of the tiny model), every config of the tiny model (loaded, then one image and
// one answer), and mutated PNGs and JPEGs (decodeImage and lf.answer). Every error must be a
// LatteError with a code other than E_INTERNAL; nothing may crash the process. A failing case prints
// its replay command: npm run fuzz -- --target T --seed S --index I
import test from 'ava';
import { failureReport, replayOf, runFuzz, table, TARGETS, type Summary, type Target } from './fuzz/runner.ts';

const SEED = 20240607;
const COUNTS: Record<Target, number> = {
  safetensors: 150,
  'config-vlm': 25,
  'config-preprocessor': 25,
  'config-generator': 25,
  'config-vae': 25,
  'config-manifest': 25,
  'config-tokenizer': 25,
  'config-tokenizer_config': 25,
  png: 75,
  jpeg: 75,
};

let summary: Summary;

test.before(async () => {
  summary = await runFuzz({
    seed: SEED,
    targets: TARGETS,
    count: COUNTS,
    workers: 2,
    batch: 75,
    slowMs: 5000,
    hangMs: 10_000,
    log: () => {},
  });
});

test('fuzz: counts per target and outcome', (t) => {
  t.log(`\n${table(summary)}\n${failureReport(summary, 40)}`);
  t.is(summary.total.cases, Object.values(COUNTS).reduce((a, b) => a + b, 0));
});

for (const target of TARGETS) {
  test(`fuzz ${target}: no bad, crashing or hanging case (seed ${SEED})`, (t) => {
    const s = summary.targets[target];
    t.is(s?.cases, COUNTS[target], 'every case ran');
    // a case the harness had to kill (no progress, too much memory) is a hang: it fails like a crash;
    // a slow case that finished is reported in the table only
    const fails = summary.failures.filter((r) => r.target === target && (r.outcome === 'bad' || r.outcome === 'crash' || (r.outcome === 'slow' && r.crash !== undefined)));
    if (!fails.length) return;
    const lines = fails.slice(0, 20).map((r) => {
      const why = r.outcome === 'crash' ? r.crash : (r.steps.find((x) => x.outcome === 'bad')?.message ?? r.detail ?? '').split('\n')[0];
      return `${r.outcome} #${r.index}: ${why}\n    ${r.desc.slice(0, 200)}\n    ${replayOf(r)}`;
    });
    t.fail(`${fails.length} of ${s.cases} ${target} cases bad or crashed (${s.counts.bad} bad, ${s.counts.crash} crash):\n${lines.join('\n')}${fails.length > 20 ? `\n... ${fails.length - 20} more` : ''}`);
  });
}

test('fuzz harness: a crash is pinned to its case (bisected when it needs an earlier one); a stray rejection is bad', async (t) => {
  const s = await runFuzz({ seed: 1, targets: ['jpeg'], count: 8, workers: 1, env: { LATTE_FUZZ_SELFTEST: 'crash=2,poison=4,victim=6,reject=1' } });
  const by = new Map(s.results.map((r) => [r.index, r]));
  t.is(s.total.cases, 8);
  t.is(by.get(1)?.outcome, 'bad');
  t.regex(by.get(1)?.detail ?? '', /unhandled rejection: .*stray rejection/);
  t.is(by.get(2)?.outcome, 'crash');
  t.regex(by.get(2)?.crash ?? '', /SIGSEGV/);
  t.is(by.get(6)?.outcome, 'crash');
  t.is(by.get(6)?.after, 4);
  t.is(replayOf(by.get(6)!), 'npm run fuzz -- --target jpeg --seed 1 --index 4 --count 3');
  for (const i of [0, 3, 4, 5, 7]) t.not(by.get(i)?.outcome, 'crash');
});
