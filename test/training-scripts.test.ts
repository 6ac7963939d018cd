// The shapes model's training is one command (tools/shapes/train_all.sh, which runs each phase's script):
// every script there must at least parse (a comment line that lost its '#' once broke train_all.sh), and
// train_all.sh must run every phase script beside it.
import test from 'ava';
import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const dir = fileURLToPath(new URL('../tools/shapes/', import.meta.url));
const scripts = fs.readdirSync(dir).filter((f) => f.endsWith('.sh')).sort();

test('the training scripts exist', (t) => {
  t.true(scripts.includes('train_all.sh'));
  t.true(scripts.length >= 2);
});

for (const f of scripts) {
  test(`bash parses tools/shapes/${f}`, (t) => {
    const r = spawnSync('bash', ['-n', path.join(dir, f)], { encoding: 'utf8' });
    t.is(r.status, 0, r.stderr);
  });
}

test('train_all.sh runs every phase script', (t) => {
  const all = fs.readFileSync(path.join(dir, 'train_all.sh'), 'utf8');
  const run = all.split('\n').filter((l) => !l.trimStart().startsWith('#'));
  for (const f of scripts.filter((s) => s !== 'train_all.sh')) {
    t.true(run.some((l) => new RegExp(`^\\s*bash tools/shapes/${f.replace('.', '\\.')}\\b`).test(l)), `${f} is not run`);
  }
});
