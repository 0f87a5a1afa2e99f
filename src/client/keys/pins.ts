/**
 * Pinned user keys (trust on first use): the first time this device sees a user's key chain
 * it remembers version 1's public key; every later chain of that user must start with the
 * same key (user-key-chain.ts proves the rest). A mismatch means the server (or whoever
 * answers in its name) presents another key for the user: the SDK refuses to encrypt to
 * or accept keys from that user. Pins are public data, kept in the KeyStorage as they are.
 */
import { DgError } from '../../protocol/errors.js';
import { withLock, type JsonValue, type KeyStorage } from '../key-storage.js';
import type { UserKeyLink } from './user-key-chain.js';

export const PINS_NAME = 'datagrove.user-key-pins';
/** Pins kept at most (the oldest are dropped beyond it). */
export const MAX_PINS = 10_000;

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
      await this.pin(user, first.publicKey);
    });
    this.chain = run.catch(() => undefined);
    return run;
  }
}
