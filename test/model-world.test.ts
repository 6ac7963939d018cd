// A model's world.json (lib/model-world.ts): read and checked; prompts with words the model never saw and
// images far from its pictures get warnings (API, CLI); models without one get none.
import test from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LatteFlow, SHIPPED_MODEL } from '../lib/index.ts';
import { imageWarnings, promptWarnings, readWorld, wordsOf } from '../lib/model-world.ts';
import { examples } from '../lib/shapes/world.ts';

const root = fileURLToPath(new URL('..', import.meta.url));
const worldFile = path.join(SHIPPED_MODEL, 'world.json');
const pcfg = JSON.parse(fs.readFileSync(path.join(SHIPPED_MODEL, 'vlm/preprocessor_config.json'), 'utf8'));

function tmp(t: { teardown(f: () => void): void }): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-world-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test('readWorld: the shipped world; bad files are E_BAD_CONFIG naming the file', (t) => {
  const w = readWorld(worldFile);
  for (const word of ['red', 'circle', 'left-hand', 'beneath', 'zero', 'colour', 'color']) t.true(w.vocabulary.has(word), word);
  t.deepEqual([w.image.width, w.image.height], [64, 64]);
  const dir = tmp(t);
  const good = JSON.parse(fs.readFileSync(worldFile, 'utf8'));
  const cases: [string, string | Buffer][] = [
    ['not json', '{'],
    ['array', '[]'],
    ['no vocabulary', JSON.stringify({ ...good, vocabulary: [] })],
    ['upper case word', JSON.stringify({ ...good, vocabulary: ['Red'] })],
    ['two words', JSON.stringify({ ...good, vocabulary: ['red circle'] })],
    ['bad size', JSON.stringify({ ...good, image: { ...good.image, width: 0 } })],
    ['bad colour', JSON.stringify({ ...good, image: { ...good.image, colours: { red: [300, 0, 0] } } })],
    ['bad background', JSON.stringify({ ...good, image: { ...good.image, background: 'white' } })],
    ['huge', Buffer.alloc((1 << 20) + 1, 32)],
  ];
  for (const [name, body] of cases) {
    const f = path.join(dir, `${name}.json`);
    fs.writeFileSync(f, body);
    const e = t.throws(() => readWorld(f), { code: 'E_BAD_CONFIG' }, name);
    t.true(e?.message.includes(f), name);
  }
  t.throws(() => readWorld(path.join(dir, 'missing.json')), { code: 'E_BAD_CONFIG' });
});

test('prompt warnings name the words the model never saw, once each, and only those', (t) => {
  const w = readWorld(worldFile);
  t.deepEqual(wordsOf('A Red circle, on the LEFT-hand side.'), ['a', 'red', 'circle', 'on', 'the', 'left-hand', 'side']);
  t.deepEqual(promptWarnings(w, 'A red circle on the left-hand side.'), []);
  t.deepEqual(promptWarnings(w, 'Is there an orange square beneath the blue triangle?'), []);
  const [one] = promptWarnings(w, 'a magenta hexagon near a magenta dot');
  t.regex(one, /never saw the words "magenta", "hexagon", "dot"/);
  const many = promptWarnings(w, Array.from({ length: 20 }, (_, i) => `zz${i}`).join(' '));
  t.regex(many[0], /and 12 more/);
});

test('image warnings: none for the world\'s scenes or a blank image; another size or foreign colours warn', (t) => {
  const w = readWorld(worldFile);
  for (const ex of examples(21, 0, 200)) t.deepEqual(imageWarnings(w, { width: 64, height: 64, data: ex.image }, pcfg), []);
  t.deepEqual(imageWarnings(w, { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(255) }, pcfg), []);
  // the same scene at 4x (256x256, RGBA) resizes to 64x64: no warning
  const ex = examples(21, 0, 1)[0];
  const big = new Uint8Array(256 * 256 * 4);
  for (let y = 0; y < 256; y++) for (let x = 0; x < 256; x++) for (let c = 0; c < 4; c++) big[(y * 256 + x) * 4 + c] = c === 3 ? 255 : ex.image[((y >> 2) * 64 + (x >> 2)) * 3 + c];
  t.deepEqual(imageWarnings(w, { width: 256, height: 256, data: big }, pcfg), []);
  const photo = new Uint8Array(640 * 480 * 3).map((_, i) => (i * 7919) % 251);
  const p = imageWarnings(w, { width: 640, height: 480, data: photo }, pcfg);
  t.is(p.length, 2);
  t.regex(p[0], /640x480 .*only saw 64x64/);
  t.regex(p[1], /% of the image is in colours the model never saw/);
  const grey = imageWarnings(w, { width: 64, height: 64, data: new Uint8Array(64 * 64 * 3).fill(128) }, pcfg);
  t.regex(grey[0], /100% of the image/);
  t.throws(() => imageWarnings(w, { width: 64, height: 64, data: new Uint8Array(5) }, pcfg), { code: 'E_BAD_IMAGE' });
});

