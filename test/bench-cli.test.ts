// `latte-flow bench` as a user runs it: the built CLI (dist/cli.js, what the package ships: `npm run
// build:ts` first) on a small --quick filter in a temporary folder. Checks the files it writes are
// well-formed (the JSON has the machine, options and every sample; the SVG has one bar per comparison;
// the Markdown has the table), that an absent peer is reported as not installed rather than failing,
// that the random checkpoint's temporary folder is gone afterwards, and that bad options fail with their
// codes before anything runs. No time is checked: a report, not a test of speed.
import test from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));
const cliJs = path.join(root, 'dist', 'cli.js');

function cli(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) =>
    execFile(process.execPath, [cliJs, ...args], { cwd: root, timeout: 240_000, env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : 1) : 0, stdout, stderr }),
    ),
  );
}

interface Side {
  name: string;
  kind: string;
  samples: number[];
  min?: number;
  median?: number;
  ratio?: number;
  error?: string;
}
interface ReportJson {
  tool: string;
  date: string;
  machine: { cpu: string; cores: number; node: string; cpuFlags: Record<string, boolean>; cuda: string };
  options: { threads: number; quick: boolean; layers: number; reps: number; backends: string[] };
  peers: { id: string; title: string; available: boolean; reason?: string; install?: string }[];
  results: { id: string; backend: string; unit: string; sides: Side[] }[];
}

test.before(() => {
  if (!fs.existsSync(cliJs)) throw new Error('dist/cli.js is missing: run `npm run build:ts` first');
});

test('bench --quick writes a well-formed report, with absent peers as not installed', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-bench-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  // a "Python" without transformers: the probe's exit 4 is what peer-torch.py gives when neither it nor
  // the reference imports
  const fakePython = path.join(dir, 'python');
  fs.writeFileSync(fakePython, '#!/bin/sh\nexit 4\n', { mode: 0o755 });
  const tmp = path.join(dir, 'tmp'); // the run's temporary folder goes here, so its removal can be checked
  fs.mkdirSync(tmp);
  const out = path.join(dir, 'report');
  const filter = 'shipped.step,vlm.decode,layer.decode';
  const r = await cli(['bench', '--quick', '--threads', '1', '--layers', '1', '--filter', filter, '--backend', 'cpu', '--python', fakePython, '--out', out], { TMPDIR: tmp });
  t.log(r.stderr.trim().split('\n').slice(-6).join('\n'));
  t.is(r.code, 0, r.stderr);

  // progress on stderr: measure i/n
  t.regex(r.stderr, /\[1\/3\] shipped\.step \(cpu\)/);
  t.regex(r.stderr, /\[3\/3\] layer\.decode \(cpu\): repetition 2\/2/);
  // the summary on stdout names every measure
  for (const id of filter.split(',')) t.regex(r.stdout, new RegExp(`^${id.replace('.', '\\.')} \\(cpu\\)`, 'm'));
  t.deepEqual(fs.readdirSync(tmp).filter((f) => f.startsWith('latte-flow-bench-')), [], 'the random checkpoint was deleted'); // (others write there too)

  const json = JSON.parse(fs.readFileSync(path.join(out, 'bench-report.json'), 'utf8')) as ReportJson;
  t.is(json.tool, 'latte-flow bench');
  t.false(Number.isNaN(Date.parse(json.date)));
  t.true(json.machine.cpu.length > 0 && json.machine.cores >= 1 && json.machine.node === process.version);
  t.is(typeof json.machine.cpuFlags.avx2, 'boolean');
  t.like(json.options, { threads: 1, quick: true, layers: 1, reps: 2, backends: ['cpu'] });
  t.deepEqual(json.results.map((x) => x.id), filter.split(','));
  for (const res of json.results) {
    const ours = res.sides[0];
    t.is(ours.kind, 'ours');
    t.is(ours.samples.length, 2, `${res.id}: every repetition is a sample`);
    t.true(ours.samples.every((s) => Number.isFinite(s) && s >= 0));
    t.is(ours.min, Math.min(...ours.samples));
  }
  const step = json.results[0].sides.find((s) => s.name === 'K=1 vanilla');
  t.truthy(step?.ratio, 'the K = 1 twin is the baseline of the group step');

  const torch = json.peers.find((p) => p.id === 'pytorch')!;
  t.false(torch.available);
  t.regex(torch.reason!, /^transformers not installed for /);
  t.regex(torch.install!, /pip install torch transformers/);
  // node-llama-cpp is found beside latte-flow or from the current folder (NODE_PATH too): absent in CI
  const llama = json.peers.find((p) => p.id === 'llama.cpp')!;
  if (!llama.available) t.regex(llama.install!, /npm install node-llama-cpp/);
  t.false(json.results[1].sides.some((s) => s.kind === 'peer'), 'no peer side ran for vlm.decode (llama.cpp pairs vlm.decode-f32 / -bf16 / -q8)');

  // the chart: XML-ish (one root, tags balanced), one bar per comparison that has a ratio
  const svg = fs.readFileSync(path.join(out, 'bench-ratios.svg'), 'utf8');
  t.regex(svg, /^<svg xmlns="http:\/\/www\.w3\.org\/2000\/svg"[^>]*>/);
  t.regex(svg.trim(), /<\/svg>$/);
  const opened = [...svg.matchAll(/<([a-z]+)[\s>]/g)].map((m) => m[1]);
  const selfClosed = [...svg.matchAll(/<([a-z]+)\s[^>]*\/>/g)].length;
  const closed = [...svg.matchAll(/<\/([a-z]+)>/g)].length;
  t.is(opened.length, selfClosed + closed, 'every tag is closed');
  const bars = [...svg.matchAll(/<rect class="bar" data-measure="([^"]+)"[^>]*data-ratio="([\d.]+)"/g)];
  const ratios = json.results.flatMap((x) => x.sides.filter((s) => s.ratio !== undefined).map(() => x.id));
  t.deepEqual(bars.map((b) => b[1]), ratios, 'one bar per measure and comparison');
  t.true(bars.length >= 1);

  // the table a person reads, with the absent peer's cell
  const md = fs.readFileSync(path.join(out, 'bench-report.md'), 'utf8');
  t.regex(md, /^\| measure \| backend \| unit \| ours min \/ median \| K=1 vanilla min \/ median \(ratio\) \|/m);
  t.regex(md, /^\| shipped\.step \| cpu \| ms\/step \| [\d.]+ \/ [\d.]+ \| [\d.]+ \/ [\d.]+ \(\*\*[\d.]+x\*\*\) \|/m);
  t.regex(md, /^\| transformers \| transformers not installed for .*pip install torch transformers\) \|$/m);
  t.regex(md, llama.available ? /^\| node-llama-cpp \| node-llama-cpp \d/m : /^\| node-llama-cpp \| not installed \(npm install node-llama-cpp/m);
  t.regex(md, /!\[ratios\]\(bench-ratios\.svg\)/);
});

