// Safetensors loading: a good checkpoint loads bit-exactly in every supported form, and each kind of
// damaged or inconsistent file is refused with E_BAD_WEIGHTS (never a crash).
import test from 'ava';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { LatteError, openCheckpoint } from '../lib/index.ts';
import { cpuEngine } from './helpers/engine.ts';
import { fromBf16Bits, randn, toBf16Bits } from './helpers/reference.ts';
import { bytesOf, stBytes, writeSt, type StTensor } from './helpers/safetensors.ts';

const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'latte-st-'));
test.after.always(() => fs.rmSync(dir, { recursive: true, force: true }));

const w = randn(12, 1);
const good: Record<string, StTensor> = {
  'w.f32': { dtype: 'F32', shape: [3, 4], data: bytesOf(w) },
  'w.bf16': { dtype: 'BF16', shape: [12], data: bytesOf(Uint16Array.from(w, toBf16Bits)) },
  'w.f64': { dtype: 'F64', shape: [2, 2], data: bytesOf(new Float64Array([1.5, -2, 1 / 3, 1e-3])) },
  'ids.i64': { dtype: 'I64', shape: [3], data: bytesOf(new BigInt64Array([0n, -5n, 2147483647n])) },
  'empty': { dtype: 'F32', shape: [0, 4], data: new Uint8Array(0) },
};

test('a good checkpoint: names, info, metadata, and bit-exact loads with conversions', async (t) => {
  const file = path.join(dir, 'good.safetensors');
  writeSt(file, good, { config: '{"hidden_size": 4}' });
  const ck = openCheckpoint(file);
  t.deepEqual(ck.names().sort(), Object.keys(good).sort());
  t.deepEqual(ck.info('w.bf16'), { dtype: 'BF16', shape: [12], file });
  t.deepEqual(ck.metadata(), { config: '{"hidden_size": 4}' });
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  t.deepEqual(Array.from(await e.load(ck, 'w.f32').readFloat32()), Array.from(w));
  const bf = e.load(ck, 'w.bf16');
  t.is(bf.dtype, 'bf16');
  t.deepEqual(Array.from((await bf.read()) as Uint16Array), Array.from(w, toBf16Bits));
  t.deepEqual(Array.from(await e.load(ck, 'w.bf16', 'f32').readFloat32()), Array.from(w, (x) => fromBf16Bits(toBf16Bits(x))));
  t.deepEqual(Array.from((await e.load(ck, 'w.f32', 'bf16').read()) as Uint16Array), Array.from(w, toBf16Bits));
  t.deepEqual(Array.from(await e.load(ck, 'w.f64').readFloat32()), [1.5, -2, Math.fround(1 / 3), Math.fround(1e-3)]);
  const ids = e.load(ck, 'ids.i64');
  t.is(ids.dtype, 'i32');
  t.deepEqual(Array.from((await ids.read()) as Int32Array), [0, -5, 2147483647]);
  t.is(t.throws(() => e.load(ck, 'ids.i64', 'f32'), { instanceOf: LatteError })?.code, 'E_DTYPE');
  t.is(t.throws(() => e.load(ck, 'w.f32', 'i32'), { instanceOf: LatteError })?.code, 'E_DTYPE');
  t.is(t.throws(() => e.load(ck, 'nope'), { instanceOf: LatteError })?.code, 'E_BAD_WEIGHTS');
  t.deepEqual(e.load(ck, 'empty').shape, [0, 4]);
  ck.close();
  t.is(t.throws(() => ck.names(), { instanceOf: LatteError })?.code, 'E_DISPOSED');
});

test('a weight loaded from a checkpoint packs and multiplies like the same weight uploaded', async (t) => {
  const file = path.join(dir, 'lin.safetensors');
  const wl = randn(40 * 33, 7);
  writeSt(file, { 'proj.weight': { dtype: 'F32', shape: [40, 33], data: bytesOf(wl) } });
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const x = e.tensor(randn(5 * 33, 8), [5, 33]);
  const fromFile = await e.linear(x, e.packLinear(e.load(openCheckpoint(file), 'proj.weight'))).readFloat32();
  const uploaded = await e.linear(x, e.packLinear(e.tensor(wl, [40, 33]))).readFloat32();
  t.deepEqual(Array.from(fromFile), Array.from(uploaded));
});

