/**
 * Point-to-point links between the devices of one log: a WebRTC data channel when one
 * opens, else the server's `signal` kind `data` as a relay of last resort.
 *
 * The follower side opens a link to the leader (`sendTo`): it creates the peer connection
 * and the channel, sends the offer and its ICE candidates through `signal`, and holds
 * messages until the channel opens. When no channel opens within `channelTimeoutMs` (or
 * WebRTC is not available), messages go through the relay; a channel that opens later
 * takes over. The leader side answers offers (`handleSignal`) and replies over the link a
 * message came on. Remote ICE candidates are queued until the remote description is set.
 *
 * Messages are ordered per path, not across a switch of path: the log protocol does not
 * rely on link order (the leader keeps each writer's order by sequence number).
 *
 * The relay has a budget (signals and bytes per second, per session, and nothing for a
 * recipient that is not reading), and a session whose signals are refused too often is
 * closed: relayed frames queue per link and go out at most RELAY_WINDOW at a time; one
 * refused RATE_LIMITED is sent again after a pause, and for a while after that one at a
 * time (so the budget is used without a stream of refusals); one refused otherwise is
 * dropped (the sender of a message that matters sends it again).
 *
 * Any device holding a handle on the log can signal this one, a reader too. Only devices
 * the log `admits` (those that may write, and the leader this device follows) get what
 * costs this side memory: an offer of another is declined with `bye` (it relays, and is
 * told there that it may not write), and its fragments are not held; its first piece of a
 * message is `declined` instead, for the log to answer. What admitted peers may have held
 * unfinished is bounded in bytes and time (link-reassembly.ts), and a link that sends
 * MAX_REFUSED pieces that are refused is closed.
 */
import { DgError } from '../protocol/errors.js';
import { sleep } from './backoff.js';
import { randomId } from './bytes.js';
import { toFrames, type LinkMessage } from './link-messages.js';
import { FragmentPool, Reassembler, reassemblyLimits, type ReassemblyLimits } from './link-reassembly.js';
import type { RtcDataChannelLike, RtcPeerConnectionConstructor, RtcPeerConnectionLike, RtcSessionDescriptionLike } from './rtc-types.js';
import type { SignalKind } from './tail-types.js';

export interface PeerHubOptions {
  /** Sends a signal to a device on the same log, or to the handle a `peer` address names. */
  signal: (to: string, kind: SignalKind, data: unknown) => Promise<void>;
  RTCPeerConnection?: RtcPeerConnectionConstructor;
  rtcConfig?: object;
  /** How long to wait for a data channel before relaying, ms (default 3000). */
  channelTimeoutMs?: number;
  onMessage: (from: string, msg: LinkMessage, reply: (m: LinkMessage) => void) => void;
  /**
   * Whether `device` may have a data channel with this side and its unfinished messages
   * held (default: every device). Asked at each offer and each piece, so it may change.
   */
  admits?: (device: string) => boolean;
  /** The first piece of a message of a device not admitted came (and was not held): answer it. */
  declined?: (from: string, reply: (m: LinkMessage) => void) => void;
  /** The bounds of reassembly, asked as pieces come (default: those for 1 MiB frames). */
  reassembly?: () => ReassemblyLimits;
}

type Path = 'channel' | 'relay';

/** Relayed signals of one link in flight at once, at most. */
const RELAY_WINDOW = 8;
/** After the relay refused a frame for its budget: the pause before sending again, ms. */
const RELAY_PAUSE_MS = 250;
/** …and how long frames then go one at a time, ms. */
const RELAY_SLOW_MS = 2000;
/** Pieces refused on one link (malformed, repeated, over a bound, not admitted) before it is closed. */
const MAX_REFUSED = 64;
/**
 * How long a closed channel's peer connection lives on, ms: the channel's close goes to the
 * other side on the connection itself, and closing it at once can cut that close off
 * (werift), leaving the other side's link open on a dead connection for good.
 */
const CLOSE_LINGER_MS = 20;

