/**
 * A small QR code encoder (ISO/IEC 18004): byte mode, error correction level M, versions 1
 * to 10 (the smallest that fits), and the mask with the lowest penalty score. Enough to
 * carry a user key's QR payload (keys/user-key.ts) to a camera; no runtime dependency.
 */
import { DgError } from '../../protocol/errors.js';
import { utf8 } from '../bytes.js';
import { rsRemainder } from './reed-solomon.js';
import { countBits, dataCodewords, LEVEL_M, MAX_VERSION, VERSIONS, type VersionInfo } from './tables.js';

export interface QrCode {
  version: number;
  /** Modules per side: 17 + 4 × version. */
  size: number;
  mask: number;
  /** Row-major, 1 = dark. */
  modules: Uint8Array;
}

class Grid {
  readonly modules: Uint8Array;
  readonly isFunction: Uint8Array;
  constructor(readonly size: number) {
    this.modules = new Uint8Array(size * size);
    this.isFunction = new Uint8Array(size * size);
  }
  get(row: number, col: number): number {
    return this.modules[row * this.size + col]!;
  }
  setFunction(row: number, col: number, dark: boolean): void {
    this.modules[row * this.size + col] = dark ? 1 : 0;
    this.isFunction[row * this.size + col] = 1;
  }
}

class BitBuffer {
  readonly bits: number[] = [];
  put(value: number, length: number): void {
    for (let i = length - 1; i >= 0; i--) this.bits.push((value >>> i) & 1);
  }
}

function chooseVersion(bytes: number): VersionInfo {
  for (const v of VERSIONS) if (4 + countBits(v.version) + 8 * bytes <= dataCodewords(v) * 8) return v;
  throw new DgError('TOO_LARGE', `QR: ${bytes} bytes do not fit version ${MAX_VERSION} at level M`);
}

/** Mode, count, data, terminator and padding: the data codewords. */
function dataBits(v: VersionInfo, data: Uint8Array): Uint8Array {
  const capacity = dataCodewords(v) * 8;
  const bb = new BitBuffer();
  bb.put(0b0100, 4);
  bb.put(data.length, countBits(v.version));
  for (const b of data) bb.put(b, 8);
  bb.put(0, Math.min(4, capacity - bb.bits.length));
  bb.put(0, (8 - (bb.bits.length % 8)) % 8);
  for (let pad = 0xec; bb.bits.length < capacity; pad ^= 0xec ^ 0x11) bb.put(pad, 8);
  const out = new Uint8Array(capacity / 8);
  bb.bits.forEach((bit, i) => (out[i >>> 3] = out[i >>> 3]! | (bit << (7 - (i & 7)))));
  return out;
}

/** Splits into blocks, adds each block's error correction, and interleaves. */
function codewords(v: VersionInfo, data: Uint8Array): Uint8Array {
  const blocks: Uint8Array[] = [];
  const ecs: Uint8Array[] = [];
  let at = 0;
  for (const n of v.blocks) {
    const block = data.subarray(at, at + n);
    at += n;
    blocks.push(block);
    ecs.push(rsRemainder(block, v.ecPerBlock));
  }
  const out: number[] = [];
  const longest = Math.max(...v.blocks);
  for (let i = 0; i < longest; i++) for (const b of blocks) if (i < b.length) out.push(b[i]!);
  for (let i = 0; i < v.ecPerBlock; i++) for (const e of ecs) out.push(e[i]!);
  return Uint8Array.from(out);
}

function drawFinder(g: Grid, row: number, col: number): void {
  for (let dr = -4; dr <= 4; dr++) {
    for (let dc = -4; dc <= 4; dc++) {
      const r = row + dr;
      const c = col + dc;
      if (r < 0 || c < 0 || r >= g.size || c >= g.size) continue;
      const dist = Math.max(Math.abs(dr), Math.abs(dc));
      g.setFunction(r, c, dist !== 2 && dist !== 4);
    }
  }
}

function drawAlignment(g: Grid, row: number, col: number): void {
  for (let dr = -2; dr <= 2; dr++) for (let dc = -2; dc <= 2; dc++) g.setFunction(row + dr, col + dc, Math.max(Math.abs(dr), Math.abs(dc)) !== 1);
}

/** The 15 format bits: level and mask, BCH(15,5) check bits, XOR 0x5412. */
function formatBits(mask: number): number {
  const data = (LEVEL_M.formatBits << 3) | mask;
  let rem = data;
  for (let i = 0; i < 10; i++) rem = (rem << 1) ^ ((rem >>> 9) * 0x537);
  return ((data << 10) | (rem & 0x3ff)) ^ 0x5412;
}

function drawFormat(g: Grid, mask: number): void {
  const bits = formatBits(mask);
  const bit = (i: number) => ((bits >>> i) & 1) === 1;
  const s = g.size;
  for (let i = 0; i <= 5; i++) g.setFunction(i, 8, bit(i));
  g.setFunction(7, 8, bit(6));
  g.setFunction(8, 8, bit(7));
  g.setFunction(8, 7, bit(8));
  for (let i = 9; i < 15; i++) g.setFunction(8, 14 - i, bit(i));
  for (let i = 0; i < 8; i++) g.setFunction(8, s - 1 - i, bit(i));
  for (let i = 8; i < 15; i++) g.setFunction(s - 15 + i, 8, bit(i));
  g.setFunction(s - 8, 8, true); // the dark module
}

