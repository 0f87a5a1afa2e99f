/**
 * End-to-end encryption for a DatagroveClient: the user key, device approval, site keys and
 * the payload codec that seals every entry of the logs the client opens. The server sees
 * public keys, signatures and ciphertext only (docs/keys.md).
 *
 * Background work (a `device` event to consider, an `envelope` to open, a key to fetch for
 * an entry) runs one step at a time; failures are reported on the `error` event and never
 * stop later work.
 */
import { DgError } from '../../protocol/errors.js';
import { SITE_ID_RE } from '../../protocol/ids.js';
import { b64urlDecode, b64urlEncode } from '../bytes.js';
import type { DatagroveClient } from '../client.js';
import type { PayloadCodec } from '../crypto/payload-codec.js';
import { Emitter } from '../emitter.js';
import { withLock, type KeyStorage } from '../key-storage.js';
import type { TailEvent } from '../tail-types.js';
import { qrSvg } from '../qr/svg.js';
import type { ServerKey } from './attestation.js';
import { considerDevice, signOwnBoxKey, uncertifiedDevices, type ApprovalResult, type DeviceApprovalRequest } from './device-approval.js';
import { verifiedUser, type VerifiedUser } from './directory.js';
import { EntryCipher } from './entry-cipher.js';
import { drainInbox } from './inbox.js';
import { KeyApi } from './key-api.js';
import { ManagedKeySource } from './key-source.js';
import type { HeldUserKey, KeyContext } from './key-context.js';
import { saveKeychain } from './keychain.js';
import { KeyPins } from './pins.js';
import { ServerEpochs } from './server-epochs.js';
import { createEncryptedSite, rotateSiteKey, shareSite, type Delivery, type ShareSpec } from './site-key-flows.js';
import { SiteKeyring } from './site-keyring.js';
import { UserKey } from './user-key.js';
import { importUserKey, rotateUserKey, settleUserKey, syncKeychain, type UserKeyState } from './user-key-flows.js';
import { LocalVault } from './vault.js';
import { WriterDirectory, type Writer } from './writers.js';

export interface KeyManagerOptions {
  /** Where this device keeps its sealed user key, site keys and pins (e.g. the client's storage). */
  storage: KeyStorage;
  /** Where the device-local key that seals them is kept (default: `storage`). */
  localKeyStorage?: KeyStorage;
  /** Asked before the user key goes to a new device of the user; without it no device is approved. */
  approveDevice?: (req: DeviceApprovalRequest) => Promise<boolean>;
  /** Check identity attestations' `iss` against this URL (default: not checked; the key check binds them to this server). */
  issuer?: string;
  /** How long a site's key epoch read from the server is trusted before it is read again, ms (default 30000). */
  epochTtlMs?: number;
}

export interface KeyManagerEvents extends Record<string, unknown> {
  /** The user key state changed. */
  state: UserKeyState;
  /** A device was considered for approval. */
  device: ApprovalResult;
  /** Keys of a site arrived (from an envelope or the keychain). */
  'site-keys': { site: string; added: number };
  /** Background work failed. */
  error: DgError;
}

const userKeyName = (user: string) => `datagrove.user-key:${user}`;
const ringName = (user: string) => `datagrove.site-keys:${user}`;
const revokedName = (user: string) => `datagrove.revoked-devices:${user}`;
/** Devices remembered as revoked by this device (the oldest are forgotten beyond this). */
const MAX_REVOKED_REMEMBERED = 1000;

/**
 * @example
 * ```ts
 * const client = await DatagroveClient.create({ url, WebSocket, storage });
 * if (!client.signedIn) await client.signup('my laptop'); // or sign in with a provider
 * const keys = await KeyManager.open(client, { storage, approveDevice: async (d) => confirm(`Add ${d.name}?`) });
 * if ((await keys.start()) === 'ready') {
 *   const { site } = await keys.createSite('notes');
 *   client.openLog(site, 'main').append([new TextEncoder().encode('secret')]); // sealed end to end
 * }
 * ```
 */
