#!/usr/bin/env node
/**
 * The `datagrove` command: `serve`, `backup`, `restore`, `lift-epochs`, `keys init`,
 * `keys rotate`, `keys revoke-attestation`, `--help`.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { DgError } from '../protocol/errors.js';
import { loadVapidKeys, VAPID_FILE } from '../notify/index.js';
import { openPgLogStore, openSqliteLogStore } from '../tail/index.js';
import { buildServer } from './app.js';
import { lockDataDir } from './data-dir-lock.js';
import { openPostgres, openSqliteFile } from './database-open.js';
import { backupDataDir, KEY_FILES, restoreDataDir, TAIL_DB } from './backup.js';
import { helpText, loadConfig } from './config.js';
import { ATTESTATION_FILE, HMAC_FILE, initKeyFiles, revokeAttestationKey, rotateSecrets } from './secrets.js';

/**
 * The arguments of a `keys` command: `--data DIR` (or `--data=DIR`, else DATAGROVE_DATA,
 * else ./data) and exactly `positional` other words; anything else is refused.
 */
function keysArgs(args: readonly string[], positional: number, usage: string): { dataDir: string; words: string[] } {
  let dataDir: string | undefined;
  const words: string[] = [];
  for (let i = 0; i < args.length; i++) {
    const a = args[i] ?? '';
    if (a === '--data' || a.startsWith('--data=')) {
      const v = a === '--data' ? args[++i] : a.slice('--data='.length);
      if (v === undefined || v === '' || v.startsWith('--')) throw new DgError('BAD_REQUEST', `--data needs a directory (usage: ${usage})`);
      dataDir = v;
    } else if (a.startsWith('-')) {
      throw new DgError('BAD_REQUEST', `unknown option '${a}' (usage: ${usage})`);
    } else {
      words.push(a);
    }
  }
  if (words.length !== positional) throw new DgError('BAD_REQUEST', `usage: ${usage}`);
  return { dataDir: dataDir ?? (process.env.DATAGROVE_DATA || './data'), words };
}

function keys(args: string[]): void {
  const [sub, ...rest] = args;
  if (sub === 'init') {
    const { dataDir } = keysArgs(rest, 0, 'datagrove keys init [--data DIR]');
    const made = initKeyFiles(dataDir, { file: VAPID_FILE, make: (dir) => void loadVapidKeys(dir) });
    const all = [HMAC_FILE, ATTESTATION_FILE, VAPID_FILE];
    const kept = all.filter((f) => !made.includes(f));
    process.stdout.write(
      `${made.length > 0 ? `made ${made.join(', ')}` : 'made nothing'}${kept.length > 0 ? `; kept ${kept.join(', ')}` : ''} in ${dataDir}. ` +
        "In a cluster, copy these files into every process's data directory.\n",
    );
    return;
  }
  if (sub === 'rotate') {
    const { dataDir } = keysArgs(rest, 0, 'datagrove keys rotate [--data DIR]');
    const r = rotateSecrets(dataDir);
    const dropped = r.droppedHmacKids.length > 0 ? ` HMAC keys replaced over a day ago were dropped: ${r.droppedHmacKids.join(', ')}.` : '';
    process.stdout.write(
      `new HMAC key ${r.hmacKid}; new attestation key ${r.attestationKid} in ${dataDir} (old ones still verify).${dropped} ` +
        'Restart servers to use them; in a cluster, copy the files to every process and restart the tail and notify processes before the auth ones.\n',
    );
    return;
  }
  if (sub === 'revoke-attestation') {
    const { dataDir, words } = keysArgs(rest, 1, 'datagrove keys revoke-attestation KID [--data DIR]');
    const kid = words[0] ?? '';
    if (!revokeAttestationKey(dataDir, kid)) throw new DgError('NOT_FOUND', `no attestation key ${kid} in ${dataDir}`);
    process.stdout.write(`attestation key ${kid} marked revoked. Restart servers to publish it.\n`);
    return;
  }
  throw new DgError('BAD_REQUEST', `unknown command 'keys ${args.join(' ')}' (see datagrove --help)`);
}

