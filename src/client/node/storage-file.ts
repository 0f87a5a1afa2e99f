/**
 * KeyStorage in one JSON file (Node only; never part of the browser bundle). The file is
 * created with mode 0600 (owner read/write only) because it holds the device's secret keys
 * and the refresh token. Writes go to a temp file that is fsynced and renamed over the old
 * one, so a crash leaves either the old or the new content, never a torn file.
 */
import { mkdir, open, readFile, rename, chmod } from 'node:fs/promises';
import { dirname } from 'node:path';
import type { JsonValue, KeyStorage } from '../key-storage.js';

/**
 * A KeyStorage kept in `path` (created on first save, mode 0600).
 *
 * @example
 * ```ts
 * import { FileKeyStorage } from 'datagrove/client/node';
 * const storage = new FileKeyStorage('./.datagrove/keys.json');
 * ```
 */
export class FileKeyStorage implements KeyStorage {
  private chain: Promise<unknown> = Promise.resolve();

  constructor(private readonly path: string) {}

  private async readAll(): Promise<Record<string, JsonValue>> {
    let text: string;
    try {
      text = await readFile(this.path, 'utf8');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return {};
      throw err;
    }
    const parsed = JSON.parse(text) as unknown;
    if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) throw new Error(`${this.path} is not a key file`);
    return parsed as Record<string, JsonValue>;
  }

  private async writeAll(values: Record<string, JsonValue>): Promise<void> {
    await mkdir(dirname(this.path), { recursive: true, mode: 0o700 });
    const tmp = `${this.path}.${process.pid}.tmp`;
    const fh = await open(tmp, 'w', 0o600);
    try {
      await fh.writeFile(JSON.stringify(values, null, 1));
      await fh.sync();
    } finally {
      await fh.close();
    }
    await chmod(tmp, 0o600);
    await rename(tmp, this.path);
  }

  /** Serializes read-modify-write cycles of this instance. */
  private serial<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.chain.then(fn, fn);
    this.chain = run.catch(() => undefined);
    return run;
  }

  load(name: string): Promise<JsonValue | null> {
    return this.serial(async () => (await this.readAll())[name] ?? null);
  }

  save(name: string, value: JsonValue): Promise<void> {
    return this.serial(async () => {
      const all = await this.readAll();
      all[name] = value;
      await this.writeAll(all);
    });
  }

  remove(name: string): Promise<void> {
    return this.serial(async () => {
      const all = await this.readAll();
      if (!(name in all)) return;
      delete all[name];
      await this.writeAll(all);
    });
  }
}
