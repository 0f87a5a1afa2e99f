/**
 * An in-memory storage adapter for oidc-provider (sessions, interactions, codes, tokens,
 * grants). Enough for a development identity provider in one process: everything is lost on
 * restart, which for a dev IdP only means signing in again. Entries expire by themselves;
 * the total is bounded so that a flood of requests cannot grow memory without limit.
 */
import type { Adapter, AdapterPayload } from 'oidc-provider';

const MAX_ENTRIES = 10_000;

interface Entry {
  payload: AdapterPayload;
  expiresAt: number;
}

/** One store shared by every model's adapter, keyed by `model:id`. */
export class MemoryStore {
  readonly #entries = new Map<string, Entry>();
  readonly #index = new Map<string, string>();

  get(key: string): AdapterPayload | undefined {
    const e = this.#entries.get(key);
    if (e === undefined) return undefined;
    if (e.expiresAt <= Date.now()) {
      this.#entries.delete(key);
      return undefined;
    }
    return e.payload;
  }

  set(key: string, payload: AdapterPayload, expiresInSec: number): void {
    this.#entries.delete(key);
    this.#entries.set(key, { payload, expiresAt: Date.now() + Math.max(1, expiresInSec) * 1000 });
    while (this.#entries.size > MAX_ENTRIES) {
      const oldest = this.#entries.keys().next().value;
      if (oldest === undefined) break;
      this.#entries.delete(oldest);
    }
  }

  delete(key: string): void {
    this.#entries.delete(key);
  }

  /** Secondary keys (uid, user code, grant) → primary key. */
  link(key: string, target: string): void {
    this.#index.set(key, target);
    if (this.#index.size > MAX_ENTRIES * 4) {
      const oldest = this.#index.keys().next().value;
      if (oldest !== undefined) this.#index.delete(oldest);
    }
  }

  follow(key: string): string | undefined {
    return this.#index.get(key);
  }

  dropLinked(key: string): void {
    const raw = this.#index.get(key);
    if (raw === undefined) return;
    for (const k of raw.split('\n')) this.#entries.delete(k);
    this.#index.delete(key);
  }
}

export function memoryAdapter(store: MemoryStore): (model: string) => Adapter {
  return (model: string): Adapter => {
    const key = (id: string) => `${model}:${id}`;
    return {
      async upsert(id, payload, expiresIn) {
        store.set(key(id), payload, expiresIn);
        if (payload.uid !== undefined) store.link(`uid:${payload.uid}`, key(id));
        if (payload.userCode !== undefined) store.link(`userCode:${payload.userCode}`, key(id));
        if (payload.grantId !== undefined) {
          const g = `grant:${payload.grantId}`;
          const prev = store.follow(g);
          store.link(g, prev === undefined ? key(id) : `${prev}\n${key(id)}`);
        }
      },
      async find(id) {
        return store.get(key(id));
      },
      async findByUid(uid) {
        const k = store.follow(`uid:${uid}`);
        return k === undefined ? undefined : store.get(k);
      },
      async findByUserCode(userCode) {
        const k = store.follow(`userCode:${userCode}`);
        return k === undefined ? undefined : store.get(k);
      },
      async consume(id) {
        const p = store.get(key(id));
        if (p !== undefined) p.consumed = Math.floor(Date.now() / 1000);
      },
      async destroy(id) {
        store.delete(key(id));
      },
      async revokeByGrantId(grantId) {
        store.dropLinked(`grant:${grantId}`);
      },
    };
  };
}
