/**
 * The real Datagrove server (the monolith: auth + tail, SQLite, in-process bus) as a
 * measured child of the bench. Usage (forked by bench/lib/child.ts): server-child.ts DATA_DIR.
 * It builds the server exactly as `datagrove serve` does, on 127.0.0.1 and a free port,
 * with logging off.
 */
import { buildServer } from '../../src/server/app.js';
import { defaultConfig } from '../../src/server/config.js';
import { reportFailure, serveControl } from './child-control.js';

async function main(): Promise<void> {
  const dataDir = process.argv[2];
  if (dataDir === undefined) throw new Error('usage: server-child.ts DATA_DIR');
  const server = await buildServer({ ...defaultConfig(), port: 0, host: '127.0.0.1', logLevel: 'silent', dataDir });
  const port = await server.listen();
  serveControl(port, () => server.close());
}

main().catch(reportFailure);
