// The HTTP service (lib/serve) through a real HTTP client on loopback: every endpoint against the
// library called in-process (same bytes, same text), SSE framing, every error status in OpenAI's
// shape (400, 401, 404, 413, 415, 429, 503), a client's disconnect aborting its request, shutdown
// (drain, and abort after the grace period), metrics, and seeded fuzzed bodies. The shipped model,
// with few steps. The CLI and its SIGTERM are in serve-cli.test.ts; the page in serve-page.test.ts.
import test from 'ava';
import Fastify from 'fastify';
import net from 'node:net';
import { createServer, latteFlowPlugin, LatteError, LatteFlow, MAX_COUNT, MAX_PROMPT_CHARS, SHIPPED_MODEL, type LatteServer, type ServedModel } from '../lib/index.ts';
import type { AnswerOptions } from '../lib/answer.ts';
import type { GenerateOptions } from '../lib/latte-flow.ts';
import { Rng } from './fuzz/rng.ts';
import { mutateJsonText, mutateTree, serialize, toTree } from './fuzz/mutate.ts';
import { isOpenAIError, json, parseSse, post, pngSize, readSse } from './helpers/serve.ts';

const PROMPT = 'a red circle to the left of a blue square';
const QUESTION = 'what colour is the circle?';

interface Call {
  kind: 'image' | 'answer' | 'answerStream';
  signal?: AbortSignal;
  /** 'ok', the error's code, or undefined while running */
  outcome?: string;
}

/** The model, with every call the server makes recorded: its signal and how it ended. */
function spied(m: LatteFlow): ServedModel & { calls: Call[]; settled(): Promise<Call> } {
  const calls: Call[] = [];
  const watch = <T>(c: Call, p: Promise<T>) => {
    calls.push(c);
    p.then(() => (c.outcome = 'ok'), (e) => (c.outcome = (e as LatteError).code ?? 'error'));
    return p;
  };
  return {
    calls,
    /** The last call, once it has ended. */
    async settled() {
      for (let i = 0; i < 600; i++) {
        const c = calls.at(-1);
        if (c?.outcome) return c;
        await new Promise((r) => setTimeout(r, 50));
      }
      throw new Error('the model call did not end within 30 s');
    },
    generateImage: (o: GenerateOptions) => watch({ kind: 'image', signal: o.signal }, m.generateImage(o)),
    answer: (o: AnswerOptions) => watch({ kind: 'answer', signal: o.signal }, m.answer(o)),
    answerStream(o: AnswerOptions) {
      const c: Call = { kind: 'answerStream', signal: o.signal };
      calls.push(c);
      const inner = m.answerStream(o);
      return (async function* () {
        try {
          yield* inner;
          c.outcome = 'ok';
        } catch (e) {
          c.outcome = (e as LatteError).code ?? 'error';
          throw e;
        } finally {
          c.outcome ??= 'returned';
        }
      })();
    },
    dispose: () => Promise.resolve(), // the test disposes the model
    generator: m.generator,
    vae: m.vae,
    schedulerStats: () => m.schedulerStats(),
    onBatch: (l) => m.onBatch(l),
  };
}

let lf: LatteFlow;
let model: ReturnType<typeof spied>;
let app: LatteServer;
let url: string;
let pngB64: string; // an image the model made, for the chat tests
const servers: LatteServer[] = [];
const logged: string[] = []; // what the servers log: shutdown notes, and 5xx errors (none expected)

async function serve(options: Partial<Parameters<typeof createServer>[0]> = {}): Promise<[LatteServer, string]> {
  const s = await createServer({ model, modelId: 'latte-flow-shapes', log: (line) => logged.push(line), ...options });
  servers.push(s);
  return [s, await s.listen({ port: 0, host: '127.0.0.1' })];
}

const b64 = (bytes: Uint8Array) => Buffer.from(bytes).toString('base64');
const dataUrl = (b: string) => `data:image/png;base64,${b}`;
const imageQuestion = (text = QUESTION, image = pngB64) => [{ role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl(image) } }, { type: 'text', text }] }];

test.before(async () => {
  lf = await LatteFlow.load(SHIPPED_MODEL, { threads: 1 });
  model = spied(lf);
  [app, url] = await serve();
  await app.latte.loaded;
  pngB64 = b64((await lf.generateImage({ prompt: PROMPT, steps: 4, seed: 1 }))[0].toPNG());
});

test.after.always(async () => {
  for (const s of servers) await s.close().catch(() => {});
  await lf?.dispose();
});