export class KeyManager extends Emitter<KeyManagerEvents> implements KeyContext {
  readonly api: KeyApi;
  readonly ring: SiteKeyring;
  readonly epochs: ServerEpochs;
  readonly user: string;
  readonly issuer: string | undefined;
  /** The codec that seals the client's log entries (set on the client by `open`). */
  readonly codec: PayloadCodec;
  private heldKey: HeldUserKey | null = null;
  /** Devices this device revoked (kept in the vault): never sent keys. */
  private revoked = new Set<string>();
  private readonly writers: WriterDirectory;
  private st: UserKeyState = 'awaiting-key';
  private readonly source: ManagedKeySource;
  private inbox: Promise<void> | null = null;
  private work: Promise<unknown> = Promise.resolve();
  private readonly decided = new Map<string, Promise<ApprovalResult>>();
  private offEvents: (() => void)[] = [];
  private closed = false;

  private constructor(
    readonly client: DatagroveClient,
    readonly vault: LocalVault,
    readonly pins: KeyPins,
    private readonly opts: KeyManagerOptions,
    ring: SiteKeyring,
  ) {
    super();
    const user = client.user;
    if (user === null) throw new DgError('UNAUTHORIZED', 'not signed in');
    this.user = user;
    this.ring = ring;
    this.issuer = opts.issuer;
    this.api = new KeyApi(client.auth, client.session);
    this.epochs = new ServerEpochs(async (site) => (await client.siteInfo(site)).keyEpoch);
    this.source = new ManagedKeySource(this.epochs, ring, () => this.fetchKeys(), opts.epochTtlMs ?? 30_000);
    this.codec = new EntryCipher(this.source);
    this.writers = new WriterDirectory(this);
  }

  /** Loads this device's sealed keys and makes the client seal its logs; call `start` next. */
  static async open(client: DatagroveClient, opts: KeyManagerOptions): Promise<KeyManager> {
    checkOptions(opts);
    const user = client.user;
    if (user === null) throw new DgError('UNAUTHORIZED', 'not signed in');
    const vault = await LocalVault.open(opts.storage, opts.localKeyStorage);
    const ring = SiteKeyring.fromJSON(await vault.load(ringName(user)));
    const m = new KeyManager(client, vault, new KeyPins(opts.storage), opts, ring);
    const revoked = await vault.load(revokedName(user));
    if (Array.isArray(revoked)) for (const d of revoked) if (typeof d === 'string') m.revoked.add(d);
    const held = await vault.load(userKeyName(user));
    if (held !== null && typeof held === 'object' && !Array.isArray(held) && typeof held.seed === 'string' && typeof held.version === 'number') {
      const seed = b64urlDecode(held.seed);
      if (seed !== null) m.heldKey = { key: UserKey.fromSeed(seed), version: held.version };
    }
    client.setCodec(m.codec);
    return m;
  }

  /** 'ready' when this device holds the newest user key; 'awaiting-key' until another device (or words) provide it. */
  get state(): UserKeyState {
    return this.st;
  }

  /** The version of the user key this device holds, or null. */
  get userKeyVersion(): number | null {
    return this.heldKey?.version ?? null;
  }

  /**
   * Settles the user key (making it on the user's first device), listens for `device` and
   * `envelope` events on the tail connection, opens waiting envelopes, and reviews the
   * user's uncertified devices. The first start also registers this device's signature of
   * its box key if the server has none, without which no other device approves it.
   */
  async start(): Promise<UserKeyState> {
    if (this.offEvents.length === 0) {
      this.offEvents.push(this.client.on('event', (ev) => this.onEvent(ev)));
      await this.follow();
      await signOwnBoxKey(this).catch((err: unknown) => this.report(asDg(err)));
    }
    await this.sync();
    return this.st;
  }

