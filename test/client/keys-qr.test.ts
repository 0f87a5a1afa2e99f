/**
 * The SDK's QR encoder against an independent decoder (jsQR): payloads of every version
 * 1–10 decode back to their exact bytes, every mask is used by some payload, the SVG the
 * demo shows decodes to the user key's payload, and what does not fit is refused.
 */
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { describe, it } from 'node:test';
import jsQRModule from 'jsqr';
import { UserKey } from '../../src/client/keys/user-key.js';
import { encodeQr, type QrCode } from '../../src/client/qr/encoder.js';
import { QUIET_ZONE, qrSvg } from '../../src/client/qr/svg.js';

const SCALE = 4;
// jsqr is CommonJS with an ES-style default: take the function whichever way it arrives.
type JsQr = typeof jsQRModule.default;
const jsQR: JsQr = (jsQRModule as unknown as { default?: JsQr }).default ?? (jsQRModule as unknown as JsQr);

/** RGBA pixels of a module matrix (1 = dark) with a quiet zone. */
function pixels(size: number, dark: (r: number, c: number) => boolean): { data: Uint8ClampedArray; width: number } {
  const n = (size + 2 * QUIET_ZONE) * SCALE;
  const data = new Uint8ClampedArray(n * n * 4).fill(255);
  for (let r = 0; r < size; r++) {
    for (let c = 0; c < size; c++) {
      if (!dark(r, c)) continue;
      for (let y = 0; y < SCALE; y++) {
        for (let x = 0; x < SCALE; x++) {
          const p = (((r + QUIET_ZONE) * SCALE + y) * n + (c + QUIET_ZONE) * SCALE + x) * 4;
          data[p] = data[p + 1] = data[p + 2] = 0;
        }
      }
    }
  }
  return { data, width: n };
}

function decode(qr: QrCode): Uint8Array {
  const { data, width } = pixels(qr.size, (r, c) => qr.modules[r * qr.size + c] === 1);
  const got = jsQR(data, width, width, { inversionAttempts: 'dontInvert' });
  assert.ok(got !== null, `version ${qr.version} mask ${qr.mask}: jsQR found no code`);
  assert.equal(got.version, qr.version);
  return Uint8Array.from(got.binaryData);
}

/** The module matrix drawn by an SVG of qrSvg (its path of 1×1 squares). */
function matrixOfSvg(svg: string): { size: number; dark: Set<string> } {
  const n = Number(/viewBox="0 0 (\d+) \d+"/.exec(svg)?.[1]);
  const d = /<path fill="#000" d="([^"]*)"/.exec(svg)?.[1] ?? '';
  const dark = new Set<string>();
  for (const m of d.matchAll(/M(\d+) (\d+)h1v1h-1z/g)) dark.add(`${Number(m[2]) - QUIET_ZONE},${Number(m[1]) - QUIET_ZONE}`);
  return { size: n - 2 * QUIET_ZONE, dark };
}

describe('QR encoder', () => {
  it('encodes byte payloads of every version 1–10 so that an independent decoder reads them back', () => {
    // Byte capacities at level M: 14, 26, 42, 62, 84, 106, 122, 152, 180, 213.
    const sizes = [1, 14, 15, 26, 27, 42, 43, 62, 63, 84, 85, 106, 107, 122, 123, 152, 153, 180, 181, 213];
    const versions = new Set<number>();
    const masks = new Set<number>();
    for (const n of sizes) {
      for (let k = 0; k < 3; k++) {
        const payload = new Uint8Array(randomBytes(n));
        const qr = encodeQr(payload);
        assert.equal(qr.size, 17 + 4 * qr.version);
        versions.add(qr.version);
        masks.add(qr.mask);
        assert.deepEqual(decode(qr), payload, `${n} bytes, version ${qr.version}, mask ${qr.mask}`);
      }
    }
    assert.deepEqual([...versions].sort((a, b) => a - b), [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]);
    assert.ok(masks.size >= 4, `the penalty picks among masks (${[...masks].join(',')})`);
    assert.equal(encodeQr(new Uint8Array(14)).version, 1);
    assert.equal(encodeQr(new Uint8Array(15)).version, 2);
    assert.throws(() => encodeQr(new Uint8Array(214)), (e: Error & { code?: string }) => e.code === 'TOO_LARGE');
  });

  it('renders a user key as an SVG that decodes to its QR payload, and the payload restores the key', () => {
    const key = UserKey.generate();
    const payload = key.toQrPayload();
    assert.match(payload, /^dgk1:[A-Za-z0-9_-]{48}$/);
    const svg = qrSvg(payload);
    assert.match(svg, /^<svg xmlns="http:\/\/www.w3.org\/2000\/svg"/);
    const { size, dark } = matrixOfSvg(svg);
    const { data, width } = pixels(size, (r, c) => dark.has(`${r},${c}`));
    const got = jsQR(data, width, width);
    assert.equal(got?.data, payload);
    assert.equal(UserKey.fromQrPayload(got?.data ?? '').publicKey, key.publicKey);
    // A damaged payload is caught by its checksum, not taken for another key.
    const flipped = payload.slice(0, 10) + (payload[10] === 'A' ? 'B' : 'A') + payload.slice(11);
    assert.throws(() => UserKey.fromQrPayload(flipped), /checksum/);
    assert.throws(() => UserKey.fromQrPayload('dgk2:' + payload.slice(5)), /not a Datagrove user key/);
  });
});
