/**
 * The in-memory revocation set that bearer checks consult on every request: devices and
 * refresh families revoked recently. An access token lives at most `windowMs` minus the
 * slack, and no token is minted for a device or family after its revocation is stored, so a
 * revocation older than the window can no longer match a live token and is dropped.
 * It is loaded from the store at start and kept current by this node's revocations, by
 * the `dg.tail.revoke` events of other auth nodes, and by reading the store's recent
 * revocations every few seconds (index.ts), which a lost bus message cannot skip.
 */
export class RevocationSet {
  readonly #devices = new Map<string, number>();
  readonly #families = new Map<string, number>();
  readonly #windowMs: number;

  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  get windowMs(): number {
    return this.#windowMs;
  }

  addDevice(id: string, at: number): void {
    this.#devices.set(id, at);
  }

  addFamily(id: string, at: number): void {
    this.#families.set(id, at);
  }

  isRevoked(device: string, family: string): boolean {
    return this.#devices.has(device) || this.#families.has(family);
  }

  prune(now: number): void {
    const cutoff = now - this.#windowMs;
    for (const m of [this.#devices, this.#families]) for (const [k, at] of m) if (at < cutoff) m.delete(k);
  }
}
