/**
 * The notify store: notify's own store interface (SQLite for the monolith, PostgreSQL for a
 * cluster), run by one conformance suite (test/conformance/notify-store.ts).
 *
 * What it holds, per user: a version, the (device, site) subscriptions with their mute
 * time, one push endpoint per device, and the last length pushed per (device, site, log).
 * It is a copy of the notification part of auth's profiles: auth is the source of truth, and
 * the version lets notify detect a gap and ask auth for the full state again.
 *
 * Guarantees every implementation gives:
 * - A user never seen has version 0 and no state.
 * - `applyChanges(user, version, changes)` applies every change, in order, and sets the
 *   version, all in one transaction, if and only if the stored version is `version - 1`;
 *   otherwise it writes nothing. Of concurrent calls for one user at most one per version
 *   succeeds (compare-and-set).
 * - `replaceState(user, version, state)` replaces the user's subscriptions and endpoints and
 *   sets the version in one transaction, if and only if `version` is at least the stored one
 *   (an older full state is stale and ignored). The pushed lengths of subscriptions that
 *   survive the replacement are kept; those of removed subscriptions are deleted.
 * - Ops: `join` adds a (device, site) subscription (an existing one keeps its mute time);
 *   `leave` removes it and its pushed lengths; `mute` sets its mute time and `unmute`
 *   clears it (both do nothing when the device is not joined); `push` sets the device's
 *   endpoint (replacing the previous one); `unpush` removes it.
 * - Mute times are compared when read: a subscription is muted while `now < mutedUntil`.
 * - `markPushed` only ever raises a pushed length, and only for a live subscription.
 * - `removeEndpoint` deletes the device's endpoint only while it is still that endpoint, so
 *   an endpoint renewed in the meantime survives the failure of the old one.
 * - `claimWindow` is atomic across every process sharing the store: of any number of
 *   claims of one (user, device, site) while no window is open, exactly one opens it. So
 *   notify processes together push at most once per (device, site) per interval. Windows
 *   go with their subscription (`leave`, a full state without it).
 * - A call that fails on damaged storage (a corrupt page, a file that is no longer a
 *   database) rejects with UNAVAILABLE like any storage failure, and `damage()` names it
 *   from then on.
 * - Every call that resolved is committed. Versions need not survive a power loss (SQLite
 *   runs WAL with synchronous=NORMAL): a lost version shows up as a gap and is repaired by
 *   the full state from auth.
 */

export interface PushKeys {
  /** base64url of the browser's P-256 public key (65 bytes, uncompressed). */
  p256dh: string;
  /** base64url of the 16-byte auth secret. */
  auth: string;
}

export interface SubscriptionState {
  device: string;
  site: string;
  /** ms since the epoch; null when not muted. */
  mutedUntil: number | null;
}

export interface EndpointState {
  device: string;
  endpoint: string;
  keys: PushKeys;
}

/** The notification state of one user; lists are sorted by device, then site. */
export interface UserState {
  subscriptions: SubscriptionState[];
  push: EndpointState[];
}

/** A change the store applies; endpoints and keys are already checked by the caller. */
export type StoreChange =
  | { op: 'join'; device: string; site: string }
  | { op: 'leave'; device: string; site: string }
  | { op: 'mute'; device: string; site: string; until: number }
  | { op: 'unmute'; device: string; site: string }
  | { op: 'push'; device: string; endpoint: string; keys: PushKeys }
  | { op: 'unpush'; device: string };

/** A device that may get a push for (site, log): joined, with an endpoint, not muted. */
export interface PushTarget {
  user: string;
  device: string;
  endpoint: string;
  keys: PushKeys;
  /** The last length pushed to this device for (site, log); 0 when none. */
  pushedLength: number;
}

export interface VersionResult {
  /** Whether the call wrote its state. */
  ok: boolean;
  /** The user's stored version after the call. */
  version: number;
}

export interface NotifyStore {
  applyChanges(user: string, version: number, changes: readonly StoreChange[]): Promise<VersionResult>;
  replaceState(user: string, version: number, state: UserState): Promise<VersionResult>;
  /** The user's version and state (version 0 and empty lists for an unknown user). */
  userState(user: string): Promise<{ version: number } & UserState>;
  /** Every device joined to `site`, with an endpoint and not muted at `now`. */
  targets(site: string, log: string, now: number): Promise<PushTarget[]>;
  /** The same for one device of one user, or null when it no longer qualifies. */
  target(user: string, device: string, site: string, log: string, now: number): Promise<PushTarget | null>;
  markPushed(user: string, device: string, site: string, log: string, length: number): Promise<void>;
  /** True when the endpoint was still the device's and is now deleted. */
  removeEndpoint(user: string, device: string, endpoint: string): Promise<boolean>;
  /**
   * The push window of (device, site): when none is open at `now`, opens one until
   * `now + intervalMs` and resolves 0 (push now); otherwise resolves the time (ms) the open
   * window ends, when the caller may claim again.
   */
  claimWindow(user: string, device: string, site: string, now: number, intervalMs: number): Promise<number>;
  /** True while the store answers (for /ready). */
  healthy(): boolean;
  /**
   * The error code (SQLITE_CORRUPT, XX001, ...) of the first call that found the storage
   * damaged, or null. Kept until the store is closed: damage does not heal by itself, so
   * /ready stays 503 until an operator repairs or restores the store and restarts.
   */
  damage(): string | null;
  close(): Promise<void>;
}
