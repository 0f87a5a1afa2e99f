/**
 * The Socket.IO peer, run as a measured child of the bench like the real server: a plain
 * `new Server(httpServer)` (socket.io 4, defaults: no compression), the way its docs set up
 * rooms. A client `join`s one room (acknowledged); a `write` {room, at, entries} is emitted
 * to the room's other sockets with `socket.to(room).emit` (Socket.IO encodes a broadcast
 * once for all of them) and acknowledged to the sender with its new length, so a writer
 * pipelines exactly as against the real server. No auth, no storage, no limits beyond
 * Socket.IO's own. Usage (forked by bench/lib/child.ts): socketio-server.ts
 */
import { createServer } from 'node:http';
import { Server } from 'socket.io';
import { reportFailure, serveControl } from '../lib/child-control.js';

interface WriteMsg {
  room?: unknown;
  at?: unknown;
  entries?: unknown;
}

type Ack = (reply: Record<string, unknown>) => void;

function main(): void {
  const http = createServer();
  const io = new Server(http, { maxHttpBufferSize: 4 * 1024 * 1024 });
  io.on('connection', (socket) => {
    socket.on('join', (room: unknown, ack: unknown) => {
      if (typeof room !== 'string' || typeof ack !== 'function') return;
      void socket.join(room);
      (ack as Ack)({});
    });
    socket.on('write', (msg: WriteMsg, ack: unknown) => {
      if (typeof msg !== 'object' || msg === null || typeof msg.room !== 'string' || typeof msg.at !== 'number' || !Array.isArray(msg.entries)) return;
      socket.to(msg.room).emit('write', msg);
      if (typeof ack === 'function') (ack as Ack)({ length: msg.at + msg.entries.length });
    });
  });
  http.listen(0, '127.0.0.1', () => {
    const addr = http.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    serveControl(port, () => new Promise<void>((resolve) => {
      io.disconnectSockets(true);
      void io.close(() => resolve());
    }));
  });
}

try {
  main();
} catch (err) {
  reportFailure(err);
}
