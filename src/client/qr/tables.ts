/**
 * The QR code tables this encoder needs (ISO/IEC 18004): error correction level M only,
 * versions 1 to 10, which hold up to 213 bytes in byte mode — plenty for a key payload.
 */

export interface VersionInfo {
  version: number;
  /** Error correction codewords per block. */
  ecPerBlock: number;
  /** Data codewords of each block, in order (short blocks first). */
  blocks: number[];
  /** Centers of the alignment patterns on each axis (empty for version 1). */
  alignment: number[];
  /** Unused bits after the last codeword. */
  remainderBits: number;
}

export const LEVEL_M = { formatBits: 0b00 } as const;
export const MAX_VERSION = 10;

export const VERSIONS: readonly VersionInfo[] = [
  { version: 1, ecPerBlock: 10, blocks: [16], alignment: [], remainderBits: 0 },
  { version: 2, ecPerBlock: 16, blocks: [28], alignment: [6, 18], remainderBits: 7 },
  { version: 3, ecPerBlock: 26, blocks: [44], alignment: [6, 22], remainderBits: 7 },
  { version: 4, ecPerBlock: 18, blocks: [32, 32], alignment: [6, 26], remainderBits: 7 },
  { version: 5, ecPerBlock: 24, blocks: [43, 43], alignment: [6, 30], remainderBits: 7 },
  { version: 6, ecPerBlock: 16, blocks: [27, 27, 27, 27], alignment: [6, 34], remainderBits: 7 },
  { version: 7, ecPerBlock: 18, blocks: [31, 31, 31, 31], alignment: [6, 22, 38], remainderBits: 0 },
  { version: 8, ecPerBlock: 22, blocks: [38, 38, 39, 39], alignment: [6, 24, 42], remainderBits: 0 },
  { version: 9, ecPerBlock: 22, blocks: [36, 36, 36, 37, 37], alignment: [6, 26, 46], remainderBits: 0 },
  { version: 10, ecPerBlock: 26, blocks: [43, 43, 43, 43, 44], alignment: [6, 28, 50], remainderBits: 0 },
];

export function dataCodewords(v: VersionInfo): number {
  return v.blocks.reduce((a, b) => a + b, 0);
}

/** Bits of the byte-mode character count: 8 up to version 9, 16 from version 10. */
export function countBits(version: number): number {
  return version <= 9 ? 8 : 16;
}
