/**
 * A WebSocket text frame built once and written as the same bytes to many sockets (RFC 6455
 * section 5.2: FIN, opcode 1, no mask from server to client, then the length in 7, 7+16
 * or 7+64 bits). Fan-out sends each `tail` event to every follower; building the frame
 * once spares `ws` framing it again for each of them (a header, a cork and a two-part
 * write per follower), which was a sixth of the CPU of sending small events.
 */

export interface TextFrame {
  /** The whole frame: header and payload. */
  readonly frame: Buffer;
  /** The payload alone (a view into `frame`), for a socket that cannot take the raw frame. */
  readonly payload: Buffer;
}

/** Builds the frame of `text` (UTF-8). */
export function textFrame(text: string): TextFrame {
  const size = Buffer.byteLength(text, 'utf8');
  const head = size < 126 ? 2 : size < 0x10000 ? 4 : 10;
  const frame = Buffer.allocUnsafe(head + size);
  frame[0] = 0x81; // FIN + text
  if (head === 2) {
    frame[1] = size;
  } else if (head === 4) {
    frame[1] = 126;
    frame.writeUInt16BE(size, 2);
  } else {
    frame[1] = 127;
    frame.writeUInt16BE(0, 2); // the top 16 of the 64 bits: sizes stay far below 2^48
    frame.writeUIntBE(size, 4, 6);
  }
  frame.write(text, head, 'utf8');
  return { frame, payload: frame.subarray(head) };
}
