/**
 * The Hocuspocus peer, run as a measured child of the bench like the real server: `new
 * Server({...})` of @hocuspocus/server as its docs show, quiet, with no extension (documents
 * live in memory only: no persistence, no auth hook). Clients are HocuspocusProvider
 * instances; every Yjs update a client sends is applied to the server's copy of the
 * document and sent to every connection of that document. Usage: hocuspocus-server.ts
 */
import { Server } from '@hocuspocus/server';
import { reportFailure, serveControl } from '../lib/child-control.js';

async function main(): Promise<void> {
  const server = new Server({ port: 0, address: '127.0.0.1', quiet: true, stopOnSignals: false });
  await server.listen();
  const addr = server.httpServer.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  serveControl(port, () => server.destroy());
}

main().catch(reportFailure);