test.serial('GET /v1/models lists the model; /health is 200 once loaded; / is the page', async (t) => {
  const models = await json(await fetch(`${url}/v1/models`));
  t.is(models.object, 'list');
  t.deepEqual(models.data.map((m: { id: string; object: string }) => [m.id, m.object]), [['latte-flow-shapes', 'model']]);
  const health = await fetch(`${url}/health`);
  t.is(health.status, 200);
  t.like(await json(health), { status: 'ok', model: 'latte-flow-shapes' });
  const page = await fetch(`${url}/`);
  t.is(page.status, 200);
  t.regex(page.headers.get('content-type') ?? '', /^text\/html/);
  const html = await page.text();
  for (const id of ['prompt', 'generate', 'image', 'drop', 'question', 'answer']) t.true(html.includes(`id="${id}"`), id);
});

test.serial('images: b64_json PNGs of the model size, byte for byte what generateImage makes in-process', async (t) => {
  const r = await post(`${url}/v1/images/generations`, { prompt: PROMPT, n: 2, seed: 5, steps: 4, size: '64x64', response_format: 'b64_json', model: 'anything' });
  t.is(r.status, 200);
  const j = await json(r);
  t.is(typeof j.created, 'number');
  t.deepEqual(j.data.map((d: { seed: number }) => d.seed), [5, 6]);
  for (const d of j.data) t.deepEqual(pngSize(d.b64_json), [64, 64]);
  const direct = await lf.generateImage({ prompt: PROMPT, count: 2, seed: 5, steps: 4 });
  t.deepEqual(j.data.map((d: { b64_json: string }) => d.b64_json), direct.map((img) => b64(img.toPNG())));
  t.is(j.warnings, undefined, 'no warnings field when the model knows every word');
  const odd = await json(await post(`${url}/v1/images/generations`, { prompt: 'a red hexagon', steps: 2 }));
  t.is(odd.warnings.length, 1);
  t.regex(odd.warnings[0], /never saw the word "hexagon"/);
});

test.serial('images, stream: an SSE progress event per step, previews, the final image (the same as unstreamed), then [DONE]', async (t) => {
  const r = await post(`${url}/v1/images/generations`, { prompt: PROMPT, seed: 5, steps: 4, stream: true, preview_every: 1 });
  t.is(r.status, 200);
  t.regex(r.headers.get('content-type') ?? '', /^text\/event-stream/);
  const messages = parseSse(await r.text()); // throws on a framing error
  t.deepEqual(messages.at(-1), { data: '[DONE]' });
  const events = messages.slice(0, -1).map((m) => ({ event: m.event, ...JSON.parse(m.data) }));
  for (const e of events) t.is(e.event, e.type, 'each message names its type in an event: line');
  const progress = events.filter((e) => e.type === 'progress');
  t.deepEqual(progress.map((p) => [p.step, p.steps]), [[1, 4], [2, 4], [3, 4], [4, 4]]);
  t.true(progress.every((p, i) => Number.isInteger(p.group) && p.group >= 0 && p.group < 4 && (i === 0 || p.group >= progress[i - 1].group)), 'groups in time order');
  // previews (the scheduler's previewEvery): every step but the last, 64x64 PNGs, numbered in order
  const previews = events.filter((e) => e.type === 'image_generation.partial_image');
  t.deepEqual(previews.map((p) => [p.step, p.partial_image_index, p.index]), [[1, 0, 0], [2, 1, 0], [3, 2, 0]]);
  for (const p of previews) t.deepEqual(pngSize(p.b64_json), [64, 64]);
  const done = events.filter((e) => e.type === 'image_generation.completed');
  t.is(done.length, 1);
  t.is(events.at(-1).type, 'image_generation.completed', 'the image comes after every progress event');
  const plain = await json((await post(`${url}/v1/images/generations`, { prompt: PROMPT, seed: 5, steps: 4 })));
  t.is(done[0].b64_json, plain.data[0].b64_json);
  t.is(done[0].seed, 5);
});

test.serial('images, stream: previews every few steps by default; preview_every 0 sends none', async (t) => {
  const count = async (extra: object) => {
    const events = parseSse(await (await post(`${url}/v1/images/generations`, { prompt: PROMPT, steps: 12, stream: true, ...extra })).text());
    return events.filter((m) => m.event === 'image_generation.partial_image').length;
  };
  const dflt = await count({});
  t.true(dflt >= 2 && dflt <= 11, `${dflt} previews`);
  t.is(await count({ preview_every: 0 }), 0);
});

