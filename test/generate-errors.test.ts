// Loading a complete LaTtE-Flow model directory: every inconsistency is a coded error; the vanilla
// (K = 1) model runs from the same code.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LatteError, LatteFlow, type GenerateProgress } from '../lib/index.ts';

const tiny = fileURLToPath(new URL('./fixtures/tiny-model', import.meta.url));

/** A copy of the tiny model with `edit` applied to its files. */
function variant(t: { teardown(f: () => void): void }, edit: (dir: string) => void): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-lf-'));
  fs.cpSync(tiny, dir, { recursive: true });
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  edit(dir);
  return dir;
}
const editJson = (file: string, f: (j: Record<string, unknown>) => void) => {
  const j = JSON.parse(fs.readFileSync(file, 'utf8'));
  f(j);
  fs.writeFileSync(file, JSON.stringify(j));
};
/** The code of the error loading `dir` throws (undefined if it loads). */
async function loadError(dir: string): Promise<string | undefined> {
  try {
    const lf = await LatteFlow.load(dir, { backend: 'cpu', threads: 1 });
    await lf.dispose();
    return undefined;
  } catch (e) {
    return e instanceof LatteError ? e.code : `not a LatteError: ${String(e)}`;
  }
}
const code = loadError;

test('manifest and directory problems are E_BAD_CONFIG', async (t) => {
  t.is(await code(path.join(os.tmpdir(), 'no-such-latte-model')), 'E_BAD_CONFIG');
  t.is(await code(variant(t, (d) => fs.writeFileSync(path.join(d, 'latte_flow.json'), '{'))), 'E_BAD_CONFIG');
  t.is(await code(variant(t, (d) => editJson(path.join(d, 'latte_flow.json'), (j) => (j.format_version = 2)))), 'E_BAD_CONFIG');
  t.is(await code(variant(t, (d) => editJson(path.join(d, 'latte_flow.json'), (j) => (j.generator = 'missing')))), 'E_BAD_CONFIG');
  t.is(await code(variant(t, (d) => fs.rmSync(path.join(d, 'vae', 'config.json')))), 'E_BAD_CONFIG');
});

test('a model directory without latte_flow.json loads its default parts from that directory, not the cwd', async (t) => {
  const dir = variant(t, (d) => fs.rmSync(path.join(d, 'latte_flow.json')));
  const cwd = process.cwd();
  process.chdir(os.tmpdir());
  try {
    t.is(await loadError(dir), undefined);
  } finally {
    process.chdir(cwd);
  }
});

test('generator configs the engine cannot run are E_BAD_CONFIG', async (t) => {
  const gen = (f: (j: Record<string, unknown>) => void) => variant(t, (d) => editJson(path.join(d, 'generator', 'config.json'), f));
  t.is(await code(gen((j) => (j.num_groups = 3))), 'E_BAD_CONFIG', 'groups that do not divide the layers');
  t.is(await code(gen((j) => (j.group_boundaries = [0, 0.7, 0.3]))), 'E_BAD_CONFIG', 'boundaries that do not increase');
  t.is(await code(gen((j) => (j.group_boundaries = [0, 0.5]))), 'E_BAD_CONFIG', 'too few boundaries');
  t.is(await code(gen((j) => (j.guidance_per_group = [2]))), 'E_BAD_CONFIG', 'guidance for fewer groups than the model has');
  t.is(await code(gen((j) => (j.guidance_per_group = [2, 'x']))), 'E_BAD_CONFIG', 'guidance that is not a number');
  t.is(await code(gen((j) => (j.format = 'other'))), 'E_BAD_CONFIG');
  t.is(await code(gen((j) => (j.format_version = 9))), 'E_BAD_CONFIG');
  t.is(await code(gen((j) => (j.sampler = 'rk4'))), 'E_BAD_CONFIG');
  t.is(await code(gen((j) => (j.mrope_section = [1, 1, 1]))), 'E_BAD_CONFIG');
  t.is(await code(gen((j) => (j.prompt_template = 'no placeholder'))), 'E_BAD_CONFIG');
  t.is(await code(gen((j) => delete j.latent_size)), 'E_BAD_CONFIG');
});

test('parts that do not fit together: E_BAD_CONFIG; missing or mis-shaped tensors: E_BAD_WEIGHTS', async (t) => {
  // the VAE takes 8 latent channels: its weights then do not fit, or the generator's latent does not
  t.true(['E_BAD_CONFIG', 'E_BAD_WEIGHTS'].includes((await code(variant(t, (d) => editJson(path.join(d, 'vae', 'config.json'), (j) => (j.latent_channels = 8))))) ?? ''));
  t.is(await code(variant(t, (d) => editJson(path.join(d, 'generator', 'config.json'), (j) => (j.intermediate_size = 128)))), 'E_BAD_WEIGHTS');
  t.is(await code(variant(t, (d) => editJson(path.join(d, 'generator', 'config.json'), (j) => (j.num_layers = 6)))), 'E_BAD_WEIGHTS', 'layers the checkpoint lacks');
  t.is(await code(variant(t, (d) => fs.truncateSync(path.join(d, 'generator', 'model.safetensors'), 1000))), 'E_BAD_WEIGHTS');
  t.is(await code(variant(t, (d) => fs.rmSync(path.join(d, 'generator', 'model.safetensors')))), 'E_BAD_WEIGHTS');
});

test('vanilla mode: the same stream as one group (K = 1) generates from the same code', async (t) => {
  const dir = variant(t, (d) => editJson(path.join(d, 'generator', 'config.json'), (j) => (j.num_groups = 1)));
  const lf = await LatteFlow.load(dir, { backend: 'cpu', threads: 2 });
  t.teardown(() => lf.dispose());
  const progress: GenerateProgress[] = [];
  const [img] = await lf.generateImage({ prompt: 'a circle', steps: 3, onProgress: (p) => progress.push(p) });
  t.is(img.data.length, img.width * img.height * 3);
  t.deepEqual(progress.map((p) => p.group), [0, 0, 0]);
  // K = 1 runs every layer each step: the same computation as depth 'full' of the K = 2 model
  const k2 = await LatteFlow.load(tiny, { backend: 'cpu', threads: 2 });
  t.teardown(() => k2.dispose());
  const [full] = await k2.generateImage({ prompt: 'a circle', steps: 3, depth: 'full' });
  t.deepEqual(full.data, img.data);
});
