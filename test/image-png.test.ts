// PNG decoding of every colour type and bit depth, interlaced or not, against values computed here
// from the samples (libpng's expand + strip_16: v * 255 / (2^d - 1) below 8 bits, the high byte of 16).
// The PNGs are written by a small encoder below that uses all five scanline filters.
import test from 'ava';
import zlib from 'node:zlib';
import { decode as fastPngDecode } from 'fast-png';
import { LatteError } from '../lib/errors.ts';
import { decodeImage } from '../lib/image.ts';
import { PNG_SIGNATURE, pngChunk } from './helpers/png.ts';

const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };

interface Spec {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  samples: ArrayLike<number>; // row-major, CHANNELS[colorType] a pixel
  interlace?: boolean;
  palette?: number[][];
  idat?: Uint8Array; // replaces the compressed image data
}


function paeth(a: number, b: number, c: number): number {
  const [pa, pb, pc] = [Math.abs(b - c), Math.abs(a - c), Math.abs(a + b - 2 * c)];
  return pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
}

/** Scanlines (filter byte + packed samples) of every pass; row r of a pass uses filter r % 5. */
function scanlines(s: Spec): Uint8Array {
  const ch = CHANNELS[s.colorType];
  const bpp = Math.max(1, (ch * s.depth) >> 3);
  const rows: number[] = [];
  for (const [x0, y0, dx, dy] of s.interlace ? ADAM7 : [[0, 0, 1, 1]]) {
    const [pw, ph] = [Math.ceil((s.width - x0) / dx), Math.ceil((s.height - y0) / dy)];
    if (pw <= 0 || ph <= 0) continue;
    let prev = new Uint8Array(Math.ceil((pw * ch * s.depth) / 8));
    for (let r = 0; r < ph; r++) {
      const line = new Uint8Array(prev.length);
      for (let i = 0; i < pw; i++)
        for (let c = 0; c < ch; c++) {
          const v = s.samples[((y0 + r * dy) * s.width + x0 + i * dx) * ch + c];
          const k = i * ch + c;
          if (s.depth === 16) [line[2 * k], line[2 * k + 1]] = [v >> 8, v & 255];
          else if (s.depth === 8) line[k] = v;
          else line[(k * s.depth) >> 3] |= v << (8 - s.depth - ((k * s.depth) & 7));
        }
      const f = r % 5;
      rows.push(f);
      for (let i = 0; i < line.length; i++) {
        const [a, b, c] = [i >= bpp ? line[i - bpp] : 0, prev[i], i >= bpp ? prev[i - bpp] : 0];
        rows.push((line[i] - [0, a, b, (a + b) >> 1, paeth(a, b, c)][f]) & 255);
      }
      prev = line;
    }
  }
  return Uint8Array.from(rows);
}

function png(s: Spec): Uint8Array {
  const ihdr = Buffer.alloc(13);
  ihdr.writeUInt32BE(s.width, 0);
  ihdr.writeUInt32BE(s.height, 4);
  ihdr.set([s.depth, s.colorType, 0, 0, s.interlace ? 1 : 0], 8);
  const z = s.idat ?? zlib.deflateSync(scanlines(s));
  const half = Math.floor(z.length / 2); // two IDAT chunks
  return Buffer.concat([
    PNG_SIGNATURE,
    pngChunk('IHDR', ihdr),
    ...(s.palette ? [pngChunk('PLTE', Uint8Array.from(s.palette.flat()))] : []),
    pngChunk('IDAT', z.subarray(0, half)),
    pngChunk('IDAT', z.subarray(half)),
    pngChunk('IEND', new Uint8Array(0)),
  ]);
}

/** What a decoder must return: RGB bytes from the samples. */
function expected(s: Spec): number[] {
  const ch = CHANNELS[s.colorType];
  const max = 2 ** s.depth - 1;
  const to8 = (v: number): number => (s.depth === 16 ? v >> 8 : s.depth === 8 ? v : (v * 255) / max);
  const out: number[] = [];
  for (let p = 0; p < s.width * s.height; p++) {
    if (s.palette) out.push(...(s.palette[s.samples[p]] ?? [0, 0, 0]).slice(0, 3));
    else if (ch >= 3) for (let c = 0; c < 3; c++) out.push(to8(s.samples[p * ch + c]));
    else out.push(...Array(3).fill(to8(s.samples[p * ch])));
  }
  return out;
}