test('sharded checkpoints: a directory of shards and a Hugging Face index', async (t) => {
  const d = path.join(dir, 'sharded');
  fs.mkdirSync(d);
  writeSt(path.join(d, 'model-00001-of-00002.safetensors'), { a: good['w.f32'] });
  writeSt(path.join(d, 'model-00002-of-00002.safetensors'), { b: good['w.bf16'] });
  const plain = openCheckpoint(d);
  t.deepEqual(plain.names(), ['a', 'b']);
  fs.writeFileSync(path.join(d, 'model.safetensors.index.json'), JSON.stringify({ weight_map: { a: 'model-00001-of-00002.safetensors', b: 'model-00002-of-00002.safetensors' } }));
  const viaDir = openCheckpoint(d);
  const viaIndex = openCheckpoint(path.join(d, 'model.safetensors.index.json'));
  t.deepEqual(viaDir.names(), ['a', 'b']);
  t.regex(viaIndex.info('b').file, /00002/);
  fs.writeFileSync(path.join(dir, 'bad.index.json'), JSON.stringify({ weight_map: { a: 'sharded/model-00001-of-00002.safetensors' } }));
  t.is(t.throws(() => openCheckpoint(path.join(dir, 'bad.index.json')), { instanceOf: LatteError })?.code, 'E_BAD_WEIGHTS');
  fs.writeFileSync(path.join(d, 'lying.index.json'), JSON.stringify({ weight_map: { zzz: 'model-00001-of-00002.safetensors' } }));
  t.regex(t.throws(() => openCheckpoint(path.join(d, 'lying.index.json')), { instanceOf: LatteError })?.message ?? '', /zzz/);
});

function damaged(name: string, bytes: Uint8Array): string {
  const p = path.join(dir, `${name}.safetensors`);
  fs.writeFileSync(p, bytes);
  return p;
}
function header(h: unknown, data = new Uint8Array(16)): Uint8Array {
  const json = Buffer.from(typeof h === 'string' ? h : JSON.stringify(h));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

test('damaged or inconsistent files are refused with E_BAD_WEIGHTS and a reason', (t) => {
  const full = stBytes(good);
  const cases: [string, string | Uint8Array, RegExp][] = [
    ['missing', path.join(dir, 'does-not-exist.safetensors'), /no such file/],
    ['empty dir', fs.mkdtempSync(path.join(dir, 'none-')), /no \.safetensors/],
    ['tiny', new Uint8Array(5), /shorter than/],
    ['truncated data', full.subarray(0, full.length - 7), /outside the file|truncated/],
    ['truncated header', full.subarray(0, 40), /header runs past/],
    ['huge header length', header({}).fill(0xff, 0, 8), /implausible/],
    ['not json', header('{"a": [1, 2'), /not a JSON object/],
    ['json array', header('[1, 2, 3]'), /not a JSON object/],
    ['missing fields', header({ a: { dtype: 'F32', shape: [4] } }), /lacks/],
    ['bad dtype', header({ a: { dtype: 'F8_E4M3', shape: [4], data_offsets: [0, 4] } }), /unsupported dtype/],
    ['negative dim', header({ a: { dtype: 'F32', shape: [-4], data_offsets: [0, 16] } }), /bad shape/],
    ['size mismatch', header({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 16] } }), /needs 12/],
    ['past the end', header({ a: { dtype: 'F32', shape: [8], data_offsets: [0, 32] } }), /outside the file/],
    ['reversed offsets', header({ a: { dtype: 'F32', shape: [0], data_offsets: [8, 4] } }), /outside the file/],
    ['overlap', header({ a: { dtype: 'F32', shape: [3], data_offsets: [0, 12] }, b: { dtype: 'F32', shape: [2], data_offsets: [8, 16] } }), /overlap/],
  ];
  for (const [name, input, why] of cases) {
    const p = typeof input === 'string' ? input : damaged(name.replace(/ /g, '-'), input);
    const err = t.throws(() => openCheckpoint(p), { instanceOf: LatteError }, name);
    t.is(err?.code, 'E_BAD_WEIGHTS', name);
    t.regex(err?.message ?? '', why, name);
  }
});

test('an integer that does not fit int32 fails on the stream with E_BAD_WEIGHTS', async (t) => {
  const p = damaged('wide-ids', stBytes({ ids: { dtype: 'I64', shape: [2], data: bytesOf(new BigInt64Array([1n, 1n << 40n])) } }));
  const e = cpuEngine(1);
  t.teardown(() => e.dispose());
  const err = await t.throwsAsync(() => e.load(openCheckpoint(p), 'ids').read(), { instanceOf: LatteError });
  t.is(err?.code, 'E_BAD_WEIGHTS');
});
