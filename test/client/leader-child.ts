/**
 * A leader in its own process, for the test that SIGKILLs it: opens the log with the
 * session stored in a key file, appends steadily, and prints every acknowledged append
 * ("ACK <payload> <index>") so the parent knows what this writer was told succeeded.
 * Arguments: <server url> <tail url> <key file> <site>.
 */
import { childClient } from './child-client.js';

const [url, wsUrl, keyFile, site] = process.argv.slice(2) as [string, string, string, string];
const client = await childClient(url, wsUrl, keyFile);
const log = client.openLog(site, 'stream');
await log.opened;
process.stdout.write(`READY ${log.role}\n`);
for (let i = 0; ; i++) {
  const payload = `child-${i}`;
  void log.append([new TextEncoder().encode(payload)]).then(([index]) => process.stdout.write(`ACK ${payload} ${index}\n`));
  await new Promise((r) => setTimeout(r, 5));
}
