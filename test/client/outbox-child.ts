/**
 * A writer in its own process, for the outbox tests that SIGKILL it. Opens log "outbox" of
 * <site> with the session of <key file> and the outbox in <outbox file>, and prints what
 * happens: "READY <role>", "RESTORED <stream> <seqs>", "LANDED <seq> <index>" and
 * "FAILED <seq> <code>" (restored appends), "ACK <payload> <index>".
 * Mode "write": on the line "GO" from stdin, appends e-0…e-<n - 1> (one call each, in
 * order), then prints "KEPT" once the outbox holds them all (or after 5 s, if it never does).
 * Mode "open": only opens (restoring what the outbox holds).
 * Arguments: <mode> <server url> <tail url> <key file> <outbox file> <site> <n>.
 */
import { createInterface } from 'node:readline';
import { FileKeyStorage } from '../../src/client/node/index.js';
import { childClient } from './child-client.js';

const [mode, url, wsUrl, keyFile, outboxFile, site, n] = process.argv.slice(2) as [string, string, string, string, string, string, string];
const say = (line: string): void => void process.stdout.write(`${line}\n`);
const client = await childClient(url, wsUrl, keyFile);
const outbox = new FileKeyStorage(outboxFile);
const log = client.openLog(site, 'outbox', { outbox });
log.on('restored', (r) => say(`RESTORED ${r.stream} ${r.seqs.join(',')}`));
log.on('outbox', (e) => say('index' in e ? `LANDED ${e.seq} ${e.index}` : `FAILED ${e.seq} ${e.error.code}`));
await log.opened;
say(`READY ${log.role}`);

if (mode === 'write') {
  const lines = createInterface({ input: process.stdin });
  await new Promise<void>((resolve) => lines.on('line', (l) => l === 'GO' && resolve()));
  const count = Number(n);
  for (let i = 0; i < count; i++) {
    const payload = `e-${i}`;
    void log.append([new TextEncoder().encode(payload)]).then(([index]) => say(`ACK ${payload} ${index}`), () => undefined);
  }
  // The record of this writer stream (the layout of docs/sdk.md, "Outbox").
  const name = `outbox:${site}/outbox/${client.device}:${log.writerStream}`;
  for (let t = 0; t < 100; t++) {
    const v = (await outbox.load(name)) as { entries?: unknown[] } | null;
    if (v?.entries?.length === count) break;
    await new Promise((r) => setTimeout(r, 50));
  }
  say('KEPT');
}
setInterval(() => undefined, 60_000);
