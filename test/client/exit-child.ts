/**
 * A client in its own process for the tests that its process exits once the client is
 * closed (nothing of the SDK keeps the event loop alive). Prints "READY", then on the line
 * "CLOSE" from stdin (or by itself, see the modes) closes the client and prints "CLOSED";
 * the process then ends by itself (nothing calls process.exit).
 * Modes:
 * - "connection": opens the tail connection of <site>.
 * - "write-retry": opens log "full" of <site>; on "GO" appends, and closes once the Log has
 *   gone into recovery 6 times (its writes refused each time: the wait before the next try
 *   is then over a second).
 * - "outbox": opens log "outbox" of <site> with the outbox in <outbox file>.
 * Arguments: <mode> <server url> <tail url> <key file> <site> [outbox file].
 */
import { createInterface } from 'node:readline';
import { FileKeyStorage } from '../../src/client/node/index.js';
import { childClient } from './child-client.js';

const [mode, url, wsUrl, keyFile, site, outboxFile] = process.argv.slice(2) as [string, string, string, string, string, string | undefined];
const say = (line: string): void => void process.stdout.write(`${line}\n`);
const client = await childClient(url, wsUrl, keyFile);
const lines = createInterface({ input: process.stdin });
const line = (want: string): Promise<void> => new Promise((resolve) => lines.on('line', (l) => l === want && resolve()));

const close = async (): Promise<void> => {
  await client.close();
  lines.close();
  process.stdin.destroy();
  say('CLOSED');
};

if (mode === 'connection') {
  await (await client.connection(site)).ready();
  say('READY');
  await line('CLOSE');
  await close();
} else if (mode === 'write-retry') {
  const log = client.openLog(site, 'full');
  await log.opened;
  say('READY');
  await line('GO');
  let recoveries = 0;
  const sixth = new Promise<void>((resolve) =>
    log.on('state', (s) => {
      if (s === 'recovering' && ++recoveries === 6) resolve();
    }),
  );
  log.append([new TextEncoder().encode('during')]).catch(() => undefined);
  await sixth;
  await close();
} else if (mode === 'outbox') {
  const log = client.openLog(site, 'outbox', { outbox: new FileKeyStorage(outboxFile!) });
  await log.opened;
  say('READY');
  await line('CLOSE');
  await close();
}