async function serve(args: string[]): Promise<void> {
  const config = loadConfig(args);
  const server = await buildServer(config);
  let port: number;
  try {
    port = await server.listen();
  } catch (err) {
    // A port in use: let the stores and the data directory's lock go before exiting.
    await server.close().catch(() => undefined);
    throw err;
  }
  server.app.log.info({ port, roles: config.roles, data: config.dataDir }, 'datagrove listening');
  let stopping = false;
  const stop = (signal: string) => {
    if (stopping) return;
    stopping = true;
    server.app.log.info({ signal }, 'draining');
    const force = setTimeout(() => process.exit(1), 15000);
    force.unref();
    server.close().then(
      () => process.exit(0),
      (err: unknown) => {
        server.app.log.error({ err }, 'shutdown failed');
        process.exit(1);
      },
    );
  };
  process.on('SIGTERM', () => stop('SIGTERM'));
  process.on('SIGINT', () => stop('SIGINT'));
}

/** Takes `flag VALUE` out of `args` (required), returning the value and the other arguments. */
function takeFlag(args: string[], flag: string): { value: string; rest: string[] } {
  const i = args.indexOf(flag);
  const value = i >= 0 ? args[i + 1] : undefined;
  if (value === undefined || value.startsWith('--')) throw new DgError('BAD_REQUEST', `${flag} DIR is required (see datagrove --help)`);
  return { value, rest: [...args.slice(0, i), ...args.slice(i + 2)] };
}

function sqliteOnly(db: string, what: string): void {
  if (db === 'sqlite') return;
  throw new DgError(
    'BAD_REQUEST',
    `${what} copies SQLite data directories; with --db PostgreSQL, back the databases up with PostgreSQL's own tools and copy the data directory's key files, ` +
      'and after restoring run `datagrove lift-epochs --db URL` before serving',
  );
}

async function backup(args: string[]): Promise<void> {
  const { value: dest, rest } = takeFlag(args, '--to');
  const keys = !rest.includes('--no-keys');
  const config = loadConfig(rest.filter((a) => a !== '--no-keys'));
  sqliteOnly(config.db, 'backup');
  const r = backupDataDir(config.dataDir, dest, { keys });
  for (const f of r.files) process.stdout.write(`${f.name}\t${f.bytes} bytes\tsha256 ${f.sha256}\n`);
  process.stdout.write(`backup of ${config.dataDir} written to ${dest}. Restore it with \`datagrove restore --from ${dest} --data DIR\`.\n`);
}

async function restore(args: string[]): Promise<void> {
  const { value: from, rest } = takeFlag(args, '--from');
  const config = loadConfig(rest);
  sqliteOnly(config.db, 'restore');
  const r = await restoreDataDir(from, config.dataDir);
  const keyless = KEY_FILES.filter((f) => !r.files.includes(f));
  const keys =
    keyless.length === 0
      ? ''
      : ` The backup holds no ${keyless.join(', ')}: copy them from the data directory it was taken of before serving (a server does not make new keys over data made with the old ones; \`datagrove keys init --data ${config.dataDir}\` makes new ones on purpose).`;
  process.stdout.write(`restored ${r.files.join(', ')} into ${config.dataDir}; the epochs of ${r.logs} logs were lifted. Serve it with --data ${config.dataDir}.${keys}\n`);
}

/**
 * For a store restored some other way (a disk snapshot, PostgreSQL's tools): lifts its
 * epochs. A SQLite data directory is locked meanwhile: never lifted under a serving process.
 */
async function liftEpochs(args: string[]): Promise<void> {
  const config = loadConfig(args);
  const file = join(config.dataDir, TAIL_DB);
  if (config.db === 'sqlite' && !existsSync(file)) throw new DgError('BAD_REQUEST', `no tail store at ${file}`);
  const lock = config.db === 'sqlite' ? lockDataDir(config.dataDir) : null;
  try {
    const store =
      config.db === 'sqlite'
        ? openSqliteFile('tail', file, (path) => openSqliteLogStore(path))
        : await openPostgres(config.db, () => openPgLogStore(config.db, { schema: config.dbSchema }));
    try {
      const n = await store.liftEpochs();
      process.stdout.write(`the epochs of ${n} logs were lifted.\n`);
    } finally {
      await store.close();
    }
  } finally {
    lock?.release();
  }
}

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help' || rest.includes('--help')) {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  if (cmd === 'serve') return serve(rest);
  if (cmd === 'backup') return backup(rest);
  if (cmd === 'restore') return restore(rest);
  if (cmd === 'lift-epochs') return liftEpochs(rest);
  if (cmd === 'keys') return keys(rest);
  throw new DgError('BAD_REQUEST', `unknown command '${argv.join(' ')}' (see datagrove --help)`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`datagrove: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof DgError && err.code === 'BAD_REQUEST' ? 2 : 1);
});
