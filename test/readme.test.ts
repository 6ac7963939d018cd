// The README works as written, tried as a new user would: every fenced code block in README.md, in
// order, in one fresh project folder that holds only the packed tarball (the one tools/pack-check.sh
// packs for test/packaging.test.ts; test/helpers/pack-once.ts shares it):
//   - ```sh blocks run in bash (set -eo pipefail). The quick start's `npm install ./latte-flow-0.1.0.tgz`
//     runs as written: it is this test's one install, which every later block reuses. A line
//     `npm install latte-flow` (the published form, a 404 until the package is on npm) would be replaced
//     by `npm install ./<the tarball>`. Every `-o FILE` a block names must exist afterwards.
//   - ```js / ```ts blocks run as plain Node ESM (.mjs, no tsx, no flags) on this Node, which must meet
//     package.json's engines floor (Node 20 has no `using` declarations, nor type syntax in .mjs);
//     they are also type-checked against the installed package's .d.ts (tsc, strict).
//   - a block preceded by `<!-- readme-test: skip (reason) -->` is not run (it needs a checkout, root or
//     a checkpoint this machine lacks); `<!-- readme-test: typescript-only (reason) -->` is type-checked
//     only. An unmarked block in a language without a runner fails the test.
// It also requires the package from a CommonJS script (Node >= 20.19 require()s ES modules, unflagged)
// and checks that every relative link in the README resolves inside the installed package.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { packCheckOnce, root } from './helpers/pack-once.ts';

interface Block {
  line: number; // 1-based line of the opening fence
  lang: string;
  code: string;
  marker?: { kind: 'skip' | 'typescript-only'; reason: string };
}

const MARKER = /^<!--\s*readme-test:\s*(\S+)\s*(?:\((.*)\))?\s*-->$/;

function parseReadme(text: string): { blocks: Block[]; problems: string[]; prose: string } {
  const lines = text.split('\n');
  const blocks: Block[] = [];
  const problems: string[] = [];
  const prose: string[] = [];
  let pending: { kind: string; reason: string; line: number } | undefined;
  for (let i = 0; i < lines.length; i++) {
    const open = /^(`{3,}|~{3,})\s*([\w+-]*)/.exec(lines[i]);
    const marker = MARKER.exec(lines[i].trim());
    if (marker) {
      if (pending) problems.push(`line ${pending.line}: a readme-test marker not followed by a code block`);
      pending = { kind: marker[1], reason: (marker[2] ?? '').trim(), line: i + 1 };
      continue;
    }
    if (!open) {
      prose.push(lines[i]);
      if (pending && lines[i].trim() !== '') {
        problems.push(`line ${pending.line}: a readme-test marker not followed by a code block`);
        pending = undefined;
      }
      continue;
    }
    const fence = open[1];
    const start = i;
    const body: string[] = [];
    const closes = (l: string) => {
      const m = /^\s*(`{3,}|~{3,})\s*$/.exec(l);
      return m !== null && m[1][0] === fence[0] && m[1].length >= fence.length;
    };
    for (i++; i < lines.length && !closes(lines[i]); i++) body.push(lines[i]);
    if (i >= lines.length) problems.push(`line ${start + 1}: an unclosed code block`);
    const block: Block = { line: start + 1, lang: open[2].toLowerCase(), code: `${body.join('\n')}\n` };
    if (pending) {
      if (pending.kind !== 'skip' && pending.kind !== 'typescript-only') problems.push(`line ${pending.line}: unknown readme-test marker "${pending.kind}"`);
      else if (!pending.reason) problems.push(`line ${pending.line}: a readme-test marker must give its reason in parentheses`);
      else block.marker = { kind: pending.kind, reason: pending.reason };
      pending = undefined;
    }
    blocks.push(block);
  }
  if (pending) problems.push(`line ${pending.line}: a readme-test marker not followed by a code block`);
  return { blocks, problems, prose: prose.join('\n') };
}

const readme = fs.readFileSync(path.join(root, 'README.md'), 'utf8');
const { blocks, problems, prose } = parseReadme(readme);
const SH = new Set(['sh', 'bash', 'shell', 'console']);
const JS = new Set(['js', 'javascript', 'mjs', 'ts', 'typescript']);
const pkg = JSON.parse(fs.readFileSync(path.join(root, 'package.json'), 'utf8')) as { engines: { node: string } };

