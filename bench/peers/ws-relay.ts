/**
 * The fan-out peer: a bare `ws` relay, run as a measured child of the bench exactly like
 * the real server. It does the least a relay can do and still be a relay: it parses each
 * text message (so a malformed one is caught), sends the received bytes unchanged to every
 * other client, and acks the sender with `{re, length}` so the leader's pipelining is the
 * same as against the server. No auth, no validation beyond JSON, no durability, no
 * per-client limits. Usage (forked by bench/lib/child.ts): ws-relay.ts
 */
import { WebSocketServer, type WebSocket } from 'ws';
import { reportFailure, serveControl } from '../lib/child-control.js';

interface RelayedWrite {
  id?: unknown;
  at?: unknown;
  entries?: unknown;
}

function main(): void {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false, maxPayload: 4 * 1024 * 1024 });
  const clients = new Set<WebSocket>();
  wss.on('connection', (ws) => {
    clients.add(ws);
    ws.on('close', () => clients.delete(ws));
    ws.on('error', () => clients.delete(ws));
    ws.on('message', (data: Buffer, isBinary) => {
      if (isBinary) return;
      let msg: RelayedWrite;
      try {
        msg = JSON.parse(data.toString('utf8')) as RelayedWrite;
      } catch {
        return;
      }
      if (typeof msg !== 'object' || msg === null) return;
      if (Array.isArray(msg.entries) && typeof msg.at === 'number') {
        for (const c of clients) if (c !== ws) c.send(data, { binary: false });
        ws.send(JSON.stringify({ re: msg.id, length: msg.at + msg.entries.length }));
      } else {
        ws.send(JSON.stringify({ re: msg.id }));
      }
    });
  });
  wss.on('listening', () => {
    const addr = wss.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    serveControl(port, () => new Promise<void>((resolve) => {
      for (const c of clients) c.terminate();
      wss.close(() => resolve());
    }));
  });
}

try {
  main();
} catch (err) {
  reportFailure(err);
}
