/**
 * The real Datagrove server (the monolith: auth + tail, SQLite, in-process bus) as a
 * measured child of the bench. Usage (forked by bench/lib/child.ts): server-child.ts DATA_DIR.
 * It builds the server exactly as `datagrove serve` does, on 127.0.0.1 and a free port,
 * with logging off. DG_BENCH_TAIL_LIMITS='{"inlineBatchBytes":1048576}' overrides tail limits
 * (diagnosis only: to test what a limit costs; published figures use the defaults).
 */
import { buildServer } from '../../src/server/app.js';
import { defaultConfig } from '../../src/server/config.js';
import type { TailLimits } from '../../src/tail/limits.js';
import { reportFailure, serveControl } from './child-control.js';

async function main(): Promise<void> {
  const dataDir = process.argv[2];
  if (dataDir === undefined) throw new Error('usage: server-child.ts DATA_DIR');
  const limits = process.env.DG_BENCH_TAIL_LIMITS;
  const tailLimits = limits === undefined || limits === '' ? undefined : (JSON.parse(limits) as Partial<TailLimits>);
  const server = await buildServer({ ...defaultConfig(), port: 0, host: '127.0.0.1', logLevel: 'silent', dataDir, ...(tailLimits === undefined ? {} : { tailLimits }) });
  const port = await server.listen();
  serveControl(port, () => server.close());
}

main().catch(reportFailure);