  /**
   * Listens on the connection of the user's shard: a reconnect syncs (events may have been
   * missed); when its node leaves the shard map, the node that serves the user now is
   * connected and synced.
   */
  private async follow(): Promise<void> {
    const conn = await this.client.connection(this.user);
    this.offEvents.push(
      conn.on('open', ({ reconnect }) => reconnect && void this.background(() => this.sync())),
      conn.on('stopped', () => {
        if (!conn.retired || this.offEvents.length === 0) return;
        void this.background(async () => {
          await this.follow();
          await this.sync();
        });
      }),
    );
    await conn.ready();
  }

  /**
   * Opens waiting envelopes, brings the user key up to date, reviews uncertified devices,
   * and rotates the sites whose keys this device holds that require rotation (a device or
   * member was revoked) and that this user administers (`rotatePending`).
   */
  async sync(): Promise<void> {
    await this.openInbox();
    await this.settle();
    if (this.st === 'ready' && this.opts.approveDevice !== undefined) await this.reviewDevices();
    if (this.st === 'ready') await this.rotatePending();
  }

  private async settle(): Promise<void> {
    let state = await settleUserKey(this);
    if (state === 'ready' && (await this.verified({ user: this.user })).rotationRequired) {
      // A revoked device held the newest user key: move to a new one.
      await rotateUserKey(this);
      state = await settleUserKey(this);
    }
    this.setState(state);
  }

  private setState(s: UserKeyState): void {
    if (s === this.st) return;
    this.st = s;
    this.emit('state', s);
  }

  /** Considers every live device of the user that has no certificate under the newest key. */
  async reviewDevices(): Promise<ApprovalResult[]> {
    const out: ApprovalResult[] = [];
    for (const d of await uncertifiedDevices(this)) out.push(await this.consider(d));
    return out;
  }

  /** Considers a device once per session (an event and a review of the same device share one decision). */
  private consider(ev: { device: string; name: string; identity?: string }): Promise<ApprovalResult> {
    const before = this.decided.get(ev.device);
    if (before !== undefined) return before;
    const approve = this.opts.approveDevice ?? (async () => false);
    const run = considerDevice(this, ev, approve).then((r) => {
      // Without the user key, or the device's signature of its box key (it registers one when
      // it starts), nothing was decided: ask again at the next review or event.
      if (r.outcome === 'no-user-key' || r.outcome === 'box-key-unsigned') this.decided.delete(ev.device);
      this.emit('device', r);
      return r;
    });
    this.decided.set(ev.device, run);
    run.catch(() => this.decided.delete(ev.device));
    return run;
  }

  // ---- user key: export and import ----

  private requireKey(): HeldUserKey {
    if (this.heldKey === null) throw new DgError('FORBIDDEN', 'user key: this device does not hold it');
    return this.heldKey;
  }

  /** The user key as 24 BIP39 words (show them once; they restore the key on a fresh device). */
  exportWords(): string {
    return this.requireKey().key.toWords();
  }

  /** The user key as a QR payload string (`dgk1:…`). */
  exportQrPayload(): string {
    return this.requireKey().key.toQrPayload();
  }

  /** The user key as a QR code, an SVG document. */
  exportQrSvg(): string {
    return qrSvg(this.exportQrPayload());
  }

  /** Restores the user key from its words on this device (signed in as the user), then its site keys. */
  async importWords(words: string): Promise<void> {
    if (typeof words !== 'string') throw new DgError('BAD_REQUEST', 'words: must be a string of 24 words');
    await this.importKey(UserKey.fromWords(words));
  }

  /** Restores the user key from a QR payload (`dgk1:…`). */
  async importQrPayload(payload: string): Promise<void> {
    if (typeof payload !== 'string') throw new DgError('BAD_REQUEST', 'payload: must be a string (dgk1:…)');
    await this.importKey(UserKey.fromQrPayload(payload));
  }

  private async importKey(key: UserKey): Promise<void> {
    await importUserKey(this, key);
    this.setState('ready');
  }

  // ---- sites ----

