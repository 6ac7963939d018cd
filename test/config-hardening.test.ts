// Config values that used to load and then fail every request (or compute garbage) are refused at
// load with E_BAD_CONFIG naming the field: float and int overflow, out-of-range values, oversized
// prompts in the generator config.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { Engine, LatteError, LatteFlow, openCheckpoint } from '../lib/index.ts';
import { native } from '../lib/errors.ts';
import { loadAddon } from '../lib/native.ts';

const tiny = fileURLToPath(new URL('./fixtures/tiny-model', import.meta.url));
const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-cfg-hard-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

type Json = Record<string, unknown>;
let n = 0;
/** The tiny model with one part's config.json changed by `edit`. */
function variant(part: 'vlm' | 'generator' | 'vae', edit: (c: Json) => void): string {
  const m = path.join(dir, `m${n++}`);
  fs.mkdirSync(m);
  for (const p of ['vlm', 'generator', 'vae']) {
    if (p !== part) {
      fs.symlinkSync(path.join(tiny, p), path.join(m, p));
      continue;
    }
    fs.mkdirSync(path.join(m, p));
    for (const f of fs.readdirSync(path.join(tiny, p))) if (f !== 'config.json') fs.symlinkSync(path.join(tiny, p, f), path.join(m, p, f));
    const c = JSON.parse(fs.readFileSync(path.join(tiny, p, 'config.json'), 'utf8')) as Json;
    edit(c);
    fs.writeFileSync(path.join(m, p, 'config.json'), JSON.stringify(c));
  }
  return m;
}

const cases: [string, 'vlm' | 'generator' | 'vae', (c: Json) => void, RegExp][] = [
  ['vlm rms_norm_eps 1e300 (float overflow)', 'vlm', (c) => (c.rms_norm_eps = 1e300), /rms_norm_eps/],
  ['vlm rms_norm_eps -1', 'vlm', (c) => (c.rms_norm_eps = -1), /rms_norm_eps/],
  ['vlm rope_theta 1e300', 'vlm', (c) => (c.rope_theta = 1e300), /rope_theta/],
  ['vlm rope_theta 1e-300 (float underflow)', 'vlm', (c) => (c.rope_theta = 1e-300), /rope_theta/],
  ['vlm mrope_section with a 0', 'vlm', (c) => ((c.rope_scaling as Json).mrope_section = [0, 4, 4]), /mrope_section/],
  ['vlm mrope_section whose int sum wraps', 'vlm', (c) => ((c.rope_scaling as Json).mrope_section = [2147483647, 2147483647, 10]), /mrope_section/],
  ['generator latent_size 2^32+4', 'generator', (c) => (c.latent_size = [2 ** 32 + 4, 4]), /latent_size/],
  ['generator guidance_per_group 1e300', 'generator', (c) => (c.guidance_per_group = [1e300, 2]), /guidance_per_group/],
  ['generator guidance_scale 1e300', 'generator', (c) => (c.guidance_scale = 1e300), /guidance_scale/],
  ['generator rms_norm_eps -1', 'generator', (c) => (c.rms_norm_eps = -1), /rms_norm_eps/],
  ['generator rope_theta 0', 'generator', (c) => (c.rope_theta = 0), /rope_theta/],
  ['generator rope_theta -3', 'generator', (c) => (c.rope_theta = -3), /rope_theta/],
  ['generator mrope_section with a 0', 'generator', (c) => (c.mrope_section = [0, 4, 4]), /mrope_section/],
  ['generator mrope_section whose int sum wraps', 'generator', (c) => (c.mrope_section = [2147483647, 2147483647, 10]), /mrope_section/],
  ['generator time_shift 1e300', 'generator', (c) => (c.time_shift = 1e300), /time_shift/],
  ['generator time_scale 1e-300', 'generator', (c) => (c.time_scale = 1e-300), /time_scale/],
  ['generator num_steps past the per-request cap', 'generator', (c) => (c.num_steps = 50000), /num_steps/],
  ['generator a 100 kB null_prompt', 'generator', (c) => (c.null_prompt = 'x'.repeat(100_000)), /null_prompt/],
  ['generator a 100 kB prompt_template', 'generator', (c) => (c.prompt_template = `${'x'.repeat(100_000)}{prompt}`), /prompt_template/],
  ['vae scaling_factor 1e-300', 'vae', (c) => (c.scaling_factor = 1e-300), /scaling_factor/],
  ['vae scaling_factor 1e300', 'vae', (c) => (c.scaling_factor = 1e300), /scaling_factor/],
  // ill-typed fields, through the one config reader of each part
  ['generator num_layers a string', 'generator', (c) => (c.num_layers = '4'), /num_layers must be an integer/],
  ['generator sampler a number', 'generator', (c) => (c.sampler = 1), /sampler must be a string/],
  ['generator time_shift a boolean', 'generator', (c) => (c.time_shift = true), /time_shift must be a number/],
  ['vae in_channels 3.5', 'vae', (c) => (c.in_channels = 3.5), /in_channels must be an integer/],
  ['vae decoder_in_shortcut a number', 'vae', (c) => (c.decoder_in_shortcut = 1), /decoder_in_shortcut must be true or false/],
  ['vlm vision_config.depth a string', 'vlm', (c) => ((c.vision_config as Json).depth = '2'), /depth must be an integer/],
  ['vlm hidden_act a number', 'vlm', (c) => (c.hidden_act = 7), /hidden_act must be a string/],
];