test.serial('chat: the answer is the library’s for the same image and question', async (t) => {
  const r = await post(`${url}/v1/chat/completions`, { model: 'x', messages: imageQuestion(), max_tokens: 16 });
  t.is(r.status, 200);
  const j = await json(r);
  const want = await lf.answer({ images: [Buffer.from(pngB64, 'base64')], question: QUESTION, maxTokens: 16 });
  t.like(j, { object: 'chat.completion', model: 'latte-flow-shapes', choices: [{ index: 0, message: { role: 'assistant', content: want }, finish_reason: 'stop' }] });
  t.regex(j.id, /^chatcmpl-/);
  t.true(j.usage.completion_tokens >= 1);
});

test.serial('chat, stream: a role chunk, deltas that join to the unstreamed text, the finish reason, usage, [DONE]', async (t) => {
  const body = { messages: imageQuestion(), max_tokens: 16, temperature: 0.9, top_p: 0.95, seed: 4 };
  const plain = await json((await post(`${url}/v1/chat/completions`, body)));
  const r = await post(`${url}/v1/chat/completions`, { ...body, stream: true, stream_options: { include_usage: true } });
  t.is(r.status, 200);
  t.regex(r.headers.get('content-type') ?? '', /^text\/event-stream/);
  const messages = parseSse(await r.text());
  t.deepEqual(messages.at(-1), { data: '[DONE]' });
  const chunks = messages.slice(0, -1).map((m) => JSON.parse(m.data));
  t.true(chunks.every((c) => c.object === 'chat.completion.chunk' && c.id === chunks[0].id));
  t.deepEqual(chunks[0].choices[0].delta, { role: 'assistant', content: '' });
  const usage = chunks.at(-1);
  t.deepEqual(usage.choices, []);
  t.deepEqual(usage.usage, plain.usage);
  const finish = chunks.at(-2);
  t.deepEqual(finish.choices[0], { index: 0, delta: {}, finish_reason: plain.choices[0].finish_reason });
  const deltas = chunks.slice(1, -2).map((c) => c.choices[0].delta.content);
  t.true(deltas.length >= 1 && deltas.every((d) => typeof d === 'string' && d.length > 0));
  t.is(deltas.join(''), plain.choices[0].message.content);
});

test.serial('chat: seed, temperature, top_p, stop and history reach the library; max_tokens cuts with finish_reason length', async (t) => {
  const image = Buffer.from(pngB64, 'base64');
  const history = [
    { role: 'system', content: 'You answer about shapes.' },
    { role: 'user', content: [{ type: 'image_url', image_url: dataUrl(pngB64) }, { type: 'text', text: 'what is on the left?' }] },
    { role: 'assistant', content: 'a circle' },
  ];
  const body = { messages: [...history, { role: 'user', content: QUESTION }], max_tokens: 12, temperature: 0.8, top_p: 0.9, seed: 11, stop: ['e'] };
  const j = await json((await post(`${url}/v1/chat/completions`, body)));
  const want = await lf.answer({
    history: [history[0], { role: 'user', content: [{ type: 'image', image }, { type: 'text', text: 'what is on the left?' }] }, history[2]] as AnswerOptions['history'],
    images: [],
    question: QUESTION,
    maxTokens: 12,
    temperature: 0.8,
    topP: 0.9,
    seed: 11,
    stop: ['e'],
  });
  t.is(j.choices?.[0].message.content, want);
  const text = await json((await post(`${url}/v1/chat/completions`, { messages: [{ role: 'developer', content: 'Be brief.' }, { role: 'user', content: 'hello' }], max_tokens: 1 })));
  t.is(text.choices[0].finish_reason, 'length', 'a text-only question, cut at one token');
  t.is(text.usage.completion_tokens, 1);
});