/** Closes a link's channel, then its peer connection once the channel's close went out. */
function closeRtc(pc: RtcPeerConnectionLike | null, dc: RtcDataChannelLike | null): void {
  try {
    dc?.close();
  } catch {
    // already closed
  }
  if (pc === null) return;
  const closePc = (): void => {
    try {
      void Promise.resolve(pc.close()).catch(() => undefined);
    } catch {
      // already closed
    }
  };
  if (dc === null) closePc();
  else setTimeout(closePc, CLOSE_LINGER_MS);
}

class PeerLink {
  pc: RtcPeerConnectionLike | null = null;
  dc: RtcDataChannelLike | null = null;
  remoteSet = false;
  readonly candidates: { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null }[] = [];
  readonly held: object[] = [];
  relay = false;
  /** This side sent the offer. */
  initiator = false;
  timer: ReturnType<typeof setTimeout> | null = null;
  readonly rx: Reassembler;
  /** Frames waiting for the relay, and how many are in flight. */
  readonly relayQueue: object[] = [];
  relayInFlight = 0;
  /** While set, the relay refused a frame for its budget: nothing more goes out until then. */
  relayPause: Promise<void> | null = null;
  /** When the relay last refused a frame for its budget. */
  relayRefusedAt = 0;

  /**
   * @param device the other side's device (who it is: what it may do is decided by this)
   * @param addr where signals to it go: the device id for a link this side opened (to a
   *   leader), else the `peer` address its signals came from (one session of the device,
   *   when it has several), or its device id when the server stamps no `peer`
   * @param id the link's id in offer, answer, candidate and bye
   * @param pool what the unfinished messages of the hub's links hold
   */
  constructor(
    readonly device: string,
    readonly addr: string,
    readonly id: string,
    pool: FragmentPool,
  ) {
    this.rx = new Reassembler(pool);
  }

  channelOpen(): boolean {
    return this.dc !== null && this.dc.readyState === 'open';
  }
}

export class PeerHub {
  /** Links by address (`PeerLink.addr`). */
  private readonly links = new Map<string, PeerLink>();
  private closed = false;
  private readonly pool: FragmentPool;
  /** Drops unfinished messages that grew too old on links that went quiet; set while any is held. */
  private sweepTimer: ReturnType<typeof setTimeout> | null = null;

  constructor(private readonly opts: PeerHubOptions) {
    const fallback = reassemblyLimits(1024 * 1024);
    this.pool = new FragmentPool(opts.reassembly ?? (() => fallback));
  }

  /** The path messages to `device` (the link this side opened to it) take now (for tests and diagnostics). */
  pathTo(device: string): Path | 'pending' | null {
    const l = this.links.get(device);
    if (l === undefined) return null;
    return l.channelOpen() ? 'channel' : l.relay ? 'relay' : 'pending';
  }

  /** Whether relayed frames to `device` (the link this side opened to it) are still queued or in flight. */
  relaying(device: string): boolean {
    const l = this.links.get(device);
    return l !== undefined && l.relayQueue.length + l.relayInFlight > 0;
  }

  /** Sends to `device`, opening a link (as the initiator) when there is none. */
  sendTo(device: string, msg: LinkMessage): void {
    if (this.closed) return;
    let link = this.links.get(device);
    if (link === undefined) link = this.initiate(device);
    this.sendFrames(link, toFrames(msg));
  }

  private sendFrames(link: PeerLink, frames: object[]): void {
    for (const f of frames) {
      if (link.channelOpen()) {
        try {
          link.dc!.send(JSON.stringify(f));
          continue;
        } catch {
          // fall through to the relay
        }
      }
      if (link.relay) this.relay(link, f);
      else link.held.push(f);
    }
  }

  private relay(link: PeerLink, frame: object): void {
    link.relayQueue.push(frame);
    this.pumpRelay(link);
  }

