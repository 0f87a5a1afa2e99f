/**
 * Another process of a device, for the test of refreshes at the same moment: restores the
 * session stored in a key file, prints "READY", refreshes when it reads "GO" on stdin
 * (its /refresh requests held 200 ms, as the parent's are, so the two surely overlap), and
 * prints one JSON line: its refresh calls, its token, whether it is still signed in, and
 * the device /me names with that token. Arguments: <server url> <key file>.
 */
import { createInterface } from 'node:readline';
import { DatagroveClient, type FetchLike } from '../../src/client/index.js';
import { FileKeyStorage } from '../../src/client/node/index.js';

const [url, keyFile] = process.argv.slice(2) as [string, string];
let calls = 0;
const slow: FetchLike = async (input, init) => {
  if (input.endsWith('/refresh')) {
    calls++;
    await new Promise((r) => setTimeout(r, 200));
  }
  return (await fetch(input, init)) as unknown as Awaited<ReturnType<FetchLike>>;
};
const errors: string[] = [];
const client = await DatagroveClient.create({ url, storage: new FileKeyStorage(keyFile), fetch: slow, onAuthError: (e) => errors.push(e.code) });
const lines = createInterface({ input: process.stdin });
process.stdout.write('READY\n');
for await (const line of lines) if (line === 'GO') break;
let result: Record<string, unknown>;
try {
  const token = await client.session.refresh();
  result = { calls, token, signedIn: client.signedIn, device: (await client.me()).device, errors };
} catch (err) {
  result = { calls, error: String(err), signedIn: client.signedIn, errors };
}
process.stdout.write(`${JSON.stringify(result)}\n`);
await client.close();
process.exit(0);