for (const [name, part, edit, field] of cases) {
  test(`E_BAD_CONFIG at load: ${name}`, async (t) => {
    const err = await t.throwsAsync(LatteFlow.load(variant(part, edit), { backend: 'cpu', threads: 1 }), { instanceOf: LatteError });
    t.is(err?.code, 'E_BAD_CONFIG', err?.message);
    t.regex(err?.message ?? '', field);
  });
}

test('fields the engine does not know are ignored in every part (real configs carry many)', async (t) => {
  const extra = (c: Json) => Object.assign(c, { unknown_field: { nested: [1, 'x'] }, _name_or_path: 'somewhere' });
  for (const part of ['vlm', 'generator', 'vae'] as const) {
    const lf = await LatteFlow.load(variant(part, extra), { backend: 'cpu', threads: 1 });
    await lf.dispose();
    t.pass(part);
  }
});

test('a model class takes only the config its own readConfig() returned (E_ARG otherwise)', async (t) => {
  const { NativeDcae, NativeGenerator } = loadAddon();
  const e = new Engine({ backend: 'cpu', threads: 1 });
  t.teardown(() => e.dispose());
  const ck = openCheckpoint(path.join(tiny, 'vae'));
  t.teardown(() => ck.close());
  const generatorConfig = NativeGenerator.readConfig(path.join(tiny, 'generator', 'config.json'));
  for (const config of [generatorConfig, '{"latent_channels": 4}', {}]) {
    const err = t.throws(() => native(() => new NativeDcae(e.handle, ck.handle, config as never)), { instanceOf: LatteError });
    t.is(err?.code, 'E_ARG', err?.message);
  }
});

test('the unchanged configs still load and generate (the checks refuse nothing real)', async (t) => {
  const lf = await LatteFlow.load(variant('generator', (c) => (c.guidance_per_group = [3, 1])), { backend: 'cpu', threads: 1 });
  t.teardown(() => lf.dispose());
  const [img] = await lf.generateImage({ prompt: 'a red circle' });
  t.true(img.data.length > 0);
});

test('E_BAD_CONFIG at load: a tokenizer that can emit ids past the model vocabulary', async (t) => {
  const m = variant('vlm', () => {});
  const file = path.join(m, 'vlm', 'tokenizer.json');
  const tok = JSON.parse(fs.readFileSync(file, 'utf8')) as { added_tokens: Json[] };
  tok.added_tokens.push({ id: 400, content: '<|extra|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  fs.rmSync(file);
  fs.writeFileSync(file, JSON.stringify(tok));
  const err = await t.throwsAsync(LatteFlow.load(m, { backend: 'cpu', threads: 1 }), { instanceOf: LatteError });
  t.is(err?.code, 'E_BAD_CONFIG', err?.message);
  t.regex(err?.message ?? '', /ids from 0 to 400; config.json vocab_size 303/);
});

test('E_BAD_CONFIG at load: a negative token id, a vision_start id the tokenizer does not use, a template refusing an image turn', async (t) => {
  const neg = variant('vlm', () => {});
  const file = path.join(neg, 'vlm', 'tokenizer.json');
  const tok = JSON.parse(fs.readFileSync(file, 'utf8')) as { added_tokens: Json[] };
  tok.added_tokens.push({ id: -5, content: '<|neg|>', single_word: false, lstrip: false, rstrip: false, normalized: false, special: true });
  fs.rmSync(file);
  fs.writeFileSync(file, JSON.stringify(tok));
  const cases: [string, string, RegExp][] = [
    ['negative id', neg, /ids from -5 to/],
    ['vision_start_token_id', variant('vlm', (c) => (c.vision_start_token_id = 0)), /vision_start_token_id/],
  ];
  const refusing = variant('vlm', () => {});
  fs.writeFileSync(path.join(refusing, 'vlm', 'chat_template.jinja'), "{{ raise_exception('no images here') }}");
  cases.push(['refusing template', refusing, /fails on a user turn with one image \(.*no images here/]);
  for (const [what, dir, why] of cases) {
    const err = await t.throwsAsync(LatteFlow.load(dir, { backend: 'cpu', threads: 1 }), { instanceOf: LatteError }, what);
    t.is(err?.code, 'E_BAD_CONFIG', `${what}: ${err?.message}`);
    t.regex(err?.message ?? '', why, what);
  }
});