  private pumpRelay(link: PeerLink): void {
    const window = Date.now() - link.relayRefusedAt < RELAY_SLOW_MS ? 1 : RELAY_WINDOW;
    while (link.relayPause === null && link.relayInFlight < window && link.relayQueue.length > 0 && !this.closed && this.links.get(link.addr) === link) {
      const frame = link.relayQueue.shift()!;
      link.relayInFlight++;
      this.opts.signal(link.addr, 'data', frame).then(
        () => {
          link.relayInFlight--;
          this.pumpRelay(link);
        },
        (err: unknown) => {
          link.relayInFlight--;
          if (this.gone(link, err)) return;
          if (!(err instanceof DgError && err.code === 'RATE_LIMITED')) {
            this.pumpRelay(link);
            return;
          }
          // Over the relay's budget: this frame goes again, first, after a pause.
          link.relayQueue.unshift(frame);
          link.relayRefusedAt = Date.now();
          if (link.relayPause === null) {
            link.relayPause = sleep(RELAY_PAUSE_MS).then(() => {
              link.relayPause = null;
              this.pumpRelay(link);
            });
          }
        },
      );
    }
  }

  /**
   * A link to one session (a `peer` address) whose handle is gone, as a signal to it just
   * found (NOT_FOUND): it is dropped, so the links of sessions that came and went do not
   * pile up while their device stays on the log.
   */
  private gone(link: PeerLink, err: unknown): boolean {
    if (link.addr === link.device || !(err instanceof DgError && err.code === 'NOT_FOUND')) return false;
    this.drop(link.addr, false);
    return true;
  }

  private flushHeld(link: PeerLink): void {
    const held = link.held.splice(0);
    this.sendFrames(link, held);
  }

  private initiate(device: string): PeerLink {
    const link = new PeerLink(device, device, randomId(6), this.pool);
    link.initiator = true;
    this.links.set(device, link);
    const RTC = this.opts.RTCPeerConnection;
    if (RTC === undefined) {
      link.relay = true;
      return link;
    }
    link.timer = setTimeout(() => {
      link.timer = null;
      if (!link.channelOpen()) {
        link.relay = true;
        this.flushHeld(link);
      }
    }, this.opts.channelTimeoutMs ?? 3000);
    void this.startOffer(link, RTC).catch(() => {
      link.relay = true;
      this.flushHeld(link);
    });
    return link;
  }

  private async startOffer(link: PeerLink, RTC: RtcPeerConnectionConstructor): Promise<void> {
    const pc = new RTC(this.opts.rtcConfig);
    link.pc = pc;
    this.watchIce(link, pc);
    this.adoptChannel(link, pc.createDataChannel('datagrove', { ordered: true }));
    const offer = await pc.createOffer();
    await pc.setLocalDescription(offer);
    const desc = pc.localDescription ?? offer;
    await this.opts.signal(link.addr, 'offer', { link: link.id, type: desc.type, sdp: desc.sdp });
  }

  private watchIce(link: PeerLink, pc: RtcPeerConnectionLike): void {
    pc.onicecandidate = ((ev: { candidate?: unknown }) => {
      const c = ev.candidate as { candidate?: string; sdpMid?: string | null; sdpMLineIndex?: number | null; toJSON?: () => object } | null | undefined;
      if (c === null || c === undefined || typeof c.candidate !== 'string' || c.candidate === '') return;
      const data = { link: link.id, candidate: c.candidate, sdpMid: c.sdpMid ?? null, sdpMLineIndex: c.sdpMLineIndex ?? null };
      this.opts.signal(link.addr, 'candidate', data).catch(() => undefined);
    }) as (ev: never) => void;
  }

  private adoptChannel(link: PeerLink, dc: RtcDataChannelLike): void {
    link.dc = dc;
    dc.onopen = () => {
      if (link.timer !== null) clearTimeout(link.timer);
      link.timer = null;
      this.flushHeld(link);
    };
    dc.onmessage = ((ev: { data: unknown }) => {
      if (typeof ev.data !== 'string') return;
      let frame: unknown;
      try {
        frame = JSON.parse(ev.data);
      } catch {
        return;
      }
      this.receive(link, frame);
    }) as (ev: never) => void;
    dc.onclose = () => {
      if (link.dc !== dc) return;
      // The channel of a session this side answered (a `peer` address) closes with that
      // session, as a rule: the link goes, and a new one is made if it relays again.
      if (!link.initiator && link.addr !== link.device) {
        this.drop(link.addr, false);
        return;
      }
      // Its connection is of no more use (no other channel is made on it): it goes, and the
      // other side is told, in case the channel failed here only.
      const pc = link.pc;
      link.pc = null;
      link.dc = null;
      link.relay = true;
      if (pc !== null) this.opts.signal(link.addr, 'bye', { link: link.id }).catch(() => undefined);
      closeRtc(pc, null);
      this.flushHeld(link);
    };
  }

