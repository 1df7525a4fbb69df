/**
 * The `tx` a PostgreSQL transaction callback receives: the engine's Transaction plus
 * `notify()` (delivered only if the transaction commits) and the server's view of it.
 */
import { InvalidOptionError } from '../../core/errors.js';
import type { Params } from '../../core/resource.js';
import { Transaction } from '../../core/transaction.js';
import { PgTx } from './adapter.js';
import { assertChannel, assertPayload, PG_NOTIFY_SQL } from './channel.js';

let cursorCounter = 0;

export class PostgresTransaction extends Transaction {
  /**
   * Streams the rows of `sql` through a server-side cursor, `batchSize` rows per FETCH,
   * so memory stays flat. Valid only inside this transaction (cursors are not holdable):
   * leaving the loop early (`break`) closes the cursor, and so does the end of the
   * transaction; iterating after that fails with `E_TX_CLOSED`.
   *
   * @example
   * for await (const row of tx.cursor<{ id: number }>('SELECT id FROM events WHERE day = $1', [day])) {
   *   handle(row);
   * }
   */
  async *cursor<T = Record<string, unknown>>(
    sql: string,
    params?: Params,
    options: { batchSize?: number } = {},
  ): AsyncGenerator<T, void, undefined> {
    const batchSize = options.batchSize ?? 100;
    if (!Number.isInteger(batchSize) || batchSize < 1 || batchSize > 1_000_000) {
      throw new InvalidOptionError(
        `batchSize must be an integer from 1 to 1000000, got ${String(batchSize)}`,
      );
    }
    const name = `txkit_cursor_${++cursorCounter}`;
    await this.query(`DECLARE "${name}" NO SCROLL CURSOR FOR ${sql}`, params);
    let exhausted = false;
    try {
      for (;;) {
        const rows = await this.query<T>(`FETCH FORWARD ${batchSize} FROM "${name}"`);
        for (const row of rows) yield row;
        if (rows.length < batchSize) {
          exhausted = true;
          return;
        }
      }
    } finally {
      // An early exit closes the cursor now; after an error or at the end the server does.
      if (!exhausted && this.isOpen && this.state === 'active')
        await this.query(`CLOSE "${name}"`).catch(() => {});
    }
  }

  /**
   * Sends a notification as part of this transaction: listeners receive it when (and only
   * if) the transaction commits. Identical channel+payload pairs sent in one transaction
   * are delivered once. A transaction that notified cannot be prepared (two-phase).
   *
   * @example
   * await db.transaction(async (tx) => {
   *   await tx.execute('INSERT INTO jobs (id) VALUES ($1)', [id]);
   *   await tx.notify('jobs', String(id));
   * });
   */
  async notify(channel: string, payload = ''): Promise<void> {
    assertChannel(channel);
    assertPayload(payload);
    const handle = this.physical.handle;
    if (handle instanceof PgTx) handle.markNotified();
    await this.query(PG_NOTIFY_SQL, [channel, payload]);
  }

  /** {@link notify} with `JSON.stringify(value)`. */
  async notifyJson(channel: string, value: unknown): Promise<void> {
    await this.notify(channel, JSON.stringify(value));
  }

  /**
   * The server's transaction id, or null while the transaction has not written anything
   * (`pg_current_xact_id_if_assigned()`, which, unlike `txid_current()`, does not force one).
   */
  async serverTxId(): Promise<string | null> {
    const rows = await this.query<{ id: string | null }>(
      'SELECT pg_current_xact_id_if_assigned()::text AS id',
    );
    return rows[0]?.id ?? null;
  }

  /** The server process id of this transaction's session (see pg_stat_activity, pg_locks). */
  get processId(): number | undefined {
    const handle = this.physical.handle;
    return handle instanceof PgTx ? handle.processId : undefined;
  }
}
