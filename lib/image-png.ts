/**
 * A small PNG decoder to 8-bit RGB (fast-png returned packed samples for bit depths below 8, got
 * interlaced low-depth images wrong, and inflated without bound). Matches libpng's expand + strip_16:
 * 1/2/4-bit grey is scaled by 255 / (2^d - 1), 16-bit samples keep their high byte, palette indices
 * past the palette are black, alpha (and tRNS) is dropped. Image data is inflated with a cap equal to
 * the size the header declares, so a zlib bomb stops there.
 */
import zlib from 'node:zlib';

export interface PngHeader {
  width: number;
  height: number;
  depth: number;
  colorType: number;
  interlaced: boolean;
}

const SIGNATURE = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
const CHANNELS: Record<number, number> = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 };
const DEPTHS: Record<number, number[]> = { 0: [1, 2, 4, 8, 16], 2: [8, 16], 3: [1, 2, 4, 8], 4: [8, 16], 6: [8, 16] };
// Adam7 passes: x0, y0, dx, dy
const ADAM7 = [[0, 0, 8, 8], [4, 0, 8, 8], [0, 4, 4, 8], [2, 0, 4, 4], [0, 2, 2, 4], [1, 0, 2, 2], [0, 1, 1, 2]];
const WHOLE = [[0, 0, 1, 1]];

const u32 = (b: Uint8Array, p: number): number => ((b[p] << 24) | (b[p + 1] << 16) | (b[p + 2] << 8) | b[p + 3]) >>> 0;
const chunkType = (b: Uint8Array, p: number): string => String.fromCharCode(b[p], b[p + 1], b[p + 2], b[p + 3]);

export function isPng(b: Uint8Array): boolean {
  return b.length >= 8 && SIGNATURE.every((v, i) => b[i] === v);
}

/** The IHDR chunk, which the format requires to come first. */
export function readPngHeader(b: Uint8Array): PngHeader {
  if (b.length < 33 || u32(b, 8) !== 13 || chunkType(b, 12) !== 'IHDR') throw new Error('PNG without a complete IHDR header');
  const [width, height] = [u32(b, 16), u32(b, 20)];
  const [depth, colorType, compression, filter, interlace] = b.subarray(24, 29);
  if (width === 0 || height === 0 || width > 0x7fffffff || height > 0x7fffffff) throw new Error(`PNG declares a bad size ${width}x${height}`);
  if (!DEPTHS[colorType]?.includes(depth)) throw new Error(`PNG colour type ${colorType} with bit depth ${depth} is invalid`);
  if (compression !== 0 || filter !== 0 || interlace > 1) throw new Error('PNG uses an unknown compression, filter or interlace method');
  return { width, height, depth, colorType, interlaced: interlace === 1 };
}