const BAD: [string, string, unknown, number, string, RegExp?][] = [
  ['images: no prompt', '/v1/images/generations', {}, 400, 'E_ARG', /prompt/],
  ['images: empty prompt', '/v1/images/generations', { prompt: '' }, 400, 'E_ARG'],
  ['images: prompt too long', '/v1/images/generations', { prompt: 'x'.repeat(MAX_PROMPT_CHARS + 1) }, 400, 'E_ARG'],
  ['images: a size the model does not make', '/v1/images/generations', { prompt: 'x', size: '1024x1024' }, 400, 'E_ARG', /64x64/],
  ['images: response_format url', '/v1/images/generations', { prompt: 'x', response_format: 'url' }, 400, 'E_ARG', /b64_json/],
  ['images: n over MAX_COUNT', '/v1/images/generations', { prompt: 'x', n: MAX_COUNT + 1 }, 400, 'E_ARG', /n/],
  ['images: steps as a string', '/v1/images/generations', { prompt: 'x', steps: '4' }, 400, 'E_ARG', /steps/],
  ['images: steps 0', '/v1/images/generations', { prompt: 'x', steps: 0 }, 400, 'E_ARG'],
  ['images: a negative seed', '/v1/images/generations', { prompt: 'x', seed: -1 }, 400, 'E_ARG'],
  ['images: an unknown sampler', '/v1/images/generations', { prompt: 'x', sampler: 'ddim' }, 400, 'E_ARG', /euler/],
  ['images: guidance for 2 groups of 4 (the library says)', '/v1/images/generations', { prompt: 'x', guidance: [1, 2] }, 400, 'E_ARG', /one per expert group/],
  ['images: the same, streamed (no stream opened)', '/v1/images/generations', { prompt: 'x', guidance: [1, 2], stream: true }, 400, 'E_ARG'],
  ['images: count x steps too large (the library says)', '/v1/images/generations', { prompt: 'x', n: 64, steps: 200 }, 400, 'E_ARG', /count x steps/],
  ['images: a JSON array body', '/v1/images/generations', [], 400, 'E_ARG'],
  ['chat: no messages', '/v1/chat/completions', {}, 400, 'E_ARG', /messages/],
  ['chat: empty messages', '/v1/chat/completions', { messages: [] }, 400, 'E_ARG'],
  ['chat: an unknown role', '/v1/chat/completions', { messages: [{ role: 'tool', content: 'x' }] }, 400, 'E_ARG', /role/],
  ['chat: the last message is not the user’s', '/v1/chat/completions', { messages: [{ role: 'assistant', content: 'hi' }] }, 400, 'E_ARG', /last message/],
  ['chat: a blank question (the library says)', '/v1/chat/completions', { messages: [{ role: 'user', content: '  ' }] }, 400, 'E_ARG', /question/],
  ['chat: an http image URL', '/v1/chat/completions', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: 'https://example.com/a.png' } }, { type: 'text', text: 'x' }] }] }, 400, 'E_BAD_IMAGE', /data URL/],
  ['chat: a data URL that is no image', '/v1/chat/completions', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: `data:image/png;base64,${b64(new TextEncoder().encode('not a png at all'))}` } }, { type: 'text', text: 'x' }] }] }, 400, 'E_BAD_IMAGE'],
  ['chat: a file path as the image', '/v1/chat/completions', { messages: [{ role: 'user', content: [{ type: 'image_url', image_url: { url: '/etc/passwd' } }, { type: 'text', text: 'x' }] }] }, 400, 'E_BAD_IMAGE'],
  ['chat: an unknown part type', '/v1/chat/completions', { messages: [{ role: 'user', content: [{ type: 'audio', audio: 'x' }] }] }, 400, 'E_ARG'],
  ['chat: n 2', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], n: 2 }, 400, 'E_ARG'],
  ['chat: negative temperature', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], temperature: -1 }, 400, 'E_ARG'],
  ['chat: top_p 0', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], top_p: 0 }, 400, 'E_ARG'],
  ['chat: an empty stop string', '/v1/chat/completions', { messages: [{ role: 'user', content: 'x' }], stop: [''] }, 400, 'E_ARG'],
  ['chat: a bad request, streamed (no stream opened)', '/v1/chat/completions', { messages: [{ role: 'user', content: '  ' }], stream: true }, 400, 'E_ARG'],
];

test.serial('bad input: 400 in OpenAI’s shape with the LatteError code, for every field', async (t) => {
  for (const [what, path, body, status, code, message] of BAD) {
    const r = await post(`${url}${path}`, body);
    t.is(r.status, status, what);
    t.regex(r.headers.get('content-type') ?? '', /^application\/json/, what);
    const j = await json(r);
    t.true(isOpenAIError(j), `${what}: ${JSON.stringify(j)}`);
    t.is(j.error.code, code, what);
    t.is(j.error.type, 'invalid_request_error', what);
    if (message) t.regex(j.error.message, message, what);
  }
});

