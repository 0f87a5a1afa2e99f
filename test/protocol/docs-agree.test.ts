/**
 * docs/protocol.md must agree with the code: the error table lists exactly the registry of
 * src/protocol/errors.ts, every internal bus subject is documented, every route of the
 * wire contract (PROTOCOL.md, version 1) is documented, and so are every HTTP route the
 * server actually serves and every configuration option of `datagrove serve`. The worked
 * tail session is replayed against a real server, frame by frame.
 */
import assert from 'node:assert/strict';
import { existsSync, readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_STATUS } from '../../src/protocol/errors.js';
import { SUBJECTS } from '../../src/protocol/bus-messages.js';
import { WebSocket } from 'ws';
import { newJti, signToken } from '../../src/protocol/token.js';
import { buildServer } from '../../src/server/app.js';
import { OPTIONS, defaultConfig } from '../../src/server/config.js';
import { startServer, tempDir } from '../helpers/server.js';

const DOC_PATH = fileURLToPath(new URL('../../docs/protocol.md', import.meta.url));
const doc = readFileSync(DOC_PATH, 'utf8');

/**
 * The auth routes of the wire contract's auth table (PROTOCOL.md, version 1), relative to
 * `/auth/v1`. The contract is frozen per version, so the list is written out here; setting
 * DATAGROVE_PROTOCOL_MD (default: ../shared/PROTOCOL.md beside the checkout) also checks this
 * list against the contract's table.
 */
const CONTRACT_AUTH_ROUTES = [
  'POST /challenge',
  'POST /signup',
  'POST /login',
  'POST /refresh',
  'GET /me',
  'GET /profile',
  'POST /profile',
  'POST /sites',
  'GET /sites/:site',
  'POST /declare',
  'POST /join',
  'POST /lease',
  'POST /claim',
  'GET /keys',
  'GET /server-keys',
  'POST /revoke',
  'POST /envelopes',
  'GET /envelopes',
  'DELETE /envelopes/:id',
  'GET /shards',
];

/** Splits a markdown table row into trimmed cells, without backticks. */
function cells(line: string): string[] {
  return line
    .trim()
    .replace(/^\|/, '')
    .replace(/\|$/, '')
    .split('|')
    .map((c) => c.trim().replaceAll('`', ''));
}

/** The body rows of every table whose header row is exactly `header`. */
function tablesWithHeader(markdown: string, header: string[]): string[][][] {
  const lines = markdown.split('\n');
  const tables: string[][][] = [];
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i] ?? '';
    if (!line.trim().startsWith('|')) continue;
    const head = cells(line);
    if (head.length !== header.length || head.some((c, j) => c !== header[j])) continue;
    const sep = lines[i + 1] ?? '';
    assert.match(sep, /^\s*\|(\s*:?-{3,}:?\s*\|)+\s*$/, `line ${i + 2}: a table header must be followed by a separator row`);
    const rows: string[][] = [];
    let j = i + 2;
    for (; j < lines.length && (lines[j] ?? '').trim().startsWith('|'); j++) rows.push(cells(lines[j] ?? ''));
    tables.push(rows);
    i = j;
  }
  return tables;
}

/**
 * The routes of fastify's `printRoutes({commonPrefix: false})` tree as `METHOD /path`
 * (HEAD and OPTIONS left out: fastify adds them by itself). Each line is a node: its
 * indentation (4 characters a level) gives its parent, whose path it extends.
 */
function routesOfTree(tree: string): string[] {
  const out: string[] = [];
  const stack: string[] = [];
  for (const line of tree.split('\n')) {
    const m = /^((?:│ {3}| {4})*)(?:├── |└── )(.+?)(?: \(([A-Z, ]+)\))?$/.exec(line);
    if (m === null) continue;
    const depth = (m[1] ?? '').length / 4;
    const path = (stack[depth - 1] ?? '') + (m[2] ?? '');
    stack.length = depth;
    stack.push(path);
    for (const method of (m[3] ?? '').split(',').map((x) => x.trim())) {
      if (method !== '' && method !== 'HEAD' && method !== 'OPTIONS') out.push(`${method} ${path}`);
    }
  }
  return out;
}

