/**
 * Exclusive locks inside one JavaScript realm (a page, a process): a promise chain per name.
 * `run` starts `fn` once every earlier `fn` of that name has settled, resolved or rejected.
 * It says nothing to other tabs or processes; storages add that on top (Web Locks, lock files).
 */
export class LockChain {
  private readonly tails = new Map<string, Promise<unknown>>();

  run<T>(name: string, fn: () => Promise<T>): Promise<T> {
    const start = () => fn();
    const run = (this.tails.get(name) ?? Promise.resolve()).then(start, start);
    const tail = run.catch(() => undefined);
    this.tails.set(name, tail);
    void tail.then(() => {
      if (this.tails.get(name) === tail) this.tails.delete(name);
    });
    return run;
  }
}