test.serial('HTTP-level errors: invalid JSON 400, other media types 415, unknown routes 404, all in OpenAI’s shape', async (t) => {
  const cases: [string, Promise<Response>, number, string][] = [
    ['invalid JSON', post(`${url}/v1/images/generations`, '{"prompt": "x",'), 400, 'invalid_json'],
    ['an empty JSON body', post(`${url}/v1/chat/completions`, ''), 400, 'invalid_json'],
    ['XML', fetch(`${url}/v1/images/generations`, { method: 'POST', headers: { 'content-type': 'application/xml' }, body: '<x/>' }), 415, 'unsupported_media_type'],
    ['an unknown route', fetch(`${url}/v1/nothing`), 404, 'not_found'],
    ['a GET of a POST route', fetch(`${url}/v1/images/generations`), 404, 'not_found'],
  ];
  for (const [what, p, status, code] of cases) {
    const r = await p;
    t.is(r.status, status, what);
    const j = await json(r);
    t.true(isOpenAIError(j), `${what}: ${JSON.stringify(j)}`);
    t.is(j.error.code, code, what);
  }
});

test.serial('--api-key: 401 without the bearer token or with a wrong one; /health, /metrics and the page stay open', async (t) => {
  const [, u] = await serve({ apiKey: 'sekrit' });
  for (const headers of [{} as Record<string, string>, { authorization: 'Bearer wrong' }, { authorization: 'sekrit' }, { authorization: 'Basic c2Vrcml0' }]) {
    for (const path of ['/v1/images/generations', '/v1/chat/completions']) {
      const r = await post(`${u}${path}`, { prompt: 'x', messages: [{ role: 'user', content: 'x' }] }, { headers });
      t.is(r.status, 401, `${path} ${JSON.stringify(headers)}`);
      t.is(r.headers.get('www-authenticate'), 'Bearer');
      const j = await json(r);
      t.true(isOpenAIError(j));
      t.like(j.error, { type: 'authentication_error', code: 'invalid_api_key' });
    }
  }
  t.is((await fetch(`${u}/v1/models`)).status, 401);
  t.is((await fetch(`${u}/v1/models`, { headers: { authorization: 'Bearer sekrit' } })).status, 200);
  const ok = await post(`${u}/v1/images/generations`, { prompt: PROMPT, steps: 2 }, { headers: { authorization: 'bearer sekrit' } });
  t.is(ok.status, 200);
  for (const path of ['/health', '/metrics', '/']) t.is((await fetch(`${u}${path}`)).status, 200, path);
});

test.serial('413 for a body over the limit, before the model sees it', async (t) => {
  const [, u] = await serve({ bodyLimit: 4096 });
  const before = model.calls.length;
  const r = await post(`${u}/v1/chat/completions`, { messages: imageQuestion(QUESTION, 'A'.repeat(8192)) });
  t.is(r.status, 413);
  const j = await json(r);
  t.true(isOpenAIError(j));
  t.is(j.error.code, 'request_too_large');
  t.is(model.calls.length, before);
  t.is((await post(`${u}/v1/images/generations`, { prompt: PROMPT, steps: 2 })).status, 200, 'a small body passes');
});

