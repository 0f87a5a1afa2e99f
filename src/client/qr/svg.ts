/** Renders a QR code as an SVG document: one path of dark modules, a 4-module quiet zone. */
import { encodeQr, type QrCode } from './encoder.js';

export const QUIET_ZONE = 4;

/** The SVG of `qr` (or of a QR code of `content`), `pixels` wide (default: 8 per module). */
export function qrSvg(content: string | QrCode, pixels?: number): string {
  const qr = typeof content === 'string' ? encodeQr(content) : content;
  const n = qr.size + 2 * QUIET_ZONE;
  let d = '';
  for (let r = 0; r < qr.size; r++) {
    for (let c = 0; c < qr.size; c++) if (qr.modules[r * qr.size + c] === 1) d += `M${c + QUIET_ZONE} ${r + QUIET_ZONE}h1v1h-1z`;
  }
  const px = pixels ?? n * 8;
  return (
    `<svg xmlns="http://www.w3.org/2000/svg" width="${px}" height="${px}" viewBox="0 0 ${n} ${n}" shape-rendering="crispEdges">` +
    `<rect width="${n}" height="${n}" fill="#fff"/><path fill="#000" d="${d}"/></svg>`
  );
}