let project = '';
let tgzName = '';

// A child's environment: no NODE_OPTIONS (plain Node), and none of the variables `npm run` exports that
// would steer a nested npm (npm_config_prefix=/usr makes `npm install` target the global prefix).
function childEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  delete env.NODE_OPTIONS;
  for (const k of Object.keys(env)) if (/^npm_(config_(prefix|local_prefix|global_prefix)|package_|lifecycle_)/i.test(k)) delete env[k];
  return env;
}

function sh(cmd: string, args: string[], timeout = 120_000) {
  const started = Date.now();
  const r = spawnSync(cmd, args, { cwd: project, env: childEnv(), encoding: 'utf8', timeout, maxBuffer: 16 * 1024 * 1024 });
  return { ...r, seconds: ((Date.now() - started) / 1000).toFixed(1), output: `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() };
}

test.before(async () => {
  const r = await packCheckOnce();
  if (!r.tarball) throw new Error(`pack-check made no tarball (${r.error ?? `exit ${r.status}`}):\n${r.output}`);
  project = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-readme-'));
  tgzName = path.basename(r.tarball);
  fs.copyFileSync(r.tarball, path.join(project, tgzName));
});

test.after.always(() => {
  if (project) fs.rmSync(project, { recursive: true, force: true });
});

test('README: every code block runs or is marked, on a Node that meets the engines floor', (t) => {
  t.deepEqual(problems, []);
  const [major, minor] = process.versions.node.split('.').map(Number);
  const floor = /^>=\s*(\d+)\.(\d+)/.exec(pkg.engines.node);
  t.truthy(floor, `engines.node ${pkg.engines.node}`);
  t.true(major > Number(floor![1]) || (major === Number(floor![1]) && minor >= Number(floor![2])), `Node ${process.version} is below engines ${pkg.engines.node}`);
  const count = (f: (b: Block) => boolean) => blocks.filter(f).length;
  const run = count((b) => !b.marker && (SH.has(b.lang) || JS.has(b.lang)));
  const checked = count((b) => JS.has(b.lang) && b.marker?.kind !== 'skip');
  const skipped = blocks.filter((b) => b.marker?.kind === 'skip');
  for (const b of blocks) if (!b.marker && !SH.has(b.lang) && !JS.has(b.lang)) t.fail(`README line ${b.line}: no runner for a "${b.lang || '(none)'}" block; run it or mark it`);
  t.log(`Node ${process.version} (engines ${pkg.engines.node}); ${blocks.length} blocks: ${run} run, ${checked} type-checked, ${skipped.length} skipped by marker`);
  for (const b of skipped) t.log(`  line ${b.line} (${b.lang}) skipped: ${b.marker!.reason}`);
});

for (const b of blocks) {
  if (b.marker?.kind === 'skip' || b.marker?.kind === 'typescript-only') continue;
  if (SH.has(b.lang)) {
    test.serial(`README line ${b.line}: the sh block runs in a fresh project`, (t) => {
      let code = b.code.replace(/^([ \t]*)npm install latte-flow(?=\s|$)/gm, (_m, ws: string) => {
        t.log(`line "npm install latte-flow" replaced by "npm install ./${tgzName}" (the package is not published)`);
        return `${ws}npm install ./${tgzName}`;
      });
      code = `set -eo pipefail\n${code}`;
      const file = `readme-L${b.line}.sh`;
      fs.writeFileSync(path.join(project, file), code);
      const r = sh('bash', [file]);
      t.log(`${r.seconds} s\n${r.output}`);
      t.is(r.error, undefined, `did not finish: ${r.error?.message}`);
      t.is(r.status, 0);
      for (const m of b.code.matchAll(/\s-o\s+("[^"]+"|'[^']+'|\S+)/g)) {
        const out = m[1].replace(/^["']|["']$/g, '');
        t.true(fs.existsSync(path.join(project, out)) && fs.statSync(path.join(project, out)).size > 0, `${out} was not written`);
      }
    });
  } else if (JS.has(b.lang)) {
    test.serial(`README line ${b.line}: the ${b.lang} block runs as plain Node ESM`, (t) => {
      t.notRegex(b.code, /^\s*(await\s+)?using\s+[\w$]+\s*=/m, '`using` declarations are a SyntaxError on Node 20 (engines floor); use try/finally');
      const file = `readme-L${b.line}.mjs`;
      fs.writeFileSync(path.join(project, file), b.code);
      const r = sh(process.execPath, [file]);
      t.log(`${r.seconds} s\n${r.output}`);
      t.is(r.error, undefined, `did not finish: ${r.error?.message}`);
      t.is(r.status, 0);
    });
  }
}

test.serial('README: the js/ts blocks type-check against the installed package', (t) => {
  const ts = blocks.filter((b) => JS.has(b.lang) && b.marker?.kind !== 'skip');
  if (ts.length === 0) return t.pass();
  const dir = path.join(project, 'typecheck');
  fs.mkdirSync(dir, { recursive: true });
  const files = ts.map((b) => {
    const f = `readme-L${b.line}.mts`;
    fs.writeFileSync(path.join(dir, f), b.code);
    return f;
  });
  fs.writeFileSync(
    path.join(dir, 'tsconfig.json'),
    JSON.stringify({
      compilerOptions: {
        target: 'ES2022', module: 'NodeNext', moduleResolution: 'NodeNext', lib: ['ES2022', 'ESNext.Disposable'], strict: true,
        noEmit: true, skipLibCheck: true, esModuleInterop: true, types: ['node'], typeRoots: [path.join(root, 'node_modules', '@types')],
      },
      files,
    }),
  );
  const r = sh(process.execPath, [path.join(root, 'node_modules', 'typescript', 'bin', 'tsc'), '-p', path.join(dir, 'tsconfig.json')]);
  t.log(`${r.seconds} s, ${files.length} blocks`);
  t.is(r.status, 0, r.output);
});

test.serial("require('latte-flow') works from a CommonJS script, without flags", (t) => {
  fs.writeFileSync(
    path.join(project, 'require-check.cjs'),
    `const assert = require('node:assert');
const fs = require('node:fs');
const path = require('node:path');
assert.strictEqual(process.features.require_module, true, 'this Node cannot require() ES modules');
const lf = require('latte-flow');
for (const k of ['Engine', 'LatteFlow', 'Qwen2VL', 'openCheckpoint', 'getBackendInfo']) assert.strictEqual(typeof lf[k], 'function', k);
assert.strictEqual(fs.realpathSync(lf.SHIPPED_MODEL), fs.realpathSync(path.join(__dirname, 'node_modules/latte-flow/models/shapes')));
assert.ok(fs.existsSync(path.join(lf.SHIPPED_MODEL, 'latte_flow.json')), 'SHIPPED_MODEL has no latte_flow.json');
assert.ok(lf.getBackendInfo().compiled.includes('cpu'));
assert.strictEqual(require('latte-flow/package.json').name, 'latte-flow');
const engine = new lf.Engine({ backend: 'cpu', threads: 1 });
engine.dispose().then(async () => {
  assert.strictEqual((await import('latte-flow')).Engine, lf.Engine, 'require and import give different modules');
  console.log('require ok: ' + Object.keys(lf).length + ' exports, SHIPPED_MODEL ' + lf.SHIPPED_MODEL);
});
`,
  );
  const r = sh(process.execPath, ['require-check.cjs'], 60_000);
  t.log(`Node ${process.version}, ${r.seconds} s\n${r.output}`);
  t.is(r.status, 0);
  t.regex(r.stdout ?? '', /^require ok/m);
});

test.serial('README: every relative link resolves inside the installed package', (t) => {
  const pkgdir = path.join(project, 'node_modules', 'latte-flow');
  t.true(fs.existsSync(path.join(pkgdir, 'package.json')), 'the package is not installed (the quick start block failed?)');
  const links = [...prose.matchAll(/\]\(([^)\s]+)\)/g)].map((m) => m[1]).filter((l) => !/^([a-z]+:|#)/i.test(l));
  t.true(links.length > 0);
  const missing = links.filter((l) => !fs.existsSync(path.join(pkgdir, decodeURI(l.replace(/#.*$/, '')))));
  t.deepEqual(missing, [], 'README links to files the package does not ship (package.json "files")');
  t.log(`${links.length} links: ${links.join(', ')}`);
});
