/**
 * Secrets at rest on this device: values sealed with AES-256-GCM under a device-local key,
 * before they reach the KeyStorage. The local key is 32 random bytes kept in the KeyStorage
 * given for it (by default the same one; an app can keep it apart, e.g. in the OS keychain,
 * so that a copy of the main storage alone reveals nothing). The AAD binds each value to
 * its name, so sealed values cannot be swapped between names.
 */
import { DgError } from '../../protocol/errors.js';
import { b64urlDecode, b64urlEncode, fromUtf8, randomBytes, utf8 } from '../bytes.js';
import { AesKey, openBox, sealBox } from '../crypto/aes-gcm.js';
import { withLock, type JsonValue, type KeyStorage } from '../key-storage.js';

export const LOCAL_KEY_NAME = 'datagrove.local-key';
const AAD_PREFIX = 'datagrove-vault-v1\n';

export class LocalVault {
  private constructor(
    private readonly storage: KeyStorage,
    private readonly key: AesKey,
  ) {}

  /**
   * Opens the vault over `storage`, making the local key on first use (kept in `keyStorage`).
   * Clients sharing the storage (tabs, processes) make it under the storage's lock: two
   * making one each at once would leave one, and what the other sealed would never open.
   */
  static async open(storage: KeyStorage, keyStorage: KeyStorage = storage): Promise<LocalVault> {
    const loadOrMake = async (): Promise<Uint8Array> => {
      const stored = await keyStorage.load(LOCAL_KEY_NAME);
      const raw = typeof stored === 'string' ? b64urlDecode(stored) : null;
      if (stored !== null && raw?.length !== 32) throw new DgError('BAD_REQUEST', 'local key: malformed in storage');
      if (raw !== null) return raw;
      const made = randomBytes(32);
      await keyStorage.save(LOCAL_KEY_NAME, b64urlEncode(made));
      return made;
    };
    const raw = await withLock(keyStorage, LOCAL_KEY_NAME, loadOrMake);
    return new LocalVault(storage, await AesKey.import(raw));
  }

  async save(name: string, value: JsonValue): Promise<void> {
    const box = await sealBox(this.key, utf8(JSON.stringify(value)), utf8(AAD_PREFIX + name));
    await this.storage.save(name, { v: 1, box: b64urlEncode(box) });
  }

  /** The value saved under `name`, or null; BAD_REQUEST when it is there but does not open. */
  async load(name: string): Promise<JsonValue | null> {
    const stored = await this.storage.load(name);
    if (stored === null) return null;
    const box = stored !== null && typeof stored === 'object' && !Array.isArray(stored) && typeof stored.box === 'string' ? b64urlDecode(stored.box) : null;
    if (box === null) throw new DgError('BAD_REQUEST', `${name}: not a sealed value`);
    return JSON.parse(fromUtf8(await openBox(this.key, box, utf8(AAD_PREFIX + name)))) as JsonValue;
  }

  remove(name: string): Promise<void> {
    return this.storage.remove(name);
  }
}
