/**
 * The logs this node serves, their handles and their leaders.
 *
 * Guarantees:
 * - At most one leader per (site, log) on this node; taking leadership bumps the epoch in
 *   the store first (persisted, never going back), so a leader elsewhere is fenced by the
 *   store even if this node's view is stale.
 * - Every change of leader is a new epoch, an end of leadership included: after a release,
 *   a step-down, a revocation or a lapse, once the writes accepted under the old epoch have
 *   committed, the store moves the log to the next epoch (unless another node took a later
 *   one), and only then do the holders hear `leader: null`, with that epoch.
 * - Lease changes on one log are serialized (`log.lock`); writes never wait for them.
 * - When a leader's session ends, its leadership lapses after `leaseGraceMs`; within the
 *   grace only the same device can retake it (with a new epoch). `release`, a step-down
 *   and a revocation end leadership at once.
 * - The store records who took each epoch until that leader releases, so a node that
 *   loads the log within `leaseGraceMs` of starting (or of a shard map change: a site
 *   moving in) gives that device the rest of the grace: a restart or a move does not
 *   hand the log to whichever device leases first.
 * - A new leader reports the committed length after every write of the previous leader
 *   settled, so it appends exactly at the end. A follower is told the length its `tail`
 *   events continue from: no event after the reply repeats an entry the reply counted.
 */
import { DgError } from '../protocol/errors.js';
import type { LeaseReply } from '../protocol/tail-schemas.js';
import type { TailContext } from './context.js';
import { canWrite, Handle, LiveLog, logKey, type AccessGrant, type Lapse } from './live-log.js';
import type { LeaderRecord } from './log-store.js';
import { recheckGrace } from './revocation.js';
import type { Session } from './session.js';

export class LogRegistry {
  readonly #logs = new Map<string, LiveLog>();
  readonly #loading = new Map<string, Promise<LiveLog>>();
  #seq = 0;
  /** When this node started serving what it serves now (start, or the last shard map change). */
  #servingSince = Date.now();

  constructor(private readonly ctx: TailContext) {}

  get size(): number {
    return this.#logs.size;
  }

  /** The live log if this node has it in memory. */
  get(site: string, name: string): LiveLog | undefined {
    return this.#logs.get(logKey(site, name));
  }

  /** The live log, loading its state from the store on first use. */
  async open(site: string, name: string): Promise<LiveLog> {
    const key = logKey(site, name);
    const live = this.#logs.get(key);
    if (live !== undefined) return live;
    let loading = this.#loading.get(key);
    if (loading === undefined) {
      loading = (async () => {
        try {
          const st = await this.ctx.deps.store.state(site, name);
          const log = new LiveLog(key, site, name, `h${(++this.#seq).toString(36)}`);
          log.epoch = st.epoch;
          log.committed = st.length;
          log.decided = st.length;
          // A revoked device never leads again: it keeps no grace. One whose user lost access
          // to the site lately keeps it only if auth says it still may write, asked before any
          // lease sees the log.
          if (st.leader !== undefined && !this.ctx.revoked.hasDevice(st.leader.device)) await this.#inheritGrace(log, st.leader);
          this.#logs.set(key, log);
          return log;
        } catch (err) {
          throw new DgError('UNAVAILABLE', 'log store unavailable', { cause: err });
        } finally {
          this.#loading.delete(key);
        }
      })();
      this.#loading.set(key, loading);
    }
    return loading;
  }