test.serial('429 with Retry-After when the scheduler’s queue is full (images, chat, streamed chat)', async (t) => {
  const small = await LatteFlow.load(SHIPPED_MODEL, { threads: 1, maxBatch: 1, maxQueue: 0 });
  t.teardown(() => small.dispose({ drop: true }));
  const [, u] = await serve({ model: small });
  // hold the one image slot: a request whose progress callback waits for the test
  let release!: () => void;
  const gate = new Promise<void>((r) => (release = r));
  let started!: () => void;
  const inSlot = new Promise<void>((r) => (started = r));
  const held = small.generateImage({ prompt: PROMPT, steps: 2, onProgress: () => (started(), gate) });
  await inSlot;
  for (const stream of [false, true]) {
    const r = await post(`${u}/v1/images/generations`, { prompt: PROMPT, steps: 2, stream });
    t.is(r.status, 429, `images, stream ${stream}`);
    t.regex(r.headers.get('retry-after') ?? '', /^[1-9]\d*$/, 'Retry-After: whole seconds, at least 1');
    t.like(await json(r), { error: { type: 'rate_limit_error', code: 'E_BUSY' } });
  }
  release();
  await held;
  // hold the one answer slot: an answer stream that has yielded and waits
  const answer = small.answerStream({ question: 'hello', maxTokens: 64 });
  await answer.next();
  for (const stream of [false, true]) {
    const r = await post(`${u}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }], stream });
    t.is(r.status, 429, `chat, stream ${stream}`);
    t.regex(r.headers.get('retry-after') ?? '', /^[1-9]\d*$/);
    t.like(await json(r), { error: { code: 'E_BUSY' } });
  }
  await answer.return(undefined);
  t.is((await post(`${u}/v1/images/generations`, { prompt: PROMPT, steps: 2 })).status, 200, 'admitted again once the slot is free');
});

test.serial('503 while the model loads (health says loading), 200 once loaded; a failed load is 503 with its code', async (t) => {
  let resolve!: (m: ServedModel) => void;
  const [s, u] = await serve({ model: new Promise<ServedModel>((r) => (resolve = r)) });
  const h = await fetch(`${u}/health`);
  t.is(h.status, 503);
  t.like(await json(h), { status: 'loading' });
  const r = await post(`${u}/v1/images/generations`, { prompt: PROMPT, steps: 2 });
  t.is(r.status, 503);
  t.like(await json(r), { error: { type: 'unavailable_error', code: 'model_loading' } });
  t.is((await fetch(`${u}/metrics`)).status, 200, 'metrics while loading');
  resolve(model);
  await s.latte.loaded;
  t.is((await fetch(`${u}/health`)).status, 200);
  t.is((await post(`${u}/v1/images/generations`, { prompt: PROMPT, steps: 2 })).status, 200);

  const [f, fu] = await serve({ model: '/nonexistent/model' });
  await f.latte.loaded;
  t.is(f.latte.state, 'failed');
  const fh = await fetch(`${fu}/health`);
  t.is(fh.status, 503);
  t.like(await json(fh), { status: 'failed', error: { code: 'E_BAD_CONFIG' } });
  t.like(await json((await post(`${fu}/v1/chat/completions`, { messages: [{ role: 'user', content: 'x' }] }))), { error: { code: 'model_failed' } });
});

test.serial('a client that disconnects aborts its request (streamed and not)', async (t) => {
  // streamed: hang up after the first progress event of a long generation
  const ac = new AbortController();
  const r = await post(`${url}/v1/images/generations`, { prompt: PROMPT, steps: 10_000, stream: true }, { signal: ac.signal });
  await readSse(r, (m) => m.event === 'progress');
  ac.abort();
  let c = await model.settled();
  t.is(c.kind, 'image');
  t.is(c.outcome, 'E_ABORTED', 'the generation was aborted, not run to its end');
  t.true(c.signal?.aborted);
  // unstreamed: hang up while it runs
  const ac2 = new AbortController();
  const calls = model.calls.length;
  const p = post(`${url}/v1/images/generations`, { prompt: PROMPT, steps: 10_000 }, { signal: ac2.signal }).catch((e) => e);
  while (model.calls.length === calls) await new Promise((res) => setTimeout(res, 10));
  await new Promise((res) => setTimeout(res, 100));
  ac2.abort();
  t.is((await p).name, 'AbortError');
  c = await model.settled();
  t.is(c.outcome, 'E_ABORTED');
  t.is(lf.schedulerStats().imagesActive, 0);
});

test.serial('a chat stream whose client disconnects stops its answer', async (t) => {
  // a stand-in model that answers forever until its signal fires: the server must pass the hang-up on
  let aborted: ((v: boolean) => void) | undefined;
  const gone = new Promise<boolean>((r) => (aborted = r));
  const endless: ServedModel = {
    ...model,
    answerStream: (o: AnswerOptions) =>
      (async function* () {
        while (!o.signal?.aborted) {
          yield 'la ';
          await new Promise((r) => setTimeout(r, 5));
        }
        aborted!(true);
        throw new LatteError('E_ABORTED', 'aborted');
      })(),
  };
  const [, u] = await serve({ model: endless });
  const ac = new AbortController();
  const r = await post(`${u}/v1/chat/completions`, { messages: [{ role: 'user', content: 'sing' }], stream: true }, { signal: ac.signal });
  let n = 0;
  await readSse(r, () => ++n >= 5);
  ac.abort();
  t.true(await Promise.race([gone, new Promise<boolean>((r) => setTimeout(() => r(false), 10_000))]), 'the answer saw its signal abort');
});

/** A raw HTTP/1.1 connection: what it receives, and a promise of everything once the server closes it. */
function rawConnection(u: string): { socket: net.Socket; text(): string; closed: Promise<string> } {
  const socket = net.connect(Number(new URL(u).port), '127.0.0.1');
  let text = '';
  socket.on('data', (d) => (text += d));
  const closed = new Promise<string>((resolve) => socket.on('close', () => resolve(text)));
  socket.on('error', () => {});
  return { socket, text: () => text, closed };
}

const until = async (what: string, ok: () => boolean | Promise<boolean>) => {
  for (let i = 0; i < 500; i++) {
    if (await ok()) return;
    await new Promise((r) => setTimeout(r, 20));
  }
  throw new Error(`timed out waiting until ${what}`);
};

test.serial('close(): new connections are refused, /health turns 503, a request in flight finishes, then close resolves', async (t) => {
  const [s, u] = await serve({ graceMs: 60_000 });
  // a streamed generation on a raw connection, so that a second request can follow it on the same
  // connection (pipelined) once the server drains: a request that arrives during the drain
  const c = rawConnection(u);
  const body = JSON.stringify({ prompt: PROMPT, steps: 1000, seed: 2, stream: true });
  c.socket.write(`POST /v1/images/generations HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: ${Buffer.byteLength(body)}\r\n\r\n${body}`);
  await until('the first progress event', () => c.text().includes('event: progress'));
  const closing = s.close();
  await until('the server refuses new connections', () => fetch(`${u}/health`).then(() => false, () => true));
  t.is(s.latte.state, 'draining');
  t.false(c.text().includes('[DONE]'), 'still generating');
  c.socket.write('GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n');
  const text = await c.closed; // the server closes the connection after the health response
  const [stream, health] = text.split(/(?=HTTP\/1\.1 503)/);
  t.is((stream.match(/event: progress/g) ?? []).length, 1000, 'every step ran');
  t.regex(stream, /event: image_generation\.completed[^]*data: \[DONE\]/, 'the image in flight was finished, not aborted');
  t.truthy(health, text.slice(-500));
  t.regex(health, /"status":"draining"/);
  t.regex(health, /connection: close/i);
  await closing;
  t.is(s.latte.state, 'closed');
});

test.serial('close(): after the grace period, requests in flight are aborted and answered 503 (an SSE error when streaming)', async (t) => {
  const [s, u] = await serve({ graceMs: 100 });
  const before = model.calls.length;
  const streamed = post(`${u}/v1/images/generations`, { prompt: PROMPT, steps: 10_000, stream: true });
  const plain = post(`${u}/v1/images/generations`, { prompt: PROMPT, steps: 10_000 });
  while (model.calls.length < before + 2) await new Promise((r) => setTimeout(r, 10)); // both are in
  const r = await streamed;
  const closing = s.close();
  const messages = parseSse(await r.text()).map((m) => m.data);
  const last = JSON.parse(messages.at(-1)!);
  t.true(isOpenAIError(last), messages.at(-1));
  t.is(last.error.code, 'server_draining');
  const p = await plain;
  t.is(p.status, 503);
  t.like(await json(p), { error: { code: 'server_draining' } });
  await closing;
  t.is(lf.schedulerStats().imagesActive, 0);
});

test.serial('/metrics: requests, errors by code, latency, in-flight, queue depth, batch sizes, images/s and tokens/s', async (t) => {
  // its own traffic: a few images at once (the scheduler batches them), an answer, two errors
  const results = await Promise.all([1, 2, 3].map((seed) => post(`${url}/v1/images/generations`, { prompt: PROMPT, steps: 4, seed })));
  t.deepEqual(results.map((r) => r.status), [200, 200, 200]);
  t.is((await post(`${url}/v1/chat/completions`, { messages: imageQuestion(), max_tokens: 4 })).status, 200);
  t.is((await post(`${url}/v1/images/generations`, { prompt: '' })).status, 400);
  t.is((await fetch(`${url}/v1/nothing`)).status, 404);
  const r = await fetch(`${url}/metrics`);
  t.is(r.status, 200);
  t.regex(r.headers.get('content-type') ?? '', /^text\/plain; version=0\.0\.4/);
  const text = await r.text();
  const value = (re: RegExp) => Number(re.exec(text)?.[1] ?? NaN);
  t.true(value(/^latte_http_requests_total\{route="\/v1\/images\/generations",method="POST",status="200"\} (\d+)/m) >= 3);
  t.true(value(/^latte_http_requests_total\{route="\/v1\/chat\/completions",method="POST",status="200"\} (\d+)/m) >= 1);
  t.true(value(/^latte_http_errors_total\{code="E_ARG"\} (\d+)/m) >= 1);
  t.true(value(/^latte_http_errors_total\{code="not_found"\} (\d+)/m) >= 1);
  t.true(value(/^latte_http_request_duration_seconds_count\{route="\/v1\/images\/generations"\} (\d+)/m) >= 4);
  t.regex(text, /^latte_http_request_duration_seconds_bucket\{le="0\.1",route="\/v1\/chat\/completions"\} \d+/m);
  t.is(value(/^latte_http_requests_in_flight (\d+)/m), 0);
  t.is(value(/^latte_model_ready (\d+)/m), 1);
  t.true(value(/^latte_images_generated_total (\d+)/m) >= 3);
  t.true(value(/^latte_tokens_generated_total (\d+)/m) >= 1);
  t.true(value(/^latte_images_per_second (\S+)/m) > 0);
  t.true(value(/^latte_tokens_per_second (\S+)/m) > 0);
  // the scheduler's part
  t.is(value(/^latte_queue_depth\{kind="image"\} (\d+)/m), 0);
  t.is(value(/^latte_queue_depth\{kind="answer"\} (\d+)/m), 0);
  t.true(value(/^latte_batch_size_count\{kind="image"\} (\d+)/m) > 0, 'batch sizes observed');
  t.true(value(/^latte_batches\{what="batches"\} (\d+)/m) > 0);
  t.regex(text, /^latte_process_cpu_seconds_total /m);
});

test.serial('latteFlowPlugin mounts the service in an existing Fastify app, under a prefix, leaving the app’s routes alone', async (t) => {
  const host = Fastify();
  t.teardown(() => host.close());
  host.get('/mine', async () => ({ mine: true }));
  await host.register(latteFlowPlugin, { model, apiKey: 'k', prefix: '/latte', log: (line) => logged.push(line) });
  const u = await host.listen({ port: 0, host: '127.0.0.1' });
  const auth = { headers: { authorization: 'Bearer k' } };
  t.deepEqual(await json(await fetch(`${u}/mine`)), { mine: true }, 'the app’s route: no key needed');
  t.is((await fetch(`${u}/latte/health`)).status, 200);
  t.is((await fetch(`${u}/latte/v1/models`)).status, 401);
  t.is((await post(`${u}/latte/v1/images/generations`, { prompt: PROMPT, steps: 2 }, auth)).status, 200);
  t.regex(await (await fetch(`${u}/latte/`)).text(), /<title>latte-flow<\/title>/);
  t.is((await fetch(`${u}/elsewhere`)).status, 404);
});

test.serial('fuzz: seeded mutations of valid bodies never crash the server; every refusal is OpenAI-shaped', async (t) => {
  const rng = new Rng(20261203);
  const bases: [string, unknown][] = [
    ['/v1/images/generations', { prompt: PROMPT, n: 1, steps: 2, seed: 3, guidance: [5, 5, 3, 1], sampler: 'heun', size: '64x64', response_format: 'b64_json', stream: false }],
    ['/v1/chat/completions', { messages: [{ role: 'system', content: 'x' }, { role: 'user', content: [{ type: 'image_url', image_url: { url: dataUrl(pngB64) } }, { type: 'text', text: QUESTION }] }], max_tokens: 4, temperature: 0.5, top_p: 0.9, seed: 1, stop: ['x'], stream: false }],
  ];
  const statuses = new Map<number, number>();
  for (let i = 0; i < 160; i++) {
    const [path, base] = bases[i % 2];
    const tree = toTree(base);
    let text: string;
    let what: string;
    if (i % 8 === 7) {
      const m = mutateJsonText(rng, JSON.stringify(base));
      text = Buffer.from(m.bytes).toString('utf8');
      what = m.what;
    } else {
      what = mutateTree(rng, tree);
      if (rng.chance(0.5)) what += `; ${mutateTree(rng, tree)}`;
      text = serialize(tree);
    }
    // a valid but slow request (many steps or tokens) is cut short by the client: that is a disconnect
    const r = await post(`${url}${path}`, text, { signal: AbortSignal.timeout(3000) }).catch((e: Error) => e);
    if (r instanceof Error) {
      t.is(r.name, 'TimeoutError', `case ${i} (${what}): ${r.message}`);
      continue;
    }
    statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
    const body = await r.text().catch(() => '');
    if (r.status === 200) continue;
    t.true([400, 413].includes(r.status), `case ${i} (${what}): status ${r.status} ${body.slice(0, 300)}`);
    let j: unknown;
    try {
      j = JSON.parse(body);
    } catch {
      j = body;
    }
    t.true(isOpenAIError(j), `case ${i} (${what}): ${body.slice(0, 300)}`);
  }
  t.log([...statuses].map(([s, n]) => `${s}: ${n}`).join(', '));
  t.deepEqual(logged.filter((l) => /^5\d\d /.test(l)), [], 'no internal error was logged');
  t.is((await fetch(`${url}/health`)).status, 200, 'still serving');
});