describe('docs/protocol.md agrees with the code', () => {
  it('has one error table listing exactly the codes and HTTP statuses of the registry', () => {
    const tables = tablesWithHeader(doc, ['code', 'HTTP', 'meaning']);
    assert.equal(tables.length, 1, 'exactly one table with the columns code | HTTP | meaning');
    const rows = tables[0] ?? [];
    const documented = new Map<string, number>();
    for (const row of rows) {
      const [code, status, meaning] = row;
      assert.ok(code !== undefined && /^[A-Z_]+$/.test(code), `error table row ${JSON.stringify(row)}: code`);
      assert.ok(status !== undefined && /^\d{3}$/.test(status), `error table row for ${code}: HTTP status`);
      assert.ok(meaning !== undefined && meaning.length > 0, `error table row for ${code}: meaning`);
      assert.ok(!documented.has(code), `error code ${code} listed twice`);
      documented.set(code, Number(status));
    }
    const registry = new Map<string, number>(Object.entries(ERROR_STATUS));
    assert.deepEqual(
      [...documented.entries()].sort(([a], [b]) => a.localeCompare(b)),
      [...registry.entries()].sort(([a], [b]) => a.localeCompare(b)),
    );
  });

  it('documents every internal bus subject', () => {
    for (const subject of Object.values(SUBJECTS)) {
      assert.ok(doc.includes(`\`${subject}\``), `bus subject ${subject} is not documented`);
    }
  });

  it('documents every auth route of the wire contract', () => {
    for (const route of CONTRACT_AUTH_ROUTES) {
      const [method, path] = route.split(' ');
      const full = `${method} /auth/v1${path}`;
      assert.ok(doc.includes(full), `auth route ${full} is not documented`);
    }
  });

  it('documents the notify route', () => {
    assert.ok(doc.includes('GET /notify/v1/vapid'));
  });

  it('documents every configuration option with its variable and flag', () => {
    for (const o of OPTIONS) {
      assert.ok(doc.includes(`| \`${o.env}\` | \`${o.flag}\` |`), `option ${o.env} (${o.flag}) is not in the configuration table`);
    }
  });

  it('documents every HTTP route the server serves', async () => {
    const config = { ...defaultConfig(), port: 0, host: '127.0.0.1', logLevel: 'silent', dataDir: tempDir() };
    const server = await buildServer(config);
    try {
      await server.app.ready();
      const routes = routesOfTree(server.app.printRoutes({ commonPrefix: false }));
      // The parse must have found the routes every monolith serves, else it checks nothing.
      for (const known of ['POST /auth/v1/challenge', 'GET /auth/v1/sites/:site', 'GET /notify/v1/vapid', 'GET /health']) {
        assert.ok(routes.includes(known), `route tree parse missed ${known}: ${routes.join(', ')}`);
      }
      const missing = routes.filter((r) => !doc.includes(r));
      assert.deepEqual(missing, [], 'served routes missing from docs/protocol.md');
    } finally {
      await server.close();
    }
  });

  it('lists the same auth routes as the contract file, when given one', (t) => {
    // The published contract sits beside the checkout in development and CI; elsewhere the
    // route list above stands for it (and CI never skips).
    const contractPath = process.env.DATAGROVE_PROTOCOL_MD || fileURLToPath(new URL('../../../shared/PROTOCOL.md', import.meta.url));
    if (!existsSync(contractPath) && process.env.CI !== 'true') {
      t.skip(`no contract file at ${contractPath} (set DATAGROVE_PROTOCOL_MD); the route list above stands for it`);
      return;
    }
    const contract = readFileSync(contractPath, 'utf8');
    const tables = tablesWithHeader(contract, ['request', 'body', 'success']);
    assert.equal(tables.length, 1, 'the contract has one auth table');
    const routes = (tables[0] ?? []).map((row) => {
      const m = /^(GET|POST|DELETE|PUT|PATCH) (\/[^\s?]*)/.exec(row[0] ?? '');
      assert.ok(m !== null, `contract auth row ${JSON.stringify(row[0])}`);
      return `${m[1]} ${m[2]}`;
    });
    assert.deepEqual(routes, CONTRACT_AUTH_ROUTES);
  });
});

/** One line of the worked example: a frame a device sends, or one it must receive next. */
interface ExampleStep {
  device: string;
  send: boolean;
  frame: Record<string, unknown>;
}

