/**
 * A small file system of its own (tmpfs) for tests of a full disk: the real ENOSPC, as
 * SQLite meets it, not a stand-in. Mounting needs root (CI runs as root); elsewhere the
 * suite is skipped with a message, and under CI a failure to mount fails it.
 */
import { execFileSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, rmSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';
import { tempDir } from './server.js';
import { IN_CI } from './services.js';

export interface SmallFs {
  dir: string;
  /** Fills every free byte with a file of its own. */
  fill(): void;
  /** Removes that file. */
  free(): void;
}

function mount(dir: string, sizeKiB: number): void {
  execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${sizeKiB}k,mode=0700`, 'tmpfs', dir], { stdio: 'pipe' });
}

/** `false` when the suite can mount a tmpfs here, else the skip reason (never under CI). */
export function smallFsSkip(): string | false {
  const probe = tempDir('dg-smallfs-probe-');
  try {
    mount(probe, 64);
    execFileSync('umount', [probe], { stdio: 'pipe' });
    return false;
  } catch (err) {
    if (IN_CI) return false;
    const reason = `mounting a tmpfs is not permitted here (${(err as Error).message.split('\n')[0]}); skipped (CI runs it as root)`;
    process.stderr.write(`# SKIP: ${reason}\n`);
    return reason;
  }
}

/** Mounts a tmpfs of `sizeKiB`; unmounted when the test file ends. */
export function smallFs(sizeKiB: number): SmallFs {
  const dir = mkdtempSync(join(tmpdir(), 'dg-smallfs-'));
  mount(dir, sizeKiB);
  after(() => {
    execFileSync('umount', ['-l', dir], { stdio: 'pipe' });
    rmSync(dir, { recursive: true, force: true });
  });
  const filler = join(dir, 'filler');
  return {
    dir,
    fill() {
      const fd = openSync(filler, 'a');
      const block = Buffer.alloc(64 * 1024, 0x5a);
      try {
        // Smaller and smaller writes, down to one byte: nothing is left for anyone.
        for (let size = block.length; size >= 1; ) {
          try {
            writeSync(fd, block, 0, size);
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOSPC') throw err;
            size >>= 1;
          }
        }
      } finally {
        closeSync(fd);
      }
    },
    free() {
      rmSync(filler, { force: true });
    },
  };
}

