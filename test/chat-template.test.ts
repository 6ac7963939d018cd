// The checkpoint's own chat template: Qwen2-VL's real template (fixtures/hf-text/qwen2-vl-chat-template.jinja)
// rendered with @huggingface/jinja gives what transformers' Qwen2VLProcessor.apply_chat_template gave
// (fixtures/hf-text/chat.json), and so does the fixed renderer it falls back to; the template files are
// found where transformers looks; and chat messages are validated with the index of the bad one.
import test, { type ExecutionContext } from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { ChatTemplate, loadChatTemplate } from '../lib/chat-template.ts';
import { checkMessages, renderChat, type ChatMessage } from '../lib/chat.ts';
import { LatteError } from '../lib/errors.ts';

const HF = fileURLToPath(new URL('./fixtures/hf-text/', import.meta.url));
const QWEN2_VL = fs.readFileSync(`${HF}qwen2-vl-chat-template.jinja`, 'utf8');
const chat = JSON.parse(fs.readFileSync(`${HF}chat.json`, 'utf8')) as {
  renders: { name: string; messages: ChatMessage[]; addGenerationPrompt: boolean; text: string }[];
};

function tempDir(t: ExecutionContext): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-chat-template-'));
  t.teardown(() => fs.rmSync(dir, { recursive: true, force: true }));
  return dir;
}

test("Qwen2-VL's chat template and the fixed renderer both render what transformers renders", (t) => {
  const tmpl = new ChatTemplate(QWEN2_VL, 'qwen2-vl-chat-template.jinja');
  t.true(chat.renders.length >= 12);
  for (const r of chat.renders) {
    const what = `${r.name} (generation prompt ${r.addGenerationPrompt})`;
    t.is(tmpl.render(r.messages, r.addGenerationPrompt), r.text, what);
    t.is(renderChat(r.messages, r.addGenerationPrompt), r.text, what);
  }
  // image parts that carry their image render the same placeholder
  const withImage: ChatMessage[] = [{ role: 'user', content: [{ type: 'image', image: new Uint8Array([1, 2]) }, { type: 'text', text: 'x' }] }];
  t.is(tmpl.render(withImage), renderChat(withImage));
});

test('the template is looked up as transformers does: processor_config, chat_template.json, .jinja, then tokenizer_config', (t) => {
  const dir = tempDir(t);
  const msgs: ChatMessage[] = [{ role: 'user', content: 'hi' }];
  const render = () => loadChatTemplate(dir, JSON.parse(fs.existsSync(path.join(dir, 'tokenizer_config.json')) ? fs.readFileSync(path.join(dir, 'tokenizer_config.json'), 'utf8') : '{}'))?.render(msgs);
  t.is(render(), undefined, 'no template: the caller falls back to the fixed renderer');
  fs.writeFileSync(path.join(dir, 'tokenizer_config.json'), JSON.stringify({ chat_template: 'T:{{ messages[0].content }}', eos_token: '<|im_end|>' }));
  t.is(render(), 'T:hi');
  fs.writeFileSync(path.join(dir, 'chat_template.jinja'), 'J:{{ messages[0].content }}{{ eos_token }}');
  t.is(render(), 'J:hi<|im_end|>', 'the special tokens of tokenizer_config.json are defined');
  fs.writeFileSync(path.join(dir, 'chat_template.json'), JSON.stringify({ chat_template: 'L:{{ messages[0].content }}' }));
  t.is(render(), 'L:hi');
  fs.writeFileSync(path.join(dir, 'processor_config.json'), JSON.stringify({ chat_template: 'P:{{ messages[0].content }}' }));
  t.is(render(), 'P:hi');
  // a list of named templates in tokenizer_config.json: the one named default
  const only = tempDir(t);
  const cfg = { chat_template: [{ name: 'tool_use', template: 'X' }, { name: 'default', template: 'D:{{ messages | length }}' }] };
  t.is(loadChatTemplate(only, cfg)?.render(msgs), 'D:1');
});

test('a template that does not parse is E_BAD_CONFIG naming its file; raise_exception is E_ARG', (t) => {
  const dir = tempDir(t);
  fs.writeFileSync(path.join(dir, 'chat_template.jinja'), '{% for m in messages %}{{ m.content }');
  const err = t.throws(() => loadChatTemplate(dir, {}), { instanceOf: LatteError });
  t.is(err?.code, 'E_BAD_CONFIG');
  t.regex(err?.message ?? '', /chat_template\.jinja/);
  const strict = new ChatTemplate("{% if messages[0].role != 'system' %}{{ raise_exception('a system message must lead') }}{% endif %}ok", 'strict');
  const refused = t.throws(() => strict.render([{ role: 'user', content: 'hi' }]), { instanceOf: LatteError });
  t.is(refused?.code, 'E_ARG');
  t.regex(refused?.message ?? '', /a system message must lead/);
  t.is(strict.render([{ role: 'system', content: 's' }]), 'ok');
  t.is(t.throws(() => loadChatTemplate(dir, { chat_template: 42 }), { instanceOf: LatteError })?.code, 'E_BAD_CONFIG', 'the .jinja file wins, and it is broken');
  fs.rmSync(path.join(dir, 'chat_template.jinja'));
  t.is(t.throws(() => loadChatTemplate(dir, { chat_template: 42 }), { instanceOf: LatteError })?.code, 'E_BAD_CONFIG', 'chat_template must be a string');
});

test('messages are validated: every bad message or part is E_ARG naming its index', (t) => {
  const bad: [string, unknown, RegExp][] = [
    ['not an array', { role: 'user', content: 'x' }, /history must be an array/],
    ['content a number', [{ role: 'user', content: 'fine' }, { role: 'user', content: 5 }], /history\[1\]\.content must be a string or an array/],
    ['content null', [{ role: 'user', content: null }], /history\[0\]\.content/],
    ['unknown role', [{ role: 'tool', content: 'x' }], /history\[0\] has an unknown role "tool"/],
    ['message not an object', ['hello'], /history\[0\] must be an object/],
    ['message null', [null], /history\[0\] must be an object/],
    ['part not an object', [{ role: 'user', content: ['x'] }], /history\[0\]\.content\[0\]/],
    ['part of unknown type', [{ role: 'user', content: [{ type: 'audio' }] }], /history\[0\]\.content\[0\] has an unknown type "audio"/],
    ['text part without text', [{ role: 'user', content: [{ type: 'text', text: 3 }] }], /history\[0\]\.content\[0\]\.text must be a string/],
  ];
  for (const [what, history, message] of bad) {
    const err = t.throws(() => checkMessages(history, 'history'), { instanceOf: LatteError }, what);
    t.is(err?.code, 'E_ARG', what);
    t.regex(err?.message ?? '', message, what);
  }
  t.is(t.throws(() => renderChat([{ role: 'user', content: 5 } as unknown as ChatMessage]), { instanceOf: LatteError })?.code, 'E_ARG');
  t.notThrows(() => checkMessages([{ role: 'system', content: [] }, { role: 'user', content: [{ type: 'image' }, { type: 'text', text: '' }] }], 'history'));
});
