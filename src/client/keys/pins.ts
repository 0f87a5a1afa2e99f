/**
 * Pinned user keys (trust on first use): the first time this device sees a user's key chain
 * it remembers version 1's public key; every later chain of that user must start with the
 * same key (user-key-chain.ts proves the rest). A mismatch means the server (or whoever
 * answers in its name) presents another key for the user: the SDK refuses to encrypt to
 * or accept keys from that user. Pins are public data, kept in the KeyStorage as they are.
 *
 * It also remembers the newest version it has seen of each user's chain and its key (the
 * chain's head): a later chain must reach that version with that key. A version is rotated
 * away from because a device that held it was revoked, and that device can still sign with
 * it, a next version too: a chain cut back to the older version, or forked from it, would
 * make its certificates trusted again and the older key pass for the newest.
 */
import { DgError } from '../../protocol/errors.js';
import { withLock, type JsonValue, type KeyStorage } from '../key-storage.js';
import type { UserKeyLink } from './user-key-chain.js';

export const PINS_NAME = 'datagrove.user-key-pins';
/** Where the newest version seen of each user's chain is kept: {user: {v, k}}. */
export const HEADS_NAME = 'datagrove.user-key-heads';
/** Pins kept at most (the oldest are dropped beyond it). */
export const MAX_PINS = 10_000;

interface Head {
  v: number;
  k: string;
}

export class KeyPins {
  private pins: Map<string, string> | null = null;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly storage: KeyStorage) {}

  private async load(): Promise<Map<string, string>> {
    this.pins ??= await this.read();
    return this.pins;
  }

  /** The pins in the storage now. */
  private async read(): Promise<Map<string, string>> {
    const v = await this.storage.load(PINS_NAME);
    const m = new Map<string, string>();
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) for (const [u, k] of Object.entries(v)) if (typeof k === 'string') m.set(u, k);
    return m;
  }

  /**
   * Pins `user` to `key`, merged with the pins in the storage (other clients of the device
   * sharing it pin users too), under the storage's lock when it has one: a save keeps every
   * pin stored or held here (but the oldest beyond MAX_PINS), and a user another client
   * pinned meanwhile to another key is refused as any mismatch is.
   */
  private async pin(user: string, key: string): Promise<void> {
    const write = async (): Promise<void> => {
      const all = await this.read();
      for (const [u, k] of this.pins ?? []) if (!all.has(u)) all.set(u, k);
      const prior = all.get(user);
      if (prior !== undefined && prior !== key) {
        this.pins = all;
        throw new DgError('FORBIDDEN', `user ${user}: the key chain does not start with the pinned key`);
      }
      all.set(user, key);
      while (all.size > MAX_PINS) all.delete(all.keys().next().value as string);
      this.pins = all;
      await this.storage.save(PINS_NAME, Object.fromEntries(all) as JsonValue);
    };
    await withLock(this.storage, PINS_NAME, write);
  }

  /**
   * Pins `user`'s version 1 on first sight; FORBIDDEN when a different one is pinned, or
   * when the chain does not reach the newest version seen of it with the key seen.
   */
  check(user: string, chain: UserKeyLink[]): Promise<void> {
    const run = this.chain.then(async () => {
      const first = chain.find((k) => k.version === 1);
      const pins = await this.load();
      const pinned = pins.get(user);
      // No version 1 is a user with no key yet, which a user whose key is pinned is not: a
      // device holding no key would make a "first" one of its own, and nothing would verify.
      if (first === undefined && pinned === undefined) return;
      if (first === undefined || (pinned !== undefined && pinned !== first.publicKey)) throw new DgError('FORBIDDEN', `user ${user}: the key chain does not start with the pinned key`);
      if (pinned === undefined) await this.pin(user, first.publicKey);
      await this.checkHead(user, chain);
    });
    this.chain = run.catch(() => undefined);
    return run;
  }

  /** The heads in the storage now (other clients of the device may have seen newer ones). */
  private async readHeads(): Promise<Map<string, Head>> {
    const v = await this.storage.load(HEADS_NAME);
    const m = new Map<string, Head>();
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) {
      for (const [u, h] of Object.entries(v)) {
        if (h !== null && typeof h === 'object' && !Array.isArray(h) && typeof h.v === 'number' && Number.isSafeInteger(h.v) && typeof h.k === 'string') m.set(u, { v: h.v, k: h.k });
      }
    }
    return m;
  }

  /** FORBIDDEN when `chain` does not hold `seen` (the same key at the same version). */
  private static extend(user: string, chain: UserKeyLink[], seen: Head | undefined): void {
    if (seen === undefined) return;
    const at = chain.find((k) => k.version === seen.v);
    if (at === undefined) throw new DgError('FORBIDDEN', `user ${user}: the key chain stops short of version ${seen.v}, which was seen before`);
    if (at.publicKey !== seen.k) throw new DgError('FORBIDDEN', `user ${user}: the key chain holds another key for version ${seen.v} than the one seen before`);
  }

  /** Checks `chain` against the newest version seen of it, and remembers a newer one. */
  private async checkHead(user: string, chain: UserKeyLink[]): Promise<void> {
    const newest = chain.reduce<UserKeyLink | undefined>((a, k) => (a === undefined || k.version > a.version ? k : a), undefined);
    if (newest === undefined) return;
    const seen = (await this.readHeads()).get(user);
    KeyPins.extend(user, chain, seen);
    // Version 1 is the pin; a version no newer than one seen is known already.
    if (newest.version === 1 || (seen !== undefined && seen.v >= newest.version)) return;
    const write = async (): Promise<void> => {
      const all = await this.readHeads();
      const stored = all.get(user);
      KeyPins.extend(user, chain, stored);
      if (stored !== undefined && stored.v >= newest.version) return;
      all.delete(user);
      all.set(user, { v: newest.version, k: newest.publicKey });
      while (all.size > MAX_PINS) all.delete(all.keys().next().value as string);
      await this.storage.save(HEADS_NAME, Object.fromEntries([...all].map(([u, h]) => [u, { v: h.v, k: h.k }])) as JsonValue);
    };
    await withLock(this.storage, HEADS_NAME, write);
  }
}