  /** Takes or refreshes the session's handle on (site, log). */
  async acquire(session: Session, site: string, name: string, access: AccessGrant, lead: boolean, answer: (reply: LeaseReply) => void): Promise<LeaseReply> {
    let log = await this.open(site, name);
    // Another lease may have evicted it between the load and now: only the mapped one counts.
    while (this.#logs.get(log.key) !== log) log = await this.open(site, name);
    return this.#exclusive(log, async () => {
      let h = session.handles.get(log.hid);
      const isNew = h === undefined;
      const device = session.auth?.device ?? '';
      const before = this.#peerViews(log, device, h ?? null);
      if (session.closing) throw new DgError('UNAVAILABLE', 'session closing');
      if (h === undefined) {
        if (session.handles.size >= this.ctx.limits.maxHandles) {
          this.maybeEvict(log);
          throw new DgError('TOO_LARGE', `at most ${this.ctx.limits.maxHandles} handles per session`);
        }
        h = new Handle(session, log, access);
        log.handles.add(h);
        session.handles.set(log.hid, h);
        this.ctx.metrics.handles.inc({ role: 'follower' });
      } else {
        h.access = access;
      }
      const wantLead = lead && canWrite(access.rights);
      try {
        // The lease answers the handle's role: from now on its writes say NOT_LEADER, not FENCED.
        h.fenced = false;
        if (log.leader === h) {
          if (!wantLead) await this.#endLeadership(log, h);
          // The leader stays: its writes sent before this lease settle first, so the reply's
          // `length` counts them and is where it appends (not a length they already passed).
          else await log.idle();
        } else if (wantLead && log.leader === null && (log.lapse === null || log.lapse.device === device)) {
          await this.#takeLeadership(log, h);
        } else if (wantLead && log.leader !== null && log.leader.session.auth?.device === device) {
          // The device leads from another session: if that one's connection died silently
          // (this one may be its reconnect), it goes within the probe time, and its
          // leadership into the grace, which this device may take.
          log.leader.session.probe(this.ctx.limits.leaderProbeMs);
        }
      } catch (err) {
        // Never announced: the others hear nothing of it.
        if (isNew) this.#remove(h, 'release', false);
        throw err;
      }
      if (h.dead) throw new DgError('UNAVAILABLE', session.closing ? 'session closing' : 'the handle ended while it was leased (revoked); lease again');
      // A device new on the log joins; one whose write right on it changed says so again.
      this.#announcePeer(log, device, before, h);
      const reply: LeaseReply = { handle: log.hid, role: h.role, epoch: log.epoch, length: this.#knownLength(log, h), leader: log.leaderDevice(), peers: log.peers(h), writers: log.writers(h) };
      answer(reply);
      return reply;
    });
  }

