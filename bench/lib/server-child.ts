/**
 * The real Datagrove server (the monolith: auth + tail, SQLite, in-process bus) as a
 * measured child of the bench. Usage (forked by bench/lib/child.ts): server-child.ts DATA_DIR.
 * It builds the server exactly as `datagrove serve` does, on 127.0.0.1 and a free port,
 * with logging off, from the compiled build in dist/ (what `npm start` runs; `npm run
 * bench` builds it first). The TypeScript loader that runs the bench would otherwise also
 * transform the server, and its output differs from the build in the hot path: it wraps
 * every named arrow function in a naming helper each time the enclosing code runs.
 * DG_BENCH_SOURCE=1 runs the server from src/ instead (diagnosis only).
 * DG_BENCH_TAIL_LIMITS='{"inlineBatchBytes":1048576}' overrides tail limits
 * (diagnosis only: to test what a limit costs; published figures use the defaults).
 */
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type * as App from '../../src/server/app.js';
import type * as Config from '../../src/server/config.js';
import type { TailLimits } from '../../src/tail/limits.js';
import { reportFailure, serveControl } from './child-control.js';

/** The module `name` (e.g. 'server/app') from dist/, or from src/ when asked to. */
async function load<T>(name: string): Promise<T> {
  if (process.env.DG_BENCH_SOURCE === '1') return (await import(`../../src/${name}.ts`)) as T;
  const url = new URL(`../../dist/${name}.js`, import.meta.url);
  if (!existsSync(fileURLToPath(url))) throw new Error(`${fileURLToPath(url)} is missing: run \`npm run build\` first (\`npm run bench\` does)`);
  return (await import(url.href)) as T;
}

async function main(): Promise<void> {
  const dataDir = process.argv[2];
  if (dataDir === undefined) throw new Error('usage: server-child.ts DATA_DIR');
  const { buildServer } = await load<typeof App>('server/app');
  const { defaultConfig } = await load<typeof Config>('server/config');
  const limits = process.env.DG_BENCH_TAIL_LIMITS;
  const tailLimits = limits === undefined || limits === '' ? undefined : (JSON.parse(limits) as Partial<TailLimits>);
  const server = await buildServer({ ...defaultConfig(), port: 0, host: '127.0.0.1', logLevel: 'silent', dataDir, ...(tailLimits === undefined ? {} : { tailLimits }) });
  const port = await server.listen();
  serveControl(port, () => server.close());
}

main().catch(reportFailure);
