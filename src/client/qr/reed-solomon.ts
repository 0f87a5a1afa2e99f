/**
 * Reed–Solomon error correction over GF(2^8) with the QR code's field polynomial
 * x^8 + x^4 + x^3 + x^2 + 1 (0x11D) and generator roots α^0 … α^(n-1) (ISO/IEC 18004 §7.5).
 */
const EXP = new Uint8Array(512);
const LOG = new Uint8Array(256);
{
  let x = 1;
  for (let i = 0; i < 255; i++) {
    EXP[i] = x;
    LOG[x] = i;
    x <<= 1;
    if (x & 0x100) x ^= 0x11d;
  }
  for (let i = 255; i < 512; i++) EXP[i] = EXP[i - 255]!;
}

function mul(a: number, b: number): number {
  return a === 0 || b === 0 ? 0 : EXP[LOG[a]! + LOG[b]!]!;
}

const generators = new Map<number, Uint8Array>();

/** The generator polynomial of degree `n`, highest coefficient (always 1) first, then n coefficients. */
function generator(n: number): Uint8Array {
  let g = generators.get(n);
  if (g !== undefined) return g;
  let poly = [1];
  for (let i = 0; i < n; i++) {
    // poly × (x − α^i); subtraction is XOR in GF(2^8).
    const next = new Array<number>(poly.length + 1).fill(0);
    for (let j = 0; j < poly.length; j++) {
      next[j] = next[j]! ^ poly[j]!;
      next[j + 1] = next[j + 1]! ^ mul(poly[j]!, EXP[i]!);
    }
    poly = next;
  }
  g = Uint8Array.from(poly);
  generators.set(n, g);
  return g;
}

/** The `n` error correction codewords of `data` (the remainder of data·x^n divided by the generator). */
export function rsRemainder(data: Uint8Array, n: number): Uint8Array {
  const g = generator(n);
  const rem = new Uint8Array(n);
  for (const byte of data) {
    const factor = byte ^ rem[0]!;
    rem.copyWithin(0, 1);
    rem[n - 1] = 0;
    for (let i = 0; i < n; i++) rem[i] = rem[i]! ^ mul(g[i + 1]!, factor);
  }
  return rem;
}
