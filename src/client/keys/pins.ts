/**
 * Pinned user keys (trust on first use): the first time this device sees a user's key chain
 * it remembers version 1's public key; every later chain of that user must start with the
 * same key (user-key-chain.ts proves the rest). A mismatch means the server (or whoever
 * answers in its name) presents another key for the user: the SDK refuses to encrypt to
 * or accept keys from that user. Pins are public data, kept in the KeyStorage as they are.
 */
import { DgError } from '../../protocol/errors.js';
import type { JsonValue, KeyStorage } from '../key-storage.js';
import type { UserKeyLink } from './user-key-chain.js';

export const PINS_NAME = 'datagrove.user-key-pins';
/** Pins kept at most (the oldest are dropped beyond it). */
export const MAX_PINS = 10_000;

export class KeyPins {
  private pins: Map<string, string> | null = null;
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly storage: KeyStorage) {}

  private async load(): Promise<Map<string, string>> {
    if (this.pins !== null) return this.pins;
    const v = await this.storage.load(PINS_NAME);
    const m = new Map<string, string>();
    if (v !== null && typeof v === 'object' && !Array.isArray(v)) for (const [u, k] of Object.entries(v)) if (typeof k === 'string') m.set(u, k);
    this.pins = m;
    return m;
  }

  /** Pins `user`'s version 1 on first sight; FORBIDDEN when a different one is pinned. */
  check(user: string, chain: UserKeyLink[]): Promise<void> {
    const run = this.chain.then(async () => {
      const first = chain.find((k) => k.version === 1);
      const pins = await this.load();
      const pinned = pins.get(user);
      // No version 1 is a user with no key yet, which a user whose key is pinned is not: a
      // device holding no key would make a "first" one of its own, and nothing would verify.
      if (first === undefined && pinned === undefined) return;
      if (first !== undefined && pinned === first.publicKey) return;
      if (first === undefined || pinned !== undefined) throw new DgError('FORBIDDEN', `user ${user}: the key chain does not start with the pinned key`);
      pins.set(user, first.publicKey);
      while (pins.size > MAX_PINS) pins.delete(pins.keys().next().value as string);
      await this.storage.save(PINS_NAME, Object.fromEntries(pins) as JsonValue);
    });
    this.chain = run.catch(() => undefined);
    return run;
  }
}
