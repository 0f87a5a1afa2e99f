/**
 * Idle sessions for the sessions benchmark, as light on the client side as a real client:
 * - a tail session: WebSocket (subprotocol datagrove.v1), `connect` with an access token,
 *   `lease` of one log as follower; then nothing;
 * - a Socket.IO socket: `io(url, {transports: ["websocket"]})`, `join` of one room
 *   (acknowledged); then nothing.
 * Each opens from a given loopback source address (bench/lib/loopback.ts).
 */
import { io, type ManagerOptions, type Socket, type SocketOptions } from 'socket.io-client';
import WebSocket from 'ws';

export interface Idle {
  close(): void;
}

const TIMEOUT_MS = 30_000;

/** Opens a tail session holding one follower lease; rejects on any error reply. */
export function openTailSession(url: string, token: string, site: string, log: string, from: string): Promise<Idle> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, ['datagrove.v1'], { perMessageDeflate: false, localAddress: from });
    const timer = setTimeout(() => {
      ws.terminate();
      reject(new Error('tail session: set-up timed out'));
    }, TIMEOUT_MS);
    const fail = (e: Error) => {
      clearTimeout(timer);
      ws.terminate();
      reject(e);
    };
    ws.once('error', fail);
    ws.once('open', () => ws.send(JSON.stringify({ id: 1, op: 'connect', token })));
    ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString('utf8')) as { re?: unknown; error?: { code: string }; handle?: unknown };
      if (f.error !== undefined) return fail(new Error(`tail session: ${f.re === 1 ? 'connect' : 'lease'} refused: ${f.error.code}`));
      if (f.re === 1) ws.send(JSON.stringify({ id: 2, op: 'lease', site, log, lead: false }));
      else if (f.re === 2) {
        if (f.handle === undefined) return fail(new Error(`tail session: lease gave no handle: ${data.toString('utf8').slice(0, 200)}`));
        clearTimeout(timer);
        ws.removeAllListeners('message');
        ws.on('error', () => {});
        resolve({ close: () => ws.close(1000) });
      }
    });
  });
}

/** Connects a Socket.IO socket over WebSocket (from `from`, when given). */
export function connectSocketIo(url: string, from?: string): Promise<Socket> {
  // localAddress reaches the `ws` transport (engine.io-client passes it through), but is not in the option types.
  const options: Partial<ManagerOptions & SocketOptions> & { localAddress?: string } = {
    transports: ['websocket'],
    forceNew: true,
    reconnection: false,
    timeout: TIMEOUT_MS,
    ...(from === undefined ? {} : { localAddress: from }),
  };
  const socket = io(url, options);
  return new Promise((resolve, reject) => {
    socket.once('connect_error', (e) => {
      socket.close();
      reject(e);
    });
    socket.once('connect', () => resolve(socket));
  });
}

/** Joins `room` (acknowledged by the server). */
export async function joinRoom(socket: Socket, room: string): Promise<void> {
  try {
    await socket.timeout(TIMEOUT_MS).emitWithAck('join', room);
  } catch (e) {
    socket.close();
    throw new Error(`socket.io join: ${e instanceof Error ? e.message : String(e)}`);
  }
}

/** Connects a Socket.IO socket and joins `room`. */
export async function openSocketIo(url: string, room: string, from: string): Promise<Idle> {
  const socket = await connectSocketIo(url, from);
  await joinRoom(socket, room);
  return { close: () => socket.close() };
}
