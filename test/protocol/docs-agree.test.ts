/**
 * docs/protocol.md must agree with the code: the error table lists exactly the registry of
 * src/protocol/errors.ts, every internal bus subject is documented, every route of the
 * wire contract (PROTOCOL.md, version 1) is documented, and so are every HTTP route the
 * server actually serves and every configuration option of `datagrove serve`.
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { ERROR_STATUS } from '../../src/protocol/errors.js';
import { SUBJECTS } from '../../src/protocol/bus-messages.js';
import { buildServer } from '../../src/server/app.js';
import { OPTIONS, defaultConfig } from '../../src/server/config.js';
import { tempDir } from '../helpers/server.js';

const DOC_PATH = fileURLToPath(new URL('../../docs/protocol.md', import.meta.url));
const doc = readFileSync(DOC_PATH, 'utf8');

/**
 * The auth routes of the wire contract's auth table (PROTOCOL.md, version 1), relative to
 * `/auth/v1`. The contract is frozen per version, so the list is written out here; setting
 * DATAGROVE_PROTOCOL_MD to a copy of PROTOCOL.md also checks this list against its table.
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
    const contractPath = process.env.DATAGROVE_PROTOCOL_MD;
    if (contractPath === undefined || contractPath === '') {
      t.skip('DATAGROVE_PROTOCOL_MD is not set; the route list above stands for the contract');
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
