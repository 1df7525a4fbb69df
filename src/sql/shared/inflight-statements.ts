/**
 * A connection's statements in flight, and a cancel that reaches the one the server runs.
 *
 * One cancel request is not always enough. A request that reaches the server before the
 * server has read the statement is dropped: PostgreSQL ignores a cancel while it waits for
 * a command, and MySQL/MariaDB clear KILL QUERY before reading the next one. The request
 * travels on another connection, so it can overtake the statement. It is therefore sent
 * again, with backoff, until that statement has settled.
 */
import { setTimeout as sleep } from 'node:timers/promises';

const FIRST_RESEND_MS = 10;
const MAX_RESEND_MS = 500;

export class InflightStatements {
  #sent = 0;
  #settled = 0;

  /** A statement was handed to the driver. */
  sent(): void {
    this.#sent++;
  }

  /** The driver reported a statement's result or error. */
  settled(): void {
    this.#settled++;
  }

  get count(): number {
    return this.#sent - this.#settled;
  }

  /**
   * Sends `request` until the statement running now has settled, or `stop()` says the
   * connection no longer matters. Resolves at once when nothing is in flight.
   */
  async cancelRunning(request: () => Promise<void>, stop: () => boolean): Promise<void> {
    // The driver sends statements in order, so the oldest unsettled one is the one running.
    const target = this.#settled + 1;
    const over = () => this.#settled >= target || this.#sent < target || stop();
    for (let waitMs = FIRST_RESEND_MS; !over(); waitMs = Math.min(2 * waitMs, MAX_RESEND_MS)) {
      await request();
      if (over()) return;
      await sleep(waitMs, undefined, { ref: false });
    }
  }
}
