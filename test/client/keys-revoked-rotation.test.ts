/**
 * Rotations after a revocation, against a server that lies: it keeps listing the revoked
 * device (its old certificate still verifies under the user key chain). The device that
 * revoked it remembers, and neither the new user key nor the new site key goes to it.
 * The key flows run for real (real keys, real envelopes); only the server's answers are
 * scripted, as an attacker would choose them.
 */
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { b64urlEncode, utf8 } from '../../src/client/bytes.js';
import { DeviceKeys } from '../../src/client/device-keys.js';
import { MemoryKeyStorage } from '../../src/client/index.js';
import { signDeviceCertificate } from '../../src/client/keys/certificate.js';
import { verifiedUser } from '../../src/client/keys/directory.js';
import type { DirectoryEntry, KeyApi, SiteMembers } from '../../src/client/keys/key-api.js';
import type { HeldUserKey, KeyContext } from '../../src/client/keys/key-context.js';
import { KeyPins } from '../../src/client/keys/pins.js';
import { SiteKeyring } from '../../src/client/keys/site-keyring.js';
import { rotateSiteKey } from '../../src/client/keys/site-key-flows.js';
import { ServerEpochs } from '../../src/client/keys/server-epochs.js';
import { UserKey } from '../../src/client/keys/user-key.js';
import { rotateUserKey } from '../../src/client/keys/user-key-flows.js';
import { LocalVault } from '../../src/client/keys/vault.js';
import type { DatagroveClient } from '../../src/client/client.js';
import type { DgError } from '../../src/protocol/errors.js';
import { userKeyStatement } from '../../src/protocol/key-statements.js';

const USER = 'alice';
const SITE = 'site1';

function certOf(key: UserKey, version: number, d: DeviceKeys) {
  return { device: d.deviceId, boxKey: d.boxKey, keyVersion: version, certificate: signDeviceCertificate(key, { device: d.deviceId, boxKey: d.boxKey, user: USER, keyVersion: version }) };
}

test('a device revoked here gets neither the new user key nor the new site key, though the server lists it', async () => {
  const [a, b, revoked] = [DeviceKeys.generate(), DeviceKeys.generate(), DeviceKeys.generate()];
  const v1 = UserKey.generate();
  const statement = utf8(userKeyStatement(USER, 1, v1.publicKey));
  const dir: DirectoryEntry = {
    user: USER,
    userKeys: [{ version: 1, publicKey: v1.publicKey, sig: b64urlEncode(v1.sign(statement)), prevSig: null }],
    certificates: [certOf(v1, 1, a), certOf(v1, 1, b), certOf(v1, 1, revoked)],
    rotationRequired: true,
  };
  const members: SiteMembers = { site: SITE, owner: USER, members: [{ user: USER, rights: ['admin', 'read', 'write'] }], emails: [], more: false };
  const sent: string[] = [];
  const profile = { version: 1, data: {} as Record<string, unknown> };
  const api = {
    directory: async () => structuredClone(dir),
    members: async () => members,
    sendEnvelope: async (to: string) => {
      sent.push(to);
      return `e${sent.length}`;
    },
    publishUserKey: async (body: { publicKey: string; version: number; sig: string; prevSig?: string }) => {
      dir.userKeys.push({ version: body.version, publicKey: body.publicKey, sig: body.sig, prevSig: body.prevSig ?? null });
      return { version: body.version, publicKey: body.publicKey };
    },
    postCertificate: async () => undefined,
    reportRotated: async () => true,
    profile: async () => structuredClone(profile),
    setProfileData: async (version: number, key: string, value: unknown) => {
      profile.data[key] = value;
      profile.version = version + 1;
      return { ok: true as const };
    },
  } as unknown as KeyApi;
  const storage = new MemoryKeyStorage();
  const pins = new KeyPins(storage);
  let held: HeldUserKey | null = { key: v1, version: 1 };
  const ring = new SiteKeyring();
  ring.add(SITE, 1, new Uint8Array(32).fill(1));
  const client = {
    keys: a,
    device: a.deviceId,
    user: USER,
    siteInfo: async () => ({ site: SITE, owner: USER, rights: ['admin', 'read', 'write'], keyEpoch: 1, rotationRequired: true }),
  } as unknown as DatagroveClient;
  const errors: DgError[] = [];
  const ctx: KeyContext = {
    client,
    api,
    vault: await LocalVault.open(storage),
    pins,
    ring,
    epochs: new ServerEpochs(async () => 1),
    user: USER,
    issuer: undefined,
    held: () => held,
    adoptUserKey: async (key, version) => {
      held = { key, version };
    },
    saveRing: async () => undefined,
    persistRing: async () => undefined,
    serverKeys: async () => [],
    verified: (who) => verifiedUser(api, pins, who),
    revokedHere: (device) => device === revoked.deviceId,
    report: (err) => void errors.push(err),
  };

  assert.equal(await rotateUserKey(ctx), true);
  assert.equal(held?.version, 2);
  const site = await rotateSiteKey(ctx, SITE);
  assert.equal(site?.epoch, 2);
  assert.ok(sent.includes(b.deviceId), 'the other live device gets the new keys');
  assert.ok(!sent.includes(revoked.deviceId), 'the revoked device gets nothing');
  assert.ok(site?.skipped.some((s) => s.who === `device:${revoked.deviceId}` && s.reason === 'revoked by this device'));
  assert.deepEqual(errors, []);
});

test('a rotation whose key is not taken after the claim fails loudly and sends nothing', async () => {
  const ring = new SiteKeyring();
  ring.add(SITE, 1, new Uint8Array(32).fill(1));
  const sent: string[] = [];
  let saved = 0;
  // A server that lets another key of the claimed epoch reach the device while it claims.
  const api = {
    reportRotated: async (site: string, epoch: number) => {
      ring.add(site, epoch, new Uint8Array(32).fill(9));
      return true;
    },
    members: async () => ({ site: SITE, owner: USER, members: [], emails: [], more: false }),
    sendEnvelope: async (to: string) => void sent.push(to),
  } as unknown as KeyApi;
  const client = {
    device: 'd',
    siteInfo: async () => ({ site: SITE, owner: USER, rights: ['admin', 'read', 'write'], keyEpoch: 1, rotationRequired: true }),
  } as unknown as DatagroveClient;
  const ctx = { client, api, ring, epochs: new ServerEpochs(async () => 2), saveRing: async () => void saved++ } as unknown as KeyContext;
  await assert.rejects(rotateSiteKey(ctx, SITE), (e: DgError) => e.code === 'CONFLICT' && /epoch 2 was claimed on the server, but this device already holds a key for it/.test(e.message));
  assert.deepEqual([sent, saved], [[], 0]);
  assert.deepEqual(ring.get(SITE, 2), new Uint8Array(32).fill(9), 'the key held is not replaced');
});