  private admits(device: string): boolean {
    return this.opts.admits?.(device) ?? true;
  }

  private receive(link: PeerLink, frame: unknown): void {
    // A closed link's channel may still deliver what was in flight: nothing of it is taken
    // (or held, where no sweep would ever drop it).
    if (this.links.get(link.addr) !== link) return;
    const reply = (m: LinkMessage): void => this.sendFrames(link, toFrames(m));
    if (isFragment(frame) && !this.admits(link.device)) {
      // Nothing of it is held: its message is answered at its first piece, as it would be whole.
      link.rx.refused++;
      if (frame.i === 0) this.opts.declined?.(link.device, reply);
    } else {
      const msg = link.rx.push(frame);
      if (msg !== null) this.opts.onMessage(link.device, msg, reply);
      if (link.rx.holding) this.sweepSoon();
    }
    if (link.rx.refused >= MAX_REFUSED && this.links.get(link.addr) === link) this.drop(link.addr);
  }

  /** Drops unfinished messages too old to be finished, on every link, until none is held. */
  private sweepSoon(): void {
    if (this.sweepTimer !== null || this.closed) return;
    this.sweepTimer = setTimeout(() => {
      this.sweepTimer = null;
      const now = Date.now();
      let holding = false;
      for (const link of this.links.values()) {
        link.rx.expire(now);
        holding ||= link.rx.holding;
      }
      if (holding) this.sweepSoon();
    }, Math.max(10, this.pool.limits().maxAgeMs / 2));
    (this.sweepTimer as { unref?: () => void }).unref?.();
  }

  /**
   * The link a signal from `from` (its handle's address `peer`, when the server stamps one)
   * belongs to: the one of that address, or the one this side opened to that device.
   */
  private linkOf(from: string, addr: string): PeerLink | undefined {
    const byAddr = this.links.get(addr);
    if (byAddr !== undefined) return byAddr;
    const opened = this.links.get(from);
    return opened !== undefined && opened.initiator ? opened : undefined;
  }

  /**
   * The link of id `id` with device `from` (signals of offer, answer, candidate and bye name
   * their link). A device may have two links with this side at once (one that led this one
   * now follows it, and the link this side answered then still stands): the id tells which.
   */
  private linkById(from: string, addr: string, id: string): PeerLink | undefined {
    const byAddr = this.links.get(addr);
    if (byAddr !== undefined && byAddr.device === from && byAddr.id === id) return byAddr;
    // Its session may have a new address since (a socket that reconnected): the device and id tell.
    for (const link of this.links.values()) if (link.device === from && link.id === id) return link;
    return undefined;
  }

