/**
 * Diagnosis for the fan-out benchmark: the CPU a process spends only to send the same
 * bytes to 50 `ws` clients over loopback, in frames of a given size, with no parsing, no
 * storage and no JSON. It separates what any fan-out pays per byte (the kernel's copy and
 * TCP work) from what it pays per frame (one syscall, TCP push and receiver wake-up each),
 * and so gives the floor under both sides of the benchmark.
 * Usage: node --import tsx bench/lib/send-floor.ts [bytesPerFollower] [sizes,comma,separated]
 * (defaults: 2 720 000 bytes, the fan-out payload as JSON text; sizes 13600,55000,88000).
 * Prints the median of 5 rounds per size, interleaved.
 */
import { fork } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { WebSocket, WebSocketServer } from 'ws';

const CLIENTS = 50;
/** Bytes per follower sent before waiting for every socket to drain (about one flush of the server). */
const BURST = 55_000;

function receive(port: number): void {
  let open = 0;
  for (let i = 0; i < CLIENTS; i++) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}`);
    ws.on('open', () => {
      if (++open === CLIENTS) process.send?.('ready');
    });
    ws.on('message', () => undefined);
  }
}

async function sendRound(socks: WebSocket[], total: number, size: number): Promise<number> {
  const frame = Buffer.alloc(size, 0x61);
  const frames = Math.ceil(total / size);
  const c0 = process.cpuUsage();
  let sent = 0;
  while (sent < frames) {
    for (let burst = 0; sent < frames && burst < BURST; sent++, burst += size) for (const s of socks) s.send(frame, { binary: false });
    while (socks.some((s) => s.bufferedAmount > 0)) await new Promise((r) => setTimeout(r, 1));
  }
  const c = process.cpuUsage(c0);
  return (c.user + c.system) / 1000;
}

async function main(): Promise<void> {
  if (process.argv[2] === 'recv') return receive(Number(process.argv[3]));
  const total = Number(process.argv[2] ?? 2_720_000);
  const sizes = (process.argv[3] ?? '13600,55000,88000').split(',').map(Number);
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false });
  const socks: WebSocket[] = [];
  wss.on('connection', (ws) => socks.push(ws));
  await new Promise((r) => wss.on('listening', r));
  const addr = wss.address();
  const port = typeof addr === 'object' && addr !== null ? addr.port : 0;
  const child = fork(fileURLToPath(import.meta.url), ['recv', String(port)], { execArgv: ['--import', 'tsx'] });
  await new Promise((r) => child.once('message', r));
  const ms = new Map<number, number[]>(sizes.map((s) => [s, []]));
  await sendRound(socks, total, sizes[0] ?? 13_600); // warm-up
  for (let rep = 0; rep < 5; rep++) for (const s of sizes) ms.get(s)?.push(await sendRound(socks, total, s));
  for (const [s, v] of ms) {
    v.sort((a, b) => a - b);
    process.stdout.write(`frames of ${s} B (${Math.ceil(total / s)} per client): median sender CPU ${(v[2] ?? 0).toFixed(1)} ms [${v.map((x) => x.toFixed(0)).join(' ')}]\n`);
  }
  child.kill();
  wss.close();
}

main().catch((err: unknown) => {
  process.stderr.write(`${String(err)}\n`);
  process.exit(1);
});