/** The `A→ {…}` / `→A {…}` lines of the code blocks of the worked-example section. */
function exampleSteps(markdown: string): ExampleStep[] {
  const start = markdown.indexOf('## Worked example');
  assert.ok(start >= 0, 'docs/protocol.md has a worked example section');
  const end = markdown.indexOf('\n## ', start + 1);
  const steps: ExampleStep[] = [];
  for (const line of markdown.slice(start, end < 0 ? undefined : end).split('\n')) {
    const m = /^(?:([A-Z])→|→([A-Z]))\s+(\{.*\})\s*$/.exec(line);
    if (m === null) continue;
    steps.push({ device: m[1] ?? m[2] ?? '', send: m[1] !== undefined, frame: JSON.parse(m[3] ?? '') as Record<string, unknown> });
  }
  return steps;
}

/** A raw socket with its incoming frames in arrival order. */
class FrameQueue {
  readonly #frames: Record<string, unknown>[] = [];
  #waiter: ((f: Record<string, unknown>) => void) | null = null;
  constructor(readonly ws: WebSocket) {
    ws.on('message', (data: Buffer) => {
      const f = JSON.parse(data.toString('utf8')) as Record<string, unknown>;
      const w = this.#waiter;
      if (w !== null) {
        this.#waiter = null;
        w(f);
      } else this.#frames.push(f);
    });
  }
  next(timeoutMs = 5000): Promise<Record<string, unknown>> {
    const f = this.#frames.shift();
    if (f !== undefined) return Promise.resolve(f);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error('no frame arrived')), timeoutMs);
      this.#waiter = (x) => {
        clearTimeout(t);
        resolve(x);
      };
    });
  }
}

describe('the worked tail session of docs/protocol.md', () => {
  it('runs as written against a real server', async () => {
    const steps = exampleSteps(doc);
    assert.ok(steps.length >= 30, `the example has its frames (${steps.length} found)`);
    const { server, wsUrl } = await startServer();
    const ring = server.secrets.ring;
    const now = Math.floor(Date.now() / 1000);
    const sockets = new Map<string, FrameQueue>();
    const identities = new Map<string, { user: string; dev: string }>();
    const peers = new Map<unknown, unknown>();
    try {
      for (const [i, step] of steps.entries()) {
        const where = `example step ${i + 1} (${step.send ? `${step.device}→` : `→${step.device}`} ${JSON.stringify(step.frame).slice(0, 60)})`;
        if (step.send) {
          const frame = { ...step.frame };
          if (frame.op === 'connect') {
            // The example's device ids and user come from the docs; the access token is real.
            const reply = steps.slice(i + 1).find((s) => !s.send && s.device === step.device && s.frame.re === frame.id);
            const user = String(reply?.frame.user);
            const dev = String(reply?.frame.device);
            frame.token = signToken(ring, { typ: 'access', sub: user, dev, fam: `fam-${step.device}`, iat: now, exp: now + 600, jti: newJti() });
            const ws = new WebSocket(wsUrl, 'datagrove.v1');
            await new Promise((resolve, reject) => ws.once('open', resolve).once('error', reject));
            sockets.set(step.device, new FrameQueue(ws));
            identities.set(step.device, { user, dev });
          }
          if (frame.op === 'lease') {
            // A lease token stands in for the grant the example's user holds on the site.
            const who = identities.get(step.device);
            assert.ok(who !== undefined, `${where}: the device connects first`);
            frame.token = signToken(ring, { typ: 'lease', sub: who.user, dev: who.dev, site: String(frame.site), log: String(frame.log), rights: ['read', 'write'], iat: now, exp: now + 600, jti: newJti() });
          }
          // A `peer` address the example wrote down stands for the one the server made.
          if (typeof frame.to === 'string' && peers.has(frame.to)) frame.to = peers.get(frame.to);
          const q = sockets.get(step.device);
          assert.ok(q !== undefined, `${where}: the device connects first`);
          q.ws.send(JSON.stringify(frame));
        } else {
          const q = sockets.get(step.device);
          assert.ok(q !== undefined, `${where}: the device is connected`);
          const got = await q.next();
          const want = { ...step.frame };
          if (typeof want.session === 'string') {
            assert.equal(typeof got.session, 'string', `${where}: session`);
            want.session = got.session;
          }
          if (typeof want.peer === 'string') {
            assert.match(String(got.peer), /^p[A-Za-z0-9_-]{12}$/, `${where}: peer`);
            peers.set(want.peer, got.peer);
            want.peer = got.peer;
          }
          assert.deepEqual(got, want, where);
        }
      }
    } finally {
      for (const q of sockets.values()) q.ws.close();
    }
  });
});
