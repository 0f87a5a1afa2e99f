/**
 * The Auth API calls the key manager needs beyond AuthClient's: the key directory
 * (docs/protocol.md "Additions"), envelopes, identity attestations, server keys, members,
 * the profile (where the sealed keychain lives) and this device's signature of its box key.
 * Every reply is shape-checked (reply-shape.ts); every call goes through the session, so
 * tokens refresh as needed.
 */
import { DgError } from '../../protocol/errors.js';
import type { Right } from '../../protocol/ids.js';
import type { AuthClient } from '../auth-client.js';
import { asObj, bool, int, nullableStr, str, strArray, type Obj } from '../reply-shape.js';
import type { Session } from '../session.js';
import type { ServerKey } from './attestation.js';
import type { UserKeyLink } from './user-key-chain.js';

export interface DirectoryEntry {
  user: string;
  userKeys: UserKeyLink[];
  certificates: { device: string; boxKey: string; keyVersion: number; certificate: string }[];
  rotationRequired: boolean;
}

export interface SiteMembers {
  site: string;
  owner: string;
  members: { user: string; rights: Right[] }[];
  emails: { email: string; rights: Right[] }[];
  more: boolean;
}

export interface WaitingEnvelope {
  id: string;
  from: string;
  data: string;
  at: number;
}

export interface ProfileView {
  version: number;
  data: Record<string, unknown>;
}

const list = (o: Obj, k: string): Obj[] => {
  const v = o[k];
  return Array.isArray(v) ? v.map((x) => asObj(x, k)) : [];
};

export class KeyApi {
  constructor(
    private readonly auth: AuthClient,
    private readonly session: Session,
  ) {}

  private async call(method: 'GET' | 'POST' | 'DELETE', path: string, body?: unknown): Promise<Obj | null> {
    return this.session.authed((t) => this.auth.call(method, path, body, t));
  }

  private async obj(method: 'GET' | 'POST', path: string, body?: unknown): Promise<Obj> {
    return asObj(await this.call(method, path, body));
  }

  async publishUserKey(body: { publicKey: string; version: number; sig: string; prevSig?: string }): Promise<{ version: number; publicKey: string }> {
    const r = await this.obj('POST', '/user-key', body);
    return { version: int(r, 'version'), publicKey: str(r, 'publicKey') };
  }

  async postCertificate(certificate: string): Promise<void> {
    await this.obj('POST', '/certificates', { certificate });
  }

  async directory(who: { user: string } | { email: string }): Promise<DirectoryEntry> {
    const q = 'user' in who ? `user=${encodeURIComponent(who.user)}` : `email=${encodeURIComponent(who.email)}`;
    const r = await this.obj('GET', `/certificates?${q}`);
    return {
      user: str(r, 'user'),
      userKeys: list(r, 'userKeys').map((k) => ({ version: int(k, 'version'), publicKey: str(k, 'publicKey'), sig: str(k, 'sig'), prevSig: nullableStr(k, 'prevSig') })),
      certificates: list(r, 'certificates').map((c) => ({ device: str(c, 'device'), boxKey: str(c, 'boxKey'), keyVersion: int(c, 'keyVersion'), certificate: str(c, 'certificate') })),
      rotationRequired: bool(r, 'rotationRequired'),
    };
  }

  async members(site: string): Promise<SiteMembers> {
    const r = await this.obj('GET', `/sites/${encodeURIComponent(site)}/members`);
    return {
      site: str(r, 'site'),
      owner: str(r, 'owner'),
      members: list(r, 'members').map((m) => ({ user: str(m, 'user'), rights: strArray(m, 'rights') as Right[] })),
      emails: list(r, 'emails').map((m) => ({ email: str(m, 'email'), rights: strArray(m, 'rights') as Right[] })),
      more: bool(r, 'more'),
    };
  }

  /** POST /sites/:site/rotated; false on CONFLICT (another admin reported this epoch first). */
  async reportRotated(site: string, keyEpoch: number): Promise<boolean> {
    try {
      await this.obj('POST', `/sites/${encodeURIComponent(site)}/rotated`, { keyEpoch });
      return true;
    } catch (err) {
      if (err instanceof DgError && err.code === 'CONFLICT') return false;
      throw err;
    }
  }

  /** POST /devices/:device/box-sig: this device registers its signature of its box key. */
  async putBoxSig(device: string, boxSig: string): Promise<void> {
    await this.obj('POST', `/devices/${encodeURIComponent(device)}/box-sig`, { boxSig });
  }

  async attestationsOf(email: string): Promise<string[]> {
    return strArray(await this.obj('GET', `/keys?email=${encodeURIComponent(email)}`), 'attestations');
  }

  async serverKeys(): Promise<ServerKey[]> {
    const r = asObj(await this.auth.call('GET', '/server-keys'));
    return list(r, 'keys').map((k) => {
      const status = str(k, 'status');
      return { kid: str(k, 'kid'), publicKey: str(k, 'publicKey'), status: status === 'active' || status === 'retired' ? status : 'revoked' };
    });
  }

  async sendEnvelope(to: string, data: string): Promise<string> {
    return str(await this.obj('POST', '/envelopes', { to, data }), 'id');
  }

  async envelopes(): Promise<{ envelopes: WaitingEnvelope[]; more: boolean }> {
    const r = await this.obj('GET', '/envelopes');
    return { envelopes: list(r, 'envelopes').map((e) => ({ id: str(e, 'id'), from: str(e, 'from'), data: str(e, 'data'), at: int(e, 'at') })), more: bool(r, 'more') };
  }

  async deleteEnvelope(id: string): Promise<void> {
    try {
      await this.call('DELETE', `/envelopes/${encodeURIComponent(id)}`);
    } catch (err) {
      if (!(err instanceof DgError) || err.code !== 'NOT_FOUND') throw err;
    }
  }

  async profile(): Promise<ProfileView> {
    const r = await this.obj('GET', '/profile');
    return { version: int(r, 'version'), data: asObj(r.data ?? {}, 'data') };
  }

  /** Sets one app data key with the profile's compare-and-set; the current profile when `version` was stale. */
  async setProfileData(version: number, key: string, value: unknown): Promise<{ ok: true } | { ok: false; current: ProfileView }> {
    const r = await this.obj('POST', '/profile', { version, changes: [{ op: 'set', key, value }] });
    if (r.ok === true) return { ok: true };
    const p = asObj(r.profile, 'profile');
    // A refused change (not a stale version): in practice the 64 KiB app data limit.
    const refused = list(r, 'comments').find((c) => c.change !== null && c.change !== undefined);
    if (refused !== undefined) throw new DgError('TOO_LARGE', `profile: ${typeof refused.message === 'string' ? refused.message : 'change refused'}`);
    return { ok: false, current: { version: int(p, 'version'), data: asObj(p.data ?? {}, 'data') } };
  }
}