test('LatteFlow: warnings on generated images and from imageWarnings; a manifest naming a missing world is E_BAD_CONFIG; no world, no warnings', async (t) => {
  const lf = await LatteFlow.load(SHIPPED_MODEL, { threads: 1 });
  t.teardown(() => lf.dispose());
  const [img] = await lf.generateImage({ prompt: 'a red dodecahedron', steps: 2 });
  t.is(img.warnings.length, 1);
  t.regex(img.warnings[0], /"dodecahedron"/);
  const [ok] = await lf.generateImage({ prompt: 'A red square at the top.', steps: 2 });
  t.deepEqual(ok.warnings, []);
  t.deepEqual(await lf.imageWarnings(ok.toPNG()), []);
  await t.throwsAsync(lf.imageWarnings(new Uint8Array([1, 2, 3])), { code: 'E_BAD_IMAGE' });
  await t.throwsAsync(lf.imageWarnings(null as never), { code: 'E_BAD_IMAGE' });
  await t.throwsAsync(lf.imageWarnings({ width: -1, height: 2, data: new Uint8Array(0) }), { code: 'E_BAD_IMAGE' });
  t.throws(() => lf.promptWarnings(5 as never), { code: 'E_ARG' });
  const dir = tmp(t);
  const manifest = JSON.parse(fs.readFileSync(path.join(SHIPPED_MODEL, 'latte_flow.json'), 'utf8'));
  for (const k of ['vlm', 'generator', 'vae', 'tokenizer']) manifest[k] = path.join(SHIPPED_MODEL, manifest[k]);
  fs.writeFileSync(path.join(dir, 'latte_flow.json'), JSON.stringify({ ...manifest, world: 'nowhere.json' }));
  await t.throwsAsync(LatteFlow.load(dir), { code: 'E_BAD_CONFIG', message: /nowhere\.json/ });
  const tiny = await LatteFlow.load(path.join(root, 'test/fixtures/tiny-model'), { threads: 1 });
  t.teardown(() => tiny.dispose());
  t.is(tiny.world, undefined);
  t.deepEqual(tiny.promptWarnings('a magenta hexagon'), []);
  const [ti] = await tiny.generateImage({ prompt: 'a magenta hexagon', steps: 1 });
  t.deepEqual(ti.warnings, []);
});

test('the CLI prints the warnings on stderr and still answers / draws', async (t) => {
  const dir = tmp(t);
  const run = (...args: string[]) =>
    new Promise<{ code: number; stdout: string; stderr: string }>((resolve) =>
      execFile(process.execPath, ['--import=tsx', path.join(root, 'lib/cli.ts'), ...args], { cwd: root, timeout: 120_000 }, (err, stdout, stderr) => resolve({ code: err ? 1 : 0, stdout, stderr })),
    );
  const out = path.join(dir, 'p.png');
  const g = await run('generate', 'a red hexagon', '-o', out, '--steps', '2', '--threads', '1');
  t.is(g.code, 0, g.stderr);
  t.regex(g.stderr, /latte-flow: warning: the model never saw the word "hexagon"/);
  const a = await run('ask', out, 'what colour is the hexagon?', '--threads', '1');
  t.is(a.code, 0, a.stderr);
  t.regex(a.stderr, /warning: the model never saw the word "hexagon"/);
  t.true(a.stdout.endsWith('\n'), 'an answer line, however poor');
});
