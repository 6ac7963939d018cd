// Requests too large to make sense are E_ARG before they tie the model up: prompt characters and
// tokens, steps and schedule length, images x steps; a prompt fits exactly as the generator places it.
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import jpeg from 'jpeg-js';
import { LatteError, LatteFlow, MAX_PROMPT_CHARS, MAX_PROMPT_TOKENS, MAX_STEPS, type GenerateOptions } from '../lib/index.ts';

const tiny = fileURLToPath(new URL('./fixtures/tiny-model', import.meta.url));
const load = (dir = tiny) => LatteFlow.load(dir, { backend: 'cpu', threads: 1 });

/** The error code of a request; the old, unguarded code would run it for minutes: stop it after 30 s (far above a loaded CI's time for the requests that should resolve). */
async function code(lf: LatteFlow, o: GenerateOptions): Promise<string> {
  const signal = AbortSignal.timeout(30_000);
  try {
    await lf.generateImage({ signal, ...o });
    return 'resolved';
  } catch (e) {
    return e instanceof LatteError ? e.code : String(e);
  }
}

test('limits: MAX_PROMPT_CHARS, MAX_PROMPT_TOKENS (maxPromptTokens), MAX_STEPS for steps, schedules and count x steps', async (t) => {
  t.is(MAX_PROMPT_CHARS, 4096);
  t.is(MAX_PROMPT_TOKENS, 512);
  t.is(MAX_STEPS, 10_000);
  const lf = await load();
  t.teardown(() => lf.dispose());
  t.is(await code(lf, { prompt: 'x'.repeat(MAX_PROMPT_CHARS + 1), steps: 1 }), 'E_ARG');
  // the tiny vocabulary has ~1 token per character: ~560 tokens in 629 characters
  const long = 'red blue '.repeat(70).trim();
  const n = lf.vlm.tokenizer.encode(long).length;
  t.true(long.length <= MAX_PROMPT_CHARS && n > MAX_PROMPT_TOKENS && n < 1000, `${n} tokens`);
  const err = await t.throwsAsync(lf.generateImage({ prompt: long, steps: 1 }), { instanceOf: LatteError });
  t.is(err?.code, 'E_ARG');
  t.regex(err?.message ?? '', /the limit is 512 \(maxPromptTokens\)/);
  t.is(await code(lf, { prompt: long, steps: 1, maxPromptTokens: 1000 }), 'resolved');
  t.is(await code(lf, { prompt: 'a circle', steps: 1, maxPromptTokens: 3 }), 'E_ARG');
  for (const maxPromptTokens of [0, 1.5, Infinity]) t.is(await code(lf, { prompt: 'a', steps: 1, maxPromptTokens }), 'E_ARG');
  t.is(await code(lf, { prompt: 'a', steps: MAX_STEPS + 1 }), 'E_ARG');
  const schedule = (n: number) => Array.from({ length: n + 1 }, (_, i) => i / n);
  t.is(await code(lf, { prompt: 'a', schedule: schedule(MAX_STEPS + 1) }), 'E_ARG', 'a schedule of MAX_STEPS + 1 steps');
  t.is(await code(lf, { prompt: 'a', schedule: schedule(100_000) }), 'E_ARG');
  t.is(await code(lf, { prompt: 'a', count: 2, steps: MAX_STEPS / 2 + 1 }), 'E_ARG', 'count x steps over MAX_STEPS');
  t.is(await code(lf, { prompt: 'a', count: 64, schedule: schedule(200) }), 'E_ARG');
  t.is(await code(lf, { prompt: 'a', count: 4, steps: 2 }), 'resolved');
});

test('the prompt may fill every position the generator does not place image tokens at', async (t) => {
  const lf = await load();
  const g = lf.generator.config;
  const prompt = 'a red circle';
  const P = lf.vlm.tokenizer.encode(g.promptTemplate.replace('{prompt}', prompt)).length;
  await lf.dispose();
  // image token (i, j) of the 4x4 grid sits at position P + max(i, j): P + 4 positions in all
  const grid = Math.max(...g.latentSize) / g.patchSize;
  const withPositions = (n: number) => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-pos-'));
    t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
    fs.cpSync(tiny, dir, { recursive: true });
    const file = path.join(dir, 'vlm', 'config.json');
    fs.writeFileSync(file, JSON.stringify({ ...JSON.parse(fs.readFileSync(file, 'utf8')), max_position_embeddings: n }));
    return dir;
  };
  const exact = await load(withPositions(P + grid));
  t.teardown(() => exact.dispose());
  t.is(await code(exact, { prompt, steps: 2 }), 'resolved');
  const short = await load(withPositions(P + grid - 1));
  t.teardown(() => short.dispose());
  const err = await t.throwsAsync(short.generateImage({ prompt, steps: 2 }), { instanceOf: LatteError });
  t.is(err?.code, 'E_ARG');
  t.regex(err?.message ?? '', new RegExp(`this model takes at most ${P - 1}`));
});

test('toJPEG: a baseline JPEG of the image', async (t) => {
  const lf = await load();
  t.teardown(() => lf.dispose());
  const [img] = await lf.generateImage({ prompt: 'a blue square', steps: 2 });
  const bytes = img.toJPEG();
  t.deepEqual([bytes[0], bytes[1]], [0xff, 0xd8]);
  const back = jpeg.decode(bytes, { useTArray: true });
  t.deepEqual([back.width, back.height], [img.width, img.height]);
  t.true(img.toJPEG(100).length > img.toJPEG(10).length);
  t.is(t.throws(() => img.toJPEG(0), { instanceOf: LatteError })?.code, 'E_ARG');
});

test("the prompt goes into the template as written: '$&' and friends are not replacement patterns", async (t) => {
  const { fillPromptTemplate } = await import('../lib/latte-flow.ts');
  t.is(fillPromptTemplate('<u>{prompt}</u>', "a $& b $' c $` d $$"), "<u>a $& b $' c $` d $$</u>");
  t.is(fillPromptTemplate('{prompt} / {prompt}', 'x'), 'x / x');
});
