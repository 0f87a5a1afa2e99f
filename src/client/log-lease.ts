/**
 * One lease of a log, as the Log takes it: follows `redirect` replies to the node that
 * serves the site, and answers `needproof` with `attest` of the grant the app supplied
 * (once), then leases again.
 */
import { DgError } from '../protocol/errors.js';
import type { TailConnection } from './tail-connection.js';
import type { LeaseReply } from './tail-types.js';

export type LeaseOk = Extract<LeaseReply, { handle: string }>;

export interface LeaseSteps {
  site: string;
  log: string;
  lead: boolean;
  /** The connection to lease on (changes after `follow`). */
  conn: () => TailConnection;
  /** Switches to the node at `url` (a redirect). */
  follow: (url: string) => Promise<void>;
  /** The grant the app supplied for the site, if any. */
  grant: () => string | undefined;
  /** The grant was attested: the device's access to the site grew. */
  attested: () => void;
  /** Called right before each lease request is sent. */
  sending: () => void;
}

const MAX_HOPS = 5;

export async function leaseWithProof(s: LeaseSteps): Promise<LeaseOk> {
  let attested = false;
  for (let hops = 0; hops < MAX_HOPS; hops++) {
    const conn = s.conn();
    await conn.ready();
    s.sending();
    const r = await conn.request('lease', { site: s.site, log: s.log, lead: s.lead }, { retry: false });
    if ('redirect' in r) {
      await s.follow(r.redirect);
      continue;
    }
    if ('needproof' in r) {
      const grant = s.grant();
      if (grant === undefined || attested) throw new DgError('FORBIDDEN', `no access to site ${s.site}`);
      await conn.request('attest', { grant });
      attested = true;
      s.attested();
      continue;
    }
    return r;
  }
  throw new DgError('UNAVAILABLE', 'too many redirects');
}
