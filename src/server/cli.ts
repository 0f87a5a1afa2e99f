#!/usr/bin/env node
/** The `datagrove` command: `serve`, `keys rotate`, `keys revoke-attestation`, `--help`. */
import { DgError } from '../protocol/errors.js';
import { buildServer } from './app.js';
import { helpText, loadConfig } from './config.js';
import { revokeAttestationKey, rotateSecrets } from './secrets.js';

function dataDirFrom(args: string[]): string {
  const i = args.indexOf('--data');
  return (i >= 0 ? args[i + 1] : undefined) ?? process.env.DATAGROVE_DATA ?? './data';
}

async function serve(args: string[]): Promise<void> {
  const config = loadConfig(args);
  const server = await buildServer(config);
  const port = await server.listen();
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

async function main(argv: string[]): Promise<void> {
  const [cmd, ...rest] = argv;
  if (cmd === undefined || cmd === '--help' || cmd === '-h' || cmd === 'help' || rest.includes('--help')) {
    process.stdout.write(`${helpText()}\n`);
    return;
  }
  if (cmd === 'serve') return serve(rest);
  if (cmd === 'keys' && rest[0] === 'rotate') {
    const r = rotateSecrets(dataDirFrom(rest));
    process.stdout.write(`new HMAC key ${r.hmacKid}; new attestation key ${r.attestationKid} (old ones retired, still verifiable). Restart servers to use them.\n`);
    return;
  }
  if (cmd === 'keys' && rest[0] === 'revoke-attestation' && rest[1] !== undefined) {
    if (!revokeAttestationKey(dataDirFrom(rest), rest[1])) throw new DgError('NOT_FOUND', `no attestation key ${rest[1]}`);
    process.stdout.write(`attestation key ${rest[1]} marked revoked. Restart servers to publish it.\n`);
    return;
  }
  throw new DgError('BAD_REQUEST', `unknown command '${argv.join(' ')}' (see datagrove --help)`);
}

main(process.argv.slice(2)).catch((err: unknown) => {
  process.stderr.write(`datagrove: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(err instanceof DgError && err.code === 'BAD_REQUEST' ? 2 : 1);
});