test('bench refuses bad options with their codes, before anything runs', async (t) => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-bench-cli-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  const file = path.join(dir, 'a-file');
  fs.writeFileSync(file, '');
  const usage: [string[], RegExp][] = [
    [['--filter', 'nosuch'], /no measure matches nosuch/],
    [['--filter', 'vlm,nosuch'], /no measure matches nosuch/],
    [['--threads', '0'], /threads must be an integer/],
    [['--threads', String(os.availableParallelism() + 1)], /threads must be an integer in \[1, /],
    [['--layers', '29'], /layers must be an integer in \[1, 28\]/],
    [['--dtype', 'f16'], /dtype must be bf16 or f32/],
    [['--backend', 'tpu'], /backend must be auto, cpu or cuda/],
  ];
  const results = await Promise.all(usage.map(([args]) => cli(['bench', ...args, '--out', path.join(dir, 'never')])));
  usage.forEach(([args, why], i) => {
    t.is(results[i].code, 2, args.join(' '));
    t.regex(results[i].stderr, why, args.join(' '));
  });
  const outFile = await cli(['bench', '--filter', 'shipped.answer', '--out', file]);
  t.is(outFile.code, 1);
  t.regex(outFile.stderr.trim(), /^latte-flow: E_ARG: --out .*: (not a folder|cannot make the folder)/);
  const gguf = await cli(['bench', '--filter', 'vlm.decode', '--gguf', path.join(dir, 'none.gguf'), '--out', path.join(dir, 'r')]);
  t.is(gguf.code, 1);
  t.regex(gguf.stderr, /E_ARG: --gguf .*no such file/);
  t.false(fs.existsSync(path.join(dir, 'never')), 'no report folder for a refused run');
  const help = await cli(['bench', '--help']);
  t.is(help.code, 0);
  t.regex(help.stdout, /--python <path>/);
});