/** Decodes a whole PNG; the caller has checked the header's size against its limits. */
export function decodePng(b: Uint8Array): { width: number; height: number; data: Uint8Array } {
  const hd = readPngHeader(b);
  const { width: W, height: H, depth, colorType } = hd;
  const idat: Uint8Array[] = [];
  let palette: Uint8Array | undefined;
  for (let p = 8; ; ) {
    if (p + 12 > b.length) throw new Error('truncated PNG (no IEND chunk)');
    const len = u32(b, p);
    const type = chunkType(b, p + 4);
    if (len > 0x7fffffff || p + 12 + len > b.length) throw new Error(`truncated PNG chunk ${JSON.stringify(type)}`);
    const critical = (b[p + 4] & 0x20) === 0;
    if (critical && zlib.crc32(b.subarray(p + 4, p + 8 + len)) !== u32(b, p + 8 + len)) throw new Error(`PNG chunk ${JSON.stringify(type)} fails its CRC`);
    const data = b.subarray(p + 8, p + 8 + len);
    p += 12 + len;
    if (type === 'IEND') break;
    if (type === 'IDAT') idat.push(data);
    else if (type === 'PLTE') {
      if (len === 0 || len % 3 !== 0 || len > 256 * 3) throw new Error(`PNG palette of ${len} bytes`);
      palette = data;
    } else if (critical && type !== 'IHDR') throw new Error(`PNG has an unknown critical chunk ${JSON.stringify(type)}`);
  }
  if (idat.length === 0) throw new Error('PNG without image data (IDAT)');
  if (colorType === 3 && !palette) throw new Error('palette PNG without a PLTE chunk');
  const ch = CHANNELS[colorType];
  const bits = ch * depth; // per pixel
  const bpp = Math.max(1, bits >> 3); // the filters' byte distance
  const passes = (hd.interlaced ? ADAM7 : WHOLE)
    .map(([x0, y0, dx, dy]) => ({ x0, y0, dx, dy, w: Math.ceil((W - x0) / dx), h: Math.ceil((H - y0) / dy) }))
    .filter((s) => s.w > 0 && s.h > 0);
  const expected = passes.reduce((n, s) => n + s.h * (1 + Math.ceil((s.w * bits) / 8)), 0);
  let raw: Uint8Array;
  try {
    raw = zlib.inflateSync(Buffer.concat(idat), { maxOutputLength: expected });
  } catch (e) {
    if ((e as { code?: string }).code === 'ERR_BUFFER_TOO_LARGE') throw new Error(`PNG image data inflates past the ${expected} bytes its ${W}x${H} header declares`);
    throw new Error(`PNG image data is corrupt: ${(e as Error).message}`);
  }
  if (raw.length < expected) throw new Error(`truncated PNG image data (${raw.length} of ${expected} bytes)`);
  const out = new Uint8Array(W * H * 3);
  const max = (1 << depth) - 1;
  let off = 0;
  for (const s of passes) {
    const rowBytes = Math.ceil((s.w * bits) / 8);
    let prev: Uint8Array | undefined;
    for (let y = 0; y < s.h; y++, off += 1 + rowBytes) {
      const line = raw.subarray(off + 1, off + 1 + rowBytes);
      unfilter(raw[off], line, prev, bpp);
      prev = line;
      for (let i = 0, o = ((s.y0 + y * s.dy) * W + s.x0) * 3; i < s.w; i++, o += s.dx * 3) {
        if (depth < 8) {
          const bit = i * depth;
          const v = (line[bit >> 3] >> (8 - depth - (bit & 7))) & max;
          if (colorType === 3) setPalette(out, o, palette!, v);
          else out[o] = out[o + 1] = out[o + 2] = (v * 255) / max;
        } else if (colorType === 3) setPalette(out, o, palette!, line[i]);
        else {
          const k = depth === 16 ? 2 : 1; // the high byte of a 16-bit sample comes first
          const px = i * ch * k;
          if (ch >= 3) for (let c = 0; c < 3; c++) out[o + c] = line[px + c * k];
          else out[o] = out[o + 1] = out[o + 2] = line[px];
        }
      }
    }
  }
  return { width: W, height: H, data: out };
}

function setPalette(out: Uint8Array, o: number, pal: Uint8Array, idx: number): void {
  const ok = idx * 3 < pal.length;
  for (let c = 0; c < 3; c++) out[o + c] = ok ? pal[idx * 3 + c] : 0;
}

/** Undoes one scanline's filter in place; `prev` is the previous line of the same pass. */
function unfilter(type: number, line: Uint8Array, prev: Uint8Array | undefined, bpp: number): void {
  const n = line.length;
  switch (type) {
    case 0:
      return;
    case 1:
      for (let i = bpp; i < n; i++) line[i] += line[i - bpp];
      return;
    case 2:
      if (prev) for (let i = 0; i < n; i++) line[i] += prev[i];
      return;
    case 3:
      for (let i = 0; i < n; i++) line[i] += ((i >= bpp ? line[i - bpp] : 0) + (prev ? prev[i] : 0)) >> 1;
      return;
    case 4:
      for (let i = 0; i < n; i++) {
        const a = i >= bpp ? line[i - bpp] : 0;
        const b = prev ? prev[i] : 0;
        const c = i >= bpp && prev ? prev[i - bpp] : 0;
        const pa = Math.abs(b - c);
        const pb = Math.abs(a - c);
        const pc = Math.abs(a + b - 2 * c);
        line[i] += pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
      }
      return;
    default:
      throw new Error(`PNG scanline filter ${type} is unknown`);
  }
}