  /** Handles a `signal` event of the log's handle (`peer`: the sender handle's address, when given). */
  handleSignal(from: string, kind: SignalKind, data: unknown, peer?: string): void {
    if (this.closed) return;
    const addr = peer ?? from;
    const d = (data !== null && typeof data === 'object' ? data : {}) as Record<string, unknown>;
    if (kind === 'data') {
      let link = this.linkOf(from, addr);
      if (link === undefined) {
        // A follower relaying to us without a channel: reply through the relay as well.
        link = new PeerLink(from, addr, randomId(6), this.pool);
        link.relay = true;
        this.links.set(addr, link);
      }
      this.receive(link, data);
      return;
    }
    const linkId = typeof d.link === 'string' ? d.link : '';
    if (kind === 'offer') {
      if (typeof d.sdp !== 'string') return;
      if (this.opts.RTCPeerConnection === undefined || !this.admits(from)) {
        // No WebRTC here, or no channel for this device: say so, so the other side relays at
        // once instead of waiting (a device that may not write then hears so by relay).
        this.opts.signal(addr, 'bye', { link: linkId }).catch(() => undefined);
        return;
      }
      this.drop(addr, false);
      const link = new PeerLink(from, addr, linkId, this.pool);
      link.relay = true; // reply by relay until the channel opens
      this.links.set(addr, link);
      void this.answer(link, { type: 'offer', sdp: d.sdp }).catch(() => undefined);
      return;
    }
    const link = this.linkById(from, addr, linkId);
    if (link === undefined || link.pc === null) return;
    if (kind === 'answer' && typeof d.sdp === 'string') {
      void link.pc
        .setRemoteDescription({ type: 'answer', sdp: d.sdp })
        .then(() => this.remoteReady(link))
        .catch(() => undefined);
    } else if (kind === 'candidate' && typeof d.candidate === 'string') {
      const c = {
        candidate: d.candidate,
        sdpMid: typeof d.sdpMid === 'string' ? d.sdpMid : null,
        sdpMLineIndex: typeof d.sdpMLineIndex === 'number' ? d.sdpMLineIndex : null,
      };
      if (link.remoteSet) link.pc.addIceCandidate(c).catch(() => undefined);
      else if (link.candidates.length < 64) link.candidates.push(c);
    } else if (kind === 'bye') {
      if (!link.initiator) {
        this.drop(link.addr, false);
        return;
      }
      // Our offer was refused or the channel closed: keep the link, by relay.
      if (link.timer !== null) clearTimeout(link.timer);
      link.timer = null;
      const { pc, dc } = link;
      link.pc = null;
      link.dc = null;
      link.relay = true;
      this.flushHeld(link);
      closeRtc(pc, dc);
    }
  }

  private async answer(link: PeerLink, offer: RtcSessionDescriptionLike): Promise<void> {
    const pc = new this.opts.RTCPeerConnection!(this.opts.rtcConfig);
    link.pc = pc;
    this.watchIce(link, pc);
    pc.ondatachannel = ((ev: { channel: RtcDataChannelLike }) => {
      this.adoptChannel(link, ev.channel);
      if (ev.channel.readyState === 'open') this.flushHeld(link);
    }) as (ev: never) => void;
    await pc.setRemoteDescription(offer);
    this.remoteReady(link);
    const answer = await pc.createAnswer();
    await pc.setLocalDescription(answer);
    const desc = pc.localDescription ?? answer;
    await this.opts.signal(link.addr, 'answer', { link: link.id, type: desc.type, sdp: desc.sdp });
  }

  private remoteReady(link: PeerLink): void {
    link.remoteSet = true;
    for (const c of link.candidates.splice(0)) link.pc?.addIceCandidate(c).catch(() => undefined);
  }

  /** Closes the link of address `addr` (a device id for a link this side opened), telling it `bye` when asked. */
  drop(addr: string, sayBye = true): void {
    const link = this.links.get(addr);
    if (link === undefined) return;
    this.links.delete(addr);
    link.relayQueue.length = 0;
    link.rx.clear();
    if (link.timer !== null) clearTimeout(link.timer);
    if (sayBye && link.pc !== null) this.opts.signal(addr, 'bye', { link: link.id }).catch(() => undefined);
    const { pc, dc } = link;
    link.pc = null;
    link.dc = null;
    closeRtc(pc, dc);
  }

  /** Closes, with `bye`, each link this side opened whose device `stale` says it no longer sends to. */
  dropOpened(stale: (device: string) => boolean): void {
    for (const [addr, link] of [...this.links]) if (link.initiator && stale(link.device)) this.drop(addr);
  }

  /** Closes every link with `device` (each of its sessions), without `bye`. */
  dropDevice(device: string): void {
    for (const [addr, link] of [...this.links]) if (link.device === device) this.drop(addr, false);
  }

  close(): void {
    for (const d of [...this.links.keys()]) this.drop(d, false);
    this.closed = true;
    if (this.sweepTimer !== null) clearTimeout(this.sweepTimer);
    this.sweepTimer = null;
  }
}

function isFragment(frame: unknown): frame is { t: 'frag'; i?: unknown } {
  return frame !== null && typeof frame === 'object' && (frame as { t?: unknown }).t === 'frag';
}