/** Versions 7 and up: 6 version bits and 12 BCH(18,6) check bits, in two 3×6 blocks. */
function drawVersion(g: Grid, version: number): void {
  if (version < 7) return;
  let rem = version;
  for (let i = 0; i < 12; i++) rem = (rem << 1) ^ ((rem >>> 11) * 0x1f25);
  const bits = (version << 12) | (rem & 0xfff);
  for (let i = 0; i < 18; i++) {
    const dark = ((bits >>> i) & 1) === 1;
    const a = g.size - 11 + (i % 3);
    const b = Math.floor(i / 3);
    g.setFunction(b, a, dark);
    g.setFunction(a, b, dark);
  }
}

function drawFunctionPatterns(g: Grid, v: VersionInfo): void {
  for (let i = 0; i < g.size; i++) {
    g.setFunction(6, i, i % 2 === 0);
    g.setFunction(i, 6, i % 2 === 0);
  }
  drawFinder(g, 3, 3);
  drawFinder(g, 3, g.size - 4);
  drawFinder(g, g.size - 4, 3);
  const a = v.alignment;
  for (let i = 0; i < a.length; i++) {
    for (let j = 0; j < a.length; j++) {
      const corner = (i === 0 && j === 0) || (i === 0 && j === a.length - 1) || (i === a.length - 1 && j === 0);
      if (!corner) drawAlignment(g, a[i]!, a[j]!);
    }
  }
  drawFormat(g, 0); // reserves the format areas; the real bits are drawn after masking
  drawVersion(g, v.version);
}

/** Places the codewords in the two-column zigzag, bottom-right first, skipping the timing column. */
function drawCodewords(g: Grid, data: Uint8Array): void {
  let i = 0;
  const total = data.length * 8;
  for (let right = g.size - 1; right >= 1; right -= 2) {
    if (right === 6) right = 5;
    const upward = ((right + 1) & 2) === 0;
    for (let vert = 0; vert < g.size; vert++) {
      const row = upward ? g.size - 1 - vert : vert;
      for (let j = 0; j < 2; j++) {
        const col = right - j;
        const k = row * g.size + col;
        if (g.isFunction[k] === 1 || i >= total) continue;
        g.modules[k] = (data[i >>> 3]! >>> (7 - (i & 7))) & 1;
        i++;
      }
    }
  }
}

const MASKS: ((r: number, c: number) => boolean)[] = [
  (r, c) => (r + c) % 2 === 0,
  (r) => r % 2 === 0,
  (_r, c) => c % 3 === 0,
  (r, c) => (r + c) % 3 === 0,
  (r, c) => (Math.floor(r / 2) + Math.floor(c / 3)) % 2 === 0,
  (r, c) => ((r * c) % 2) + ((r * c) % 3) === 0,
  (r, c) => (((r * c) % 2) + ((r * c) % 3)) % 2 === 0,
  (r, c) => (((r + c) % 2) + ((r * c) % 3)) % 2 === 0,
];

function applyMask(g: Grid, mask: number): void {
  const f = MASKS[mask]!;
  for (let r = 0; r < g.size; r++) {
    for (let c = 0; c < g.size; c++) {
      const k = r * g.size + c;
      if (g.isFunction[k] === 0 && f(r, c)) g.modules[k] = g.modules[k]! ^ 1;
    }
  }
}

const FINDER_LIKE = ['10111010000', '00001011101'];

/** The penalty score of ISO/IEC 18004 §7.8.3 (runs, 2×2 blocks, finder-like patterns, balance). */
function penalty(g: Grid): number {
  const s = g.size;
  let score = 0;
  const lines: string[] = [];
  for (let r = 0; r < s; r++) {
    let row = '';
    let col = '';
    for (let c = 0; c < s; c++) {
      row += g.get(r, c);
      col += g.get(c, r);
    }
    lines.push(row, col);
  }
  for (const line of lines) {
    for (const m of line.matchAll(/0{5,}|1{5,}/g)) score += 3 + (m[0].length - 5);
    for (const p of FINDER_LIKE) for (let i = line.indexOf(p); i >= 0; i = line.indexOf(p, i + 1)) score += 40;
  }
  let dark = 0;
  for (let r = 0; r < s; r++) {
    for (let c = 0; c < s; c++) {
      const v = g.get(r, c);
      dark += v;
      if (r + 1 < s && c + 1 < s && v === g.get(r, c + 1) && v === g.get(r + 1, c) && v === g.get(r + 1, c + 1)) score += 3;
    }
  }
  score += Math.floor(Math.abs((dark * 20) / (s * s) - 10)) * 10;
  return score;
}

/**
 * Encodes `content` (UTF-8 for a string) as a QR code.
 *
 * @example
 * ```ts
 * const qr = encodeQr('dgk1:…');
 * qr.size; // 33 for version 4
 * ```
 */
export function encodeQr(content: string | Uint8Array): QrCode {
  const data = typeof content === 'string' ? utf8(content) : content;
  const v = chooseVersion(data.length);
  const size = 17 + 4 * v.version;
  const all = codewords(v, dataBits(v, data));
  let best: { mask: number; score: number; modules: Uint8Array } | null = null;
  for (let mask = 0; mask < 8; mask++) {
    const g = new Grid(size);
    drawFunctionPatterns(g, v);
    drawCodewords(g, all);
    applyMask(g, mask);
    drawFormat(g, mask);
    const score = penalty(g);
    if (best === null || score < best.score) best = { mask, score, modules: g.modules };
  }
  const chosen = best as { mask: number; modules: Uint8Array };
  return { version: v.version, size, mask: chosen.mask, modules: chosen.modules };
}