  /**
   * Creates a site with its first key (epoch 1), saved in the keychain before it returns.
   * FORBIDDEN while this device does not hold the user key (state 'awaiting-key'): the key
   * could not be saved in the keychain, and would be lost with this device's storage.
   */
  async createSite(name?: string): Promise<{ site: string; owner: string }> {
    if (this.heldKey === null) throw new DgError('FORBIDDEN', 'user key: this device does not hold it yet (approve it from another device, or import the words), so a new site key could not be saved in the keychain');
    return createEncryptedSite(this, name);
  }

  /** Shares a site with an email or a user: a grant, and every key of the site to their devices. */
  share(site: string, to: { email: string } | { user: string }, spec: ShareSpec): Promise<Delivery & { grant: string; hash: string }> {
    return shareSite(this, site, to, spec);
  }

  /**
   * Rotates a site's key for its current members (admin only). CONFLICT when another admin
   * rotated it first, or when the server's key epoch went back (then nothing was rotated).
   */
  async rotateSite(site: string): Promise<Delivery & { epoch: number }> {
    if (typeof site !== 'string' || !SITE_ID_RE.test(site)) throw new DgError('BAD_REQUEST', 'site: must be a site id');
    const r = await this.rotateOnce(site);
    if (r === null) throw new DgError('CONFLICT', `site ${site}: another admin rotated its key first`);
    return r;
  }

  private async rotateOnce(site: string): Promise<(Delivery & { epoch: number }) | null> {
    const r = await rotateSiteKey(this, site);
    if (r !== null) this.source.noteEpoch(site, r.epoch);
    return r;
  }

  /**
   * Revokes a device. When it is one of the user's, the user key is rotated (it held it),
   * then every site the server asks to rotate where this user is an admin is rotated.
   * Sites this user does not administer are rotated by their admins (their `sync`, or
   * `rotatePending`). A rotation refused because the server's key epoch went back fails
   * the call (CONFLICT) after the device was revoked.
   */
  async revokeDevice(device: string): Promise<{ rotated: string[]; left: string[] }> {
    if (device === this.client.device) {
      // Revoking this very device ends its session: the user's other devices rotate (their `sync`).
      await this.client.revoke({ device });
      return { rotated: [], left: [] };
    }
    const own = (await this.client.me()).devices.some((d) => d.device === device);
    const { rotate } = await this.client.revoke({ device });
    // Remembered before any rotation: the new keys never go to it, even if the server lists it.
    await this.rememberRevoked(device);
    if (own && this.heldKey !== null) await rotateUserKey(this);
    return this.rotateSites(rotate);
  }

  /**
   * Rotates each of `sites` that requires it and that this user administers; a site another
   * admin rotated first is `left`. A rotation refused because the server's key epoch went
   * back (CONFLICT) fails the call: it is never reported as rotated, nor quietly left.
   */
  async rotateSites(sites: string[]): Promise<{ rotated: string[]; left: string[] }> {
    // A string is iterable too: each of its characters would be taken for a site.
    if (!Array.isArray(sites) || !sites.every((s) => typeof s === 'string' && SITE_ID_RE.test(s))) throw new DgError('BAD_REQUEST', 'sites: must be an array of site ids');
    const rotated: string[] = [];
    const left: string[] = [];
    for (const site of sites) {
      const info = await this.client.siteInfo(site).catch(() => null);
      if (info === null || !info.rights.includes('admin') || !info.rotationRequired) {
        left.push(site);
        continue;
      }
      if ((await this.rotateOnce(site)) === null) left.push(site);
      else rotated.push(site);
    }
    return { rotated, left };
  }

  /** Rotates every site whose keys this device holds, that requires rotation and that this user administers. */
  rotatePending(): Promise<{ rotated: string[]; left: string[] }> {
    return this.rotateSites(this.ring.siteIds().filter((s) => SITE_ID_RE.test(s)));
  }

  /** Whether this device holds the key of `site` at `epoch` (default: any). */
  hasKey(site: string, epoch?: number): boolean {
    return epoch === undefined ? this.ring.newest(site) !== undefined : this.ring.get(site, epoch) !== undefined;
  }

