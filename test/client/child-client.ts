/**
 * The client a child process of an SDK test runs: the device whose session is stored in
 * `keyFile`, talking to the server at `url` and to its tail at `wsUrl` (no WebRTC).
 */
import WebSocket from 'ws';
import { DatagroveClient, type WebSocketConstructor } from '../../src/client/index.js';
import { FileKeyStorage } from '../../src/client/node/index.js';

export function childClient(url: string, wsUrl: string, keyFile: string): Promise<DatagroveClient> {
  return DatagroveClient.create({
    url,
    storage: new FileKeyStorage(keyFile),
    WebSocket: WebSocket as unknown as WebSocketConstructor,
    RTCPeerConnection: null,
    shardUrl: () => wsUrl,
  });
}
