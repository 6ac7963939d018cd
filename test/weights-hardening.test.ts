// Checkpoints that used to crash the process or load silently wrong: each is now refused at open
// or load with E_BAD_WEIGHTS and a reason. Files that crashed the reader open in a child process.
import test from 'ava';
import { execFile } from 'node:child_process';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { LatteError, LatteFlow } from '../lib/index.ts';
import { bytesOf, stBytes, type StTensor } from './helpers/safetensors.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-st-hard-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));
const tiny = fileURLToPath(new URL('./fixtures/tiny-model', import.meta.url));

/** A file from a raw JSON header text and data bytes, the header length given (default: exact). */
function rawSt(name: string, header: string, data: Uint8Array, headerLength?: number): string {
  const json = Buffer.from(header);
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(headerLength ?? json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  const file = path.join(dir, name);
  fs.writeFileSync(file, out);
  return file;
}

/** Opens and loads every tensor in a child process: a crash there fails this test only. */
function openInChild(file: string): Promise<{ ok?: boolean; code?: string; message?: string; crash?: string }> {
  const script = fileURLToPath(new URL('./scripts/open-checkpoint.mts', import.meta.url));
  return new Promise((resolve) => {
    execFile(process.execPath, ['--import=tsx', script, file], { timeout: 60_000 }, (err, stdout, stderr) => {
      const line = stdout.trim().split('\n').pop() ?? '';
      try {
        resolve(JSON.parse(line));
      } catch {
        resolve({ crash: `${(err as { signal?: string })?.signal ?? (err as { code?: number })?.code}: ${stderr.slice(-400)}` });
      }
    });
  });
}

const four = bytesOf(new Float32Array([1, 2, 3, 4]));

test('a dtype or shape nested 100,000 levels deep is refused, not a stack overflow', async (t) => {
  const deep = '['.repeat(100_000) + ']'.repeat(100_000);
  for (const [name, header] of [
    ['deep-dtype', `{"w":{"dtype":${deep},"shape":[4],"data_offsets":[0,16]}}`],
    ['deep-shape', `{"w":{"dtype":"F32","shape":${deep},"data_offsets":[0,16]}}`],
    ['deep-meta', `{"__metadata__":{"k":${deep}},"w":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}`],
  ]) {
    const r = await openInChild(rawSt(`${name}.safetensors`, header, four));
    t.is(r.code, 'E_BAD_WEIGHTS', `${name}: ${JSON.stringify(r)}`);
    t.true((r.message ?? '').length < 1000, `${name}: the message stays short`);
  }
});

test('a shape whose element count overflows 64 bits is refused at open', async (t) => {
  // 687084323673 * 53695721 = 2^65 + 1: wrapped, it claimed one f32 (4 bytes); 2^32 * 2^32 wrapped to 0
  const cases: [string, string, Uint8Array][] = [
    ['wrap-one', '{"w":{"dtype":"F32","shape":[687084323673,53695721],"data_offsets":[0,4]}}', four.slice(0, 4)],
    ['wrap-zero', `{"w":{"dtype":"F32","shape":[${2 ** 32},${2 ** 32}],"data_offsets":[0,0]}}`, new Uint8Array(0)],
    ['wrap-three', `{"w":{"dtype":"F32","shape":[${2 ** 22},${2 ** 21},${2 ** 21}],"data_offsets":[0,0]}}`, new Uint8Array(0)],
  ];
  for (const [name, header, data] of cases) {
    const r = await openInChild(rawSt(`${name}.safetensors`, header, data));
    t.is(r.code, 'E_BAD_WEIGHTS', `${name}: ${JSON.stringify(r)}`);
    t.regex(r.message ?? '', /2\^40 elements|bad shape/, name);
  }
  // an empty tensor with a large dimension is still fine
  const ok = await openInChild(rawSt('zero-dim.safetensors', `{"w":{"dtype":"F32","shape":[0,${2 ** 40}],"data_offsets":[0,0]}}`, new Uint8Array(0)));
  t.deepEqual(ok, { ok: true });
});

test('tensors must tile the data section exactly: a header length off by one byte is refused', async (t) => {
  // as writers do: the JSON padded with spaces to a multiple of 8 bytes, which loads
  let header = '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}';
  header += ' '.repeat((8 - (header.length % 8)) % 8 || 8);
  t.deepEqual(await openInChild(rawSt('padded.safetensors', header, four)), { ok: true });
  // one byte short: the last space falls into the data, every tensor would shift by a byte
  const short = await openInChild(rawSt('short.safetensors', header, four, Buffer.byteLength(header) - 1));
  t.is(short.code, 'E_BAD_WEIGHTS', JSON.stringify(short));
  t.regex(short.message ?? '', /header length/);
  // a hole between tensors, and bytes after the last one
  const hole = await openInChild(rawSt('hole.safetensors', '{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}', four));
  t.is(hole.code, 'E_BAD_WEIGHTS', JSON.stringify(hole));
  const tail = await openInChild(rawSt('tail.safetensors', '{"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]}}', four));
  t.is(tail.code, 'E_BAD_WEIGHTS', JSON.stringify(tail));
  t.regex(tail.message ?? '', /after the last tensor/);
});

test('NaN and Inf weights are refused at load, naming the tensor', async (t) => {
  const cases: [string, StTensor][] = [
    ['nan.f32', { dtype: 'F32', shape: [3], data: bytesOf(new Float32Array([1, NaN, 2])) }],
    ['inf.bf16', { dtype: 'BF16', shape: [2], data: bytesOf(new Uint16Array([0x3f80, 0x7f80])) }],
    ['ninf.f16', { dtype: 'F16', shape: [2], data: bytesOf(new Uint16Array([0xfc00, 0x3c00])) }],
    ['big.f64', { dtype: 'F64', shape: [2], data: bytesOf(new Float64Array([1, 1e300])) }], // finite, but not as f32
  ];
  for (const [name, tensor] of cases) {
    const file = path.join(dir, `${name}.safetensors`);
    fs.writeFileSync(file, stBytes({ [name]: tensor, fine: { dtype: 'F32', shape: [1], data: four.slice(0, 4) } }));
    const r = await openInChild(file);
    t.is(r.code, 'E_BAD_WEIGHTS', `${name}: ${JSON.stringify(r)}`);
    t.regex(r.message ?? '', new RegExp(`'${name.replace('.', '\\.')}' holds a NaN or infinite value`));
  }
});

test('a model with one NaN weight fails LatteFlow.load with E_BAD_WEIGHTS naming it', async (t) => {
  const m = path.join(dir, 'nan-model');
  fs.cpSync(tiny, m, { recursive: true });
  const file = path.join(m, 'generator', 'model.safetensors');
  const bytes = fs.readFileSync(file);
  const n = Number(bytes.readBigUInt64LE(0));
  const header = JSON.parse(bytes.subarray(8, 8 + n).toString('utf8')) as Record<string, { dtype: string; data_offsets: [number, number] }>;
  const [name, entry] = Object.entries(header).find(([k, v]) => k !== '__metadata__' && v.dtype === 'F32' && v.data_offsets[1] > v.data_offsets[0])!;
  bytes.writeFloatLE(NaN, 8 + n + entry.data_offsets[0]);
  fs.writeFileSync(file, bytes);
  const err = await t.throwsAsync(LatteFlow.load(m, { backend: 'cpu', threads: 1 }), { instanceOf: LatteError });
  t.is(err?.code, 'E_BAD_WEIGHTS');
  t.true(err?.message.includes(name), err?.message);
});

test('a header with a BOM or padded with NULs is refused (only spaces may pad it)', async (t) => {
  const header = '{"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}}';
  for (const [name, text] of [
    ['bom', `\uFEFF${header}`],
    ['nul-padded', `${header}\0\0\0`],
    ['text-after', `${header} x`],
  ]) {
    const r = await openInChild(rawSt(`${name}.safetensors`, text, four));
    t.is(r.code, 'E_BAD_WEIGHTS', `${name}: ${JSON.stringify(r)}`);
    t.regex(r.message ?? '', /not a JSON object padded with spaces/, name);
  }
});