  /**
   * The length a lease reply gives. A leader appends at the committed length. A follower is
   * told the length its `tail` events will continue from, so that no event repeats what the
   * reply counted: commits still waiting in the log's fan-out (for the end of the turn, or
   * held for the next commit) reach it as events; and a follower that lags is owed one
   * catch-up event from the first entry it missed.
   */
  #knownLength(log: LiveLog, h: Handle): number {
    if (h.role === 'leader') return log.committed;
    if (h.lagAt >= 0) return h.lagAt;
    return log.fan[0]?.at ?? log.committed;
  }

  release(h: Handle): void {
    this.#remove(h, 'release');
  }

  /**
   * The handle's access was checked again and it stays, with `access` now: when that changes
   * whether its device may write on the log, the other holders get a `join` saying so (a
   * leader takes relayed entries only from writers).
   */
  reaccess(h: Handle, access: AccessGrant): void {
    if (h.dead) return;
    const log = h.log;
    const device = h.session.auth?.device;
    if (device === undefined) {
      h.access = access;
      return;
    }
    const before = this.#peerViews(log, device, h);
    h.access = access;
    this.#announcePeer(log, device, before, h);
  }

  /**
   * What the log's holders but `changed` see of `device` before a change of `changed` (a
   * handle of that device taken, dropped or given other rights): for holders of other
   * devices, `deviceWrites(device)`; for each holder of the same device, the same without
   * its own handle, since another session of one's own device is a peer too.
   */
  #peerViews(log: LiveLog, device: string, changed: Handle | null): PeerViews {
    const own = new Map<Handle, boolean | null>();
    for (const r of log.handles) if (r !== changed && r.session.auth?.device === device) own.set(r, log.deviceWrites(device, r));
    return { others: log.deviceWrites(device), own };
  }

  /**
   * Tells each holder but `changed` what changed of `device` since `before` (`#peerViews`):
   * `join` when the device became its peer or the device's write right changed, `leave` when
   * it no longer is one. One frame serves every holder of another device.
   */
  #announcePeer(log: LiveLog, device: string, before: PeerViews, changed: Handle): void {
    const after = log.deviceWrites(device);
    if (after !== before.others) {
      const frame = Buffer.from(peerEvent(log, device, after === null ? 'leave' : 'join', after ?? undefined));
      for (const r of log.handles) if (r !== changed && r.session.auth?.device !== device) r.session.send(frame);
    }
    for (const [r, was] of before.own) {
      if (r.dead) continue;
      const now = log.deviceWrites(device, r);
      if (now !== was) r.session.send(peerEvent(log, device, now === null ? 'leave' : 'join', now ?? undefined));
    }
  }

  /** The handle lost its access: it dies now, and so does its leadership. */
  revoke(h: Handle, reason: string): void {
    if (h.dead) return;
    h.session.send(JSON.stringify({ ev: 'revoke', handle: h.id, reason }));
    this.#remove(h, 'release');
  }

  /** Every handle of a session that is closing; `grace` keeps leadership for the same device a while. */
  sessionEnded(session: Session, grace: boolean): void {
    for (const h of [...session.handles.values()]) this.#remove(h, grace ? 'close' : 'release');
  }

  /**
   * The shard map changed: every live log of a site that another node now serves loses its
   * handles at once, each with `{ev:'revoke', handle, reason:'moved'}` (and a leadership
   * held in grace ends), so clients lease again, get `redirect`, and follow their logs to
   * the new owner instead of hearing nothing more here. Returns the handles moved.
   */
  moveAway(): number {
    this.#servingSince = Date.now();
    const away = new Map<string, boolean>();
    let moved = 0;
    for (const log of [...this.#logs.values()]) {
      if (log.handles.size === 0 && log.lapse === null) continue;
      let gone = away.get(log.site);
      if (gone === undefined) {
        gone = this.ctx.deps.redirectFor(log.site) !== null;
        away.set(log.site, gone);
      }
      if (gone) moved += this.#evict(log);
    }
    return moved;
  }

  /** Every handle of the log dies (`moved`), with no events among them: all are leaving. */
  #evict(log: LiveLog): number {
    if (log.lapse !== null) {
      clearTimeout(log.lapse.timer);
      log.lapse = null;
    }
    const n = log.handles.size;
    for (const h of log.handles) {
      h.dead = true;
      h.session.handles.delete(log.hid);
      this.ctx.metrics.handles.dec({ role: h.role });
      h.session.send(`{"ev":"revoke","handle":"${h.id}","reason":"moved"}`);
    }
    log.handles.clear();
    log.leader = null;
    this.maybeEvict(log);
    return n;
  }

  /**
   * `device` was revoked: a leadership it holds in a grace period (its session ended before
   * the revocation, or the log was loaded after a restart or a move) ends now, as that of a
   * revoked session does, instead of keeping the log for a device that cannot come back.
   */
  endGraceOf(device: string): void {
    for (const log of [...this.#logs.values()]) if (log.lapse?.device === device) this.endGrace(log, log.lapse);
  }

  /** The logs of `site` whose leadership is in a grace held by a device of `user`. */
  gracesOf(user: string, site: string): LiveLog[] {
    return [...this.#logs.values()].filter((log) => log.site === site && log.lapse?.user === user);
  }

  /** Ends the grace `lapse` of the log now (if it still runs): the others may take the log. */
  endGrace(log: LiveLog, lapse: Lapse): void {
    if (log.lapse !== lapse) return;
    clearTimeout(lapse.timer);
    this.#lapsed(log, lapse);
  }

  /** The store reported the log fenced by a newer epoch (another node took it). */
  fenced(log: LiveLog, epoch: number): void {
    if (epoch > log.epoch) log.epoch = epoch;
    const old = log.leader;
    if (old === null || old.epoch >= log.epoch) return;
    log.leader = null;
    // The deposed handle follows from now on: a lease tells it so, a write says FENCED.
    this.#demote(old);
    old.fenced = true;
    this.#announceLeader(log, null);
  }

  /**
   * The log's last leader, as the store recorded it, never released: if this node began
   * serving the log within the grace, that device keeps the rest of it (its session ended
   * with the node it was on, or with the move). When its user's access to the site was
   * revoked lately (auth's list of recent revocations says so, also of revocations made
   * before this node started), or this node has not had that list yet, auth is asked
   * whether it still may write before any lease finds the log.
   */
  async #inheritGrace(log: LiveLog, leader: LeaderRecord): Promise<void> {
    const left = this.#servingSince + this.ctx.deps.leaseGraceMs - Date.now();
    if (left <= 0) return;
    this.#startGrace(log, leader.device, leader.user, log.epoch, left);
    if (leader.user === undefined) return;
    if (this.ctx.revoked.incomplete || this.ctx.revoked.lostAccessLately(leader.user, log.site)) await recheckGrace(this.ctx, log);
  }

  /** The leadership of `epoch` is kept for `device` (of `user`, when known) for `ms`, then lapses. */
  #startGrace(log: LiveLog, device: string, user: string | undefined, epoch: number, ms: number): void {
    const lapse: Lapse = { device, user, epoch, timer: setTimeout(() => this.#lapsed(log, lapse), ms) };
    lapse.timer.unref();
    log.lapse = lapse;
  }

  /**
   * The leadership of `epoch` ended: once the writes this node accepted under it have
   * committed (they were decided before the end and must not be fenced), the store moves
   * the log to the next epoch; a later epoch that another node took stays. When the store
   * cannot be reached the log keeps its epoch here (the next leader's bump still fences
   * the old one). Runs inside the log's lease order. Returns false when the log had moved
   * past `epoch` here already (a `fenced` that told the holders so).
   */
  async #closeEpoch(log: LiveLog, epoch: number): Promise<boolean> {
    try {
      await log.idle();
      const next = await this.ctx.deps.store.endEpoch(log.site, log.name, epoch);
      if (next <= log.epoch) return log.epoch <= epoch;
      log.epoch = next;
    } catch (err) {
      this.ctx.log.warn({ err, site: log.site, log: log.name }, 'could not record the end of a leadership');
    }
    return true;
  }

  /**
   * The log's leadership of `epoch` ended with no step-down reply to give: the epoch is closed
   * in the log's lease order (a lease after it takes the epoch after), then every holder hears
   * `leader: null` with the new epoch, unless a leader was taken meanwhile.
   */
  #ended(log: LiveLog, epoch: number): void {
    this.#exclusive(log, async () => {
      const news = await this.#closeEpoch(log, epoch);
      if (news && log.leader === null && log.lapse === null) this.#announceLeader(log, null);
    }).catch((err: unknown) => this.ctx.log.error({ err, site: log.site, log: log.name }, 'ending a leadership failed'));
  }

  /** Drops the handle (its leadership ends or goes into grace); `announce` tells the other holders. */
  #remove(h: Handle, mode: 'release' | 'close', announce = true): void {
    if (h.dead) return;
    h.dead = true;
    const log = h.log;
    const device = h.session.auth?.device;
    const before = device === undefined || !announce ? null : this.#peerViews(log, device, h);
    log.handles.delete(h);
    h.session.handles.delete(log.hid);
    this.ctx.metrics.handles.dec({ role: h.role });
    if (log.leader === h) {
      log.leader = null;
      const graceMs = this.ctx.deps.leaseGraceMs;
      if (mode === 'close' && graceMs > 0 && device !== undefined) {
        this.#startGrace(log, device, h.session.auth?.user, h.epoch, graceMs);
      } else {
        this.#ended(log, h.epoch);
      }
    }
    // The device leaves when its last handle on the log goes; with another still held, a
    // change of its write right is told as a join.
    if (device !== undefined && before !== null) this.#announcePeer(log, device, before, h);
    this.maybeEvict(log);
  }

  /** The leader leased again without `lead`: its reply (after this) gives the new epoch. */
  async #endLeadership(log: LiveLog, h: Handle): Promise<void> {
    log.leader = null;
    this.#demote(h);
    if ((await this.#closeEpoch(log, h.epoch)) && log.leader === null) this.#announceLeader(log, h);
  }

  /** A leader handle that stays on the log as a follower. */
  #demote(h: Handle): void {
    h.role = 'follower';
    this.ctx.metrics.handles.dec({ role: 'leader' });
    this.ctx.metrics.handles.inc({ role: 'follower' });
  }

  async #takeLeadership(log: LiveLog, h: Handle): Promise<void> {
    if (log.lapse !== null) {
      clearTimeout(log.lapse.timer);
      log.lapse = null;
    }
    const { store } = this.ctx.deps;
    let epoch: number;
    try {
      const auth = h.session.auth;
      // The writes this node accepted from the previous leader (sent before its release, say)
      // commit first: none is accepted now that the log has no leader, and the bump would
      // fence them. A leader elsewhere is fenced by the bump; its writes are not waited for.
      await log.idle();
      epoch = await store.bumpEpoch(log.site, log.name, auth === null ? undefined : { device: auth.device, user: auth.user });
      await log.idle();
      const st = await store.state(log.site, log.name);
      // Entries another node wrote while it served the site reach the followers here too.
      this.ctx.fanout.caughtUp(log, st.length);
      log.committed = st.length;
      log.decided = st.length;
      log.gen++;
      log.epoch = Math.max(log.epoch, st.epoch);
    } catch (err) {
      throw new DgError('UNAVAILABLE', 'log store unavailable', { cause: err });
    }
    if (h.dead || log.epoch !== epoch || log.leader !== null) {
      // Lost the session meanwhile, or another node took it: no leader here for this epoch.
      this.#announceLeader(log, h);
      return;
    }
    log.leader = h;
    h.role = 'leader';
    h.epoch = epoch;
    h.fenced = false;
    this.ctx.metrics.handles.dec({ role: 'follower' });
    this.ctx.metrics.handles.inc({ role: 'leader' });
    this.#announceLeader(log, h);
  }

  /** The grace `lapse` ran out, or was cut short: the others may take the log. */
  #lapsed(log: LiveLog, lapse: Lapse): void {
    if (log.lapse !== lapse) return;
    log.lapse = null;
    this.#ended(log, lapse.epoch);
  }

  /** Forgets the log when nothing keeps it (no handles, lease change, lapse, write or event pending). */
  maybeEvict(log: LiveLog): void {
    if (log.unused() && this.#logs.get(log.key) === log) this.#logs.delete(log.key);
  }

  /**
   * Runs `fn` after the log's earlier lease changes. Called synchronously after the map
   * check, so the pin keeps the log in memory (and in the map) until `fn` is done.
   */
  async #exclusive<T>(log: LiveLog, fn: () => Promise<T>): Promise<T> {
    log.pins++;
    const prev = log.lock;
    let done!: () => void;
    log.lock = new Promise<void>((r) => (done = r));
    try {
      await prev;
      return await fn();
    } finally {
      done();
      log.pins--;
      this.maybeEvict(log);
    }
  }

  /**
   * Tells every holder but `except` who leads now, with the epoch: after the `tail` events
   * of what is committed, so a follower has the entries of a leadership before its end.
   */
  #announceLeader(log: LiveLog, except: Handle | null): void {
    this.ctx.fanout.flushNow(log);
    this.#broadcast(log, leaderEvent(log), except);
  }

  /** Sends one frame, built once, to every handle of the log but `except`. */
  #broadcast(log: LiveLog, frame: string, except: Handle | null): void {
    if (log.handles.size === 0 || (log.handles.size === 1 && except !== null && log.handles.has(except))) return;
    const buf = Buffer.from(frame);
    for (const h of log.handles) if (h !== except) h.session.send(buf);
  }
}

function leaderEvent(log: LiveLog): string {
  return JSON.stringify({ ev: 'leader', handle: log.hid, leader: log.leaderDevice(), epoch: log.epoch });
}

/** What a log's holders see of one device: see `#peerViews`. */
interface PeerViews {
  readonly others: boolean | null;
  readonly own: Map<Handle, boolean | null>;
}

/** A `peer` event; a join says whether that device's handle may write. */
function peerEvent(log: LiveLog, device: string, state: 'join' | 'leave', write?: boolean): string {
  return JSON.stringify(write === undefined ? { ev: 'peer', handle: log.hid, device, state } : { ev: 'peer', handle: log.hid, device, state, write });
}