  /**
   * The member of `site` that `device` writes as (a `Log` entry's `origin.device` when its
   * `signed` is true): a user whose key chain certifies the device, or an email a server key
   * attests it for, with the member's rights; null when the device is none of the site's
   * members' (see writers.ts for what is proven and what is the server's word).
   */
  writerOf(site: string, device: string): Promise<Writer | null> {
    return this.writers.writerOf(site, device);
  }

  /** Forgets the writers known of `site` (or of every site), e.g. after a member was removed: the next `writerOf` asks again. */
  forgetWriters(site?: string): void {
    this.writers.forget(site);
  }

  // ---- KeyContext ----

  held(): HeldUserKey | null {
    return this.heldKey;
  }

  async adoptUserKey(key: UserKey, version: number): Promise<void> {
    await this.vault.save(userKeyName(this.user), { seed: b64urlEncode(key.seedBytes()), version });
    this.heldKey = { key, version };
  }

  /**
   * Saves the site keys at rest, merged with what the storage holds now. The clients of one
   * device may share the storage (tabs, processes), each holding only the keys it took, and
   * all save under one name: a save keeps every (site, epoch) stored or held here, so no
   * client drops a key another one saved, and this ring takes the stored keys it lacked
   * (their client judged them before saving them; `open` trusts the storage as well). For
   * an epoch stored with another key than the one held here, the stored key stays (a key
   * once saved is never replaced) and the conflict is reported. Nothing is ever removed
   * from the stored keys (a refused key is never added). The read and the write run under
   * the storage's lock when it has one, so the clients' saves take turns; without it, two
   * saves at the very same moment can still keep only one's keys, until the other's next
   * save (its ring still holds them).
   */
  async persistRing(): Promise<void> {
    const name = ringName(this.user);
    const merge = async (): Promise<void> => {
      const stored = SiteKeyring.fromJSON(await this.vault.load(name));
      const out = new SiteKeyring();
      out.merge(stored);
      const { conflicts } = out.merge(this.ring);
      this.ring.merge(stored);
      for (const c of conflicts) this.report(new DgError('CONFLICT', `site keys: another key for ${c} is kept in this device's storage`));
      await this.vault.save(name, out.toJSON());
    };
    await withLock(this.opts.storage, name, merge);
  }

  async saveRing(): Promise<void> {
    await this.persistRing();
    const held = this.heldKey;
    if (held === null) return;
    // A revoked device that held the user key must not be able to open what is saved now:
    // move to a new user key first (it re-seals the keychain, this ring included). Under a
    // version older than the newest (another device moved on, or won the race to) nothing
    // is saved: the newer key is on its way, and the keychain is saved once it is here
    // (the ring it adopts it with holds these keys). The keychain in the profile can still
    // be under the old version a while after the newer one is published.
    const dir = await this.verified({ user: this.user });
    if (held.version < dir.newest) return;
    if (dir.rotationRequired) {
      await rotateUserKey(this);
      return;
    }
    try {
      await saveKeychain(this, held.key, this.user, held.version, this.ring);
    } catch (err) {
      // A keychain under a newer user key: this device's key is on its way; it saves then.
      if (!(err instanceof DgError) || err.code !== 'CONFLICT') throw err;
    }
  }

  serverKeys(): Promise<ServerKey[]> {
    return this.api.serverKeys();
  }

  verified(who: { user: string } | { email: string }): Promise<VerifiedUser> {
    return verifiedUser(this.api, this.pins, who);
  }

