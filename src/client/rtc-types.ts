/**
 * The part of WebRTC the SDK uses. The browser's RTCPeerConnection and werift's (Node) both
 * fit. Handlers take `never` so that either's event types are accepted; the SDK reads only
 * `candidate` of ICE events, `channel` of data-channel events and `data` of messages.
 */
export interface RtcSessionDescriptionLike {
  type: string;
  sdp?: string;
}

export interface RtcDataChannelLike {
  readonly readyState: string;
  send(data: string): void;
  close(): void;
  onopen?: ((ev: never) => void) | null;
  onclose?: ((ev: never) => void) | null;
  onmessage?: ((ev: never) => void) | null;
}

export interface RtcPeerConnectionLike {
  createDataChannel(label: string, options?: { ordered?: boolean }): RtcDataChannelLike;
  createOffer(): Promise<RtcSessionDescriptionLike>;
  createAnswer(): Promise<RtcSessionDescriptionLike>;
  setLocalDescription(desc: RtcSessionDescriptionLike): Promise<unknown>;
  setRemoteDescription(desc: RtcSessionDescriptionLike): Promise<unknown>;
  addIceCandidate(candidate: { candidate: string; sdpMid?: string | null; sdpMLineIndex?: number | null }): Promise<unknown>;
  readonly localDescription: RtcSessionDescriptionLike | null | undefined;
  onicecandidate?: ((ev: never) => void) | null;
  ondatachannel?: ((ev: never) => void) | null;
  close(): unknown;
}

export type RtcPeerConnectionConstructor = new (config?: object) => RtcPeerConnectionLike;
