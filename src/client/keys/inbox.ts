/**
 * Opening this device's envelopes (GET /auth/v1/envelopes): each is opened and checked
 * (envelope.ts), then handled — a user key from another device of the user, or site keys —
 * and deleted. An envelope that can never be used (it does not open, its sender may not
 * give it, it is malformed) is reported and deleted; a transient failure (the server is
 * unreachable, a rate limit) stops the drain and keeps the envelope for the next try.
 */
import { DgError } from '../../protocol/errors.js';
import { openEnvelope } from './envelope.js';
import type { KeyContext } from './key-context.js';
import { acceptSiteKeys } from './site-key-flows.js';
import { adoptSentUserKey } from './user-key-flows.js';

/** Pages of envelopes read in one drain (each page is at most 64 envelopes). */
const MAX_PAGES = 16;

export interface InboxHandlers {
  /** A newer user key was adopted. */
  userKeyAdopted(): Promise<void>;
  siteKeysAdded(site: string, added: number): void;
}

export async function drainInbox(ctx: KeyContext, on: InboxHandlers): Promise<void> {
  for (let page = 0; page < MAX_PAGES; page++) {
    const { envelopes, more } = await ctx.api.envelopes();
    for (const e of envelopes) {
      try {
        const body = await openEnvelope(ctx.client.keys, e.from, e.data);
        if (body.t === 'user-key') {
          if (await adoptSentUserKey(ctx, body)) await on.userKeyAdopted();
        } else {
          const added = await acceptSiteKeys(ctx, e.from, body);
          if (added > 0) on.siteKeysAdded(body.site, added);
        }
      } catch (err) {
        const d = err instanceof DgError ? err : new DgError('INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
        if (d.code === 'UNAVAILABLE' || d.code === 'RATE_LIMITED' || d.code === 'INTERNAL') throw d;
        ctx.report(new DgError(d.code, `envelope from ${e.from}: ${d.message}`));
      }
      await ctx.api.deleteEnvelope(e.id);
    }
    if (!more) return;
  }
}
