/**
 * The PeerJS signaling peer, run as a measured child of the bench like the real server:
 * `PeerServer({port, path})` of the `peer` package as its README shows (key "peerjs",
 * default limits). Clients open `ws://host:port/<path>/peerjs?key=…&id=…&token=…`, get
 * `{type:"OPEN"}`, and send `{type:"OFFER"|"ANSWER"|"CANDIDATE", dst, payload}`; the server
 * stamps `src` and forwards the message to `dst`. It sends the sender nothing back.
 * Usage (forked by bench/lib/child.ts): peerjs-server.ts
 */
import type { Server } from 'node:http';
import { PeerServer } from 'peer';
import { reportFailure, serveControl } from '../lib/child-control.js';

function main(): void {
  PeerServer({ port: 0, host: '127.0.0.1', path: '/' }, (server) => {
    const http = server as Server;
    const addr = http.address();
    const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
    // Upgraded sockets keep a closing server open; the child exits right after stop anyway.
    serveControl(port, () => {
      http.close();
      return Promise.resolve();
    });
  });
}

try {
  main();
} catch (err) {
  reportFailure(err);
}
