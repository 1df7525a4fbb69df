/**
 * Detects an application self-deadlock: a transaction begun with `requires_new` waits for a
 * lock held by its own suspended outer transaction, which cannot finish until the inner one
 * does. The server sees no cycle (the holder is not waiting), so it would wait until
 * lock_timeout. While a statement of such a transaction runs, this asks the server every
 * `intervalMs` who blocks it (`pg_blocking_pids`), on a small side connection of its own
 * (never the pool, which may be the thing that is exhausted).
 */
import pg from 'pg';

export class SelfDeadlockWatch {
  #client: Promise<pg.Client> | undefined;
  #closed = false;

  constructor(
    private readonly config: pg.ClientConfig,
    /** The waiting session. */
    readonly victimPid: number,
    /** Sessions of the suspended outer transactions. */
    readonly holderPids: readonly number[],
    readonly intervalMs = 200,
  ) {}

  /** While `pending` is unsettled, checks periodically; calls `onFound(blocker)` at most once. */
  watch(pending: Promise<unknown>, onFound: (blocker: number) => void): void {
    let done = false;
    let timer: NodeJS.Timeout | undefined;
    const settle = () => {
      done = true;
      if (timer) clearTimeout(timer);
    };
    pending.then(settle, settle);
    const tick = async (): Promise<void> => {
      if (done || this.#closed) return;
      const blocker = await this.#blocker().catch(() => undefined);
      if (done || this.#closed) return;
      if (blocker !== undefined) {
        done = true;
        onFound(blocker);
        return;
      }
      timer = setTimeout(tick, this.intervalMs);
      timer.unref?.();
    };
    timer = setTimeout(tick, this.intervalMs);
    timer.unref?.();
  }

  async #blocker(): Promise<number | undefined> {
    this.#client ??= (async () => {
      const c = new pg.Client(this.config);
      c.on('error', () => {});
      await c.connect();
      return c;
    })();
    const c = await this.#client;
    const { rows } = await c.query<{ b: number[] }>('SELECT pg_blocking_pids($1) AS b', [this.victimPid]);
    return (rows[0]?.b ?? []).map(Number).find((pid) => this.holderPids.includes(pid));
  }

  async close(): Promise<void> {
    this.#closed = true;
    const c = await this.#client?.catch(() => undefined);
    await c?.end().catch(() => {});
  }
}