function randomSamples(n: number, depth: number, seed: number): number[] {
  let x = seed;
  return Array.from({ length: n }, () => ((x = (x * 1103515245 + 12345) >>> 0) >>> 8) % 2 ** depth);
}

const [W, H] = [13, 11]; // odd sizes: partial bytes at row ends, all seven Adam7 passes non-empty

test('1-, 2- and 4-bit grey PNGs are unpacked and scaled to 0..255, interlaced or not', async (t) => {
  for (const depth of [1, 2, 4])
    for (const interlace of [false, true]) {
      const s: Spec = { width: W, height: H, depth, colorType: 0, samples: randomSamples(W * H, depth, depth), interlace };
      const img = await decodeImage(png(s));
      t.deepEqual([img.width, img.height], [W, H]);
      t.deepEqual(Array.from(img.data), expected(s), `${depth}-bit grey${interlace ? ', interlaced' : ''}`);
    }
  // the exact scale: 2-bit 0..3 -> 0, 85, 170, 255
  const img = await decodeImage(png({ width: 4, height: 1, depth: 2, colorType: 0, samples: [0, 1, 2, 3] }));
  t.deepEqual(Array.from(img.data), [0, 0, 0, 85, 85, 85, 170, 170, 170, 255, 255, 255]);
});

test('palette PNGs of 1, 2, 4 and 8 bits map indices to colours; an index past the palette is black', async (t) => {
  for (const depth of [1, 2, 4, 8])
    for (const interlace of [false, true]) {
      const n = 2 ** depth - (depth > 1 ? 1 : 0); // one index short of full above 1 bit
      const palette = Array.from({ length: n }, (_, i) => [(i * 53) % 256, (i * 97 + 11) % 256, (i * 31 + 200) % 256]);
      const s: Spec = { width: W, height: H, depth, colorType: 3, samples: randomSamples(W * H, depth, 7 + depth), interlace, palette };
      const img = await decodeImage(png(s));
      t.deepEqual(Array.from(img.data), expected(s), `${depth}-bit palette${interlace ? ', interlaced' : ''}`);
    }
});

test('8- and 16-bit grey, grey+alpha, RGB and RGBA PNGs, interlaced or not; the encoder agrees with fast-png', async (t) => {
  for (const colorType of [0, 2, 4, 6])
    for (const depth of [8, 16])
      for (const interlace of [false, true]) {
        const s: Spec = { width: W, height: H, depth, colorType, samples: randomSamples(W * H * CHANNELS[colorType], depth, colorType * 31 + depth), interlace };
        const bytes = png(s);
        const img = await decodeImage(bytes);
        t.deepEqual(Array.from(img.data), expected(s), `colour type ${colorType}, ${depth} bits${interlace ? ', interlaced' : ''}`);
        if (!interlace) t.deepEqual(Array.from(fastPngDecode(bytes).data), Array.from(s.samples)); // checks the test's own encoder
      }
});

test('PNG bombs and broken PNGs are E_BAD_IMAGE', async (t) => {
  const code = async (b: Uint8Array, message: RegExp) => (await t.throwsAsync(() => decodeImage(b), { instanceOf: LatteError, message }))?.code;
  // 100x100 declared, 50 MB of image data: inflating stops at the declared size
  const bomb = png({ width: 100, height: 100, depth: 8, colorType: 0, samples: [], idat: zlib.deflateSync(Buffer.alloc(50e6)) });
  t.is(await code(bomb, /inflates past the 10100 bytes/), 'E_BAD_IMAGE');
  const s: Spec = { width: W, height: H, depth: 8, colorType: 2, samples: randomSamples(W * H * 3, 8, 5) };
  const short = png({ ...s, idat: zlib.deflateSync(scanlines(s).subarray(0, 50)) });
  t.is(await code(short, /truncated PNG image data/), 'E_BAD_IMAGE');
  const good = png(s);
  const flipped = good.slice();
  flipped[good.length - 20] ^= 1; // inside the last IDAT
  t.is(await code(flipped, /CRC|corrupt/), 'E_BAD_IMAGE');
  const badFilter = png({ ...s, idat: zlib.deflateSync(scanlines(s).map((v, i) => (i === 0 ? 9 : v))) });
  t.is(await code(badFilter, /filter 9/), 'E_BAD_IMAGE');
  t.is(await code(png({ ...s, colorType: 3, depth: 8, samples: [] }), /PLTE/), 'E_BAD_IMAGE');
  t.is(await code(png({ ...s, depth: 4 }), /colour type 2 with bit depth 4/), 'E_BAD_IMAGE');
});
