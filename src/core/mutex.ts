/**
 * An async FIFO mutex: callers are served strictly in arrival order. Waiting is bounded:
 * a waiter that cannot get the lock in time gets a PoolTimeoutError that names the holder,
 * so a forgotten manual transaction cannot hang the process silently.
 */
import { PoolTimeoutError } from './errors.js';

export class FifoMutex {
  #locked = false;
  #queue: Array<{ grant: () => void; timer?: NodeJS.Timeout }> = [];
  /** Describes the current holder, for diagnostics. */
  holder: string | undefined;

  get locked(): boolean {
    return this.#locked;
  }

  get waiting(): number {
    return this.#queue.length;
  }

  /** Acquires the lock; resolves with a release function (safe to call twice). */
  acquire(timeoutMs: number, what: string): Promise<() => void> | (() => void) {
    if (!this.#locked) {
      this.#locked = true;
      this.holder = what;
      return this.#releaser();
    }
    return new Promise((resolve, reject) => {
      const waiter: { grant: () => void; timer?: NodeJS.Timeout } = {
        grant: () => {
          if (waiter.timer) clearTimeout(waiter.timer);
          this.holder = what;
          resolve(this.#releaser());
        },
      };
      if (Number.isFinite(timeoutMs)) {
        waiter.timer = setTimeout(() => {
          const i = this.#queue.indexOf(waiter);
          if (i >= 0) this.#queue.splice(i, 1);
          reject(
            new PoolTimeoutError(
              `${what} waited ${timeoutMs} ms for the connection, held by ${this.holder ?? 'unknown'}. ` +
                'Is a transaction left open (a db.begin() never committed), or does code inside a transaction ' +
                'wait for work that needs the same connection?',
            ),
          );
        }, timeoutMs);
      }
      this.#queue.push(waiter);
    });
  }

  #releaser(): () => void {
    let done = false;
    return () => {
      if (done) return;
      done = true;
      const next = this.#queue.shift();
      if (next) next.grant();
      else {
        this.#locked = false;
        this.holder = undefined;
      }
    };
  }
}