  /**
   * Adds `device` to the devices this device remembers as revoked, merged with what the
   * storage holds (other clients of the device sharing it remember theirs), under the
   * storage's lock when it has one: a save never drops another client's entry, only the
   * oldest beyond MAX_REVOKED_REMEMBERED.
   */
  private async rememberRevoked(device: string): Promise<void> {
    const name = revokedName(this.user);
    const merge = async (): Promise<void> => {
      const stored = await this.vault.load(name);
      const all = new Set<string>(Array.isArray(stored) ? stored.filter((d): d is string => typeof d === 'string') : []);
      for (const d of this.revoked) all.add(d);
      all.delete(device);
      all.add(device);
      while (all.size > MAX_REVOKED_REMEMBERED) all.delete(all.values().next().value as string);
      this.revoked = all;
      await this.vault.save(name, [...all]);
    };
    await withLock(this.opts.storage, name, merge);
  }

  revokedHere(device: string): boolean {
    return this.revoked.has(device);
  }

  report(err: DgError): void {
    this.emit('error', err);
  }

  // ---- background work ----

  private onEvent(ev: TailEvent): void {
    if (this.closed) return;
    if (ev.ev === 'envelope') void this.background(() => this.openInbox());
    else if (ev.ev === 'device') {
      const d = { device: ev.device, name: ev.name, ...(ev.identity === undefined ? {} : { identity: ev.identity }) };
      void this.background(() => this.consider(d));
    }
  }

  /** Runs `fn` after earlier background work; reports its failure. */
  private background(fn: () => Promise<unknown>): Promise<void> {
    const run = this.work.then(fn);
    this.work = run.catch(() => undefined);
    return run.then(
      () => undefined,
      (err: unknown) => this.report(asDg(err)),
    );
  }

  /** Opens every waiting envelope (single flight); an envelope that can never be used is deleted and reported. */
  private openInbox(): Promise<void> {
    if (this.inbox === null) {
      const on = { userKeyAdopted: () => this.settle(), siteKeysAdded: (site: string, added: number) => this.emit('site-keys', { site, added }) };
      this.inbox = drainInbox(this, on).finally(() => (this.inbox = null));
    }
    return this.inbox;
  }

  /** Looks for keys this device lacks: waiting envelopes, then the keychain (failures are reported, not thrown). */
  private async fetchKeys(): Promise<void> {
    try {
      await this.openInbox();
      await syncKeychain(this);
    } catch (err) {
      this.report(asDg(err));
    }
  }

  /** Stops listening (the client and its codec stay). */
  close(): void {
    this.closed = true;
    for (const off of this.offEvents) off();
    this.offEvents = [];
  }
}

/** The options as plain JavaScript may pass them: BAD_REQUEST naming what is wrong. */
function checkOptions(opts: unknown): asserts opts is KeyManagerOptions {
  if (opts === null || typeof opts !== 'object') throw new DgError('BAD_REQUEST', 'options: required, with at least `storage` (a KeyStorage)');
  const o = opts as Record<string, unknown>;
  if (!isStorage(o.storage)) throw new DgError('BAD_REQUEST', 'options.storage: required, a KeyStorage (load, save and remove)');
  if (o.localKeyStorage !== undefined && !isStorage(o.localKeyStorage)) throw new DgError('BAD_REQUEST', 'options.localKeyStorage: must be a KeyStorage (load, save and remove)');
  if (o.approveDevice !== undefined && typeof o.approveDevice !== 'function') throw new DgError('BAD_REQUEST', 'options.approveDevice: must be a function');
  if (o.issuer !== undefined && typeof o.issuer !== 'string') throw new DgError('BAD_REQUEST', 'options.issuer: must be a URL string');
  if (o.epochTtlMs !== undefined && (typeof o.epochTtlMs !== 'number' || !(o.epochTtlMs >= 0))) throw new DgError('BAD_REQUEST', 'options.epochTtlMs: must be a number of ms, at least 0');
}

function isStorage(s: unknown): s is KeyStorage {
  if (s === null || typeof s !== 'object') return false;
  const o = s as Record<string, unknown>;
  return typeof o.load === 'function' && typeof o.save === 'function' && typeof o.remove === 'function';
}

function asDg(err: unknown): DgError {
  return err instanceof DgError ? err : new DgError('INTERNAL', err instanceof Error ? err.message : String(err), { cause: err });
}
